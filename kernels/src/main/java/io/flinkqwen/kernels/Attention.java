/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels;

import static io.flinkqwen.kernels.Simd.B;
import static io.flinkqwen.kernels.Simd.BYTE_PARTS;
import static io.flinkqwen.kernels.Simd.F;
import static io.flinkqwen.kernels.Simd.L;
import static io.flinkqwen.kernels.Simd.S;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;

/**
 * Scaled dot-product attention of query heads over a KV cache stored in tiles, with an online
 * softmax (Milakov and Gimelshein 2018; the decode half of FlashAttention): the cache is read one
 * tile of positions at a time and nothing grows with the context but the number of tiles. Per
 * query head the state is a running maximum {@code m}, a running sum {@code l} of {@code
 * exp(s - m)} and an output accumulator; a tile with a larger maximum rescales both by {@code
 * exp(m_old - m_new)}. After the last tile {@link #finish} divides by {@code l}.
 *
 * <p>A call {@code begin}, then one {@code tile*} per tile in position order, then {@code
 * finish}. A tile call takes {@code nHeads} consecutive query heads that share one KV head
 * (grouped-query attention), so a tile is loaded into L1 once for all heads of its group: query
 * head {@code j} is {@code q[qOff + j * headDim ..]}, its accumulator {@code out[outOff + j *
 * headDim ..]} and its state {@code state[stOff + 2j]} (m) and {@code state[stOff + 2j + 1]}
 * (l). Position {@code t} of a tile has its key at {@code keys[kvOff + t * kvStride ..][0 ..
 * headDim)}, its value the same range of {@code values}. No mask: the caller passes the visible
 * positions, which gives causal attention one query row at a time; the {@code tileRows*}
 * variants take several rows of consecutive positions (a prefill chunk) with a causal count per
 * row, so that a tile is loaded once for all rows and heads.
 *
 * <p>Three stored formats: F32, F16 (binary16 bits in {@code short[]}) and Q8 (int8 with one
 * float scale per 32 consecutive elements: element {@code e} of {@code keys} is {@code keys[e] *
 * keyScales[e >> 5]}; {@link #quantizeQ8}). An F16 or Q8 tile is decoded to floats once, into
 * caller scratch ({@link #kvScratchFloats}), and then attended by the F32 tile's loops (four
 * positions' scores and four output vectors per pass): decoding per head and per multiply, as
 * these tiles did before, cost more than the multiplies, and the F32 loops with halves or bytes
 * widened inline made JDK 17 box vectors. {@code scores} is caller scratch of at least {@code n}
 * floats. {@code q} is read on every tile, so it must not overlap {@code out}.
 */
public final class Attention {

    /** Elements per Q8 scale. */
    public static final int Q8_GROUP = 32;

    private Attention() {}

    /** Zeroes the accumulators of {@code nHeads} heads and resets their states (m = -inf, l = 0). */
    public static void begin(float[] out, int outOff, float[] state, int stOff, int nHeads, int headDim) {
        java.util.Arrays.fill(out, outOff, outOff + nHeads * headDim, 0f);
        for (int j = 0; j < nHeads; j++) {
            state[stOff + 2 * j] = Float.NEGATIVE_INFINITY;
            state[stOff + 2 * j + 1] = 0f;
        }
    }

    /** Divides each head's accumulator by its sum: the attention output. At least one tile must have run. */
    public static void finish(float[] out, int outOff, float[] state, int stOff, int nHeads, int headDim) {
        for (int j = 0; j < nHeads; j++) {
            float l = state[stOff + 2 * j + 1];
            if (!(l > 0f)) {
                throw new IllegalStateException("attention of head " + j + " saw no position (sum " + l + ")");
            }
            VectorOps.scaleInPlace(out, outOff + j * headDim, headDim, 1f / l);
        }
    }

    /** Scalar twin of {@link #finish}. */
    public static void finishScalar(float[] out, int outOff, float[] state, int stOff, int nHeads, int headDim) {
        for (int j = 0; j < nHeads; j++) {
            float l = state[stOff + 2 * j + 1];
            if (!(l > 0f)) {
                throw new IllegalStateException("attention of head " + j + " saw no position (sum " + l + ")");
            }
            VectorOps.scaleInPlaceScalar(out, outOff + j * headDim, headDim, 1f / l);
        }
    }

    // ---- F32 --------------------------------------------------------------------------------

