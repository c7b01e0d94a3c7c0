/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.sql;

import io.flinkqwen.engine.generate.SamplingParams;
import io.flinkqwen.engine.tokenizer.ChatMl;
import java.io.Serializable;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.apache.flink.table.functions.FunctionContext;

/** What the synchronous and the asynchronous SQL functions share: options, the engine lease, calls. */
final class FunctionCore implements Serializable {

    private static final long serialVersionUID = 1L;

    private final String sqlName;
    private final Map<String, String> options;
    private transient QwenFunctionOptions.Resolved settings;
    private transient QwenCalls calls;

    FunctionCore(String sqlName, Map<String, String> options) {
        this.sqlName = sqlName;
        this.options = QwenFunctionOptions.copy(options);
    }

    void open(FunctionContext context) {
        settings = QwenFunctionOptions.resolve(sqlName, options, key -> context.getJobParameter(key, null));
        String subtask;
        try {
            subtask = String.valueOf(context.getTaskInfo().getIndexOfThisSubtask());
        } catch (RuntimeException e) {
            subtask = "local"; // no runtime context (e.g. the planner reducing expressions)
        }
        calls = new QwenCalls(sqlName, settings.spec(), sqlName + "/" + subtask + "/" + System.identityHashCode(this),
                context.getMetricGroup(), settings.onInvalidInput());
    }

    void close() {
        if (calls != null) {
            calls.close();
            calls = null;
        }
    }

    String systemPrompt() {
        return settings.systemPrompt();
    }

    /** Greedy decoding of {@code maxTokens}, or the configured default if null. */
    SamplingParams sampling(Integer maxTokens) {
        int n = maxTokens == null ? settings.maxNewTokens() : maxTokens;
        if (n < 1) {
            throw new IllegalArgumentException(sqlName + ": max_tokens must be >= 1, got " + n);
        }
        return calls.greedy(n);
    }

    String answer(List<ChatMl.Message> conversation, SamplingParams params) {
        return calls.answerBlocking(conversation, params);
    }

    CompletableFuture<String> answerAsync(List<ChatMl.Message> conversation, SamplingParams params) {
        return calls.answer(conversation, params);
    }

    /**
     * The answer to a call with invalid arguments (an unknown language, {@code max_tokens} below
     * 1): null, or with {@code qwen.on-invalid-input = FAIL} the error, naming the function.
     */
    String invalidInput(IllegalArgumentException e) {
        return calls.invalidInput(badArgument(e));
    }

    /** An error of the call's arguments (an unknown language), with the function's name in front. */
    IllegalArgumentException badArgument(IllegalArgumentException e) {
        return e.getMessage() != null && e.getMessage().startsWith(sqlName)
                ? e
                : new IllegalArgumentException(sqlName + ": " + e.getMessage(), e);
    }
}
