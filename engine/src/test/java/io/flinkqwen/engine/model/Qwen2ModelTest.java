/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.engine.LoadedModel;
import io.flinkqwen.engine.generate.Generator;
import io.flinkqwen.engine.generate.SamplingParams;
import io.flinkqwen.engine.testmodel.TestModelGenerator;
import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.KernelPool;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Our forward pass against itself (prefill chunking = decode) and against a float64 reference. */
class Qwen2ModelTest {

    @TempDir static Path dir;
    static LoadedModel model;
    static KernelPool pool;
    static final int[] IDS = {84, 104, 101, 32, 108, 111, 103, 300, 257, 19, 33, 260, 7, 90, 91, 92, 93, 94, 95};

    @BeforeAll
    static void load() throws Exception {
        Path gguf = dir.resolve("tiny.gguf");
        new TestModelGenerator(TestModelGenerator.tinyConfig(), 3).write(TestModelGenerator.Format.GGUF, DType.F32, gguf, 0);
        model = LoadedModel.open(gguf);
        pool = new KernelPool(2);
    }

    @AfterAll
    static void close() {
        model.close();
        pool.close();
    }

    @Test
    void matchesAFloat64ReferenceAtEveryPosition() {
        double[][] ref = new ReferenceQwen2(model.config(), model.weights()).logits(IDS);
        Qwen2Model f = model.newForward(pool, 5);
        float[][] ours = f.forwardAllLogits(f.newCache(4), IDS);
        double max = 0;
        for (int p = 0; p < IDS.length; p++) {
            for (int v = 0; v < ref[p].length; v++) {
                max = Math.max(max, Math.abs(ours[p][v] - ref[p][v]));
            }
        }
        assertTrue(max < 1e-4, "max |ours - float64 reference| = " + max);
    }

