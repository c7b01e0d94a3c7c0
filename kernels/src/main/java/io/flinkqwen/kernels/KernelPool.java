/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

/**
 * A fixed pool of kernel threads that splits a range of work items into contiguous pieces.
 *
 * <p>The calling thread is worker 0 and runs pieces itself; {@code threads - 1} daemon threads
 * named {@code flinkqwen-kernel-N} (N = worker index, 1-based) run the others. Each worker owns
 * one {@link Scratch}, handed to kernels through {@link #scratch(int)}.
 *
 * <p>A call cuts its range into up to {@link #CHUNKS_PER_THREAD} pieces per thread, and each
 * worker takes the next piece not yet taken until none is left. A worker that runs slower (a
 * core shared with another tenant of the host, a MoE layer whose experts cost more per row than
 * the split assumed) then takes fewer pieces instead of holding the others up: with one piece
 * per worker the call lasts as long as its slowest worker's half.
 *
 * <p>Calls are frequent (a forward pass makes a few hundred per token) and short, so idle workers
 * spin for {@link #DEFAULT_SPIN_NANOS} before they park, and {@link #parallelFor} allocates
 * nothing. Spinning costs CPU: with more pool threads than free cores, the spin window is what
 * a late worker costs the caller, which is why it is bounded in time rather than iterations.
 *
 * <p>A pool serves one caller at a time: a nested or concurrent {@code parallelFor} throws
 * {@link IllegalStateException}, it does not deadlock.
 */
public final class KernelPool implements AutoCloseable {

    /** A piece of work: items {@code [start, end)}, run by worker {@code worker}. */
    @FunctionalInterface
    public interface RangeTask {
        /**
         * Runs items {@code [start, end)}; {@code start < end}. {@code worker} is in {@code [0,
         * threads)}; a worker runs its pieces of a call one after another, never two at once, so
         * the index may select per-worker scratch. Which worker runs which piece, and how many
         * pieces a worker runs, varies from call to call.
         */
        void run(int start, int end, int worker);
    }

    /** How long an idle worker (or the waiting caller) spins before parking. */
    public static final long DEFAULT_SPIN_NANOS = TimeUnit.MICROSECONDS.toNanos(50);

    /** Pieces are multiples of this many items when every piece gets at least 4 grains. */
    static final int GRAIN = 16;

    /** Pieces per thread a call is cut into, at most (fewer when there are fewer items). */
    static final int CHUNKS_PER_THREAD = 4;

    private static final int SPINS_PER_CLOCK_READ = 64;

    private final int threads;
    private final long spinNanos;
    private final Scratch[] scratch;
    private final Worker[] workers; // index 0 unused: the caller is worker 0

    // Published to the workers by the volatile write of generation.
    private RangeTask task;
    private int n;
    private int chunks;
    private final AtomicInteger nextChunk = new AtomicInteger();

    private volatile int generation;
    private volatile boolean closed;
    private volatile Thread caller;
    private volatile boolean callerParked;
    private final AtomicInteger pending = new AtomicInteger();
    private final AtomicReference<Throwable> failure = new AtomicReference<>();
    private final AtomicBoolean busy = new AtomicBoolean();

    /** A pool of {@code threads} workers (the caller included) that spin {@link #DEFAULT_SPIN_NANOS}. */
    public KernelPool(int threads) {
        this(threads, DEFAULT_SPIN_NANOS);
    }

    /**
     * A pool of {@code threads} workers, the caller included, whose idle workers spin {@code
     * spinNanos} before parking (0 parks at once).
     */
    public KernelPool(int threads, long spinNanos) {
        if (threads < 1) {
            throw new IllegalArgumentException("a kernel pool needs at least 1 thread, got " + threads);
        }
        if (spinNanos < 0) {
            throw new IllegalArgumentException("spinNanos must be >= 0, got " + spinNanos);
        }
        this.threads = threads;
        this.spinNanos = spinNanos;
        this.scratch = new Scratch[threads];
        for (int i = 0; i < threads; i++) {
            scratch[i] = new Scratch();
        }
        this.workers = new Worker[threads];
        for (int i = 1; i < threads; i++) {
            workers[i] = new Worker(i);
        }
        for (int i = 1; i < threads; i++) {
            workers[i].thread.start();
        }
    }

    /** A pool that runs everything inline on the calling thread. */
    public static KernelPool serial() {
        return new KernelPool(1, 0);
    }

    /** Number of workers, the calling thread included. */
    public int threads() {
        return threads;
    }

    /**
     * The scratch of worker {@code worker}; only that worker may use it while a {@code
     * parallelFor} runs, and only the caller between calls.
     */
    public Scratch scratch(int worker) {
        return scratch[worker];
    }

