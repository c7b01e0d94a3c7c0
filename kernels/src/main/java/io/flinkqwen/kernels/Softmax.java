/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels;

import static io.flinkqwen.kernels.Simd.F;
import static io.flinkqwen.kernels.Simd.L;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;

/** Numerically stable softmax over a float range. */
public final class Softmax {

    private Softmax() {}

    /**
     * Replaces {@code x[off .. off + n)} with {@code exp(x_i - max) / sum_j exp(x_j - max)}.
     * {@code n == 0} does nothing; {@code -inf} entries (masked) get 0, but at least one entry
     * must be finite. The exponentials are {@link #expShiftedInPlace} (within a few ulp of {@link
     * Math#exp}); the sum is accumulated in float.
     *
     * <p>Vectors never cross a method boundary here: a vector passed to or returned from a call
     * that C2 did not inline is boxed, and whether it inlines depends on the profile, so a helper
     * over vectors made attention allocate on some runs and not others (issue 3). For the same
     * reason the receiver of each loop-carried operation is the fresh load, not the loop phi: C2
     * knows a load's exact class, while a phi receiver goes through the (shared, possibly
     * polluted) profile of {@code FloatVector}'s methods and can become a boxing virtual call.
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
                m = FloatVector.fromArray(F, x, off + i).max(m);
            }
            max = m.reduceLanes(VectorOperators.MAX);
        }
        for (; i < n; i++) {
            max = Math.max(max, x[off + i]);
        }
        float sum = expShiftedInPlace(x, off, n, max);
        VectorOps.scaleInPlace(x, off, n, 1f / sum);
    }

    // Cephes expf: e^y = 2^k * e^r with k = round(y / ln 2), |r| <= ln(2) / 2, e^r by a degree-5
    // polynomial
    private static final float LOG2E = 1.44269504088896341f;
    private static final float LN2_HI = 0.693359375f; // 9 significant bits: k * LN2_HI is exact
    private static final float LN2_LO = -2.12194440e-4f;
    private static final float ROUND = 12582912f; // 1.5 * 2^23: adding it rounds to an integer
    private static final float LOWEST = -87.33654f; // below, e^y is under the smallest normal float

    /**
     * {@code x[i] = e^(x[i] - shift)} for {@code i} in {@code [off, off + n)}, returning the sum of
     * the results (in float). Every {@code x[i] - shift} must be {@code <= 0} (softmax's {@code
     * x - max}); below {@code -87.34}, {@code -inf} included, the result is 0. Within a few ulp of
     * {@link Math#exp}; the tail past the last whole vector uses {@link Math#exp}, flushed the same way.
     *
     * <p>The vector part uses only adds, FMAs, compares and bit moves, which C2 compiles to AVX
     * instructions: {@code lanewise(EXP)} failed to intrinsify on JDK 17 here and fell back to a
     * per-lane loop that allocates.
     */
    static float expShiftedInPlace(float[] x, int off, int n, float shift) {
        int upper = F.loopBound(n);
        int i = 0;
        FloatVector sumV = FloatVector.zero(F);
        for (; i < upper; i += L) {
            FloatVector y = FloatVector.fromArray(F, x, off + i).sub(shift);
            VectorMask<Float> underflow = y.lt(LOWEST);
            FloatVector t = y.fma(FloatVector.broadcast(F, LOG2E), FloatVector.broadcast(F, ROUND)); // ROUND + k
            FloatVector k = t.sub(ROUND);
            FloatVector r = k.fma(FloatVector.broadcast(F, -LN2_HI), y);
            r = k.fma(FloatVector.broadcast(F, -LN2_LO), r);
            FloatVector p = r.fma(FloatVector.broadcast(F, 1.9875691500e-4f), FloatVector.broadcast(F, 1.3981999507e-3f));
            p = r.fma(p, FloatVector.broadcast(F, 8.3334519073e-3f));
            p = r.fma(p, FloatVector.broadcast(F, 4.1665795894e-2f));
            p = r.fma(p, FloatVector.broadcast(F, 1.6666665459e-1f));
            p = r.fma(p, FloatVector.broadcast(F, 5.0000001201e-1f));
            FloatVector e = r.mul(r).fma(p, r).add(1f);
            // 2^k: k sits in the low mantissa bits of t; shifted into the exponent field (the
            // high bits of t leave the int), plus the exponent bias
            IntVector pow2 = t.reinterpretAsInts().lanewise(VectorOperators.LSHL, 23).add(127 << 23);
            e = e.mul(pow2.reinterpretAsFloats()).blend(0f, underflow);
            e.intoArray(x, off + i);
            sumV = e.add(sumV);
        }
        float sum = sumV.reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) {
            float y = x[off + i] - shift;
            float e = y < LOWEST ? 0f : (float) Math.exp(y); // flushed as the vector lanes are
            x[off + i] = e;
            sum += e;
        }
        return sum;
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
