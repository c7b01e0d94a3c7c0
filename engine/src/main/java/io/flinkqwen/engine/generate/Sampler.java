/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.generate;

import java.util.SplittableRandom;

/**
 * Picks the next token from logits: greedy, or temperature, then top-k, then top-p (the order of
 * Hugging Face's logits warpers), then one draw from a seeded {@link SplittableRandom}, whose
 * stream is the same on every JVM. One sampler per sequence; not thread-safe. Buffers are
 * allocated once, so sampling does not allocate per token.
 */
public final class Sampler {

    private final SamplingParams params;
    private final SplittableRandom random;
    private int[] candidates = new int[0];
    private float[] probs = new float[0];

    public Sampler(SamplingParams params) {
        this.params = params;
        this.random = new SplittableRandom(params.seed());
    }

    /** The next token after {@code logits[0, vocab)}; {@code logits} is not modified. */
    public int sample(float[] logits, int vocab) {
        return sample(logits, 0, vocab);
    }

    /**
     * The next token (an id in {@code [0, vocab)}) after {@code logits[off, off + vocab)}, e.g. one
     * row of a batch's logits, without copying it; {@code logits} is not modified.
     */
    public int sample(float[] logits, int off, int vocab) {
        if (params.isGreedy()) {
            return argmax(logits, off, vocab);
        }
        if (candidates.length < vocab) {
            candidates = new int[vocab];
            probs = new float[vocab];
        }
        int n = params.topK() > 0 ? topK(logits, off, vocab, Math.min(params.topK(), vocab)) : topK(logits, off, vocab, vocab);
        // candidates[0, n) are sorted by logit, highest first; softmax at the temperature
        float inv = 1f / params.temperature();
        float max = logits[off + candidates[0]];
        double sum = 0;
        for (int i = 0; i < n; i++) {
            float p = (float) Math.exp((logits[off + candidates[i]] - max) * inv);
            probs[i] = p;
            sum += p;
        }
        // top-p: smallest prefix whose mass reaches p
        int keep = n;
        if (params.topP() < 1f) {
            double cumulative = 0;
            for (int i = 0; i < n; i++) {
                cumulative += probs[i] / sum;
                if (cumulative >= params.topP()) {
                    keep = i + 1;
                    break;
                }
            }
            sum = 0;
            for (int i = 0; i < keep; i++) {
                sum += probs[i];
            }
        }
        double r = random.nextDouble() * sum;
        double acc = 0;
        for (int i = 0; i < keep; i++) {
            acc += probs[i];
            if (r < acc) {
                return candidates[i];
            }
        }
        return candidates[keep - 1];
    }

    /**
     * The {@code topK} ids with the largest logits, best first (ties to the lower id); needs a
     * sampler made with {@code topK > 0}.
     */
    public int[] topCandidates(float[] logits, int vocab) {
        if (params.topK() <= 0) {
            throw new IllegalStateException("topCandidates needs top-k > 0");
        }
        if (candidates.length < vocab) {
            candidates = new int[vocab];
            probs = new float[vocab];
        }
        int n = topK(logits, 0, vocab, Math.min(params.topK(), vocab));
        return java.util.Arrays.copyOf(candidates, n);
    }

    /** Index of the largest logit; ties go to the lowest index. */
    public static int argmax(float[] logits, int vocab) {
        return argmax(logits, 0, vocab);
    }

    /**
     * Index (relative to {@code off}) of the largest of {@code logits[off, off + vocab)}; ties go
     * to the lowest index. For one row of a batch's logits.
     */
    public static int argmax(float[] logits, int off, int vocab) {
        int best = 0;
        float bestValue = logits[off];
        for (int i = 1; i < vocab; i++) {
            if (logits[off + i] > bestValue) {
                bestValue = logits[off + i];
                best = i;
            }
        }
        return best;
    }

    /** The k best ids of logits[off, off + vocab) into candidates[0, k), best first, via a min-heap of size k. */
    private int topK(float[] logits, int off, int vocab, int k) {
        int size = 0;
        for (int i = 0; i < vocab; i++) {
            if (size < k) {
                candidates[size] = i;
                siftUp(logits, off, size++);
            } else if (better(logits, off, i, candidates[0])) {
                candidates[0] = i;
                siftDown(logits, off, 0, size);
            }
        }
        // heap sort in place: repeatedly move the worst to the end, giving best-first order
        for (int end = size - 1; end > 0; end--) {
            int tmp = candidates[0];
            candidates[0] = candidates[end];
            candidates[end] = tmp;
            siftDown(logits, off, 0, end);
        }
        return size;
    }

    /** a ranks above b: larger logit, or equal logit and lower id. */
    private static boolean better(float[] logits, int off, int a, int b) {
        return logits[off + a] > logits[off + b] || (logits[off + a] == logits[off + b] && a < b);
    }

    // min-heap on "better": the root is the worst kept candidate
    private void siftUp(float[] logits, int off, int i) {
        while (i > 0) {
            int parent = (i - 1) >>> 1;
            if (better(logits, off, candidates[parent], candidates[i])) {
                swap(parent, i);
                i = parent;
            } else {
                return;
            }
        }
    }

    private void siftDown(float[] logits, int off, int i, int size) {
        while (true) {
            int l = 2 * i + 1;
            if (l >= size) {
                return;
            }
            int worst = l;
            int r = l + 1;
            if (r < size && better(logits, off, candidates[l], candidates[r])) {
                worst = r;
            }
            if (better(logits, off, candidates[i], candidates[worst])) {
                swap(i, worst);
                i = worst;
            } else {
                return;
            }
        }
    }

    private void swap(int a, int b) {
        int t = candidates[a];
        candidates[a] = candidates[b];
        candidates[b] = t;
    }
}
