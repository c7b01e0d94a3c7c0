/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.gguf;

import static io.flinkqwen.engine.gguf.GgufGoldenBytesTest.DATA_OFFSET;
import static io.flinkqwen.engine.gguf.GgufGoldenBytesTest.HEADER_END;
import static io.flinkqwen.engine.gguf.GgufGoldenBytesTest.OFFSET_OF_B_NAME;
import static io.flinkqwen.engine.gguf.GgufGoldenBytesTest.OFFSET_OF_B_OFFSET;
import static io.flinkqwen.engine.gguf.GgufGoldenBytesTest.OFFSET_OF_KEY0_LENGTH;
import static io.flinkqwen.engine.gguf.GgufGoldenBytesTest.OFFSET_OF_TYPE0;
import static io.flinkqwen.engine.gguf.GgufGoldenBytesTest.OFFSET_OF_W_NDIMS;
import static io.flinkqwen.engine.gguf.GgufGoldenBytesTest.OFFSET_OF_W_NE0;
import static io.flinkqwen.engine.gguf.GgufGoldenBytesTest.OFFSET_OF_W_NE1;
import static io.flinkqwen.engine.gguf.GgufGoldenBytesTest.OFFSET_OF_W_TYPE;
import static io.flinkqwen.engine.gguf.GgufTestData.u32;
import static io.flinkqwen.engine.gguf.GgufTestData.u64;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.engine.weights.ModelFormatException;
import io.flinkqwen.kernels.DType;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;

/** Every corruption of a GGUF file fails at open, naming the file and what is wrong where. */
class GgufValidationTest {

    @TempDir Path dir;

    private Path golden;

    @BeforeEach
    void writeGolden() throws IOException {
        golden = GgufGoldenBytesTest.writeGolden(dir);
    }

    /** Opens the golden file with {@code patch} at {@code offset}; expects the message parts. */
    private void assertPatchFails(int offset, byte[] patch, String... parts) throws IOException {
        Path bad = GgufTestData.patched(golden, dir.resolve("bad-" + offset + ".gguf"), offset, patch);
        assertOpenFails(bad, parts);
    }

    static ModelFormatException assertOpenFails(Path file, String... parts) {
        return assertFails(() -> GgufFile.open(file).close(), file, parts);
    }

    static ModelFormatException assertFails(Executable call, Path file, String... parts) {
        ModelFormatException e = assertThrows(ModelFormatException.class, call);
        assertTrue(e.getMessage().contains(file.toString()), () -> "names the file: " + e.getMessage());
        for (String part : parts) {
            assertTrue(e.getMessage().contains(part), () -> "says '" + part + "': " + e.getMessage());
        }
        return e;
    }

    @Test
    void missingFileAndFolderAreNamed() throws IOException {
        assertOpenFails(dir.resolve("nope.gguf"), "no such file");
        Path folder = Files.createDirectory(dir.resolve("folder"));
        assertOpenFails(folder, "is a folder, expected a .gguf file");
    }

    @Test
    void anEmptyFileIsTruncatedAtByteZero() throws IOException {
        assertOpenFails(Files.createFile(dir.resolve("empty.gguf")), "truncated at byte 0 while reading the magic");
    }

    @Test
    void truncatingTheHeaderAnywhereFailsWithTheByteAndTheField() throws IOException {
        for (int length = 0; length < HEADER_END; length++) {
            Path cut = GgufTestData.truncated(golden, dir.resolve("cut-" + length + ".gguf"), length);
            ModelFormatException e = assertOpenFails(cut, "truncated");
            assertTrue(
                    e.getMessage().contains("byte " + length),
                    "names where the file ends: " + e.getMessage());
            Files.delete(cut);
        }
        Map<Integer, String> fields =
                Map.ofEntries(
                        Map.entry(2, "truncated at byte 2 while reading the magic"),
                        Map.entry(6, "truncated at byte 6 while reading the version"),
                        Map.entry(10, "truncated at byte 10 while reading the tensor count"),
                        Map.entry(20, "truncated at byte 20 while reading the metadata count"),
                        Map.entry(40, "metadata count 2 at byte 16 needs at least 13 bytes per item, but only 16 bytes are left"),
                        Map.entry(50, "exceeds the 18 bytes left before the end of the file at byte 50, while reading the key of metadata entry 0 of 2"),
                        Map.entry(54, "truncated at byte 54 while reading the value type of metadata key 'general.architecture'"),
                        Map.entry(100, "truncated at byte 100 while reading the value of metadata key 'qwen2.block_count'"),
                        Map.entry(105, "tensor count 2 at byte 8 needs at least 32 bytes per item, but only 3 bytes are left"),
                        Map.entry(167, "truncated at byte 167 while reading the type of tensor 'b'"),
                        Map.entry(170, "truncated at byte 170 while reading the data offset of tensor 'b'"));
        for (Map.Entry<Integer, String> f : fields.entrySet()) {
            assertOpenFails(
                    GgufTestData.truncated(golden, dir.resolve("cut-" + f.getKey() + ".gguf"), f.getKey()),
                    f.getValue());
        }
    }

