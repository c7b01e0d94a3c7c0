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
import org.junit.jupiter.api.Test;

/**
 * The tiled, online-softmax attention against a float64 softmax over all positions at once,
 * computed here from the values as stored (F32 as is, F16 through {@link Float16#toFloat}, Q8 as
 * {@code int8 * scale}). Outputs are convex combinations of values in [-1, 1): kernels and float64
 * must agree within {@code 2e-5 + 2e-5 * |ref|}, whatever the tiling.
 */
class AttentionTest {

    enum Format { F32, F16, Q8 }

    private static final int KV_HEADS = 3;

    /** A cache of {@code positions} rows of {@code KV_HEADS * headDim} (+ padding), in one format. */
    static final class Cache {
        final Format format;
        final int stride;
        final int base;
        final float[] f32;
        short[] f16;
        byte[] q8;
        float[] scales;

        Cache(Format format, float[] src, int base, int stride) {
            this.format = format;
            this.base = base;
            this.stride = stride;
            this.f32 = src;
            if (format == Format.F16) {
                f16 = new short[src.length];
                Attention.toF16Clamped(f16, 0, src, 0, src.length);
            } else if (format == Format.Q8) {
                int n = src.length / Attention.Q8_GROUP * Attention.Q8_GROUP;
                q8 = new byte[src.length];
                scales = new float[src.length / Attention.Q8_GROUP + 1];
                Attention.quantizeQ8(q8, scales, 0, src, 0, n);
            }
        }

        /** The stored element {@code e}, decoded by this test. */
        double stored(int e) {
            switch (format) {
                case F32: return f32[e];
                case F16: return Float16.toFloat(f16[e]);
                default: return (double) q8[e] * scales[e >> 5];
            }
        }
    }

    private static void tile(
            boolean vector, Format f, float[] out, int outOff, float[] state, int stOff, float[] q, int qOff,
            int nHeads, int headDim, Cache k, Cache v, int kvOff, int n, float scale, float[] scores) {
        switch (f) {
            case F32:
                if (vector) {
                    Attention.tileF32(out, outOff, state, stOff, q, qOff, nHeads, headDim, k.f32, v.f32, kvOff, k.stride, n, scale, scores);
                } else {
                    Attention.tileF32Scalar(out, outOff, state, stOff, q, qOff, nHeads, headDim, k.f32, v.f32, kvOff, k.stride, n, scale, scores);
                }
                break;
            case F16:
                if (vector) {
                    Attention.tileF16(out, outOff, state, stOff, q, qOff, nHeads, headDim, k.f16, v.f16, kvOff, k.stride, n, scale, scores,
                            new float[Attention.kvScratchFloats(n, headDim)]);
                } else {
                    Attention.tileF16Scalar(out, outOff, state, stOff, q, qOff, nHeads, headDim, k.f16, v.f16, kvOff, k.stride, n, scale, scores);
                }
                break;
            default:
                if (vector) {
                    Attention.tileQ8(out, outOff, state, stOff, q, qOff, nHeads, headDim, k.q8, k.scales, v.q8, v.scales, kvOff, k.stride, n, scale, scores,
                            new float[Attention.kvScratchFloats(n, headDim)]);
                } else {
                    Attention.tileQ8Scalar(out, outOff, state, stOff, q, qOff, nHeads, headDim, k.q8, k.scales, v.q8, v.scales, kvOff, k.stride, n, scale, scores);
                }
        }
    }

    /** Attention of nHeads query heads over all positions, in tiles of {@code tileSize}. */
    private static float[] attend(
            boolean vector, Format f, float[] q, int qOff, int nHeads, int headDim, Cache k, Cache v, int headOffset,
            int positions, int tileSize, float scale) {
        float[] out = new float[3 + nHeads * headDim];
        float[] state = new float[1 + 2 * nHeads];
        float[] scores = new float[tileSize + 3];
        Attention.begin(out, 3, state, 1, nHeads, headDim);
        for (int t0 = 0; t0 < positions; t0 += tileSize) {
            int n = Math.min(tileSize, positions - t0);
            tile(vector, f, out, 3, state, 1, q, qOff, nHeads, headDim, k, v, k.base + t0 * k.stride + headOffset, n, scale, scores);
        }
        if (vector) {
            Attention.finish(out, 3, state, 1, nHeads, headDim);
        } else {
            Attention.finishScalar(out, 3, state, 1, nHeads, headDim);
        }
        return Arrays.copyOfRange(out, 3, out.length);
    }

