/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels;

import static io.flinkqwen.kernels.Simd.F;
import static io.flinkqwen.kernels.Simd.L;

import java.nio.ByteBuffer;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;

/**
 * Encoding float rows into {@link DType} byte layouts and decoding weight rows back to floats.
 *
 * <p>The encoders follow ggml's reference quantizers ({@code quantize_row_q8_0_ref}, {@code
 * quantize_row_q4_0_ref}) operation for operation, so rows we write decode like rows llama.cpp
 * writes. They are scalar: they run when a model is generated or converted, not per token.
 */
public final class Quantize {

    private static final int QK = 32;

    private Quantize() {}

    /**
     * Encodes {@code src[srcOff .. srcOff + n)} into {@code dst} from {@code dst[dstOff]}, taking
     * {@code type.rowBytes(n)} bytes.
     *
     * <ul>
     *   <li>F32: little-endian floats. F16, BF16: {@link Float16}, round to nearest even.
     *   <li>Q8_0, per block of 32: {@code amax = max|x|}, {@code d = amax / 127}, {@code q =
     *       roundf(x * (1/d))} (half away from zero, 0 when {@code d == 0}); stored as {@code
     *       d} in F16 then the 32 signed bytes. Like ggml, {@code q} uses the float {@code d}
     *       and only the stored scale is rounded to F16.
     *   <li>Q4_0, per block of 32: {@code max} = the value of largest magnitude (first one on
     *       ties, sign kept), {@code d = max / -8}, {@code id = d != 0 ? 1/d : 0}, {@code q =
     *       min(15, (int) (x * id + 8.5f))}; stored as {@code d} in F16 then 16 bytes, byte
     *       {@code j} = {@code q[j] | q[j + 16] << 4}.
     * </ul>
     *
     * @throws IllegalArgumentException if {@code n} is not a multiple of the block size
     */
    public static void quantizeRow(DType type, float[] src, int srcOff, int n, byte[] dst, int dstOff) {
        type.rowBytes(n); // validates n
        switch (type) {
            case F32:
                for (int i = 0; i < n; i++) {
                    putIntLE(dst, dstOff + 4 * i, Float.floatToRawIntBits(src[srcOff + i]));
                }
                break;
            case F16:
                for (int i = 0; i < n; i++) {
                    putShortLE(dst, dstOff + 2 * i, Float16.fromFloat(src[srcOff + i]));
                }
                break;
            case BF16:
                for (int i = 0; i < n; i++) {
                    putShortLE(dst, dstOff + 2 * i, Float16.bf16FromFloat(src[srcOff + i]));
                }
                break;
            case Q8_0:
                for (int b = 0; b < n / QK; b++) {
                    quantizeBlockQ8_0(src, srcOff + b * QK, dst, dstOff + b * 34);
                }
                break;
            case Q4_0:
                for (int b = 0; b < n / QK; b++) {
                    quantizeBlockQ4_0(src, srcOff + b * QK, dst, dstOff + b * 18);
                }
                break;
            default:
                throw new UnsupportedOperationException("cannot quantize to " + type);
        }
    }

    /** Added and subtracted again, rounds a float of magnitude under 2^22 to an integer, ties to even. */
    private static final float ROUND_MAGIC = 12582912f; // 1.5 * 2^23

