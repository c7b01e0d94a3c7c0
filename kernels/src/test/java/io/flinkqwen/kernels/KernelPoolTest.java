/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

class KernelPoolTest {

    @Test
    void everyItemIsCoveredExactlyOnceByContiguousRangesOfDistinctWorkers() {
        int[] sizes = {0, 1, 2, 3, 5, 16, 17, 63, 64, 65, 127, 128, 129, 200, 255, 256, 257, 1000, 4096, 4097};
        for (int threads = 1; threads <= 4; threads++) {
            try (KernelPool pool = new KernelPool(threads)) {
                for (int n : sizes) {
                    AtomicIntegerArray hits = new AtomicIntegerArray(Math.max(n, 1));
                    AtomicIntegerArray busy = new AtomicIntegerArray(threads);
                    AtomicIntegerArray pieces = new AtomicIntegerArray(1);
                    int nThreads = threads;
                    pool.parallelFor(n, (start, end, worker) -> {
                        assertTrue(0 <= worker && worker < nThreads, "worker " + worker);
                        assertTrue(start < end, "empty range run");
                        assertEquals(0, busy.getAndIncrement(worker), "worker " + worker + " runs two pieces at once");
                        pieces.incrementAndGet(0);
                        for (int i = start; i < end; i++) {
                            hits.incrementAndGet(i);
                        }
                        busy.decrementAndGet(worker);
                    });
                    for (int i = 0; i < n; i++) {
                        assertEquals(1, hits.get(i), "item " + i + " of " + n + " with " + threads + " threads");
                    }
                    assertTrue(pieces.get(0) <= Math.max(1, Math.min(n, threads * KernelPool.CHUNKS_PER_THREAD)),
                            pieces.get(0) + " pieces for " + n + " items and " + threads + " threads");
                }
            }
        }
    }

    @Test
    void rangesAreBalancedAndWholeGrainsWhenLarge() {
        for (int threads = 1; threads <= 8; threads++) {
            for (int n = 0; n <= 3000; n++) {
                int grain = n >= KernelPool.GRAIN * 4 * threads ? KernelPool.GRAIN : 1;
                int min = Integer.MAX_VALUE;
                int max = 0;
                assertEquals(0, KernelPool.rangeStart(n, threads, 0));
                assertEquals(n, KernelPool.rangeStart(n, threads, threads));
                for (int w = 0; w < threads; w++) {
                    int start = KernelPool.rangeStart(n, threads, w);
                    int end = KernelPool.rangeStart(n, threads, w + 1);
                    assertTrue(start <= end);
                    if (end < n) {
                        assertEquals(0, end % grain, "n=" + n + " threads=" + threads + " worker " + w);
                    }
                    min = Math.min(min, end - start);
                    max = Math.max(max, end - start);
                }
                assertTrue(max - min <= grain, "n=" + n + " threads=" + threads + ": sizes " + min + ".." + max);
            }
        }
    }

    @Test
    void workerExceptionIsRethrownOnTheCallerAndThePoolStaysUsable() {
        try (KernelPool pool = new KernelPool(3)) {
            IllegalStateException boom = new IllegalStateException("boom");
            // whichever worker takes the piece holding item 150 throws
            IllegalStateException thrown = assertThrows(IllegalStateException.class, () -> pool.parallelFor(300, (s, e, w) -> {
                if (s <= 150 && 150 < e) {
                    throw boom;
                }
            }));
            assertSame(boom, thrown);
            AtomicLong sum = new AtomicLong();
            pool.parallelFor(300, (s, e, w) -> sum.addAndGet(e - s));
            assertEquals(300, sum.get());
        }
    }

    @Test
    void failedPieceStillWaitsForTheOthers() {
        try (KernelPool pool = new KernelPool(3)) {
            AtomicInteger done = new AtomicInteger();
            AssertionError boom = new AssertionError("piece 0 failed");
            // three pieces of one item: the one holding item 0 fails at once, the other two sleep
            AssertionError thrown = assertThrows(AssertionError.class, () -> pool.parallelFor(3, (s, e, w) -> {
                if (s == 0) {
                    throw boom;
                }
                try {
                    Thread.sleep(50);
                } catch (InterruptedException ex) {
                    Thread.currentThread().interrupt();
                }
                done.incrementAndGet();
            }));
            assertSame(boom, thrown);
            assertEquals(2, done.get(), "parallelFor returned before the workers finished");
        }
    }