    @Test
    void truncatedTensorDataNamesTheTensorItsEndAndTheFileSize() throws IOException {
        assertOpenFails(
                GgufTestData.truncated(golden, dir.resolve("cut-200.gguf"), 200),
                "truncated: the data of tensor 'w' (F32 [2, 3], 24 bytes) spans bytes [192, 216), past the"
                        + " end of the file at byte 200");
        assertOpenFails(
                GgufTestData.truncated(golden, dir.resolve("cut-226.gguf"), 226),
                "tensor 'b' (F16 [2], 4 bytes) spans bytes [224, 228), past the end of the file at byte 226");
        // the padding after the last tensor is not data: a file cut there is complete
        try (GgufFile gguf = GgufFile.open(GgufTestData.truncated(golden, dir.resolve("cut-228.gguf"), 228))) {
            assertEquals(2, gguf.tensors().size());
        }
    }

    @Test
    void badMagicIsNotGguf() throws IOException {
        assertPatchFails(0, "GGJT".getBytes(StandardCharsets.US_ASCII), "not a GGUF file: it starts with bytes 47 47 4a 54");
    }

    @Test
    void otherVersionsAreRejected() throws IOException {
        assertPatchFails(4, u32(1), "GGUF version 1 is not supported (supported: 2, 3)");
        assertPatchFails(4, u32(4), "GGUF version 4 is not supported (supported: 2, 3)");
        assertPatchFails(4, u32(0x03000000), "big-endian GGUF file, which is not supported");
    }

    @Test
    void absurdCountsAreCaughtBeforeAllocating() throws IOException {
        assertPatchFails(8, u64(1L << 40), "tensor count 1099511627776 at byte 8 is absurd");
        assertPatchFails(8, u64(1000), "tensor count 1000 at byte 8 needs at least 32 bytes per item", "truncated file or corrupt count");
        assertPatchFails(16, u64(-1), "metadata count 18446744073709551615 at byte 16 is absurd");
        assertPatchFails(16, u64(100), "metadata count 100 at byte 16 needs at least 13 bytes per item");
    }

    @Test
    void corruptStringLengthsAreCaught() throws IOException {
        assertPatchFails(
                OFFSET_OF_KEY0_LENGTH,
                u64(1L << 40),
                "string length 1099511627776 at byte 24 exceeds the 224 bytes left",
                "while reading the key of metadata entry 0 of 2");
        assertPatchFails(
                OFFSET_OF_KEY0_LENGTH, u64(-5), "string length 18446744073709551611 at byte 24 exceeds");
    }

    @Test
    void unknownValueTypesAreNamed() throws IOException {
        assertPatchFails(
                OFFSET_OF_TYPE0, u32(13), "metadata key 'general.architecture' has unknown value type 13 at byte 52");
    }

    @Test
    void invalidUtf8InAKeyIsCaught() throws IOException {
        assertPatchFails(
                32,
                new byte[] {(byte) 0xC3, 0x28},
                "invalid UTF-8 in the string at byte 32, while reading the key of metadata entry 0 of 2");
    }

    @Test
    void duplicateTensorNamesAreRejected() throws IOException {
        assertPatchFails(
                OFFSET_OF_B_NAME, new byte[] {'w'}, "duplicate tensor name 'w' (tensor infos at bytes 102 and 143)");
    }

    @Test
    void duplicateKeysAreRejected() throws IOException {
        Path file = dir.resolve("keys.gguf");
        new GgufWriter().put("k1", "v").put("k2", "v").write(file);
        byte[] bytes = Files.readAllBytes(file);
        int at = indexOf(bytes, "k2");
        bytes[at + 1] = '1';
        Path bad = Files.write(dir.resolve("dup.gguf"), bytes);
        assertOpenFails(bad, "duplicate metadata key 'k1' (entry 1 at byte " + (at - 8) + ")");
    }

    @Test
    void badDimensionsAreRejected() throws IOException {
        assertPatchFails(OFFSET_OF_W_NDIMS, u32(0), "tensor 'w' has 0 dimensions (byte 111); GGUF allows 1 to 4");
        assertPatchFails(OFFSET_OF_W_NDIMS, u32(5), "tensor 'w' has 5 dimensions");
        assertPatchFails(OFFSET_OF_W_NE0, u64(0), "tensor 'w' has dimension ne0 = 0 (byte 115); dimensions must be positive");
        assertPatchFails(OFFSET_OF_W_NE1, u64(-1), "tensor 'w' has dimension ne1 = 18446744073709551615 (byte 123)");
        assertPatchFails(OFFSET_OF_W_NE0, u64(1L << 62), "tensor 'w' has dims [4611686018427387904, 2] whose product overflows");
    }

