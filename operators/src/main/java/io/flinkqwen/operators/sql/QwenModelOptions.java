/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.sql;

import io.flinkqwen.engine.tokenizer.ChatMl;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.configuration.MemorySize;

/** The {@code WITH} options of {@code CREATE MODEL ... WITH ('provider' = 'qwen2', ...)}. */
@PublicEvolving
public final class QwenModelOptions {

    /** What the model does with each input row. */
    public enum ModelTask {
        /** The input as the user turn under {@code system-prompt}. */
        GENERATE,
        /** A short summary of the input ({@link SqlPrompts#summarize}). */
        SUMMARIZE,
        /** The input translated into {@code target-lang}. */
        TRANSLATE
    }

    public static final ConfigOption<String> MODEL = ConfigOptions.key("model")
            .stringType()
            .noDefaultValue()
            .withDescription("A .gguf file, a Hugging Face model folder (present on every task manager) or a "
                    + "Hugging Face id such as Qwen/Qwen2-0.5B-Instruct (downloaded into the HF cache).");

    public static final ConfigOption<ModelTask> TASK = ConfigOptions.key("task")
            .enumType(ModelTask.class)
            .defaultValue(ModelTask.GENERATE)
            .withDescription("generate, summarize or translate (with target-lang).");

    public static final ConfigOption<String> TARGET_LANG = ConfigOptions.key("target-lang")
            .stringType()
            .noDefaultValue()
            .withDescription("For task translate: an ISO 639-1 code or English name of the target language.");

    public static final ConfigOption<String> SYSTEM_PROMPT = ConfigOptions.key("system-prompt")
            .stringType()
            .defaultValue(ChatMl.DEFAULT_SYSTEM_MESSAGE)
            .withDescription("The system turn of task generate.");

    public static final ConfigOption<OnInvalidInput> ON_INVALID_INPUT = ConfigOptions.key("on-invalid-input")
            .enumType(OnInvalidInput.class)
            .defaultValue(OnInvalidInput.NULL)
            .withDescription("NULL: a row whose prompt is longer than the model's context gets a NULL response,"
                    + " counted in invalidInputs and logged; FAIL: it fails the query.");

    public static final ConfigOption<Integer> MAX_TOKENS = ConfigOptions.key("max-tokens")
            .intType()
            .defaultValue(128)
            .withDescription("The most tokens generated per row.");

    public static final ConfigOption<Double> TEMPERATURE = ConfigOptions.key("temperature")
            .doubleType()
            .defaultValue(0.0)
            .withDescription("0 decodes greedily; above 0 samples, seeded by 'seed' (the same row, the same answer).");

    public static final ConfigOption<Long> SEED = ConfigOptions.key("seed")
            .longType()
            .defaultValue(0L)
            .withDescription("The sampler's seed when temperature > 0.");

    public static final ConfigOption<String> DEVICE = ConfigOptions.key("device")
            .stringType()
            .defaultValue("auto")
            .withDescription("Kernel backend of the engine: auto (TornadoVM if present with a device, else the CPU), cpu, tornado.");

    public static final ConfigOption<Integer> THREADS = ConfigOptions.key("threads")
            .intType()
            .defaultValue(1)
            .withDescription("Kernel threads of the engine (shared per JVM by models and functions of equal engine options).");

    public static final ConfigOption<Integer> MAX_SEQUENCES = ConfigOptions.key("max-sequences")
            .intType()
            .defaultValue(4)
            .withDescription("The batch bound: sequences the engine advances together in one step.");

    public static final ConfigOption<Integer> CAPACITY = ConfigOptions.key("capacity")
            .intType()
            .defaultValue(16)
            .withDescription("Requests in the engine at most; more wait in order, never dropped.");

    public static final ConfigOption<MemorySize> KV_BUDGET = ConfigOptions.key("kv-budget")
            .memoryType()
            .defaultValue(MemorySize.ofMebiBytes(256))
            .withDescription("KV-cache bytes of the engine's running requests.");

    public static final ConfigOption<String> KV_TYPE = ConfigOptions.key("kv-type")
            .stringType()
            .noDefaultValue()
            .withDescription("How the engine stores its KV caches: f32 (exact), f16 or q8 (int8 with a float scale per"
                    + " 32 values). Unset: the system property flinkqwen.kv, else f32.");

    private QwenModelOptions() {}
}
