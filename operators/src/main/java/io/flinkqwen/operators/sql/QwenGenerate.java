/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.sql;

import java.util.Map;

import org.apache.flink.annotation.PublicEvolving;

/**
 * {@code QWEN_GENERATE(prompt [, max_tokens])}: the model's answer to {@code prompt} as the user turn under the system prompt {@code qwen.system-prompt}, greedy, at most {@code max_tokens} (default {@code qwen.max-new-tokens}). Blocks per call; see {@link QwenScalarFunction}.
 *
 * <p>Register it under its SQL name: {@code CREATE TEMPORARY FUNCTION QWEN_GENERATE AS 'io.flinkqwen.operators.sql.QwenGenerate'} (options
 * from the global job parameters, {@link QwenFunctionOptions}), or {@code
 * tableEnv.createTemporarySystemFunction("QWEN_GENERATE", new QwenGenerate(options))}.
 */
@PublicEvolving
public final class QwenGenerate extends QwenScalarFunction {

    private static final long serialVersionUID = 1L;

    /** Every option from the global job parameters; {@code qwen.model.path} must be one. */
    public QwenGenerate() {
        this(Map.of());
    }

    /** The model {@code model} (a .gguf file, a Hugging Face folder or id), other options from the global job parameters. */
    public QwenGenerate(String model) {
        this(Map.of("qwen.model.path", model));
    }

    /** {@code options} (keys of {@link QwenFunctionOptions#OPTIONS}) over the global job parameters. */
    public QwenGenerate(Map<String, String> options) {
        super("QWEN_GENERATE", options);
    }

    public String eval(String prompt) {
        return eval(prompt, null);
    }

    public String eval(String prompt, Integer maxTokens) {
        if (prompt == null) {
            return null;
        }
        return answer(() -> SqlPrompts.generate(systemPrompt(), prompt), maxTokens);
    }
}