    private static double[] reference(
            float[] q, int qOff, int headDim, Cache k, Cache v, int headOffset, int positions, float scale) {
        double[] s = new double[positions];
        double max = Double.NEGATIVE_INFINITY;
        for (int t = 0; t < positions; t++) {
            double dot = 0;
            for (int d = 0; d < headDim; d++) {
                dot += (double) q[qOff + d] * k.stored(k.base + t * k.stride + headOffset + d);
            }
            s[t] = scale * dot;
            max = Math.max(max, s[t]);
        }
        double sum = 0;
        for (int t = 0; t < positions; t++) {
            s[t] = Math.exp(s[t] - max);
            sum += s[t];
        }
        double[] out = new double[headDim];
        for (int t = 0; t < positions; t++) {
            for (int d = 0; d < headDim; d++) {
                out[d] += s[t] / sum * v.stored(v.base + t * v.stride + headOffset + d);
            }
        }
        return out;
    }

    private static void check(Format f, int[] headDims, int padding, int base) {
        Random rnd = new Random(f.ordinal() + 1);
        for (int headDim : headDims) {
            int stride = KV_HEADS * headDim + padding;
            for (int positions : new int[] {1, 2, 3, 17, 100}) {
                float[] kSrc = Numerics.uniform(rnd, base + positions * stride + 64, 1f);
                float[] vSrc = Numerics.uniform(rnd, base + positions * stride + 64, 1f);
                Cache k = new Cache(f, kSrc, base, stride);
                Cache v = new Cache(f, vSrc, base, stride);
                int nHeads = 2; // a group of two query heads over one KV head
                float[] q = Numerics.uniform(rnd, 4 + nHeads * headDim, 3f);
                float scale = (float) (1.0 / Math.sqrt(headDim));
                for (int kvHead = 0; kvHead < KV_HEADS; kvHead++) {
                    int headOffset = kvHead * headDim;
                    for (int tileSize : new int[] {1, 5, 16, 128}) {
                        float[] fast = attend(true, f, q, 4, nHeads, headDim, k, v, headOffset, positions, tileSize, scale);
                        float[] scalar = attend(false, f, q, 4, nHeads, headDim, k, v, headOffset, positions, tileSize, scale);
                        for (int j = 0; j < nHeads; j++) {
                            double[] ref = reference(q, 4 + j * headDim, headDim, k, v, headOffset, positions, scale);
                            for (int d = 0; d < headDim; d++) {
                                String what = f + " headDim " + headDim + " positions " + positions + " kv head " + kvHead
                                        + " tile " + tileSize + " q head " + j + " [" + d + "]";
                                Numerics.assertClose(ref[d], fast[j * headDim + d], 2e-5, 2e-5, what);
                                Numerics.assertClose(ref[d], scalar[j * headDim + d], 2e-5, 2e-5, what + " scalar");
                            }
                        }
                    }
                }
            }
        }
    }

    @Test
    void tiledF32AttentionMatchesScalarTwinAndFloat64SoftmaxForAnyTiling() {
        check(Format.F32, new int[] {1, 7, 8, 16, 33, 64, 128}, 5, 11);
    }

    @Test
    void tiledF16AttentionMatchesScalarTwinAndFloat64OverTheStoredHalves() {
        check(Format.F16, new int[] {1, 7, 8, 16, 33, 64, 128}, 5, 11);
    }

    @Test
    void tiledQ8AttentionMatchesScalarTwinAndFloat64OverTheStoredBytes() {
        // Q8 needs offsets, strides and head sizes in whole groups of 32
        check(Format.Q8, new int[] {32, 64, 128}, 32, 64);
    }

