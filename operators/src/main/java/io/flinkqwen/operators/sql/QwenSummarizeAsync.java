/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.sql;

import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.apache.flink.annotation.PublicEvolving;

/**
 * {@code QWEN_SUMMARIZE(text)}, asynchronous: {@link QwenSummarize}'s answers, many calls in flight per instance; see {@link QwenAsyncScalarFunction}.
 *
 * <p>Register it under its SQL name: {@code CREATE TEMPORARY FUNCTION QWEN_SUMMARIZE AS 'io.flinkqwen.operators.sql.QwenSummarizeAsync'} (options
 * from the global job parameters, {@link QwenFunctionOptions}), or {@code
 * tableEnv.createTemporarySystemFunction("QWEN_SUMMARIZE", new QwenSummarizeAsync(options))}.
 */
@PublicEvolving
public final class QwenSummarizeAsync extends QwenAsyncScalarFunction {

    private static final long serialVersionUID = 1L;

    /** Every option from the global job parameters; {@code qwen.model.path} must be one. */
    public QwenSummarizeAsync() {
        this(Map.of());
    }

    /** The model {@code model} (a .gguf file, a Hugging Face folder or id), other options from the global job parameters. */
    public QwenSummarizeAsync(String model) {
        this(Map.of("qwen.model.path", model));
    }

    /** {@code options} (keys of {@link QwenFunctionOptions#OPTIONS}) over the global job parameters. */
    public QwenSummarizeAsync(Map<String, String> options) {
        super("QWEN_SUMMARIZE", options);
    }

    public void eval(CompletableFuture<String> result, String text) {
        if (text == null) {
            result.complete(null);
            return;
        }
        answer(result, () -> SqlPrompts.summarize(text), null);
    }
}
