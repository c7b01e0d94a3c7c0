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
 * {@code QWEN_GENERATE(prompt [, max_tokens])}, asynchronous: {@link QwenGenerate}'s answers, many calls in flight per instance; see {@link QwenAsyncScalarFunction}.
 *
 * <p>Register it under its SQL name: {@code CREATE TEMPORARY FUNCTION QWEN_GENERATE AS 'io.flinkqwen.operators.sql.QwenGenerateAsync'} (options
 * from the global job parameters, {@link QwenFunctionOptions}), or {@code
 * tableEnv.createTemporarySystemFunction("QWEN_GENERATE", new QwenGenerateAsync(options))}.
 */
@PublicEvolving
public final class QwenGenerateAsync extends QwenAsyncScalarFunction {

    private static final long serialVersionUID = 1L;

    /** Every option from the global job parameters; {@code qwen.model.path} must be one. */
    public QwenGenerateAsync() {
        this(Map.of());
    }

    /** The model {@code model} (a .gguf file, a Hugging Face folder or id), other options from the global job parameters. */
    public QwenGenerateAsync(String model) {
        this(Map.of("qwen.model.path", model));
    }

    /** {@code options} (keys of {@link QwenFunctionOptions#OPTIONS}) over the global job parameters. */
    public QwenGenerateAsync(Map<String, String> options) {
        super("QWEN_GENERATE", options);
    }

    public void eval(CompletableFuture<String> result, String prompt) {
        eval(result, prompt, null);
    }

    public void eval(CompletableFuture<String> result, String prompt, Integer maxTokens) {
        if (prompt == null) {
            result.complete(null);
            return;
        }
        answer(result, () -> SqlPrompts.generate(systemPrompt(), prompt), maxTokens);
    }
}
