/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels;

/**
 * Storage formats of weight rows, in the byte layout of GGML (which safetensors shares for the
 * float formats). Every format is little-endian; block formats pack {@link #blockSize()} values
 * into {@link #blockBytes()} bytes and a row is a whole number of blocks.
 *
 * <ul>
 *   <li>{@code Q8_0}: blocks of 32 values = one F16 scale {@code d} + 32 signed bytes {@code q};
 *       value = {@code d * q}.
 *   <li>{@code Q4_0}: blocks of 32 values = one F16 scale {@code d} + 16 bytes of nibbles; byte
 *       {@code j} holds value {@code j} in its low nibble and value {@code j + 16} in its high
 *       nibble; value = {@code d * (nibble - 8)}.
 * </ul>
 */
public enum DType {
    F32(1, 4),
    F16(1, 2),
    BF16(1, 2),
    Q8_0(32, 34),
    Q4_0(32, 18);

    private final int blockSize;
    private final int blockBytes;

    DType(int blockSize, int blockBytes) {
        this.blockSize = blockSize;
        this.blockBytes = blockBytes;
    }

    /** Values per block (1 for the float formats). */
    public int blockSize() {
        return blockSize;
    }

    /** Bytes per block. */
    public int blockBytes() {
        return blockBytes;
    }

    public boolean isQuantized() {
        return blockSize > 1;
    }

    /**
     * Bytes taken by a row of {@code cols} values.
     *
     * @throws IllegalArgumentException if {@code cols} is not a multiple of the block size
     */
    public long rowBytes(long cols) {
        if (cols % blockSize != 0) {
            throw new IllegalArgumentException(
                    String.format(
                            "%s rows must hold a multiple of %d values, got %d",
                            this, blockSize, cols));
        }
        return cols / blockSize * blockBytes;
    }
}