    @Test
    void quantizeQ8KeepsEachElementWithinHalfAStepOfItsGroupScale() {
        Random rnd = new Random(9);
        float[] src = Numerics.uniform(rnd, 32 * 7 + 3, 5f);
        src[40] = 100f; // an outlier moves its own group's scale only
        Arrays.fill(src, 3 + 64, 3 + 96, 0f); // an all-zero group
        byte[] q = new byte[32 * 8];
        float[] scales = new float[8];
        Attention.quantizeQ8(q, scales, 32, src, 3, 32 * 7);
        for (int i = 0; i < 32 * 7; i++) {
            int e = 32 + i;
            float s = scales[e >> 5];
            double decoded = (double) q[e] * s;
            assertTrue(Math.abs(decoded - src[3 + i]) <= s / 2 * (1 + 1e-6) + 1e-30,
                    "element " + i + ": " + src[3 + i] + " stored as " + q[e] + " x " + s);
            assertTrue(Math.abs(q[e]) <= 127);
        }
        assertEquals(0f, scales[(32 + 64) >> 5], "all-zero group");
        assertEquals(100f / 127f, scales[(32 + 32) >> 5], 1e-6f, "the outlier's group");
        assertTrue(scales[1] < 5f / 127f * 1.0001f, "other groups keep their own scale: " + scales[1]);
        assertThrows(IllegalArgumentException.class, () -> Attention.quantizeQ8(q, scales, 1, src, 0, 32));
        assertThrows(IllegalArgumentException.class, () -> Attention.quantizeQ8(q, scales, 0, src, 0, 31));
    }

    @Test
    void f16StoreRoundsToNearestAndClampsInsteadOfStoringInfinity() {
        float[] src = {1f, 1e5f, -1e6f, 0.1f, 65504f};
        short[] h = new short[5];
        Attention.toF16Clamped(h, 0, src, 0, 5);
        assertEquals(1f, Float16.toFloat(h[0]));
        assertEquals(65504f, Float16.toFloat(h[1]));
        assertEquals(-65504f, Float16.toFloat(h[2]));
        assertEquals(0.0999755859375f, Float16.toFloat(h[3])); // the half nearest 0.1
        assertEquals(65504f, Float16.toFloat(h[4]));
    }

    @Test
    void onePositionReturnsItsValue() {
        Random rnd = new Random(2);
        int headDim = 37;
        float[] keys = Numerics.uniform(rnd, 100, 1f);
        float[] values = Numerics.uniform(rnd, 100, 1f);
        float[] q = Numerics.uniform(rnd, headDim, 1f);
        for (boolean vector : new boolean[] {true, false}) {
            float[] out = new float[headDim];
            float[] state = new float[2];
            Attention.begin(out, 0, state, 0, 1, headDim);
            if (vector) {
                Attention.tileF32(out, 0, state, 0, q, 0, 1, headDim, keys, values, 13, 50, 1, 0.5f, new float[1]);
                Attention.finish(out, 0, state, 0, 1, headDim);
            } else {
                Attention.tileF32Scalar(out, 0, state, 0, q, 0, 1, headDim, keys, values, 13, 50, 1, 0.5f, new float[1]);
                Attention.finishScalar(out, 0, state, 0, 1, headDim);
            }
            Numerics.assertSameBits(values, 13, out, 0, headDim, vector ? "vector" : "scalar");
        }
    }

    @Test
    void aLaterTileWithAMuchLargerScoreRescalesTheEarlierOnesWithoutOverflow() {
        // scores 0 then 80: exp(80) overflows nothing because each tile is shifted by the running max
        int headDim = 32;
        float[] keys = new float[2 * headDim];
        float[] values = new float[2 * headDim];
        float[] q = new float[headDim];
        q[0] = 1f;
        keys[headDim] = 80f;
        Arrays.fill(values, 0, headDim, 1f);
        Arrays.fill(values, headDim, 2 * headDim, -1f);
        float[] out = new float[headDim];
        float[] state = new float[2];
        float[] scores = new float[1];
        Attention.begin(out, 0, state, 0, 1, headDim);
        Attention.tileF32(out, 0, state, 0, q, 0, 1, headDim, keys, values, 0, headDim, 1, 1f, scores);
        Attention.tileF32(out, 0, state, 0, q, 0, 1, headDim, keys, values, headDim, headDim, 1, 1f, scores);
        Attention.finish(out, 0, state, 0, 1, headDim);
        double p0 = 1 / (1 + Math.exp(80)); // weight of the first position
        for (int d = 0; d < headDim; d++) {
            Numerics.assertClose(p0 - (1 - p0), out[d], 1e-6, 1e-6, "[" + d + "]");
        }
    }