    /** YaRN (original context 64, factor 4) at 200 positions, most beyond the original context. */
    @Test
    void yarnModelMatchesTheFloat64ReferenceBeyondTheOriginalContext() throws Exception {
        Path gguf = dir.resolve("tiny-yarn.gguf");
        new TestModelGenerator(TestModelGenerator.tinyYarnConfig(), 4).write(TestModelGenerator.Format.GGUF, DType.F32, gguf, 0);
        int[] ids = new int[200];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = 33 + (i * 37) % 220;
        }
        try (LoadedModel yarn = LoadedModel.open(gguf)) {
            assertTrue(yarn.config().ropeScaling().isYarn());
            double[][] ref = new ReferenceQwen2(yarn.config(), yarn.weights()).logits(ids);
            Qwen2Model f = yarn.newForward(pool, 16);
            float[][] ours = f.forwardAllLogits(f.newCache(16), ids);
            double max = 0;
            for (int p = 0; p < ids.length; p++) {
                for (int v = 0; v < ref[p].length; v++) {
                    max = Math.max(max, Math.abs(ours[p][v] - ref[p][v]));
                }
            }
            assertTrue(max < 1e-4, "max |ours - float64 reference| with YaRN = " + max);
        }
    }

    @Test
    void prefillInChunksEqualsTokenByTokenDecode() {
        Qwen2Model whole = model.newForward(pool, 64);
        float[] a = whole.forward(whole.newCache(64), IDS, 0, IDS.length).clone();
        Qwen2Model chunked = model.newForward(pool, 3);
        float[] b = chunked.forward(chunked.newCache(2), IDS, 0, IDS.length).clone();
        Qwen2Model oneByOne = model.newForward(pool, 1);
        KvCache cache = oneByOne.newCache(1);
        float[] c = null;
        for (int i = 0; i < IDS.length; i++) {
            c = oneByOne.forward(cache, IDS, i, 1);
        }
        assertEquals(IDS.length, cache.length());
        // a 64-token chunk takes the GEMM kernel (one FMA chain per output), 3 tokens the row-pair
        // kernel, one token the mat-vec (lane-split sums): the same sums in different orders
        assertArrayEquals(a, b, 5e-5f);
        assertArrayEquals(a, c, 5e-5f);
    }

    @Test
    void greedyGenerationIsDeterministicAndNotDegenerate() {
        Qwen2Model f = model.newForward(pool, 8);
        int[] first = new Generator(f).generate(IDS, SamplingParams.greedy(32), null).ids();
        int[] again = new Generator(f).generate(IDS, SamplingParams.greedy(32), null).ids();
        assertArrayEquals(first, again);
        long distinct = java.util.Arrays.stream(first).distinct().count();
        assertTrue(distinct >= 4, "a random model that repeats itself tests little: " + java.util.Arrays.toString(first));
    }

    @Test
    void generationStopsAtAStopTokenAndExcludesIt() {
        Qwen2Model f = model.newForward(pool, 8);
        int[] free = new Generator(f).generate(IDS, SamplingParams.greedy(8), null).ids();
        int k = firstNewToken(free);
        assertTrue(k < free.length, "no new token in " + java.util.Arrays.toString(free));
        Generator.Result r = new Generator(f).generate(IDS, SamplingParams.greedy(8, free[k]), null);
        assertEquals(Generator.StopReason.STOP_TOKEN, r.stopReason());
        assertArrayEquals(java.util.Arrays.copyOf(free, k), r.ids());
        assertEquals(Generator.StopReason.MAX_TOKENS, new Generator(f).generate(IDS, SamplingParams.greedy(8), null).stopReason());
    }

    /** The first position (after 0) whose token did not occur before it, or a.length. */
    private static int firstNewToken(int[] a) {
        for (int k = 1; k < a.length; k++) {
            boolean seen = false;
            for (int j = 0; j < k; j++) {
                seen |= a[j] == a[k];
            }
            if (!seen) {
                return k;
            }
        }
        return a.length;
    }

    @Test
    void promptLongerThanTheContextIsRejectedWithTheNumbers() {
        Qwen2Model f = model.newForward(pool, 8);
        int[] tooLong = new int[model.config().maxPositionEmbeddings() + 1];
        ContextOverflowException e =
                assertThrows(ContextOverflowException.class, () -> new Generator(f).generate(tooLong, SamplingParams.greedy(1), null));
        assertTrue(e.getMessage().contains("1025") && e.getMessage().contains("1024"), e.getMessage());
        KvCache cache = f.newCache(4);
        f.forward(cache, new int[1000], 0, 1000);
        e = assertThrows(ContextOverflowException.class, () -> f.forward(cache, new int[30], 0, 30));
        assertTrue(e.getMessage().contains("1000 tokens in context + 30 new"), e.getMessage());
    }

    @Test
    void tokenIdOutsideTheVocabularyIsRejected() {
        Qwen2Model f = model.newForward(pool, 8);
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> f.forward(f.newCache(4), new int[] {1, 512}, 0, 2));
        assertTrue(e.getMessage().contains("token id 512 at index 1"), e.getMessage());
    }

    @Test
    void batchedDecodeOfSeveralSequencesEqualsDecodingEachAlone() {
        int[][] prompts = {{5, 6, 7}, {100, 200, 300, 400, 17, 18, 19}, {42}};
        int b = prompts.length;
        int vocab = model.config().vocabSize();
        Qwen2Model alone = model.newForward(pool, 8);
        Qwen2Model batched = model.newForward(pool, 8);
        KvCache[] soloCaches = new KvCache[b];
        KvCache[] batchCaches = new KvCache[b];
        int[] next = new int[b];
        for (int i = 0; i < b; i++) {
            soloCaches[i] = alone.newCache(4);
            batchCaches[i] = batched.newCache(4);
            float[] l = alone.forward(soloCaches[i], prompts[i], 0, prompts[i].length);
            batched.forward(batchCaches[i], prompts[i], 0, prompts[i].length);
            next[i] = io.flinkqwen.engine.generate.Sampler.argmax(l, vocab);
        }
        for (int step = 0; step < 8; step++) {
            float[] rows = batched.forwardBatch(batchCaches, next.clone(), b).clone();
            for (int i = 0; i < b; i++) {
                float[] solo = alone.forward(soloCaches[i], new int[] {next[i]}, 0, 1);
                float[] row = java.util.Arrays.copyOfRange(rows, i * vocab, (i + 1) * vocab);
                assertArrayEquals(solo, row, 1e-5f, "sequence " + i + " step " + step);
                assertEquals(soloCaches[i].length(), batchCaches[i].length());
                next[i] = io.flinkqwen.engine.generate.Sampler.argmax(row, vocab);
            }
        }
        KvCache shared = batched.newCache(4);
        assertThrows(IllegalArgumentException.class, () -> batched.forwardBatch(new KvCache[] {shared, shared}, new int[] {1, 2}, 2));
    }
}
