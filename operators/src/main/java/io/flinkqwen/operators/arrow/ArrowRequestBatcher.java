/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.arrow;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.complex.ListVector;
import org.apache.arrow.vector.util.TransferPair;

/**
 * Buffers pending inference requests of one operator instance in an Arrow {@link
 * VectorSchemaRoot} ({@link RequestBatchSchema}) and hands them over as a {@link RequestBatch}
 * when a count, byte or time bound is reached, whichever comes first.
 *
 * <p>Memory: one child allocator per batcher, named after its owner (e.g. the operator and
 * subtask), with an optional byte limit; {@link #close()} closes it and fails loudly if a batch
 * handed out was not closed, so every leak shows. Flushing moves the buffers into the batch
 * with transfer pairs: nothing is copied.
 *
 * <p>Not thread-safe: the operator's mailbox thread owns it.
 */
public final class ArrowRequestBatcher implements AutoCloseable {

    /**
     * When to flush.
     *
     * @param maxRows flush at this many requests
     * @param maxBytes flush once the payload (text, key and id bytes, 8 per event time, 4 per
     *     token id) reaches this many bytes
     * @param maxDelayMillis flush when the oldest buffered request has waited this long
     */
    public record Limits(int maxRows, long maxBytes, long maxDelayMillis) implements java.io.Serializable {
        public Limits {
            if (maxRows < 1) {
                throw new IllegalArgumentException("maxRows must be >= 1, got " + maxRows);
            }
            if (maxBytes < 1) {
                throw new IllegalArgumentException("maxBytes must be >= 1, got " + maxBytes);
            }
            if (maxDelayMillis < 0) {
                throw new IllegalArgumentException("maxDelayMillis must be >= 0, got " + maxDelayMillis);
            }
        }
    }

    private final BufferAllocator allocator;
    private final Limits limits;
    private VectorSchemaRoot root;
    private VarCharVector key;
    private VarCharVector requestId;
    private VarCharVector text;
    private BigIntVector eventTime;
    private ListVector tokenIds;
    private int rows;
    private int tokens;
    private long payloadBytes;
    private long firstArrivalMillis;

    /**
     * @param parent the allocator to take a child from
     * @param name the child allocator's name (operator and subtask), shown in leak reports
     * @param memoryLimit bytes the child allocator may hold (batches handed out included)
     */
    public ArrowRequestBatcher(BufferAllocator parent, String name, long memoryLimit, Limits limits) {
        this.allocator = parent.newChildAllocator(name, 0, memoryLimit);
        this.limits = limits;
        try {
            newRoot();
        } catch (RuntimeException e) {
            if (root != null) {
                root.close();
            }
            allocator.close();
            throw e;
        }
    }

    private void newRoot() {
        root = VectorSchemaRoot.create(RequestBatchSchema.SCHEMA, allocator);
        // start small: a batch grows by doubling, and an idle operator should hold little
        for (FieldVector v : root.getFieldVectors()) {
            v.setInitialCapacity(Math.min(limits.maxRows(), 64));
        }
        key = (VarCharVector) root.getVector(RequestBatchSchema.KEY);
        requestId = (VarCharVector) root.getVector(RequestBatchSchema.REQUEST_ID);
        text = (VarCharVector) root.getVector(RequestBatchSchema.TEXT);
        eventTime = (BigIntVector) root.getVector(RequestBatchSchema.EVENT_TIME);
        tokenIds = (ListVector) root.getVector(RequestBatchSchema.TOKEN_IDS);
        root.allocateNew();
        rows = 0;
        tokens = 0;
        payloadBytes = 0;
    }

    /**
     * Buffers one request.
     *
     * @param nowMillis the processing time of arrival (starts the time bound of an empty batch)
     * @return whether a bound is reached and the caller should {@link #flush()}
     */
    public boolean add(String requestKey, String id, String requestText, long eventTimeMillis, int[] ids, long nowMillis) {
        byte[] k = requestKey.getBytes(StandardCharsets.UTF_8);
        byte[] r = id.getBytes(StandardCharsets.UTF_8);
        byte[] t = requestText.getBytes(StandardCharsets.UTF_8);
        if (rows == 0) {
            firstArrivalMillis = nowMillis;
        }
        key.setSafe(rows, k);
        requestId.setSafe(rows, r);
        text.setSafe(rows, t);
        eventTime.setSafe(rows, eventTimeMillis);
        int start = tokenIds.startNewValue(rows);
        IntVector data = (IntVector) tokenIds.getDataVector();
        for (int i = 0; i < ids.length; i++) {
            data.setSafe(start + i, ids[i]);
        }
        tokenIds.endValue(rows, ids.length);
        rows++;
        tokens += ids.length;
        payloadBytes += k.length + r.length + t.length + 8 + 4L * ids.length;
        return rows >= limits.maxRows() || payloadBytes >= limits.maxBytes();
    }

    /** Whether the time bound is reached: the oldest buffered request waited {@code maxDelayMillis}. */
    public boolean isFlushDue(long nowMillis) {
        return rows > 0
                && (rows >= limits.maxRows()
                        || payloadBytes >= limits.maxBytes()
                        || nowMillis - firstArrivalMillis >= limits.maxDelayMillis());
    }

    /** When the time bound of the buffered requests falls due; {@code Long.MAX_VALUE} if empty. */
    public long flushDeadlineMillis() {
        return rows == 0 ? Long.MAX_VALUE : firstArrivalMillis + limits.maxDelayMillis();
    }

    public int rows() {
        return rows;
    }

    public long payloadBytes() {
        return payloadBytes;
    }

    /**
     * Moves the buffered requests into a batch the caller owns (and must close), and starts an
     * empty one; returns null when nothing is buffered.
     */
    public RequestBatch flush() {
        if (rows == 0) {
            return null;
        }
        ((IntVector) tokenIds.getDataVector()).setValueCount(tokens);
        root.setRowCount(rows);
        List<FieldVector> moved = new ArrayList<>();
        for (FieldVector v : root.getFieldVectors()) {
            TransferPair pair = v.getTransferPair(allocator);
            pair.transfer();
            moved.add((FieldVector) pair.getTo());
        }
        VectorSchemaRoot out = new VectorSchemaRoot(moved);
        out.setRowCount(rows);
        RequestBatch batch = new RequestBatch(out);
        root.close();
        newRoot();
        return batch;
    }

    /** Bytes the child allocator holds now (the buffer and every open batch). */
    public long allocatedBytes() {
        return allocator.getAllocatedMemory();
    }

    /**
     * Closes the buffer and the child allocator.
     *
     * @throws IllegalStateException naming the allocator and the bytes still held if a batch
     *     handed out is still open; the allocator then stays open, so that the batch can still
     *     be closed and {@code close()} called again
     */
    @Override
    public void close() {
        if (root != null) {
            root.close();
            root = null;
        }
        long held = allocator.getAllocatedMemory();
        if (held > 0) {
            throw new IllegalStateException(
                    String.format(
                            "Arrow allocator %s still holds %d bytes: close every RequestBatch before the batcher",
                            allocator.getName(), held));
        }
        allocator.close();
    }
}
