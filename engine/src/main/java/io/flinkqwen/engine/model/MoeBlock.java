/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.model;

import io.flinkqwen.engine.config.Qwen2MoeConfig;
import io.flinkqwen.kernels.KernelPool;
import io.flinkqwen.kernels.Router;
import io.flinkqwen.kernels.VectorOps;
import io.flinkqwen.kernels.WeightMatrix;
import io.flinkqwen.kernels.backend.KernelBackend;

/**
 * The Qwen2-MoE feed-forward block (HF {@code Qwen2MoeSparseMoeBlock}, llama.cpp {@code
 * qwen2moe}): router softmax over all experts, top-k, the k weights renormalised only if {@code
 * norm_topk_prob}, the routed experts' SwiGLU outputs summed with those weights, plus the shared
 * expert scaled by {@code sigmoid(shared_expert_gate . x)}.
 *
 * <p>Expert-grouped: the tokens of a chunk routed to one expert are gathered and go through that
 * expert's matrices together, so a prefill reads each active expert's weights once per chunk,
 * not once per token. All experts' gate/up products go to the pool as one job ({@link
 * MatMul#matMulEach}, split by work since experts get different token counts), their down
 * products as another: two hand-offs per layer, not two per active expert.
 *
 * <p>Holds the scratch for up to {@code maxChunk} tokens; not thread-safe, like {@link Qwen2Model}.
 */
final class MoeBlock {

    private final KernelBackend ops;
    private final KernelPool pool;
    private final int hidden;
    private final int experts;
    private final int topK;
    private final boolean normTopkProb;
    private final RouterStats stats;

    private final float[] routerLogits; // (n, experts)
    private final int[] chosen; // (n, topK) expert ids
    private final float[] chosenWeight; // (n, topK) routing weights
    private final int[] count; // (experts) tokens routed to each expert in this chunk
    private final int[][] tokenOf; // (experts, n) which tokens
    private final float[][] weightOf; // (experts, n) with which weight
    private final float[] gate; // (n, max(moe, shared) intermediate)
    private final float[] up; // (n, max(moe, shared) intermediate)

    // a chunk: per slot (shared expert, then each active expert) its ffn, input, token count
    // and buffers; per expert its buffers, grown to the most tokens it has been routed
    private final Qwen2Weights.SwiGluFfn[] slotFfn;
    private final float[][] slotIn;
    private final int[] slotTokens;
    private final float[][] slotGate;
    private final float[][] slotUp;
    private final float[][] slotDown;
    private final WeightMatrix[] eachMatrix;
    private final float[][] eachOut;
    private final float[][] eachIn;
    private final int[] eachTokens;
    private final float[][] expertIn;
    private final float[][] expertGate;
    private final float[][] expertUp;
    private final float[][] expertDown;
    private final int[] swiGluElements; // per slot: its tokens times its ffn size
    private final float[] sharedScale; // (n) sigmoid(shared_expert_gate . x) per token
    private final Combine combine = new Combine();

    MoeBlock(Qwen2MoeConfig c, KernelBackend ops, KernelPool pool, int maxChunk) {
        this.ops = ops;
        this.pool = pool;
        this.hidden = c.hiddenSize();
        this.experts = c.numExperts();
        this.topK = c.numExpertsPerTok();
        this.normTopkProb = c.normTopkProb();
        this.stats = new RouterStats(c.numHiddenLayers(), Math.max(1, experts));
        int ffn = Math.max(c.moeIntermediateSize(), c.sharedExpertIntermediateSize());
        routerLogits = new float[maxChunk * experts];
        chosen = new int[maxChunk * topK];
        chosenWeight = new float[maxChunk * topK];
        count = new int[experts];
        tokenOf = new int[experts][maxChunk];
        weightOf = new float[experts][maxChunk];
        gate = new float[maxChunk * ffn];
        up = new float[maxChunk * ffn];
        slotFfn = new Qwen2Weights.SwiGluFfn[experts + 1];
        slotIn = new float[experts + 1][];
        slotTokens = new int[experts + 1];
        slotGate = new float[experts + 1][];
        slotUp = new float[experts + 1][];
        slotDown = new float[experts + 1][];
        eachMatrix = new WeightMatrix[2 * (experts + 1)];
        eachOut = new float[2 * (experts + 1)][];
        eachIn = new float[2 * (experts + 1)][];
        eachTokens = new int[2 * (experts + 1)];
        expertIn = new float[experts][];
        expertGate = new float[experts][];
        expertUp = new float[experts][];
        expertDown = new float[experts][];
        swiGluElements = new int[experts + 1];
        sharedScale = new float[maxChunk];
    }

