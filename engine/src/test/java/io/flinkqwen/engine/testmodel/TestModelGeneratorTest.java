/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.testmodel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import io.flinkqwen.engine.LoadedModel;
import io.flinkqwen.engine.config.Qwen2Config;
import io.flinkqwen.engine.gguf.GgufFile;
import io.flinkqwen.engine.model.Qwen2Model;
import io.flinkqwen.engine.model.RouterStats;
import io.flinkqwen.engine.safetensors.SafetensorsStore;
import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.KernelPool;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The generator writes the same model in both formats, and a vocabulary HF's tokenizer reads alike. */
class TestModelGeneratorTest {

    @TempDir Path dir;

    private static final List<String> TEXTS =
            List.of(
                    "The quick brown fox jumps over the lazy dog.",
                    "ERROR connection refused at 10:42:07, retrying in 5 seconds",
                    "  indented\n\tcode { return x[i]; }\r\n",
                    "Grüße, 你好, مرحبا 👋🏽",
                    "text with <|im_end|> and <|endoftext|> inside",
                    "[PAD300] looks like a pad");

    @Test
    void syntheticTokenizerJsonTokenizesLikeHuggingFaceAndLikeTheGgufVocabulary() throws Exception {
        TestModelGenerator gen = new TestModelGenerator(TestModelGenerator.tinyConfig(), 1);
        Path hf = dir.resolve("hf");
        Path gguf = dir.resolve("m.gguf");
        gen.write(TestModelGenerator.Format.HF, DType.F32, hf, 0);
        gen.write(TestModelGenerator.Format.GGUF, DType.F32, gguf, 0);
        assertTrue(gen.vocabulary().merges().size() >= 100, "merges learned: " + gen.vocabulary().merges().size());
        try (LoadedModel fromHf = LoadedModel.open(hf);
                LoadedModel fromGguf = LoadedModel.open(gguf);
                HuggingFaceTokenizer reference = HuggingFaceTokenizer.newInstance(hf.resolve("tokenizer.json"))) {
            assertEquals(512, fromHf.tokenizer().vocabSize());
            assertEquals(512, fromGguf.tokenizer().vocabSize());
            for (String text : TEXTS) {
                long[] hfIds = reference.encode(text, false, false).getIds();
                int[] expected = new int[hfIds.length];
                for (int i = 0; i < hfIds.length; i++) {
                    expected[i] = (int) hfIds[i];
                }
                assertArrayEquals(expected, fromHf.tokenizer().encodeWithSpecialTokens(text), text);
                assertArrayEquals(expected, fromGguf.tokenizer().encodeWithSpecialTokens(text), text);
                assertArrayEquals(fromHf.tokenizer().encode(text), fromGguf.tokenizer().encode(text), text);
            }
            // every embedding row decodes, pads included
            for (int id = 0; id < 512; id++) {
                assertEquals(fromGguf.tokenizer().decode(new int[] {id}), fromHf.tokenizer().decode(new int[] {id}), "id " + id);
            }
            // GGUF keeps rms_norm_eps as float32: equal up to that rounding, everything else exactly
            Qwen2Config h = fromHf.config();
            Qwen2Config g = fromGguf.config();
            assertEquals(h.rmsNormEps(), g.rmsNormEps(), 1e-13);
            assertEquals(
                    h.toConfigJson().replaceAll("\"rms_norm_eps\" : [^,]*", ""),
                    g.toConfigJson().replaceAll("\"rms_norm_eps\" : [^,]*", ""));
        }
    }

    @Test
    void bothFormatsHoldTheSameNumbersInEveryFloatDtype() throws Exception {
        for (DType dtype : new DType[] {DType.F32, DType.F16, DType.BF16}) {
            TestModelGenerator gen = new TestModelGenerator(TestModelGenerator.tinyConfig(), 2);
            Path hf = dir.resolve("hf-" + dtype);
            Path gguf = dir.resolve(dtype + ".gguf");
            gen.write(TestModelGenerator.Format.HF, dtype, hf, 0);
            gen.write(TestModelGenerator.Format.GGUF, dtype, gguf, 0);
            try (GgufFile g = GgufFile.open(gguf); SafetensorsStore s = SafetensorsStore.open(hf)) {
                assertEquals(dtype, g.matrix("blk.1.attn_q.weight", 128, 128).dtype());
                assertEquals(dtype, s.matrix("model.layers.1.self_attn.q_proj.weight", 128, 128).dtype());
                assertArrayEquals(g.vector("blk.2.ffn_norm.weight", 128), s.vector("model.layers.2.post_attention_layernorm.weight", 128), 0f);
                assertArrayEquals(g.vector("blk.0.attn_k.bias", 64), s.vector("model.layers.0.self_attn.k_proj.bias", 64), 0f);
                assertEquals(g.tensorData("blk.1.ffn_down.weight"), s.tensorData("model.layers.1.mlp.down_proj.weight"));
            }
        }
    }