    /**
     * Rounds activations to Q8_0 blocks, as ggml's CPU backend does before it multiplies them
     * with Q8_0 weights, so that a Q8_0 product is what llama.cpp computes on the same file. Per
     * block of 32 of {@code x[xOff .. xOff + n)}: {@code amax = max|x|}, scale {@code d =
     * amax / 127} rounded to F16, and {@code q = rint(x * (127 / amax))} (ties to even; 0 when
     * {@code amax} is 0), so {@code |q| <= 127}. The rounded activation is {@code q * d}, which
     * is exact in float (a 7-bit integer times an 11-bit significand).
     *
     * <p>Writes {@code values[vOff ..]} = {@code q * d} when {@code values} is not null, and the
     * integers {@code ints[iOff ..]} and scales {@code scales[sOff ..]} ({@code n / 32} of them)
     * when {@code ints} is not null. Vectorized; gives the same bits as {@link
     * #roundQ8_0Scalar}.
     *
     * @throws IllegalArgumentException if {@code n} is not a multiple of 32
     */
    public static void roundQ8_0(
            float[] x, int xOff, int n, float[] values, int vOff, short[] ints, int iOff, float[] scales, int sOff) {
        DType.Q8_0.rowBytes(n); // validates n
        if (Simd.L > QK) {
            roundQ8_0Scalar(x, xOff, n, values, vOff, ints, iOff, scales, sOff);
            return;
        }
        for (int b = 0; b < n / QK; b++) {
            int o = xOff + b * QK;
            FloatVector m = FloatVector.fromArray(Simd.F, x, o).abs();
            for (int j = Simd.L; j < QK; j += Simd.L) {
                m = m.max(FloatVector.fromArray(Simd.F, x, o + j).abs());
            }
            float amax = m.reduceLanes(VectorOperators.MAX);
            float d = Float16.toFloat(Float16.fromFloat(amax / 127f));
            float id = amax != 0f ? 127f / amax : 0f;
            for (int j = 0; values != null && j < QK; j += Simd.L) {
                // mul then add: two roundings, never fused (Java float semantics)
                FloatVector q = FloatVector.fromArray(Simd.F, x, o + j).mul(id).add(ROUND_MAGIC).sub(ROUND_MAGIC);
                q.mul(d).intoArray(values, vOff + b * QK + j);
            }
            if (ints != null) {
                // the same float product, rounded the same way, one lane at a time
                for (int j = 0; j < QK; j++) {
                    ints[iOff + b * QK + j] = (short) Math.rint(x[o + j] * id);
                }
                scales[sOff + b] = d;
            }
        }
    }

    /** Scalar twin of {@link #roundQ8_0}: plain loops and {@link Math#rint}. */
    public static void roundQ8_0Scalar(
            float[] x, int xOff, int n, float[] values, int vOff, short[] ints, int iOff, float[] scales, int sOff) {
        DType.Q8_0.rowBytes(n); // validates n
        for (int b = 0; b < n / QK; b++) {
            float amax = 0f;
            for (int j = 0; j < QK; j++) {
                amax = Math.max(amax, Math.abs(x[xOff + b * QK + j]));
            }
            float d = Float16.toFloat(Float16.fromFloat(amax / 127f));
            float id = amax != 0f ? 127f / amax : 0f;
            for (int j = 0; j < QK; j++) {
                int q = (int) Math.rint(x[xOff + b * QK + j] * id); // via int: a zero is +0, as in roundQ8_0
                if (values != null) {
                    values[vOff + b * QK + j] = q * d;
                }
                if (ints != null) {
                    ints[iOff + b * QK + j] = (short) q;
                }
            }
            if (ints != null) {
                scales[sOff + b] = d;
            }
        }
    }

    private static void quantizeBlockQ8_0(float[] x, int xOff, byte[] dst, int o) {
        float amax = 0f;
        for (int j = 0; j < QK; j++) {
            amax = Math.max(amax, Math.abs(x[xOff + j]));
        }
        float d = amax / 127f;
        float id = d != 0f ? 1f / d : 0f;
        putShortLE(dst, o, Float16.fromFloat(d));
        for (int j = 0; j < QK; j++) {
            dst[o + 2 + j] = (byte) roundHalfAway(x[xOff + j] * id);
        }
    }

