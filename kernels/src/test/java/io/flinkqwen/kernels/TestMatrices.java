/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels;

import java.nio.ByteBuffer;
import java.util.Random;

/** Builds weight matrices for tests in the different buffer layouts kernels must handle. */
final class TestMatrices {

    private TestMatrices() {}

    /**
     * Random weights in [-1, 1) with the awkward cases mixed in: every 7th value tiny (a
     * subnormal in F16), and one all-zero 32-value block every few rows (Q8_0/Q4_0 scale 0).
     */
    static float[] weights(Random rnd, int rows, int cols) {
        float[] w = Numerics.uniform(rnd, rows * cols, 1f);
        for (int i = 0; i < w.length; i += 7) {
            w[i] *= 1e-6f;
        }
        for (int r = 0; r < rows; r += 3) {
            if (cols >= 32) {
                java.util.Arrays.fill(w, r * cols, r * cols + 32, 0f);
            }
        }
        return w;
    }

    /** {@code rows x cols} values encoded row by row with {@link Quantize#quantizeRow}. */
    static byte[] encode(DType type, float[] values, int rows, int cols) {
        int rowBytes = (int) type.rowBytes(cols);
        byte[] out = new byte[rows * rowBytes];
        for (int r = 0; r < rows; r++) {
            Quantize.quantizeRow(type, values, r * cols, cols, out, r * rowBytes);
        }
        return out;
    }

    /** The encoded matrix decoded again with the scalar decoder: what every kernel should see. */
    static float[] decoded(WeightMatrix w) {
        float[] out = new float[w.rows() * w.cols()];
        for (int r = 0; r < w.rows(); r++) {
            Quantize.dequantizeRowScalar(out, r * w.cols(), w, r);
        }
        return out;
    }

    /** Layouts of the same bytes. */
    enum Layout {
        /** One heap buffer. */
        HEAP,
        /** One direct buffer whose first byte is at an odd address offset (mapped files can be). */
        DIRECT_UNALIGNED,
        /** Direct buffers of 3 rows each, unaligned, as a >2 GiB tensor is split. */
        CHUNKED,
        /** CHUNKED, packed onto the heap ({@link WeightMatrix#packOnHeap()}). */
        PACKED,
        /** CHUNKED, packed in heap arrays of 2 rows each (a packed matrix's 2^30-element split). */
        PACKED_SMALL_ARRAYS
    }

    static WeightMatrix matrix(Layout layout, DType type, int rows, int cols, byte[] bytes) {
        switch (layout) {
            case HEAP:
                return WeightMatrix.onHeap(type, rows, cols, bytes);
            case DIRECT_UNALIGNED:
                return WeightMatrix.of(type, rows, cols, unalignedDirect(bytes, 0, bytes.length));
            case CHUNKED: {
                int rowBytes = (int) type.rowBytes(cols);
                int perChunk = 3;
                int n = (rows + perChunk - 1) / perChunk;
                ByteBuffer[] chunks = new ByteBuffer[n];
                for (int i = 0; i < n; i++) {
                    int from = i * perChunk * rowBytes;
                    int to = Math.min(bytes.length, from + perChunk * rowBytes);
                    chunks[i] = unalignedDirect(bytes, from, to - from);
                }
                return WeightMatrix.ofChunks(type, rows, cols, perChunk, chunks);
            }
            case PACKED:
                return matrix(Layout.CHUNKED, type, rows, cols, bytes).packOnHeap();
            case PACKED_SMALL_ARRAYS:
                return matrix(Layout.CHUNKED, type, rows, cols, bytes).packOnHeap(2 * cols);
            default:
                throw new AssertionError(layout);
        }
    }

    private static ByteBuffer unalignedDirect(byte[] bytes, int from, int len) {
        ByteBuffer b = ByteBuffer.allocateDirect(len + 3);
        b.position(3);
        ByteBuffer s = b.slice();
        s.put(bytes, from, len);
        s.clear();
        return s;
    }
}
