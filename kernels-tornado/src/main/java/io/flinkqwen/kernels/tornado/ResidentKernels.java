/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels.tornado;

import static io.flinkqwen.kernels.tornado.TornadoKernels.Q8_BLOCK_BYTES;
import static io.flinkqwen.kernels.tornado.TornadoKernels.QK;
import static io.flinkqwen.kernels.tornado.TornadoKernels.WG;

import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.math.TornadoMath;
import uk.ac.manchester.tornado.api.types.arrays.ByteArray;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * The kernels of {@link TornadoResidentDecoder}'s decode step: one token, every buffer on the
 * device for the whole step (the residual stream, the KV cache of all layers, the scratch), each
 * kernel told where its part lies by offsets in its own parameter array {@code p} (copied once)
 * and the token's position in {@code step} (copied per step). The conventions of {@link
 * TornadoKernels} hold: work-groups of {@link TornadoKernels#WG}, reductions within one group,
 * F16 decoded by integer arithmetic.
 *
 * <p>Device KV layout: keys (and values) of layer {@code l}, position {@code t}, element {@code i}
 * at {@code l * positions * kvDim + t * kvDim + i} ({@code p}'s {@code kvBase} is {@code l *
 * positions * kvDim}).
 */
public final class ResidentKernels {

    private ResidentKernels() {}

    /**
     * RMSNorm of one row: {@code out[i] = x[i] / sqrt(mean(x^2) + eps) * norms[normOffset + i]},
     * {@code p = {normOffset, width}}, {@code eps = fp[0]}. Launch: global and local {@code WG}.
     */
    public static void rmsNorm(KernelContext ctx, FloatArray x, FloatArray norms, FloatArray out, IntArray p, FloatArray fp) {
        int lid = ctx.localIdx;
        float[] part = ctx.allocateFloatLocalArray(WG);
        int no = p.get(0);
        int width = p.get(1);
        float s = 0f;
        for (int i = lid; i < width; i += WG) {
            float v = x.get(i);
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
            out.set(i, x.get(i) * scale * norms.get(no + i));
        }
    }

    /**
     * {@code y[yOffset + r] = (accumulate ? y[yOffset + r] : 0) + sum_c W[r][c] * x[c]}, F32
     * weights from float {@code p[0]} of {@code w}. {@code p = {offset, rows, cols, yOffset,
     * accumulate}}. One work-group per row; launch: global {@code rows * WG}, local {@code WG}.
     * With {@code accumulate} the residual add is this kernel's store ({@code x + dot}, as the CPU
     * computes {@code x + proj}).
     */
    public static void matVecF32(KernelContext ctx, FloatArray w, FloatArray x, FloatArray y, IntArray p) {
        int r = ctx.groupIdx;
        int lid = ctx.localIdx;
        float[] part = ctx.allocateFloatLocalArray(WG);
        int cols = p.get(2);
        int rowBase = p.get(0) + r * cols;
        float s = 0f;
        for (int c = lid; c < cols; c += WG) {
            s += w.get(rowBase + c) * x.get(c);
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
            int yo = p.get(3) + r;
            float prev = p.get(4) != 0 ? y.get(yo) : 0f;
            y.set(yo, prev + part[0]);
        }
    }

    /** {@link #matVecF32} over F16 weights: row {@code r} at byte {@code p[0] + r * cols * 2}. */
    public static void matVecF16(KernelContext ctx, ByteArray w, FloatArray x, FloatArray y, IntArray p, FloatArray pow2) {
        int r = ctx.groupIdx;
        int lid = ctx.localIdx;
        float[] part = ctx.allocateFloatLocalArray(WG);
        int cols = p.get(2);
        int rowBase = p.get(0) + r * cols * 2;
        float s = 0f;
        for (int c = lid; c < cols; c += WG) {
            s += TornadoKernels.f16(w, rowBase + 2 * c, pow2) * x.get(c);
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
            int yo = p.get(3) + r;
            float prev = p.get(4) != 0 ? y.get(yo) : 0f;
            y.set(yo, prev + part[0]);
        }
    }

    /**
     * {@link #matVecF32} over Q8_0 weights (blocks of an F16 scale and 32 signed bytes): row
     * {@code r} at byte {@code p[0] + r * (cols / 32) * 34}.
     */
    public static void matVecQ8_0(KernelContext ctx, ByteArray w, FloatArray x, FloatArray y, IntArray p, FloatArray pow2) {
        int r = ctx.groupIdx;
        int lid = ctx.localIdx;
        float[] part = ctx.allocateFloatLocalArray(WG);
        int cols = p.get(2);
        int blocks = cols / QK;
        int rowBase = p.get(0) + r * blocks * Q8_BLOCK_BYTES;
        float s = 0f;
        for (int b = lid; b < blocks; b += WG) {
            int bo = rowBase + b * Q8_BLOCK_BYTES;
            int xo = b * QK;
            float bs = 0f;
            for (int j = 0; j < QK; j++) {
                bs += w.get(bo + 2 + j) * x.get(xo + j);
            }
            s += TornadoKernels.f16(w, bo, pow2) * bs;
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
            int yo = p.get(3) + r;
            float prev = p.get(4) != 0 ? y.get(yo) : 0f;
            y.set(yo, prev + part[0]);
        }
    }

