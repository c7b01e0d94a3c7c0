/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The vector EXP and {@link Math#exp} differ by an ulp or so, and the sums run in different
 * orders: probabilities must agree within {@code 1e-8 + 1e-5 * |ref|}.
 */
class SoftmaxTest {

    private static double[] reference(float[] x, int off, int n) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, x[off + i]);
        }
        double[] p = new double[n];
        double sum = 0;
        for (int i = 0; i < n; i++) {
            p[i] = Math.exp(x[off + i] - max);
            sum += p[i];
        }
        for (int i = 0; i < n; i++) {
            p[i] /= sum;
        }
        return p;
    }

    @Test
    void softmaxMatchesScalarTwinAndFloat64() {
        Random rnd = new Random(1);
        for (int n : Numerics.SIZES) {
            for (int off : Numerics.OFFSETS) {
                float[] x = Numerics.uniform(rnd, off + n + 2, 8f);
                float[] fast = x.clone();
                float[] scalar = x.clone();
                Softmax.softmaxInPlace(fast, off, n);
                Softmax.softmaxInPlaceScalar(scalar, off, n);
                double[] ref = reference(x, off, n);
                double sum = 0;
                for (int i = 0; i < n; i++) {
                    String what = "n " + n + " off " + off + " [" + i + "]";
                    Numerics.assertClose(ref[i], fast[off + i], 1e-8, 1e-5, what);
                    Numerics.assertClose(ref[i], scalar[off + i], 1e-8, 1e-5, what + " scalar");
                    Numerics.assertClose(scalar[off + i], fast[off + i], 1e-8, 1e-5, what + " vs twin");
                    sum += fast[off + i];
                }
                if (n > 0) {
                    Numerics.assertClose(1.0, sum, 1e-5, 0, "sum n " + n);
                }
                // outside the range untouched
                for (int i = 0; i < off; i++) {
                    assertEquals(x[i], fast[i]);
                }
                assertEquals(x[off + n], fast[off + n]);
            }
        }
    }

    @Test
    void largeLogitsDoNotOverflowAndMaskedEntriesGetZero() {
        for (boolean vector : new boolean[] {true, false}) {
            float[] x = new float[19];
            for (int i = 0; i < x.length; i++) {
                x[i] = i % 3 == 0 ? Float.NEGATIVE_INFINITY : 1000f + i;
            }
            double[] ref = reference(x, 0, x.length);
            if (vector) {
                Softmax.softmaxInPlace(x, 0, x.length);
            } else {
                Softmax.softmaxInPlaceScalar(x, 0, x.length);
            }
            double sum = 0;
            for (int i = 0; i < x.length; i++) {
                if (i % 3 == 0) {
                    assertEquals(0f, x[i], "masked entry " + i);
                }
                sum += x[i];
            }
            Numerics.assertClose(1.0, sum, 1e-6, 0, "sum, vector " + vector);
            Numerics.assertClose(ref[17], x[17], 1e-8, 1e-5, "top, vector " + vector);
            Numerics.assertClose(ref[1], x[1], 1e-8, 1e-5, "bottom, vector " + vector);
        }
    }

    @Test
    void equalInputsGiveAUniformDistribution() {
        float[] x = new float[37];
        java.util.Arrays.fill(x, -3.25f);
        Softmax.softmaxInPlace(x, 0, 37);
        for (float p : x) {
            Numerics.assertClose(1.0 / 37, p, 1e-9, 1e-6, "uniform");
        }
    }

    @Test
    void vectorExpMatchesMathExpOnNonPositiveInputs() {
        // every 1/1024 from -90 to 0 (shifted by 3), unaligned, with a scalar tail
        int n = 90 * 1024 + 1;
        int off = 3;
        float[] x = new float[off + n + 1];
        for (int i = 0; i < n; i++) {
            x[off + i] = 3f - i / 1024f;
        }
        x[off + 5] = Float.NEGATIVE_INFINITY;
        float[] in = x.clone();
        float sum = Softmax.expShiftedInPlace(x, off, n, 3f);
        double worstUlps = 0;
        double refSum = 0;
        for (int i = 0; i < n; i++) {
            float y = in[off + i] - 3f;
            if (y < -87.33654f) {
                assertEquals(0f, x[off + i], "exp(" + y + ") flushes to 0");
                continue;
            }
            double ref = Math.exp(y);
            refSum += ref;
            worstUlps = Math.max(worstUlps, Math.abs(x[off + i] - ref) / Math.ulp((float) ref));
        }
        assertEquals(1f, x[off], "exp(0)");
        assertEquals(0f, x[off + 5], "exp(-inf)");
        assertEquals(in[0], x[0]);
        assertEquals(in[off + n], x[off + n]);
        org.junit.jupiter.api.Assertions.assertTrue(worstUlps <= 4, "worst error " + worstUlps + " ulp");
        Numerics.assertClose(refSum, sum, 0, 1e-5, "sum");
    }
}