    private static void quantizeBlockQ4_0(float[] x, int xOff, byte[] dst, int o) {
        float amax = 0f;
        float max = 0f;
        for (int j = 0; j < QK; j++) {
            float v = x[xOff + j];
            if (amax < Math.abs(v)) {
                amax = Math.abs(v);
                max = v;
            }
        }
        float d = max / -8f;
        float id = d != 0f ? 1f / d : 0f;
        putShortLE(dst, o, Float16.fromFloat(d));
        for (int j = 0; j < QK / 2; j++) {
            // (int) truncates toward zero like ggml's (int8_t) cast; x * id + 8.5 is >= 0.5 here.
            int q0 = Math.min(15, (int) (x[xOff + j] * id + 8.5f));
            int q1 = Math.min(15, (int) (x[xOff + j + QK / 2] * id + 8.5f));
            dst[o + 2 + j] = (byte) (q0 | (q1 << 4));
        }
    }

    /** C's {@code roundf}: nearest integer, halves away from zero. */
    private static int roundHalfAway(float v) {
        float a = Math.abs(v);
        float r = (float) Math.floor(a);
        if (a - r >= 0.5f) { // exact: r <= a < r + 1
            r += 1f;
        }
        return (int) Math.copySign(r, v);
    }

    private static void putShortLE(byte[] dst, int o, short v) {
        dst[o] = (byte) v;
        dst[o + 1] = (byte) (v >>> 8);
    }

    private static void putIntLE(byte[] dst, int o, int v) {
        dst[o] = (byte) v;
        dst[o + 1] = (byte) (v >>> 8);
        dst[o + 2] = (byte) (v >>> 16);
        dst[o + 3] = (byte) (v >>> 24);
    }

    /**
     * Decodes row {@code row} of {@code w} into {@code out[outOff .. outOff + w.cols())} (the
     * embedding lookup). Uses the calling thread's {@link Scratch}; allocates only the first time
     * a thread sees a longer row. F16 infinities/NaNs are not supported (see {@link
     * Simd#halfToFloat}).
     */
    public static void dequantizeRow(float[] out, int outOff, WeightMatrix w, int row) {
        dequantizeRow(out, outOff, w, row, Scratch.forCurrentThread());
    }

    /** {@link #dequantizeRow(float[], int, WeightMatrix, int)} with the caller's scratch. */
    static void dequantizeRow(float[] out, int outOff, WeightMatrix w, int row, Scratch scratch) {
        checkRow(out, outOff, w, row);
        PackedRows packed = w.packed();
        if (packed != null && Simd.HALF_VECTORS && Simd.QUANT_VECTORS) {
            dequantizePacked(out, outOff, w, packed, row);
            return;
        }
        int cols = w.cols();
        ByteBuffer chunk = w.chunk(row);
        int base = w.offset(row);
        switch (w.dtype()) {
            case F32:
                scratch.floatView(chunk).get(base >>> 2, out, outOff, cols);
                break;
            case F16:
            case BF16:
                if (!Simd.HALF_VECTORS) {
                    dequantizeRowScalar(out, outOff, w, row);
                    return;
                }
                short[] h = scratch.shorts(cols);
                scratch.shortView(chunk).get(base >>> 1, h, 0, cols);
                decodeHalves(out, outOff, h, cols, w.dtype() == DType.BF16);
                break;
            case Q8_0:
            case Q4_0:
                if (!Simd.QUANT_VECTORS) {
                    dequantizeRowScalar(out, outOff, w, row);
                    return;
                }
                byte[] q = scratch.bytes(w.rowBytes());
                chunk.get(base, q, 0, w.rowBytes());
                if (w.dtype() == DType.Q8_0) {
                    decodeQ8_0(out, outOff, q, cols);
                } else {
                    decodeQ4_0(out, outOff, q, cols);
                }
                break;
            default:
                throw new UnsupportedOperationException("cannot decode " + w.dtype());
        }
    }

