/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.inference;

import io.flinkqwen.engine.model.KvFormat;
import io.flinkqwen.engine.tokenizer.ChatMl;
import java.time.Duration;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.configuration.MemorySize;
import org.apache.flink.configuration.ReadableConfig;

/**
 * The long-context operator's settings as typed Flink options, for jobs configured from a
 * {@code Configuration} (flink-conf, {@code -D} flags). {@link QwenInference#fromConfiguration}
 * reads them into a builder; the builder validates. Defaults are {@link InferenceSettings#of}'s.
 */
@PublicEvolving
public final class QwenInferenceOptions {

    public static final ConfigOption<String> MODEL_PATH = ConfigOptions.key("qwen.model.path")
            .stringType()
            .noDefaultValue()
            .withDescription("A .gguf file or a Hugging Face model folder; it must exist on every task manager.");

    public static final ConfigOption<String> MODEL_NAME = ConfigOptions.key("qwen.model.name")
            .stringType()
            .noDefaultValue()
            .withDescription("The model name every result carries; by default the model path's file name.");

    public static final ConfigOption<String> SYSTEM_PROMPT = ConfigOptions.key("qwen.system-prompt")
            .stringType()
            .defaultValue(ChatMl.DEFAULT_SYSTEM_MESSAGE)
            .withDescription("The ChatML system turn every key's history starts with (task 'generate').");

    public static final ConfigOption<String> TRANSLATE_TO = ConfigOptions.key("qwen.task.translate-to")
            .stringType()
            .noDefaultValue()
            .withDescription("If set, the task is translation into this language (an ISO 639-1 code, e.g. 'de'); "
                    + "it replaces the system prompt.");

    public static final ConfigOption<Integer> SUMMARIZE_EVERY_EVENTS = ConfigOptions.key("qwen.task.summarize.every-events")
            .intType()
            .noDefaultValue()
            .withDescription("If this or qwen.task.summarize.every is set, the task is summaries: one per key after "
                    + "this many new events (0: no count trigger).");

    public static final ConfigOption<Duration> SUMMARIZE_EVERY = ConfigOptions.key("qwen.task.summarize.every")
            .durationType()
            .noDefaultValue()
            .withDescription("A summary per key at the end of every period of this length that had events "
                    + "(0: no time trigger).");

    public static final ConfigOption<Summaries.TimeDomain> SUMMARIZE_TIME_DOMAIN =
            ConfigOptions.key("qwen.task.summarize.time-domain")
                    .enumType(Summaries.TimeDomain.class)
                    .defaultValue(Summaries.TimeDomain.EVENT_TIME)
                    .withDescription("The time qwen.task.summarize.every is measured in.");

    public static final ConfigOption<String> SUMMARIZE_TEMPLATE = ConfigOptions.key("qwen.task.summarize.template")
            .stringType()
            .defaultValue(Summaries.DEFAULT_TEMPLATE)
            .withDescription("The summary's user turn: {events} is replaced by the new events, one per line, "
                    + "{summary} (optional) by the previous summary.");

    public static final ConfigOption<Integer> MAX_CONTEXT_TOKENS = ConfigOptions.key("qwen.context.max-tokens")
            .intType()
            .defaultValue(4096)
            .withDescription("The most tokens a prompt plus its answer may take; at most the model's max_position_embeddings.");

    public static final ConfigOption<Integer> SINK_TOKENS = ConfigOptions.key("qwen.context.sink-tokens")
            .intType()
            .defaultValue(4)
            .withDescription("Tokens right after the system turn that trimming a full context keeps (attention sinks).");

    public static final ConfigOption<Integer> MAX_NEW_TOKENS = ConfigOptions.key("qwen.max-new-tokens")
            .intType()
            .defaultValue(128)
            .withDescription("The most tokens generated per event (greedy).");

    public static final ConfigOption<Integer> MAX_SEQUENCES = ConfigOptions.key("qwen.engine.max-sequences")
            .intType()
            .defaultValue(4)
            .withDescription("Sequences the engine advances together in one step.");

    public static final ConfigOption<Integer> CAPACITY = ConfigOptions.key("qwen.engine.capacity")
            .intType()
            .defaultValue(16)
            .withDescription("Requests in flight in the engine at most; beyond it the operator backpressures.");

    public static final ConfigOption<Integer> THREADS = ConfigOptions.key("qwen.engine.threads")
            .intType()
            .defaultValue(1)
            .withDescription("Kernel threads of each operator instance's engine.");

    public static final ConfigOption<String> DEVICE = ConfigOptions.key("qwen.device")
            .stringType()
            .defaultValue("auto")
            .withDescription("Kernel backend of the engine: auto (TornadoVM where its backend is on the class path and "
                    + "finds a device, else the CPU), cpu, or tornado. Read from the job's global parameters by the "
                    + "operator and the SQL functions.");

    public static final ConfigOption<Integer> BATCH_MAX_ROWS = ConfigOptions.key("qwen.batch.max-rows")
            .intType()
            .defaultValue(4)
            .withDescription("An Arrow micro-batch goes to the engine at this many requests.");

    public static final ConfigOption<MemorySize> BATCH_MAX_BYTES = ConfigOptions.key("qwen.batch.max-bytes")
            .memoryType()
            .defaultValue(MemorySize.parse("1mb"))
            .withDescription("... or at this much payload (text, key and id bytes, 8 per event time, 4 per token id).");

    public static final ConfigOption<Duration> BATCH_MAX_DELAY = ConfigOptions.key("qwen.batch.max-delay")
            .durationType()
            .defaultValue(Duration.ofMillis(10))
            .withDescription("... or this long after its first request, whichever comes first.");

    public static final ConfigOption<MemorySize> KV_BUDGET = ConfigOptions.key("qwen.kv.budget")
            .memoryType()
            .defaultValue(MemorySize.ofMebiBytes(256))
            .withDescription("KV-cache bytes per operator instance, running requests and idle keys together. Idle "
                    + "keys' caches are dropped least recently used first (rebuilt by prefill on the key's next "
                    + "event); a request without room waits in the engine's queue (backpressure, never a drop).");

    public static final ConfigOption<String> KV_TYPE = ConfigOptions.key("qwen.kv-type")
            .stringType()
            .noDefaultValue()
            .withDescription("How the engine stores its KV caches: f32 (exact), f16 (half the bytes) or q8 (int8 with a "
                    + "float scale per 32 values, 0.28 of f32's bytes). Unset: the task manager's system property "
                    + "flinkqwen.kv, else f32.");

    public static final ConfigOption<Duration> REQUEST_TIMEOUT = ConfigOptions.key("qwen.request.timeout")
            .durationType()
            .defaultValue(Duration.ZERO)
            .withDescription("A request not answered this long after its hand-over to the engine goes to the side "
                    + "output; 0 means no timeout.");

    private QwenInferenceOptions() {}

    /**
     * {@code value} of the KV-type option {@code key} as a format.
     *
     * @throws IllegalArgumentException naming the key, the bad value and the allowed values
     */
    public static KvFormat parseKvType(String key, String value) {
        try {
            return KvFormat.parse(value);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(key + " must be one of f32, f16, q8 (the KV cache format), got '" + value
                    + "'", e);
        }
    }

    /** The options in {@code config}, validated: {@code QwenInference.fromConfiguration(config).build().settings()}. */
    public static InferenceSettings toSettings(ReadableConfig config) {
        return QwenInference.fromConfiguration(config).build().settings();
    }
}
