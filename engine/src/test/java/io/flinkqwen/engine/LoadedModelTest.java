/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.engine.config.Qwen2MoeConfig;
import io.flinkqwen.engine.gguf.GgmlType;
import io.flinkqwen.engine.gguf.GgufFile;
import io.flinkqwen.engine.gguf.GgufTensorInfo;
import io.flinkqwen.engine.gguf.GgufWriter;
import io.flinkqwen.engine.testmodel.TestModelGenerator;
import io.flinkqwen.engine.weights.ModelFormatException;
import io.flinkqwen.kernels.DType;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Every bad model a user can hand us fails at load with a message naming file, tensor, expected, actual. */
class LoadedModelTest {

    @TempDir static Path dir;
    static Path gguf;
    static Path hf;

    @BeforeAll
    static void models() throws Exception {
        TestModelGenerator gen = new TestModelGenerator(TestModelGenerator.tinyConfig(), 21);
        gguf = dir.resolve("good.gguf");
        hf = dir.resolve("good-hf");
        gen.write(TestModelGenerator.Format.GGUF, DType.Q8_0, gguf, 0);
        gen.write(TestModelGenerator.Format.HF, DType.BF16, hf, 0);
    }

    @Test
    void goodModelsLoadInBothFormats() {
        try (LoadedModel m = LoadedModel.open(gguf)) {
            assertEquals("gguf", m.format());
            assertEquals("Q8_0", m.weights().weightFormat());
            assertEquals(3, m.config().numHiddenLayers());
        }
        try (LoadedModel m = LoadedModel.open(hf.resolve("config.json"))) {
            assertEquals("safetensors", m.format());
            assertEquals("BF16", m.weights().weightFormat());
        }
    }

    @Test
    void theDefaultChunkGivesARoutedExpertEightTokensOnAverage() {
        try (LoadedModel m = LoadedModel.open(gguf)) {
            assertEquals(64, m.defaultChunkTokens(), "a dense model");
        }
        assertEquals(64, LoadedModel.defaultChunkTokens(null));
        // Qwen1.5-MoE-A2.7B, 60 experts, top-4: 8 * 60 / 4 = 120 tokens, rounded up to 128
        assertEquals(128, LoadedModel.defaultChunkTokens(Qwen2MoeConfig.qwen15_moe_a2_7b()));
        // Qwen2-57B-A14B, 64 experts, top-8: 8 * 64 / 8 = 64
        assertEquals(64, LoadedModel.defaultChunkTokens(Qwen2MoeConfig.qwen2_57b_a14b()));
        assertEquals(192, LoadedModel.defaultChunkTokens(routing(36, 2)), "8 * 36 / 2 = 144, up to 192");
        assertEquals(256, LoadedModel.defaultChunkTokens(routing(128, 1)), "8 * 128 = 1024, at most 256");
        assertEquals(64, LoadedModel.defaultChunkTokens(routing(4, 2)), "never below the dense chunk");
    }

    /** The A2.7B preset with {@code experts} routed experts, {@code topK} per token. */
    private static Qwen2MoeConfig routing(int experts, int topK) {
        Qwen2MoeConfig p = Qwen2MoeConfig.qwen15_moe_a2_7b();
        return new Qwen2MoeConfig(p.vocabSize(), p.hiddenSize(), p.intermediateSize(), p.numHiddenLayers(),
                p.numAttentionHeads(), p.numKeyValueHeads(), p.maxPositionEmbeddings(), p.ropeTheta(), p.rmsNormEps(),
                p.tieWordEmbeddings(), p.bosTokenId(), p.eosTokenId(), experts, topK, p.moeIntermediateSize(),
                p.sharedExpertIntermediateSize(), p.normTopkProb(), p.decoderSparseStep(), p.mlpOnlyLayers());
    }

    /** Rewrites the good GGUF, letting {@code edit} drop or change tensors (null drops). */
    private static Path rewrite(String name, UnaryOperator<GgufTensorInfo> edit, String archOverride) throws Exception {
        Path out = dir.resolve(name);
        try (GgufFile src = GgufFile.open(gguf)) {
            GgufWriter w = new GgufWriter().putAll(src);
            if (archOverride != null) {
                w.put("general.architecture", archOverride);
            }
            for (GgufTensorInfo t : src.tensors()) {
                GgufTensorInfo e = edit.apply(t);
                if (e == null) {
                    continue;
                }
                ByteBuffer data = src.tensorData(t.name());
                long bytes = e.type().byteSize(e.elementCount());
                ByteBuffer copy = ByteBuffer.allocate((int) bytes);
                ByteBuffer d = data.duplicate();
                d.limit((int) Math.min(bytes, d.limit()));
                copy.put(d);
                copy.position(0);
                w.addTensor(e.name(), e.type(), e.shape(), () -> copy.duplicate());
            }
            w.write(out);
        }
        return out;
    }

