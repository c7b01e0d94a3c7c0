/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.gguf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.WeightMatrix;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HexFormat;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A tiny GGUF file laid out byte by byte from the spec (ggml/docs/gguf.md), independently of our
 * writer: the writer must produce exactly these bytes and the reader must read them. The byte
 * offsets in the comments are used by {@link GgufValidationTest} to corrupt single fields.
 */
class GgufGoldenBytesTest {

    @TempDir Path dir;

    /**
     * metadata: general.architecture = "qwen2" (STRING), qwen2.block_count = 1 (UINT32);
     * tensors: "w" F32 row-major [2, 3] = 1..6 and "b" F16 [2] = {1, -2}.
     */
    static byte[] golden() {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        hex(out, "47 47 55 46"); //                                   0: magic "GGUF"
        hex(out, "03 00 00 00"); //                                   4: version 3
        hex(out, "02 00 00 00 00 00 00 00"); //                       8: tensor_count 2
        hex(out, "02 00 00 00 00 00 00 00"); //                      16: metadata_kv_count 2
        hex(out, "14 00 00 00 00 00 00 00"); //                      24: key length 20
        ascii(out, "general.architecture"); //                       32: key
        hex(out, "08 00 00 00"); //                                  52: type STRING
        hex(out, "05 00 00 00 00 00 00 00"); //                      56: value length 5
        ascii(out, "qwen2"); //                                      64: value
        hex(out, "11 00 00 00 00 00 00 00"); //                      69: key length 17
        ascii(out, "qwen2.block_count"); //                          77: key
        hex(out, "04 00 00 00"); //                                  94: type UINT32
        hex(out, "01 00 00 00"); //                                  98: value 1
        hex(out, "01 00 00 00 00 00 00 00"); //                     102: name length 1
        ascii(out, "w"); //                                         110: name
        hex(out, "02 00 00 00"); //                                 111: n_dims 2
        hex(out, "03 00 00 00 00 00 00 00"); //                     115: ne0 = 3 (columns)
        hex(out, "02 00 00 00 00 00 00 00"); //                     123: ne1 = 2 (rows)
        hex(out, "00 00 00 00"); //                                 131: type F32
        hex(out, "00 00 00 00 00 00 00 00"); //                     135: offset 0
        hex(out, "01 00 00 00 00 00 00 00"); //                     143: name length 1
        ascii(out, "b"); //                                         151: name
        hex(out, "01 00 00 00"); //                                 152: n_dims 1
        hex(out, "02 00 00 00 00 00 00 00"); //                     156: ne0 = 2
        hex(out, "01 00 00 00"); //                                 164: type F16
        hex(out, "20 00 00 00 00 00 00 00"); //                     168: offset 32 (24 bytes of w, padded)
        hex(out, "00".repeat(16)); //                               176: padding to 192 (alignment 32)
        hex(out, "00 00 80 3f 00 00 00 40 00 00 40 40"); //         192: w row 0 = 1f, 2f, 3f
        hex(out, "00 00 80 40 00 00 a0 40 00 00 c0 40"); //         204: w row 1 = 4f, 5f, 6f
        hex(out, "00".repeat(8)); //                                216: padding to 224
        hex(out, "00 3c 00 c0"); //                                 224: b = 1.0, -2.0 in F16
        hex(out, "00".repeat(28)); //                               228: padding to 256
        return out.toByteArray();
    }

    static final int DATA_OFFSET = 192;
    static final int OFFSET_OF_KEY0_LENGTH = 24;
    static final int OFFSET_OF_TYPE0 = 52;
    static final int OFFSET_OF_KEY1_TYPE = 94;
    static final int OFFSET_OF_W_NAME = 110;
    static final int OFFSET_OF_W_NDIMS = 111;
    static final int OFFSET_OF_W_NE0 = 115;
    static final int OFFSET_OF_W_NE1 = 123;
    static final int OFFSET_OF_W_TYPE = 131;
    static final int OFFSET_OF_B_NAME = 151;
    static final int OFFSET_OF_B_TYPE = 164;
    static final int OFFSET_OF_B_OFFSET = 168;
    static final int HEADER_END = 176;

    private static void hex(ByteArrayOutputStream out, String hex) {
        out.writeBytes(HexFormat.of().parseHex(hex.replace(" ", "")));
    }

    private static void ascii(ByteArrayOutputStream out, String s) {
        for (char c : s.toCharArray()) {
            out.write(c);
        }
    }

    static Path writeGolden(Path dir) throws IOException {
        return Files.write(dir.resolve("golden.gguf"), golden());
    }

    @Test
    void goldenLayoutIsWhatTheSpecSays() {
        byte[] g = golden();
        assertEquals(256, g.length);
        assertEquals(HEADER_END, OFFSET_OF_B_OFFSET + 8);
        assertEquals(DATA_OFFSET, (HEADER_END + 31) / 32 * 32);
    }

    @Test
    void writerProducesTheGoldenBytes() throws IOException {
        ByteBuffer w = ByteBuffer.allocate(24).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 1; i <= 6; i++) {
            w.putFloat(i);
        }
        w.flip();
        ByteBuffer b = ByteBuffer.wrap(new byte[] {0x00, 0x3c, 0x00, (byte) 0xc0});
        Path file = dir.resolve("written.gguf");
        new GgufWriter()
                .put("general.architecture", "qwen2")
                .putUint32("qwen2.block_count", 1)
                .addTensor("w", DType.F32, new long[] {2, 3}, () -> w)
                .addTensor("b", DType.F16, new long[] {2}, () -> b)
                .write(file);
        assertEquals(HexFormat.of().formatHex(golden()), HexFormat.of().formatHex(Files.readAllBytes(file)));
    }

    @Test
    void readerReadsTheGoldenBytes() throws IOException {
        try (GgufFile gguf = GgufFile.open(writeGolden(dir))) {
            assertEquals(3, gguf.version());
            assertEquals(32, gguf.alignment());
            assertEquals(DATA_OFFSET, gguf.dataOffset());
            assertEquals("qwen2", gguf.getString("general.architecture"));
            assertEquals(GgufValueType.UINT32, gguf.type("qwen2.block_count").orElseThrow());
            assertEquals(1, gguf.getInt("qwen2.block_count"));

            GgufTensorInfo w = gguf.tensor("w");
            assertArrayEquals(new long[] {2, 3}, w.shape(), "dims innermost first, reversed");
            assertEquals(GgmlType.F32, w.type());
            assertEquals(DATA_OFFSET, w.offset());
            assertEquals(24, w.sizeBytes());
            GgufTensorInfo b = gguf.tensor("b");
            assertArrayEquals(new long[] {2}, b.shape());
            assertEquals(GgmlType.F16, b.type());
            assertEquals(DATA_OFFSET + 32, b.offset());
            assertEquals(4, b.sizeBytes());

            WeightMatrix m = gguf.matrix("w", 2, 3);
            assertEquals(4f, m.chunk(1).getFloat(m.offset(1)), "row 1 starts with the 4th value");
            assertEquals(6f, m.chunk(1).getFloat(m.offset(1) + 8));
            assertArrayEquals(new float[] {1f, -2f}, gguf.vector("b", 2));
        }
    }
}
