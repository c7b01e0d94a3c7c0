/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels;

/**
 * The MoE router's choice for one token, as HF {@code Qwen2MoeSparseMoeBlock} makes it. Scalar
 * only: it touches {@code experts} floats per token (64 in Qwen2-57B-A14B), nothing to vectorise.
 */
public final class Router {

    private Router() {}

    /**
     * {@code p = softmax(logits)} over all {@code experts} (in float), the {@code k} largest
     * {@code p} (ties: the lower expert id first), and only if {@code normTopkProb} the k weights
     * divided by their sum. Without renormalisation the weights are the softmax probabilities
     * themselves and sum to less than 1.
     *
     * @param ids receives the k expert ids at {@code outOff}, by descending weight
     * @param weights receives their routing weights at {@code outOff}
     */
    public static void route(
            float[] logits, int off, int experts, int k, boolean normTopkProb, int[] ids, float[] weights, int outOff) {
        float max = Float.NEGATIVE_INFINITY;
        for (int e = 0; e < experts; e++) {
            max = Math.max(max, logits[off + e]);
        }
        float sum = 0;
        for (int e = 0; e < experts; e++) {
            sum += (float) Math.exp(logits[off + e] - max);
        }
        // top-k by logit: softmax is monotonic, so the order is the same as by probability
        float picked = 0;
        for (int j = 0; j < k; j++) {
            int best = -1;
            for (int e = 0; e < experts; e++) {
                if (isChosen(ids, outOff, j, e)) {
                    continue;
                }
                if (best < 0 || logits[off + e] > logits[off + best]) {
                    best = e;
                }
            }
            ids[outOff + j] = best;
            weights[outOff + j] = (float) Math.exp(logits[off + best] - max) / sum;
            picked += weights[outOff + j];
        }
        // norm_topk_prob: renormalise the k weights to sum 1 (Qwen's released MoE configs: false)
        if (normTopkProb) {
            for (int j = 0; j < k; j++) {
                weights[outOff + j] /= picked;
            }
        }
    }

    /** Whether expert {@code e} is among {@code ids[off .. off + n)}. */
    public static boolean isChosen(int[] ids, int off, int n, int e) {
        for (int j = 0; j < n; j++) {
            if (ids[off + j] == e) {
                return true;
            }
        }
        return false;
    }
}
