/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.inference;

import io.flinkqwen.engine.model.KvFormat;
import io.flinkqwen.engine.tokenizer.ChatMl;
import io.flinkqwen.operators.arrow.ArrowRequestBatcher;
import java.io.Serializable;
import java.nio.file.Path;
import java.util.Objects;
import org.apache.flink.annotation.PublicEvolving;

/**
 * The long-context operator's settings; serializable, shipped with the operator factory. Build
 * them with {@link QwenInference#builder()} or from a Flink configuration with {@link
 * QwenInferenceOptions#toSettings}; the constructor checks each value on its own.
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
 * @param batch when the Arrow micro-batch of staged requests goes to the engine: at {@code
 *     maxRows} requests, {@code maxBytes} of payload or {@code maxDelayMillis} after its first
 *     request, whichever comes first
 * @param kvBudgetBytes KV-cache bytes of this operator instance's engine, running requests and
 *     idle keys together. A request is admitted only with room for its full cache: idle keys'
 *     caches are dropped for it least recently used first (rebuilt by prefill on the key's next
 *     event), and when running requests leave too little room it waits in the engine's queue
 *     (backpressure, never a drop). A request that alone exceeds the budget runs alone.
 * @param requestTimeoutMillis a request not answered this long after its hand-over to the
 *     engine goes to the side output; 0 means no timeout
 * @param summaries when and how to summarize each key's events; null answers every event
 * @param kvFormat how the engine stores its KV caches (F32, F16 or Q8; {@link KvFormat}); null
 *     means the task manager's system property {@value KvFormat#PROPERTY}, else F32, decided in
 *     {@code open()} ({@link #resolvedKvFormat()})
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
        int threads,
        ArrowRequestBatcher.Limits batch,
        long kvBudgetBytes,
        long requestTimeoutMillis,
        Summaries summaries,
        KvFormat kvFormat)
        implements Serializable {

    /** Settings with the KV format of the task manager's system property ({@code kvFormat} null). */
    public InferenceSettings(String modelPath, String modelName, String systemPrompt, int maxContextTokens,
            int sinkTokens, int maxNewTokens, int maxSequences, int capacity, int threads,
            ArrowRequestBatcher.Limits batch, long kvBudgetBytes, long requestTimeoutMillis, Summaries summaries) {
        this(modelPath, modelName, systemPrompt, maxContextTokens, sinkTokens, maxNewTokens, maxSequences, capacity,
                threads, batch, kvBudgetBytes, requestTimeoutMillis, summaries, null);
    }

    /** Settings that answer every event (no summaries). */
    public InferenceSettings(String modelPath, String modelName, String systemPrompt, int maxContextTokens,
            int sinkTokens, int maxNewTokens, int maxSequences, int capacity, int threads,
            ArrowRequestBatcher.Limits batch, long kvBudgetBytes, long requestTimeoutMillis) {
        this(modelPath, modelName, systemPrompt, maxContextTokens, sinkTokens, maxNewTokens, maxSequences, capacity,
                threads, batch, kvBudgetBytes, requestTimeoutMillis, null);
    }

    /** The same settings, summarizing as {@code s} says (null: answer every event). */
    public InferenceSettings withSummaries(Summaries s) {
        return new InferenceSettings(modelPath, modelName, systemPrompt, maxContextTokens, sinkTokens, maxNewTokens,
                maxSequences, capacity, threads, batch, kvBudgetBytes, requestTimeoutMillis, s, kvFormat);
    }

    /** The same settings with {@code task}'s system prompt and summaries. */
    public InferenceSettings withTask(Task task) {
        return withSystemPrompt(task.systemPrompt()).withSummaries(task.summaries());
    }

    /** The default KV budget: 256 MiB. */
    public static final long DEFAULT_KV_BUDGET_BYTES = 256L << 20;

    public InferenceSettings {
        Objects.requireNonNull(modelPath, "modelPath");
        Objects.requireNonNull(systemPrompt, "systemPrompt");
        Objects.requireNonNull(batch, "batch");
        check(maxContextTokens >= 2, "maxContextTokens", maxContextTokens, ">= 2");
        check(sinkTokens >= 0, "sinkTokens", sinkTokens, ">= 0");
        check(maxNewTokens >= 1 && maxNewTokens < maxContextTokens, "maxNewTokens", maxNewTokens,
                "in [1, maxContextTokens = " + maxContextTokens + ")");
        check(maxSequences >= 1, "maxSequences", maxSequences, ">= 1");
        check(capacity >= maxSequences, "capacity", capacity, ">= maxSequences = " + maxSequences);
        check(threads >= 1, "threads", threads, ">= 1");
        check(kvBudgetBytes >= 0, "kvBudgetBytes", kvBudgetBytes, ">= 0");
        check(requestTimeoutMillis >= 0, "requestTimeoutMillis", requestTimeoutMillis, ">= 0 (0: none)");
    }

    private static void check(boolean ok, String name, long value, String expected) {
        if (!ok) {
            throw new IllegalArgumentException(name + " must be " + expected + ", got " + value);
        }
    }

    /**
     * Defaults: the default ChatML system prompt, 4096 context, 4 sink tokens, 128 new tokens, 4
     * sequences, capacity 16, 1 thread, batches of 4 requests / 1 MiB / 10 ms, 256 MiB KV budget,
     * no timeout.
     */
    public static InferenceSettings of(Path modelPath) {
        return new InferenceSettings(modelPath.toString(), null, ChatMl.DEFAULT_SYSTEM_MESSAGE, 4096, 4, 128, 4, 16, 1,
                new ArrowRequestBatcher.Limits(4, 1 << 20, 10), DEFAULT_KV_BUDGET_BYTES, 0);
    }

    public InferenceSettings withContext(int newMaxContextTokens, int newSinkTokens) {
        return new InferenceSettings(modelPath, modelName, systemPrompt, newMaxContextTokens, newSinkTokens,
                maxNewTokens, maxSequences, capacity, threads, batch, kvBudgetBytes, requestTimeoutMillis, summaries,
                kvFormat);
    }

    public InferenceSettings withMaxNewTokens(int n) {
        return new InferenceSettings(modelPath, modelName, systemPrompt, maxContextTokens, sinkTokens, n,
                maxSequences, capacity, threads, batch, kvBudgetBytes, requestTimeoutMillis, summaries, kvFormat);
    }

    /** The engine's sequences per step, capacity and threads; batches of {@code maxSequences} rows. */
    public InferenceSettings withEngine(int newMaxSequences, int newCapacity, int newThreads) {
        return new InferenceSettings(modelPath, modelName, systemPrompt, maxContextTokens, sinkTokens,
                maxNewTokens, newMaxSequences, newCapacity, newThreads,
                new ArrowRequestBatcher.Limits(newMaxSequences, batch.maxBytes(), batch.maxDelayMillis()),
                kvBudgetBytes, requestTimeoutMillis, summaries, kvFormat);
    }

    public InferenceSettings withSystemPrompt(String prompt) {
        return new InferenceSettings(modelPath, modelName, prompt, maxContextTokens, sinkTokens, maxNewTokens,
                maxSequences, capacity, threads, batch, kvBudgetBytes, requestTimeoutMillis, summaries, kvFormat);
    }

    public InferenceSettings withModelName(String name) {
        return new InferenceSettings(modelPath, name, systemPrompt, maxContextTokens, sinkTokens, maxNewTokens,
                maxSequences, capacity, threads, batch, kvBudgetBytes, requestTimeoutMillis, summaries, kvFormat);
    }

    public InferenceSettings withBatch(int maxRows, long maxBytes, long maxDelayMillis) {
        return new InferenceSettings(modelPath, modelName, systemPrompt, maxContextTokens, sinkTokens, maxNewTokens,
                maxSequences, capacity, threads, new ArrowRequestBatcher.Limits(maxRows, maxBytes, maxDelayMillis),
                kvBudgetBytes, requestTimeoutMillis, summaries, kvFormat);
    }

    public InferenceSettings withKvBudgetBytes(long bytes) {
        return new InferenceSettings(modelPath, modelName, systemPrompt, maxContextTokens, sinkTokens, maxNewTokens,
                maxSequences, capacity, threads, batch, bytes, requestTimeoutMillis, summaries, kvFormat);
    }

    public InferenceSettings withRequestTimeoutMillis(long millis) {
        return new InferenceSettings(modelPath, modelName, systemPrompt, maxContextTokens, sinkTokens, maxNewTokens,
                maxSequences, capacity, threads, batch, kvBudgetBytes, millis, summaries, kvFormat);
    }

    /** The same settings with KV caches stored as {@code format}; null: the task manager's system property. */
    public InferenceSettings withKvFormat(KvFormat format) {
        return new InferenceSettings(modelPath, modelName, systemPrompt, maxContextTokens, sinkTokens, maxNewTokens,
                maxSequences, capacity, threads, batch, kvBudgetBytes, requestTimeoutMillis, summaries, format);
    }

    /** {@link #kvFormat}, or where it is null the format {@value KvFormat#PROPERTY} names in this JVM (F32 if unset). */
    public KvFormat resolvedKvFormat() {
        return kvFormat != null ? kvFormat : KvFormat.fromSystemProperty();
    }

    /** The name results carry. */
    public String resolvedModelName() {
        return modelName != null ? modelName : Path.of(modelPath).getFileName().toString();
    }
}
