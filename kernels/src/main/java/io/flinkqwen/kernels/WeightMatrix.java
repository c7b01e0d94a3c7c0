/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.util.Objects;

/**
 * A row-major matrix of {@code rows x cols} values stored in {@link DType} format, usually a
 * read-only view of a memory-mapped model file (never copied onto the heap).
 *
 * <p>A {@link ByteBuffer} addresses at most 2 GiB, so the rows are spread over one or more
 * chunks of {@link #rowsPerChunk()} whole rows each; a row never straddles two chunks. That is
 * how tensors larger than 2 GiB (the 72B embedding is 2.5 GB in F16) are addressed on JDK 17.
 *
 * <p>Kernels locate row {@code r} as {@code chunk(r)} at byte offset {@code offset(r)}.
 */
public final class WeightMatrix {

    /** Largest chunk we map in one {@link ByteBuffer}. */
    static final long MAX_CHUNK_BYTES = Integer.MAX_VALUE - 8;

    private final DType dtype;
    private final int rows;
    private final int cols;
    private final int rowBytes;
    private final int rowsPerChunk;
    private final ByteBuffer[] chunks;
    private final PackedRows packed;

    private WeightMatrix(DType dtype, int rows, int cols, int rowsPerChunk, ByteBuffer[] chunks) {
        this(dtype, rows, cols, rowsPerChunk, chunks, null);
    }

    private WeightMatrix(DType dtype, int rows, int cols, int rowsPerChunk, ByteBuffer[] chunks, PackedRows packed) {
        this.dtype = Objects.requireNonNull(dtype, "dtype");
        if (rows <= 0 || cols <= 0) {
            throw new IllegalArgumentException("matrix must be non-empty, got " + rows + "x" + cols);
        }
        this.rows = rows;
        this.cols = cols;
        this.rowBytes = Math.toIntExact(dtype.rowBytes(cols));
        this.rowsPerChunk = rowsPerChunk;
        this.chunks = chunks;
        for (int i = 0; i < chunks.length; i++) {
            int rowsHere = Math.min(rowsPerChunk, rows - i * rowsPerChunk);
            if (chunks[i].capacity() < (long) rowsHere * rowBytes) {
                throw new IllegalArgumentException(
                        String.format(
                                "chunk %d holds %d bytes, %d rows of %d bytes need %d",
                                i, chunks[i].capacity(), rowsHere, rowBytes, (long) rowsHere * rowBytes));
            }
            chunks[i].order(ByteOrder.LITTLE_ENDIAN);
        }
        this.packed = packed;
    }

    /** A matrix over one buffer that holds all rows from position 0 (tests, small tensors). */
    public static WeightMatrix of(DType dtype, int rows, int cols, ByteBuffer data) {
        return new WeightMatrix(dtype, rows, cols, rows, new ByteBuffer[] {data.slice()});
    }

    /** A matrix over heap bytes (tests and generated data only; models are mapped). */
    public static WeightMatrix onHeap(DType dtype, int rows, int cols, byte[] data) {
        return of(dtype, rows, cols, ByteBuffer.wrap(data));
    }

    /**
     * A matrix over explicit chunks of {@code rowsPerChunk} rows each (the last may hold fewer),
     * each from its position 0. For tests of multi-chunk addressing without 2 GiB files.
     */
    static WeightMatrix ofChunks(DType dtype, int rows, int cols, int rowsPerChunk, ByteBuffer... chunks) {
        if (rowsPerChunk <= 0 || (long) chunks.length * rowsPerChunk < rows
                || (long) (chunks.length - 1) * rowsPerChunk >= rows) {
            throw new IllegalArgumentException(
                    chunks.length + " chunks of " + rowsPerChunk + " rows do not fit " + rows + " rows");
        }
        ByteBuffer[] slices = new ByteBuffer[chunks.length];
        for (int i = 0; i < chunks.length; i++) {
            slices[i] = chunks[i].slice();
        }
        return new WeightMatrix(dtype, rows, cols, rowsPerChunk, slices);
    }

