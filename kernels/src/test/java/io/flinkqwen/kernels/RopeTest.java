/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

class RopeTest {

    private static final double THETA = 1_000_000.0; // Qwen2's rope_theta

    @Test
    void ropeNeoxRotatesElementIWithElementIPlusHalfNotItsNeighbour() {
        float[] x = {1f, 2f, 3f, 4f};
        float[] cos = {0.6f, 0f};
        float[] sin = {0.8f, 1f};
        Rope.ropeNeox(x, 0, 1, 4, cos, sin, 0);
        // pair (x0, x2) by angle with cos 0.6 / sin 0.8; pair (x1, x3) by 90 degrees
        assertEquals(1f * 0.6f - 3f * 0.8f, x[0]);
        assertEquals(1f * 0.8f + 3f * 0.6f, x[2]);
        assertEquals(-4f, x[1]);
        assertEquals(2f, x[3]);
    }

    @Test
    void ropeNeoxMatchesScalarTwinBitForBit() {
        Random rnd = new Random(1);
        for (int headDim : new int[] {2, 4, 6, 14, 16, 18, 32, 34, 64, 128}) {
            int half = headDim / 2;
            int positions = 5;
            float[] cos = new float[positions * half];
            float[] sin = new float[positions * half];
            Rope.ropeTable(cos, sin, positions, headDim, THETA);
            for (int nHeads : new int[] {1, 2, 7}) {
                for (int off : Numerics.OFFSETS) {
                    float[] x = Numerics.uniform(rnd, off + nHeads * headDim + 2, 3f);
                    float[] expected = x.clone();
                    int tableOff = 3 * half;
                    Rope.ropeNeoxScalar(expected, off, nHeads, headDim, cos, sin, tableOff);
                    Rope.ropeNeox(x, off, nHeads, headDim, cos, sin, tableOff);
                    Numerics.assertSameBits(expected, 0, x, 0, x.length,
                            "headDim " + headDim + " heads " + nHeads + " off " + off);
                }
            }
        }
    }

    @Test
    void ropeTableHoldsTheNeoxFrequencies() {
        int headDim = 64;
        int half = headDim / 2;
        int positions = 50;
        float[] cos = new float[positions * half];
        float[] sin = new float[positions * half];
        Rope.ropeTable(cos, sin, positions, headDim, THETA);
        for (int i = 0; i < half; i++) {
            assertEquals(1f, cos[i], "position 0 is the identity");
            assertEquals(0f, sin[i]);
        }
        for (int pos = 1; pos < positions; pos++) {
            // i = 0 turns by one radian per position; i = half - 1 by theta^(-(headDim-2)/headDim).
            Numerics.assertClose(Math.cos(pos), cos[pos * half], 1e-7, 0, "cos pos " + pos);
            Numerics.assertClose(Math.sin(pos), sin[pos * half], 1e-7, 0, "sin pos " + pos);
            double slowest = pos * Math.pow(THETA, -(headDim - 2.0) / headDim);
            Numerics.assertClose(Math.sin(slowest), sin[pos * half + half - 1], 1e-9, 1e-7, "slowest pos " + pos);
        }
        assertThrows(IllegalArgumentException.class, () -> Rope.ropeTable(cos, sin, positions, 63, THETA));
        assertThrows(IllegalArgumentException.class, () -> Rope.ropeTable(cos, sin, positions + 1, headDim, THETA));
    }

    /**
     * Hugging Face's {@code _compute_yarn_parameters}, written out here in float64 as an
     * independent reference: the inverse frequencies of all pairs at once, then cos and sin of
     * {@code pos * inv_freq} times the attention factor.
     */
    private static double[][] yarnReference(
            int positions, int dim, double base, double factor, int originalMax, double betaFast, double betaSlow,
            double attentionFactor) {
        int half = dim / 2;
        double low = Math.max(Math.floor(findCorrectionDim(betaFast, dim, base, originalMax)), 0);
        double high = Math.min(Math.ceil(findCorrectionDim(betaSlow, dim, base, originalMax)), dim - 1);
        if (low == high) {
            high += 0.001; // HF's linear_ramp_factor avoids a division by zero so
        }
        double[] invFreq = new double[half];
        for (int j = 0; j < half; j++) {
            double posFreq = Math.pow(base, (2.0 * j) / dim);
            double invExtrapolation = 1.0 / posFreq;
            double invInterpolation = 1.0 / (factor * posFreq);
            double linear = (j - low) / (high - low);
            double extrapolationFactor = 1 - Math.min(Math.max(linear, 0), 1);
            invFreq[j] = invInterpolation * (1 - extrapolationFactor) + invExtrapolation * extrapolationFactor;
        }
        double[][] table = new double[2][positions * half];
        for (int p = 0; p < positions; p++) {
            for (int j = 0; j < half; j++) {
                table[0][p * half + j] = Math.cos(p * invFreq[j]) * attentionFactor;
                table[1][p * half + j] = Math.sin(p * invFreq[j]) * attentionFactor;
            }
        }
        return table;
    }

    private static double findCorrectionDim(double numRotations, int dim, double base, int maxPositions) {
        return (dim * Math.log(maxPositions / (numRotations * 2 * Math.PI))) / (2 * Math.log(base));
    }

