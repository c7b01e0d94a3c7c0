/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels;

import static org.junit.jupiter.api.Assertions.fail;

import java.util.Random;

/**
 * Test helpers: random data and llm.c-style {@code validate_result} comparisons, where a value
 * passes if {@code |actual - expected| <= abs + rel * |expected|}.
 */
final class Numerics {

    /** Sizes that hit every tail length for vectors of 4, 8 and 16 floats, and then some. */
    static final int[] SIZES = {0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 257, 1000};

    /** Array offsets: aligned and not. */
    static final int[] OFFSETS = {0, 1, 5};

    private Numerics() {}

    /** Uniform in {@code [-scale, scale)}. */
    static float[] uniform(Random rnd, int n, float scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (rnd.nextFloat() * 2f - 1f) * scale;
        }
        return a;
    }

    static void assertClose(double expected, double actual, double abs, double rel, String what) {
        double err = Math.abs(actual - expected);
        if (!(err <= abs + rel * Math.abs(expected))) { // also fails on NaN
            fail(String.format(
                    "%s: expected %.9g, got %.9g (error %.3g > abs %.3g + rel %.3g * |expected|)",
                    what, expected, actual, err, abs, rel));
        }
    }

    static void assertClose(
            float[] expected, int eOff, float[] actual, int aOff, int n, double abs, double rel, String what) {
        for (int i = 0; i < n; i++) {
            assertClose(expected[eOff + i], actual[aOff + i], abs, rel, what + " [" + i + "]");
        }
    }

    /** Bitwise equality (NaN payloads included), for kernels whose twins do the same float ops. */
    static void assertSameBits(float[] expected, int eOff, float[] actual, int aOff, int n, String what) {
        for (int i = 0; i < n; i++) {
            int e = Float.floatToRawIntBits(expected[eOff + i]);
            int a = Float.floatToRawIntBits(actual[aOff + i]);
            if (e != a) {
                fail(String.format("%s [%d]: expected %s (0x%08x), got %s (0x%08x)",
                        what, i, expected[eOff + i], e, actual[aOff + i], a));
            }
        }
    }
}
