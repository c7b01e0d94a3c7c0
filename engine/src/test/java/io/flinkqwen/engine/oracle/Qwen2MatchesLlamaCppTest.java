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
import io.flinkqwen.engine.generate.Generator;
import io.flinkqwen.engine.generate.SamplingParams;
import io.flinkqwen.engine.model.Qwen2Model;
import io.flinkqwen.engine.testmodel.TestModelGenerator;
import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.KernelPool;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Our Qwen2 forward pass against llama.cpp's {@code qwen2} on the same GGUF file: greedy ids for
 * 32 steps and teacher-forced logits at every position, per weight format.
 *
 * <p>Tolerances, and why: F32 weights are the same numbers on both sides and llama.cpp runs
 * with an F32 KV cache and no flash attention, so only summation order differs (1e-4). For the
 * other formats llama.cpp rounds the activations before its matrix products (to F16 for F16
 * and BF16 weights, to Q8_0 blocks for Q8_0 and Q4_0 weights), while we multiply dequantized
 * weights by F32 activations; the budgets below cover that rounding, measured on these models
 * (whose logits spread over about +-12) with a margin, and are printed by the test.
 */
class Qwen2MatchesLlamaCppTest {

    private static final int STEPS = LlamaCppAgreement.STEPS;
    private static final int[] PROMPT = LlamaCppAgreement.PROMPT;

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

    @ParameterizedTest(name = "{0}")
    @CsvSource({
        // dtype, teacher-forced logit tolerance, greedy steps that must agree
        // measured on this model: F32 9.5e-6, F16 0.012, BF16 0.095, Q8_0 0.35, Q4_0 0.32
        "F32,  1e-4, 32",
        "F16,  3e-2, 32",
        "BF16, 1.5e-1, 16",
        "Q8_0, 5e-1, 16",
        "Q4_0, 5e-1, 16",
    })
    void ggufAgreesWithLlamaCpp(DType dtype, double tolerance, int mustAgree) throws Exception {
        compare(TestModelGenerator.tinyConfig(), "tiny", dtype, tolerance, mustAgree);
    }

    /** Tied embeddings: the LM head reads the embedding matrix (Qwen2-0.5B/1.5B). */
    @Test
    void tiedEmbeddingModelAgreesWithLlamaCpp() throws Exception {
        compare(TestModelGenerator.tinyTiedConfig(), "tiny-tied", DType.F32, 1e-4, STEPS);
    }

    private void compare(Qwen2Config config, String name, DType dtype, double tolerance, int mustAgree) throws Exception {
        Path gguf = dir.resolve(name + "-" + dtype + ".gguf");
        new TestModelGenerator(config, 7).write(TestModelGenerator.Format.GGUF, dtype, gguf, 0);
        LlamaCppAgreement.check(gguf, name + " " + dtype, PROMPT, STEPS, tolerance, mustAgree, pool);
    }

    @Test
    void safetensorsCopyGivesTheSameIdsAsTheGguf() throws Exception {
        TestModelGenerator gen = new TestModelGenerator(TestModelGenerator.tinyConfig(), 11);
        Path gguf = dir.resolve("same.gguf");
        Path hf = dir.resolve("same-hf");
        gen.write(TestModelGenerator.Format.GGUF, DType.F32, gguf, 0);
        gen.write(TestModelGenerator.Format.HF, DType.F32, hf, 0);
        int[] fromGguf;
        int[] fromHf;
        float[] lastGguf;
        float[] lastHf;
        try (LoadedModel m = LoadedModel.open(gguf)) {
            Qwen2Model f = m.newForward(pool, 8);
            fromGguf = new Generator(f).generate(PROMPT, SamplingParams.greedy(STEPS), null).ids();
            lastGguf = f.forward(f.newCache(16), PROMPT, 0, PROMPT.length).clone();
        }
        try (LoadedModel m = LoadedModel.open(hf)) {
            assertEquals("safetensors", m.format());
            Qwen2Model f = m.newForward(pool, 8);
            fromHf = new Generator(f).generate(PROMPT, SamplingParams.greedy(STEPS), null).ids();
            lastHf = f.forward(f.newCache(16), PROMPT, 0, PROMPT.length).clone();
        }
        assertEquals(STEPS, fromGguf.length);
        assertArrayEquals(fromGguf, fromHf);
        // same numbers in both files: the logits are bit-identical
        assertArrayEquals(lastGguf, lastHf, 0f);
        // and the GGUF copy agrees with llama.cpp
        assertArrayEquals(LlamaCppOracle.run(gguf, PROMPT, STEPS, 2).greedy, fromGguf);
    }
}