    @Test
    void shardedSafetensorsLoadAndGiveTheSameLogits() throws Exception {
        TestModelGenerator gen = new TestModelGenerator(TestModelGenerator.tinyConfig(), 4);
        Path single = dir.resolve("single");
        Path sharded = dir.resolve("sharded");
        gen.write(TestModelGenerator.Format.HF, DType.F16, single, 0);
        gen.write(TestModelGenerator.Format.HF, DType.F16, sharded, 200_000);
        assertTrue(Files.exists(sharded.resolve("model.safetensors.index.json")));
        long shards;
        try (var files = Files.list(sharded)) {
            shards = files.filter(p -> p.getFileName().toString().endsWith(".safetensors")).count();
        }
        assertTrue(shards >= 3, "shards: " + shards);
        int[] ids = {10, 20, 30, 40, 50};
        try (LoadedModel a = LoadedModel.open(single); LoadedModel b = LoadedModel.open(sharded); KernelPool pool = new KernelPool(1)) {
            Qwen2Model fa = a.newForward(pool, 8);
            Qwen2Model fb = b.newForward(pool, 8);
            assertArrayEquals(fa.forward(fa.newCache(8), ids, 0, ids.length).clone(), fb.forward(fb.newCache(8), ids, 0, ids.length), 0f);
        }
    }

    @Test
    void sameSeedSameFileOtherSeedOtherWeights() throws Exception {
        Path a = dir.resolve("a.gguf");
        Path b = dir.resolve("b.gguf");
        Path c = dir.resolve("c.gguf");
        new TestModelGenerator(TestModelGenerator.tinyConfig(), 9).write(TestModelGenerator.Format.GGUF, DType.Q8_0, a, 0);
        new TestModelGenerator(TestModelGenerator.tinyConfig(), 9).write(TestModelGenerator.Format.GGUF, DType.Q8_0, b, 0);
        new TestModelGenerator(TestModelGenerator.tinyConfig(), 10).write(TestModelGenerator.Format.GGUF, DType.Q8_0, c, 0);
        assertEquals(-1, Files.mismatch(a, b));
        assertTrue(Files.mismatch(a, c) >= 0);
    }

    @Test
    void spreadRoutingSpreadsAChunksTokensOverMoreExperts() throws Exception {
        // the busiest expert's share of a 48-token chunk, per layer, default weights and spread
        int[][] busiest = new int[2][];
        for (int v = 0; v < 2; v++) {
            TestModelGenerator gen = new TestModelGenerator(TestModelGenerator.moePreset("tiny"), 3);
            if (v == 1) {
                gen.spreadRouting();
            }
            Path file = dir.resolve("moe-" + v + ".gguf");
            gen.write(TestModelGenerator.Format.GGUF, DType.F32, file, 0);
            try (LoadedModel m = LoadedModel.open(file); KernelPool pool = KernelPool.serial()) {
                Qwen2Model f = m.newForward(pool, 48);
                int[] prompt = new int[48];
                for (int i = 0; i < prompt.length; i++) {
                    prompt[i] = 300 + (7 * i) % 200;
                }
                f.forward(f.newCache(48), prompt, 0, prompt.length);
                RouterStats stats = f.routerStats().orElseThrow();
                busiest[v] = new int[stats.layers()];
                for (int l = 0; l < stats.layers(); l++) {
                    for (int e = 0; e < stats.experts(); e++) {
                        busiest[v][l] = Math.max(busiest[v][l], stats.lastCallTokens(l, e));
                    }
                }
            }
        }
        System.out.println("busiest expert per layer, default " + Arrays.toString(busiest[0]) + ", spread "
                + Arrays.toString(busiest[1]));
        int last = busiest[0].length - 1;
        assertTrue(busiest[1][last] < busiest[0][last],
                "the last layer's busiest expert: " + busiest[1][last] + " tokens spread, " + busiest[0][last] + " by default");
    }

    @Test
    void theMidSizeMoeBenchmarkShapeHasTheCountsItsJavadocStates() {
        // counted by hand: embeddings and untied head 2 x 151936 x 1024; per layer attention
        // 4 x 1024^2 + 3 x 1024 biases, two norms, router 60 x 1024, experts 60 x 3 x 704 x 1024,
        // shared 3 x 2816 x 1024 and its 1024-wide gate; 16 layers; the final norm
        var c = TestModelGenerator.moePreset("half-a2.7b");
        assertEquals(2_593_948_672L, c.parameterCount());
        assertEquals(656_180_224L, c.activeParameterCount());
        assertEquals(c, TestModelGenerator.halfA27bConfig());
    }
}
