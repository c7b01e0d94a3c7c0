/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.gguf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.engine.weights.ModelFormatException;
import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.WeightMatrix;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class GgufRoundTripTest {

    /** Qwen2's vocabulary size: the tokenizer arrays of a real model are this long. */
    static final int VOCAB = 151_646;

    @TempDir Path dir;

    private static List<String> vocabulary() {
        List<String> tokens = new ArrayList<>(VOCAB);
        String[] unusual = {"", "Ġthe", "ĊĊ", "<|im_start|>", "é", "世界", "🙂", "a\u0000b", "\"quoted\"\n"};
        for (int i = 0; i < VOCAB; i++) {
            tokens.add(i < unusual.length ? unusual[i] : "tok" + i + (i % 7 == 0 ? "ü" : ""));
        }
        return tokens;
    }

    private static GgufWriter everyValueType(List<String> vocab) {
        int[] tokenTypes = new int[VOCAB];
        float[] scores = new float[VOCAB];
        for (int i = 0; i < VOCAB; i++) {
            tokenTypes[i] = i % 3 == 0 ? 3 : 1;
            scores[i] = -i;
        }
        return new GgufWriter()
                .put("general.architecture", "qwen2")
                .put("general.name", "Größe 世界 🙂")
                .put("empty.string", "")
                .putUint8("t.u8", 255)
                .putInt8("t.i8", -128)
                .putUint16("t.u16", 65535)
                .putInt16("t.i16", -32768)
                .putUint32("t.u32", 4_294_967_295L)
                .putInt32("t.i32", Integer.MIN_VALUE)
                .putUint64("t.u64", -1L) // 2^64 - 1
                .putUint64("t.u64.small", 42)
                .putInt64("t.i64", Long.MIN_VALUE)
                .putFloat32("t.f32", 1e-6f)
                .putFloat64("t.f64", Math.PI)
                .putBool("t.true", true)
                .putBool("t.false", false)
                .putArray("a.u8", GgufValueType.UINT8, new byte[] {0, 1, (byte) 255})
                .putArray("a.i8", GgufValueType.INT8, new byte[] {-128, 0, 127})
                .putArray("a.u16", GgufValueType.UINT16, new short[] {0, (short) 65535})
                .putArray("a.i16", GgufValueType.INT16, new short[] {-32768, 32767})
                .putArray("a.u32", GgufValueType.UINT32, new int[] {0, -1})
                .putInt32Array("a.i32", new int[] {Integer.MIN_VALUE, 0, Integer.MAX_VALUE})
                .putArray("a.u64", GgufValueType.UINT64, new long[] {0, 7})
                .putArray("a.i64", GgufValueType.INT64, new long[] {Long.MIN_VALUE, Long.MAX_VALUE})
                .putFloat32Array("a.f32", new float[] {Float.NaN, -0f, Float.POSITIVE_INFINITY, 1.5f})
                .putArray("a.f64", GgufValueType.FLOAT64, new double[] {Double.MIN_VALUE, -2.5})
                .putArray("a.bool", GgufValueType.BOOL, new boolean[] {true, false, true})
                .putStringArray("a.empty", List.of())
                .putStringArray("tokenizer.ggml.tokens", vocab)
                .putInt32Array("tokenizer.ggml.token_type", tokenTypes)
                .putFloat32Array("tokenizer.ggml.scores", scores);
    }

    @Test
    void metadataOfEveryValueTypeRoundTrips() throws IOException {
        List<String> vocab = vocabulary();
        Path file = dir.resolve("meta.gguf");
        everyValueType(vocab).write(file);

        try (GgufFile gguf = GgufFile.open(file)) {
            assertEquals(3, gguf.version());
            assertEquals(0, gguf.tensors().size());
            Map<String, Object> m = gguf.metadata();
            assertEquals(
                    List.of(
                            "general.architecture", "general.name", "empty.string", "t.u8", "t.i8",
                            "t.u16", "t.i16", "t.u32", "t.i32", "t.u64", "t.u64.small", "t.i64", "t.f32",
                            "t.f64", "t.true", "t.false", "a.u8", "a.i8", "a.u16", "a.i16", "a.u32",
                            "a.i32", "a.u64", "a.i64", "a.f32", "a.f64", "a.bool", "a.empty",
                            "tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.scores"),
                    new ArrayList<>(m.keySet()),
                    "insertion order is kept");

            // scalars, as GgufValueType documents their Java types
            assertEquals("qwen2", m.get("general.architecture"));
            assertEquals("Größe 世界 🙂", gguf.getString("general.name"));
            assertEquals("", gguf.getString("empty.string"));
            assertEquals(255L, m.get("t.u8"));
            assertEquals(-128L, m.get("t.i8"));
            assertEquals(65535L, m.get("t.u16"));
            assertEquals(-32768L, m.get("t.i16"));
            assertEquals(4_294_967_295L, m.get("t.u32"));
            assertEquals((long) Integer.MIN_VALUE, m.get("t.i32"));
            assertEquals(-1L, m.get("t.u64"), "UINT64 keeps its bits");
            assertEquals(Long.MIN_VALUE, m.get("t.i64"));
            assertEquals(1e-6f, m.get("t.f32"));
            assertEquals(Math.PI, m.get("t.f64"));
            assertEquals(true, m.get("t.true"));
            assertEquals(false, m.get("t.false"));

            Map<String, GgufValueType> expectedTypes = new LinkedHashMap<>();
            expectedTypes.put("t.u8", GgufValueType.UINT8);
            expectedTypes.put("t.i8", GgufValueType.INT8);
            expectedTypes.put("t.u16", GgufValueType.UINT16);
            expectedTypes.put("t.i16", GgufValueType.INT16);
            expectedTypes.put("t.u32", GgufValueType.UINT32);
            expectedTypes.put("t.i32", GgufValueType.INT32);
            expectedTypes.put("t.u64", GgufValueType.UINT64);
            expectedTypes.put("t.i64", GgufValueType.INT64);
            expectedTypes.put("t.f32", GgufValueType.FLOAT32);
            expectedTypes.put("t.f64", GgufValueType.FLOAT64);
            expectedTypes.put("t.true", GgufValueType.BOOL);
            expectedTypes.put("general.name", GgufValueType.STRING);
            expectedTypes.put("a.u8", GgufValueType.ARRAY);
            expectedTypes.forEach((k, t) -> assertEquals(t, gguf.type(k).orElseThrow(), k));
            assertEquals(GgufValueType.UINT8, gguf.elementType("a.u8").orElseThrow());
            assertEquals(GgufValueType.STRING, gguf.elementType("tokenizer.ggml.tokens").orElseThrow());
            assertTrue(gguf.elementType("t.u8").isEmpty());
            assertTrue(gguf.type("no.such.key").isEmpty());

            // arrays: raw bits at the file's width; the getters convert exactly
            assertArrayEquals(new byte[] {0, 1, (byte) 255}, (byte[]) m.get("a.u8"));
            assertArrayEquals(new int[] {0, 1, 255}, gguf.getIntArray("a.u8"));
            assertArrayEquals(new int[] {-128, 0, 127}, gguf.getIntArray("a.i8"));
            assertArrayEquals(new int[] {0, 65535}, gguf.getIntArray("a.u16"));
            assertArrayEquals(new int[] {-32768, 32767}, gguf.getIntArray("a.i16"));
            assertArrayEquals(new long[] {0, 4_294_967_295L}, gguf.getLongArray("a.u32"));
            assertArrayEquals(
                    new int[] {Integer.MIN_VALUE, 0, Integer.MAX_VALUE}, gguf.getIntArray("a.i32"));
            assertArrayEquals(new int[] {0, 7}, gguf.getIntArray("a.u64"));
            assertArrayEquals(new long[] {Long.MIN_VALUE, Long.MAX_VALUE}, gguf.getLongArray("a.i64"));
            float[] f = gguf.getFloatArray("a.f32");
            assertTrue(Float.isNaN(f[0]));
            assertEquals(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(f[1]));
            assertEquals(Float.POSITIVE_INFINITY, f[2]);
            assertEquals(1.5f, f[3]);
            assertArrayEquals(new double[] {Double.MIN_VALUE, -2.5}, (double[]) m.get("a.f64"));
            assertArrayEquals(new boolean[] {true, false, true}, (boolean[]) m.get("a.bool"));
            assertEquals(List.of(), gguf.getStringArray("a.empty"));

            List<String> tokens = gguf.getStringArray("tokenizer.ggml.tokens");
            assertEquals(VOCAB, tokens.size());
            assertEquals(vocab, tokens);
            assertThrows(UnsupportedOperationException.class, () -> tokens.set(0, "x"));
            int[] types = gguf.getIntArray("tokenizer.ggml.token_type");
            assertEquals(3, types[0]);
            assertEquals(1, types[VOCAB - 1]);
            assertEquals(-(VOCAB - 1), gguf.getFloatArray("tokenizer.ggml.scores")[VOCAB - 1]);
        }
    }

    @Test
    void typedGettersConvertCompatibleTypesAndNameTheKeyOtherwise() throws IOException {
        Path file = dir.resolve("getters.gguf");
        everyValueType(List.of("a", "b")).write(file);
        try (GgufFile gguf = GgufFile.open(file)) {
            assertEquals(255, gguf.getInt("t.u8"));
            assertEquals(-32768, gguf.getInt("t.i16"));
            assertEquals(4_294_967_295L, gguf.getLong("t.u32"));
            assertEquals(42, gguf.getInt("t.u64.small"));
            assertEquals(1e-6f, gguf.getFloat("t.f32"));
            assertEquals((double) 1e-6f, gguf.getDouble("t.f32"));
            assertEquals(255.0, gguf.getDouble("t.u8"));
            assertEquals((float) Math.PI, gguf.getFloat("t.f64"));
            assertTrue(gguf.getBool("t.true"));
            assertEquals(7, gguf.getInt("no.such.key", 7));
            assertEquals("d", gguf.getString("no.such.key", "d"));
            assertEquals(0.5, gguf.getDouble("no.such.key", 0.5));
            assertTrue(gguf.has("t.u8"));
            assertFalse(gguf.has("no.such.key"));

            assertMessage(
                    () -> gguf.getInt("t.u32"),
                    file,
                    "metadata key 't.u32' = 4294967295 does not fit a 32-bit integer");
            assertMessage(
                    () -> gguf.getLong("t.u64"),
                    file,
                    "metadata key 't.u64' = 18446744073709551615 does not fit a signed 64-bit integer");
            assertMessage(() -> gguf.getLong("no.such.key"), file, "metadata key 'no.such.key' is missing");
            assertMessage(() -> gguf.getString("t.u8"), file, "metadata key 't.u8' is UINT8, expected a STRING");
            assertMessage(() -> gguf.getLong("t.f32"), file, "metadata key 't.f32' is FLOAT32, expected an integer");
            assertMessage(() -> gguf.getBool("t.i8"), file, "metadata key 't.i8' is INT8, expected a BOOL");
            assertMessage(() -> gguf.getDouble("general.name"), file, "'general.name' is STRING, expected a number");
            assertMessage(
                    () -> gguf.getStringArray("a.i32"),
                    file,
                    "metadata key 'a.i32' is an ARRAY of INT32, expected an ARRAY of STRING");
            assertMessage(
                    () -> gguf.getIntArray("a.u32"),
                    file,
                    "element 1 of metadata array 'a.u32' = 4294967295 does not fit a 32-bit integer");
            assertMessage(() -> gguf.getFloatArray("a.i32"), file, "'a.i32' is an ARRAY of INT32");
            assertMessage(() -> gguf.getIntArray("t.i32"), file, "'t.i32' is INT32, expected an ARRAY");
        }
    }

    static void assertMessage(org.junit.jupiter.api.function.Executable call, Path file, String part) {
        ModelFormatException e = assertThrows(ModelFormatException.class, call);
        assertTrue(e.getMessage().contains(file.toString()), () -> "names the file: " + e.getMessage());
        assertTrue(e.getMessage().contains(part), () -> "says '" + part + "': " + e.getMessage());
    }

    /** One tensor per DType in 1-D and 2-D, plus a 3-D one, with their bytes and values. */
    private static final class Model {
        final Map<String, DType> dtypes = new LinkedHashMap<>();
        final Map<String, long[]> shapes = new LinkedHashMap<>();
        final Map<String, GgufTestData.Data> data = new LinkedHashMap<>();

        Model(long seed) {
            Random rnd = new Random(seed);
            for (DType d : DType.values()) {
                int cols = d.isQuantized() ? 64 : 7;
                add(rnd, "blk.0." + d.name().toLowerCase() + ".weight", d, new long[] {3, cols});
                add(rnd, "blk.0." + d.name().toLowerCase() + ".bias", d, new long[] {d.isQuantized() ? 32 : 5});
            }
            add(rnd, "ffn_gate_exps.weight", DType.F32, new long[] {2, 3, 4});
        }

        private void add(Random rnd, String name, DType dtype, long[] shape) {
            long n = 1;
            for (long s : shape) {
                n *= s;
            }
            dtypes.put(name, dtype);
            shapes.put(name, shape);
            data.put(name, GgufTestData.random(dtype, rnd, (int) n));
        }

        GgufWriter writer(AtomicInteger calls) {
            GgufWriter w = new GgufWriter().put("general.architecture", "qwen2");
            for (String name : dtypes.keySet()) {
                w.addTensor(
                        name,
                        dtypes.get(name),
                        shapes.get(name),
                        () -> {
                            calls.incrementAndGet();
                            return data.get(name).buffer();
                        });
            }
            return w;
        }
    }

    @Test
    void tensorsOfEveryDTypeRoundTripByteForByte() throws IOException {
        Model model = new Model(1);
        AtomicInteger calls = new AtomicInteger();
        GgufWriter writer = model.writer(calls);
        assertEquals(0, calls.get(), "data is produced at write time, not when added");
        Path file = dir.resolve("tensors.gguf");
        writer.write(file);
        assertEquals(model.dtypes.size(), calls.get(), "each supplier is called once");

        try (GgufFile gguf = GgufFile.open(file)) {
            assertEquals(
                    new ArrayList<>(model.dtypes.keySet()),
                    gguf.tensors().stream().map(GgufTensorInfo::name).collect(Collectors.toList()));
            assertEquals(model.dtypes.keySet(), gguf.tensorNames());
            assertEquals(0, gguf.dataOffset() % 32);
            for (String name : model.dtypes.keySet()) {
                GgufTensorInfo info = gguf.tensor(name);
                DType dtype = model.dtypes.get(name);
                long[] shape = model.shapes.get(name);
                byte[] bytes = model.data.get(name).bytes();
                assertArrayEquals(shape, gguf.shape(name), name);
                assertArrayEquals(shape, info.shape(), name);
                assertEquals(GgmlType.of(dtype), info.type(), name);
                assertEquals(dtype, info.type().dtype().orElseThrow());
                assertEquals(bytes.length, info.sizeBytes(), name);
                assertEquals(0, info.offset() % 32, name + " is aligned");
                assertArrayEquals(bytes, GgufTestData.bytes(gguf.tensorData(name)), name);
                if (shape.length == 2) {
                    WeightMatrix m = gguf.matrix(name, (int) shape[0], (int) shape[1]);
                    assertEquals(dtype, m.dtype());
                    assertEquals(1, m.chunkCount());
                    byte[] mapped = new byte[(int) m.sizeBytes()];
                    for (int r = 0; r < m.rows(); r++) {
                        m.chunk(r).get(m.offset(r), mapped, r * m.rowBytes(), m.rowBytes());
                    }
                    assertArrayEquals(bytes, mapped, name);
                } else if (shape.length == 1) {
                    float[] v = gguf.vector(name, (int) shape[0]);
                    assertArrayEquals(model.data.get(name).values(), v, 0f, name);
                }
            }
        }
    }

    @Test
    void aCustomAlignmentIsHonouredAndWritten() throws IOException {
        Model model = new Model(2);
        Path file = dir.resolve("aligned.gguf");
        model.writer(new AtomicInteger()).putUint32("general.alignment", 256).write(file);
        try (GgufFile gguf = GgufFile.open(file)) {
            assertEquals(256, gguf.alignment());
            assertEquals(0, gguf.dataOffset() % 256);
            for (GgufTensorInfo t : gguf.tensors()) {
                assertEquals(0, t.offset() % 256, t.name());
                assertArrayEquals(model.data.get(t.name()).bytes(), GgufTestData.bytes(gguf.tensorData(t.name())));
            }
            assertEquals(0, Files.size(file) % 256, "the last tensor is padded too, as llama.cpp writes");
        }
    }

    @Test
    void tensorDataIsContiguousInInsertionOrderAsLlamaCppRequires() throws IOException {
        Model model = new Model(3);
        Path file = dir.resolve("contiguous.gguf");
        model.writer(new AtomicInteger()).write(file);
        try (GgufFile gguf = GgufFile.open(file)) {
            long expected = gguf.dataOffset();
            for (GgufTensorInfo t : gguf.tensors()) {
                assertEquals(expected, t.offset(), t.name());
                expected = GgufFile.align(t.offset() + t.sizeBytes(), 32);
            }
            assertEquals(expected, Files.size(file));
        }
    }

    @Test
    void copyingMetadataAndTensorsGivesTheSameBytes() throws IOException {
        Path a = dir.resolve("a.gguf");
        Model model = new Model(4);
        everyValueType(List.of("x", "y", "z")).write(dir.resolve("meta.gguf"));
        GgufWriter original;
        try (GgufFile meta = GgufFile.open(dir.resolve("meta.gguf"))) {
            original = new GgufWriter().putAll(meta);
            for (String name : model.dtypes.keySet()) {
                original.addTensor(name, model.dtypes.get(name), model.shapes.get(name), model.data.get(name)::buffer);
            }
        }
        original.write(a);
        Path b = dir.resolve("b.gguf");
        try (GgufFile src = GgufFile.open(a)) {
            GgufWriter copy = new GgufWriter().putAll(src);
            for (GgufTensorInfo t : src.tensors()) {
                copy.addTensor(t.name(), t.type(), t.shape(), () -> src.tensorData(t.name()));
            }
            copy.write(b);
        }
        assertArrayEquals(Files.readAllBytes(a), Files.readAllBytes(b));
    }

    @Test
    void version2FilesAreRead() throws IOException {
        Path file = dir.resolve("v3.gguf");
        new Model(5).writer(new AtomicInteger()).write(file);
        Path v2 = GgufTestData.patched(file, dir.resolve("v2.gguf"), 4, GgufTestData.u32(2));
        try (GgufFile gguf = GgufFile.open(v2)) {
            assertEquals(2, gguf.version());
            assertEquals(11, gguf.tensors().size());
        }
    }

    @Test
    void writeReplacesAnExistingFileAndLeavesNoTemporaryFiles() throws IOException {
        Path file = dir.resolve("model.gguf");
        new GgufWriter().put("general.name", "first").write(file);
        new GgufWriter().put("general.name", "second").write(file);
        try (GgufFile gguf = GgufFile.open(file)) {
            assertEquals("second", gguf.getString("general.name"));
        }
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(List.of(file), files.collect(Collectors.toList()));
        }
    }

    @Test
    void aSupplierWithTheWrongByteCountFailsAndLeavesNothingBehind() throws IOException {
        Path file = dir.resolve("bad.gguf");
        GgufWriter w =
                new GgufWriter()
                        .addTensor("ok", DType.F32, new long[] {2}, () -> ByteBuffer.allocate(8))
                        .addTensor("short", DType.Q8_0, new long[] {2, 32}, () -> ByteBuffer.allocate(67));
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> w.write(file));
        assertTrue(
                e.getMessage().contains("tensor 'short' (Q8_0 [2, 32]) needs 68 bytes, its data supplier gave 67 bytes"),
                e.getMessage());
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(0, files.count(), "no target, no temporary file");
        }
    }

    @Test
    void writerRejectsTensorsLlamaCppCouldNotRead() {
        GgufWriter w = new GgufWriter().addTensor("a", DType.F32, new long[] {1}, () -> ByteBuffer.allocate(4));
        assertArgument(
                () -> w.addTensor("a", DType.F32, new long[] {1}, () -> null), "tensor 'a' was already added");
        assertArgument(
                () -> w.addTensor("b", DType.Q8_0, new long[] {2, 48}, null), "data");
        assertArgument(
                () -> w.addTensor("b", DType.Q8_0, new long[] {2, 48}, () -> null),
                "Q8_0 rows must hold a multiple of 32 values, got 48");
        assertArgument(
                () -> w.addTensor("b", DType.F32, new long[] {2, 0}, () -> null), "dimensions must be positive");
        assertArgument(
                () -> w.addTensor("b", DType.F32, new long[] {1, 1, 1, 1, 1}, () -> null),
                "GGUF holds 1 to 4 dimensions");
        assertArgument(
                () -> w.addTensor("x".repeat(64), DType.F32, new long[] {1}, () -> null),
                "has 64 bytes; llama.cpp reads 1 to 63");
        assertArgument(() -> w.putUint8("k", 256), "256 is outside [0, 255]");
        assertArgument(() -> w.putUint32("k", -1), "-1 is outside [0, 4294967295]");
        assertArgument(() -> w.putArray("k", GgufValueType.UINT32, new long[1]), "needs a int[]");
        assertArgument(() -> w.putArray("k", GgufValueType.ARRAY, List.of()), "arrays of ARRAY are not supported");
    }

    private static void assertArgument(org.junit.jupiter.api.function.Executable call, String part) {
        RuntimeException e = assertThrows(RuntimeException.class, call);
        assertTrue(
                e instanceof IllegalArgumentException || e instanceof NullPointerException,
                () -> "unexpected " + e);
        assertTrue(e.getMessage().contains(part), () -> "says '" + part + "': " + e.getMessage());
    }
}
