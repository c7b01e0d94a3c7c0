/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.engine.LoadedModel;
import io.flinkqwen.engine.testmodel.TestModelGenerator;
import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.KernelPool;
import io.flinkqwen.kernels.backend.CpuKernelBackend;
import io.flinkqwen.kernels.backend.KernelBackend;
import io.flinkqwen.kernels.backend.KernelBackends;
import java.nio.file.Path;
import java.util.Locale;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * A tiny dense and a tiny MoE model give the same greedy ids on an accelerator backend as on the
 * CPU, and logits within a stated tolerance at every step, on the per-op path (each op its own
 * device call; {@link ResidentDecodeTest} covers the dense resident decode step). The backend comes from {@code
 * flinkqwen.test.backend} (default {@code tornado}); where it is absent or has no device the tests
 * are reported as not run, with the reason.
 *
 * <p>Random-weight models have near-ties: ids are compared up to the first step whose CPU top-2
 * gap is below {@link #GAP}, after which the two runs may rightly part.
 */
class KernelBackendModelTest {

    /** Largest |device - cpu| logit difference allowed (float sums in another order). */
    static final double LOGIT_TOL = 2e-3;
    /**
     * Top-2 gaps below this end the id comparison: with both runs' logits within {@link
     * #LOGIT_TOL}, a larger gap cannot flip the argmax.
     */
    static final double GAP = 2 * LOGIT_TOL;
    static final int[] PROMPT = {84, 104, 101, 32, 108, 111, 103, 300, 257, 19};
    static final int NEW_TOKENS = 12;

    @TempDir static Path dir;
    static KernelPool pool;
    static KernelBackend device;
    static String unavailable;

    @BeforeAll
    static void open() {
        pool = new KernelPool(2);
        String name = System.getProperty("flinkqwen.test.backend", "tornado");
        try {
            device = KernelBackends.select(name);
        } catch (IllegalArgumentException e) {
            unavailable = e.getMessage();
        }
    }

    @AfterAll
    static void close() {
        pool.close();
    }

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"dense, F32", "dense, F16", "dense, Q8_0", "moe, F32", "moe, Q8_0"})
    void deviceGivesTheCpuGreedyIds(String arch, DType dtype) throws Exception {
        Assumptions.assumeTrue(device != null, () -> "accelerator backend not run: " + unavailable);
        Path file = dir.resolve(arch + "-" + dtype + ".gguf");
        TestModelGenerator gen = arch.equals("moe")
                ? new TestModelGenerator(TestModelGenerator.tinyMoeConfig(), 11)
                : new TestModelGenerator(TestModelGenerator.tinyConfig(), 11);
        gen.write(TestModelGenerator.Format.GGUF, dtype, file, 0);
        try (LoadedModel m = LoadedModel.open(file)) {
            Qwen2Model cpu = new Qwen2Model(m.config(), m.weights(), pool, 4, m.moeConfig().orElse(null), cpuLike(device));
            Qwen2Model dev = new Qwen2Model(m.config(), m.weights(), pool, 4, m.moeConfig().orElse(null), device);
            dev.residentDecode(false); // the per-op path; ResidentDecodeTest checks the resident one
            KvCache cpuCache = cpu.newCache(8);
            KvCache devCache = dev.newCache(8);
            float[] a = cpu.forward(cpuCache, PROMPT, 0, PROMPT.length); // prefill in chunks of 4
            float[] b = dev.forward(devCache, PROMPT, 0, PROMPT.length);
            int compared = 0;
            double worst = 0;
            for (int step = 0; step < NEW_TOKENS; step++) {
                worst = Math.max(worst, Logits.maxDiff(a, b));
                assertTrue(worst <= LOGIT_TOL, String.format(Locale.ROOT,
                        "%s %s step %d: max |device - cpu| logit = %.3g > %.3g", arch, dtype, step, worst, LOGIT_TOL));
                int id = Logits.argmax(a);
                if (Logits.topTwoGap(a) < GAP) {
                    break;
                }
                assertEquals(id, Logits.argmax(b), arch + " " + dtype + " greedy id at step " + step);
                compared++;
                int[] next = {id};
                a = cpu.forward(cpuCache, next, 0, 1);
                b = dev.forward(devCache, next, 0, 1);
            }
            System.out.printf(Locale.ROOT, "%s %s on %s: %d greedy ids equal, max |device - cpu| logit %.3g%n",
                    arch, dtype, device.name(), compared, worst);
            assertTrue(compared >= 4, "only " + compared + " steps before a near-tie: choose another seed");
        }
    }

    /** Several sequences decoded together (one forward pass per step, as the engine batches them). */
    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"dense, Q8_0", "moe, F16"})
    void batchedDecodeOnTheDeviceMatchesTheCpu(String arch, DType dtype) throws Exception {
        Assumptions.assumeTrue(device != null, () -> "accelerator backend not run: " + unavailable);
        Path file = dir.resolve("batch-" + arch + "-" + dtype + ".gguf");
        TestModelGenerator gen = arch.equals("moe")
                ? new TestModelGenerator(TestModelGenerator.tinyMoeConfig(), 12)
                : new TestModelGenerator(TestModelGenerator.tinyConfig(), 12);
        gen.write(TestModelGenerator.Format.GGUF, dtype, file, 0);
        try (LoadedModel m = LoadedModel.open(file)) {
            Qwen2Model cpu = new Qwen2Model(m.config(), m.weights(), pool, 4, m.moeConfig().orElse(null), cpuLike(device));
            Qwen2Model dev = new Qwen2Model(m.config(), m.weights(), pool, 4, m.moeConfig().orElse(null), device);
            int seqs = 3;
            KvCache[] cpuCaches = new KvCache[seqs];
            KvCache[] devCaches = new KvCache[seqs];
            for (int s = 0; s < seqs; s++) {
                cpuCaches[s] = cpu.newCache(8);
                devCaches[s] = dev.newCache(8);
                int[] prompt = java.util.Arrays.copyOfRange(PROMPT, s, s + 3 + s);
                cpu.forward(cpuCaches[s], prompt, 0, prompt.length);
                dev.forward(devCaches[s], prompt, 0, prompt.length);
            }
            int vocab = m.config().vocabSize();
            int[] tokens = {7, 90, 300};
            for (int step = 0; step < 4; step++) {
                float[] a = cpu.forwardBatch(cpuCaches, tokens, seqs).clone();
                float[] b = dev.forwardBatch(devCaches, tokens, seqs);
                for (int s = 0; s < seqs; s++) {
                    double diff = 0;
                    for (int v = 0; v < vocab; v++) {
                        diff = Math.max(diff, Math.abs(a[s * vocab + v] - b[s * vocab + v]));
                    }
                    assertTrue(diff <= LOGIT_TOL, String.format(Locale.ROOT,
                            "%s %s batch step %d sequence %d: max |device - cpu| logit %.3g", arch, dtype, step, s, diff));
                    tokens[s] = Logits.argmax(java.util.Arrays.copyOfRange(a, s * vocab, (s + 1) * vocab));
                }
            }
        }
    }

    /**
     * The CPU backend that multiplies Q8_0 weights as {@code device} does: with the activations
     * rounded to Q8_0 blocks, or as they are.
     */
    static CpuKernelBackend cpuLike(KernelBackend device) {
        return device.roundsQ8_0Activations() ? CpuKernelBackend.INSTANCE : CpuKernelBackend.FLOAT_ACTIVATIONS;
    }
}
