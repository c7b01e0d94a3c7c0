/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels;

import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Outputs are convex combinations of values in [-1, 1): twins and float64 must agree within
 * {@code 1e-5 + 1e-5 * |ref|}.
 */
class AttentionTest {

    private static final int KV_HEADS = 3;

    private static double[] reference(
            float[] q, int qOff, float[] keys, float[] values, int kvBase, int kvStride,
            int headOffset, int headDim, int nPositions, float scale) {
        double[] s = new double[nPositions];
        double max = Double.NEGATIVE_INFINITY;
        for (int t = 0; t < nPositions; t++) {
            double dot = 0;
            for (int d = 0; d < headDim; d++) {
                dot += (double) q[qOff + d] * keys[kvBase + t * kvStride + headOffset + d];
            }
            s[t] = scale * dot;
            max = Math.max(max, s[t]);
        }
        double sum = 0;
        for (int t = 0; t < nPositions; t++) {
            s[t] = Math.exp(s[t] - max);
            sum += s[t];
        }
        double[] out = new double[headDim];
        for (int t = 0; t < nPositions; t++) {
            for (int d = 0; d < headDim; d++) {
                out[d] += s[t] / sum * values[kvBase + t * kvStride + headOffset + d];
            }
        }
        return out;
    }

    @Test
    void attentionMatchesScalarTwinAndFloat64() {
        Random rnd = new Random(1);
        for (int headDim : new int[] {1, 7, 8, 16, 33, 64, 128}) {
            int kvStride = KV_HEADS * headDim + 5; // padding: the stride is not tied to headDim
            for (int nPositions : new int[] {1, 2, 3, 17, 100}) {
                int kvBase = 11;
                float[] keys = Numerics.uniform(rnd, kvBase + nPositions * kvStride, 1f);
                float[] values = Numerics.uniform(rnd, kvBase + nPositions * kvStride, 1f);
                for (int head = 0; head < KV_HEADS; head++) {
                    int headOffset = head * headDim;
                    float[] q = Numerics.uniform(rnd, 4 + headDim, 3f);
                    float scale = (float) (1.0 / Math.sqrt(headDim));
                    float[] fast = new float[2 + headDim];
                    float[] scalar = new float[2 + headDim];
                    float[] scores = new float[nPositions + 7];
                    Attention.attention(fast, 2, q, 4, keys, values, kvBase, kvStride, headOffset, headDim,
                            nPositions, scale, scores);
                    Attention.attentionScalar(scalar, 2, q, 4, keys, values, kvBase, kvStride, headOffset,
                            headDim, nPositions, scale, scores);
                    double[] ref = reference(q, 4, keys, values, kvBase, kvStride, headOffset, headDim,
                            nPositions, scale);
                    for (int d = 0; d < headDim; d++) {
                        String what = "headDim " + headDim + " positions " + nPositions + " head " + head + " [" + d + "]";
                        Numerics.assertClose(ref[d], fast[2 + d], 1e-5, 1e-5, what);
                        Numerics.assertClose(ref[d], scalar[2 + d], 1e-5, 1e-5, what + " scalar");
                        Numerics.assertClose(scalar[2 + d], fast[2 + d], 1e-5, 1e-5, what + " vs twin");
                    }
                }
            }
        }
    }

    @Test
    void onePositionReturnsItsValue() {
        Random rnd = new Random(2);
        int headDim = 37;
        float[] keys = Numerics.uniform(rnd, 100, 1f);
        float[] values = Numerics.uniform(rnd, 100, 1f);
        float[] q = Numerics.uniform(rnd, headDim, 1f);
        float[] out = new float[headDim];
        Attention.attention(out, 0, q, 0, keys, values, 3, 50, 10, headDim, 1, 0.5f, new float[1]);
        Numerics.assertSameBits(values, 13, out, 0, headDim, "vector");
        Attention.attentionScalar(out, 0, q, 0, keys, values, 3, 50, 10, headDim, 1, 0.5f, new float[1]);
        Numerics.assertSameBits(values, 13, out, 0, headDim, "scalar");
    }

    @Test
    void outputMayOverwriteTheQuery() {
        Random rnd = new Random(3);
        int headDim = 64;
        float[] keys = Numerics.uniform(rnd, 20 * headDim, 1f);
        float[] values = Numerics.uniform(rnd, 20 * headDim, 1f);
        float[] q = Numerics.uniform(rnd, 3 + headDim, 2f);
        float[] out = new float[headDim];
        float[] scores = new float[20];
        Attention.attention(out, 0, q, 3, keys, values, 0, headDim, 0, headDim, 20, 0.125f, scores);
        float[] inPlace = q.clone();
        Attention.attention(inPlace, 3, inPlace, 3, keys, values, 0, headDim, 0, headDim, 20, 0.125f, scores);
        Numerics.assertSameBits(out, 0, inPlace, 3, headDim, "vector");
        Attention.attentionScalar(out, 0, q, 3, keys, values, 0, headDim, 0, headDim, 20, 0.125f, scores);
        inPlace = q.clone();
        Attention.attentionScalar(inPlace, 3, inPlace, 3, keys, values, 0, headDim, 0, headDim, 20, 0.125f, scores);
        Numerics.assertSameBits(out, 0, inPlace, 3, headDim, "scalar");
    }

    @Test
    void positionsBeyondNPositionsAreIgnored() {
        Random rnd = new Random(4);
        int headDim = 16;
        float[] keys = Numerics.uniform(rnd, 10 * headDim, 1f);
        float[] values = Numerics.uniform(rnd, 10 * headDim, 1f);
        float[] q = Numerics.uniform(rnd, headDim, 1f);
        float[] a = new float[headDim];
        Attention.attention(a, 0, q, 0, keys, values, 0, headDim, 0, headDim, 6, 0.25f, new float[6]);
        Arrays.fill(keys, 6 * headDim, keys.length, 100f); // later, not yet visible positions
        Arrays.fill(values, 6 * headDim, values.length, Float.NaN);
        float[] b = new float[headDim];
        Attention.attention(b, 0, q, 0, keys, values, 0, headDim, 0, headDim, 6, 0.25f, new float[6]);
        Numerics.assertSameBits(a, 0, b, 0, headDim, "causal");
    }

    @Test
    void rejectsTooFewScoresOrNoPositions() {
        float[] v = new float[64];
        assertThrows(IllegalArgumentException.class,
                () -> Attention.attention(v, 0, v, 0, v, v, 0, 8, 0, 8, 4, 1f, new float[3]));
        assertThrows(IllegalArgumentException.class,
                () -> Attention.attentionScalar(v, 0, v, 0, v, v, 0, 8, 0, 8, 0, 1f, new float[3]));
    }
}
