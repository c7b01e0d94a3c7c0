/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.oracle;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.engine.LoadedModel;
import io.flinkqwen.engine.config.Qwen2Config;
import io.flinkqwen.engine.config.RopeScaling;
import io.flinkqwen.engine.model.Qwen2Model;
import io.flinkqwen.engine.testmodel.TestModelGenerator;
import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.KernelPool;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * YaRN against llama.cpp: the tiny F32 model with YaRN metadata ({@link
 * TestModelGenerator#tinyYarnConfig()}: trained context 64, factor 4, 256 positions), teacher-forced
 * logits at every one of 248 positions, most of them beyond the original context, ours against
 * llama.cpp's on the same GGUF file (llama.cpp reads {@code qwen2.rope.scaling.type/factor/
 * original_context_length}; its context of 248 tokens stays within the file's 256 positions).
 *
 * <p>That llama.cpp really applies YaRN, and that this test can fail: the same weights written
 * without the YaRN keys give llama.cpp logits that differ from its YaRN logits by far more than
 * the tolerance at positions past the original context, and our YaRN logits are as far from them.
 * Position 0 is the same in both files (a rotation by angle 0, and softmax over one key cancels
 * mscale), which shows the two files hold the same weights.
 *
 * <p>Tolerance 1e-4, as for the other F32 models: same weights, F32 KV cache, no flash
 * attention; llama.cpp builds its angles in float ({@code pos * theta_scale^i}, the power by
 * repeated float products) and we in double, which at 256 positions moves a logit by well under
 * that.
 */
class Qwen2YarnMatchesLlamaCppTest {

    /** Trained context of the tiny YaRN model: positions from here on are "beyond" it. */
    private static final int ORIGINAL = 64;

    private static final int STEPS = 8;

    private static final double TOLERANCE = 1e-4;

    @TempDir static Path dir;
    private static KernelPool pool;

    @BeforeAll
    static void pool() {
        pool = new KernelPool(2);
    }

    @AfterAll
    static void closePool() {
        pool.close();
    }

    /** 240 ordinary token ids (byte-level tokens, never special), from a fixed seed. */
    private static int[] longPrompt() {
        SplittableRandom r = new SplittableRandom(2024);
        int[] ids = new int[240];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = 33 + r.nextInt(220);
        }
        return ids;
    }

    private static float[][] ourLogits(Path model, int[] ids) {
        try (LoadedModel m = LoadedModel.open(model)) {
            Qwen2Model f = m.newForward(pool, 16);
            return f.forwardAllLogits(f.newCache(ids.length), ids);
        }
    }

    private static int[] concat(int[] a, int[] b) {
        int[] r = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }

    /** Max |a - b| over positions [from, to) and the whole vocabulary. */
    private static double maxDiff(float[][] a, float[][] b, int from, int to) {
        double max = 0;
        for (int p = from; p < to; p++) {
            for (int v = 0; v < a[p].length; v++) {
                max = Math.max(max, Math.abs(a[p][v] - b[p][v]));
            }
        }
        return max;
    }

    @Test
    void yarnModelAgreesWithLlamaCppBeyondTheOriginalContext() throws Exception {
        Qwen2Config yarnConfig = TestModelGenerator.tinyYarnConfig();
        assertEquals(256, yarnConfig.maxPositionEmbeddings());
        Qwen2Config plainConfig = yarnConfig.withRopeScaling(RopeScaling.NONE, 256);
        Path yarn = dir.resolve("tiny-yarn-f32.gguf");
        Path plain = dir.resolve("tiny-yarn-weights-without-yarn-f32.gguf");
        new TestModelGenerator(yarnConfig, 5).write(TestModelGenerator.Format.GGUF, DType.F32, yarn, 0);
        new TestModelGenerator(plainConfig, 5).write(TestModelGenerator.Format.GGUF, DType.F32, plain, 0);

        int[] prompt = longPrompt();
        LlamaCppOracle.Result refYarn = LlamaCppOracle.run(yarn, prompt, STEPS, 2);
        int[] all = concat(prompt, refYarn.greedy);
        assertEquals(all.length, refYarn.logits.length);
        // the plain file, teacher-forced on the same ids (its own greedy continuation is not used)
        LlamaCppOracle.Result refPlain = LlamaCppOracle.run(plain, all, 0, 2);
        assertEquals(all.length, refPlain.logits.length);

        float[][] ours = ourLogits(yarn, all);
        float[][] oursPlain = ourLogits(plain, all);
        int n = all.length;
        double within = maxDiff(ours, refYarn.logits, 0, ORIGINAL);
        double beyond = maxDiff(ours, refYarn.logits, ORIGINAL, n);
        double llamaYarnVsPlain = maxDiff(refYarn.logits, refPlain.logits, ORIGINAL, n);
        double oursVsLlamaPlain = maxDiff(ours, refPlain.logits, ORIGINAL, n);
        double plainAgreement = maxDiff(oursPlain, refPlain.logits, 0, n);
        double positionZero = maxDiff(refYarn.logits, refPlain.logits, 0, 1);
        System.out.printf(
                Locale.ROOT,
                "tiny-yarn F32 (original context %d, factor 4, %d positions): max |logit - llama.cpp| = %.3g at"
                        + " positions 0..%d, %.3g at positions %d..%d; llama.cpp with vs without YaRN at positions"
                        + " >= %d: %.3g (ours with YaRN vs llama.cpp without: %.3g); without YaRN, ours vs"
                        + " llama.cpp: %.3g; position 0 with vs without: %.3g; %s%n",
                ORIGINAL, n, within, ORIGINAL - 1, beyond, ORIGINAL, n - 1, ORIGINAL, llamaYarnVsPlain,
                oursVsLlamaPlain, plainAgreement, positionZero, refYarn.provenance);

        assertTrue(within <= TOLERANCE, "YaRN logits within the original context differ by " + within);
        assertTrue(beyond <= TOLERANCE, "YaRN logits beyond the original context differ by " + beyond);
        assertTrue(plainAgreement <= TOLERANCE, "the same weights without YaRN differ by " + plainAgreement);
        // same weights in both files: position 0 does not see RoPE
        assertTrue(positionZero <= TOLERANCE, "position 0 with and without YaRN differs by " + positionZero);
        // llama.cpp applied YaRN: its far logits moved far more than the tolerance, and so did ours
        assertTrue(llamaYarnVsPlain > 1000 * TOLERANCE, "llama.cpp's YaRN changed far logits by only " + llamaYarnVsPlain);
        assertTrue(oursVsLlamaPlain > 1000 * TOLERANCE, "our YaRN changed far logits by only " + oursVsLlamaPlain);
        // greedy continuations agree where llama.cpp's top two are not a near-tie
        int[] ourGreedy = greedyFromLogits(ours, prompt.length, STEPS);
        assertArrayEquals(Arrays.copyOf(refYarn.greedy, STEPS), ourGreedy, "greedy ids after the long prompt");
    }

    /** The argmax of the teacher-forced logits after the prompt and after each greedy id. */
    private static int[] greedyFromLogits(float[][] logits, int promptLength, int steps) {
        int[] ids = new int[steps];
        for (int s = 0; s < steps; s++) {
            float[] row = logits[promptLength - 1 + s];
            int best = 0;
            for (int v = 1; v < row.length; v++) {
                best = row[v] > row[best] ? v : best;
            }
            ids[s] = best;
        }
        return ids;
    }

    /**
     * The Hugging Face copy of the model carries YaRN in {@code config.json} {@code rope_scaling}
     * and gives the same logits as the GGUF copy at every position (bit for bit: the same
     * numbers and the same tables), so it agrees with llama.cpp just as well.
     */
    @Test
    void safetensorsCopyWithRopeScalingGivesTheSameLogitsAsTheGguf() throws Exception {
        TestModelGenerator gen = new TestModelGenerator(TestModelGenerator.tinyYarnConfig(), 9);
        Path gguf = dir.resolve("same-yarn.gguf");
        Path hf = dir.resolve("same-yarn-hf");
        gen.write(TestModelGenerator.Format.GGUF, DType.F32, gguf, 0);
        gen.write(TestModelGenerator.Format.HF, DType.F32, hf, 0);
        String configJson = Files.readString(hf.resolve("config.json"), StandardCharsets.UTF_8);
        assertTrue(configJson.contains("\"rope_scaling\"") && configJson.contains("\"yarn\"")
                && configJson.contains("\"original_max_position_embeddings\" : 64"), configJson);
        try (LoadedModel g = LoadedModel.open(gguf);
                LoadedModel h = LoadedModel.open(hf)) {
            assertEquals("safetensors", h.format());
            // (rms_norm_eps differs in its last bits: GGUF stores it as float32)
            assertEquals(RopeScaling.yarn(4, 64), g.config().ropeScaling());
            assertEquals(RopeScaling.yarn(4, 64), h.config().ropeScaling());
            assertEquals(256, g.config().maxPositionEmbeddings());
            assertEquals(256, h.config().maxPositionEmbeddings());
        }
        int[] ids = longPrompt();
        float[][] fromGguf = ourLogits(gguf, ids);
        float[][] fromHf = ourLogits(hf, ids);
        for (int p = 0; p < ids.length; p++) {
            assertArrayEquals(fromGguf[p], fromHf[p], 0f, "position " + p);
        }
    }
}
