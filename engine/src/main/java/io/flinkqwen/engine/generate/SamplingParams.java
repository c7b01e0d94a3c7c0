/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.generate;

import java.util.Arrays;

/**
 * How to pick the next token and when to stop. Greedy ({@code temperature == 0}) and seeded
 * sampling are deterministic: the same prompt, parameters and seed give the same ids, which
 * exactly-once replay in the Flink operator relies on.
 *
 * @param temperature 0 for greedy (argmax, ties to the lowest id); otherwise logits are divided
 *     by it before top-k / top-p
 * @param topK keep only the k most likely tokens; 0 disables
 * @param topP keep the smallest set of most likely tokens whose probability sum reaches p; 1
 *     disables
 * @param seed seed of the sampler's random stream
 * @param maxNewTokens stop after this many generated tokens
 * @param stopTokens ids that end generation (not included in the output)
 */
public record SamplingParams(
        float temperature, int topK, float topP, long seed, int maxNewTokens, int[] stopTokens) {

    public SamplingParams {
        if (!(temperature >= 0) || Float.isInfinite(temperature)) {
            throw new IllegalArgumentException("temperature must be >= 0 and finite, got " + temperature);
        }
        if (topK < 0) {
            throw new IllegalArgumentException("top-k must be >= 0 (0 disables), got " + topK);
        }
        if (!(topP > 0 && topP <= 1)) {
            throw new IllegalArgumentException("top-p must be in (0, 1], got " + topP);
        }
        if (maxNewTokens < 0) {
            throw new IllegalArgumentException("max new tokens must be >= 0, got " + maxNewTokens);
        }
        stopTokens = stopTokens == null ? new int[0] : stopTokens.clone();
    }

    /** Greedy decoding of at most {@code maxNewTokens}, stopping at {@code stopTokens}. */
    public static SamplingParams greedy(int maxNewTokens, int... stopTokens) {
        return new SamplingParams(0f, 0, 1f, 0L, maxNewTokens, stopTokens);
    }

    public boolean isGreedy() {
        return temperature == 0f;
    }

    public boolean isStop(int id) {
        for (int s : stopTokens) {
            if (s == id) {
                return true;
            }
        }
        return false;
    }

    @Override
    public int[] stopTokens() {
        return stopTokens.clone();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof SamplingParams
                && ((SamplingParams) o).temperature == temperature
                && ((SamplingParams) o).topK == topK
                && ((SamplingParams) o).topP == topP
                && ((SamplingParams) o).seed == seed
                && ((SamplingParams) o).maxNewTokens == maxNewTokens
                && Arrays.equals(((SamplingParams) o).stopTokens, stopTokens);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(new Object[] {temperature, topK, topP, seed, maxNewTokens})
                * 31 + Arrays.hashCode(stopTokens);
    }

    @Override
    public String toString() {
        return String.format(
                "SamplingParams[temperature=%s, topK=%d, topP=%s, seed=%d, maxNewTokens=%d, stopTokens=%s]",
                temperature, topK, topP, seed, maxNewTokens, Arrays.toString(stopTokens));
    }
}
