/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.serve;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.flinkqwen.engine.LoadedModel;
import io.flinkqwen.engine.generate.Generator;
import io.flinkqwen.engine.generate.SamplingParams;
import io.flinkqwen.engine.model.KvFormat;
import io.flinkqwen.engine.testmodel.TestModelGenerator;
import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.KernelPool;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Paged KV with prefix sharing in the engine: requests whose prompts start with the same full
 * blocks share them (and skip their prefill), give the ids a private cache gives, and fit more
 * idle keys into one budget. Block counts are worked out by hand from the tiny model's shape
 * (3 layers, KV width 64) and blocks of 16 positions.
 */
class PrefixSharingTest {

    /** One block, F32: keys and values, 3 layers, 16 positions, 64 floats. */
    static final long BLOCK_BYTES = 2L * 3 * 16 * 64 * Float.BYTES;

    @TempDir static Path dir;
    static LoadedModel model;
    static KernelPool pool;

    @BeforeAll
    static void load() throws Exception {
        Path gguf = dir.resolve("tiny.gguf");
        new TestModelGenerator(TestModelGenerator.tinyConfig(), 8).write(TestModelGenerator.Format.GGUF, DType.F32, gguf, 0);
        model = LoadedModel.open(gguf);
        pool = new KernelPool(2);
    }

    @AfterAll
    static void close() {
        model.close();
        pool.close();
    }

    /** {@code shared} ids common to every key, then {@code own} ids of key {@code k}. */
    static int[] prompt(int shared, int own, int k) {
        int[] p = new int[shared + own];
        for (int i = 0; i < shared; i++) {
            p[i] = (13 * i + 5) % 500;
        }
        for (int i = 0; i < own; i++) {
            p[shared + i] = (101 * k + 7 * i + 1) % 500;
        }
        return p;
    }

    private static int[] expected(int[] prompt, int maxNew) {
        return new Generator(model.newForward(pool, 16, KvFormat.F32)).generate(prompt, SamplingParams.greedy(maxNew), null).ids();
    }

    @Test
    void aSecondKeyAdoptsTheFullBlocksOfACommonPrefixSkipsTheirPrefillAndGivesTheSameIds() throws Exception {
        try (ContinuousBatchingEngine engine = new ContinuousBatchingEngine(model.newForward(pool, 16, KvFormat.F32), 2, 4)) {
            int[] a = prompt(40, 5, 1);
            int[] b = prompt(40, 5, 2);
            GenerationResult ra = engine.submit(new GenerationRequest("a", "a", a, SamplingParams.greedy(4))).get(60, TimeUnit.SECONDS);
            GenerationResult rb = engine.submit(new GenerationRequest("b", "b", b, SamplingParams.greedy(4))).get(60, TimeUnit.SECONDS);
            assertArrayEquals(expected(a, 4), ra.ids());
            assertArrayEquals(expected(b, 4), rb.ids());
            // 40 common ids = 2 full blocks of 16 (32 positions) shared; the 8 after them are not
            assertEquals(32, engine.sharedPrefixTokens());
            assertEquals(45 + 13, engine.prefilledTokens());
            // a holds 45 + 3 fed = 48 positions, 3 blocks; b shares 2 of them and has 1 of its own
            int fedA = 45 + ra.ids().length - 1;
            int fedB = 45 + rb.ids().length - 1;
            int blocks = (fedA + 15) / 16 + (fedB + 15) / 16 - 2;
            assertEquals(blocks * BLOCK_BYTES, engine.stats().kvBytesInUse(), engine.stats().toString());
            assertEquals(blocks * BLOCK_BYTES, engine.stats().idleKvBytes());
        }
    }