    @Test
    void unknownRemovedAndMisfitTypesAreRejected() throws IOException {
        assertPatchFails(OFFSET_OF_W_TYPE, u32(99), "tensor 'w' has unknown type id 99 (byte 131)");
        assertPatchFails(OFFSET_OF_W_TYPE, u32(31), "tensor 'w' has type 31 (Q4_0_4_4), which ggml has removed");
        assertPatchFails(
                OFFSET_OF_W_TYPE,
                u32(GgmlType.Q8_0.id()),
                "tensor 'w' (Q8_0, dims [3, 2] innermost first) has rows of 3 values, not a multiple of the Q8_0"
                        + " block size 32");
    }

    @Test
    void misalignedOverlappingAndOutOfFileOffsetsAreRejected() throws IOException {
        assertPatchFails(
                OFFSET_OF_B_OFFSET, u64(33), "tensor 'b' has data offset 33, not a multiple of the alignment 32 (misaligned)");
        assertPatchFails(
                OFFSET_OF_B_OFFSET, u64(0), "the data of tensors 'w' (bytes [192, 216)) and 'b' (bytes [192, 196)) overlap");
        assertPatchFails(OFFSET_OF_B_OFFSET, u64(64), "truncated: the data of tensor 'b'", "spans bytes [256, 260)");
        assertPatchFails(OFFSET_OF_B_OFFSET, u64(-32), "tensor 'b' has data offset 18446744073709551584 (byte 168)");
    }

    @Test
    void badAlignmentIsRejected() throws IOException {
        Path file = dir.resolve("align.gguf");
        new GgufWriter().putUint32("general.alignment", 32).write(file);
        int value = indexOf(Files.readAllBytes(file), "general.alignment") + "general.alignment".length() + 4;
        Path bad = GgufTestData.patched(file, dir.resolve("align3.gguf"), value, u32(3));
        assertOpenFails(bad, "metadata general.alignment = 3 is not a power of two");
        Path zero = GgufTestData.patched(file, dir.resolve("align0.gguf"), value, u32(0));
        assertOpenFails(zero, "metadata general.alignment = 0 is not a power of two");
        Path typed = GgufTestData.patched(file, dir.resolve("alignf.gguf"), value - 4, u32(GgufValueType.FLOAT32.id()));
        assertOpenFails(typed, "metadata general.alignment is FLOAT32, expected an integer");
        IllegalStateException e =
                assertThrows(
                        IllegalStateException.class,
                        () -> new GgufWriter().putUint32("general.alignment", 48).write(dir.resolve("w.gguf")));
        assertTrue(e.getMessage().contains("general.alignment = 48 is not a power of two"), e.getMessage());
    }

    @Test
    void nestedArraysBadBoolsAndCorruptArrayCountsAreRejected() throws IOException {
        Path file = dir.resolve("arrays.gguf");
        new GgufWriter().putInt32Array("arr", new int[] {1, 2}).putBool("flag", true).write(file);
        byte[] bytes = Files.readAllBytes(file);
        int elemType = indexOf(bytes, "arr") + 3 + 4;
        int count = elemType + 4;
        int flag = indexOf(bytes, "flag") + 4 + 4;
        assertOpenFails(
                GgufTestData.patched(file, dir.resolve("nested.gguf"), elemType, u32(9)),
                "metadata key 'arr' is an array of arrays (byte " + elemType + "): nested arrays are not supported");
        assertOpenFails(
                GgufTestData.patched(file, dir.resolve("elem.gguf"), elemType, u32(77)),
                "metadata array 'arr' has unknown element type 77 at byte " + elemType);
        assertOpenFails(
                GgufTestData.patched(file, dir.resolve("count.gguf"), count, u64(1L << 40)),
                "element count of metadata array 'arr' 1099511627776 at byte " + count
                        + " needs at least 4 bytes per item");
        assertOpenFails(
                GgufTestData.truncated(file, dir.resolve("cut-ints.gguf"), count + 8 + 6),
                "element count of metadata array 'arr' 2 at byte " + count + " needs at least 4 bytes per item");
        assertOpenFails(
                GgufTestData.patched(file, dir.resolve("bool.gguf"), flag, new byte[] {2}),
                "BOOL value 2 of metadata key 'flag' at byte " + flag + " is neither 0 nor 1");

        Path strings = dir.resolve("strings.gguf");
        new GgufWriter().putStringArray("s", java.util.List.of("abcdefghij", "defg")).write(strings);
        int second = indexOf(Files.readAllBytes(strings), "abcdefghij") + 10;
        assertOpenFails(
                GgufTestData.truncated(strings, dir.resolve("cut-s1.gguf"), second + 4),
                "truncated at byte " + (second + 4) + " while reading element 1 of 2 of metadata array 's'");
        assertOpenFails(
                GgufTestData.truncated(strings, dir.resolve("cut-s2.gguf"), second + 10),
                "string length 4 at byte " + second + " exceeds the 2 bytes left",
                "while reading element 1 of 2 of metadata array 's'");
    }

