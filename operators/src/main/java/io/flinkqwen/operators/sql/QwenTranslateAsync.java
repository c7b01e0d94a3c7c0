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
 * {@code QWEN_TRANSLATE(text, target_lang)}, asynchronous: {@link QwenTranslate}'s answers, many calls in flight per instance; an unknown language fails the call, naming the value. See {@link QwenAsyncScalarFunction}.
 *
 * <p>Register it under its SQL name: {@code CREATE TEMPORARY FUNCTION QWEN_TRANSLATE AS 'io.flinkqwen.operators.sql.QwenTranslateAsync'} (options
 * from the global job parameters, {@link QwenFunctionOptions}), or {@code
 * tableEnv.createTemporarySystemFunction("QWEN_TRANSLATE", new QwenTranslateAsync(options))}.
 */
@PublicEvolving
public final class QwenTranslateAsync extends QwenAsyncScalarFunction {

    private static final long serialVersionUID = 1L;

    /** Every option from the global job parameters; {@code qwen.model.path} must be one. */
    public QwenTranslateAsync() {
        this(Map.of());
    }

    /** The model {@code model} (a .gguf file, a Hugging Face folder or id), other options from the global job parameters. */
    public QwenTranslateAsync(String model) {
        this(Map.of("qwen.model.path", model));
    }

    /** {@code options} (keys of {@link QwenFunctionOptions#OPTIONS}) over the global job parameters. */
    public QwenTranslateAsync(Map<String, String> options) {
        super("QWEN_TRANSLATE", options);
    }

    public void eval(CompletableFuture<String> result, String text, String targetLang) {
        if (text == null || targetLang == null) {
            result.complete(null);
            return;
        }
        answer(result, () -> SqlPrompts.translate(text, targetLang), null);
    }
}