    /** Below this many products (tokens x (top-k + 1) x hidden) the combine runs on the calling thread. */
    private static final long COMBINE_ON_POOL = 1 << 16;

    /**
     * Columns {@code [d0, d1)} of every token's output: the shared expert's, scaled, plus the
     * routed experts' by ascending id, each weighted. Each element sees the same operations in
     * the same order however the columns are cut, so the result does not depend on the pool.
     */
    private final class Combine implements KernelPool.RangeTask {
        float[] out;
        int n;

        @Override
        public void run(int d0, int d1, int worker) {
            int width = d1 - d0;
            for (int t = 0; t < n; t++) {
                VectorOps.scaleInPlace(out, t * hidden + d0, width, sharedScale[t]);
            }
            for (int slot = 1, e = 0; e < experts; e++) {
                int m = count[e];
                if (m == 0) {
                    continue;
                }
                float[] expertOut = slotDown[slot++];
                for (int i = 0; i < m; i++) {
                    int o = tokenOf[e][i] * hidden;
                    int eo = i * hidden;
                    float weight = weightOf[e][i];
                    for (int d = d0; d < d1; d++) {
                        out[o + d] += weight * expertOut[eo + d];
                    }
                }
            }
        }
    }

    RouterStats stats() {
        return stats;
    }

