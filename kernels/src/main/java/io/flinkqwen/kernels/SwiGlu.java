/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels;

import static io.flinkqwen.kernels.Simd.F;
import static io.flinkqwen.kernels.Simd.L;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

/** The gated activation of the Qwen2 MLP: {@code silu(gate) * up}. */
public final class SwiGlu {

    private SwiGlu() {}

    /**
     * {@code out[outOff + i] = g / (1 + exp(-g)) * up[upOff + i]} with {@code g = gate[gateOff +
     * i]}, for {@code i < n}. {@code out} may be {@code gate} or {@code up} at the same offset.
     * Very negative gates give {@code -0}, not NaN.
     */
    public static void swiGlu(float[] out, int outOff, float[] gate, int gateOff, float[] up, int upOff, int n) {
        int i = 0;
        for (int upper = F.loopBound(n); i < upper; i += L) {
            FloatVector g = FloatVector.fromArray(F, gate, gateOff + i);
            FloatVector silu = g.div(g.neg().lanewise(VectorOperators.EXP).add(1f));
            silu.mul(FloatVector.fromArray(F, up, upOff + i)).intoArray(out, outOff + i);
        }
        for (; i < n; i++) {
            out[outOff + i] = silu(gate[gateOff + i]) * up[upOff + i];
        }
    }

    /** Scalar twin of {@link #swiGlu}, with {@link Math#exp}. */
    public static void swiGluScalar(float[] out, int outOff, float[] gate, int gateOff, float[] up, int upOff, int n) {
        for (int i = 0; i < n; i++) {
            out[outOff + i] = silu(gate[gateOff + i]) * up[upOff + i];
        }
    }

    private static float silu(float g) {
        return g / (1f + (float) Math.exp(-g));
    }
}
