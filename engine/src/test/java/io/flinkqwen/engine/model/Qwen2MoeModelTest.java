/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.engine.LoadedModel;
import io.flinkqwen.engine.config.Qwen2MoeConfig;
import io.flinkqwen.engine.gguf.GgufFile;
import io.flinkqwen.engine.safetensors.SafetensorsStore;
import io.flinkqwen.engine.safetensors.SafetensorsWriter;
import io.flinkqwen.engine.testmodel.TestModelGenerator;
import io.flinkqwen.engine.weights.ModelFormatException;
import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.KernelPool;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.TreeSet;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The Qwen2-MoE forward pass against a float64 reference written from the HF definition, against
 * itself (expert-grouped prefill = token-by-token decode), and its load-time errors.
 */
class Qwen2MoeModelTest {

    @TempDir static Path dir;
    static KernelPool pool;
    static final int[] IDS = {84, 104, 101, 32, 108, 111, 103, 300, 257, 19, 33, 260, 7, 90, 91, 92, 93, 94, 95};

    @BeforeAll
    static void pool() {
        pool = new KernelPool(2);
    }

    @AfterAll
    static void close() {
        pool.close();
    }

    private static Path write(Qwen2MoeConfig c, String name, TestModelGenerator.Format format) throws Exception {
        Path out = dir.resolve(name + (format == TestModelGenerator.Format.GGUF ? ".gguf" : ""));
        new TestModelGenerator(c, 3).write(format, DType.F32, out, 0);
        return out;
    }

    private static double maxDiffToReference(LoadedModel model, int maxChunk) {
        Qwen2MoeConfig c = model.moeConfig().orElseThrow();
        double[][] ref = new ReferenceQwen2(c, model.weights()).logits(IDS);
        Qwen2Model f = model.newForward(pool, maxChunk);
        float[][] ours = f.forwardAllLogits(f.newCache(4), IDS);
        double max = 0;
        for (int p = 0; p < IDS.length; p++) {
            for (int v = 0; v < ref[p].length; v++) {
                max = Math.max(max, Math.abs(ours[p][v] - ref[p][v]));
            }
        }
        System.out.printf(java.util.Locale.ROOT, "%s: max |ours - float64 reference| = %.3g%n", model.source().getFileName(), max);
        return max;
    }

    @Test
    void allSparseModelMatchesAFloat64ReferenceAtEveryPosition() throws Exception {
        try (LoadedModel m = LoadedModel.open(write(TestModelGenerator.tinyMoeConfig(), "sparse", TestModelGenerator.Format.GGUF))) {
            double max = maxDiffToReference(m, 5);
            assertTrue(max < 1e-4, "max |ours - float64 reference| = " + max);
        }
    }

    /** Layer 1 dense (mlp_only_layers), 0 and 2 sparse: the per-layer FFN choice. */
    @Test
    void mixedDenseAndSparseLayersMatchAFloat64Reference() throws Exception {
        Qwen2MoeConfig c = TestModelGenerator.tinyMoeMixedConfig();
        for (TestModelGenerator.Format format : TestModelGenerator.Format.values()) {
            try (LoadedModel m = LoadedModel.open(write(c, "mixed-" + format, format))) {
                Qwen2MoeConfig read = m.moeConfig().orElseThrow();
                assertTrue(read.isMoeLayer(0) && !read.isMoeLayer(1) && read.isMoeLayer(2), read.toString());
                double max = maxDiffToReference(m, 7);
                assertTrue(max < 1e-4, format + ": max |ours - float64 reference| = " + max);
            }
        }
    }

    /** norm_topk_prob = true (HF folder; llama.cpp's qwen2moe has no such path) vs the reference. */
    @Test
    void renormalisedRoutingMatchesAFloat64Reference() throws Exception {
        Qwen2MoeConfig c = TestModelGenerator.tinyMoeConfig().withNormTopkProb(true);
        try (LoadedModel m = LoadedModel.open(write(c, "norm", TestModelGenerator.Format.HF))) {
            assertTrue(m.moeConfig().orElseThrow().normTopkProb());
            double max = maxDiffToReference(m, 5);
            assertTrue(max < 1e-4, "max |ours - float64 reference| = " + max);
        }
        // and it is a different model from the unnormalised one
        try (LoadedModel a = LoadedModel.open(write(c, "norm2", TestModelGenerator.Format.HF));
                LoadedModel b = LoadedModel.open(write(c.withNormTopkProb(false), "nonorm", TestModelGenerator.Format.HF))) {
            float[] la = a.newForward(pool, 8).forward(a.newForward(pool, 8).newCache(4), IDS, 0, 4).clone();
            Qwen2Model fb = b.newForward(pool, 8);
            float[] lb = fb.forward(fb.newCache(4), IDS, 0, 4);
            double d = 0;
            for (int i = 0; i < la.length; i++) {
                d = Math.max(d, Math.abs(la[i] - lb[i]));
            }
            assertTrue(d > 1e-2, "norm_topk_prob changed nothing: " + d);
        }
    }

