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

/** Numerically stable softmax over a float range. */
public final class Softmax {

    private Softmax() {}

    /**
     * Replaces {@code x[off .. off + n)} with {@code exp(x_i - max) / sum_j exp(x_j - max)}.
     * {@code n == 0} does nothing; {@code -inf} entries (masked) get 0, but at least one entry
     * must be finite. The vector path uses the Vector API's {@code EXP} (within an
     * ulp or so of {@link Math#exp}); the sum is accumulated in float.
     */
    public static void softmaxInPlace(float[] x, int off, int n) {
        if (n <= 0) {
            return;
        }
        int upper = F.loopBound(n);
        int i = 0;
        float max = Float.NEGATIVE_INFINITY;
        if (upper > 0) {
            FloatVector m = FloatVector.broadcast(F, Float.NEGATIVE_INFINITY);
            for (; i < upper; i += L) {
                m = m.max(FloatVector.fromArray(F, x, off + i));
            }
            max = m.reduceLanes(VectorOperators.MAX);
        }
        for (; i < n; i++) {
            max = Math.max(max, x[off + i]);
        }
        FloatVector sumV = FloatVector.zero(F);
        i = 0;
        for (; i < upper; i += L) {
            FloatVector e = FloatVector.fromArray(F, x, off + i).sub(max).lanewise(VectorOperators.EXP);
            e.intoArray(x, off + i);
            sumV = sumV.add(e);
        }
        float sum = sumV.reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) {
            float e = (float) Math.exp(x[off + i] - max);
            x[off + i] = e;
            sum += e;
        }
        VectorOps.scaleInPlace(x, off, n, 1f / sum);
    }

    /** Scalar twin of {@link #softmaxInPlace}, with {@link Math#exp}. */
    public static void softmaxInPlaceScalar(float[] x, int off, int n) {
        if (n <= 0) {
            return;
        }
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, x[off + i]);
        }
        float sum = 0f;
        for (int i = 0; i < n; i++) {
            float e = (float) Math.exp(x[off + i] - max);
            x[off + i] = e;
            sum += e;
        }
        float inv = 1f / sum;
        for (int i = 0; i < n; i++) {
            x[off + i] *= inv;
        }
    }
}
