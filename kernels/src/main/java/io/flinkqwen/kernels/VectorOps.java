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

/**
 * Element-wise float helpers of the forward pass (residual adds, biases, scaling) and the dot
 * product the other kernels share. Each has a scalar twin. Ranges are {@code [off, off + n)};
 * the first array is the one written, the others are only read.
 */
public final class VectorOps {

    private VectorOps() {}

    /** {@code acc[accOff + i] += x[xOff + i]} for {@code i < n}; the two ranges may be the same. */
    public static void addInPlace(float[] acc, int accOff, float[] x, int xOff, int n) {
        int i = 0;
        for (int upper = F.loopBound(n); i < upper; i += L) {
            FloatVector.fromArray(F, acc, accOff + i)
                    .add(FloatVector.fromArray(F, x, xOff + i))
                    .intoArray(acc, accOff + i);
        }
        for (; i < n; i++) {
            acc[accOff + i] += x[xOff + i];
        }
    }

    /** Scalar twin of {@link #addInPlace}. */
    public static void addInPlaceScalar(float[] acc, int accOff, float[] x, int xOff, int n) {
        for (int i = 0; i < n; i++) {
            acc[accOff + i] += x[xOff + i];
        }
    }

    /**
     * {@code sum_i a[aOff + i] * b[bOff + i]} for {@code i < n}, accumulated in float with FMA
     * in two vector accumulators (then one lane reduction, then the scalar tail).
     */
    public static float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        FloatVector acc0 = FloatVector.zero(F);
        FloatVector acc1 = acc0;
        int i = 0;
        for (int upper2 = n - n % (2 * L); i < upper2; i += 2 * L) {
            acc0 = FloatVector.fromArray(F, a, aOff + i).fma(FloatVector.fromArray(F, b, bOff + i), acc0);
            acc1 = FloatVector.fromArray(F, a, aOff + i + L)
                    .fma(FloatVector.fromArray(F, b, bOff + i + L), acc1);
        }
        for (int upper = F.loopBound(n); i < upper; i += L) {
            acc0 = FloatVector.fromArray(F, a, aOff + i).fma(FloatVector.fromArray(F, b, bOff + i), acc0);
        }
        float sum = acc0.add(acc1).reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) {
            sum += a[aOff + i] * b[bOff + i];
        }
        return sum;
    }

    /** Scalar twin of {@link #dot}: a sequential float sum. */
    public static float dotScalar(float[] a, int aOff, float[] b, int bOff, int n) {
        float sum = 0f;
        for (int i = 0; i < n; i++) {
            sum += a[aOff + i] * b[bOff + i];
        }
        return sum;
    }

    /** {@code x[off + i] *= s} for {@code i < n}. */
    public static void scaleInPlace(float[] x, int off, int n, float s) {
        int i = 0;
        for (int upper = F.loopBound(n); i < upper; i += L) {
            FloatVector.fromArray(F, x, off + i).mul(s).intoArray(x, off + i);
        }
        for (; i < n; i++) {
            x[off + i] *= s;
        }
    }

    /** Scalar twin of {@link #scaleInPlace}. */
    public static void scaleInPlaceScalar(float[] x, int off, int n, float s) {
        for (int i = 0; i < n; i++) {
            x[off + i] *= s;
        }
    }

    /**
     * Adds one bias vector to each of {@code nTokens} consecutive rows of {@code dim} floats:
     * {@code acc[accOff + t * dim + i] += bias[biasOff + i]} (the q/k/v biases of a prefill).
     */
    public static void addBias(float[] acc, int accOff, float[] bias, int biasOff, int dim, int nTokens) {
        for (int t = 0; t < nTokens; t++) {
            addInPlace(acc, accOff + t * dim, bias, biasOff, dim);
        }
    }

    /** Scalar twin of {@link #addBias}. */
    public static void addBiasScalar(float[] acc, int accOff, float[] bias, int biasOff, int dim, int nTokens) {
        for (int t = 0; t < nTokens; t++) {
            addInPlaceScalar(acc, accOff + t * dim, bias, biasOff, dim);
        }
    }
}
