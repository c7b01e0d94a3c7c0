/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels;


/**
 * A heap copy of a {@link WeightMatrix}'s rows in the layout its kernels read fastest; see
 * {@link WeightMatrix#packOnHeap()}.
 *
 * <ul>
 *   <li>Q8_0: the int8 weights of each row contiguous ({@code cols} bytes, so a 32-weight block
 *       is one aligned run of bytes instead of sitting after its 2-byte scale), and the block
 *       scales already widened to floats ({@code cols / 32} per row);
 *   <li>F16 and BF16: the 16-bit values as stored;
 *   <li>F32: the floats as stored.
 * </ul>
 *
 * <p>Rows live in blocks of {@link #rowsPerBlock} rows, each one Java array, since an array
 * holds at most 2^31 elements. Values are bit-for-bit those of the file (the Q8_0 scale is
 * widened exactly), so every kernel gives the same result on a packed matrix as on its mapped
 * twin up to summation order.
 */
final class PackedRows {

    /** Elements per heap array at most (1 Gi, well under the 2^31 array limit). */
    static final int MAX_BLOCK_ELEMENTS = 1 << 30;

    private static final int QK = 32;

    final DType dtype;
    final int rowsPerBlock;
    final byte[][] quants;
    final float[][] scales;
    final short[][] halves;
    final float[][] floats;

    private PackedRows(DType dtype, int rowsPerBlock, byte[][] quants, float[][] scales, short[][] halves, float[][] floats) {
        this.dtype = dtype;
        this.rowsPerBlock = rowsPerBlock;
        this.quants = quants;
        this.scales = scales;
        this.halves = halves;
        this.floats = floats;
    }

    /** Whether {@code dtype} has a packed layout (Q4_0 does not yet: it stays mapped). */
    static boolean supports(DType dtype) {
        return dtype == DType.Q8_0 || dtype == DType.F16 || dtype == DType.BF16 || dtype == DType.F32;
    }

    /** Heap bytes a packed {@code rows x cols} matrix of {@code dtype} takes (array headers aside). */
    static long bytes(DType dtype, int rows, int cols) {
        long n = (long) rows * cols;
        switch (dtype) {
            case Q8_0:
                return n + n / QK * Float.BYTES;
            case F16:
            case BF16:
                return n * Short.BYTES;
            case F32:
                return n * Float.BYTES;
            default:
                return 0;
        }
    }

    static PackedRows pack(WeightMatrix w, int maxBlockElements) {
        DType type = w.dtype();
        int rows = w.rows();
        int cols = w.cols();
        int rowsPerBlock = Math.max(1, Math.min(rows, maxBlockElements / cols));
        int blocks = (rows + rowsPerBlock - 1) / rowsPerBlock;
        byte[][] quants = type == DType.Q8_0 ? new byte[blocks][] : null;
        float[][] scales = type == DType.Q8_0 ? new float[blocks][] : null;
        short[][] halves = type == DType.F16 || type == DType.BF16 ? new short[blocks][] : null;
        float[][] floats = type == DType.F32 ? new float[blocks][] : null;
        byte[] row = new byte[w.rowBytes()];
        Scratch scratch = new Scratch(); // its views are made once per chunk, not per row
        for (int b = 0; b < blocks; b++) {
            int r0 = b * rowsPerBlock;
            int n = Math.min(rowsPerBlock, rows - r0);
            switch (type) {
                case Q8_0: {
                    byte[] q = new byte[n * cols];
                    float[] s = new float[n * (cols / QK)];
                    for (int i = 0; i < n; i++) {
                        w.chunk(r0 + i).get(w.offset(r0 + i), row, 0, row.length);
                        for (int k = 0; k < cols / QK; k++) {
                            int o = k * (QK + 2);
                            s[i * (cols / QK) + k] = Float16.toFloat((short) ((row[o] & 0xFF) | (row[o + 1] << 8)));
                            System.arraycopy(row, o + 2, q, i * cols + k * QK, QK);
                        }
                    }
                    quants[b] = q;
                    scales[b] = s;
                    break;
                }
                case F16:
                case BF16: {
                    short[] h = new short[n * cols];
                    for (int i = 0; i < n; i++) {
                        scratch.shortView(w.chunk(r0 + i)).get(w.offset(r0 + i) >>> 1, h, i * cols, cols);
                    }
                    halves[b] = h;
                    break;
                }
                case F32: {
                    float[] f = new float[n * cols];
                    for (int i = 0; i < n; i++) {
                        scratch.floatView(w.chunk(r0 + i)).get(w.offset(r0 + i) >>> 2, f, i * cols, cols);
                    }
                    floats[b] = f;
                    break;
                }
                default:
                    throw new UnsupportedOperationException("no packed layout for " + type);
            }
        }
        return new PackedRows(type, rowsPerBlock, quants, scales, halves, floats);
    }
}
