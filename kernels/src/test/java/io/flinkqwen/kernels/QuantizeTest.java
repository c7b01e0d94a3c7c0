/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

class QuantizeTest {

    /** Blocks with very different magnitudes, one of them all zero. */
    private static float[] blocks(Random rnd, int nBlocks) {
        float[] x = new float[nBlocks * 32];
        for (int b = 0; b < nBlocks; b++) {
            float scale = b % 5 == 4 ? 0f : (float) Math.pow(10, rnd.nextInt(7) - 3);
            for (int j = 0; j < 32; j++) {
                x[b * 32 + j] = (rnd.nextFloat() * 2f - 1f) * scale;
            }
        }
        return x;
    }

    private static void decodeAll(DType type, byte[] q, float[] out) {
        Quantize.dequantizeRowScalar(out, 0, WeightMatrix.onHeap(type, 1, out.length, q), 0);
    }

    @Test
    void q8_0RoundTripIsWithinHalfAStepPerBlock() {
        Random rnd = new Random(1);
        float[] x = blocks(rnd, 40);
        byte[] q = new byte[(int) DType.Q8_0.rowBytes(x.length)];
        Quantize.quantizeRow(DType.Q8_0, x, 0, x.length, q, 0);
        float[] y = new float[x.length];
        decodeAll(DType.Q8_0, q, y);
        for (int b = 0; b < 40; b++) {
            float amax = 0f;
            for (int j = 0; j < 32; j++) {
                amax = Math.max(amax, Math.abs(x[b * 32 + j]));
            }
            float d = amax / 127f;
            float d16 = Float16.toFloat(Float16.fromFloat(d));
            assertEquals(d16, Float16.toFloat((short) ((q[b * 34] & 0xFF) | (q[b * 34 + 1] << 8))), "stored scale");
            // Half a step of the float scale, plus what rounding the scale to F16 moves |q| <= 127 steps.
            double bound = d / 2.0 + 127.0 * Math.abs(d - d16) + 1e-6 * amax;
            for (int j = 0; j < 32; j++) {
                int i = b * 32 + j;
                assertTrue(Math.abs(x[i] - y[i]) <= bound,
                        "block " + b + " value " + j + ": " + x[i] + " -> " + y[i] + ", bound " + bound);
            }
        }
    }

    @Test
    void q8_0MapsTheLargestMagnitudeToPlusMinus127AndRoundsHalvesAwayFromZero() {
        float[] x = new float[32];
        x[0] = -127f; // amax 127: d = 1 exactly, so x * id is x
        x[1] = 0.5f;
        x[2] = -1.5f; // Math.round would give -1
        x[3] = -2.5f; // Math.rint would give -2
        x[4] = 2.5f;
        x[5] = 0.49999997f; // largest float below 0.5: floor(x + 0.5f) would give 1
        byte[] q = new byte[34];
        Quantize.quantizeRow(DType.Q8_0, x, 0, 32, q, 0);
        assertEquals(Float16.fromFloat(1f), (short) ((q[0] & 0xFF) | (q[1] << 8)));
        assertEquals(-127, q[2]);
        assertEquals(1, q[3]);
        assertEquals(-2, q[4]);
        assertEquals(-3, q[5]);
        assertEquals(3, q[6]);
        assertEquals(0, q[7]);
        assertEquals(0, q[8]);
    }

    @Test
    void q4_0RoundTripIsWithinOneStepAndTheExtremeIsExact() {
        Random rnd = new Random(2);
        float[] x = blocks(rnd, 40);
        byte[] q = new byte[(int) DType.Q4_0.rowBytes(x.length)];
        Quantize.quantizeRow(DType.Q4_0, x, 0, x.length, q, 0);
        float[] y = new float[x.length];
        decodeAll(DType.Q4_0, q, y);
        for (int b = 0; b < 40; b++) {
            float amax = 0f;
            float max = 0f;
            for (int j = 0; j < 32; j++) {
                if (amax < Math.abs(x[b * 32 + j])) {
                    amax = Math.abs(x[b * 32 + j]);
                    max = x[b * 32 + j];
                }
            }
            float d = max / -8f;
            float d16 = Float16.toFloat(Float16.fromFloat(d));
            double bound = Math.abs(d) + 8.0 * Math.abs(d - d16) + 1e-6 * amax;
            for (int j = 0; j < 32; j++) {
                int i = b * 32 + j;
                assertTrue(Math.abs(x[i] - y[i]) <= bound,
                        "block " + b + " value " + j + ": " + x[i] + " -> " + y[i] + ", bound " + bound);
                if (x[i] == max && max != 0f) {
                    assertEquals(-8f * d16, y[i], "the extreme value decodes to -8 d");
                }
            }
        }
    }

