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
 * Element-wise ops do the same float operation per element in both twins, so they must agree bit
 * for bit; the dot product sums in a different order, so it is compared with a tolerance of
 * {@code 1e-5 * sqrt(n) + 1e-5 * |ref|} (terms in [-1, 1)).
 */
class VectorOpsTest {

    @Test
    void addInPlaceMatchesScalarTwinBitForBit() {
        Random rnd = new Random(1);
        for (int n : Numerics.SIZES) {
            for (int accOff : Numerics.OFFSETS) {
                for (int xOff : Numerics.OFFSETS) {
                    float[] acc = Numerics.uniform(rnd, accOff + n + 3, 1f);
                    float[] x = Numerics.uniform(rnd, xOff + n + 3, 1f);
                    float[] expected = acc.clone();
                    VectorOps.addInPlaceScalar(expected, accOff, x, xOff, n);
                    VectorOps.addInPlace(acc, accOff, x, xOff, n);
                    Numerics.assertSameBits(expected, 0, acc, 0, acc.length, "n " + n); // incl. untouched ends
                }
            }
        }
    }

    @Test
    void addInPlaceOfARangeToItselfDoubles() {
        float[] a = {1f, 2f, 3f, 4f, 5f, 6f, 7f, 8f, 9f, 10f, 11f};
        VectorOps.addInPlace(a, 1, a, 1, 10);
        assertEquals(1f, a[0]);
        for (int i = 1; i < 11; i++) {
            assertEquals(2f * (i + 1), a[i]);
        }
    }

    @Test
    void scaleInPlaceMatchesScalarTwinBitForBit() {
        Random rnd = new Random(2);
        for (int n : Numerics.SIZES) {
            for (int off : Numerics.OFFSETS) {
                float[] x = Numerics.uniform(rnd, off + n + 2, 10f);
                float[] expected = x.clone();
                VectorOps.scaleInPlaceScalar(expected, off, n, 0.37f);
                VectorOps.scaleInPlace(x, off, n, 0.37f);
                Numerics.assertSameBits(expected, 0, x, 0, x.length, "n " + n + " off " + off);
            }
        }
    }

    @Test
    void addBiasAddsTheSameBiasToEveryToken() {
        Random rnd = new Random(3);
        for (int dim : new int[] {1, 7, 16, 33, 128}) {
            for (int nTokens : new int[] {1, 2, 5}) {
                float[] acc = Numerics.uniform(rnd, 2 + dim * nTokens, 1f);
                float[] bias = Numerics.uniform(rnd, 3 + dim, 1f);
                float[] expected = acc.clone();
                for (int t = 0; t < nTokens; t++) {
                    for (int i = 0; i < dim; i++) {
                        expected[2 + t * dim + i] += bias[3 + i];
                    }
                }
                float[] scalar = acc.clone();
                VectorOps.addBiasScalar(scalar, 2, bias, 3, dim, nTokens);
                VectorOps.addBias(acc, 2, bias, 3, dim, nTokens);
                Numerics.assertSameBits(expected, 0, acc, 0, acc.length, "dim " + dim + " tokens " + nTokens);
                Numerics.assertSameBits(expected, 0, scalar, 0, acc.length, "scalar dim " + dim);
            }
        }
    }

    @Test
    void dotMatchesScalarTwinAndFloat64() {
        Random rnd = new Random(4);
        for (int n : Numerics.SIZES) {
            for (int aOff : Numerics.OFFSETS) {
                for (int bOff : Numerics.OFFSETS) {
                    float[] a = Numerics.uniform(rnd, aOff + n, 1f);
                    float[] b = Numerics.uniform(rnd, bOff + n, 1f);
                    double ref = 0;
                    for (int i = 0; i < n; i++) {
                        ref += (double) a[aOff + i] * b[bOff + i];
                    }
                    double abs = 1e-5 * Math.sqrt(n);
                    float fast = VectorOps.dot(a, aOff, b, bOff, n);
                    float scalar = VectorOps.dotScalar(a, aOff, b, bOff, n);
                    Numerics.assertClose(ref, fast, abs, 1e-5, "dot n " + n);
                    Numerics.assertClose(ref, scalar, abs, 1e-5, "dotScalar n " + n);
                    Numerics.assertClose(scalar, fast, abs, 1e-5, "dot vs twin n " + n);
                }
            }
        }
    }
}
