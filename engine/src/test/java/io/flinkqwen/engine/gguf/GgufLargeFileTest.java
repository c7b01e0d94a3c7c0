/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.gguf;

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
 * A tensor larger than 2 GiB, past byte 2^32 of a file larger than 4 GiB: the header comes from
 * the writer's layout, the file is sparse (only the header and a few rows are written), so the test
 * needs no 4 GB of disk or time.
 */
class GgufLargeFileTest {

    static final int COLS = 2048;
    static final int FILLER_ROWS = 262_144; // F32: exactly 2 GiB
    static final int BIG_ROWS = 600_000; // F16: 2.46 GB

    @TempDir Path dir;

    private static short value(int row, int col) {
        return (short) (row * 31 + col);
    }

    private static ByteBuffer f16Row(int row) {
        ByteBuffer b = ByteBuffer.allocate(2 * COLS).order(ByteOrder.LITTLE_ENDIAN);
        for (int c = 0; c < COLS; c++) {
            b.putShort(value(row, c));
        }
        return b.flip();
    }

    @Test
    void aTensorLargerThan2GiBBeyondByte4GiBMapsInChunks() throws IOException {
        GgufWriter writer =
                new GgufWriter()
                        .put("general.architecture", "qwen2")
                        .addTensor("filler", DType.F32, new long[] {FILLER_ROWS, COLS}, () -> {
                            throw new AssertionError("sparse: never written");
                        })
                        .addTensor("token_embd.weight", DType.F16, new long[] {BIG_ROWS, COLS}, () -> {
                            throw new AssertionError("sparse: never written");
                        });
        GgufWriter.Layout layout = writer.layout();
        Path file = dir.resolve("big.gguf");
        long bigStart = layout.dataOffset() + layout.offsets()[1];
        int[] rows = {0, 524_286, 524_287, 524_288, BIG_ROWS - 1};
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw")) {
            raf.write(layout.header());
            raf.setLength(layout.fileSize());
            for (int r : rows) {
                raf.seek(bigStart + (long) r * 2 * COLS);
                raf.write(f16Row(r).array());
            }
            ByteBuffer last = ByteBuffer.allocate(4 * COLS).order(ByteOrder.LITTLE_ENDIAN);
            for (int c = 0; c < COLS; c++) {
                last.putFloat(c + 0.5f);
            }
            raf.seek(layout.dataOffset() + (long) (FILLER_ROWS - 1) * 4 * COLS);
            raf.write(last.array());
        }
        assertTrue(Files.size(file) > (4L << 30), "the file is larger than 4 GiB");

        try (GgufFile gguf = GgufFile.open(file)) {
            GgufTensorInfo info = gguf.tensor("token_embd.weight");
            assertEquals(bigStart, info.offset());
            assertTrue(info.offset() > (2L << 30), "placed after 2 GiB of other data");
            assertEquals(2L * COLS * BIG_ROWS, info.sizeBytes());
            assertTrue(info.sizeBytes() > (2L << 30), "the tensor is larger than 2 GiB");

            WeightMatrix m = gguf.matrix("token_embd.weight", BIG_ROWS, COLS);
            assertEquals(2, m.chunkCount());
            assertEquals(524_287, m.rowsPerChunk());
            for (int r : rows) {
                ByteBuffer chunk = m.chunk(r);
                int at = m.offset(r);
                for (int c = 0; c < COLS; c++) {
                    assertEquals(value(r, c), chunk.getShort(at + 2 * c), "row " + r + " col " + c);
                }
            }
            assertEquals(0, m.chunk(1000).getShort(m.offset(1000)), "rows never written read as zeros");

            WeightMatrix filler = gguf.matrix("filler", FILLER_ROWS, COLS);
            assertEquals(2, filler.chunkCount(), "exactly 2 GiB does not fit one buffer");
            int last = FILLER_ROWS - 1;
            assertEquals(COLS - 0.5f, filler.chunk(last).getFloat(filler.offset(last) + 4 * (COLS - 1)));

            ModelFormatException e =
                    assertThrows(ModelFormatException.class, () -> gguf.tensorData("token_embd.weight"));
            assertTrue(e.getMessage().contains("more than one buffer holds; map it with matrix()"), e.getMessage());
        }
    }
}
