/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels;

import static io.flinkqwen.kernels.Simd.F;
import static io.flinkqwen.kernels.Simd.L;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

/** Root-mean-square layer normalisation, computed in float (as Qwen2 and llama.cpp do). */
public final class RmsNorm {

    private RmsNorm() {}

    /**
     * {@code out[outOff + i] = x[xOff + i] / sqrt(mean(x^2) + eps) * weight[i]} for {@code i <
     * n}, the mean over the {@code n} values of x. The sum of squares is accumulated in float
     * (vector lanes, then one reduction). {@code out} may be {@code x} at the same offset
     * (in-place); other overlaps are not supported. {@code weight} is read from index 0.
     */
    public static void rmsNorm(float[] out, int outOff, float[] x, int xOff, float[] weight, int n, float eps) {
        FloatVector acc = FloatVector.zero(F);
        int i = 0;
        int upper = F.loopBound(n);
        for (; i < upper; i += L) {
            FloatVector v = FloatVector.fromArray(F, x, xOff + i);
            acc = v.fma(v, acc);
        }
        float ss = acc.reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) {
            ss += x[xOff + i] * x[xOff + i];
        }
        float scale = inverseRms(ss, n, eps);
        i = 0;
        for (; i < upper; i += L) {
            FloatVector.fromArray(F, x, xOff + i)
                    .mul(scale)
                    .mul(FloatVector.fromArray(F, weight, i))
                    .intoArray(out, outOff + i);
        }
        for (; i < n; i++) {
            out[outOff + i] = x[xOff + i] * scale * weight[i];
        }
    }

    /** Scalar twin of {@link #rmsNorm}; the sum of squares is a sequential float sum. */
    public static void rmsNormScalar(
            float[] out, int outOff, float[] x, int xOff, float[] weight, int n, float eps) {
        float ss = 0f;
        for (int i = 0; i < n; i++) {
            ss += x[xOff + i] * x[xOff + i];
        }
        float scale = inverseRms(ss, n, eps);
        for (int i = 0; i < n; i++) {
            out[outOff + i] = x[xOff + i] * scale * weight[i];
        }
    }

    private static float inverseRms(float sumOfSquares, int n, float eps) {
        return (float) (1.0 / Math.sqrt(sumOfSquares / n + eps));
    }
}