    /** Row {@code row} of a packed matrix ({@link WeightMatrix#packOnHeap}) decoded into out. */
    static void dequantizePacked(float[] out, int outOff, WeightMatrix w, PackedRows p, int row) {
        int cols = w.cols();
        int b = row / p.rowsPerBlock;
        int i = row - b * p.rowsPerBlock;
        switch (p.dtype) {
            case F32:
                System.arraycopy(p.floats[b], i * cols, out, outOff, cols);
                break;
            case F16:
            case BF16:
                decodeHalves(out, outOff, p.halves[b], i * cols, cols, p.dtype == DType.BF16);
                break;
            case Q8_0: {
                byte[] q = p.quants[b];
                float[] s = p.scales[b];
                int qo = i * cols;
                int so = i * (cols / QK);
                if (Simd.B.length() == 8 && Simd.BYTE_PARTS == 1) {
                    decodePackedQ8_0By8(out, outOff, q, qo, s, so, cols);
                    break;
                }
                int step = Simd.B.length();
                for (int k = 0; k < cols / QK; k++) {
                    FloatVector d = FloatVector.broadcast(F, s[so + k]);
                    int dst = outOff + k * QK;
                    for (int j = 0; j < QK; j += step) {
                        ByteVector bytes = Simd.loadBytes(q, qo + k * QK + j);
                        for (int part = 0; part < Simd.BYTE_PARTS; part++) {
                            Simd.bytesToFloat(bytes, part).mul(d).intoArray(out, dst + j + part * L);
                        }
                    }
                }
                break;
            }
            default:
                throw new UnsupportedOperationException("cannot decode packed " + p.dtype);
        }
    }

    /** Scalar twin of {@link #dequantizeRow}: typed absolute reads of the weight buffer. */
    public static void dequantizeRowScalar(float[] out, int outOff, WeightMatrix w, int row) {
        checkRow(out, outOff, w, row);
        int cols = w.cols();
        ByteBuffer chunk = w.chunk(row); // little-endian: WeightMatrix sets the order
        int base = w.offset(row);
        switch (w.dtype()) {
            case F32:
                for (int c = 0; c < cols; c++) {
                    out[outOff + c] = chunk.getFloat(base + 4 * c);
                }
                break;
            case F16:
                for (int c = 0; c < cols; c++) {
                    out[outOff + c] = Float16.toFloat(chunk.getShort(base + 2 * c));
                }
                break;
            case BF16:
                for (int c = 0; c < cols; c++) {
                    out[outOff + c] = Float16.bf16ToFloat(chunk.getShort(base + 2 * c));
                }
                break;
            case Q8_0:
                for (int b = 0; b < cols / QK; b++) {
                    int o = base + b * 34;
                    float d = Float16.toFloat(chunk.getShort(o));
                    for (int j = 0; j < QK; j++) {
                        out[outOff + b * QK + j] = d * chunk.get(o + 2 + j);
                    }
                }
                break;
            case Q4_0:
                for (int b = 0; b < cols / QK; b++) {
                    int o = base + b * 18;
                    float d = Float16.toFloat(chunk.getShort(o));
                    for (int j = 0; j < QK / 2; j++) {
                        int v = chunk.get(o + 2 + j) & 0xFF;
                        out[outOff + b * QK + j] = d * ((v & 0x0F) - 8);
                        out[outOff + b * QK + j + QK / 2] = d * ((v >>> 4) - 8);
                    }
                }
                break;
            default:
                throw new UnsupportedOperationException("cannot decode " + w.dtype());
        }
    }

    /** Widens {@code n} halves (F16, or BF16 if {@code bf16}) from {@code h[0..n)} into out. */
    static void decodeHalves(float[] out, int outOff, short[] h, int n, boolean bf16) {
        decodeHalves(out, outOff, h, 0, n, bf16);
    }

