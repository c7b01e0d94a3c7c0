/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels.backend;

import io.flinkqwen.kernels.Attention;
import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.KernelPool;
import io.flinkqwen.kernels.MatMul;
import io.flinkqwen.kernels.RmsNorm;
import io.flinkqwen.kernels.Rope;
import io.flinkqwen.kernels.Router;
import io.flinkqwen.kernels.Softmax;
import io.flinkqwen.kernels.SwiGlu;
import io.flinkqwen.kernels.VectorOps;
import io.flinkqwen.kernels.WeightMatrix;

/** The default backend: the Vector API kernels of this module, on the threads of the caller's pool. */
public final class CpuKernelBackend implements KernelBackend {

    /** The one instance: it holds no state. */
    public static final CpuKernelBackend INSTANCE = new CpuKernelBackend(true);

    /**
     * The CPU kernels with Q8_0 products on the float activations as they are: the reference
     * for a device backend that does not round them ({@link #roundsQ8_0Activations}), in tests.
     */
    public static final CpuKernelBackend FLOAT_ACTIVATIONS = new CpuKernelBackend(false);

    private final boolean roundQ8_0;

    private CpuKernelBackend(boolean roundQ8_0) {
        this.roundQ8_0 = roundQ8_0;
    }

    @Override
    public String name() {
        return "cpu";
    }

    @Override
    public String description() {
        return "CPU (Vector API kernels, " + Runtime.getRuntime().availableProcessors() + " cores)";
    }

    /**
     * Every op, every weight format ({@link MatMul} decodes all of {@link DType}); the fused
     * {@link KernelOp#FFN_BLOCK} as its parts only (the engine calls them).
     */
    @Override
    public boolean supports(KernelOp op, DType weights) {
        return op != KernelOp.FFN_BLOCK;
    }

    @Override
    public boolean roundsQ8_0Activations() {
        return roundQ8_0;
    }

    @Override
    public void matMul(KernelPool pool, float[] out, WeightMatrix w, float[] x, int nTokens) {
        MatMul.matMul(pool, out, w, x, nTokens, roundQ8_0);
    }

    @Override
    public void matMulMany(KernelPool pool, float[][] outs, WeightMatrix[] ws, float[] x, int nTokens) {
        MatMul.matMulMany(pool, outs, ws, x, nTokens, roundQ8_0);
    }

    @Override
    public void matMulEach(KernelPool pool, float[][] outs, WeightMatrix[] ws, float[][] xs, int[] tokens, int count) {
        MatMul.matMulEach(pool, outs, ws, xs, tokens, count, roundQ8_0);
    }

    @Override
    public void rmsNorm(float[] out, float[] x, float[] weight, int width, int rows, float eps) {
        for (int t = 0; t < rows; t++) {
            RmsNorm.rmsNorm(out, t * width, x, t * width, weight, width, eps);
        }
    }

    @Override
    public void ropeNeox(float[] x, int rowStride, int rows, int nHeads, int headDim, float[] cos, float[] sin, int[] positions) {
        int half = headDim / 2;
        for (int t = 0; t < rows; t++) {
            Rope.ropeNeox(x, t * rowStride, nHeads, headDim, cos, sin, positions[t] * half);
        }
    }

    @Override
    public void attention(
            float[] out, float[] q, float[] keys, float[] values, int kvStride, int nHeads, int nKvHeads, int headDim,
            int nPositions, float scale) {
        float[] scores = new float[nPositions];
        int groups = nHeads / nKvHeads;
        float[] state = new float[2 * groups];
        for (int g = 0; g < nKvHeads; g++) {
            // the query heads of KV head g, over all positions as one tile
            int o = g * groups * headDim;
            Attention.begin(out, o, state, 0, groups, headDim);
            Attention.tileF32(out, o, state, 0, q, o, groups, headDim, keys, values, g * headDim, kvStride, nPositions,
                    scale, scores);
            Attention.finish(out, o, state, 0, groups, headDim);
        }
    }

    @Override
    public void softmaxInPlace(float[] x, int off, int n) {
        Softmax.softmaxInPlace(x, off, n);
    }

    @Override
    public void swiGlu(float[] out, float[] gate, float[] up, int n) {
        SwiGlu.swiGlu(out, 0, gate, 0, up, 0, n);
    }

    @Override
    public void swiGluEach(KernelPool pool, float[][] outs, float[][] gates, float[][] ups, int[] ns, int count) {
        SwiGlu.swiGluEach(pool, outs, gates, ups, ns, count);
    }

    @Override
    public void addInPlace(float[] acc, float[] x, int n) {
        VectorOps.addInPlace(acc, 0, x, 0, n);
    }

    @Override
    public void routerTopK(float[] logits, int experts, int k, boolean normTopkProb, int[] ids, float[] weights, int rows) {
        for (int t = 0; t < rows; t++) {
            Router.route(logits, t * experts, experts, k, normTopkProb, ids, weights, t * k);
        }
    }

    @Override
    public String toString() {
        return name();
    }
}