    @Test
    void missingTensorIsNamed() throws Exception {
        Path bad = rewrite("missing.gguf", t -> t.name().equals("blk.1.ffn_up.weight") ? null : t, null);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> LoadedModel.open(bad));
        assertTrue(e.getMessage().contains("blk.1.ffn_up.weight") && e.getMessage().contains(bad.toString()), e.getMessage());
    }

    @Test
    void wrongShapeNamesTensorExpectedAndActual() throws Exception {
        Path bad =
                rewrite(
                        "shape.gguf",
                        t -> t.name().equals("blk.2.attn_k.weight")
                                ? new GgufTensorInfo(t.name(), new long[] {32, 128}, t.type(), 0, 0)
                                : t,
                        null);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> LoadedModel.open(bad));
        assertTrue(
                e.getMessage().contains("blk.2.attn_k.weight") && e.getMessage().contains("[32, 128]") && e.getMessage().contains("[64, 128]"),
                e.getMessage());
    }

    @Test
    void unsupportedDtypeIsNamed() throws Exception {
        Path bad =
                rewrite(
                        "q4k.gguf",
                        t -> t.name().equals("blk.0.ffn_gate.weight")
                                ? new GgufTensorInfo(t.name(), new long[] {256, 256}, GgmlType.Q4_K, 0, 0)
                                : t,
                        null);
        // the shape is wrong too, but a Q4_K file must say Q4_K; the ffn_gate rows are 256 wide in Q4_K's block
        RuntimeException e = assertThrows(RuntimeException.class, () -> LoadedModel.open(bad));
        assertTrue(e.getMessage().contains("blk.0.ffn_gate.weight"), e.getMessage());
    }

    @Test
    void otherArchitectureIsRefused() throws Exception {
        Path bad = rewrite("llama.gguf", t -> t, "llama");
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> LoadedModel.open(bad));
        assertTrue(e.getMessage().contains("'llama'") && e.getMessage().contains("qwen2"), e.getMessage());
    }

    @Test
    void truncatedGgufNamesTheFile() throws Exception {
        Path bad = dir.resolve("truncated.gguf");
        Files.copy(gguf, bad);
        try (RandomAccessFile f = new RandomAccessFile(bad.toFile(), "rw")) {
            f.setLength(f.length() - 1000);
        }
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> LoadedModel.open(bad));
        assertTrue(e.getMessage().contains(bad.toString()), e.getMessage());
    }

    @Test
    void configThatDisagreesWithTheTensorsNamesTheTensor() throws Exception {
        Path bad = dir.resolve("disagree-hf");
        Files.createDirectories(bad);
        for (String f : new String[] {"model.safetensors", "tokenizer.json"}) {
            Files.copy(hf.resolve(f), bad.resolve(f));
        }
        String config = Files.readString(hf.resolve("config.json")).replace("\"intermediate_size\" : 256", "\"intermediate_size\" : 320");
        Files.write(bad.resolve("config.json"), config.getBytes(StandardCharsets.UTF_8));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> LoadedModel.open(bad));
        assertTrue(
                e.getMessage().contains("model.layers.0.mlp.gate_proj.weight")
                        && e.getMessage().contains("[256, 128]")
                        && e.getMessage().contains("[320, 128]"),
                e.getMessage());
    }

    @Test
    void folderWithoutTokenizerOrConfigSaysWhichFile() throws Exception {
        Path noTok = dir.resolve("no-tokenizer");
        Files.createDirectories(noTok);
        Files.copy(hf.resolve("config.json"), noTok.resolve("config.json"));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> LoadedModel.open(noTok));
        assertTrue(e.getMessage().contains("tokenizer.json"), e.getMessage());
        Path empty = Files.createDirectories(dir.resolve("empty"));
        e = assertThrows(ModelFormatException.class, () -> LoadedModel.open(empty));
        assertTrue(e.getMessage().contains("config.json"), e.getMessage());
        Path txt = Files.writeString(dir.resolve("model.txt"), "hello");
        e = assertThrows(ModelFormatException.class, () -> LoadedModel.open(txt));
        assertTrue(e.getMessage().contains("model.txt"), e.getMessage());
    }
}