    /**
     * {@code out = moe(x)} for {@code n} normed rows of {@code x} (n, hidden); {@code out} (n,
     * hidden) is overwritten. Counts the routing of layer {@code layer} in the stats.
     */
    void forward(Qwen2Weights.MoeFfn w, int layer, float[] out, float[] x, int n) {
        // router logits, (n, experts)
        ops.matMul(pool, routerLogits, w.router, x, n);
        // route each token: softmax over all experts, then top-k
        ops.routerTopK(routerLogits, experts, topK, normTopkProb, chosen, chosenWeight, n);
        for (int t = 0; t < n; t++) {
            stats.margin(t, n, topKMargin(routerLogits, t * experts, t * topK));
        }
        // group the chunk's tokens by expert
        java.util.Arrays.fill(count, 0);
        for (int t = 0; t < n; t++) {
            for (int j = 0; j < topK; j++) {
                int e = chosen[t * topK + j];
                tokenOf[e][count[e]] = t;
                weightOf[e][count[e]] = chosenWeight[t * topK + j];
                count[e]++;
            }
        }
        // slot 0 the shared expert on all n tokens, then each active expert on its tokens:
        // their gate/up projections in one pool hand-off, their down projections in another
        int slots = 0;
        slotFfn[slots] = w.shared;
        slotIn[slots] = x;
        slotTokens[slots] = n;
        slotGate[slots] = gate;
        slotUp[slots] = up;
        slotDown[slots] = out; // the shared expert writes out first
        slots++;
        for (int e = 0; e < experts; e++) {
            int m = count[e];
            if (m == 0) {
                continue;
            }
            stats.add(layer, e, m);
            Qwen2Weights.SwiGluFfn f = w.experts[e];
            float[] in = grown(expertIn, e, m * hidden);
            for (int i = 0; i < m; i++) {
                System.arraycopy(x, tokenOf[e][i] * hidden, in, i * hidden, hidden);
            }
            slotFfn[slots] = f;
            slotIn[slots] = in;
            slotTokens[slots] = m;
            slotGate[slots] = grown(expertGate, e, m * f.ffnSize());
            slotUp[slots] = grown(expertUp, e, m * f.ffnSize());
            slotDown[slots] = grown(expertDown, e, m * hidden);
            slots++;
        }
        for (int i = 0; i < slots; i++) {
            eachMatrix[2 * i] = slotFfn[i].gate;
            eachMatrix[2 * i + 1] = slotFfn[i].up;
            eachOut[2 * i] = slotGate[i];
            eachOut[2 * i + 1] = slotUp[i];
            eachIn[2 * i] = slotIn[i];
            eachIn[2 * i + 1] = slotIn[i];
            eachTokens[2 * i] = slotTokens[i];
            eachTokens[2 * i + 1] = slotTokens[i];
        }
        ops.matMulEach(pool, eachOut, eachMatrix, eachIn, eachTokens, 2 * slots);
        for (int i = 0; i < slots; i++) {
            swiGluElements[i] = slotTokens[i] * slotFfn[i].ffnSize();
        }
        // on the pool: on the calling thread alone, this and the combine below kept the other
        // workers idle for about 4% of a 128-token chunk (2.2 of 56 ms per layer, A2.7B at half width)
        ops.swiGluEach(pool, slotGate, slotGate, slotUp, swiGluElements, slots);
        for (int i = 0; i < slots; i++) {
            eachMatrix[i] = slotFfn[i].down;
            eachOut[i] = slotDown[i];
            eachIn[i] = slotGate[i];
            eachTokens[i] = slotTokens[i];
        }
        ops.matMulEach(pool, eachOut, eachMatrix, eachIn, eachTokens, slots);
        // shared expert scaled by sigmoid(shared_expert_gate . x), then the experts by ascending id
        for (int t = 0; t < n; t++) {
            float g = VectorOps.dot(w.sharedGate, 0, x, t * hidden, hidden);
            sharedScale[t] = (float) (1.0 / (1.0 + Math.exp(-g)));
        }
        combine.out = out;
        combine.n = n;
        if ((long) n * (topK + 1) * hidden < COMBINE_ON_POOL) {
            combine.run(0, hidden, 0);
        } else {
            pool.parallelFor(hidden, combine);
        }
        combine.out = null;
        java.util.Arrays.fill(slotFfn, null);
        java.util.Arrays.fill(slotIn, null);
        java.util.Arrays.fill(eachMatrix, null);
        java.util.Arrays.fill(eachIn, null);
    }

    /** {@code buffers[e]}, grown to at least {@code n} floats (once per new high-water mark). */
    private static float[] grown(float[][] buffers, int e, int n) {
        if (buffers[e] == null || buffers[e].length < n) {
            buffers[e] = new float[n];
        }
        return buffers[e];
    }

    /**
     * Routes one token as HF {@code Qwen2MoeSparseMoeBlock} does ({@link Router#route}, the
     * kernel every backend's router mirrors): softmax over all experts, the top k, renormalised
     * only if {@code normTopkProb}.
     */
    static void route(
            float[] logits, int off, int experts, int k, boolean normTopkProb, int[] ids, float[] weights, int outOff) {
        Router.route(logits, off, experts, k, normTopkProb, ids, weights, outOff);
    }

    /** The k-th largest logit minus the largest one not chosen. */
    private float topKMargin(float[] logits, int off, int chosenOff) {
        if (topK == experts) {
            return Float.POSITIVE_INFINITY;
        }
        float kth = logits[off + chosen[chosenOff + topK - 1]];
        float next = Float.NEGATIVE_INFINITY;
        for (int e = 0; e < experts; e++) {
            if (!isChosen(chosen, chosenOff, topK, e)) {
                next = Math.max(next, logits[off + e]);
            }
        }
        return kth - next;
    }

    private static boolean isChosen(int[] ids, int off, int n, int e) {
        return Router.isChosen(ids, off, n, e);
    }
}
