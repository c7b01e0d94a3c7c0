/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.safetensors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.engine.weights.ModelFormatException;
import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.WeightMatrix;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A BF16 tensor larger than 2 GiB after 2 GiB of other data, in a sparse file larger than 4 GiB
 * (header from the writer, only a few rows written).
 */
class SafetensorsLargeFileTest {

    static final int COLS = 2048;
    static final int FILLER_ROWS = 262_144; // F32: exactly 2 GiB
    static final int BIG_ROWS = 600_000; // BF16: 2.46 GB

    @TempDir Path dir;

    private static short value(int row, int col) {
        return (short) (row * 17 - col);
    }

    @Test
    void aTensorLargerThan2GiBBeyondByte4GiBMapsInChunks() throws IOException {
        SafetensorsWriter writer =
                new SafetensorsWriter()
                        .add("filler", DType.F32, new long[] {FILLER_ROWS, COLS}, () -> {
                            throw new AssertionError("sparse: never written");
                        })
                        .add("model.embed_tokens.weight", DType.BF16, new long[] {BIG_ROWS, COLS}, () -> {
                            throw new AssertionError("sparse: never written");
                        });
        byte[] header = writer.header();
        long dataStart = 8 + header.length;
        long bigStart = dataStart + 4L * COLS * FILLER_ROWS;
        long fileSize = bigStart + 2L * COLS * BIG_ROWS;
        Path file = dir.resolve("model.safetensors");
        int[] rows = {0, 524_286, 524_287, BIG_ROWS - 1};
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw")) {
            ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, header.length);
            raf.write(len.array());
            raf.write(header);
            raf.setLength(fileSize);
            for (int r : rows) {
                ByteBuffer row = ByteBuffer.allocate(2 * COLS).order(ByteOrder.LITTLE_ENDIAN);
                for (int c = 0; c < COLS; c++) {
                    row.putShort(value(r, c));
                }
                raf.seek(bigStart + (long) r * 2 * COLS);
                raf.write(row.array());
            }
        }
        assertTrue(Files.size(file) > (4L << 30), "the file is larger than 4 GiB");

        try (SafetensorsStore store = SafetensorsStore.open(file)) {
            SafetensorsTensorInfo info = store.tensor("model.embed_tokens.weight");
            assertEquals(bigStart, info.offset());
            assertTrue(info.sizeBytes() > (2L << 30));
            WeightMatrix m = store.matrix("model.embed_tokens.weight", BIG_ROWS, COLS);
            assertEquals(2, m.chunkCount());
            for (int r : rows) {
                for (int c = 0; c < COLS; c++) {
                    assertEquals(value(r, c), m.chunk(r).getShort(m.offset(r) + 2 * c), "row " + r + " col " + c);
                }
            }
            ModelFormatException e =
                    assertThrows(ModelFormatException.class, () -> store.tensorData("model.embed_tokens.weight"));
            assertTrue(e.getMessage().contains("more than one buffer holds"), e.getMessage());
        }
    }
}
