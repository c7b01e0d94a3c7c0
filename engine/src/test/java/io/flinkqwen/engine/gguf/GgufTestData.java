/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.gguf;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;

/**
 * Hand-built tensor bytes for the GGUF tests. The quantized blocks are assembled here from the
 * layout in the DType Javadoc (not with the kernels' quantizer), with F16 scales whose bit
 * patterns are written out, so that expected values are exact products computed by hand.
 */
final class GgufTestData {

    private GgufTestData() {}

    /** F16 bit patterns of exactly representable scales. */
    static final short HALF_0_25 = 0x3400;

    static final short HALF_0_5 = 0x3800;
    static final short HALF_1 = 0x3C00;
    static final short HALF_2 = 0x4000;
    static final short HALF_MINUS_1_5 = (short) 0xBE00;

    static final short[] SCALES = {HALF_0_25, HALF_0_5, HALF_1, HALF_2, HALF_MINUS_1_5};
    static final float[] SCALE_VALUES = {0.25f, 0.5f, 1f, 2f, -1.5f};

    /** A tensor's bytes and the floats they decode to. */
    record Data(byte[] bytes, float[] values) {
        ByteBuffer buffer() {
            return ByteBuffer.wrap(bytes);
        }
    }

    static Data f32(Random rnd, int n) {
        ByteBuffer b = ByteBuffer.allocate(4 * n).order(ByteOrder.LITTLE_ENDIAN);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) rnd.nextGaussian();
            b.putFloat(v[i]);
        }
        return new Data(b.array(), v);
    }

    /** F16 values chosen as k/64 for small k: exactly representable, no conversion involved. */
    static Data f16(Random rnd, int n) {
        ByteBuffer b = ByteBuffer.allocate(2 * n).order(ByteOrder.LITTLE_ENDIAN);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            int k = rnd.nextInt(129) - 64; // [-1, 1] in steps of 1/64
            v[i] = k / 64f;
            b.putShort(halfOfSmallMultiple(k));
        }
        return new Data(b.array(), v);
    }

    /** binary16 bits of k/64 for |k| <= 64, computed by hand from the IEEE layout. */
    static short halfOfSmallMultiple(int k) {
        if (k == 0) {
            return 0;
        }
        int sign = k < 0 ? 0x8000 : 0;
        int m = Math.abs(k); // value = m * 2^-6
        int e = 31 - Integer.numberOfLeadingZeros(m); // m = 1.f * 2^e
        int mantissa = (m << (10 - e)) & 0x3FF;
        int exponent = e - 6 + 15;
        return (short) (sign | (exponent << 10) | mantissa);
    }

    /** BF16 values are the top halves of floats: keep the top 16 bits of random floats. */
    static Data bf16(Random rnd, int n) {
        ByteBuffer b = ByteBuffer.allocate(2 * n).order(ByteOrder.LITTLE_ENDIAN);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            int bits = Float.floatToIntBits((float) rnd.nextGaussian()) & 0xFFFF0000;
            v[i] = Float.intBitsToFloat(bits);
            b.putShort((short) (bits >>> 16));
        }
        return new Data(b.array(), v);
    }

    /** Q8_0: per block of 32, an F16 scale d then 32 signed bytes q; value = d * q. */
    static Data q8_0(Random rnd, int n) {
        ByteBuffer b = ByteBuffer.allocate(n / 32 * 34).order(ByteOrder.LITTLE_ENDIAN);
        float[] v = new float[n];
        for (int block = 0; block < n / 32; block++) {
            int s = rnd.nextInt(SCALES.length);
            b.putShort(SCALES[s]);
            for (int j = 0; j < 32; j++) {
                int q = rnd.nextInt(256) - 128;
                b.put((byte) q);
                v[block * 32 + j] = SCALE_VALUES[s] * q;
            }
        }
        return new Data(b.array(), v);
    }

    /**
     * Q4_0: per block of 32, an F16 scale d then 16 bytes; byte j holds value j in its low nibble
     * and value j + 16 in its high nibble; value = d * (nibble - 8).
     */
    static Data q4_0(Random rnd, int n) {
        ByteBuffer b = ByteBuffer.allocate(n / 32 * 18).order(ByteOrder.LITTLE_ENDIAN);
        float[] v = new float[n];
        for (int block = 0; block < n / 32; block++) {
            int s = rnd.nextInt(SCALES.length);
            b.putShort(SCALES[s]);
            int[] nib = new int[32];
            for (int j = 0; j < 32; j++) {
                nib[j] = rnd.nextInt(16);
                v[block * 32 + j] = SCALE_VALUES[s] * (nib[j] - 8);
            }
            for (int j = 0; j < 16; j++) {
                b.put((byte) (nib[j] | nib[j + 16] << 4));
            }
        }
        return new Data(b.array(), v);
    }

    static Data random(io.flinkqwen.kernels.DType dtype, Random rnd, int n) {
        switch (dtype) {
            case F32:
                return f32(rnd, n);
            case F16:
                return f16(rnd, n);
            case BF16:
                return bf16(rnd, n);
            case Q8_0:
                return q8_0(rnd, n);
            case Q4_0:
                return q4_0(rnd, n);
            default:
                throw new AssertionError(dtype);
        }
    }

    /** Copy of {@code file} with {@code patch} written at {@code offset}. */
    static Path patched(Path file, Path out, int offset, byte[] patch) throws IOException {
        byte[] bytes = Files.readAllBytes(file);
        System.arraycopy(patch, 0, bytes, offset, patch.length);
        Files.write(out, bytes);
        return out;
    }

    static Path truncated(Path file, Path out, int length) throws IOException {
        Files.write(out, Arrays.copyOf(Files.readAllBytes(file), length));
        return out;
    }

    static byte[] u32(long v) {
        return ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt((int) v).array();
    }

    static byte[] u64(long v) {
        return ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(v).array();
    }

    /** All bytes of a read-only buffer between position and limit. */
    static byte[] bytes(ByteBuffer b) {
        ByteBuffer d = b.duplicate();
        byte[] out = new byte[d.remaining()];
        d.get(out);
        return out;
    }
}
