/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Every dtype, token count and thread count against (a) the scalar twin and (b) a float64
 * product of the decoded weights.
 *
 * <p>Weights and activations are in [-1, 1), so every term is at most 1 in magnitude and a float
 * sum of {@code cols} terms drifts from the exact sum by about {@code eps * sqrt(cols)} times the
 * partial sums' size. Tolerance: {@code ABS_PER_SQRT_COL * sqrt(cols) + REL * |ref|}; a wrong
 * or missing term is ~0.1 or more and fails by orders of magnitude.
 */
class MatMulTest {

    private static final double ABS_PER_SQRT_COL = 1e-5;
    private static final double REL = 1e-5;
    private static final int[] TOKENS = {1, 2, 3, 5, 8, 9, 17, 40};
    private static final int[] THREADS = {1, 2, 3};

    private static final KernelPool[] POOLS = new KernelPool[THREADS.length];

    @BeforeAll
    static void startPools() {
        for (int i = 0; i < THREADS.length; i++) {
            POOLS[i] = new KernelPool(THREADS[i]);
        }
    }

    @AfterAll
    static void stopPools() {
        for (KernelPool pool : POOLS) {
            pool.close();
        }
    }

    private static int[] colsFor(DType type) {
        return type.isQuantized() ? new int[] {32, 96, 160} : new int[] {1, 7, 16, 33, 100};
    }

    /**
     * The activations a {@code type} product multiplies: Q8_0 rounds them to Q8_0 blocks first,
     * as ggml does (the rounding itself is checked in QuantizeTest).
     */
    static float[] seenBy(DType type, float[] x) {
        if (type != DType.Q8_0) {
            return x;
        }
        float[] rounded = new float[x.length];
        Quantize.roundQ8_0Scalar(x, 0, x.length, rounded, 0, null, 0, null, 0);
        return rounded;
    }

    /**
     * float64 {@code W x} over the weights as decoded by the scalar decoder and the activations
     * as {@link #seenBy} the weights' type.
     */
    private static double[] reference(DType type, float[] w, int rows, int cols, float[] x, int nTokens) {
        return reference(w, rows, cols, seenBy(type, x), nTokens);
    }

    /** float64 {@code W x} over the weights as decoded by the scalar decoder. */
    private static double[] reference(float[] w, int rows, int cols, float[] x, int nTokens) {
        double[] out = new double[nTokens * rows];
        for (int t = 0; t < nTokens; t++) {
            for (int r = 0; r < rows; r++) {
                double sum = 0;
                for (int c = 0; c < cols; c++) {
                    sum += (double) w[r * cols + c] * x[t * cols + c];
                }
                out[t * rows + r] = sum;
            }
        }
        return out;
    }

