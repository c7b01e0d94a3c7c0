/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.sql;

import io.flinkqwen.engine.model.KvFormat;
import io.flinkqwen.operators.inference.QwenInferenceOptions;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;
import java.util.stream.Collectors;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.configuration.Configuration;

/**
 * The options of the SQL functions, with the keys and defaults of {@link QwenInferenceOptions}
 * (one name per setting across the DataStream operator and SQL). A function reads each option
 * from the map given to its constructor first, then from the job's global parameters, then the
 * default. Functions see only the global job parameters ({@code FunctionContext#getJobParameter}),
 * not the rest of the configuration: in SQL {@code SET 'pipeline.global-job-parameters' =
 * 'qwen.model.path:/models/m.gguf,qwen.max-new-tokens:64'}, on a cluster the same key with
 * {@code -D}. (A plain {@code SET 'qwen.model.path' = ...} does not reach the function.)
 *
 * <p>Functions with equal model, threads, max sequences, capacity, KV budget, device and KV type share one
 * engine per JVM ({@link SharedEngines}).
 */
@PublicEvolving
public final class QwenFunctionOptions {

    /** What a call with invalid input gives: NULL (the default: counted, logged, the query goes on) or FAIL. */
    public static final ConfigOption<OnInvalidInput> ON_INVALID_INPUT = ConfigOptions.key("qwen.on-invalid-input")
            .enumType(OnInvalidInput.class)
            .defaultValue(OnInvalidInput.NULL)
            .withDescription("NULL: a call with invalid input (an unknown language, max_tokens below 1, a prompt"
                    + " longer than the context) answers NULL, counted in invalidInputs and logged; FAIL: it fails the query.");

    /** Every option a function reads. */
    public static final List<ConfigOption<?>> OPTIONS = List.of(
            QwenInferenceOptions.MODEL_PATH,
            QwenInferenceOptions.SYSTEM_PROMPT,
            QwenInferenceOptions.MAX_NEW_TOKENS,
            QwenInferenceOptions.THREADS,
            QwenInferenceOptions.MAX_SEQUENCES,
            QwenInferenceOptions.CAPACITY,
            QwenInferenceOptions.KV_BUDGET,
            QwenInferenceOptions.DEVICE,
            ON_INVALID_INPUT,
            QwenInferenceOptions.KV_TYPE);

    private QwenFunctionOptions() {}

    /**
     * The settings of a function: {@code given} over {@code jobParameter} over the defaults.
     *
     * @param function the SQL name, for error messages
     * @param given the constructor's options (keys of {@link #OPTIONS})
     * @param jobParameter the job configuration's value of a key, or null
     * @throws IllegalArgumentException naming an unknown key, a missing model or an invalid value
     */
    static Resolved resolve(String function, Map<String, String> given, UnaryOperator<String> jobParameter) {
        Map<String, String> known = OPTIONS.stream().collect(Collectors.toMap(ConfigOption::key, ConfigOption::key));
        for (String key : given.keySet()) {
            if (!known.containsKey(key)) {
                throw new IllegalArgumentException(function + ": unknown option '" + key + "'; the options are "
                        + String.join(", ", keys()));
            }
        }
        Map<String, String> merged = new HashMap<>();
        for (String key : keys()) {
            String v = jobParameter.apply(key);
            if (v != null) {
                merged.put(key, v);
            }
        }
        merged.putAll(given);
        Configuration c = Configuration.fromMap(merged);
        String model = c.get(QwenInferenceOptions.MODEL_PATH);
        if (model == null || model.isBlank()) {
            throw new IllegalArgumentException(function + " has no model: set the job parameter '"
                    + QwenInferenceOptions.MODEL_PATH.key() + "' (SQL: SET 'pipeline.global-job-parameters' = '"
                    + QwenInferenceOptions.MODEL_PATH.key() + ":/path/model.gguf') or pass it to the function's constructor");
        }
        try {
            int maxNewTokens = c.get(QwenInferenceOptions.MAX_NEW_TOKENS);
            if (maxNewTokens < 1) {
                throw new IllegalArgumentException(
                        QwenInferenceOptions.MAX_NEW_TOKENS.key() + " must be >= 1, got " + maxNewTokens);
            }
            EngineSpec spec = new EngineSpec(model, c.get(QwenInferenceOptions.THREADS),
                    c.get(QwenInferenceOptions.MAX_SEQUENCES), c.get(QwenInferenceOptions.CAPACITY),
                    c.get(QwenInferenceOptions.KV_BUDGET).getBytes(), c.getOptional(QwenInferenceOptions.DEVICE)
                            .orElse(System.getProperty(io.flinkqwen.kernels.backend.KernelBackends.DEVICE_PROPERTY, "auto")),
                    kvFormat(c.getOptional(QwenInferenceOptions.KV_TYPE).orElse(null), QwenInferenceOptions.KV_TYPE.key()));
            return new Resolved(spec, maxNewTokens, c.get(QwenInferenceOptions.SYSTEM_PROMPT), c.get(ON_INVALID_INPUT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(function + ": " + e.getMessage(), e);
        }
    }

    /** {@code value} of the option {@code key} as a KV format; null: the system property {@value KvFormat#PROPERTY}, else F32. */
    static KvFormat kvFormat(String value, String key) {
        return value == null ? KvFormat.fromSystemProperty() : QwenInferenceOptions.parseKvType(key, value);
    }

    private static List<String> keys() {
        return OPTIONS.stream().map(ConfigOption::key).collect(Collectors.toList());
    }

    /** A copy of {@code options}, in a serializable map with stable order. */
    static Map<String, String> copy(Map<String, String> options) {
        return new LinkedHashMap<>(options);
    }

    /**
     * What a function resolved: its engine, its default of new tokens, its system prompt
     * (QWEN_GENERATE), what a call with invalid input gives.
     */
    record Resolved(EngineSpec spec, int maxNewTokens, String systemPrompt, OnInvalidInput onInvalidInput) {}
}
