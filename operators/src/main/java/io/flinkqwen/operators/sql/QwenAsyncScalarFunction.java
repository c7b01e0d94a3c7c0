/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.sql;

import io.flinkqwen.engine.generate.SamplingParams;
import io.flinkqwen.engine.tokenizer.ChatMl;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.function.Supplier;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.table.functions.AsyncScalarFunction;
import org.apache.flink.table.functions.FunctionContext;

/**
 * The asynchronous Qwen2 SQL functions' base: {@code eval} hands the call to the shared engine
 * and returns; the engine batches the calls in flight of every instance in the JVM (up to {@code
 * table.exec.async-scalar.max-concurrent-operations} per instance, Flink's default 10). Calls
 * beyond the engine's {@code qwen.engine.capacity} wait in order, never dropped.
 *
 * <p>Errors as {@link QwenScalarFunction}'s: invalid input answers NULL (or, with {@code
 * qwen.on-invalid-input = FAIL}, completes the call exceptionally, and Flink's async retry
 * strategy, {@code table.exec.async-scalar.retry-strategy}, decides whether the job fails: a
 * bad argument fails on every retry). Flink plans async scalar functions in streaming mode only.
 */
@PublicEvolving
public abstract class QwenAsyncScalarFunction extends AsyncScalarFunction {

    private static final long serialVersionUID = 1L;

    final FunctionCore core;

    protected QwenAsyncScalarFunction(String sqlName, Map<String, String> options) {
        this.core = new FunctionCore(sqlName, options);
    }

    @Override
    public void open(FunctionContext context) throws Exception {
        core.open(context);
    }

    @Override
    public void close() throws Exception {
        core.close();
    }

    @Override
    public boolean supportsConstantFolding() {
        return false;
    }

    /** Completes {@code result} with the answer to the conversation {@code prompt} builds. */
    protected void answer(CompletableFuture<String> result, Supplier<List<ChatMl.Message>> prompt, Integer maxTokens) {
        List<ChatMl.Message> conversation;
        SamplingParams params;
        try {
            conversation = prompt.get();
            params = core.sampling(maxTokens);
        } catch (IllegalArgumentException e) {
            try {
                result.complete(core.invalidInput(e));
            } catch (IllegalArgumentException failed) {
                result.completeExceptionally(failed);
            }
            return;
        }
        core.answerAsync(conversation, params).whenComplete((text, failure) -> {
            if (failure != null) {
                result.completeExceptionally(failure instanceof java.util.concurrent.CompletionException
                        && failure.getCause() != null ? failure.getCause() : failure);
            } else {
                result.complete(text);
            }
        });
    }

    String systemPrompt() {
        return core.systemPrompt();
    }
}