    @Test
    void expertGroupedPrefillEqualsTokenByTokenDecode() throws Exception {
        try (LoadedModel m = LoadedModel.open(write(TestModelGenerator.tinyMoeMixedConfig(), "prefill", TestModelGenerator.Format.GGUF))) {
            Qwen2Model whole = m.newForward(pool, 64);
            float[] a = whole.forward(whole.newCache(64), IDS, 0, IDS.length).clone();
            RouterStats stats = whole.routerStats().orElseThrow();
            // each token counts once per chosen expert, in each sparse layer; none in the dense one
            for (int l = 0; l < 3; l++) {
                long sum = 0;
                int active = 0;
                for (int e = 0; e < stats.experts(); e++) {
                    sum += stats.lastCallTokens(l, e);
                    active += stats.lastCallTokens(l, e) > 0 ? 1 : 0;
                }
                assertEquals(l == 1 ? 0 : 2L * IDS.length, sum, "layer " + l);
                if (l != 1) {
                    assertTrue(active >= 2, "layer " + l + ": a whole prompt through one expert tests no grouping");
                }
            }
            assertEquals(IDS.length, stats.lastCallTopKMargins().length);

            Qwen2Model chunked = m.newForward(pool, 3);
            float[] b = chunked.forward(chunked.newCache(2), IDS, 0, IDS.length).clone();
            Qwen2Model oneByOne = m.newForward(pool, 1);
            KvCache cache = oneByOne.newCache(1);
            float[] c = null;
            for (int i = 0; i < IDS.length; i++) {
                c = oneByOne.forward(cache, IDS, i, 1);
            }
            // prefill (GEMM kernel, one FMA chain per output) and decode (mat-vec, lane-split
            // sums) add in different orders: logits of magnitude ~5 agree to a few 1e-5
            assertArrayEquals(a, b, 5e-5f);
            assertArrayEquals(a, c, 5e-5f);
            // cumulative counters add up over calls; the last call is the last token only
            RouterStats s1 = oneByOne.routerStats().orElseThrow();
            long cumulative = 0;
            int last = 0;
            for (int e = 0; e < s1.experts(); e++) {
                cumulative += s1.cumulativeTokens(0, e);
                last += s1.lastCallTokens(0, e);
            }
            assertEquals(2L * IDS.length, cumulative);
            assertEquals(2, last);
            assertArrayEquals(stats.cumulativeTokens(2), s1.cumulativeTokens(2), "same routing, prefill or decode");
        }
    }

