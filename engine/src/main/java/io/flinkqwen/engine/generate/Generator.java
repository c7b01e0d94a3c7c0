/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.generate;

import io.flinkqwen.engine.model.ContextOverflowException;
import io.flinkqwen.engine.model.KvCache;
import io.flinkqwen.engine.model.Qwen2Model;
import java.util.Arrays;

/**
 * Generates tokens for one sequence: prefill of the prompt, then one decode step per new token,
 * until a stop token, {@code maxNewTokens}, or the end of the context.
 */
public final class Generator {

    /** Receives each generated token as soon as it is sampled (stop tokens excluded). */
    @FunctionalInterface
    public interface TokenListener {
        void onToken(int id);
    }

    /** Why generation ended. */
    public enum StopReason {
        STOP_TOKEN,
        MAX_TOKENS,
        CONTEXT_FULL
    }

    /**
     * @param promptIds the prompt as given
     * @param ids the generated ids, without the stop token
     * @param stopReason why it ended
     * @param prefillNanos time of the prompt's forward pass (first token's latency, less sampling)
     * @param decodeNanos time of all later forward passes
     */
    public record Result(int[] promptIds, int[] ids, StopReason stopReason, long prefillNanos, long decodeNanos) {}

    private final Qwen2Model model;

    public Generator(Qwen2Model model) {
        this.model = model;
    }

    /**
     * @throws ContextOverflowException if the prompt alone does not fit the context
     */
    public Result generate(int[] prompt, SamplingParams params, TokenListener listener) {
        if (prompt.length == 0) {
            throw new IllegalArgumentException("the prompt is empty: give at least one token");
        }
        int maxPositions = model.config().maxPositionEmbeddings();
        if (prompt.length > maxPositions) {
            throw new ContextOverflowException(0, prompt.length, maxPositions);
        }
        KvCache cache = model.newCache(Math.min(maxPositions, prompt.length + params.maxNewTokens()));
        Sampler sampler = new Sampler(params);
        int vocab = model.config().vocabSize();
        int[] out = new int[Math.max(1, params.maxNewTokens())];
        int produced = 0;
        long t0 = System.nanoTime();
        float[] logits = params.maxNewTokens() == 0 ? null : model.forward(cache, prompt, 0, prompt.length);
        long t1 = System.nanoTime();
        StopReason reason = StopReason.MAX_TOKENS;
        int[] one = new int[1];
        while (produced < params.maxNewTokens()) {
            int next = sampler.sample(logits, vocab);
            if (params.isStop(next)) {
                reason = StopReason.STOP_TOKEN;
                break;
            }
            out[produced++] = next;
            if (listener != null) {
                listener.onToken(next);
            }
            if (produced == params.maxNewTokens()) {
                break;
            }
            if (cache.length() >= maxPositions) {
                reason = StopReason.CONTEXT_FULL;
                break;
            }
            one[0] = next;
            logits = model.forward(cache, one, 0, 1);
        }
        long t2 = System.nanoTime();
        return new Result(prompt.clone(), Arrays.copyOf(out, produced), reason, t1 - t0, t2 - t1);
    }
}
