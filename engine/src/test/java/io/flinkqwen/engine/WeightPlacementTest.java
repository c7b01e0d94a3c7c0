/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.engine.model.KvCache;
import io.flinkqwen.engine.model.Qwen2Model;
import io.flinkqwen.engine.testmodel.TestModelGenerator;
import io.flinkqwen.engine.weights.WeightPlacement;
import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.KernelPool;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Weights packed onto the heap give the very bits the mapped file gives, dense and MoE. */
class WeightPlacementTest {

    @TempDir static Path dir;

    private static final int[] PROMPT = {5, 17, 3, 99, 42, 7, 250, 1};

    /** Logits of a prefill then three decode steps, all concatenated. */
    private static float[] run(LoadedModel m) {
        try (KernelPool pool = new KernelPool(2)) {
            Qwen2Model model = m.newForward(pool, 4); // chunks of 4: prefill takes the GEMM path twice
            KvCache cache = model.newCache(16);
            int vocab = m.config().vocabSize();
            float[] all = new float[4 * vocab];
            System.arraycopy(model.forward(cache, PROMPT, 0, PROMPT.length), 0, all, 0, vocab);
            int[] one = {11};
            for (int s = 1; s < 4; s++) {
                System.arraycopy(model.forward(cache, one, 0, 1), 0, all, s * vocab, vocab);
                one[0] += 13;
            }
            return all;
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class)
    void denseModelGivesTheSameLogitsPackedAndMapped(DType dtype) throws Exception {
        Path file = dir.resolve("dense-" + dtype + ".gguf");
        new TestModelGenerator(TestModelGenerator.tinyConfig(), 5).write(TestModelGenerator.Format.GGUF, dtype, file, 0);
        float[] mapped;
        try (LoadedModel m = LoadedModel.open(file, WeightPlacement.MAPPED)) {
            assertFalse(m.weights().onHeap());
            mapped = run(m);
        }
        try (LoadedModel m = LoadedModel.open(file, WeightPlacement.HEAP)) {
            // Q4_0 has no packed layout yet: it stays mapped, and says so
            assertEquals(dtype != DType.Q4_0, m.weights().onHeap(), dtype + " on the heap");
            assertArrayEquals(mapped, run(m), dtype + ": packed and mapped logits differ");
        }
    }

    @Test
    void moeModelGivesTheSameLogitsPackedAndMapped() throws Exception {
        Path hf = dir.resolve("moe-hf");
        new TestModelGenerator(TestModelGenerator.tinyMoeMixedConfig(), 6).write(TestModelGenerator.Format.HF, DType.F16, hf, 0);
        float[] mapped;
        try (LoadedModel m = LoadedModel.open(hf, WeightPlacement.MAPPED)) {
            mapped = run(m);
        }
        try (LoadedModel m = LoadedModel.open(hf, WeightPlacement.HEAP)) {
            assertTrue(m.weights().onHeap());
            assertArrayEquals(mapped, run(m));
        }
    }

    @Test
    void autoPacksATinyModelAndTheDefaultIsAuto() throws Exception {
        Path file = dir.resolve("auto.gguf");
        new TestModelGenerator(TestModelGenerator.tinyConfig(), 7).write(TestModelGenerator.Format.GGUF, DType.Q8_0, file, 0);
        try (LoadedModel m = LoadedModel.open(file)) {
            assertTrue(m.weights().onHeap());
            assertTrue(m.weights().packedBytes() > 0);
        }
    }

    @Test
    void placementRules() {
        long gib = 1L << 30;
        // auto spares a quarter of the maximum heap, at least 512 MiB
        assertTrue(WeightPlacement.AUTO.packs(3 * gib, 5 * gib, 8 * gib));
        assertFalse(WeightPlacement.AUTO.packs(3 * gib + 1, 5 * gib, 8 * gib), "2 GiB of an 8 GiB heap stay free");
        assertTrue(WeightPlacement.AUTO.packs(gib / 2, gib, gib));
        assertFalse(WeightPlacement.AUTO.packs(gib / 2 + 1, gib, gib), "512 MiB stay free");
        assertFalse(WeightPlacement.MAPPED.packs(1, 100 * gib, 100 * gib));
        assertTrue(WeightPlacement.HEAP.packs(2 * gib, 2 * gib, 2 * gib));
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> WeightPlacement.HEAP.packs(3 * gib, gib, gib));
        assertTrue(e.getMessage().contains("3.00 GiB") && e.getMessage().contains("-Xmx")
                && e.getMessage().contains("flinkqwen.weights=mapped"), e.getMessage());
        assertEquals(WeightPlacement.HEAP, WeightPlacement.parse(" Heap "));
        IllegalArgumentException bad = assertThrows(IllegalArgumentException.class, () -> WeightPlacement.parse("disk"));
        assertTrue(bad.getMessage().contains("auto, heap, mapped"), bad.getMessage());
    }
}
