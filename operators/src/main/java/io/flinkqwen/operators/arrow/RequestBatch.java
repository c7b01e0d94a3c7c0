/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.arrow;

import io.flinkqwen.engine.serve.PromptTokens;
import java.nio.charset.StandardCharsets;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.complex.ListVector;

/**
 * A flushed micro-batch: it owns its Arrow vectors (moved out of the batcher by transfer pairs,
 * not copied) until {@link #close()}. Token ids are read straight from the list vector's data
 * buffer. Not thread-safe; one owner at a time.
 */
public final class RequestBatch implements AutoCloseable {

    private final VectorSchemaRoot root;
    private final VarCharVector key;
    private final VarCharVector requestId;
    private final VarCharVector text;
    private final BigIntVector eventTime;
    private final ListVector tokenIds;
    private final IntVector ids;

    RequestBatch(VectorSchemaRoot root) {
        this.root = root;
        this.key = (VarCharVector) root.getVector(RequestBatchSchema.KEY);
        this.requestId = (VarCharVector) root.getVector(RequestBatchSchema.REQUEST_ID);
        this.text = (VarCharVector) root.getVector(RequestBatchSchema.TEXT);
        this.eventTime = (BigIntVector) root.getVector(RequestBatchSchema.EVENT_TIME);
        this.tokenIds = (ListVector) root.getVector(RequestBatchSchema.TOKEN_IDS);
        this.ids = (IntVector) tokenIds.getDataVector();
    }

    public int rows() {
        return root.getRowCount();
    }

    public String key(int row) {
        return new String(key.get(row), StandardCharsets.UTF_8);
    }

    public String requestId(int row) {
        return new String(requestId.get(row), StandardCharsets.UTF_8);
    }

    public String text(int row) {
        return new String(text.get(row), StandardCharsets.UTF_8);
    }

    public long eventTime(int row) {
        return eventTime.get(row);
    }

    /** Number of token ids of row {@code row}. */
    public int tokenCount(int row) {
        ArrowBuf offsets = tokenIds.getOffsetBuffer();
        return offsets.getInt((long) (row + 1) * ListVector.OFFSET_WIDTH) - offsets.getInt((long) row * ListVector.OFFSET_WIDTH);
    }

    /** Token {@code i} of row {@code row}, read from the Arrow data buffer. */
    public int tokenId(int row, int i) {
        int start = tokenIds.getOffsetBuffer().getInt((long) row * ListVector.OFFSET_WIDTH);
        return ids.getDataBuffer().getInt((long) (start + i) * IntVector.TYPE_WIDTH);
    }

    /** Copies the token ids of {@code row} into {@code dst} at {@code offset}; returns the count. */
    public int copyTokenIds(int row, int[] dst, int offset) {
        int start = tokenIds.getOffsetBuffer().getInt((long) row * ListVector.OFFSET_WIDTH);
        int n = tokenCount(row);
        ArrowBuf data = ids.getDataBuffer();
        for (int i = 0; i < n; i++) {
            dst[offset + i] = data.getInt((long) (start + i) * IntVector.TYPE_WIDTH);
        }
        return n;
    }

    /**
     * The prompt of {@code row} as the engine reads it: {@code head} (the key's history, on the
     * heap) followed by the row's token ids, read from this batch's Arrow data buffer in place.
     * Valid while this batch is open: close the batch only after the engine has answered every
     * request that holds such a view.
     */
    public PromptTokens prompt(int row, int[] head) {
        return new ArrowPrompt(head, tokenIds.getOffsetBuffer().getInt((long) row * ListVector.OFFSET_WIDTH), tokenCount(row));
    }

    /** A key's history on the heap, then one row's ids in the Arrow data buffer. */
    private final class ArrowPrompt implements PromptTokens {
        private final int[] head;
        private final int start;
        private final int count;

        ArrowPrompt(int[] head, int start, int count) {
            this.head = head;
            this.start = start;
            this.count = count;
        }

        @Override
        public int length() {
            return head.length + count;
        }

        @Override
        public int get(int i) {
            if (i < head.length) {
                return head[i];
            }
            int j = i - head.length;
            if (j >= count) {
                throw new IndexOutOfBoundsException("token " + i + " of a prompt of " + length());
            }
            return ids.getDataBuffer().getInt((long) (start + j) * IntVector.TYPE_WIDTH);
        }
    }

    /** Bytes held by this batch's buffers. */
    public long sizeBytes() {
        long total = 0;
        for (var v : root.getFieldVectors()) {
            total += v.getBufferSize();
        }
        return total;
    }

    /** The Arrow root, for IPC or a zero-copy hand-over; still owned by this batch. */
    public VectorSchemaRoot root() {
        return root;
    }

    @Override
    public void close() {
        root.close();
    }
}
