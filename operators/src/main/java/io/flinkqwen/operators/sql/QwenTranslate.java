/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.sql;

import java.util.Map;

import org.apache.flink.annotation.PublicEvolving;

/**
 * {@code QWEN_TRANSLATE(text, target_lang)}: {@code text} translated into {@code target_lang} (an ISO 639-1 code or English name of the languages of {@link io.flinkqwen.operators.inference.Task#languages()}), greedy, at most {@code qwen.max-new-tokens}. An unknown language throws, naming the value, and fails the job; see {@link QwenScalarFunction}.
 *
 * <p>Register it under its SQL name: {@code CREATE TEMPORARY FUNCTION QWEN_TRANSLATE AS 'io.flinkqwen.operators.sql.QwenTranslate'} (options
 * from the global job parameters, {@link QwenFunctionOptions}), or {@code
 * tableEnv.createTemporarySystemFunction("QWEN_TRANSLATE", new QwenTranslate(options))}.
 */
@PublicEvolving
public final class QwenTranslate extends QwenScalarFunction {

    private static final long serialVersionUID = 1L;

    /** Every option from the global job parameters; {@code qwen.model.path} must be one. */
    public QwenTranslate() {
        this(Map.of());
    }

    /** The model {@code model} (a .gguf file, a Hugging Face folder or id), other options from the global job parameters. */
    public QwenTranslate(String model) {
        this(Map.of("qwen.model.path", model));
    }

    /** {@code options} (keys of {@link QwenFunctionOptions#OPTIONS}) over the global job parameters. */
    public QwenTranslate(Map<String, String> options) {
        super("QWEN_TRANSLATE", options);
    }

    public String eval(String text, String targetLang) {
        if (text == null || targetLang == null) {
            return null;
        }
        return answer(() -> SqlPrompts.translate(text, targetLang), null);
    }
}
