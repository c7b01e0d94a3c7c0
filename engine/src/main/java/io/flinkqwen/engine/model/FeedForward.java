/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.model;

import io.flinkqwen.kernels.KernelPool;
import io.flinkqwen.kernels.backend.KernelBackend;

/** The SwiGLU feed-forward block, once: a dense layer's FFN, each routed expert, the shared expert. */
final class FeedForward {

    /** The (gate, up) output pair handed to the kernels, reused so a call does not allocate. */
    private static final ThreadLocal<float[][]> GATE_UP = ThreadLocal.withInitial(() -> new float[2][]);

    private FeedForward() {}

    /**
     * {@code out = down(silu(gate(x)) * up(x))} for {@code n} rows of {@code x} (n, hidden); every
     * weight row is read once for all {@code n} rows.
     *
     * @param gate scratch of at least {@code n * ffn} floats, overwritten
     * @param up scratch of at least {@code n * ffn} floats, overwritten
     * @param out (n, hidden), overwritten
     */
    static void swiGlu(
            KernelBackend ops, KernelPool pool, Qwen2Weights.SwiGluFfn w, float[] out, float[] x, int n, float[] gate, float[] up) {
        // gate and up read the same x: one hand-off to the pool for both
        float[][] gateUp = GATE_UP.get();
        gateUp[0] = gate;
        gateUp[1] = up;
        try {
            ops.matMulMany(pool, gateUp, w.gateUp, x, n);
        } finally {
            gateUp[0] = null;
            gateUp[1] = null;
        }
        ops.swiGlu(gate, gate, up, n * w.ffnSize());
        ops.matMul(pool, out, w.down, gate, n);
    }
}
