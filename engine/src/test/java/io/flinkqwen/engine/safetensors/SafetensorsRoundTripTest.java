/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.WeightMatrix;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
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

class SafetensorsRoundTripTest {

    @TempDir Path dir;

    /** Tensors of every dtype in 0-D to 3-D, with HF-style names. */
    private static final class Model {
        final Map<String, DType> dtypes = new LinkedHashMap<>();
        final Map<String, long[]> shapes = new LinkedHashMap<>();
        final Map<String, SafetensorsTestData.Data> data = new LinkedHashMap<>();

        Model(long seed) {
            Random rnd = new Random(seed);
            add(rnd, "model.embed_tokens.weight", DType.BF16, 11, 8);
            add(rnd, "model.layers.0.self_attn.q_proj.weight", DType.F32, 8, 8);
            add(rnd, "model.layers.0.self_attn.q_proj.bias", DType.F32, 8);
            add(rnd, "model.layers.0.self_attn.k_proj.weight", DType.F16, 4, 8);
            add(rnd, "model.layers.0.self_attn.k_proj.bias", DType.F16, 3);
            add(rnd, "model.layers.0.input_layernorm.weight", DType.BF16, 8);
            add(rnd, "model.layers.0.mlp.experts.weight", DType.F16, 2, 3, 5);
            add(rnd, "model.scalar", DType.F32);
            add(rnd, "lm_head.weight", DType.F16, 11, 8);
        }

        private void add(Random rnd, String name, DType dtype, long... shape) {
            long n = 1;
            for (long s : shape) {
                n *= s;
            }
            dtypes.put(name, dtype);
            shapes.put(name, shape);
            data.put(name, SafetensorsTestData.random(dtype, rnd, (int) n));
        }

        SafetensorsWriter writer(AtomicInteger calls) {
            SafetensorsWriter w = new SafetensorsWriter().metadata("format", "pt");
            for (String name : dtypes.keySet()) {
                w.add(name, dtypes.get(name), shapes.get(name), () -> {
                    calls.incrementAndGet();
                    return data.get(name).buffer();
                });
            }
            return w;
        }

        long totalBytes() {
            return data.values().stream().mapToLong(d -> d.bytes().length).sum();
        }

        void assertReadBack(SafetensorsStore store) {
            assertEquals(dtypes.keySet(), store.tensorNames());
            for (String name : dtypes.keySet()) {
                SafetensorsTensorInfo info = store.tensor(name);
                long[] shape = shapes.get(name);
                byte[] bytes = data.get(name).bytes();
                assertArrayEquals(shape, store.shape(name), name);
                assertEquals(dtypes.get(name), info.dtype().dtype().orElseThrow(), name);
                assertEquals(bytes.length, info.sizeBytes(), name);
                assertArrayEquals(bytes, SafetensorsTestData.bytes(store.tensorData(name)), name);
                if (shape.length == 2) {
                    WeightMatrix m = store.matrix(name, (int) shape[0], (int) shape[1]);
                    assertEquals(dtypes.get(name), m.dtype());
                    byte[] mapped = new byte[(int) m.sizeBytes()];
                    for (int r = 0; r < m.rows(); r++) {
                        m.chunk(r).get(m.offset(r), mapped, r * m.rowBytes(), m.rowBytes());
                    }
                    assertArrayEquals(bytes, mapped, name);
                } else if (shape.length == 1) {
                    assertArrayEquals(data.get(name).values(), store.vector(name, (int) shape[0]), 0f, name);
                } else if (shape.length == 3) {
                    // [experts, rows, cols]: each expert's matrix is the next contiguous slice
                    WeightMatrix[] experts = store.expertMatrices(name, (int) shape[0], (int) shape[1], (int) shape[2]);
                    assertEquals(shape[0], experts.length, name);
                    byte[] mapped = new byte[bytes.length];
                    int at = 0;
                    for (WeightMatrix m : experts) {
                        for (int r = 0; r < m.rows(); r++) {
                            m.chunk(r).get(m.offset(r), mapped, at, m.rowBytes());
                            at += m.rowBytes();
                        }
                    }
                    assertEquals(bytes.length, at, name);
                    assertArrayEquals(bytes, mapped, name);
                }
            }
        }
    }