    @Test
    void aPromptOfWholeSharedBlocksCopiesTheLastBlockBeforeWritingAndLeavesTheOwnersContextIntact() throws Exception {
        try (ContinuousBatchingEngine engine = new ContinuousBatchingEngine(model.newForward(pool, 16, KvFormat.F32), 2, 4)) {
            int[] same = prompt(32, 0, 0);
            GenerationResult ra = engine.submit(new GenerationRequest("a", "a", same, SamplingParams.greedy(5))).get(60, TimeUnit.SECONDS);
            // b: the same 32 ids; both blocks are a's, the last prompt token runs in a copy of block 2
            GenerationResult rb = engine.submit(new GenerationRequest("b", "b", same, SamplingParams.greedy(5))).get(60, TimeUnit.SECONDS);
            assertArrayEquals(expected(same, 5), ra.ids());
            assertArrayEquals(ra.ids(), rb.ids());
            assertEquals(31, engine.sharedPrefixTokens());
            assertEquals(32 + 1, engine.prefilledTokens());
            // a goes on from its own cache: b's writes went to b's copy
            int[] next = new int[32 + ra.ids().length + 2];
            System.arraycopy(same, 0, next, 0, 32);
            System.arraycopy(ra.ids(), 0, next, 32, ra.ids().length);
            next[next.length - 2] = 9;
            next[next.length - 1] = 10;
            GenerationResult ra2 = engine.submit(new GenerationRequest("a2", "a", next, SamplingParams.greedy(5))).get(60, TimeUnit.SECONDS);
            assertArrayEquals(expected(next, 5), ra2.ids());
        }
    }

    /**
     * Eight keys, each a 48-id common prompt (3 blocks) and 3 ids of its own, 2 new tokens: 52
     * positions each once idle, 4 blocks. In a budget of 10 blocks, private caches keep 2 idle
     * keys (6 evictions); shared, the 3 common blocks plus 1 per key keep 7 (1 eviction).
     */
    @Test
    void sharingACommonPromptKeepsMoreIdleKeysWithinTheSameBudget() throws Exception {
        int[] evictions = new int[2];
        for (int sharing = 0; sharing < 2; sharing++) {
            try (ContinuousBatchingEngine engine = new ContinuousBatchingEngine(
                    model.newForward(pool, 16, KvFormat.F32), 1, 4, 10 * BLOCK_BYTES, sharing == 1)) {
                for (int k = 0; k < 8; k++) {
                    int[] p = prompt(48, 3, k);
                    GenerationResult r = engine.submit(new GenerationRequest("k" + k, "k" + k, p, SamplingParams.greedy(2))).get(60, TimeUnit.SECONDS);
                    assertArrayEquals(expected(p, 2), r.ids(), "key " + k + (sharing == 1 ? " shared" : " private"));
                }
                evictions[sharing] = (int) engine.evictions();
                assertEquals(sharing == 1 ? 7 * 48 : 0, engine.sharedPrefixTokens());
            }
        }
        assertEquals(6, evictions[0], "private caches: 2 of 8 keys stay");
        assertEquals(1, evictions[1], "shared prefix: 7 of 8 keys stay");
    }

    @Test
    void sharedAndPrivateCachesGiveTheSameIdsInEveryKvFormat() throws Exception {
        for (KvFormat f : KvFormat.values()) {
            int[][] results = new int[2][];
            for (int sharing = 0; sharing < 2; sharing++) {
                try (ContinuousBatchingEngine engine = new ContinuousBatchingEngine(
                        model.newForward(pool, 16, f), 2, 4, 256L << 20, sharing == 1)) {
                    engine.submit(new GenerationRequest("a", "a", prompt(40, 2, 1), SamplingParams.greedy(3))).get(60, TimeUnit.SECONDS);
                    results[sharing] = engine.submit(new GenerationRequest("b", "b", prompt(40, 2, 2), SamplingParams.greedy(6)))
                            .get(60, TimeUnit.SECONDS).ids();
                    assertEquals(sharing == 1 ? 32 : 0, engine.sharedPrefixTokens(), f.toString());
                }
            }
            // the shared blocks hold what b's own prefill would have written, bit for bit
            assertArrayEquals(results[0], results[1], f.toString());
        }
    }
}
