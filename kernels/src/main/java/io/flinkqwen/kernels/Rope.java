/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels;

import static io.flinkqwen.kernels.Simd.F;
import static io.flinkqwen.kernels.Simd.L;

import jdk.incubator.vector.FloatVector;

/**
 * Rotary position embedding, NeoX style as in Qwen2: each head's first half is rotated with its
 * second half ({@code i} pairs with {@code i + headDim/2}), not adjacent pairs (GPT-J style).
 *
 * <p>The angles come from a per-position table of {@code headDim / 2} cosines and sines built by
 * the caller ({@link #ropeTable} for plain RoPE), so frequency scalings such as YaRN only change
 * the table.
 */
public final class Rope {

    private Rope() {}

    /**
     * Fills {@code cos[pos * half + i]} and {@code sin[pos * half + i]} ({@code half = headDim /
     * 2}) for {@code pos < maxPositions}, {@code i < half} with the angle {@code pos *
     * theta^(-2i / headDim)}, computed in double and stored as float. The table of position
     * {@code p} starts at {@code tableOff = p * headDim / 2}.
     *
     * @throws IllegalArgumentException if headDim is odd or an array is too short
     */
    public static void ropeTable(float[] cos, float[] sin, int maxPositions, int headDim, double theta) {
        if (headDim <= 0 || headDim % 2 != 0) {
            throw new IllegalArgumentException("headDim must be even and positive, got " + headDim);
        }
        int half = headDim / 2;
        long need = (long) maxPositions * half;
        if (cos.length < need || sin.length < need) {
            throw new IllegalArgumentException(
                    "tables need " + need + " floats, got cos " + cos.length + ", sin " + sin.length);
        }
        for (int i = 0; i < half; i++) {
            double freq = Math.pow(theta, -2.0 * i / headDim);
            for (int pos = 0; pos < maxPositions; pos++) {
                double angle = pos * freq;
                cos[pos * half + i] = (float) Math.cos(angle);
                sin[pos * half + i] = (float) Math.sin(angle);
            }
        }
    }

    /**
     * Rotates in place {@code nHeads} consecutive heads of {@code headDim} floats starting at
     * {@code x[off]}, all at the position whose table starts at {@code tableOff}: for each head
     * and {@code i < headDim/2}, with {@code a = x[i]}, {@code b = x[i + headDim/2]}, {@code c =
     * cos[tableOff + i]}, {@code s = sin[tableOff + i]}: {@code x[i] = a*c - b*s}, {@code
     * x[i + headDim/2] = a*s + b*c}. {@code headDim} must be even (not checked: hot path).
     */
    public static void ropeNeox(float[] x, int off, int nHeads, int headDim, float[] cos, float[] sin, int tableOff) {
        int half = headDim / 2;
        int upper = F.loopBound(half);
        for (int h = 0; h < nHeads; h++) {
            int lo = off + h * headDim;
            int hi = lo + half;
            int i = 0;
            for (; i < upper; i += L) {
                FloatVector a = FloatVector.fromArray(F, x, lo + i);
                FloatVector b = FloatVector.fromArray(F, x, hi + i);
                FloatVector c = FloatVector.fromArray(F, cos, tableOff + i);
                FloatVector s = FloatVector.fromArray(F, sin, tableOff + i);
                a.mul(c).sub(b.mul(s)).intoArray(x, lo + i);
                a.mul(s).add(b.mul(c)).intoArray(x, hi + i);
            }
            for (; i < half; i++) {
                rotate(x, lo + i, hi + i, cos[tableOff + i], sin[tableOff + i]);
            }
        }
    }

    /** Scalar twin of {@link #ropeNeox}. */
    public static void ropeNeoxScalar(
            float[] x, int off, int nHeads, int headDim, float[] cos, float[] sin, int tableOff) {
        int half = headDim / 2;
        for (int h = 0; h < nHeads; h++) {
            int lo = off + h * headDim;
            for (int i = 0; i < half; i++) {
                rotate(x, lo + i, lo + half + i, cos[tableOff + i], sin[tableOff + i]);
            }
        }
    }

    private static void rotate(float[] x, int i, int j, float c, float s) {
        float a = x[i];
        float b = x[j];
        x[i] = a * c - b * s;
        x[j] = a * s + b * c;
    }
}