    @Test
    void aSingleFileRoundTripsEveryDTypeAndShape() throws IOException {
        Model model = new Model(1);
        AtomicInteger calls = new AtomicInteger();
        SafetensorsWriter writer = model.writer(calls);
        assertEquals(0, calls.get(), "data is produced while writing, not when added");
        Path file = dir.resolve("model.safetensors");
        writer.write(file);
        assertEquals(model.dtypes.size(), calls.get(), "each supplier is called once");

        try (SafetensorsStore store = SafetensorsStore.open(file)) {
            model.assertReadBack(store);
            assertEquals(Map.of("format", "pt"), store.metadata());
            assertEquals(Map.of(), store.indexMetadata());
            assertEquals(List.of(file), store.files());
            assertEquals(
                    new ArrayList<>(model.dtypes.keySet()),
                    store.tensors().stream().map(SafetensorsTensorInfo::name).collect(Collectors.toList()));
        }
        try (SafetensorsStore store = SafetensorsStore.open(dir)) {
            assertEquals(dir.toString(), store.source(), "a folder with model.safetensors opens too");
            model.assertReadBack(store);
        }
    }

    @Test
    void theLayoutIsWhatHuggingFaceChecks() throws IOException {
        Model model = new Model(2);
        Path file = dir.resolve("layout.safetensors");
        model.writer(new AtomicInteger()).write(file);
        byte[] bytes = Files.readAllBytes(file);
        long n = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        assertEquals(0, n % 8, "header padded to a multiple of 8");
        String header = new String(bytes, 8, (int) n, java.nio.charset.StandardCharsets.UTF_8);
        assertTrue(header.startsWith("{\"__metadata__\":{\"format\":\"pt\"},"), header);
        assertTrue(header.stripTrailing().endsWith("}"));
        assertTrue(header.substring(header.stripTrailing().length()).chars().allMatch(c -> c == ' '), "padded with spaces");
        // the data section is covered exactly, tensors back to back in insertion order
        JsonNode json = new ObjectMapper().readTree(header);
        long expected = 0;
        for (Map.Entry<String, JsonNode> e : json.properties()) {
            String name = e.getKey();
            if (name.equals("__metadata__")) {
                continue;
            }
            JsonNode offsets = json.get(name).get("data_offsets");
            assertEquals(expected, offsets.get(0).asLong(), name);
            expected = offsets.get(1).asLong();
        }
        assertEquals(bytes.length, 8 + n + expected);
        assertEquals(model.totalBytes(), expected);
    }

    @Test
    void shardedModelsRoundTripWithAnIndex() throws IOException {
        Model model = new Model(3);
        AtomicInteger calls = new AtomicInteger();
        List<Path> shards = model.writer(calls).writeSharded(dir, 400);
        assertEquals(model.dtypes.size(), calls.get());
        assertTrue(shards.size() >= 3, "several shards: " + shards);
        for (int i = 0; i < shards.size(); i++) {
            assertEquals(
                    String.format("model-%05d-of-%05d.safetensors", i + 1, shards.size()),
                    shards.get(i).getFileName().toString());
        }

        JsonNode index = new ObjectMapper().readTree(dir.resolve("model.safetensors.index.json").toFile());
        assertEquals(model.totalBytes(), index.at("/metadata/total_size").asLong());
        List<String> mapped = new ArrayList<>();
        index.get("weight_map").properties().forEach(e -> mapped.add(e.getKey()));
        assertEquals(model.dtypes.keySet().stream().sorted().collect(Collectors.toList()), mapped, "sorted like HF");

        try (SafetensorsStore store = SafetensorsStore.open(dir)) {
            model.assertReadBack(store);
            assertEquals(shards, store.files());
            assertEquals(model.totalBytes(), ((Number) store.indexMetadata().get("total_size")).longValue());
            assertEquals(Map.of("format", "pt"), store.metadata());
            for (String name : model.dtypes.keySet()) {
                assertEquals(index.get("weight_map").get(name).asText(), store.tensor(name).file().getFileName().toString());
            }
        }
        try (SafetensorsStore store = SafetensorsStore.open(dir.resolve("model.safetensors.index.json"))) {
            model.assertReadBack(store);
        }
    }