    /** Widens {@code n} halves from {@code h[ho..ho + n)} into out. */
    static void decodeHalves(float[] out, int outOff, short[] h, int ho, int n, boolean bf16) {
        int c = 0;
        int upper = F.loopBound(n);
        if (bf16) {
            for (; c < upper; c += L) {
                Simd.bf16ToFloat(ShortVector.fromArray(Simd.S, h, ho + c)).intoArray(out, outOff + c);
            }
            for (; c < n; c++) {
                out[outOff + c] = Float16.bf16ToFloat(h[ho + c]);
            }
        } else {
            for (; c < upper; c += L) {
                Simd.halfToFloat(ShortVector.fromArray(Simd.S, h, ho + c)).intoArray(out, outOff + c);
            }
            for (; c < n; c++) {
                out[outOff + c] = Float16.toFloat(h[ho + c]);
            }
        }
    }

    /** Decodes {@code n / 32} Q8_0 blocks from {@code q[0..)} into out. */
    /**
     * The Q8_0 case of {@link #dequantizePacked} for 8 float lanes (AVX2), a block's four loads
     * written out: the JIT does not unroll the loop over them, and unrolled it ran 1.25x as fast
     * (704 rows of 1024, 55.7 against 69.4 us). Same products, so the same bits.
     */
    private static void decodePackedQ8_0By8(float[] out, int outOff, byte[] q, int qo, float[] s, int so, int cols) {
        for (int k = 0; k < cols / QK; k++) {
            FloatVector d = FloatVector.broadcast(F, s[so + k]);
            int o = qo + k * QK;
            int dst = outOff + k * QK;
            Simd.bytesToFloat(Simd.loadBytes(q, o), 0).mul(d).intoArray(out, dst);
            Simd.bytesToFloat(Simd.loadBytes(q, o + 8), 0).mul(d).intoArray(out, dst + 8);
            Simd.bytesToFloat(Simd.loadBytes(q, o + 16), 0).mul(d).intoArray(out, dst + 16);
            Simd.bytesToFloat(Simd.loadBytes(q, o + 24), 0).mul(d).intoArray(out, dst + 24);
        }
    }

    static void decodeQ8_0(float[] out, int outOff, byte[] q, int n) {
        int step = Simd.B.length();
        for (int b = 0; b < n / QK; b++) {
            int o = b * 34;
            FloatVector d = FloatVector.broadcast(F, Simd.scaleAt(q, o));
            int dst = outOff + b * QK;
            for (int j = 0; j < QK; j += step) {
                ByteVector bytes = Simd.loadBytes(q, o + 2 + j);
                for (int p = 0; p < Simd.BYTE_PARTS; p++) {
                    Simd.bytesToFloat(bytes, p).mul(d).intoArray(out, dst + j + p * L);
                }
            }
        }
    }

    /** Decodes {@code n / 32} Q4_0 blocks from {@code q[0..)} into out. */
    static void decodeQ4_0(float[] out, int outOff, byte[] q, int n) {
        int step = Simd.B.length();
        for (int b = 0; b < n / QK; b++) {
            int o = b * 18;
            FloatVector d = FloatVector.broadcast(F, Simd.scaleAt(q, o));
            int dst = outOff + b * QK;
            for (int j = 0; j < QK / 2; j += step) {
                ByteVector bytes = Simd.loadBytes(q, o + 2 + j);
                ByteVector lo = bytes.and((byte) 0x0F).sub((byte) 8);
                ByteVector hi = bytes.lanewise(VectorOperators.LSHR, 4).and((byte) 0x0F).sub((byte) 8);
                for (int p = 0; p < Simd.BYTE_PARTS; p++) {
                    Simd.bytesToFloat(lo, p).mul(d).intoArray(out, dst + j + p * L);
                    Simd.bytesToFloat(hi, p).mul(d).intoArray(out, dst + QK / 2 + j + p * L);
                }
            }
        }
    }

    private static void checkRow(float[] out, int outOff, WeightMatrix w, int row) {
        if (row < 0 || row >= w.rows()) {
            throw new IndexOutOfBoundsException("row " + row + " of " + w);
        }
        if (outOff < 0 || (long) outOff + w.cols() > out.length) {
            throw new IndexOutOfBoundsException(
                    "out[" + outOff + " .. +" + w.cols() + ") exceeds length " + out.length);
        }
    }
}
