/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * The vector species every kernel uses, derived once from {@link FloatVector#SPECIES_PREFERRED}
 * so that a float vector, its int twin and the narrow vectors that widen into it all have the
 * same lane count. Static finals, so the JIT folds the lane counts and part loops.
 *
 * <p>Only heap-array loads and stores are used: {@code fromByteBuffer}/{@code fromByteArray}
 * exist on JDK 17 but not on 21+, and {@code fromMemorySegment} does not exist on 17.
 */
final class Simd {

    private Simd() {}

    static final String BITS_PROPERTY = "flinkqwen.kernels.vectorBits";

    private static VectorSpecies<Float> floatSpecies(String bits) {
        if (bits == null || bits.isEmpty()) {
            return FloatVector.SPECIES_PREFERRED;
        }
        return VectorSpecies.of(float.class, VectorShape.forBitSize(Integer.parseInt(bits.trim())));
    }

    /**
     * The float species of every kernel: the preferred one, unless the system property {@value
     * #BITS_PROPERTY} names another vector size in bits (64, 128, 256, 512). That override exists
     * to test the lane counts of other CPUs (e.g. AVX-512's 16 floats on an AVX2 machine, where
     * the Vector API then runs its slow but exact Java fallback); do not set it in production.
     */
    static final VectorSpecies<Float> F = floatSpecies(System.getProperty(BITS_PROPERTY));

    /** Float lanes per vector. */
    static final int L = F.length();

    /** Ints, same shape as {@link #F}. */
    static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());

    /**
     * Halves with {@link #L} lanes (half the bits of {@link #F}); null when that is under 64 bits
     * and the F16/BF16 vector paths fall back to scalar code.
     */
    static final VectorSpecies<Short> S = F.vectorBitSize() >= 128
            ? VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2))
            : null;

    /**
     * Bytes loaded per step by the Q8_0/Q4_0 paths: {@code max(8, L)} lanes, widened to floats
     * {@link #L} at a time ({@link #BYTE_PARTS} parts per load). Null when a block of 16 bytes
     * is not a whole number of loads ({@code L > 16}); those paths then fall back to scalar.
     */
    static final VectorSpecies<Byte> B = L <= 16
            ? VectorSpecies.of(byte.class, VectorShape.forBitSize(Math.max(8, L) * 8))
            : null;

    /** Float vectors per byte load. */
    static final int BYTE_PARTS = B == null ? 0 : B.length() / L;

    static final boolean HALF_VECTORS = S != null;
    static final boolean QUANT_VECTORS = B != null;

    /**
     * Widens {@link #L} binary16 values to floats. Exact for normal and subnormal halves (the
     * exponent and mantissa are placed in a float and rescaled by {@code 2^112}, an exact
     * multiply); infinities and NaNs are NOT supported: they decode to large finite values.
     * Weights never hold them; the scalar paths ({@link Float16#toFloat}) handle them.
     */
    static FloatVector halfToFloat(ShortVector h) {
        IntVector i = (IntVector) h.convertShape(VectorOperators.S2I, I, 0);
        FloatVector magnitude =
                i.and(0x7FFF).lanewise(VectorOperators.LSHL, 13).reinterpretAsFloats().mul(0x1p112f);
        IntVector sign = i.and(0x8000).lanewise(VectorOperators.LSHL, 16);
        return magnitude.reinterpretAsInts().or(sign).reinterpretAsFloats();
    }

    /**
     * {@link #L} binary16 values as floats times 2^-112, by placing sign, exponent and mantissa
     * in a float's bits (shift and mask, no multiply): exact for normal and subnormal halves
     * (which become float subnormals). {@code S2I} sign-extends, so after the shift bits 28-31
     * all hold the sign; the mask keeps bit 31 and the 15 exponent and mantissa bits.
     */
    static FloatVector halfBitsScaled(ShortVector h) {
        IntVector i = (IntVector) h.convertShape(VectorOperators.S2I, I, 0);
        return i.lanewise(VectorOperators.LSHL, 13).and(0x8FFFE000).reinterpretAsFloats();
    }

    /** Activations are scaled by this before meeting {@link #halfBitsScaled} weights (2^56). */
    static final float HALF_X_SCALE = 0x1p56f;

    /** A sum of {@link #halfBitsScaled} weights times scaled activations, times this, is the dot. */
    static final float HALF_SCALE_BACK = 0x1p56f;

    /** Undoes {@link #HALF_X_SCALE} exactly. */
    static final float HALF_X_UNSCALE = 0x1p-56f;

    /**
     * {@code dst[0..n) = x[0..n) * 2^56}: exact unless |x| is above 2^71 (never, for
     * activations) or below 2^-70 (then still exact, as subnormals lose nothing when scaled up).
     */
    static float[] scaleForHalves(float[] x, int n, float[] dst) {
        int c = 0;
        for (; c < F.loopBound(n); c += L) {
            FloatVector.fromArray(F, x, c).mul(HALF_X_SCALE).intoArray(dst, c);
        }
        for (; c < n; c++) {
            dst[c] = x[c] * HALF_X_SCALE;
        }
        return dst;
    }

    /** Widens {@link #L} bfloat16 values to floats (exact, including inf and NaN). */
    static FloatVector bf16ToFloat(ShortVector h) {
        IntVector i = (IntVector) h.convertShape(VectorOperators.S2I, I, 0);
        return i.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    /** Loads {@link #B} bytes; for the quantized paths. */
    static ByteVector loadBytes(byte[] a, int offset) {
        return ByteVector.fromArray(B, a, offset);
    }

    /** Part {@code part} ({@link #L} lanes) of {@code b} as floats. */
    static FloatVector bytesToFloat(ByteVector b, int part) {
        return (FloatVector) b.convertShape(VectorOperators.B2F, F, part);
    }

    /**
     * Every binary16 value decoded by {@link Float16#toFloat}, indexed by its 16 bits (256 KiB).
     * A Q8_0/Q4_0 row has one F16 scale per 32 weights; decoding it with shifts and a branch
     * cost about a fifth of a Q8_0 mat-vec on JDK 17 (measured), a table load costs one load, and
     * the few distinct scales of a matrix stay in cache.
     */
    private static final float[] HALF_TABLE = halfTable();

    private static float[] halfTable() {
        float[] t = new float[1 << 16];
        for (int i = 0; i < t.length; i++) {
            t[i] = Float16.toFloat((short) i);
        }
        return t;
    }

    /** The F16 scale stored little-endian at {@code a[offset]}, {@code a[offset + 1]}. */
    static float scaleAt(byte[] a, int offset) {
        return HALF_TABLE[(a[offset] & 0xFF) | ((a[offset + 1] & 0xFF) << 8)];
    }
}
