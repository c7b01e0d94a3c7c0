/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels.tornado;

import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.math.TornadoMath;
import uk.ac.manchester.tornado.api.types.arrays.ByteArray;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * The forward pass's kernels as TornadoVM {@link KernelContext} kernels, named after the CPU
 * kernels they mirror. TornadoVM compiles them to OpenCL C or PTX; the tests run them on a device
 * only, never as plain Java.
 *
 * <p>Conventions, for every kernel:
 *
 * <ul>
 *   <li>Sizes come in an {@link IntArray} {@code p} copied to the device at every launch, not as
 *       scalar arguments: TornadoVM bakes scalars into the compiled kernel, and one compiled
 *       kernel must serve every matrix and token count.
 *   <li>Work-groups are {@link #WG} threads. Row kernels ({@code *Rows}, softmax, attention) run
 *       one work-group per row (global size {@code rows * WG}, local {@code WG}) and reduce in
 *       local memory within that group only: reductions across work-groups gave wrong results
 *       on PoCL, and one row never needs them. Each reduction loop is written out in its kernel:
 *       a local array handed to a helper method was not reduced at all (TornadoVM 5.2.0, OpenCL
 *       backend, PoCL), while helpers over global arrays ({@link #f16}) compile fine.
 *   <li>Element kernels run one thread per element, the global size rounded up to {@code WG},
 *       and check the bound.
 *   <li>F16 is decoded by integer arithmetic and a 32-entry power-of-two table ({@link
 *       #POW2_TABLE}): PoCL cannot compile OpenCL {@code half}, and {@code
 *       Float.intBitsToFloat} does not compile. Infinities and NaNs in F16 weights are not
 *       supported (the CPU vector kernels don't either).
 * </ul>
 *
 * <p>Barriers: every thread of a work-group reaches every barrier (loop bounds and early exits
 * depend only on the group id and {@code p}), so the barriers are safe. Where threads of a group
 * exchange values through global memory (attention's scores) the barrier is a global one.
 */
public final class TornadoKernels {

    /** Threads per work-group of the row kernels, a constant of the compiled code. */
    public static final int WG = 32;

    /** Q8_0: values and bytes per block. */
    static final int QK = 32;
    static final int Q8_BLOCK_BYTES = 34;

    private TornadoKernels() {}

    /** {@code table[e] = 2^(max(e, 1) - 25)}: an F16 with exponent e is {@code mantissa * table[e]}. */
    public static float[] pow2Table() {
        float[] t = new float[32];
        for (int e = 0; e < 32; e++) {
            t[e] = (float) Math.scalb(1.0, Math.max(e, 1) - 25);
        }
        return t;
    }

    /** See {@link #pow2Table}. */
    public static final float[] POW2_TABLE = pow2Table();

    /**
     * The F16 at byte {@code i} (little-endian) of {@code w}: {@code (-1)^s * m' * 2^(e' - 25)}
     * with {@code m'} the mantissa with its implicit bit (none when subnormal, {@code e == 0},
     * where {@code e' = 1}).
     */
    static float f16(ByteArray w, int i, FloatArray pow2) {
        int bits = (w.get(i) & 0xFF) | ((w.get(i + 1) & 0xFF) << 8);
        int e = (bits >> 10) & 0x1F;
        int m = bits & 0x3FF;
        if (e != 0) {
            m = m | 0x400;
        }
        float v = m * pow2.get(e);
        if ((bits & 0x8000) != 0) {
            v = -v;
        }
        return v;
    }



    /**
     * {@code y[t * rows + r] = sum_c W[r][c] * x[t * cols + c]}, F16 weights: row {@code r} of
     * the matrix starts at byte {@code p[0] + r * cols * 2} of {@code w}. {@code p = {byteOffset,
     * rows, cols, nTokens}}. One work-group per row: the row is read from global memory once per
     * token (from cache after the first), every token's dot product reduced in local memory.
     * Launch: global {@code rows * WG}, local {@code WG}.
     */
    public static void matMulF16(KernelContext ctx, ByteArray w, FloatArray x, FloatArray y, IntArray p, FloatArray pow2) {
        int r = ctx.groupIdx;
        int lid = ctx.localIdx;
        float[] part = ctx.allocateFloatLocalArray(WG);
        int rows = p.get(1);
        int cols = p.get(2);
        int n = p.get(3);
        int rowBase = p.get(0) + r * cols * 2;
        for (int t = 0; t < n; t++) {
            int xo = t * cols;
            float s = 0f;
            for (int c = lid; c < cols; c += WG) {
                s += f16(w, rowBase + 2 * c, pow2) * x.get(xo + c);
            }
            part[lid] = s;
            for (int stride = WG / 2; stride > 0; stride >>= 1) {
                ctx.localBarrier();
                if (lid < stride) {
                    part[lid] += part[lid + stride];
                }
            }
            ctx.localBarrier();
            if (lid == 0) {
                y.set(t * rows + r, part[0]);
            }
        }
    }

    /**
     * {@link #matMulF16} for Q8_0 weights: blocks of one F16 scale and 32 signed bytes ({@value
     * #Q8_BLOCK_BYTES} bytes); thread {@code lid} takes blocks {@code lid, lid + WG, ...} of the
     * row. {@code p = {byteOffset, rows, cols, nTokens}}, cols a multiple of 32.
     */
    public static void matMulQ8_0(KernelContext ctx, ByteArray w, FloatArray x, FloatArray y, IntArray p, FloatArray pow2) {
        int r = ctx.groupIdx;
        int lid = ctx.localIdx;
        float[] part = ctx.allocateFloatLocalArray(WG);
        int rows = p.get(1);
        int cols = p.get(2);
        int n = p.get(3);
        int blocks = cols / QK;
        int rowBase = p.get(0) + r * blocks * Q8_BLOCK_BYTES;
        for (int t = 0; t < n; t++) {
            float s = 0f;
            for (int b = lid; b < blocks; b += WG) {
                int bo = rowBase + b * Q8_BLOCK_BYTES;
                int xo = t * cols + b * QK;
                float bs = 0f;
                for (int j = 0; j < QK; j++) {
                    bs += w.get(bo + 2 + j) * x.get(xo + j);
                }
                s += f16(w, bo, pow2) * bs;
            }
            part[lid] = s;
            for (int stride = WG / 2; stride > 0; stride >>= 1) {
                ctx.localBarrier();
                if (lid < stride) {
                    part[lid] += part[lid + stride];
                }
            }
            ctx.localBarrier();
            if (lid == 0) {
                y.set(t * rows + r, part[0]);
            }
        }
    }

    /**
     * {@link #matMulF16} for F32 weights in a float arena: row {@code r} starts at float {@code
     * p[0] + r * cols}. {@code p = {floatOffset, rows, cols, nTokens}}.
     */
    public static void matMulF32(KernelContext ctx, FloatArray w, FloatArray x, FloatArray y, IntArray p) {
        int r = ctx.groupIdx;
        int lid = ctx.localIdx;
        float[] part = ctx.allocateFloatLocalArray(WG);
        int rows = p.get(1);
        int cols = p.get(2);
        int n = p.get(3);
        int rowBase = p.get(0) + r * cols;
        for (int t = 0; t < n; t++) {
            int xo = t * cols;
            float s = 0f;
            for (int c = lid; c < cols; c += WG) {
                s += w.get(rowBase + c) * x.get(xo + c);
            }
            part[lid] = s;
            for (int stride = WG / 2; stride > 0; stride >>= 1) {
                ctx.localBarrier();
                if (lid < stride) {
                    part[lid] += part[lid + stride];
                }
            }
            ctx.localBarrier();
            if (lid == 0) {
                y.set(t * rows + r, part[0]);
            }
        }
    }

    /**
     * RMSNorm of row {@code groupIdx}: {@code out[t * width + i] = x[..] / sqrt(mean(x^2) + eps)
     * * weight[i]}, the sum of squares reduced in the work-group. {@code p = {width, rows}},
     * {@code eps = fp[0]}. Launch: global {@code rows * WG}, local {@code WG}.
     */
    public static void rmsNormRows(KernelContext ctx, FloatArray x, FloatArray weight, FloatArray out, IntArray p, FloatArray fp) {
        int t = ctx.groupIdx;
        int lid = ctx.localIdx;
        float[] part = ctx.allocateFloatLocalArray(WG);
        int width = p.get(0);
        int base = t * width;
        float s = 0f;
        for (int i = lid; i < width; i += WG) {
            float v = x.get(base + i);
            s += v * v;
        }
        part[lid] = s;
        for (int stride = WG / 2; stride > 0; stride >>= 1) {
            ctx.localBarrier();
            if (lid < stride) {
                part[lid] += part[lid + stride];
            }
        }
        ctx.localBarrier();
        float scale = 1f / TornadoMath.sqrt(part[0] / width + fp.get(0));
        for (int i = lid; i < width; i += WG) {
            out.set(base + i, x.get(base + i) * scale * weight.get(i));
        }
    }

    /**
     * Softmax in place of {@code x[0 .. n)}, {@code p = {n}}: maximum, sum of exponentials, scale,
     * each reduced in one work-group. Launch: global {@code WG}, local {@code WG}.
     */
    public static void softmax(KernelContext ctx, FloatArray x, IntArray p) {
        int lid = ctx.localIdx;
        float[] part = ctx.allocateFloatLocalArray(WG);
        int n = p.get(0);
        float m = Float.NEGATIVE_INFINITY;
        for (int i = lid; i < n; i += WG) {
            m = Math.max(m, x.get(i));
        }
        part[lid] = m;
        for (int stride = WG / 2; stride > 0; stride >>= 1) {
            ctx.localBarrier();
            if (lid < stride) {
                part[lid] = Math.max(part[lid], part[lid + stride]);
            }
        }
        ctx.localBarrier();
        float max = part[0];
        ctx.localBarrier();
        float s = 0f;
        for (int i = lid; i < n; i += WG) {
            float e = TornadoMath.exp(x.get(i) - max);
            x.set(i, e);
            s += e;
        }
        part[lid] = s;
        for (int stride = WG / 2; stride > 0; stride >>= 1) {
            ctx.localBarrier();
            if (lid < stride) {
                part[lid] += part[lid + stride];
            }
        }
        ctx.localBarrier();
        float inv = 1f / part[0];
        for (int i = lid; i < n; i += WG) {
            x.set(i, x.get(i) * inv);
        }
    }

    /**
     * NeoX rotation, one thread per (row, head, pair i): {@code a = x[lo + i]}, {@code b = x[lo
     * + i + half]} become {@code a*c - b*s} and {@code a*s + b*c}, with {@code c, s} from the
     * row's own slice of the tables ({@code cs[t * half + i]}, gathered on the host from the
     * row's position). {@code p = {rowStride, rows, nHeads, headDim}}. Launch: global {@code rows
     * * nHeads * headDim / 2} rounded up to {@code WG}.
     */
    public static void ropeNeoxRows(KernelContext ctx, FloatArray x, FloatArray cos, FloatArray sin, IntArray p) {
        int g = ctx.globalIdx;
        int rowStride = p.get(0);
        int rows = p.get(1);
        int heads = p.get(2);
        int half = p.get(3) / 2;
        if (g < rows * heads * half) {
            int i = g % half;
            int h = (g / half) % heads;
            int t = g / (half * heads);
            int lo = t * rowStride + h * half * 2 + i;
            float a = x.get(lo);
            float b = x.get(lo + half);
            float c = cos.get(t * half + i);
            float s = sin.get(t * half + i);
            x.set(lo, a * c - b * s);
            x.set(lo + half, a * s + b * c);
        }
    }

    /**
     * Attention of query head {@code groupIdx} over {@code nPositions} cached positions, {@code
     * p = {headDim, kvStride, nPositions, nHeads, nKvHeads}}, {@code scale = fp[0]}: scores
     * into {@code scores[h * nPositions + t]} (global scratch), their maximum and sum of
     * exponentials reduced in the group, then {@code out[h * headDim + d] = sum_t e_t v_t[d] /
     * sum}. Launch: global {@code nHeads * WG}, local {@code WG}.
     */
    public static void attention(
            KernelContext ctx, FloatArray q, FloatArray keys, FloatArray values, FloatArray scores, FloatArray out,
            IntArray p, FloatArray fp) {
        int h = ctx.groupIdx;
        int lid = ctx.localIdx;
        float[] part = ctx.allocateFloatLocalArray(WG);
        int headDim = p.get(0);
        int kvStride = p.get(1);
        int nPos = p.get(2);
        int groups = p.get(3) / p.get(4);
        float scale = fp.get(0);
        int kvOff = (h / groups) * headDim;
        int qOff = h * headDim;
        int sOff = h * nPos;
        float m = Float.NEGATIVE_INFINITY;
        for (int t = lid; t < nPos; t += WG) {
            float s = 0f;
            for (int d = 0; d < headDim; d++) {
                s += q.get(qOff + d) * keys.get(t * kvStride + kvOff + d);
            }
            s = s * scale;
            scores.set(sOff + t, s);
            m = Math.max(m, s);
        }
        part[lid] = m;
        for (int stride = WG / 2; stride > 0; stride >>= 1) {
            ctx.localBarrier();
            if (lid < stride) {
                part[lid] = Math.max(part[lid], part[lid + stride]);
            }
        }
        ctx.localBarrier();
        float max = part[0];
        ctx.localBarrier();
        float sum = 0f;
        for (int t = lid; t < nPos; t += WG) {
            float e = TornadoMath.exp(scores.get(sOff + t) - max);
            scores.set(sOff + t, e);
            sum += e;
        }
        part[lid] = sum;
        for (int stride = WG / 2; stride > 0; stride >>= 1) {
            ctx.localBarrier();
            if (lid < stride) {
                part[lid] += part[lid + stride];
            }
        }
        ctx.localBarrier();
        float inv = 1f / part[0];
        // every thread now reads every position's exponential, written by other threads
        ctx.globalBarrier();
        for (int d = lid; d < headDim; d += WG) {
            float acc = 0f;
            for (int t = 0; t < nPos; t++) {
                acc += scores.get(sOff + t) * values.get(t * kvStride + kvOff + d);
            }
            out.set(qOff + d, acc * inv);
        }
    }

    /** {@code out[i] = g / (1 + exp(-g)) * up[i]}, {@code g = gate[i]}, {@code p = {n}}; one thread each. */
    public static void swiGlu(KernelContext ctx, FloatArray gate, FloatArray up, FloatArray out, IntArray p) {
        int i = ctx.globalIdx;
        if (i < p.get(0)) {
            float g = gate.get(i);
            out.set(i, g / (1f + TornadoMath.exp(-g)) * up.get(i));
        }
    }

    /**
     * SwiGLU over the fused gate/up product: row {@code t} of {@code gu} holds the {@code ffn}
     * gate outputs, then the {@code ffn} up outputs (the two matrices multiplied as one); {@code
     * out[t * ffn + j] = silu(gu[t * 2ffn + j]) * gu[t * 2ffn + ffn + j]}. {@code p = {ffn,
     * rows}}; one thread per output.
     */
    public static void swiGluPacked(KernelContext ctx, FloatArray gu, FloatArray out, IntArray p) {
        int i = ctx.globalIdx;
        int ffn = p.get(0);
        if (i < ffn * p.get(1)) {
            int t = i / ffn;
            int j = i - t * ffn;
            float g = gu.get(t * 2 * ffn + j);
            out.set(i, g / (1f + TornadoMath.exp(-g)) * gu.get(t * 2 * ffn + ffn + j));
        }
    }

    /** {@code acc[i] += x[i]}, {@code p = {n}}; one thread each. */
    public static void addInPlace(KernelContext ctx, FloatArray acc, FloatArray x, IntArray p) {
        int i = ctx.globalIdx;
        if (i < p.get(0)) {
            acc.set(i, acc.get(i) + x.get(i));
        }
    }

    /**
     * The MoE router of token {@code globalIdx}, as {@code Router.route}: softmax over {@code
     * experts} logits, the {@code k} largest (ties: lower id), renormalised if {@code p[2] != 0}.
     * {@code p = {experts, k, normTopkProb, rows}}. One thread per token: a router row is 64
     * floats in the largest Qwen2 MoE, too small to split.
     */
    public static void routerTopK(KernelContext ctx, FloatArray logits, IntArray ids, FloatArray weights, IntArray p) {
        int t = ctx.globalIdx;
        int experts = p.get(0);
        int k = p.get(1);
        if (t < p.get(3)) {
            int off = t * experts;
            int outOff = t * k;
            float max = Float.NEGATIVE_INFINITY;
            for (int e = 0; e < experts; e++) {
                max = Math.max(max, logits.get(off + e));
            }
            float sum = 0f;
            for (int e = 0; e < experts; e++) {
                sum += TornadoMath.exp(logits.get(off + e) - max);
            }
            float picked = 0f;
            for (int j = 0; j < k; j++) {
                int best = -1;
                float bestLogit = Float.NEGATIVE_INFINITY;
                for (int e = 0; e < experts; e++) {
                    boolean taken = false;
                    for (int i = 0; i < j; i++) {
                        if (ids.get(outOff + i) == e) {
                            taken = true;
                        }
                    }
                    float l = logits.get(off + e);
                    if (!taken && (best < 0 || l > bestLogit)) {
                        best = e;
                        bestLogit = l;
                    }
                }
                ids.set(outOff + j, best);
                float wgt = TornadoMath.exp(bestLogit - max) / sum;
                weights.set(outOff + j, wgt);
                picked += wgt;
            }
            if (p.get(2) != 0) {
                for (int j = 0; j < k; j++) {
                    weights.set(outOff + j, weights.get(outOff + j) / picked);
                }
            }
        }
    }
}
