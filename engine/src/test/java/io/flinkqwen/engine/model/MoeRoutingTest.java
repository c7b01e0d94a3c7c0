/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/** The routing rule of HF {@code Qwen2MoeSparseMoeBlock}: softmax over all, top-k, optional renorm. */
class MoeRoutingTest {

    private static final float[] LOGITS = {0.5f, 2.0f, -1.0f, 1.0f, 0.0f, 1.5f};

    private static double[] softmax(float[] x) {
        double max = Double.NEGATIVE_INFINITY;
        for (float v : x) {
            max = Math.max(max, v);
        }
        double sum = 0;
        double[] p = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            p[i] = Math.exp(x[i] - max);
            sum += p[i];
        }
        for (int i = 0; i < x.length; i++) {
            p[i] /= sum;
        }
        return p;
    }

    @Test
    void moeBlockDoesNotRenormaliseTopKWhenNormTopkProbIsFalse() {
        int[] ids = new int[3];
        float[] w = new float[3];
        MoeBlock.route(LOGITS, 0, LOGITS.length, 3, false, ids, w, 0);
        double[] p = softmax(LOGITS);
        assertArrayEquals(new int[] {1, 5, 3}, ids);
        // the softmax over all six experts, not over the three chosen
        assertEquals(p[1], w[0], 1e-6);
        assertEquals(p[5], w[1], 1e-6);
        assertEquals(p[3], w[2], 1e-6);
        double sum = w[0] + w[1] + w[2];
        assertEquals(p[1] + p[5] + p[3], sum, 1e-6);
        assertEquals(0.829, sum, 1e-3); // < 1: the other experts' share is dropped
    }

    @Test
    void moeBlockRenormalisesTopKWhenNormTopkProbIsTrue() {
        int[] ids = new int[3];
        float[] w = new float[3];
        MoeBlock.route(LOGITS, 0, LOGITS.length, 3, true, ids, w, 0);
        double[] p = softmax(LOGITS);
        double top = p[1] + p[5] + p[3];
        assertArrayEquals(new int[] {1, 5, 3}, ids);
        assertEquals(p[1] / top, w[0], 1e-6);
        assertEquals(p[5] / top, w[1], 1e-6);
        assertEquals(p[3] / top, w[2], 1e-6);
        assertEquals(1.0, w[0] + w[1] + w[2], 1e-6);
    }

    @Test
    void routeReadsAndWritesAtTheGivenOffsets() {
        float[] logits = new float[10];
        System.arraycopy(LOGITS, 0, logits, 4, LOGITS.length);
        logits[0] = 100; // not this token's: must be ignored
        int[] ids = {-7, -7, -7, -7};
        float[] w = new float[4];
        MoeBlock.route(logits, 4, LOGITS.length, 2, false, ids, w, 2);
        assertArrayEquals(new int[] {-7, -7, 1, 5}, ids);
        assertEquals(0f, w[0]);
        assertEquals(softmax(LOGITS)[1], w[2], 1e-6);
    }
}