    @Test
    void q4_0PacksValueJLowAndValueJPlus16High() {
        float[] x = new float[32];
        x[0] = 8f; // the extreme: d = -1, nibble 0
        x[16] = -7f; // -7 / -1 + 8.5 = 15.5 -> 15
        x[1] = 1f; // -1 + 8.5 -> 7
        x[17] = -1f; // 9.5 -> 9
        byte[] q = new byte[18];
        Quantize.quantizeRow(DType.Q4_0, x, 0, 32, q, 0);
        assertEquals(Float16.fromFloat(-1f), (short) ((q[0] & 0xFF) | (q[1] << 8)));
        assertEquals(0x00 | (15 << 4), q[2] & 0xFF);
        assertEquals(7 | (9 << 4), q[3] & 0xFF);
        assertEquals(8 | (8 << 4), q[4] & 0xFF, "zeros are nibble 8");
    }

    @Test
    void floatFormatsEncodeLittleEndianWithFloat16Rounding() {
        Random rnd = new Random(3);
        float[] x = Numerics.uniform(rnd, 37, 100f);
        byte[] f32 = new byte[37 * 4];
        byte[] f16 = new byte[37 * 2];
        byte[] bf16 = new byte[37 * 2];
        Quantize.quantizeRow(DType.F32, x, 0, 37, f32, 0);
        Quantize.quantizeRow(DType.F16, x, 0, 37, f16, 0);
        Quantize.quantizeRow(DType.BF16, x, 0, 37, bf16, 0);
        ByteBuffer b32 = ByteBuffer.wrap(f32).order(ByteOrder.LITTLE_ENDIAN);
        ByteBuffer b16 = ByteBuffer.wrap(f16).order(ByteOrder.LITTLE_ENDIAN);
        ByteBuffer bb16 = ByteBuffer.wrap(bf16).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < 37; i++) {
            assertEquals(Float.floatToRawIntBits(x[i]), b32.getInt(4 * i));
            assertEquals(Float16.fromFloat(x[i]), b16.getShort(2 * i));
            assertEquals(Float16.bf16FromFloat(x[i]), bb16.getShort(2 * i));
        }
    }

    @Test
    void quantizeRowHonoursOffsetsAndRejectsPartialBlocks() {
        Random rnd = new Random(4);
        float[] x = Numerics.uniform(rnd, 70, 1f);
        byte[] at0 = new byte[68];
        byte[] at5 = new byte[75];
        float[] shifted = new float[64];
        System.arraycopy(x, 6, shifted, 0, 64);
        Quantize.quantizeRow(DType.Q8_0, shifted, 0, 64, at0, 0);
        Quantize.quantizeRow(DType.Q8_0, x, 6, 64, at5, 5);
        for (int i = 0; i < 68; i++) {
            assertEquals(at0[i], at5[5 + i]);
        }
        assertThrows(IllegalArgumentException.class, () -> Quantize.quantizeRow(DType.Q4_0, x, 0, 48, new byte[100], 0));
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void dequantizeRowMatchesScalarTwinBitForBitInEveryLayout(DType type) {
        Random rnd = new Random(5 + type.ordinal());
        int[] colsList = type.isQuantized() ? new int[] {32, 64, 96, 160, 896} : new int[] {1, 3, 7, 8, 9, 16, 17, 33, 100, 896};
        for (int cols : colsList) {
            int rows = 7;
            float[] values = TestMatrices.weights(rnd, rows, cols);
            byte[] bytes = TestMatrices.encode(type, values, rows, cols);
            for (TestMatrices.Layout layout : TestMatrices.Layout.values()) {
                WeightMatrix w = TestMatrices.matrix(layout, type, rows, cols, bytes);
                for (int off : Numerics.OFFSETS) {
                    for (int r = 0; r < rows; r++) {
                        float[] expected = new float[off + cols];
                        float[] actual = new float[off + cols];
                        Quantize.dequantizeRowScalar(expected, off, w, r);
                        Quantize.dequantizeRow(actual, off, w, r);
                        Numerics.assertSameBits(expected, off, actual, off, cols,
                                type + " " + layout + " cols " + cols + " row " + r + " off " + off);
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void dequantizeRowGivesBackWhatQuantizeRowWrote(DType type) {
        Random rnd = new Random(6);
        int cols = 96;
        float[] x = Numerics.uniform(rnd, cols, 3f);
        byte[] q = new byte[(int) type.rowBytes(cols)];
        Quantize.quantizeRow(type, x, 0, cols, q, 0);
        float[] y = new float[cols];
        Quantize.dequantizeRow(y, 0, WeightMatrix.onHeap(type, 1, cols, q), 0);
        for (int i = 0; i < cols; i++) {
            float expected;
            switch (type) {
                case F32:
                    expected = x[i];
                    break;
                case F16:
                    expected = Float16.toFloat(Float16.fromFloat(x[i]));
                    break;
                case BF16:
                    expected = Float16.bf16ToFloat(Float16.bf16FromFloat(x[i]));
                    break;
                default:
                    expected = Float.NaN; // checked by the bound tests; here only closeness
            }
            if (type.isQuantized()) {
                Numerics.assertClose(x[i], y[i], type == DType.Q8_0 ? 3f / 127 : 3f / 8 * 1.01, 0, type + " " + i);
            } else {
                assertEquals(expected, y[i], 0f, type + " " + i);
            }
        }
    }

    @Test
    void vectorHalfDecodingIsExactForEveryFiniteHalf() {
        // One row holding all 63,488 finite halves (normals, subnormals, both zeros), in a ragged
        // length so the scalar tail runs too.
        short[] finite = new short[0x10000];
        int n = 0;
        for (int h = 0; h < 0x10000; h++) {
            if (((h >>> 10) & 0x1F) != 0x1F) {
                finite[n++] = (short) h;
            }
        }
        byte[] bytes = new byte[n * 2];
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asShortBuffer().put(finite, 0, n);
        WeightMatrix w = WeightMatrix.onHeap(DType.F16, 1, n, bytes);
        float[] expected = new float[n];
        float[] actual = new float[n];
        Quantize.dequantizeRowScalar(expected, 0, w, 0);
        Quantize.dequantizeRow(actual, 0, w, 0);
        Numerics.assertSameBits(expected, 0, actual, 0, n, "F16");
    }

    @Test
    void vectorBfloat16DecodingIsExactForEveryValue() {
        byte[] bytes = new byte[0x10000 * 2];
        for (int h = 0; h < 0x10000; h++) {
            bytes[2 * h] = (byte) h;
            bytes[2 * h + 1] = (byte) (h >>> 8);
        }
        WeightMatrix w = WeightMatrix.onHeap(DType.BF16, 1, 0x10000, bytes);
        float[] expected = new float[0x10000];
        float[] actual = new float[0x10000];
        Quantize.dequantizeRowScalar(expected, 0, w, 0);
        Quantize.dequantizeRow(actual, 0, w, 0);
        Numerics.assertSameBits(expected, 0, actual, 0, 0x10000, "BF16");
    }

    @Test
    void mappedFileRowsDecodeLikeHeapRows(@TempDir Path dir) throws IOException {
        Random rnd = new Random(7);
        int rows = 5;
        int cols = 64;
        float[] values = TestMatrices.weights(rnd, rows, cols);
        byte[] bytes = TestMatrices.encode(DType.Q8_0, values, rows, cols);
        Path file = dir.resolve("w.bin");
        byte[] withHeader = new byte[bytes.length + 13]; // tensor data at an odd file offset
        System.arraycopy(bytes, 0, withHeader, 13, bytes.length);
        Files.write(file, withHeader);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            WeightMatrix mapped = WeightMatrix.map(ch, 13, DType.Q8_0, rows, cols);
            WeightMatrix heap = WeightMatrix.onHeap(DType.Q8_0, rows, cols, bytes);
            for (int r = 0; r < rows; r++) {
                float[] a = new float[cols];
                float[] b = new float[cols];
                Quantize.dequantizeRow(a, 0, mapped, r);
                Quantize.dequantizeRowScalar(b, 0, heap, r);
                Numerics.assertSameBits(b, 0, a, 0, cols, "row " + r);
            }
        }
    }

    @Test
    void dequantizeRowRejectsBadRowsAndShortOutputs() {
        WeightMatrix w = WeightMatrix.onHeap(DType.F32, 2, 4, new byte[32]);
        assertThrows(IndexOutOfBoundsException.class, () -> Quantize.dequantizeRow(new float[4], 0, w, 2));
        assertThrows(IndexOutOfBoundsException.class, () -> Quantize.dequantizeRow(new float[4], 1, w, 0));
        assertThrows(IndexOutOfBoundsException.class, () -> Quantize.dequantizeRowScalar(new float[3], 0, w, 0));
    }

    @Test
    void activationsRoundToQ8_0BlocksAsGgmlDoesBeforeAQ8_0Product() {
        // Block 0: amax 127, so the factor 127 / amax is 1 and x * id is x itself: the halves
        // show the rounding (ggml's CPU backend rounds to nearest even, _MM_ROUND_NEAREST).
        float[] x = new float[96];
        float[] halves = {2.5f, 3.5f, -2.5f, -3.5f, 0.5f, -0.5f, 1.5f, 126.5f, -127f, 127f};
        int[] want = {2, 4, -2, -4, 0, 0, 2, 126, -127, 127};
        System.arraycopy(halves, 0, x, 0, halves.length);
        // block 1 all zero (scale 0, values 0); block 2 small values, where the F16 scale is subnormal
        Random rnd = new Random(90);
        for (int i = 64; i < 96; i++) {
            x[i] = (float) (rnd.nextGaussian() * 1e-6);
        }
        for (boolean scalar : new boolean[] {false, true}) {
            float[] values = new float[96];
            short[] ints = new short[96];
            float[] scales = new float[3];
            if (scalar) {
                Quantize.roundQ8_0Scalar(x, 0, 96, values, 0, ints, 0, scales, 0);
            } else {
                Quantize.roundQ8_0(x, 0, 96, values, 0, ints, 0, scales, 0);
            }
            String how = scalar ? "scalar" : "vector";
            for (int j = 0; j < want.length; j++) {
                assertEquals(want[j], ints[j], how + ": " + halves[j] + " rounds to " + want[j]);
            }
            assertEquals(1f, scales[0], how + ": amax 127 gives scale 1");
            assertEquals(0f, scales[1], how + ": an all-zero block has scale 0");
            for (int i = 32; i < 64; i++) {
                assertEquals(0, ints[i], how);
            }
            float amax = 0;
            for (int i = 64; i < 96; i++) {
                amax = Math.max(amax, Math.abs(x[i]));
            }
            assertEquals(Float16.toFloat(Float16.fromFloat(amax / 127f)), scales[2], how + ": the scale is amax / 127 in F16");
            for (int i = 0; i < 96; i++) {
                assertEquals(ints[i] * scales[i / 32], values[i], how + ": value " + i + " is q * d");
            }
        }
    }

    @Test
    void roundedActivationsAreTheScalarTwinsBitsAndWithinHalfAStep() {
        Random rnd = new Random(91);
        int n = 32 * 40;
        for (double scale : new double[] {1e-3, 1, 300}) {
            float[] x = new float[n + 5];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) (rnd.nextGaussian() * scale * (rnd.nextInt(10) == 0 ? 20 : 1));
            }
            int off = 5; // an offset that is not a multiple of the vector length
            float[] v1 = new float[n];
            float[] v2 = new float[n];
            short[] q1 = new short[n];
            short[] q2 = new short[n];
            float[] d1 = new float[n / 32];
            float[] d2 = new float[n / 32];
            Quantize.roundQ8_0(x, off, n, v1, 0, q1, 0, d1, 0);
            Quantize.roundQ8_0Scalar(x, off, n, v2, 0, q2, 0, d2, 0);
            for (int i = 0; i < n; i++) {
                assertEquals(Float.floatToRawIntBits(v2[i]), Float.floatToRawIntBits(v1[i]), "value " + i + " at scale " + scale);
                assertEquals(q2[i], q1[i], "int " + i);
            }
            for (int b = 0; b < n / 32; b++) {
                float amax = 0;
                int top = 0;
                for (int j = 0; j < 32; j++) {
                    if (Math.abs(x[off + b * 32 + j]) > amax) {
                        amax = Math.abs(x[off + b * 32 + j]);
                        top = j;
                    }
                }
                assertEquals(127, Math.abs(q1[b * 32 + top]), "the largest magnitude maps to +-127");
                for (int j = 0; j < 32; j++) {
                    int i = b * 32 + j;
                    assertTrue(Math.abs(q1[i]) <= 127);
                    // half a step of amax / 127, plus the F16 rounding of the scale (2^-11 relative)
                    double err = Math.abs(x[off + i] - (double) v1[i]);
                    assertTrue(err <= amax / 127.0 * 0.5 * 1.001 + amax * 0x1p-11,
                            "value " + i + ": " + x[off + i] + " rounded to " + v1[i]);
                }
            }
        }
        assertThrows(IllegalArgumentException.class,
                () -> Quantize.roundQ8_0(new float[40], 0, 40, new float[40], 0, null, 0, null, 0));
    }
}
