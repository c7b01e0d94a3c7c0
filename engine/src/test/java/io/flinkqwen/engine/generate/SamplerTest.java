/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.generate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

class SamplerTest {

    private static final float[] LOGITS = {1f, 3f, 2f, 3f, -1f, 0.5f};

    @Test
    void greedyTakesTheArgmaxAndBreaksTiesToTheLowerId() {
        assertEquals(1, new Sampler(SamplingParams.greedy(1)).sample(LOGITS, LOGITS.length));
    }

    @Test
    void topKOneIsGreedyWhateverTheTemperature() {
        Sampler s = new Sampler(new SamplingParams(5f, 1, 1f, 3, 1, null));
        for (int i = 0; i < 50; i++) {
            assertEquals(1, s.sample(LOGITS, LOGITS.length));
        }
    }

    @Test
    void topKKeepsOnlyTheKBest() {
        Sampler s = new Sampler(new SamplingParams(100f, 3, 1f, 5, 1, null));
        Set<Integer> seen = new HashSet<>();
        for (int i = 0; i < 2000; i++) {
            seen.add(s.sample(LOGITS, LOGITS.length));
        }
        assertEquals(Set.of(1, 3, 2), seen);
    }

    @Test
    void topPKeepsTheSmallestPrefixReachingP() {
        // probabilities at T=1: ids 1 and 3 hold e^3 each, id 2 e^2; 1+3 hold ~0.62 of the mass
        Sampler s = new Sampler(new SamplingParams(1f, 0, 0.6f, 9, 1, null));
        Set<Integer> seen = new HashSet<>();
        for (int i = 0; i < 2000; i++) {
            seen.add(s.sample(LOGITS, LOGITS.length));
        }
        assertEquals(Set.of(1, 3), seen);
    }

    @Test
    void samplingFollowsTheSoftmaxDistribution() {
        float[] logits = {0f, (float) Math.log(3)}; // p = 0.25, 0.75
        Sampler s = new Sampler(new SamplingParams(1f, 0, 1f, 123, 1, null));
        int ones = 0;
        int n = 20000;
        for (int i = 0; i < n; i++) {
            ones += s.sample(logits, 2);
        }
        assertEquals(0.75, ones / (double) n, 0.015);
    }

    @Test
    void sameSeedSameStreamOtherSeedOtherStream() {
        int[] a = draw(42);
        assertArrayEquals(a, draw(42));
        assertNotEquals(java.util.Arrays.toString(a), java.util.Arrays.toString(draw(43)));
    }

    private static int[] draw(long seed) {
        Sampler s = new Sampler(new SamplingParams(2f, 0, 1f, seed, 1, null));
        int[] out = new int[64];
        for (int i = 0; i < out.length; i++) {
            out[i] = s.sample(LOGITS, LOGITS.length);
        }
        return out;
    }

    @Test
    void topCandidatesAreSortedBestFirst() {
        assertArrayEquals(new int[] {1, 3, 2, 0}, new Sampler(new SamplingParams(1f, 4, 1f, 0, 1, null)).topCandidates(LOGITS, 6));
    }

    @Test
    void paramsRejectNonsense() {
        assertThrows(IllegalArgumentException.class, () -> new SamplingParams(-1f, 0, 1f, 0, 1, null));
        assertThrows(IllegalArgumentException.class, () -> new SamplingParams(1f, -2, 1f, 0, 1, null));
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> new SamplingParams(1f, 0, 0f, 0, 1, null));
        assertTrue(e.getMessage().contains("top-p"));
        assertThrows(IllegalArgumentException.class, () -> new SamplingParams(1f, 0, 1f, 0, -1, null));
    }

    @Test
    void samplingARowOfABatchEqualsSamplingACopyOfIt() {
        int vocab = 300;
        float[] batch = new float[3 * vocab];
        java.util.Random rnd = new java.util.Random(4);
        for (int i = 0; i < batch.length; i++) {
            batch[i] = (float) rnd.nextGaussian() * 3;
        }
        for (SamplingParams p : new SamplingParams[] {
            SamplingParams.greedy(5), new SamplingParams(0.8f, 40, 0.9f, 11, 5, null), new SamplingParams(1.1f, 0, 1f, 12, 5, null)
        }) {
            Sampler inPlace = new Sampler(p);
            Sampler copied = new Sampler(p);
            for (int step = 0; step < 20; step++) {
                for (int row = 0; row < 3; row++) {
                    float[] copy = java.util.Arrays.copyOfRange(batch, row * vocab, (row + 1) * vocab);
                    assertEquals(copied.sample(copy, vocab), inPlace.sample(batch, row * vocab, vocab), p + " row " + row);
                }
            }
        }
    }
}
