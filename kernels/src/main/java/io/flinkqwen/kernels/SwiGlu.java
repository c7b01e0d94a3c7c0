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

    private static final ThreadLocal<EachTask> EACH_TASKS = ThreadLocal.withInitial(EachTask::new);

    /** Below this many elements {@link #swiGluEach} runs on the calling thread. */
    static final int EACH_ON_POOL = 1 << 15;

    /**
     * {@link #swiGlu} of {@code outs[i]}, {@code gates[i]}, {@code ups[i]} over their first
     * {@code ns[i]} elements, for {@code i < count}, the elements of all of them cut into
     * pieces for the pool's workers (a MoE layer's shared expert and routed experts in one
     * hand-off); each element as {@link #swiGlu} computes it alone. Allocates nothing.
     */
    public static void swiGluEach(KernelPool pool, float[][] outs, float[][] gates, float[][] ups, int[] ns, int count) {
        long total = 0;
        for (int i = 0; i < count; i++) {
            total += ns[i];
        }
        if (total == 0) {
            return;
        }
        EachTask task = EACH_TASKS.get();
        task.set(outs, gates, ups, ns, count);
        try {
            if (total < EACH_ON_POOL) {
                task.run(0, (int) total, 0); // a decode step's experts: less than a hand-off costs
            } else {
                pool.parallelFor(Math.toIntExact(total), task);
            }
        } finally {
            task.set(null, null, null, null, 0);
        }
    }

    /** The elements of several arrays as one range, cut at array borders. */
    private static final class EachTask implements KernelPool.RangeTask {
        private float[][] outs;
        private float[][] gates;
        private float[][] ups;
        private int[] ns;
        private int count;

        void set(float[][] outs, float[][] gates, float[][] ups, int[] ns, int count) {
            this.outs = outs;
            this.gates = gates;
            this.ups = ups;
            this.ns = ns;
            this.count = count;
        }

        @Override
        public void run(int start, int end, int worker) {
            int base = 0;
            for (int i = 0; i < count && base < end; i++) {
                int lo = Math.max(start, base);
                int hi = Math.min(end, base + ns[i]);
                if (lo < hi) {
                    swiGlu(outs[i], lo - base, gates[i], lo - base, ups[i], lo - base, hi - lo);
                }
                base += ns[i];
            }
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