    /** One tile of {@code n} F32 positions for {@code nHeads} query heads (see the class comment). */
    public static void tileF32(
            float[] out, int outOff, float[] state, int stOff, float[] q, int qOff, int nHeads, int headDim,
            float[] keys, float[] values, int kvOff, int kvStride, int n, float scale, float[] scores) {
        checkTile(n, scores);
        rowsF32(out, outOff, state, stOff, q, qOff, 0, 1, n, nHeads, headDim, keys, kvOff, values, kvOff, kvStride, n,
                scale, scores);
    }

    /**
     * One tile of {@code n} F32 positions for {@code nRows} query rows of consecutive positions
     * (a prefill chunk), each with {@code nHeads} query heads: the tile is loaded once for all of
     * them. Row {@code r}'s head {@code j} is {@code q[qOff + r * rowStride + j * headDim ..]},
     * its accumulator {@code out[outOff + r * rowStride + j * headDim ..]} and its state {@code
     * state[stOff + 2 (r nHeads + j)]} (m, l). Row {@code r} sees the tile's first {@code
     * min(n, visible0 + r)} positions (the causal mask of a row one position after the previous
     * one); rows that see none skip the tile. Each row gets exactly what {@link #tileF32} gives
     * it alone with that many positions.
     */
    public static void tileRowsF32(
            float[] out, int outOff, float[] state, int stOff, float[] q, int qOff, int rowStride, int nRows,
            int visible0, int nHeads, int headDim, float[] keys, float[] values, int kvOff, int kvStride, int n,
            float scale, float[] scores) {
        checkTile(n, scores);
        rowsF32(out, outOff, state, stOff, q, qOff, rowStride, nRows, visible0, nHeads, headDim, keys, kvOff, values,
                kvOff, kvStride, n, scale, scores);
    }

    /**
     * The F32 tile of every format (F16 and Q8 tiles are decoded to floats first): keys at {@code
     * keys[kOff + t * stride ..]}, values at {@code values[vOff + t * stride ..]}. Every vector
     * stays inside this method ({@link #dot4} takes arrays): passing vectors across calls the
     * JIT does not inline makes JDK 17 box them.
     */
    private static void rowsF32(
            float[] out, int outOff, float[] state, int stOff, float[] q, int qOff, int rowStride, int nRows,
            int visible0, int nHeads, int headDim, float[] keys, int kOff, float[] values, int vOff, int stride, int n,
            float scale, float[] scores) {
        for (int r = 0; r < nRows; r++) {
            int nr = Math.min(n, visible0 + r);
            if (nr <= 0) {
                continue;
            }
            for (int j = 0; j < nHeads; j++) {
                int qo = qOff + r * rowStride + j * headDim;
                int p = 0;
                if (headDim % (2 * L) == 0) {
                    for (; p + 4 <= nr; p += 4) {
                        dot4(scores, p, scale, q, qo, keys, kOff + p * stride, stride, headDim);
                    }
                }
                for (; p < nr; p++) {
                    scores[p] = scale * VectorOps.dot(q, qo, keys, kOff + p * stride, headDim);
                }
                int o = outOff + r * rowStride + j * headDim;
                online(out, o, state, stOff + 2 * (r * nHeads + j), scores, nr, headDim);
                int d = 0;
                // four output vectors per pass over the tile: four independent FMA chains instead of
                // one, each chain the same FMAs in the same order as the one-vector loop below
                for (; d + 4 * L <= headDim; d += 4 * L) {
                    FloatVector a0 = FloatVector.fromArray(F, out, o + d);
                    FloatVector a1 = FloatVector.fromArray(F, out, o + d + L);
                    FloatVector a2 = FloatVector.fromArray(F, out, o + d + 2 * L);
                    FloatVector a3 = FloatVector.fromArray(F, out, o + d + 3 * L);
                    for (int t = 0; t < nr; t++) {
                        int vo = vOff + t * stride + d;
                        FloatVector sv = FloatVector.broadcast(F, scores[t]);
                        a0 = FloatVector.fromArray(F, values, vo).fma(sv, a0);
                        a1 = FloatVector.fromArray(F, values, vo + L).fma(sv, a1);
                        a2 = FloatVector.fromArray(F, values, vo + 2 * L).fma(sv, a2);
                        a3 = FloatVector.fromArray(F, values, vo + 3 * L).fma(sv, a3);
                    }
                    a0.intoArray(out, o + d);
                    a1.intoArray(out, o + d + L);
                    a2.intoArray(out, o + d + 2 * L);
                    a3.intoArray(out, o + d + 3 * L);
                }
                for (int upper = F.loopBound(headDim); d < upper; d += L) {
                    FloatVector acc = FloatVector.fromArray(F, out, o + d);
                    for (int t = 0; t < nr; t++) {
                        acc = FloatVector.fromArray(F, values, vOff + t * stride + d)
                                .fma(FloatVector.broadcast(F, scores[t]), acc);
                    }
                    acc.intoArray(out, o + d);
                }
                for (; d < headDim; d++) {
                    float acc = out[o + d];
                    for (int t = 0; t < nr; t++) {
                        acc += scores[t] * values[vOff + t * stride + d];
                    }
                    out[o + d] = acc;
                }
            }
        }
    }