    /**
     * A GGUF expert's matrix is a contiguous slice of the merged 3-D tensor: expert e of the GGUF
     * holds the same numbers as HF's per-expert tensor, for a 2-byte and a block format.
     */
    @Test
    void aLongPrefillGivesTheSameBitsOnAnyThreadCount() throws Exception {
        // 192 tokens: enough that the experts' outputs are combined on the pool (by columns),
        // as their SwiGLUs are; every element must see the same operations in the same order
        Path p = write(TestModelGenerator.tinyMoeConfig(), "threads", TestModelGenerator.Format.GGUF);
        int n = 192;
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) {
            ids[i] = (7 + 31 * i) % 500;
        }
        try (LoadedModel m = LoadedModel.open(p)) {
            float[] want = null;
            for (int threads : new int[] {1, 2, 3}) {
                try (KernelPool own = new KernelPool(threads)) {
                    Qwen2Model f = m.newForward(own, n);
                    float[] logits = f.forward(f.newCache(n), ids, 0, n).clone();
                    if (want == null) {
                        want = logits;
                    } else {
                        for (int v = 0; v < want.length; v++) {
                            assertEquals(Float.floatToRawIntBits(want[v]), Float.floatToRawIntBits(logits[v]),
                                    "logit " + v + " with " + threads + " threads");
                        }
                    }
                }
            }
        }
    }

    @Test
    void mergedGgufExpertsAreTheHfExperts() throws Exception {
        Qwen2MoeConfig c = TestModelGenerator.tinyMoeConfig();
        TestModelGenerator gen = new TestModelGenerator(c, 5);
        Path hf = dir.resolve("experts-hf");
        gen.write(TestModelGenerator.Format.HF, DType.F16, hf, 0);
        for (DType dtype : new DType[] {DType.F16, DType.Q8_0}) {
            Path gguf = dir.resolve("experts-" + dtype + ".gguf");
            gen.write(TestModelGenerator.Format.GGUF, dtype, gguf, 0);
            try (GgufFile g = GgufFile.open(gguf); SafetensorsStore s = SafetensorsStore.open(hf)) {
                io.flinkqwen.kernels.WeightMatrix[] downs = g.expertMatrices("blk.1.ffn_down_exps.weight", 8, 128, 64);
                assertEquals(dtype, downs[5].dtype());
                for (int e : new int[] {0, 5, 7}) {
                    io.flinkqwen.kernels.WeightMatrix ours = downs[e];
                    io.flinkqwen.kernels.WeightMatrix theirs = s.matrix("model.layers.1.mlp.experts." + e + ".down_proj.weight", 128, 64);
                    float[] a = new float[64];
                    float[] b = new float[64];
                    for (int r : new int[] {0, 77, 127}) {
                        io.flinkqwen.kernels.Quantize.dequantizeRowScalar(a, 0, ours, r);
                        io.flinkqwen.kernels.Quantize.dequantizeRowScalar(b, 0, theirs, r);
                        // Q8_0 rounds the same values to 8-bit blocks: within one step of its scale
                        assertArrayEquals(b, a, dtype == DType.F16 ? 0f : 0.02f, dtype + " expert " + e + " row " + r);
                    }
                }
            }
        }
    }

    /** llama.cpp treats the expert FFN sizes as optional: without the keys they come from the shapes. */
    @Test
    void ggufWithoutExpertFfnKeysTakesTheSizesFromTheTensors() throws Exception {
        Path gguf = write(TestModelGenerator.tinyMoeMixedConfig(), "nokeys", TestModelGenerator.Format.GGUF);
        byte[] bytes = Files.readAllBytes(gguf);
        String text = new String(bytes, java.nio.charset.StandardCharsets.ISO_8859_1);
        // rename the keys in place (same length, so the file stays valid)
        text = text.replace("qwen2moe.expert_feed_forward_length", "qwen2moe.absent_feed_forward_length");
        text = text.replace("qwen2moe.expert_shared_feed_forward_length", "qwen2moe.absent_shared_feed_forward_length");
        Path patched = dir.resolve("nokeys-patched.gguf");
        Files.write(patched, text.getBytes(java.nio.charset.StandardCharsets.ISO_8859_1));
        try (GgufFile g = GgufFile.open(patched)) {
            assertFalse(g.has("qwen2moe.expert_feed_forward_length"));
            assertFalse(g.has("qwen2moe.expert_shared_feed_forward_length"));
        }
        try (LoadedModel m = LoadedModel.open(patched)) {
            Qwen2MoeConfig c = m.moeConfig().orElseThrow();
            assertEquals(64, c.moeIntermediateSize());
            assertEquals(128, c.sharedExpertIntermediateSize());
            assertEquals(256, c.intermediateSize());
            assertEquals(8, c.numExperts());
            assertEquals(java.util.List.of(1), c.mlpOnlyLayers());
        }
    }

    @Test
    void moeWeightsNeedTheMoeConfig() throws Exception {
        try (LoadedModel m = LoadedModel.open(write(TestModelGenerator.tinyMoeConfig(), "needs", TestModelGenerator.Format.GGUF))) {
            IllegalArgumentException e =
                    assertThrows(IllegalArgumentException.class, () -> new Qwen2Model(m.config(), m.weights(), pool, 4));
            assertTrue(e.getMessage().contains("layer 0 has MoE weights"), e.getMessage());
        }
    }

    @Test
    void denseModelHasNoRouterStats() throws Exception {
        Path gguf = dir.resolve("dense.gguf");
        new TestModelGenerator(TestModelGenerator.tinyConfig(), 3).write(TestModelGenerator.Format.GGUF, DType.F32, gguf, 0);
        try (LoadedModel m = LoadedModel.open(gguf)) {
            assertFalse(m.moeConfig().isPresent());
            assertFalse(m.newForward(pool, 4).routerStats().isPresent());
        }
    }

    @Test
    void missingExpertTensorIsNamed() throws Exception {
        Path hf = write(TestModelGenerator.tinyMoeConfig(), "full-hf", TestModelGenerator.Format.HF);
        Path broken = dir.resolve("missing-hf");
        Files.createDirectories(broken);
        String hidden = "model.layers.1.mlp.experts.5.up_proj.weight";
        // copy the folder without one expert tensor
        SafetensorsWriter w = new SafetensorsWriter();
        try (SafetensorsStore store = SafetensorsStore.open(hf)) {
            for (String name : new TreeSet<>(store.tensorNames())) {
                if (!name.equals(hidden)) {
                    ByteBuffer data = store.tensorData(name);
                    w.add(name, DType.F32, store.shape(name), () -> data.duplicate());
                }
            }
            w.write(broken.resolve("model.safetensors"));
        }
        Files.copy(hf.resolve("config.json"), broken.resolve("config.json"));
        Files.copy(hf.resolve("tokenizer.json"), broken.resolve("tokenizer.json"));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> LoadedModel.open(broken).close());
        assertTrue(e.getMessage().contains("has no tensor '" + hidden + "'"), e.getMessage());
    }

    @Test
    void wrongExpertCountIsNamed() throws Exception {
        Path gguf = write(TestModelGenerator.tinyMoeConfig(), "count", TestModelGenerator.Format.GGUF);
        Path hf = write(TestModelGenerator.tinyMoeConfig(), "count-hf", TestModelGenerator.Format.HF);
        Qwen2MoeConfig eight = TestModelGenerator.tinyMoeConfig();
        try (GgufFile g = GgufFile.open(gguf)) {
            ModelFormatException e =
                    assertThrows(ModelFormatException.class, () -> Qwen2Weights.load(withExperts(eight, 6), g, TensorNaming.GGUF));
            assertTrue(
                    e.getMessage().contains("blk.0.ffn_gate_exps.weight") && e.getMessage().contains("holds 8 experts, the config says 6"),
                    e.getMessage());
        }
        try (SafetensorsStore s = SafetensorsStore.open(hf)) {
            ModelFormatException e =
                    assertThrows(ModelFormatException.class, () -> Qwen2Weights.load(withExperts(eight, 6), s, TensorNaming.HF));
            assertTrue(
                    e.getMessage().contains("model.layers.0.mlp.experts.6.gate_proj.weight")
                            && e.getMessage().contains("more experts than the config's num_experts 6"),
                    e.getMessage());
            e = assertThrows(ModelFormatException.class, () -> Qwen2Weights.load(withExperts(eight, 10), s, TensorNaming.HF));
            assertTrue(e.getMessage().contains("has no tensor 'model.layers.0.mlp.experts.8.gate_proj.weight'"), e.getMessage());
        }
    }

    private static Qwen2MoeConfig withExperts(Qwen2MoeConfig c, int experts) {
        return new Qwen2MoeConfig(
                c.vocabSize(), c.hiddenSize(), c.intermediateSize(), c.numHiddenLayers(), c.numAttentionHeads(),
                c.numKeyValueHeads(), c.maxPositionEmbeddings(), c.ropeTheta(), c.rmsNormEps(), c.tieWordEmbeddings(),
                c.bosTokenId(), c.eosTokenId(), experts, c.numExpertsPerTok(), c.moeIntermediateSize(),
                c.sharedExpertIntermediateSize(), c.normTopkProb(), c.decoderSparseStep(), c.mlpOnlyLayers());
    }

    @Test
    void aDecodedTokenReadsTheTopKExpertsOfEachSparseLayerNotAllOfThem() throws Exception {
        try (LoadedModel m = LoadedModel.open(write(TestModelGenerator.tinyMoeMixedConfig(), "active", TestModelGenerator.Format.GGUF))) {
            // F32; an expert is gate, up (64 x 128) and down (128 x 64); layers 0 and 2 are
            // sparse with 8 experts of which a token reads 2, layer 1 is dense
            long expert = 3L * 64 * 128 * Float.BYTES;
            assertEquals(m.weights().matrixBytes() - 2 * (8 - 2) * expert, m.weights().activeMatrixBytes());
        }
    }
}