    /**
     * Maps {@code rows x cols} values of {@code dtype} starting at byte {@code offset} of the
     * file, read-only, in as many chunks as needed.
     */
    public static WeightMatrix map(FileChannel channel, long offset, DType dtype, int rows, int cols)
            throws IOException {
        long rowBytes = dtype.rowBytes(cols);
        if (rowBytes > MAX_CHUNK_BYTES) {
            throw new IllegalArgumentException("a single row of " + rowBytes + " bytes is too large");
        }
        int rowsPerChunk = (int) Math.min(rows, MAX_CHUNK_BYTES / rowBytes);
        int nChunks = (rows + rowsPerChunk - 1) / rowsPerChunk;
        ByteBuffer[] chunks = new ByteBuffer[nChunks];
        for (int i = 0; i < nChunks; i++) {
            int rowsHere = Math.min(rowsPerChunk, rows - i * rowsPerChunk);
            chunks[i] =
                    channel.map(
                            FileChannel.MapMode.READ_ONLY,
                            offset + (long) i * rowsPerChunk * rowBytes,
                            (long) rowsHere * rowBytes);
        }
        return new WeightMatrix(dtype, rows, cols, rowsPerChunk, chunks);
    }

    /**
     * This matrix with its rows also copied onto the heap in the layout the vector kernels read
     * fastest ({@link PackedRows}: Q8_0 weights and scales apart, scales as floats; F16, BF16
     * and F32 as stored), which {@link MatMul} then reads instead of the buffers. Decode is
     * bound by the kernels' instruction count on the CPUs we measured, not by memory: reading
     * aligned blocks straight from heap arrays skips the per-call copy out of the mapped buffer
     * and the 2-byte misalignment of every Q8_0 block (about 1.4x for a Q8_0 mat-vec, see
     * MatMulBench). Costs {@link #packedBytes} of heap, once, at load.
     *
     * <p>The buffers stay referenced for the scalar twins, so both layouts can be compared.
     * Returns this matrix if it is already packed or its type has no packed layout (Q4_0).
     */
    public WeightMatrix packOnHeap() {
        return packOnHeap(PackedRows.MAX_BLOCK_ELEMENTS);
    }

    /** {@link #packOnHeap()} with at most {@code maxBlockElements} per heap array (tests). */
    WeightMatrix packOnHeap(int maxBlockElements) {
        if (packed != null || !PackedRows.supports(dtype)) {
            return this;
        }
        return new WeightMatrix(dtype, rows, cols, rowsPerChunk, chunks, PackedRows.pack(this, maxBlockElements));
    }

    /** Whether {@link #packOnHeap} made a heap copy the kernels read. */
    public boolean isPacked() {
        return packed != null;
    }

    /** Heap bytes {@link #packOnHeap} takes for this matrix (0 if its type stays mapped). */
    public long packedBytes() {
        return PackedRows.bytes(dtype, rows, cols);
    }

    PackedRows packed() {
        return packed;
    }

    public DType dtype() {
        return dtype;
    }

    public int rows() {
        return rows;
    }

    public int cols() {
        return cols;
    }

    /** Bytes of one row. */
    public int rowBytes() {
        return rowBytes;
    }

    public int rowsPerChunk() {
        return rowsPerChunk;
    }

    public int chunkCount() {
        return chunks.length;
    }

    /** Total bytes of the matrix. */
    public long sizeBytes() {
        return (long) rows * rowBytes;
    }

    /** The buffer that holds row {@code row}; absolute reads only, never change its position. */
    public ByteBuffer chunk(int row) {
        return chunks[row / rowsPerChunk];
    }

    /** Byte offset of row {@code row} inside {@link #chunk(int)}. */
    public int offset(int row) {
        return (row % rowsPerChunk) * rowBytes;
    }

    @Override
    public String toString() {
        return dtype + "[" + rows + ", " + cols + "]" + (packed != null ? " packed" : "");
    }
}