    @Test
    void tensorsOfTypesTheKernelsCannotReadOpenButCannotBeUsed() throws IOException {
        Path file = dir.resolve("q4k.gguf");
        new GgufWriter()
                .addTensor("blk.0.ffn_down.weight", GgmlType.Q4_K, new long[] {2, 256}, () -> ByteBuffer.allocate(288))
                .addTensor("blk.0.ffn_norm.weight", GgmlType.F64, new long[] {4}, () -> ByteBuffer.allocate(32))
                .write(file);
        try (GgufFile gguf = GgufFile.open(file)) {
            assertEquals(GgmlType.Q4_K, gguf.tensor("blk.0.ffn_down.weight").type());
            assertFails(
                    () -> gguf.matrix("blk.0.ffn_down.weight", 2, 256),
                    file,
                    "tensor blk.0.ffn_down.weight in " + file
                            + ": Q4_K is not supported yet (supported: F32, F16, BF16, Q8_0, Q4_0)");
            assertFails(
                    () -> gguf.vector("blk.0.ffn_norm.weight", 4),
                    file,
                    "tensor blk.0.ffn_norm.weight in " + file + ": F64 is not supported yet");
            assertEquals(288, gguf.tensorData("blk.0.ffn_down.weight").remaining());
        }
    }

    @Test
    void missingTensorsAndWrongShapesAreNamedWithExpectedAndActual() throws IOException {
        try (GgufFile gguf = GgufFile.open(golden)) {
            assertFails(
                    () -> gguf.matrix("blk.0.attn_q.weight", 2, 3),
                    golden,
                    "has no tensor 'blk.0.attn_q.weight' (model has 2 tensors, e.g. ");
            assertFails(() -> gguf.shape("x"), golden, "has no tensor 'x'");
            assertFails(
                    () -> gguf.matrix("w", 3, 2), golden, "tensor w in " + golden + " has shape [2, 3], expected [3, 2]");
            assertFails(() -> gguf.matrix("b", 1, 2), golden, "tensor b in " + golden + " has shape [2], expected [1, 2]");
            assertFails(() -> gguf.vector("b", 3), golden, "has shape [2], expected [3]");
            assertFails(() -> gguf.vector("w", 6), golden, "has shape [2, 3], expected [6]");
        }
    }

    @Test
    void theNearestNamesAreSuggestedForAMissingTensor() throws IOException {
        Path file = dir.resolve("names.gguf");
        GgufWriter w = new GgufWriter();
        for (String n : new String[] {"token_embd.weight", "blk.0.attn_k.weight", "blk.0.attn_q.weight", "output_norm.weight"}) {
            w.addTensor(n, DType.F32, new long[] {1}, () -> ByteBuffer.allocate(4));
        }
        w.write(file);
        try (GgufFile gguf = GgufFile.open(file)) {
            ModelFormatException e = assertFails(() -> gguf.vector("blk.0.attn_v.weight", 1), file, "model has 4 tensors");
            assertTrue(
                    e.getMessage().contains("e.g. blk.0.attn_k.weight, blk.0.attn_q.weight"), e.getMessage());
        }
    }

    @Test
    void aClosedFileRefusesNewMapsButOldOnesStayReadable() throws IOException {
        GgufFile gguf = GgufFile.open(golden);
        var m = gguf.matrix("w", 2, 3);
        gguf.close();
        assertEquals(1f, m.chunk(0).getFloat(m.offset(0)));
        assertThrows(IllegalStateException.class, () -> gguf.matrix("w", 2, 3));
        assertEquals(DATA_OFFSET, gguf.dataOffset());
    }

    static int indexOf(byte[] hay, String needle) {
        byte[] n = needle.getBytes(StandardCharsets.UTF_8);
        outer:
        for (int i = 0; i + n.length <= hay.length; i++) {
            for (int j = 0; j < n.length; j++) {
                if (hay[i + j] != n[j]) {
                    continue outer;
                }
            }
            return i;
        }
        throw new AssertionError(needle + " not found");
    }
}
