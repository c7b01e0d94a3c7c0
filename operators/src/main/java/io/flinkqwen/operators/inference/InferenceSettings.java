/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.inference;

import io.flinkqwen.engine.tokenizer.ChatMl;
import java.io.Serializable;
import java.nio.file.Path;
import java.util.Objects;
import org.apache.flink.annotation.PublicEvolving;

/**
 * The long-context operator's settings; serializable, shipped with the operator factory.
 *
 * @param modelPath a {@code .gguf} file or a Hugging Face folder, opened in {@code open()} on
 *     every task manager (so it must exist there)
 * @param modelName the name every result carries; null means the model path's file name
 * @param systemPrompt the ChatML system turn every key's history starts with
 * @param maxContextTokens the most tokens a prompt plus its answer may take; at most the
 *     model's {@code max_position_embeddings}
 * @param sinkTokens tokens right after the system turn that trimming keeps (attention sinks)
 * @param maxNewTokens the most tokens generated per event (greedy sampling)
 * @param maxSequences sequences the engine runs in one step
 * @param capacity requests in flight in the engine at most; more means backpressure
 * @param threads kernel threads of this operator instance's engine
 */
@PublicEvolving
public record InferenceSettings(
        String modelPath,
        String modelName,
        String systemPrompt,
        int maxContextTokens,
        int sinkTokens,
        int maxNewTokens,
        int maxSequences,
        int capacity,
        int threads)
        implements Serializable {

    public InferenceSettings {
        Objects.requireNonNull(modelPath, "modelPath");
        Objects.requireNonNull(systemPrompt, "systemPrompt");
        check(maxContextTokens >= 2, "maxContextTokens", maxContextTokens, ">= 2");
        check(sinkTokens >= 0, "sinkTokens", sinkTokens, ">= 0");
        check(maxNewTokens >= 1 && maxNewTokens < maxContextTokens, "maxNewTokens", maxNewTokens,
                "in [1, maxContextTokens = " + maxContextTokens + ")");
        check(maxSequences >= 1, "maxSequences", maxSequences, ">= 1");
        check(capacity >= maxSequences, "capacity", capacity, ">= maxSequences = " + maxSequences);
        check(threads >= 1, "threads", threads, ">= 1");
    }

    private static void check(boolean ok, String name, int value, String expected) {
        if (!ok) {
            throw new IllegalArgumentException(name + " must be " + expected + ", got " + value);
        }
    }

    /** Defaults: the default ChatML system prompt, 4096 context, 4 sink tokens, 128 new tokens, 4 sequences, capacity 16, 1 thread. */
    public static InferenceSettings of(Path modelPath) {
        return new InferenceSettings(
                modelPath.toString(), null, ChatMl.DEFAULT_SYSTEM_MESSAGE, 4096, 4, 128, 4, 16, 1);
    }

    public InferenceSettings withContext(int newMaxContextTokens, int newSinkTokens) {
        return new InferenceSettings(modelPath, modelName, systemPrompt, newMaxContextTokens, newSinkTokens,
                maxNewTokens, maxSequences, capacity, threads);
    }

    public InferenceSettings withMaxNewTokens(int n) {
        return new InferenceSettings(modelPath, modelName, systemPrompt, maxContextTokens, sinkTokens, n,
                maxSequences, capacity, threads);
    }

    public InferenceSettings withEngine(int newMaxSequences, int newCapacity, int newThreads) {
        return new InferenceSettings(modelPath, modelName, systemPrompt, maxContextTokens, sinkTokens,
                maxNewTokens, newMaxSequences, newCapacity, newThreads);
    }

    public InferenceSettings withSystemPrompt(String prompt) {
        return new InferenceSettings(modelPath, modelName, prompt, maxContextTokens, sinkTokens, maxNewTokens,
                maxSequences, capacity, threads);
    }

    public InferenceSettings withModelName(String name) {
        return new InferenceSettings(modelPath, name, systemPrompt, maxContextTokens, sinkTokens, maxNewTokens,
                maxSequences, capacity, threads);
    }

    /** The name results carry. */
    public String resolvedModelName() {
        return modelName != null ? modelName : Path.of(modelPath).getFileName().toString();
    }
}
