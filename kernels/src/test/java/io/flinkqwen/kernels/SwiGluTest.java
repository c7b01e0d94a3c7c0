/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

/** silu(g) * up: a few roundings and an exp per element, so {@code 1e-7 + 2e-6 * |ref|}. */
class SwiGluTest {

    @Test
    void swiGluMatchesScalarTwinAndFloat64() {
        Random rnd = new Random(1);
        for (int n : Numerics.SIZES) {
            for (int off : Numerics.OFFSETS) {
                float[] gate = Numerics.uniform(rnd, off + n, 12f);
                float[] up = Numerics.uniform(rnd, 2 + n, 2f);
                float[] fast = new float[1 + n];
                float[] scalar = new float[1 + n];
                SwiGlu.swiGlu(fast, 1, gate, off, up, 2, n);
                SwiGlu.swiGluScalar(scalar, 1, gate, off, up, 2, n);
                for (int i = 0; i < n; i++) {
                    double g = gate[off + i];
                    double ref = g / (1 + Math.exp(-g)) * up[2 + i];
                    String what = "n " + n + " off " + off + " [" + i + "]";
                    Numerics.assertClose(ref, fast[1 + i], 1e-7, 2e-6, what);
                    Numerics.assertClose(ref, scalar[1 + i], 1e-7, 2e-6, what + " scalar");
                    Numerics.assertClose(scalar[1 + i], fast[1 + i], 1e-7, 2e-6, what + " vs twin");
                }
            }
        }
    }

    @Test
    void swiGluEachCutsTheArraysOverThePoolWithoutChangingABit() {
        Random rnd = new Random(3);
        int[] ns = {7, 40000, 0, 1, 999};
        assertTrue(java.util.Arrays.stream(ns).sum() >= SwiGlu.EACH_ON_POOL, "enough elements for the pool");
        for (int threads : new int[] {1, 2, 3}) {
            float[][] outs = new float[ns.length][];
            float[][] gates = new float[ns.length][];
            float[][] ups = new float[ns.length][];
            for (int i = 0; i < ns.length; i++) {
                gates[i] = Numerics.uniform(rnd, ns[i], 6f);
                ups[i] = Numerics.uniform(rnd, ns[i], 1f);
                outs[i] = new float[ns[i] + 1];
                outs[i][ns[i]] = 42f; // past the end: untouched
            }
            try (KernelPool pool = new KernelPool(threads)) {
                SwiGlu.swiGluEach(pool, outs, gates, ups, ns, ns.length);
            }
            for (int i = 0; i < ns.length; i++) {
                float[] want = new float[ns[i]];
                SwiGlu.swiGlu(want, 0, gates[i], 0, ups[i], 0, ns[i]);
                Numerics.assertSameBits(want, 0, outs[i], 0, ns[i], "array " + i + ", " + threads + " threads");
                assertEquals(42f, outs[i][ns[i]], "array " + i + " past its end");
            }
        }
    }

    @Test
    void swiGluMayWriteOverTheGate() {
        Random rnd = new Random(2);
        float[] gate = Numerics.uniform(rnd, 45, 5f);
        float[] up = Numerics.uniform(rnd, 45, 1f);
        float[] out = new float[45];
        SwiGlu.swiGlu(out, 0, gate, 0, up, 0, 45);
        SwiGlu.swiGlu(gate, 0, gate, 0, up, 0, 45);
        Numerics.assertSameBits(out, 0, gate, 0, 45, "in place");
    }

    @Test
    void extremeGatesStayFinite() {
        float[] gate = new float[17];
        float[] up = new float[17];
        for (int i = 0; i < 17; i++) {
            gate[i] = i % 2 == 0 ? -200f : 200f;
            up[i] = 1f;
        }
        float[] out = new float[17];
        SwiGlu.swiGlu(out, 0, gate, 0, up, 0, 17);
        for (int i = 0; i < 17; i++) {
            assertFalse(Float.isNaN(out[i]), "NaN at " + i);
            assertEquals(i % 2 == 0 ? 0f : 200f, Math.abs(out[i]), 1e-6f);
        }
    }
}