    @Test
    void ropeTableYarnMatchesTheFloat64Reference() {
        // {headDim, theta, factor, original, betaFast, betaSlow}: the Qwen2-7B release's YaRN (4 x 32K),
        // the tiny test model's (4 x 64) and other ramps, including an empty one (low = high).
        double[][] cases = {
            {128, 1e6, 4, 32768, 32, 1},
            {32, 1e4, 4, 64, 32, 1},
            {32, 1e6, 4, 64, 32, 1},
            {64, 1e4, 8, 2048, 16, 2},
            {16, 1e4, 2.5, 4096, 32, 31},
        };
        for (double[] c : cases) {
            int headDim = (int) c[0];
            int half = headDim / 2;
            int positions = 300;
            double mscale = 0.1 * Math.log(c[2]) + 1;
            float[] cos = new float[positions * half];
            float[] sin = new float[positions * half];
            Rope.ropeTableYarn(cos, sin, positions, headDim, c[1], c[2], (int) c[3], c[4], c[5], mscale);
            double[][] ref = yarnReference(positions, headDim, c[1], c[2], (int) c[3], c[4], c[5], mscale);
            for (int k = 0; k < cos.length; k++) {
                String where = java.util.Arrays.toString(c) + " pos " + k / half + " pair " + k % half;
                Numerics.assertClose(ref[0][k], cos[k], 2e-7, 1e-7, "cos " + where);
                Numerics.assertClose(ref[1][k], sin[k], 2e-7, 1e-7, "sin " + where);
            }
        }
    }

    @Test
    void ropeTableYarnKeepsFastPairsInterpolatesSlowOnesAndScalesBothByMscale() {
        // Qwen2-7B (head 128, theta 1e6, 32K original, factor 4): the correction range is pairs
        // floor(23.60) = 23 to ceil(39.65) = 40, worked out by hand from the YaRN paper's formula.
        int headDim = 128;
        int half = 64;
        int positions = 40;
        float[] plainCos = new float[positions * half];
        float[] plainSin = new float[positions * half];
        Rope.ropeTable(plainCos, plainSin, positions, headDim, THETA);
        float[] cos = new float[positions * half];
        float[] sin = new float[positions * half];
        Rope.ropeTableYarn(cos, sin, positions, headDim, THETA, 4, 32768, 32, 1, 1.0);
        for (int pos = 1; pos < positions; pos++) {
            for (int i = 0; i < half; i++) {
                double f = Math.pow(THETA, -2.0 * i / headDim);
                String where = "pos " + pos + " pair " + i;
                if (i <= 23) {
                    assertEquals(plainSin[pos * half + i], sin[pos * half + i], where + ": trained frequency kept");
                } else if (i >= 40) {
                    Numerics.assertClose(Math.sin(pos * f / 4), sin[pos * half + i], 1e-9, 1e-7, where + ": f / 4");
                } else {
                    double r = 1 - (i - 23) / 17.0;
                    double mixed = f / 4 * (1 - r) + f * r;
                    Numerics.assertClose(Math.sin(pos * mixed), sin[pos * half + i], 1e-9, 1e-7, where + ": ramp");
                }
            }
        }
        // mscale multiplies both tables; factor 1 and mscale 1 give back plain RoPE
        float[] scaledCos = new float[positions * half];
        float[] scaledSin = new float[positions * half];
        double mscale = 0.1 * Math.log(4) + 1; // 1.1386
        Rope.ropeTableYarn(scaledCos, scaledSin, positions, headDim, THETA, 4, 32768, 32, 1, mscale);
        for (int k = 0; k < cos.length; k++) {
            Numerics.assertClose(cos[k] * mscale, scaledCos[k], 1e-7, 1e-6, "mscale cos " + k);
            Numerics.assertClose(sin[k] * mscale, scaledSin[k], 1e-7, 1e-6, "mscale sin " + k);
        }
        Rope.ropeTableYarn(cos, sin, positions, headDim, THETA, 1, 32768, 32, 1, 1.0);
        Numerics.assertClose(plainCos, 0, cos, 0, cos.length, 1e-7, 0, "factor 1 cos");
        Numerics.assertClose(plainSin, 0, sin, 0, sin.length, 1e-7, 0, "factor 1 sin");
        IllegalArgumentException e =
                assertThrows(
                        IllegalArgumentException.class,
                        () -> Rope.ropeTableYarn(cos, sin, positions, headDim, THETA, 0.5, 32768, 32, 1, 1.0));
        assertTrue(e.getMessage().contains("factor 0.5"), e.getMessage());
    }

    @Test
    void rotatedDotProductsDependOnlyOnThePositionDifference() {
        // The point of RoPE: q_m . k_n is a function of m - n.
        Random rnd = new Random(2);
        int headDim = 64;
        int half = headDim / 2;
        int positions = 40;
        float[] cos = new float[positions * half];
        float[] sin = new float[positions * half];
        Rope.ropeTable(cos, sin, positions, headDim, 10_000.0);
        float[] q = Numerics.uniform(rnd, headDim, 1f);
        float[] k = Numerics.uniform(rnd, headDim, 1f);
        double first = Double.NaN;
        for (int shift = 0; shift < 30; shift += 7) {
            float[] qm = q.clone();
            float[] kn = k.clone();
            Rope.ropeNeox(qm, 0, 1, headDim, cos, sin, (shift + 9) * half);
            Rope.ropeNeox(kn, 0, 1, headDim, cos, sin, (shift + 2) * half);
            double dot = VectorOps.dotScalar(qm, 0, kn, 0, headDim);
            if (shift == 0) {
                first = dot;
            } else {
                Numerics.assertClose(first, dot, 1e-5, 1e-5, "shift " + shift);
            }
        }
    }
}