    /**
     * Runs {@code task} over {@code [0, n)} cut into contiguous, balanced pieces ({@link
     * #CHUNKS_PER_THREAD} per thread at most, multiples of a small grain when {@code n} is large
     * enough; see {@link #rangeStart}), which the workers, the caller among them, take one at a
     * time until none is left. Empty pieces are not run. Returns when every piece is done; if
     * any piece threw, rethrows the first throwable (others are added as suppressed) after all
     * pieces finished.
     *
     * @throws IllegalStateException if the pool is closed or already inside a {@code parallelFor}
     */
    public void parallelFor(int n, RangeTask task) {
        if (n < 0) {
            throw new IllegalArgumentException("n must be >= 0, got " + n);
        }
        if (closed) {
            throw new IllegalStateException("kernel pool is closed");
        }
        if (n == 0) {
            return;
        }
        // Also for one thread: the scratch of worker 0 must not be shared by two callers.
        if (!busy.compareAndSet(false, true)) {
            throw new IllegalStateException(
                    "kernel pool is already running a parallelFor (nested or concurrent use)");
        }
        if (threads == 1) {
            try {
                task.run(0, n, 0); // one piece: nothing to balance
            } finally {
                busy.set(false);
            }
            return;
        }
        try {
            this.task = task;
            this.n = n;
            this.chunks = Math.min(n, threads * CHUNKS_PER_THREAD);
            nextChunk.set(0);
            this.caller = Thread.currentThread();
            pending.set(threads - 1);
            generation = generation + 1; // publishes task and n; only the caller writes it
            for (int i = 1; i < threads; i++) {
                Worker w = workers[i];
                if (w.parked) {
                    LockSupport.unpark(w.thread);
                }
            }
            runChunks(0);
            awaitWorkers();
            this.task = null;
            Throwable t = failure.getAndSet(null);
            if (t != null) {
                throwUnchecked(t);
            }
        } finally {
            busy.set(false);
        }
    }

    /**
     * First item of piece {@code piece} when {@code n} items are cut into {@code pieces}; the
     * piece ends where piece {@code piece + 1} starts ({@code n} for the last). Pieces are whole
     * grains of {@link #GRAIN} items when each gets at least 4 grains, else single items; sizes
     * differ by at most one grain.
     */
    static int rangeStart(int n, int pieces, int piece) {
        int grain = n >= GRAIN * 4L * pieces ? GRAIN : 1;
        long units = (n + (long) grain - 1) / grain;
        long start = units * piece / pieces * grain;
        return (int) Math.min(n, start);
    }

    /**
     * Runs pieces of the current call until none is left. A piece that throws is recorded and
     * the worker goes on with the next: every piece runs, as every range did when there was one
     * per worker, and the call reports the failures at the end.
     */
    private void runChunks(int worker) {
        RangeTask t = task;
        int total = n;
        int count = chunks;
        for (int c = nextChunk.getAndIncrement(); c < count; c = nextChunk.getAndIncrement()) {
            int start = rangeStart(total, count, c);
            int end = rangeStart(total, count, c + 1);
            if (start < end) {
                try {
                    t.run(start, end, worker);
                } catch (Throwable e) {
                    recordFailure(e);
                }
            }
        }
    }

    private void recordFailure(Throwable t) {
        if (!failure.compareAndSet(null, t)) {
            Throwable first = failure.get();
            if (first != null && first != t) {
                first.addSuppressed(t);
            }
        }
    }

    private void awaitWorkers() {
        long deadline = 0;
        int spins = 0;
        while (pending.get() != 0) {
            if (++spins % SPINS_PER_CLOCK_READ != 0) {
                Thread.onSpinWait();
                continue;
            }
            long now = System.nanoTime();
            if (deadline == 0) {
                deadline = now + spinNanos;
            }
            if (now - deadline < 0) {
                continue;
            }
            // Dekker-style handshake with the last worker: it decrements pending, then reads
            // callerParked; we write callerParked, then read pending. One of us sees the other.
            callerParked = true;
            if (pending.get() != 0) {
                LockSupport.park(this);
            }
            callerParked = false;
        }
    }

    @SuppressWarnings("unchecked")
    private static <T extends Throwable> void throwUnchecked(Throwable t) throws T {
        throw (T) t;
    }

    /** Stops the workers and waits briefly for them to exit; idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (int i = 1; i < threads; i++) {
            LockSupport.unpark(workers[i].thread);
        }
        for (int i = 1; i < threads; i++) {
            try {
                workers[i].thread.join(TimeUnit.SECONDS.toMillis(5));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    /** The worker threads (index 0 is null: the caller). For tests. */
    Thread[] workerThreads() {
        Thread[] out = new Thread[threads];
        for (int i = 1; i < threads; i++) {
            out[i] = workers[i].thread;
        }
        return out;
    }

    private final class Worker implements Runnable {
        final int index;
        final Thread thread;
        volatile boolean parked;

        Worker(int index) {
            this.index = index;
            this.thread = new Thread(this, "flinkqwen-kernel-" + index);
            this.thread.setDaemon(true);
        }

        @Override
        public void run() {
            int seen = 0;
            while (true) {
                int g = awaitGeneration(seen);
                if (closed) {
                    return;
                }
                seen = g;
                try {
                    runChunks(index);
                } finally {
                    if (pending.decrementAndGet() == 0 && callerParked) {
                        LockSupport.unpark(caller);
                    }
                }
            }
        }

        private int awaitGeneration(int seen) {
            long deadline = 0;
            int spins = 0;
            while (true) {
                int g = generation;
                if (g != seen || closed) {
                    return g;
                }
                if (++spins % SPINS_PER_CLOCK_READ != 0) {
                    Thread.onSpinWait();
                    continue;
                }
                long now = System.nanoTime();
                if (deadline == 0) {
                    deadline = now + spinNanos;
                }
                if (now - deadline < 0) {
                    continue;
                }
                // The caller bumps generation, then reads parked; we write parked, then re-read
                // generation: a wake-up cannot be lost between the check and the park.
                parked = true;
                if (generation == seen && !closed) {
                    LockSupport.park(KernelPool.this);
                }
                parked = false;
            }
        }
    }
}
