/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.arrow;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.apache.arrow.memory.OutOfMemoryException;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Every test closes the root allocator afterwards, so every test is also a leak test. */
class ArrowRequestBatcherTest {

    private RootAllocator root;

    @BeforeEach
    void allocator() {
        root = new RootAllocator();
    }

    @AfterEach
    void noLeaks() {
        assertEquals(0, root.getAllocatedMemory(), "Arrow memory leaked");
        root.close();
    }

    private ArrowRequestBatcher batcher(int maxRows, long maxBytes, long maxDelay) {
        return new ArrowRequestBatcher(root, "inference-operator-0", Long.MAX_VALUE, new ArrowRequestBatcher.Limits(maxRows, maxBytes, maxDelay));
    }

    @Test
    void countBoundFlushesAndTheBatchHoldsEveryField() {
        try (ArrowRequestBatcher b = batcher(3, 1 << 20, 60_000)) {
            assertFalse(b.add("web-1", "r1", "GET /index 200", 1000L, new int[] {1, 2, 3}, 0));
            assertFalse(b.add("db-7", "r2", "слишком много соединений 😬", 2000L, new int[0], 0));
            assertTrue(b.add("web-1", "r3", "", Long.MIN_VALUE, new int[] {151643}, 0));
            try (RequestBatch batch = b.flush()) {
                assertEquals(0, b.rows());
                assertEquals(3, batch.rows());
                assertEquals("db-7", batch.key(1));
                assertEquals("r2", batch.requestId(1));
                assertEquals("слишком много соединений 😬", batch.text(1));
                assertEquals("", batch.text(2));
                assertEquals(2000L, batch.eventTime(1));
                assertEquals(Long.MIN_VALUE, batch.eventTime(2));
                assertEquals(3, batch.tokenCount(0));
                assertEquals(0, batch.tokenCount(1));
                assertEquals(151643, batch.tokenId(2, 0));
                int[] dst = new int[5];
                assertEquals(3, batch.copyTokenIds(0, dst, 1));
                assertArrayEquals(new int[] {0, 1, 2, 3, 0}, dst);
                assertTrue(batch.sizeBytes() > 0);
            }
        }
    }

    @Test
    void byteBoundFlushesBeforeTheCountBound() {
        try (ArrowRequestBatcher b = batcher(1000, 100, 60_000)) {
            // payload: key 1 + id 2 + text 40 + event time 8 + 4 ids x 4 = 67 bytes
            assertFalse(b.add("k", "r1", "x".repeat(40), 0, new int[4], 0));
            assertEquals(67, b.payloadBytes());
            // + 1 + 2 + 22 + 8 = 100: the bound is reached at exactly maxBytes
            assertTrue(b.add("k", "r2", "y".repeat(22), 0, new int[0], 0));
            try (RequestBatch batch = b.flush()) {
                assertEquals(2, batch.rows());
            }
        }
    }

    @Test
    void timeBoundFallsDueFromTheOldestRequest() {
        try (ArrowRequestBatcher b = batcher(1000, 1 << 20, 50)) {
            assertFalse(b.isFlushDue(0));
            assertEquals(Long.MAX_VALUE, b.flushDeadlineMillis());
            b.add("k", "r1", "a", 0, new int[] {1}, 100);
            b.add("k", "r2", "b", 0, new int[] {2}, 130);
            assertEquals(150, b.flushDeadlineMillis());
            assertFalse(b.isFlushDue(149));
            assertTrue(b.isFlushDue(150));
            try (RequestBatch batch = b.flush()) {
                assertEquals(2, batch.rows());
            }
            assertFalse(b.isFlushDue(1000));
            assertNull(b.flush());
        }
    }

    @Test
    void batcherIsReusableAfterFlushAndManyBatchesStayIndependent() {
        try (ArrowRequestBatcher b = batcher(2, 1 << 20, 60_000)) {
            b.add("a", "1", "first", 0, new int[] {7, 8}, 0);
            b.add("a", "2", "second", 0, new int[] {9}, 0);
            RequestBatch one = b.flush();
            b.add("b", "3", "third", 0, new int[] {10, 11, 12}, 0);
            RequestBatch two = b.flush();
            // the first batch is untouched by later writes: its buffers were moved out
            assertEquals("second", one.text(1));
            assertEquals(9, one.tokenId(1, 0));
            assertEquals("third", two.text(0));
            assertEquals(12, two.tokenId(0, 2));
            one.close();
            two.close();
        }
    }

    @Test
    void closingWithAnOpenBatchReportsTheLeakByName() {
        ArrowRequestBatcher b = batcher(2, 1 << 20, 60_000);
        b.add("a", "1", "text", 0, new int[] {1}, 0);
        RequestBatch open = b.flush();
        IllegalStateException e = assertThrows(IllegalStateException.class, b::close);
        assertTrue(e.getMessage().contains("inference-operator-0") && e.getMessage().contains("bytes"), e.getMessage());
        open.close();
        b.close(); // now empty: closes the child allocator
    }

    @Test
    void memoryLimitIsEnforcedWithAnArrowError() {
        try (ArrowRequestBatcher b = new ArrowRequestBatcher(root, "small", 256 * 1024, new ArrowRequestBatcher.Limits(1_000_000, Long.MAX_VALUE, 60_000))) {
            assertThrows(OutOfMemoryException.class, () -> {
                for (int i = 0; i < 100_000; i++) {
                    b.add("k", "r" + i, "some log line that takes room", 0, new int[] {1, 2, 3}, 0);
                }
            });
        }
    }
}
