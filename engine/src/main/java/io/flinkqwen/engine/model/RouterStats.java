/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.model;

/**
 * How a MoE model's router spread tokens over experts: per layer and expert, the tokens of the
 * last forward call and the cumulative count since creation (or {@link #reset()}). Each token
 * counts once for each of its top-k experts, so a layer's counts sum to {@code k * tokens}.
 * Dense layers count nothing.
 *
 * <p>Written by the model's forward pass; read it between calls (not thread-safe).
 */
public final class RouterStats {

    private final int[][] lastCall; // (layer, expert)
    private final long[][] cumulative; // (layer, expert)
    private float[] margins = new float[64]; // (token of the last call)
    private int callTokens; // tokens of the last call so far

    RouterStats(int layers, int experts) {
        lastCall = new int[layers][experts];
        cumulative = new long[layers][experts];
    }

    public int layers() {
        return cumulative.length;
    }

    public int experts() {
        return cumulative[0].length;
    }

    /** Tokens routed to {@code expert} of {@code layer} by the last forward call. */
    public int lastCallTokens(int layer, int expert) {
        return lastCall[layer][expert];
    }

    /** Tokens routed to {@code expert} of {@code layer} since creation or the last reset. */
    public long cumulativeTokens(int layer, int expert) {
        return cumulative[layer][expert];
    }

    /** A copy of the cumulative counts of {@code layer}, indexed by expert. */
    public long[] cumulativeTokens(int layer) {
        return cumulative[layer].clone();
    }

    /**
     * Routing confidence of each token of the last forward call: over the MoE layers, the
     * smallest gap between the k-th and the (k+1)-th largest router logit. A small gap means a
     * tiny change of the input (rounding in another implementation) can swap an expert.
     *
     * @return one value per token of the last call, in order ({@code +inf} if k = experts)
     */
    public float[] lastCallTopKMargins() {
        return java.util.Arrays.copyOf(margins, callTokens);
    }

    public void reset() {
        for (int l = 0; l < cumulative.length; l++) {
            java.util.Arrays.fill(cumulative[l], 0);
            java.util.Arrays.fill(lastCall[l], 0);
        }
    }

    /** Called at the start of a forward call: the last call's counts restart. */
    void startCall() {
        for (int[] l : lastCall) {
            java.util.Arrays.fill(l, 0);
        }
        callTokens = 0;
    }

    /** Called before the layers of a chunk of {@code n} tokens. */
    void startChunk(int n) {
        if (margins.length < callTokens + n) {
            margins = java.util.Arrays.copyOf(margins, Math.max(callTokens + n, 2 * margins.length));
        }
        java.util.Arrays.fill(margins, callTokens, callTokens + n, Float.POSITIVE_INFINITY);
        callTokens += n;
    }

    /** Token {@code t} of the current chunk had top-k margin {@code margin} in some layer. */
    void margin(int t, int chunkTokens, float margin) {
        int i = callTokens - chunkTokens + t;
        margins[i] = Math.min(margins[i], margin);
    }

    void add(int layer, int expert, int tokens) {
        lastCall[layer][expert] += tokens;
        cumulative[layer][expert] += tokens;
    }
}
