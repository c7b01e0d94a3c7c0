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
 * Scaled dot-product attention of one query head over a float KV cache (no mask: the caller
 * passes the number of visible positions, which gives causal attention one query at a time).
 */
public final class Attention {

    private Attention() {}

    /**
     * One query head against {@code nPositions} cached positions.
     *
     * <p>The cache is {@code [position][kvStride]} floats from {@code kvBase}; this head's key of
     * position {@code t} is {@code keys[kvBase + t * kvStride + headOffset ..][0 .. headDim)},
     * its value the same range of {@code values} (with grouped-query attention several query
     * heads share one {@code headOffset}). Computes {@code scores[t] = scale * q . k_t} for
     * {@code t < nPositions}, softmax over them, and writes {@code out[outOff .. outOff +
     * headDim) = sum_t p_t * v_t}.
     *
     * <p>{@code scores} is caller scratch of length {@code >= nPositions}; on return it holds the
     * probabilities. {@code out} may be {@code q} at the same offset (q is read only before out
     * is written); keys, values and q are otherwise only read. {@code nPositions} must be
     * {@code >= 1}.
     */
    public static void attention(
            float[] out, int outOff, float[] q, int qOff, float[] keys, float[] values,
            int kvBase, int kvStride, int headOffset, int headDim, int nPositions, float scale, float[] scores) {
        checkPositions(nPositions, scores);
        int head = kvBase + headOffset;
        for (int t = 0; t < nPositions; t++) {
            scores[t] = scale * VectorOps.dot(q, qOff, keys, head + t * kvStride, headDim);
        }
        Softmax.softmaxInPlace(scores, 0, nPositions);
        // One output vector at a time, kept in a register across all positions.
        int d = 0;
        for (int upper = F.loopBound(headDim); d < upper; d += L) {
            FloatVector acc = FloatVector.zero(F);
            for (int t = 0; t < nPositions; t++) {
                acc = FloatVector.fromArray(F, values, head + t * kvStride + d)
                        .fma(FloatVector.broadcast(F, scores[t]), acc);
            }
            acc.intoArray(out, outOff + d);
        }
        for (; d < headDim; d++) {
            float acc = 0f;
            for (int t = 0; t < nPositions; t++) {
                acc += scores[t] * values[head + t * kvStride + d];
            }
            out[outOff + d] = acc;
        }
    }

    /** Scalar twin of {@link #attention}. */
    public static void attentionScalar(
            float[] out, int outOff, float[] q, int qOff, float[] keys, float[] values,
            int kvBase, int kvStride, int headOffset, int headDim, int nPositions, float scale, float[] scores) {
        checkPositions(nPositions, scores);
        int head = kvBase + headOffset;
        for (int t = 0; t < nPositions; t++) {
            scores[t] = scale * VectorOps.dotScalar(q, qOff, keys, head + t * kvStride, headDim);
        }
        Softmax.softmaxInPlaceScalar(scores, 0, nPositions);
        for (int d = 0; d < headDim; d++) {
            float acc = 0f;
            for (int t = 0; t < nPositions; t++) {
                acc += scores[t] * values[head + t * kvStride + d];
            }
            out[outOff + d] = acc;
        }
    }

    private static void checkPositions(int nPositions, float[] scores) {
        if (nPositions < 1 || scores.length < nPositions) {
            throw new IllegalArgumentException(
                    "need 1 <= nPositions <= scores.length, got " + nPositions + " and " + scores.length);
        }
    }
}