    private static void check(
            WeightMatrix w, float[] decoded, float[] x, int nTokens, KernelPool pool, String what) {
        int rows = w.rows();
        int cols = w.cols();
        double abs = ABS_PER_SQRT_COL * Math.sqrt(cols);
        float[] fast = new float[nTokens * rows];
        float[] scalar = new float[nTokens * rows];
        MatMul.matMul(pool, fast, w, x, nTokens);
        MatMul.matMulRowsScalar(scalar, w, x, nTokens, 0, rows, new Scratch());
        double[] ref = reference(w.dtype(), decoded, rows, cols, x, nTokens);
        for (int i = 0; i < fast.length; i++) {
            String at = what + " out[" + i / rows + "][" + i % rows + "]";
            Numerics.assertClose(scalar[i], fast[i], abs, REL, at + " vs scalar twin");
            Numerics.assertClose(ref[i], fast[i], abs, REL, at + " vs float64");
            Numerics.assertClose(ref[i], scalar[i], abs, REL, at + " scalar twin vs float64");
        }
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void matMulMatchesScalarTwinAndFloat64ForEveryTokenAndThreadCount(DType type) {
        Random rnd = new Random(10 + type.ordinal());
        for (int rows : new int[] {1, 5, 37}) {
            for (int cols : colsFor(type)) {
                float[] values = TestMatrices.weights(rnd, rows, cols);
                WeightMatrix w = WeightMatrix.onHeap(type, rows, cols, TestMatrices.encode(type, values, rows, cols));
                float[] decoded = TestMatrices.decoded(w);
                for (int nTokens : TOKENS) {
                    float[] x = Numerics.uniform(rnd, nTokens * cols, 1f);
                    for (int p = 0; p < POOLS.length; p++) {
                        check(w, decoded, x, nTokens, POOLS[p],
                                type + " " + rows + "x" + cols + " tokens " + nTokens + " threads " + THREADS[p]);
                        check(w.packOnHeap(), decoded, x, nTokens, POOLS[p],
                                type + " packed " + rows + "x" + cols + " tokens " + nTokens + " threads " + THREADS[p]);
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void matMulMatchesFloat64AtAQwenShape(DType type) {
        // 896 = Qwen2-0.5B hidden size: 28 Q8_0 blocks, a multiple of every vector length.
        Random rnd = new Random(20 + type.ordinal());
        int rows = 96;
        int cols = 896;
        float[] values = TestMatrices.weights(rnd, rows, cols);
        WeightMatrix w = WeightMatrix.onHeap(type, rows, cols, TestMatrices.encode(type, values, rows, cols));
        float[] decoded = TestMatrices.decoded(w);
        for (int nTokens : new int[] {1, 7, 20}) {
            float[] x = Numerics.uniform(rnd, nTokens * cols, 1f);
            check(w, decoded, x, nTokens, POOLS[1], type + " 96x896 tokens " + nTokens);
        }
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void aFewTokenBatchGivesATokenTheSameBitsWhicheverGroupItLandsIn(DType type) {
        // Up to GEMM_MIN tokens, rows in pairs (and an odd last row alone) meet the tokens in
        // groups of four, then two, then one; a MoE expert's share of a prefill chunk is such a
        // batch. Token t of an n-token batch must get the bits it gets in the first n' tokens of
        // a longer batch, where it may sit in another kind of group.
        if (type.isQuantized() && !Simd.QUANT_VECTORS || !type.isQuantized() && type != DType.F32 && !Simd.HALF_VECTORS) {
            return; // the scalar twin runs instead
        }
        Random rnd = new Random(65 + type.ordinal());
        int rows = 7; // three pairs and a row alone
        int cols = 96;
        WeightMatrix w = WeightMatrix.onHeap(type, rows, cols,
                TestMatrices.encode(type, TestMatrices.weights(rnd, rows, cols), rows, cols)).packOnHeap();
        float[] x = Numerics.uniform(rnd, MatMul.GEMM_MIN * cols, 1f);
        // Q8_0 is checked with its activations rounded (the int8 kernel up to INT8_TOKENS) and as
        // floats (every few-token batch in float row pairs)
        for (boolean round : type == DType.Q8_0 ? new boolean[] {true, false} : new boolean[] {true}) {
            float[] longest = new float[MatMul.GEMM_MIN * rows];
            MatMul.matMul(POOLS[0], longest, w, x, MatMul.GEMM_MIN, round);
            // up to INT8_TOKENS rounded Q8_0 tokens, each token gets the bits it gets alone
            float[] alone = new float[MatMul.GEMM_MIN * rows];
            for (int t = 0; t < MatMul.GEMM_MIN; t++) {
                float[] one = new float[rows];
                MatMul.matMul(POOLS[0], one, w, java.util.Arrays.copyOfRange(x, t * cols, (t + 1) * cols), 1, round);
                System.arraycopy(one, 0, alone, t * rows, rows);
            }
            boolean ints = type == DType.Q8_0 && round && MatMul.INT8_DOTS;
            for (int n = 2; n < MatMul.GEMM_MIN; n++) {
                float[] expected = ints && n <= MatMul.INT8_TOKENS ? alone : longest;
                for (KernelPool pool : POOLS) {
                    float[] out = new float[n * rows];
                    MatMul.matMul(pool, out, w, x, n, round);
                    Numerics.assertSameBits(expected, 0, out, 0, out.length, type + (round ? "" : " float") + " tokens "
                            + n + " vs " + (expected == alone ? "each alone" : MatMul.GEMM_MIN) + " threads "
                            + pool.threads());
                }
            }
        }
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void gemmGivesATokenTheSameBitsWhicheverTileItLandsIn(DType type) {
        // Above GEMM_MIN tokens the GEMM runs in tiles of 2L tokens; a last tile of at most L
        // tokens (but more than GEMM_REST) takes the one-vector step, a fuller one the
        // two-vector step. The 2L + GEMM_REST + 1 tokens of the short batch end in a one-vector
        // tile; in the long batch (L + 1 more) the same tokens sit in two-vector tiles. Both
        // must give every shared token the same bits.
        if (type.isQuantized() && !Simd.QUANT_VECTORS || !type.isQuantized() && type != DType.F32 && !Simd.HALF_VECTORS) {
            return; // the scalar twin runs instead: no tiles
        }
        Random rnd = new Random(60 + type.ordinal());
        int rows = 13; // two full steps of six rows and a step of one
        int cols = 64;
        WeightMatrix w = WeightMatrix.onHeap(type, rows, cols,
                TestMatrices.encode(type, TestMatrices.weights(rnd, rows, cols), rows, cols));
        int lanes = Simd.L;
        int shortBatch = Math.max(2 * lanes + MatMul.GEMM_REST + 1, MatMul.GEMM_MIN + 1);
        int longBatch = shortBatch + lanes + 1;
        assertTrue(shortBatch % (2 * lanes) <= lanes && shortBatch % (2 * lanes) > MatMul.GEMM_REST,
                "short batch ends in a one-vector tile");
        assertTrue(longBatch % (2 * lanes) > lanes || longBatch % (2 * lanes) == 0, "long batch ends in a two-vector tile");
        float[] x = Numerics.uniform(rnd, longBatch * cols, 1f);
        for (KernelPool pool : POOLS) {
            float[] shortOut = new float[shortBatch * rows];
            float[] longOut = new float[longBatch * rows];
            MatMul.matMul(pool, shortOut, w, x, shortBatch);
            MatMul.matMul(pool, longOut, w, x, longBatch);
            Numerics.assertSameBits(longOut, 0, shortOut, 0, shortOut.length,
                    type + " tokens " + shortBatch + " vs " + longBatch + " threads " + pool.threads());
        }
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void aGemmsLastFewTokensGetTheBitsOfTheirOwnBatch(DType type) {
        // 2L k + r tokens with 0 < r <= GEMM_REST: the GEMM runs the first 2L k, the last r go
        // to the few-token paths. Each part must equal the same tokens multiplied on their own,
        // whatever the thread count, and also through matMulMany.
        if (type.isQuantized() && !Simd.QUANT_VECTORS || !type.isQuantized() && type != DType.F32 && !Simd.HALF_VECTORS) {
            return; // the scalar twin runs instead
        }
        Random rnd = new Random(75 + type.ordinal());
        int rows = 13;
        int cols = 96;
        WeightMatrix w = WeightMatrix.onHeap(type, rows, cols,
                TestMatrices.encode(type, TestMatrices.weights(rnd, rows, cols), rows, cols)).packOnHeap();
        int tile = 2 * Simd.L;
        for (int rest = 1; rest <= MatMul.GEMM_REST; rest++) {
            int n = 2 * tile + rest;
            float[] x = Numerics.uniform(rnd, n * cols, 1f);
            float[] head = new float[2 * tile * rows];
            MatMul.matMul(POOLS[0], head, w, java.util.Arrays.copyOf(x, 2 * tile * cols), 2 * tile);
            float[] tail = new float[rest * rows];
            MatMul.matMul(POOLS[0], tail, w, java.util.Arrays.copyOfRange(x, 2 * tile * cols, n * cols), rest);
            for (KernelPool pool : POOLS) {
                float[] out = new float[n * rows];
                MatMul.matMul(pool, out, w, x, n);
                String where = type + " tokens " + n + " threads " + pool.threads();
                Numerics.assertSameBits(head, 0, out, 0, head.length, where + ": the GEMM's tiles");
                Numerics.assertSameBits(tail, 0, out, head.length, tail.length, where + ": the last " + rest);
                float[][] many = {new float[n * rows], new float[n * rows]};
                MatMul.matMulMany(pool, many, new WeightMatrix[] {w, w}, x, n);
                Numerics.assertSameBits(out, 0, many[1], 0, out.length, where + ": matMulMany");
            }
        }
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void matMulManyGivesEachMatrixTheBitsOfItsOwnMatMul(DType type) {
        // q/k/v-like: three matrices of different heights over the same activations
        Random rnd = new Random(40 + type.ordinal());
        int cols = type.isQuantized() ? 64 : 48;
        int[] heights = {21, 6, 6};
        WeightMatrix[] ws = new WeightMatrix[heights.length];
        for (int i = 0; i < ws.length; i++) {
            ws[i] = WeightMatrix.onHeap(type, heights[i], cols,
                    TestMatrices.encode(type, TestMatrices.weights(rnd, heights[i], cols), heights[i], cols));
        }
        for (int nTokens : new int[] {1, 3, 18}) {
            float[] x = Numerics.uniform(rnd, nTokens * cols, 1f);
            for (KernelPool pool : POOLS) {
                float[][] outs = new float[ws.length][];
                for (int i = 0; i < ws.length; i++) {
                    outs[i] = new float[nTokens * heights[i]];
                }
                MatMul.matMulMany(pool, outs, ws, x, nTokens);
                for (int i = 0; i < ws.length; i++) {
                    float[] expected = new float[nTokens * heights[i]];
                    MatMul.matMul(pool, expected, ws[i], x, nTokens);
                    Numerics.assertSameBits(expected, 0, outs[i], 0, expected.length,
                            type + " matrix " + i + " tokens " + nTokens + " threads " + pool.threads());
                }
            }
        }
        WeightMatrix narrow = WeightMatrix.onHeap(type, 2, 32,
                TestMatrices.encode(type, TestMatrices.weights(rnd, 2, 32), 2, 32));
        assertThrows(IllegalArgumentException.class, () -> MatMul.matMulMany(POOLS[0],
                new float[][] {new float[heights[0]], new float[2]}, new WeightMatrix[] {ws[0], narrow}, new float[cols], 1));
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void matMulEachGivesEachMatrixTheBitsOfItsOwnMatMulWithItsOwnInput(DType type) {
        // expert down projections: different heights and widths, an input each
        Random rnd = new Random(45 + type.ordinal());
        int[] heights = {19, 7, 12};
        int[] widths = type.isQuantized() ? new int[] {64, 96, 32} : new int[] {48, 17, 33};
        WeightMatrix[] ws = new WeightMatrix[heights.length];
        for (int i = 0; i < ws.length; i++) {
            ws[i] = WeightMatrix.onHeap(type, heights[i], widths[i],
                    TestMatrices.encode(type, TestMatrices.weights(rnd, heights[i], widths[i]), heights[i], widths[i]));
        }
        for (int nTokens : new int[] {1, 3, 18}) {
            float[][] xs = new float[ws.length][];
            float[][] outs = new float[ws.length + 1][]; // one spare: count < length is allowed
            for (int i = 0; i < ws.length; i++) {
                xs[i] = Numerics.uniform(rnd, nTokens * widths[i], 1f);
                outs[i] = new float[nTokens * heights[i]];
            }
            for (KernelPool pool : POOLS) {
                MatMul.matMulEach(pool, outs, ws, xs, ws.length, nTokens);
                for (int i = 0; i < ws.length; i++) {
                    float[] expected = new float[nTokens * heights[i]];
                    MatMul.matMul(pool, expected, ws[i], xs[i], nTokens);
                    Numerics.assertSameBits(expected, 0, outs[i], 0, expected.length,
                            type + " matrix " + i + " tokens " + nTokens + " threads " + pool.threads());
                }
            }
        }
        assertThrows(IllegalArgumentException.class, () -> MatMul.matMulEach(POOLS[0],
                new float[][] {new float[heights[0]]}, ws, new float[][] {new float[widths[0]]}, 2, 1));
        assertThrows(IllegalArgumentException.class, () -> MatMul.matMulEach(POOLS[0],
                new float[][] {new float[heights[0]]}, ws, new float[][] {new float[widths[0] - 1]}, 1, 1));
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void matMulEachWithATokenCountPerMatrixGivesEachItsOwnMatMul(DType type) {
        // the experts of a MoE layer: each matrix its own input and number of tokens, 0 = idle
        Random rnd = new Random(47 + type.ordinal());
        int[] heights = {19, 7, 12, 5};
        int[] tokens = {3, 0, 18, 1};
        int cols = type.isQuantized() ? 64 : 29;
        WeightMatrix[] ws = new WeightMatrix[heights.length];
        float[][] xs = new float[heights.length][];
        float[][] outs = new float[heights.length][];
        for (int i = 0; i < ws.length; i++) {
            ws[i] = WeightMatrix.onHeap(type, heights[i], cols,
                    TestMatrices.encode(type, TestMatrices.weights(rnd, heights[i], cols), heights[i], cols));
            xs[i] = Numerics.uniform(rnd, Math.max(1, tokens[i]) * cols, 1f);
        }
        for (KernelPool pool : POOLS) {
            for (int i = 0; i < ws.length; i++) {
                outs[i] = new float[Math.max(1, tokens[i]) * heights[i]];
                java.util.Arrays.fill(outs[i], Float.NaN);
            }
            MatMul.matMulEach(pool, outs, ws, xs, tokens, ws.length);
            for (int i = 0; i < ws.length; i++) {
                if (tokens[i] == 0) {
                    for (float v : outs[i]) {
                        assertTrue(Float.isNaN(v), "an idle matrix is not computed");
                    }
                    continue;
                }
                float[] expected = new float[tokens[i] * heights[i]];
                MatMul.matMul(pool, expected, ws[i], xs[i], tokens[i]);
                Numerics.assertSameBits(expected, 0, outs[i], 0, expected.length,
                        type + " matrix " + i + " threads " + pool.threads());
            }
        }
        assertThrows(IllegalArgumentException.class, () -> MatMul.matMulEach(POOLS[0], outs, ws, xs, new int[] {-1, 0, 0, 0}, 4));
        assertThrows(IllegalArgumentException.class, () -> MatMul.matMulEach(POOLS[0], outs, ws, xs, new int[] {1, 0}, 4));
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void matMulGivesTheSameBitsInEveryBufferLayout(DType type) {
        // Same arithmetic whatever the buffers: only addressing differs (chunks, direct, odd base,
        // heap arrays in the packed layout).
        Random rnd = new Random(30 + type.ordinal());
        int rows = 10;
        int cols = type.isQuantized() ? 64 : 37;
        byte[] bytes = TestMatrices.encode(type, TestMatrices.weights(rnd, rows, cols), rows, cols);
        WeightMatrix heap = TestMatrices.matrix(TestMatrices.Layout.HEAP, type, rows, cols, bytes);
        for (int nTokens : new int[] {1, 2, 3, 5, 19}) {
            float[] x = Numerics.uniform(rnd, nTokens * cols, 1f);
            float[] expected = new float[nTokens * rows];
            MatMul.matMul(POOLS[0], expected, heap, x, nTokens);
            for (TestMatrices.Layout layout : TestMatrices.Layout.values()) {
                WeightMatrix w = TestMatrices.matrix(layout, type, rows, cols, bytes);
                for (KernelPool pool : POOLS) {
                    float[] actual = new float[nTokens * rows];
                    MatMul.matMul(pool, actual, w, x, nTokens);
                    Numerics.assertSameBits(expected, 0, actual, 0, actual.length,
                            type + " " + layout + " tokens " + nTokens + " threads " + pool.threads());
                }
            }
        }
        WeightMatrix chunked = TestMatrices.matrix(TestMatrices.Layout.CHUNKED, type, rows, cols, bytes);
        assertEquals(4, chunked.chunkCount());
        WeightMatrix packed = TestMatrices.matrix(TestMatrices.Layout.PACKED_SMALL_ARRAYS, type, rows, cols, bytes);
        assertEquals(type != DType.Q4_0, packed.isPacked(), type + " has a packed layout (Q4_0 stays mapped)");
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void aLongPrefillOverWideRowsMatchesTheScalarTwin(DType type) {
        // the FFN down projection's shape class: wide rows, several token tiles, a partial tile
        int rows = 14;
        int cols = 3200;
        int nTokens = 40;
        Random rnd = new Random(70 + type.ordinal());
        WeightMatrix w = WeightMatrix.onHeap(type, rows, cols,
                TestMatrices.encode(type, TestMatrices.weights(rnd, rows, cols), rows, cols));
        float[] decoded = TestMatrices.decoded(w);
        float[] x = Numerics.uniform(rnd, nTokens * cols, 1f);
        check(w.packOnHeap(), decoded, x, nTokens, POOLS[2], type + " packed " + rows + "x" + cols);
        check(w, decoded, x, nTokens, POOLS[1], type + " mapped " + rows + "x" + cols);
    }

    @Test
    void f16DecodeHandlesSubnormalZeroAndExtremeHalvesWithSmallAndLargeActivations() {
        // the one-token F16 path dots shifted bits (value * 2^-112) with x * 2^56: check it where
        // that scaling could bite: subnormal and signed-zero halves, the largest finite half,
        // activations from 1e-6 to 1e4
        short[] halves = {0x0001, (short) 0x8001, 0x03FF, 0x0000, (short) 0x8000, 0x7BFF, (short) 0xFBFF, 0x0400,
            0x3C00, (short) 0xBC00, 0x1234, (short) 0x9234, 0x5640, (short) 0xD640, 0x0200, 0x2E66};
        int cols = 48;
        int rows = 7;
        Random rnd = new Random(61);
        byte[] bytes = new byte[rows * cols * 2];
        float[] decoded = new float[rows * cols];
        for (int i = 0; i < rows * cols; i++) {
            short h = halves[rnd.nextInt(halves.length)];
            bytes[2 * i] = (byte) h;
            bytes[2 * i + 1] = (byte) (h >> 8);
            decoded[i] = Float16.toFloat(h);
        }
        for (double scale : new double[] {1e-6, 1e-2, 1, 1e4}) {
            float[] x = new float[cols];
            for (int c = 0; c < cols; c++) {
                x[c] = (float) (scale * (rnd.nextDouble() * 2 - 1));
            }
            double[] ref = reference(decoded, rows, cols, x, 1);
            for (WeightMatrix w : new WeightMatrix[] {
                WeightMatrix.onHeap(DType.F16, rows, cols, bytes), WeightMatrix.onHeap(DType.F16, rows, cols, bytes).packOnHeap()
            }) {
                float[] out = new float[rows];
                MatMul.matMul(POOLS[0], out, w, x, 1);
                for (int r = 0; r < rows; r++) {
                    // the classic bound of a float dot product: (n + 1) u sum |w x|, u = 2^-24
                    double absSum = 0;
                    for (int c = 0; c < cols; c++) {
                        absSum += Math.abs((double) decoded[r * cols + c] * x[c]);
                    }
                    double bound = (cols + 1) * 0x1p-24 * absSum;
                    assertEquals(ref[r], out[r], bound, w + " row " + r + " with |x| up to " + scale);
                }
            }
        }
    }

    @Test
    void matMulRowsWritesOnlyItsRowsForEveryToken() {
        Random rnd = new Random(40);
        int rows = 9;
        int cols = 64;
        int nTokens = 3;
        WeightMatrix w = WeightMatrix.onHeap(DType.Q8_0, rows, cols,
                TestMatrices.encode(DType.Q8_0, TestMatrices.weights(rnd, rows, cols), rows, cols));
        float[] x = Numerics.uniform(rnd, nTokens * cols, 1f);
        float[] full = new float[nTokens * rows];
        MatMul.matMulRows(full, w, x, nTokens, 0, rows, new Scratch());
        for (boolean scalar : new boolean[] {false, true}) {
            float[] part = new float[nTokens * rows];
            Arrays.fill(part, Float.NaN);
            if (scalar) {
                MatMul.matMulRowsScalar(part, w, x, nTokens, 2, 5, new Scratch());
            } else {
                MatMul.matMulRows(part, w, x, nTokens, 2, 5, new Scratch());
            }
            for (int t = 0; t < nTokens; t++) {
                for (int r = 0; r < rows; r++) {
                    float v = part[t * rows + r];
                    if (r >= 2 && r < 5) {
                        Numerics.assertClose(full[t * rows + r], v, 1e-5, 1e-5, "token " + t + " row " + r);
                    } else {
                        assertTrue(Float.isNaN(v), "row " + r + " outside the range was written");
                    }
                }
            }
        }
    }

    @Test
    void oneScratchServesMatricesOfDifferentTypesAndSizes() {
        // A worker's scratch goes from matrix to matrix; stale views or short buffers would show.
        Random rnd = new Random(50);
        Scratch scratch = new Scratch();
        for (int round = 0; round < 3; round++) {
            for (DType type : DType.values()) {
                int cols = type.isQuantized() ? 32 * (1 + rnd.nextInt(8)) : 1 + rnd.nextInt(300);
                int rows = 1 + rnd.nextInt(6);
                int nTokens = 1 + rnd.nextInt(4);
                WeightMatrix w = WeightMatrix.onHeap(type, rows, cols,
                        TestMatrices.encode(type, TestMatrices.weights(rnd, rows, cols), rows, cols));
                float[] x = Numerics.uniform(rnd, nTokens * cols, 1f);
                float[] out = new float[nTokens * rows];
                MatMul.matMulRows(out, w, x, nTokens, 0, rows, scratch);
                double[] ref = reference(type, TestMatrices.decoded(w), rows, cols, x, nTokens);
                for (int i = 0; i < out.length; i++) {
                    Numerics.assertClose(ref[i], out[i], ABS_PER_SQRT_COL * Math.sqrt(cols), REL,
                            type + " " + rows + "x" + cols + " out " + i);
                }
            }
        }
    }

    @Test
    void matMulRejectsMismatchedShapes() {
        WeightMatrix w = WeightMatrix.onHeap(DType.F32, 4, 8, new byte[4 * 8 * 4]);
        KernelPool pool = POOLS[0];
        assertThrows(IllegalArgumentException.class, () -> MatMul.matMul(pool, new float[4], w, new float[8], 0));
        assertThrows(IllegalArgumentException.class, () -> MatMul.matMul(pool, new float[3], w, new float[8], 1));
        assertThrows(IllegalArgumentException.class, () -> MatMul.matMul(pool, new float[8], w, new float[15], 2));
        assertThrows(IndexOutOfBoundsException.class,
                () -> MatMul.matMulRows(new float[4], w, new float[8], 1, 3, 5, new Scratch()));
    }
}