    @Test
    void shardsHoldAtMostTheLimitUnlessOneTensorIsLarger() throws IOException {
        Model model = new Model(4);
        List<Path> shards = model.writer(new AtomicInteger()).writeSharded(dir, 200);
        long biggest = model.data.values().stream().mapToLong(d -> d.bytes().length).max().orElseThrow();
        assertTrue(biggest > 200);
        try (SafetensorsStore store = SafetensorsStore.open(dir)) {
            for (Path shard : shards) {
                List<SafetensorsTensorInfo> in =
                        store.tensors().stream().filter(t -> t.file().equals(shard)).collect(Collectors.toList());
                long bytes = in.stream().mapToLong(SafetensorsTensorInfo::sizeBytes).sum();
                assertTrue(bytes <= 200 || in.size() == 1, shard + " holds " + bytes + " bytes in " + in.size());
            }
        }
    }

    @Test
    void oneShardStillGetsAnIndex() throws IOException {
        Model model = new Model(5);
        List<Path> shards = model.writer(new AtomicInteger()).writeSharded(dir, Long.MAX_VALUE);
        assertEquals(List.of(dir.resolve("model-00001-of-00001.safetensors")), shards);
        try (SafetensorsStore store = SafetensorsStore.open(dir)) {
            model.assertReadBack(store);
        }
    }

    @Test
    void theIndexIsPreferredOverASingleFileInTheSameFolder() throws IOException {
        new Model(6).writer(new AtomicInteger()).write(dir.resolve("model.safetensors"));
        Model sharded = new Model(7);
        sharded.writer(new AtomicInteger()).writeSharded(dir, 400);
        try (SafetensorsStore store = SafetensorsStore.open(dir)) {
            sharded.assertReadBack(store);
        }
    }

    @Test
    void aSupplierWithTheWrongByteCountFailsAndLeavesNothingBehind() throws IOException {
        SafetensorsWriter w =
                new SafetensorsWriter()
                        .add("a", DType.F32, new long[] {2}, () -> ByteBuffer.allocate(8))
                        .add("b", DType.BF16, new long[] {2, 3}, () -> ByteBuffer.allocate(11));
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> w.write(dir.resolve("x.safetensors")));
        assertTrue(e.getMessage().contains("tensor 'b' (BF16 [2, 3]) needs 12 bytes, its data supplier gave 11 bytes"), e.getMessage());
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(0, files.count(), "no target, no temporary file");
        }
    }

    @Test
    void writeReplacesAnExistingFile() throws IOException {
        Path file = dir.resolve("m.safetensors");
        new SafetensorsWriter().metadata("v", "1").add("a", DType.F32, new long[] {1}, () -> ByteBuffer.allocate(4)).write(file);
        new SafetensorsWriter().metadata("v", "2").add("a", DType.F32, new long[] {1}, () -> ByteBuffer.allocate(4)).write(file);
        try (SafetensorsStore store = SafetensorsStore.open(file)) {
            assertEquals("2", store.metadata().get("v"));
        }
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(List.of(file), files.collect(Collectors.toList()));
        }
    }

    @Test
    void writerRejectsWhatSafetensorsCannotHold() {
        SafetensorsWriter w = new SafetensorsWriter().add("a", DType.F32, new long[] {1}, () -> null);
        assertArgument(() -> w.add("q", DType.Q8_0, new long[] {32}, () -> null), "safetensors holds F32, F16 and BF16 here, not Q8_0");
        assertArgument(() -> w.add("a", DType.F32, new long[] {1}, () -> null), "tensor 'a' was already added");
        assertArgument(() -> w.add("n", DType.F32, new long[] {2, -1}, () -> null), "dimensions cannot be negative");
        assertArgument(() -> w.add("__metadata__", DType.F32, new long[] {1}, () -> null), "cannot name a tensor");
        assertArgument(() -> w.writeSharded(dir, 0), "maxShardBytes must be positive");
    }

    private static void assertArgument(org.junit.jupiter.api.function.Executable call, String part) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains(part), () -> "says '" + part + "': " + e.getMessage());
    }
}
