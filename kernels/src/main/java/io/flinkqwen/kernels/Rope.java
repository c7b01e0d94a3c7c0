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
        checkTables(cos, sin, maxPositions, headDim);
        int half = headDim / 2;
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
     * Fills the tables like {@link #ropeTable}, with YaRN scaling (Peng et al. 2023, "YaRN:
     * Efficient Context Window Extension of Large Language Models"; as Hugging Face's {@code
     * rope_type: yarn} and llama.cpp's {@code rope.scaling.type = yarn} define it). For pair
     * {@code i < half}, with the unscaled frequency {@code f_i = theta^(-2i / headDim)}:
     *
     * <ul>
     *   <li>the correction range: {@code d(b) = headDim * ln(originalContext / (2 pi b)) / (2 ln
     *       theta)}, the pair index that turns {@code b} times over the original context; {@code
     *       low = max(0, floor(d(betaFast)))}, {@code high = min(headDim - 1, ceil(d(betaSlow)))};
     *   <li>the ramp {@code r_i = 1 - clamp((i - low) / max(0.001, high - low), 0, 1)}: 1 for the
     *       fast pairs (kept as trained: extrapolation), 0 for the slow ones (divided by {@code
     *       factor}: interpolation);
     *   <li>the angle {@code pos * (f_i / factor * (1 - r_i) + f_i * r_i)};
     *   <li>both tables multiplied by {@code mscale}, the attention magnitude correction ({@code
     *       0.1 ln(factor) + 1} by default): q and k are each rotated, so every attention score
     *       grows by {@code mscale^2}, as llama.cpp's and Hugging Face's YaRN do.
     * </ul>
     *
     * Computed in double, stored as float.
     *
     * @param factor the context extension, {@code >= 1}
     * @param originalContext the context the model was trained with (HF {@code
     *     original_max_position_embeddings})
     * @param betaFast HF {@code beta_fast} (32 by default)
     * @param betaSlow HF {@code beta_slow} (1 by default)
     * @param mscale the factor applied to cos and sin
     * @throws IllegalArgumentException if headDim is odd, an array is too short or a scaling value
     *     is out of range
     */
    public static void ropeTableYarn(
            float[] cos,
            float[] sin,
            int maxPositions,
            int headDim,
            double theta,
            double factor,
            int originalContext,
            double betaFast,
            double betaSlow,
            double mscale) {
        checkTables(cos, sin, maxPositions, headDim);
        if (!(factor >= 1) || originalContext <= 0 || !(betaFast > 0) || !(betaSlow > 0) || !(mscale > 0)) {
            throw new IllegalArgumentException(
                    String.format(
                            "YaRN needs factor >= 1, original context > 0, beta_fast, beta_slow and mscale > 0;"
                                    + " got factor %s, original context %d, beta_fast %s, beta_slow %s, mscale %s",
                            factor, originalContext, betaFast, betaSlow, mscale));
        }
        int half = headDim / 2;
        double low = Math.max(0, Math.floor(yarnCorrectionDim(headDim, originalContext, betaFast, theta)));
        double high = Math.min(headDim - 1, Math.ceil(yarnCorrectionDim(headDim, originalContext, betaSlow, theta)));
        for (int i = 0; i < half; i++) {
            double extrapolated = Math.pow(theta, -2.0 * i / headDim);
            double interpolated = extrapolated / factor;
            double ramp = 1 - Math.min(1, Math.max(0, (i - low) / Math.max(0.001, high - low)));
            double freq = interpolated * (1 - ramp) + extrapolated * ramp;
            for (int pos = 0; pos < maxPositions; pos++) {
                double angle = pos * freq;
                cos[pos * half + i] = (float) (Math.cos(angle) * mscale);
                sin[pos * half + i] = (float) (Math.sin(angle) * mscale);
            }
        }
    }

    /** The (fractional) pair index whose wavelength fits {@code rotations} times in {@code context}. */
    private static double yarnCorrectionDim(int headDim, int context, double rotations, double theta) {
        return headDim * Math.log(context / (rotations * 2 * Math.PI)) / (2 * Math.log(theta));
    }

    private static void checkTables(float[] cos, float[] sin, int maxPositions, int headDim) {
        if (headDim <= 0 || headDim % 2 != 0) {
            throw new IllegalArgumentException("headDim must be even and positive, got " + headDim);
        }
        long need = (long) maxPositions * (headDim / 2);
        if (cos.length < need || sin.length < need) {
            throw new IllegalArgumentException(
                    "tables need " + need + " floats, got cos " + cos.length + ", sin " + sin.length);
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