    @Test
    void rejectsEmptyTilesTooFewScoresAndQ8OffsetsOutsideGroups() {
        float[] v = new float[256];
        float[] st = new float[2];
        assertThrows(IllegalArgumentException.class,
                () -> Attention.tileF32(v, 0, st, 0, v, 0, 1, 8, v, v, 0, 8, 4, 1f, new float[3]));
        assertThrows(IllegalArgumentException.class,
                () -> Attention.tileF32Scalar(v, 0, st, 0, v, 0, 1, 8, v, v, 0, 8, 0, 1f, new float[3]));
        byte[] b = new byte[256];
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Attention.tileQ8(v, 0, st, 0, v, 0, 1, 32, b, v, b, v, 16, 32, 1, 1f, new float[3], new float[64]));
        assertTrue(e.getMessage().contains("multiples of 32"), e.getMessage());
        float[] out = new float[8];
        Attention.begin(out, 0, st, 0, 1, 8);
        assertThrows(IllegalStateException.class, () -> Attention.finish(out, 0, st, 0, 1, 8));
    }

    /** Tolerance (abs and rel) between two runs of the same operations that may sum vector lanes in another order. */
    private static final double SAME_OPS = 4 * Math.ulp(1f);

    /** The stored elements of {@code c} decoded to floats as the F32 tile would hold them ({@code int8 * scale} rounded once). */
    private static float[] decoded(Cache c) {
        float[] d = new float[c.f32.length];
        for (int e = 0; e < d.length; e++) {
            switch (c.format) {
                case F32: d[e] = c.f32[e]; break;
                case F16: d[e] = Float16.toFloat(c.f16[e]); break;
                default: d[e] = c.q8[e] * c.scales[e >> 5];
            }
        }
        return d;
    }

    /**
     * Runs one tile of {@code nRows} rows through {@code tileRows*} of {@code f}, and row by row
     * through {@link Attention#tileF32} over the decoded cache with each row's causal count. Both
     * run the same float operations in the same order, except the lane order inside {@code
     * reduceLanes(ADD)}, which the Vector API leaves open: compiled code and the interpreter sum
     * the lanes differently (seen on JDK 25 at 128 bits: one ulp). So outputs and states must
     * agree within 4 float ulps of values near 1 ({@link #SAME_OPS}), not to the bit.
     */
    private static void rowsMatchSingleRowF32(Format f, int headDim, int nRows, int visible0, int n, long seed) {
        Random rnd = new Random(seed);
        int nHeads = 3;
        int rowStride = 2 * nHeads * headDim + 5; // rows are a hidden size apart, heads of one group inside
        int stride = 2 * headDim + (f == Format.Q8 ? 32 : 3);
        int base = f == Format.Q8 ? 64 : 7;
        float[] kSrc = Numerics.uniform(rnd, base + n * stride + headDim, 2f);
        float[] vSrc = Numerics.uniform(rnd, base + n * stride + headDim, 2f);
        Cache k = new Cache(f, kSrc, base, stride);
        Cache v = new Cache(f, vSrc, base, stride);
        float[] kd = decoded(k);
        float[] vd = decoded(v);
        int kvOff = base + (f == Format.Q8 ? 0 : headDim); // the second KV head, or the first for Q8's groups
        float[] q = Numerics.uniform(rnd, 2 + nRows * rowStride, 3f);
        float scale = (float) (1.0 / Math.sqrt(headDim));
        // a first tile seen whole by every row, then the tile under test: the online rescaling runs too
        float[] outRows = new float[2 + nRows * rowStride];
        float[] stRows = new float[1 + 2 * nRows * nHeads];
        float[] outOne = outRows.clone();
        float[] stOne = stRows.clone();
        float[] scores = new float[n];
        float[] scratch = new float[Attention.kvScratchFloats(n, headDim) + 1];
        for (int r = 0; r < nRows; r++) {
            Attention.begin(outRows, 2 + r * rowStride, stRows, 1 + 2 * r * nHeads, nHeads, headDim);
            Attention.begin(outOne, 2 + r * rowStride, stOne, 1 + 2 * r * nHeads, nHeads, headDim);
        }
        for (int pass = 0; pass < 2; pass++) {
            int vis = pass == 0 ? n : visible0;
            switch (f) {
                case F32:
                    Attention.tileRowsF32(outRows, 2, stRows, 1, q, 2, rowStride, nRows, vis, nHeads, headDim, k.f32,
                            v.f32, kvOff, stride, n, scale, scores);
                    break;
                case F16:
                    Attention.tileRowsF16(outRows, 2, stRows, 1, q, 2, rowStride, nRows, vis, nHeads, headDim, k.f16,
                            v.f16, kvOff, stride, n, scale, scores, scratch);
                    break;
                default:
                    Attention.tileRowsQ8(outRows, 2, stRows, 1, q, 2, rowStride, nRows, vis, nHeads, headDim, k.q8,
                            k.scales, v.q8, v.scales, kvOff, stride, n, scale, scores, scratch);
            }
            for (int r = 0; r < nRows; r++) {
                int nr = Math.min(n, vis + r);
                if (nr > 0) {
                    Attention.tileF32(outOne, 2 + r * rowStride, stOne, 1 + 2 * r * nHeads, q, 2 + r * rowStride, nHeads,
                            headDim, kd, vd, kvOff, stride, nr, scale, scores);
                }
            }
        }
        String what = f + " headDim " + headDim + " rows " + nRows + " visible0 " + visible0 + " n " + n;
        Numerics.assertClose(stOne, 0, stRows, 0, stOne.length, SAME_OPS, SAME_OPS, what + " states");
        Numerics.assertClose(outOne, 0, outRows, 0, outOne.length, SAME_OPS, SAME_OPS, what + " outputs");
    }

    @Test
    void f16AndQ8TilesGiveTheF32TilesResultsOverTheDecodedValues() {
        for (Format f : Format.values()) {
            for (int headDim : f == Format.Q8 ? new int[] {32, 64, 128} : new int[] {7, 16, 33, 64, 128}) {
                for (int n : new int[] {1, 3, 4, 16}) {
                    rowsMatchSingleRowF32(f, headDim, 1, n, n, 31L * headDim + n);
                }
            }
        }
    }

    @Test
    void rowsOfAChunkShareATileWithEachRowsCausalMask() {
        for (Format f : Format.values()) {
            int headDim = f == Format.Q8 ? 64 : 48;
            for (int nRows : new int[] {1, 2, 5, 16}) {
                // visible0 below 1: the first rows see nothing of this tile; above n: every row sees all of it
                for (int visible0 : new int[] {-3, 0, 1, 4, 9, 16, 40}) {
                    rowsMatchSingleRowF32(f, headDim, nRows, visible0, 16, 7L * nRows + visible0 + 100);
                }
            }
        }
    }

    @Test
    void f16AndQ8TilesRejectATooSmallScratch() {
        float[] v = new float[512];
        float[] st = new float[2];
        short[] h = new short[512];
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Attention.tileF16(v, 0, st, 0, v, 0, 1, 32, h, h, 0, 32, 4, 1f, new float[4], new float[255]));
        assertTrue(e.getMessage().contains("needs 256 floats of kvScratch, got 255"), e.getMessage());
        byte[] b = new byte[512];
        assertThrows(IllegalArgumentException.class,
                () -> Attention.tileQ8(v, 0, st, 0, v, 0, 1, 32, b, v, b, v, 0, 32, 4, 1f, new float[4], new float[100]));
    }
}