    @Test
    void aSlowWorkerTakesFewerPiecesAndDoesNotHoldUpTheCall() {
        // worker 1 stands for a core shared with another tenant: each of its pieces takes 40 ms,
        // the caller's take no time. The caller takes the pieces worker 1 does not get to.
        try (KernelPool pool = new KernelPool(2)) {
            AtomicIntegerArray piecesOf = new AtomicIntegerArray(2);
            AtomicIntegerArray hits = new AtomicIntegerArray(800);
            pool.parallelFor(800, (s, e, w) -> {
                piecesOf.incrementAndGet(w);
                for (int i = s; i < e; i++) {
                    hits.incrementAndGet(i);
                }
                if (w == 1) {
                    try {
                        Thread.sleep(40);
                    } catch (InterruptedException ex) {
                        Thread.currentThread().interrupt();
                    }
                }
            });
            for (int i = 0; i < 800; i++) {
                assertEquals(1, hits.get(i), "item " + i);
            }
            assertEquals(2 * KernelPool.CHUNKS_PER_THREAD, piecesOf.get(0) + piecesOf.get(1));
            assertTrue(piecesOf.get(1) < piecesOf.get(0),
                    "the slow worker ran " + piecesOf.get(1) + " pieces, the caller " + piecesOf.get(0));
        }
    }

    @Test
    void severalFailuresAreReportedAsOneWithSuppressed() {
        try (KernelPool pool = new KernelPool(3)) {
            RuntimeException thrown = assertThrows(RuntimeException.class,
                    () -> pool.parallelFor(3, (s, e, w) -> {
                        throw new RuntimeException("worker " + w);
                    }));
            assertEquals(2, thrown.getSuppressed().length);
        }
    }

    @Test
    void manyRepeatedCallsAllComplete() {
        for (long spin : new long[] {KernelPool.DEFAULT_SPIN_NANOS, 0}) { // 0: park every time
            try (KernelPool pool = new KernelPool(3, spin)) {
                long[] perWorker = new long[3]; // each slot written by its own worker only
                int calls = 5000;
                for (int c = 0; c < calls; c++) {
                    pool.parallelFor(100, (s, e, w) -> perWorker[w] += e - s);
                }
                assertEquals(100L * calls, perWorker[0] + perWorker[1] + perWorker[2], "spin " + spin);
            }
        }
    }

    @Test
    void nestedCallIsRejectedAndThePoolStaysUsable() {
        for (int threads = 1; threads <= 2; threads++) {
            try (KernelPool pool = new KernelPool(threads)) {
                assertThrows(IllegalStateException.class,
                        () -> pool.parallelFor(10, (s, e, w) -> pool.parallelFor(4, (s2, e2, w2) -> {})));
                AtomicInteger items = new AtomicInteger();
                pool.parallelFor(10, (s, e, w) -> items.addAndGet(e - s));
                assertEquals(10, items.get());
            }
        }
    }

    @Test
    void serialPoolRunsInlineOnTheCaller() {
        try (KernelPool pool = KernelPool.serial()) {
            assertEquals(1, pool.threads());
            Thread caller = Thread.currentThread();
            AtomicInteger calls = new AtomicInteger();
            pool.parallelFor(1000, (s, e, w) -> {
                assertSame(caller, Thread.currentThread());
                assertEquals(0, s);
                assertEquals(1000, e);
                assertEquals(0, w);
                calls.incrementAndGet();
            });
            assertEquals(1, calls.get());
        }
    }

    @Test
    void closeStopsNamedDaemonWorkersAndRejectsFurtherCalls() {
        KernelPool pool = new KernelPool(3);
        Thread[] threads = pool.workerThreads();
        assertNull(threads[0]);
        for (int i = 1; i < 3; i++) {
            assertEquals("flinkqwen-kernel-" + i, threads[i].getName());
            assertTrue(threads[i].isDaemon());
            assertTrue(threads[i].isAlive());
        }
        pool.close();
        pool.close(); // idempotent
        for (int i = 1; i < 3; i++) {
            assertFalse(threads[i].isAlive(), threads[i].getName() + " still running");
        }
        assertThrows(IllegalStateException.class, () -> pool.parallelFor(10, (s, e, w) -> {}));
    }

    @Test
    void rejectsBadArguments() {
        assertThrows(IllegalArgumentException.class, () -> new KernelPool(0));
        try (KernelPool pool = new KernelPool(2)) {
            assertThrows(IllegalArgumentException.class, () -> pool.parallelFor(-1, (s, e, w) -> {}));
        }
    }
}
