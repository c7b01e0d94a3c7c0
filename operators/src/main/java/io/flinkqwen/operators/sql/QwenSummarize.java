/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.sql;

import java.util.Map;

import org.apache.flink.annotation.PublicEvolving;

/**
 * {@code QWEN_SUMMARIZE(text)}: a short summary of {@code text} ({@link SqlPrompts#summarize}), greedy, at most {@code qwen.max-new-tokens}. Blocks per call; see {@link QwenScalarFunction}.
 *
 * <p>Register it under its SQL name: {@code CREATE TEMPORARY FUNCTION QWEN_SUMMARIZE AS 'io.flinkqwen.operators.sql.QwenSummarize'} (options
 * from the global job parameters, {@link QwenFunctionOptions}), or {@code
 * tableEnv.createTemporarySystemFunction("QWEN_SUMMARIZE", new QwenSummarize(options))}.
 */
@PublicEvolving
public final class QwenSummarize extends QwenScalarFunction {

    private static final long serialVersionUID = 1L;

    /** Every option from the global job parameters; {@code qwen.model.path} must be one. */
    public QwenSummarize() {
        this(Map.of());
    }

    /** The model {@code model} (a .gguf file, a Hugging Face folder or id), other options from the global job parameters. */
    public QwenSummarize(String model) {
        this(Map.of("qwen.model.path", model));
    }

    /** {@code options} (keys of {@link QwenFunctionOptions#OPTIONS}) over the global job parameters. */
    public QwenSummarize(Map<String, String> options) {
        super("QWEN_SUMMARIZE", options);
    }

    public String eval(String text) {
        if (text == null) {
            return null;
        }
        return answer(() -> SqlPrompts.summarize(text), null);
    }
}
