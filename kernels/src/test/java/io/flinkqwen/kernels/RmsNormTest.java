/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels;

import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Both twins sum squares in float, in different orders: outputs (|out| up to ~10) must agree
 * with each other and with float64 within {@code 1e-6 + 1e-5 * |ref|}.
 */
class RmsNormTest {

    private static final float EPS = 1e-6f;

    private static float[] reference(float[] x, int xOff, float[] weight, int n) {
        double ss = 0;
        for (int i = 0; i < n; i++) {
            ss += (double) x[xOff + i] * x[xOff + i];
        }
        double scale = 1.0 / Math.sqrt(ss / n + EPS);
        float[] out = new float[n];
        for (int i = 0; i < n; i++) {
            out[i] = (float) (x[xOff + i] * scale * weight[i]);
        }
        return out;
    }

    @Test
    void rmsNormMatchesScalarTwinAndFloat64() {
        Random rnd = new Random(1);
        for (int n : Numerics.SIZES) {
            if (n == 0) {
                continue;
            }
            for (int xOff : Numerics.OFFSETS) {
                for (int outOff : Numerics.OFFSETS) {
                    float[] x = Numerics.uniform(rnd, xOff + n, 2f);
                    float[] weight = Numerics.uniform(rnd, n, 1.5f);
                    float[] fast = new float[outOff + n];
                    float[] scalar = new float[outOff + n];
                    RmsNorm.rmsNorm(fast, outOff, x, xOff, weight, n, EPS);
                    RmsNorm.rmsNormScalar(scalar, outOff, x, xOff, weight, n, EPS);
                    float[] ref = reference(x, xOff, weight, n);
                    String what = "n " + n + " xOff " + xOff + " outOff " + outOff;
                    Numerics.assertClose(ref, 0, fast, outOff, n, 1e-6, 1e-5, what);
                    Numerics.assertClose(ref, 0, scalar, outOff, n, 1e-6, 1e-5, what + " scalar");
                    Numerics.assertClose(scalar, outOff, fast, outOff, n, 1e-6, 1e-5, what + " vs twin");
                }
            }
        }
    }

    @Test
    void rmsNormInPlaceEqualsOutOfPlace() {
        Random rnd = new Random(2);
        for (int n : new int[] {1, 9, 64, 896, 1000}) {
            float[] x = Numerics.uniform(rnd, 3 + n, 2f);
            float[] weight = Numerics.uniform(rnd, n, 1f);
            float[] out = new float[n];
            RmsNorm.rmsNorm(out, 0, x, 3, weight, n, EPS);
            float[] inPlace = x.clone();
            RmsNorm.rmsNorm(inPlace, 3, inPlace, 3, weight, n, EPS);
            Numerics.assertSameBits(out, 0, inPlace, 3, n, "vector n " + n);
            RmsNorm.rmsNormScalar(out, 0, x, 3, weight, n, EPS);
            inPlace = x.clone();
            RmsNorm.rmsNormScalar(inPlace, 3, inPlace, 3, weight, n, EPS);
            Numerics.assertSameBits(out, 0, inPlace, 3, n, "scalar n " + n);
        }
    }

    @Test
    void epsKeepsAZeroVectorFinite() {
        float[] x = new float[20];
        float[] weight = new float[20];
        java.util.Arrays.fill(weight, 1f);
        float[] out = new float[20];
        RmsNorm.rmsNorm(out, 0, x, 0, weight, 20, EPS);
        Numerics.assertSameBits(new float[20], 0, out, 0, 20, "zeros");
    }
}
