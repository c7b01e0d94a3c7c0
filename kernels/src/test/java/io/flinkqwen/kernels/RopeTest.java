/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

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