    /**
     * {@code scores[t + i] = scale * dot(q[qo..], keys[ko + i * stride..])} for four positions,
     * each exactly as {@link VectorOps#dot} computes it (two accumulators, one reduction) when
     * {@code headDim} is a multiple of 2L, but as eight independent FMA chains.
     */
    private static void dot4(float[] scores, int t, float scale, float[] q, int qo, float[] keys, int ko, int stride,
            int headDim) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector b0 = a0, a1 = a0, b1 = a0, a2 = a0, b2 = a0, a3 = a0, b3 = a0;
        int k1 = ko + stride;
        int k2 = k1 + stride;
        int k3 = k2 + stride;
        for (int i = 0; i < headDim; i += 2 * L) {
            FloatVector qa = FloatVector.fromArray(F, q, qo + i);
            FloatVector qb = FloatVector.fromArray(F, q, qo + i + L);
            a0 = qa.fma(FloatVector.fromArray(F, keys, ko + i), a0);
            b0 = qb.fma(FloatVector.fromArray(F, keys, ko + i + L), b0);
            a1 = qa.fma(FloatVector.fromArray(F, keys, k1 + i), a1);
            b1 = qb.fma(FloatVector.fromArray(F, keys, k1 + i + L), b1);
            a2 = qa.fma(FloatVector.fromArray(F, keys, k2 + i), a2);
            b2 = qb.fma(FloatVector.fromArray(F, keys, k2 + i + L), b2);
            a3 = qa.fma(FloatVector.fromArray(F, keys, k3 + i), a3);
            b3 = qb.fma(FloatVector.fromArray(F, keys, k3 + i + L), b3);
        }
        scores[t] = scale * a0.add(b0).reduceLanes(VectorOperators.ADD);
        scores[t + 1] = scale * a1.add(b1).reduceLanes(VectorOperators.ADD);
        scores[t + 2] = scale * a2.add(b2).reduceLanes(VectorOperators.ADD);
        scores[t + 3] = scale * a3.add(b3).reduceLanes(VectorOperators.ADD);
    }

    /** Scalar twin of {@link #tileF32}. */
    public static void tileF32Scalar(
            float[] out, int outOff, float[] state, int stOff, float[] q, int qOff, int nHeads, int headDim,
            float[] keys, float[] values, int kvOff, int kvStride, int n, float scale, float[] scores) {
        checkTile(n, scores);
        for (int j = 0; j < nHeads; j++) {
            int qo = qOff + j * headDim;
            for (int t = 0; t < n; t++) {
                scores[t] = scale * VectorOps.dotScalar(q, qo, keys, kvOff + t * kvStride, headDim);
            }
            int o = outOff + j * headDim;
            onlineScalar(out, o, state, stOff + 2 * j, scores, n, headDim);
            for (int d = 0; d < headDim; d++) {
                float acc = out[o + d];
                for (int t = 0; t < n; t++) {
                    acc += scores[t] * values[kvOff + t * kvStride + d];
                }
                out[o + d] = acc;
            }
        }
    }

    // ---- F16 --------------------------------------------------------------------------------

    /**
     * Floats {@link #tileF16} and {@link #tileQ8} need in {@code kvScratch} for a tile of {@code
     * n} positions: the tile's keys and values decoded.
     */
    public static int kvScratchFloats(int n, int headDim) {
        return 2 * n * headDim;
    }

    /**
     * One tile of {@code n} F16 positions. The tile's keys and values are first widened to floats
     * in {@code kvScratch} (at least {@link #kvScratchFloats} floats; widening is exact), once for
     * all heads, then attended as {@link #tileF32} attends them: the result is bit for bit {@link
     * #tileF32}'s over the decoded halves. Infinities and NaNs are not supported (they decode to
     * large finite values on the vector path): {@link #toF16Clamped} never stores them.
     */
    public static void tileF16(
            float[] out, int outOff, float[] state, int stOff, float[] q, int qOff, int nHeads, int headDim,
            short[] keys, short[] values, int kvOff, int kvStride, int n, float scale, float[] scores,
            float[] kvScratch) {
        tileRowsF16(out, outOff, state, stOff, q, qOff, 0, 1, n, nHeads, headDim, keys, values, kvOff, kvStride, n, scale,
                scores, kvScratch);
    }

    /** {@link #tileRowsF32} over an F16 tile, decoded once into {@code kvScratch} as {@link #tileF16} does. */
    public static void tileRowsF16(
            float[] out, int outOff, float[] state, int stOff, float[] q, int qOff, int rowStride, int nRows,
            int visible0, int nHeads, int headDim, short[] keys, short[] values, int kvOff, int kvStride, int n,
            float scale, float[] scores, float[] kvScratch) {
        checkTile(n, scores);
        checkScratch(n, headDim, kvScratch);
        int seen = Math.max(0, Math.min(n, visible0 + nRows - 1)); // positions any row sees
        if (seen == 0) {
            return;
        }
        int vOff = seen * headDim;
        decodeF16(kvScratch, 0, keys, kvOff, kvStride, seen, headDim);
        decodeF16(kvScratch, vOff, values, kvOff, kvStride, seen, headDim);
        rowsF32(out, outOff, state, stOff, q, qOff, rowStride, nRows, visible0, nHeads, headDim, kvScratch, 0, kvScratch,
                vOff, headDim, n, scale, scores);
    }

    /** {@code dst[dstOff + t * headDim + d] = } half {@code src[srcOff + t * stride + d]}, for {@code t < n}, {@code d < headDim}. */
    private static void decodeF16(float[] dst, int dstOff, short[] src, int srcOff, int stride, int n, int headDim) {
        int upper = Simd.HALF_VECTORS ? F.loopBound(headDim) : 0;
        for (int t = 0; t < n; t++) {
            int so = srcOff + t * stride;
            int o = dstOff + t * headDim;
            int d = 0;
            for (; d < upper; d += L) {
                Simd.halfToFloat(ShortVector.fromArray(S, src, so + d)).intoArray(dst, o + d);
            }
            for (; d < headDim; d++) {
                dst[o + d] = Float16.toFloat(src[so + d]);
            }
        }
    }

    /** Scalar twin of {@link #tileF16}. */
    public static void tileF16Scalar(
            float[] out, int outOff, float[] state, int stOff, float[] q, int qOff, int nHeads, int headDim,
            short[] keys, short[] values, int kvOff, int kvStride, int n, float scale, float[] scores) {
        checkTile(n, scores);
        for (int j = 0; j < nHeads; j++) {
            int qo = qOff + j * headDim;
            for (int t = 0; t < n; t++) {
                int ko = kvOff + t * kvStride;
                float dot = 0f;
                for (int d = 0; d < headDim; d++) {
                    dot += q[qo + d] * Float16.toFloat(keys[ko + d]);
                }
                scores[t] = scale * dot;
            }
            int o = outOff + j * headDim;
            onlineScalar(out, o, state, stOff + 2 * j, scores, n, headDim);
            for (int d = 0; d < headDim; d++) {
                float acc = out[o + d];
                for (int t = 0; t < n; t++) {
                    acc += scores[t] * Float16.toFloat(values[kvOff + t * kvStride + d]);
                }
                out[o + d] = acc;
            }
        }
    }

    // ---- Q8 ---------------------------------------------------------------------------------

    /**
     * One tile of {@code n} Q8 positions: {@code kvOff}, {@code kvStride} and {@code headDim} are
     * multiples of {@value #Q8_GROUP}, so each head's vector covers whole scale groups. The tile's
     * keys and values are first decoded to floats in {@code kvScratch} (at least {@link
     * #kvScratchFloats} floats), {@code int8 * scale} rounded once to a float, once for all heads,
     * then attended as {@link #tileF32} attends them: the result is bit for bit {@link #tileF32}'s
     * over the decoded values. ({@link #tileQ8Scalar} sums each group's products before scaling:
     * the two round differently, within a few float ulps of the sum.)
     */
    public static void tileQ8(
            float[] out, int outOff, float[] state, int stOff, float[] q, int qOff, int nHeads, int headDim,
            byte[] keys, float[] keyScales, byte[] values, float[] valueScales, int kvOff, int kvStride, int n,
            float scale, float[] scores, float[] kvScratch) {
        tileRowsQ8(out, outOff, state, stOff, q, qOff, 0, 1, n, nHeads, headDim, keys, keyScales, values, valueScales,
                kvOff, kvStride, n, scale, scores, kvScratch);
    }

    /** {@link #tileRowsF32} over a Q8 tile, decoded once into {@code kvScratch} as {@link #tileQ8} does. */
    public static void tileRowsQ8(
            float[] out, int outOff, float[] state, int stOff, float[] q, int qOff, int rowStride, int nRows,
            int visible0, int nHeads, int headDim, byte[] keys, float[] keyScales, byte[] values, float[] valueScales,
            int kvOff, int kvStride, int n, float scale, float[] scores, float[] kvScratch) {
        checkQ8(kvOff, kvStride, headDim);
        checkTile(n, scores);
        checkScratch(n, headDim, kvScratch);
        int seen = Math.max(0, Math.min(n, visible0 + nRows - 1)); // positions any row sees
        if (seen == 0) {
            return;
        }
        int vOff = seen * headDim;
        decodeQ8(kvScratch, 0, keys, keyScales, kvOff, kvStride, seen, headDim);
        decodeQ8(kvScratch, vOff, values, valueScales, kvOff, kvStride, seen, headDim);
        rowsF32(out, outOff, state, stOff, q, qOff, rowStride, nRows, visible0, nHeads, headDim, kvScratch, 0, kvScratch,
                vOff, headDim, n, scale, scores);
    }

    /** {@code dst[dstOff + t * headDim + d] = src[e] * scales[e >> 5]} with {@code e = srcOff + t * stride + d}. */
    private static void decodeQ8(float[] dst, int dstOff, byte[] src, float[] scales, int srcOff, int stride, int n,
            int headDim) {
        for (int t = 0; t < n; t++) {
            int so = srcOff + t * stride;
            int o = dstOff + t * headDim;
            if (Simd.QUANT_VECTORS) {
                int step = B.length(); // divides 32: max(8, L) bytes with L <= 16
                for (int g = 0; g < headDim; g += Q8_GROUP) {
                    FloatVector sv = FloatVector.broadcast(F, scales[(so + g) >> 5]);
                    for (int d = g; d < g + Q8_GROUP; d += step) {
                        ByteVector bytes = ByteVector.fromArray(B, src, so + d);
                        for (int p = 0; p < BYTE_PARTS; p++) {
                            Simd.bytesToFloat(bytes, p).mul(sv).intoArray(dst, o + d + p * L);
                        }
                    }
                }
            } else {
                for (int d = 0; d < headDim; d++) {
                    dst[o + d] = src[so + d] * scales[(so + d) >> 5];
                }
            }
        }
    }

    /** Scalar twin of {@link #tileQ8}. */
    public static void tileQ8Scalar(
            float[] out, int outOff, float[] state, int stOff, float[] q, int qOff, int nHeads, int headDim,
            byte[] keys, float[] keyScales, byte[] values, float[] valueScales, int kvOff, int kvStride, int n,
            float scale, float[] scores) {
        checkQ8(kvOff, kvStride, headDim);
        checkTile(n, scores);
        for (int j = 0; j < nHeads; j++) {
            int qo = qOff + j * headDim;
            for (int t = 0; t < n; t++) {
                int ko = kvOff + t * kvStride;
                float total = 0f;
                for (int g = 0; g < headDim; g += Q8_GROUP) {
                    float group = 0f;
                    for (int d = g; d < g + Q8_GROUP; d++) {
                        group += q[qo + d] * keys[ko + d];
                    }
                    total += group * keyScales[(ko + g) >> 5];
                }
                scores[t] = scale * total;
            }
            int o = outOff + j * headDim;
            onlineScalar(out, o, state, stOff + 2 * j, scores, n, headDim);
            for (int d = 0; d < headDim; d++) {
                float acc = out[o + d];
                for (int t = 0; t < n; t++) {
                    int vo = kvOff + t * kvStride + d;
                    acc += scores[t] * valueScales[vo >> 5] * values[vo];
                }
                out[o + d] = acc;
            }
        }
    }

    // ---- storing rows -----------------------------------------------------------------------

    /**
     * {@code dst[dstOff + i] = } the binary16 bits of {@code src[srcOff + i]}, rounded to nearest
     * even and clamped to the largest finite half ({@code +-65504}), so that a cache never holds
     * an infinity.
     */
    public static void toF16Clamped(short[] dst, int dstOff, float[] src, int srcOff, int n) {
        for (int i = 0; i < n; i++) {
            float v = src[srcOff + i];
            dst[dstOff + i] = Float16.fromFloat(Math.max(-65504f, Math.min(65504f, v)));
        }
    }

    /**
     * Quantizes {@code n} floats (a multiple of {@value #Q8_GROUP}) to int8 with one float scale
     * per group: {@code scale = max|x| / 127}, {@code q = round(x / scale)}; element {@code
     * dstOff + i} gets scale index {@code (dstOff + i) >> 5}, so {@code dstOff} is a multiple of
     * 32. An all-zero group gets scale 0.
     */
    public static void quantizeQ8(byte[] dst, float[] scales, int dstOff, float[] src, int srcOff, int n) {
        if (n % Q8_GROUP != 0 || dstOff % Q8_GROUP != 0) {
            throw new IllegalArgumentException(
                    "Q8 rows are whole groups of " + Q8_GROUP + ": got " + n + " elements at offset " + dstOff);
        }
        for (int g = 0; g < n; g += Q8_GROUP) {
            float amax = 0f;
            for (int i = 0; i < Q8_GROUP; i++) {
                amax = Math.max(amax, Math.abs(src[srcOff + g + i]));
            }
            float s = amax / 127f;
            float inv = s == 0f ? 0f : 1f / s;
            for (int i = 0; i < Q8_GROUP; i++) {
                dst[dstOff + g + i] = (byte) Math.round(src[srcOff + g + i] * inv);
            }
            scales[(dstOff + g) >> 5] = s;
        }
    }

    // ---- the online softmax step ------------------------------------------------------------

    /**
     * Turns {@code scores[0..n)} into {@code exp(s - m_new)}, rescales the head's accumulator and
     * sum by {@code exp(m_old - m_new)} and adds the tile's sum; the caller then adds {@code
     * sum_t scores[t] * v_t} to the accumulator.
     */
    private static void online(float[] out, int o, float[] state, int s, float[] scores, int n, int headDim) {
        float max = scores[0];
        for (int t = 1; t < n; t++) {
            max = Math.max(max, scores[t]);
        }
        float mOld = state[s];
        if (max > mOld) {
            if (mOld != Float.NEGATIVE_INFINITY) {
                float c = (float) Math.exp(mOld - max);
                VectorOps.scaleInPlace(out, o, headDim, c);
                state[s + 1] *= c;
            }
            state[s] = max;
        }
        state[s + 1] += Softmax.expShiftedInPlace(scores, 0, n, state[s]);
    }

    /** Scalar twin of {@link #online}, with {@link Math#exp}. */
    private static void onlineScalar(float[] out, int o, float[] state, int s, float[] scores, int n, int headDim) {
        float max = scores[0];
        for (int t = 1; t < n; t++) {
            max = Math.max(max, scores[t]);
        }
        float mOld = state[s];
        if (max > mOld) {
            if (mOld != Float.NEGATIVE_INFINITY) {
                float c = (float) Math.exp(mOld - max);
                VectorOps.scaleInPlaceScalar(out, o, headDim, c);
                state[s + 1] *= c;
            }
            state[s] = max;
        }
        float m = state[s];
        float sum = 0f;
        for (int t = 0; t < n; t++) {
            float e = (float) Math.exp(scores[t] - m);
            scores[t] = e;
            sum += e;
        }
        state[s + 1] += sum;
    }

    private static void checkTile(int n, float[] scores) {
        if (n < 1 || scores.length < n) {
            throw new IllegalArgumentException("a tile needs 1 <= n <= scores.length, got " + n + " and " + scores.length);
        }
    }

    private static void checkScratch(int n, int headDim, float[] kvScratch) {
        if (kvScratch.length < kvScratchFloats(n, headDim)) {
            throw new IllegalArgumentException("a tile of " + n + " positions of head size " + headDim + " needs "
                    + kvScratchFloats(n, headDim) + " floats of kvScratch, got " + kvScratch.length);
        }
    }

    private static void checkQ8(int kvOff, int kvStride, int headDim) {
        if (kvOff % Q8_GROUP != 0 || kvStride % Q8_GROUP != 0 || headDim % Q8_GROUP != 0) {
            throw new IllegalArgumentException(
                    "Q8 attention needs offset, stride and head size multiples of " + Q8_GROUP + ", got " + kvOff
                            + ", " + kvStride + ", " + headDim);
        }
    }
}
