/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.kernels.backend.KernelBackend;
import io.flinkqwen.kernels.backend.KernelOp;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * The kernel test suite every {@link KernelBackend} runs: each op against the CPU kernels' scalar
 * twin, over odd shapes and token counts. A subclass per backend supplies {@link #backend()}
 * ({@code CpuKernelBackendTest} here, {@code TornadoKernelBackendTest} in kernels-tornado).
 *
 * <p>Tolerance (llm.c's {@code validate_result}): {@code |got - want| <= ABS + REL * |want|}.
 * Backends sum in another order than the scalar twins (work-group reductions, FMA), so results
 * differ by float rounding: {@value #ABS} + {@value #REL} relative covers sums of a thousand
 * terms of magnitude one; a wrong index or a missing term is orders of magnitude larger. An op
 * the backend does not support is reported as not run (aborted, naming the op), never passed.
 */
public abstract class KernelBackendContract {

    /** Absolute part of the tolerance. */
    public static final double ABS = 1e-4;
    /** Relative part of the tolerance. */
    public static final double REL = 1e-4;

    /** Shapes (rows, cols) of the mat-mul cases; cols multiples of 32 where Q8_0 runs them. */
    static final int[][] SHAPES = {{1, 32}, {3, 64}, {17, 96}, {64, 128}, {33, 320}, {5, 1024}};
    static final int[][] ODD_SHAPES = {{1, 1}, {7, 17}, {13, 33}};
    static final int[] TOKENS = {1, 2, 5, 9};

    /** The backend under test; the same instance for every test of the class. */
    protected abstract KernelBackend backend();

    private void assume(KernelOp op, DType type) {
        Assumptions.assumeTrue(backend().supports(op, type),
                () -> backend().name() + " does not support " + op + (type == null ? "" : " of " + type));
    }

    /**
     * The scalar twin's {@code W x}, with the activations of a Q8_0 product rounded to Q8_0
     * blocks only where the backend says it rounds them ({@link
     * KernelBackend#roundsQ8_0Activations}).
     */
    private void scalarMatMul(float[] out, WeightMatrix w, float[] x, int n, Scratch scratch) {
        MatMul.matMulRowsScalar(out, w, x, n, 0, w.rows(), scratch, backend().roundsQ8_0Activations());
    }

    static void assertClose(float[] want, float[] got, int n, String what) {
        Numerics.assertClose(want, 0, got, 0, n, ABS, REL, what);
    }

    private void matMulCases(DType type, int[][] shapes, long seed) {
        assume(KernelOp.MATMUL, type);
        Random rnd = new Random(seed);
        List<WeightMatrix> ws = new ArrayList<>();
        for (int[] s : shapes) {
            float[] v = TestMatrices.weights(rnd, s[0], s[1]);
            ws.add(WeightMatrix.onHeap(type, s[0], s[1], TestMatrices.encode(type, v, s[0], s[1])));
        }
        // a chunked, unaligned direct layout too, as a mapped >2 GiB tensor is split
        int[] last = shapes[shapes.length - 1];
        float[] v = TestMatrices.weights(rnd, last[0], last[1]);
        ws.add(TestMatrices.matrix(TestMatrices.Layout.CHUNKED, type, last[0], last[1],
                TestMatrices.encode(type, v, last[0], last[1])));
        backend().prepare(ws.subList(0, ws.size() - 1)); // the last one is placed on first use
        Scratch scratch = new Scratch();
        for (WeightMatrix w : ws) {
            for (int n : TOKENS) {
                float[] x = Numerics.uniform(rnd, n * w.cols(), 1f);
                float[] want = new float[n * w.rows()];
                scalarMatMul(want, w, x, n, scratch);
                float[] got = new float[n * w.rows() + 3];
                got[n * w.rows()] = 42f;
                backend().matMul(KernelPool.serial(), got, w, x, n);
                assertClose(want, got, n * w.rows(), type + " " + w + " x " + n + " tokens");
                assertTrue(got[n * w.rows()] == 42f, "wrote past nTokens * rows");
            }
        }
    }

    @Test
    public void matMulF32MatchesScalar() {
        matMulCases(DType.F32, SHAPES, 1);
        matMulCases(DType.F32, ODD_SHAPES, 2);
    }

    @Test
    public void matMulF16MatchesScalar() {
        matMulCases(DType.F16, SHAPES, 3);
        matMulCases(DType.F16, ODD_SHAPES, 4);
    }

    @Test
    public void matMulQ8_0MatchesScalar() {
        matMulCases(DType.Q8_0, SHAPES, 5);
    }

    @Test
    public void matMulManyAndEachMatchScalar() {
        assume(KernelOp.MATMUL, DType.F16);
        Random rnd = new Random(6);
        WeightMatrix[] ws = new WeightMatrix[3];
        for (int i = 0; i < 3; i++) {
            int rows = 8 + 5 * i;
            ws[i] = WeightMatrix.onHeap(DType.F16, rows, 64, TestMatrices.encode(DType.F16, TestMatrices.weights(rnd, rows, 64), rows, 64));
        }
        int n = 3;
        float[] x = Numerics.uniform(rnd, n * 64, 1f);
        float[][] outs = new float[3][];
        for (int i = 0; i < 3; i++) {
            outs[i] = new float[n * ws[i].rows()];
        }
        // prepared together, as a layer's q/k/v are: a device backend may run them as one matrix
        backend().prepare(java.util.List.of(ws));
        backend().matMulMany(KernelPool.serial(), outs, ws, x, n);
        float[][] xs = new float[3][];
        int[] tokens = {2, 0, 3};
        float[][] each = new float[3][];
        for (int i = 0; i < 3; i++) {
            xs[i] = Numerics.uniform(rnd, 3 * 64, 1f);
            each[i] = new float[3 * ws[i].rows()];
        }
        backend().matMulEach(KernelPool.serial(), each, ws, xs, tokens, 3);
        Scratch scratch = new Scratch();
        for (int i = 0; i < 3; i++) {
            float[] want = new float[n * ws[i].rows()];
            scalarMatMul(want, ws[i], x, n, scratch);
            assertClose(want, outs[i], want.length, "many " + i);
            float[] wantEach = new float[3 * ws[i].rows()];
            if (tokens[i] > 0) {
                scalarMatMul(wantEach, ws[i], xs[i], tokens[i], scratch);
            }
            assertClose(wantEach, each[i], wantEach.length, "each " + i + " (" + tokens[i] + " tokens)");
        }
    }

    /** The fused FFN block against its parts' scalar twins, where a backend fuses it. */
    @Test
    public void ffnBlockMatchesItsScalarParts() {
        for (DType type : new DType[] {DType.F32, DType.F16, DType.Q8_0}) {
            assume(KernelOp.FFN_BLOCK, type);
            Random rnd = new Random(14);
            int width = 64;
            int ffn = 96;
            WeightMatrix gate = WeightMatrix.onHeap(type, ffn, width, TestMatrices.encode(type, TestMatrices.weights(rnd, ffn, width), ffn, width));
            WeightMatrix up = WeightMatrix.onHeap(type, ffn, width, TestMatrices.encode(type, TestMatrices.weights(rnd, ffn, width), ffn, width));
            WeightMatrix down = WeightMatrix.onHeap(type, width, ffn, TestMatrices.encode(type, TestMatrices.weights(rnd, width, ffn), width, ffn));
            backend().prepare(List.of(gate, up, down)); // back to back, as a layer's are
            Scratch scratch = new Scratch();
            for (int rows : new int[] {1, 3, 1, 5}) {
                float[] x = Numerics.uniform(rnd, rows * width, 2f);
                float[] norm = Numerics.uniform(rnd, width, 1.5f);
                float[] xb = new float[rows * width];
                for (int t = 0; t < rows; t++) {
                    RmsNorm.rmsNormScalar(xb, t * width, x, t * width, norm, width, 1e-6f);
                }
                float[] g = new float[rows * ffn];
                float[] u = new float[rows * ffn];
                scalarMatMul(g, gate, xb, rows, scratch);
                scalarMatMul(u, up, xb, rows, scratch);
                SwiGlu.swiGluScalar(g, 0, g, 0, u, 0, rows * ffn);
                float[] proj = new float[rows * width];
                scalarMatMul(proj, down, g, rows, scratch);
                float[] want = x.clone();
                VectorOps.addInPlaceScalar(want, 0, proj, 0, rows * width);
                backend().ffnBlock(KernelPool.serial(), x, norm, 1e-6f, gate, up, down, rows);
                assertClose(want, x, rows * width, "ffn block " + type + " rows " + rows);
            }
        }
    }

    @Test
    public void rmsNormMatchesScalar() {
        assume(KernelOp.RMS_NORM, null);
        Random rnd = new Random(7);
        for (int width : new int[] {1, 17, 64, 896}) {
            for (int rows : new int[] {1, 3}) {
                float[] x = Numerics.uniform(rnd, width * rows, 3f);
                float[] w = Numerics.uniform(rnd, width, 2f);
                float[] want = new float[width * rows];
                for (int t = 0; t < rows; t++) {
                    RmsNorm.rmsNormScalar(want, t * width, x, t * width, w, width, 1e-6f);
                }
                float[] got = new float[width * rows];
                backend().rmsNorm(got, x, w, width, rows, 1e-6f);
                assertClose(want, got, want.length, "rmsNorm width " + width + " rows " + rows);
                // in place
                backend().rmsNorm(x, x, w, width, rows, 1e-6f);
                assertClose(want, x, want.length, "rmsNorm in place, width " + width);
            }
        }
    }

    @Test
    public void ropeNeoxMatchesScalar() {
        assume(KernelOp.ROPE_NEOX, null);
        Random rnd = new Random(8);
        for (int headDim : new int[] {2, 8, 64}) {
            int maxPos = 50;
            float[] cos = new float[maxPos * headDim / 2];
            float[] sin = new float[maxPos * headDim / 2];
            Rope.ropeTable(cos, sin, maxPos, headDim, 1e6);
            int heads = 3;
            int rows = 4;
            int stride = heads * headDim + 5; // rows with a gap, as q (hidden) vs k (kvDim) rows are
            int[] pos = {0, 7, 49, 13};
            float[] x = Numerics.uniform(rnd, rows * stride, 2f);
            float[] want = x.clone();
            for (int t = 0; t < rows; t++) {
                Rope.ropeNeoxScalar(want, t * stride, heads, headDim, cos, sin, pos[t] * headDim / 2);
            }
            backend().ropeNeox(x, stride, rows, heads, headDim, cos, sin, pos);
            assertClose(want, x, (rows - 1) * stride + heads * headDim, "rope headDim " + headDim);
        }
    }

    @Test
    public void attentionMatchesScalar() {
        assume(KernelOp.ATTENTION, null);
        Random rnd = new Random(9);
        int[][] cases = {{1, 1, 8, 1}, {4, 2, 16, 5}, {14, 2, 64, 37}, {6, 3, 32, 70}};
        for (int[] c : cases) {
            int heads = c[0];
            int kvHeads = c[1];
            int headDim = c[2];
            int nPos = c[3];
            int kvStride = kvHeads * headDim;
            float[] q = Numerics.uniform(rnd, heads * headDim, 1f);
            float[] keys = Numerics.uniform(rnd, nPos * kvStride, 1f);
            float[] values = Numerics.uniform(rnd, nPos * kvStride, 1f);
            float scale = (float) (1 / Math.sqrt(headDim));
            // float64 softmax attention, written out: query head h reads KV head h / (heads / kvHeads)
            float[] want = new float[heads * headDim];
            for (int h = 0; h < heads; h++) {
                int ko = (h / (heads / kvHeads)) * headDim;
                double[] p = new double[nPos];
                double max = Double.NEGATIVE_INFINITY;
                for (int t = 0; t < nPos; t++) {
                    double dot = 0;
                    for (int d = 0; d < headDim; d++) {
                        dot += (double) q[h * headDim + d] * keys[t * kvStride + ko + d];
                    }
                    p[t] = dot * scale;
                    max = Math.max(max, p[t]);
                }
                double sum = 0;
                for (int t = 0; t < nPos; t++) {
                    p[t] = Math.exp(p[t] - max);
                    sum += p[t];
                }
                for (int d = 0; d < headDim; d++) {
                    double acc = 0;
                    for (int t = 0; t < nPos; t++) {
                        acc += p[t] / sum * values[t * kvStride + ko + d];
                    }
                    want[h * headDim + d] = (float) acc;
                }
            }
            float[] got = new float[heads * headDim];
            backend().attention(got, q, keys, values, kvStride, heads, kvHeads, headDim, nPos, scale);
            assertClose(want, got, want.length, "attention heads " + heads + "/" + kvHeads + " positions " + nPos);
        }
    }

    @Test
    public void softmaxMatchesScalar() {
        assume(KernelOp.SOFTMAX, null);
        Random rnd = new Random(10);
        for (int n : new int[] {1, 2, 31, 33, 1000}) {
            float[] x = Numerics.uniform(rnd, n + 2, 20f);
            float[] want = x.clone();
            Softmax.softmaxInPlaceScalar(want, 2, n);
            backend().softmaxInPlace(x, 2, n);
            Numerics.assertClose(want, 0, x, 0, n + 2, 1e-6, 1e-4, "softmax n " + n);
        }
    }

    @Test
    public void swiGluMatchesScalar() {
        assume(KernelOp.SWIGLU, null);
        Random rnd = new Random(11);
        for (int n : new int[] {1, 33, 4864}) {
            float[] g = Numerics.uniform(rnd, n, 8f);
            float[] u = Numerics.uniform(rnd, n, 2f);
            if (n > 1) {
                g[0] = -200f; // silu underflows to -0, not NaN
            }
            float[] want = new float[n];
            SwiGlu.swiGluScalar(want, 0, g, 0, u, 0, n);
            backend().swiGlu(g, g, u, n); // out = gate, as the engine calls it
            assertClose(want, g, n, "swiGlu n " + n);
        }
    }

    @Test
    public void swiGluEachGivesEveryArrayTheBitsOfItsOwnSwiGlu() {
        // a MoE layer's experts: arrays of different lengths (one empty) in one call
        assume(KernelOp.SWIGLU, null);
        Random rnd = new Random(12);
        int[] ns = {5632, 0, 1408, 33, 2816};
        float[][] gates = new float[ns.length][];
        float[][] ups = new float[ns.length][];
        float[][] want = new float[ns.length][];
        for (int i = 0; i < ns.length; i++) {
            gates[i] = Numerics.uniform(rnd, ns[i] + 3, 8f);
            ups[i] = Numerics.uniform(rnd, ns[i] + 3, 2f);
            want[i] = gates[i].clone();
            backend().swiGlu(want[i], want[i], ups[i], ns[i]);
        }
        try (KernelPool pool = new KernelPool(3)) {
            backend().swiGluEach(pool, gates, gates, ups, ns, ns.length);
        }
        for (int i = 0; i < ns.length; i++) {
            // the 3 elements past ns[i] stay as they were
            assertArrayEquals(want[i], gates[i], "array " + i + " of " + ns[i]);
        }
    }

    @Test
    public void addInPlaceMatchesScalar() {
        assume(KernelOp.ADD, null);
        Random rnd = new Random(12);
        for (int n : new int[] {1, 33, 2000}) {
            float[] acc = Numerics.uniform(rnd, n, 1f);
            float[] x = Numerics.uniform(rnd, n, 1f);
            float[] want = acc.clone();
            VectorOps.addInPlaceScalar(want, 0, x, 0, n);
            backend().addInPlace(acc, x, n);
            Numerics.assertSameBits(want, 0, acc, 0, n, "add n " + n);
        }
    }

    @Test
    public void routerTopKMatchesScalar() {
        assume(KernelOp.ROUTER_TOP_K, null);
        Random rnd = new Random(13);
        int[][] cases = {{4, 2, 3}, {8, 2, 5}, {64, 8, 2}, {60, 4, 7}};
        for (int[] c : cases) {
            int experts = c[0];
            int k = c[1];
            int rows = c[2];
            for (boolean norm : new boolean[] {false, true}) {
                float[] logits = Numerics.uniform(rnd, rows * experts, 4f);
                int[] wantIds = new int[rows * k];
                float[] wantW = new float[rows * k];
                for (int t = 0; t < rows; t++) {
                    Router.route(logits, t * experts, experts, k, norm, wantIds, wantW, t * k);
                }
                int[] ids = new int[rows * k];
                float[] w = new float[rows * k];
                backend().routerTopK(logits, experts, k, norm, ids, w, rows);
                String what = "router " + experts + " experts top-" + k + " norm " + norm;
                assertArrayEquals(wantIds, ids, what);
                Numerics.assertClose(wantW, 0, w, 0, w.length, 1e-6, 1e-5, what);
            }
        }
    }
}