    /**
     * Biases, RoPE and the KV store of one token's fused q/k/v product {@code qkv = [q (heads *
     * headDim) | k (kvDim) | v (kvDim)]}: bias {@code biases[biasOffset + j]} added to element
     * {@code j}; q and k heads rotated (NeoX half-split) by the angles of {@code step[0]}, q in
     * place; k and v stored at that position of the layer's KV cache and into {@code newKv}
     * ({@code [k | v]} from {@code newKvOffset}). One thread per head and pair {@code i < headDim /
     * 2} over {@code heads + 2 * kvHeads} heads. {@code p = {heads, kvHeads, headDim, biasOffset,
     * kvBase, newKvOffset}}. Launch: global {@code (heads + 2 kvHeads) * headDim / 2} rounded up to
     * {@code WG}.
     */
    public static void qkvBiasRope(
            KernelContext ctx, FloatArray qkv, FloatArray biases, FloatArray cos, FloatArray sin, FloatArray keys,
            FloatArray values, FloatArray newKv, IntArray p, IntArray step) {
        int g = ctx.globalIdx;
        int heads = p.get(0);
        int kvHeads = p.get(1);
        int headDim = p.get(2);
        int half = headDim / 2;
        if (g < (heads + 2 * kvHeads) * half) {
            int j = g / half;
            int i = g - j * half;
            int lo = j * headDim + i;
            int hi = lo + half;
            int bo = p.get(3);
            float a = qkv.get(lo) + biases.get(bo + lo);
            float b = qkv.get(hi) + biases.get(bo + hi);
            int pos = step.get(0);
            int kvDim = kvHeads * headDim;
            if (j < heads + kvHeads) {
                float c = cos.get(pos * half + i);
                float s = sin.get(pos * half + i);
                float ra = a * c - b * s;
                float rb = a * s + b * c;
                a = ra;
                b = rb;
            }
            if (j < heads) {
                qkv.set(lo, a);
                qkv.set(hi, b);
            } else if (j < heads + kvHeads) {
                int e = (j - heads) * headDim + i;
                int at = p.get(4) + pos * kvDim + e;
                keys.set(at, a);
                keys.set(at + half, b);
                newKv.set(p.get(5) + e, a);
                newKv.set(p.get(5) + e + half, b);
            } else {
                int e = (j - heads - kvHeads) * headDim + i;
                int at = p.get(4) + pos * kvDim + e;
                values.set(at, a);
                values.set(at + half, b);
                newKv.set(p.get(5) + kvDim + e, a);
                newKv.set(p.get(5) + kvDim + e + half, b);
            }
        }
    }

    /**
     * Attention of query head {@code groupIdx} (at {@code qkv[h * headDim ..]}) over positions
     * {@code [0, step[0]]} of its KV head {@code h / (heads / kvHeads)} in one layer: scores into
     * {@code scores[h * scoreStride + t]} (global scratch, shared by the layers, which run one
     * after another), their maximum and sum of exponentials reduced in the group, then {@code
     * out[h * headDim + d] = sum_t e_t v_t[d] / sum}. {@code p = {headDim, heads, kvHeads, kvBase,
     * scoreStride}}, {@code scale = fp[1]}. Launch: global {@code heads * WG}, local {@code WG}.
     */
    public static void attention(
            KernelContext ctx, FloatArray qkv, FloatArray keys, FloatArray values, FloatArray scores, FloatArray out,
            IntArray p, IntArray step, FloatArray fp) {
        int h = ctx.groupIdx;
        int lid = ctx.localIdx;
        float[] part = ctx.allocateFloatLocalArray(WG);
        int headDim = p.get(0);
        int kvHeads = p.get(2);
        int groups = p.get(1) / kvHeads;
        int kvDim = kvHeads * headDim;
        int base = p.get(3) + (h / groups) * headDim;
        int nPos = step.get(0) + 1;
        float scale = fp.get(1);
        int qOff = h * headDim;
        int sOff = h * p.get(4);
        float m = Float.NEGATIVE_INFINITY;
        for (int t = lid; t < nPos; t += WG) {
            float s = 0f;
            for (int d = 0; d < headDim; d++) {
                s += qkv.get(qOff + d) * keys.get(base + t * kvDim + d);
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
                acc += scores.get(sOff + t) * values.get(base + t * kvDim + d);
            }
            out.set(qOff + d, acc * inv);
        }
    }

    /**
     * Copies staged keys and values into the device cache: element {@code i} of position {@code
     * from + t} of layer {@code l} from {@code keysIn[(l * count + t) * kvDim + i]}. {@code p =
     * {count, from, layers, kvDim, positions}}; one thread per element. Launch: global {@code
     * layers * count * kvDim} rounded up to {@code WG} (at least the staging size: surplus threads
     * do nothing).
     */
    public static void kvImport(
            KernelContext ctx, FloatArray keysIn, FloatArray valuesIn, FloatArray keys, FloatArray values, IntArray p) {
        int g = ctx.globalIdx;
        int count = p.get(0);
        int kvDim = p.get(3);
        if (g < p.get(2) * count * kvDim) {
            int i = g % kvDim;
            int t = (g / kvDim) % count;
            int l = g / (kvDim * count);
            int at = (l * p.get(4) + p.get(1) + t) * kvDim + i;
            keys.set(at, keysIn.get(g));
            values.set(at, valuesIn.get(g));
        }
    }
}
