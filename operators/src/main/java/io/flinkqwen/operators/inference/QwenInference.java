/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.inference;

import io.flinkqwen.engine.model.KvFormat;
import io.flinkqwen.operators.arrow.AllocatorSource;
import io.flinkqwen.operators.arrow.ArrowRequestBatcher;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Objects;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;

/**
 * The DataStream entry point: Qwen2 over a stream of {@link InferenceEvent}s, keyed by the
 * event's key, with a long context per key.
 *
 * <pre>{@code
 * QwenInference.Result out = QwenInference.builder()
 *         .model(Path.of("qwen2-0_5b-instruct-q8_0.gguf"))
 *         .task(Task.translate("de"))
 *         .contextPolicy(4096, 4)
 *         .batch(8, 1 << 20, Duration.ofMillis(10))
 *         .kvBudgetBytes(512L << 20)
 *         .kvType("f16")
 *         .requestTimeout(Duration.ofSeconds(30))
 *         .build()
 *         .apply(events);
 * out.results();   // InferenceResult per answered event
 * out.rejected();  // RejectedEvent per bad or timed-out event, with the reason
 * }</pre>
 *
 * <p>{@link Builder#build()} checks the settings together and names the call that fixes each
 * problem; {@link #fromConfiguration} fills a builder from {@link QwenInferenceOptions}.
 */
@PublicEvolving
public final class QwenInference {

    private final InferenceSettings settings;
    private final Task task;
    private final EngineFactory engineFactory;
    private final AllocatorSource allocatorSource;
    private final String name;

    private QwenInference(Builder b, InferenceSettings settings) {
        this.settings = settings;
        this.task = b.task;
        this.engineFactory = b.engineFactory;
        this.allocatorSource = b.allocatorSource;
        this.name = b.name;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** A builder with every {@link QwenInferenceOptions} value of {@code config} (defaults for the rest). */
    public static Builder fromConfiguration(ReadableConfig config) {
        Builder b = builder();
        config.getOptional(QwenInferenceOptions.MODEL_PATH).ifPresent(b::model);
        config.getOptional(QwenInferenceOptions.MODEL_NAME).ifPresent(b::modelName);
        if (config.getOptional(QwenInferenceOptions.SUMMARIZE_EVERY_EVENTS).isPresent()
                || config.getOptional(QwenInferenceOptions.SUMMARIZE_EVERY).isPresent()) {
            Task summarize = Task.summarize(config.getOptional(QwenInferenceOptions.SUMMARIZE_EVERY_EVENTS).orElse(0),
                            config.getOptional(QwenInferenceOptions.SUMMARIZE_EVERY).orElse(Duration.ZERO),
                            config.get(QwenInferenceOptions.SUMMARIZE_TIME_DOMAIN))
                    .withPromptTemplate(config.get(QwenInferenceOptions.SUMMARIZE_TEMPLATE));
            b.task(config.getOptional(QwenInferenceOptions.SYSTEM_PROMPT)
                    .map(summarize::withSystemPrompt)
                    .orElse(summarize));
        } else {
            b.task(config.getOptional(QwenInferenceOptions.TRANSLATE_TO).isPresent()
                    ? Task.translate(config.get(QwenInferenceOptions.TRANSLATE_TO))
                    : Task.generate(config.get(QwenInferenceOptions.SYSTEM_PROMPT)));
        }
        b.contextPolicy(config.get(QwenInferenceOptions.MAX_CONTEXT_TOKENS), config.get(QwenInferenceOptions.SINK_TOKENS));
        b.maxNewTokens(config.get(QwenInferenceOptions.MAX_NEW_TOKENS));
        b.engine(config.get(QwenInferenceOptions.MAX_SEQUENCES), config.get(QwenInferenceOptions.CAPACITY),
                config.get(QwenInferenceOptions.THREADS));
        b.batch(config.get(QwenInferenceOptions.BATCH_MAX_ROWS), config.get(QwenInferenceOptions.BATCH_MAX_BYTES).getBytes(),
                config.get(QwenInferenceOptions.BATCH_MAX_DELAY));
        b.kvBudgetBytes(config.get(QwenInferenceOptions.KV_BUDGET).getBytes());
        b.requestTimeout(config.get(QwenInferenceOptions.REQUEST_TIMEOUT));
        config.getOptional(QwenInferenceOptions.KV_TYPE).ifPresent(b::kvType);
        return b;
    }

    /** The validated settings every operator instance gets. */
    public InferenceSettings settings() {
        return settings;
    }

    public Task task() {
        return task;
    }

    /** The operator factory, for {@code keyedStream.transform(..)} by hand. */
    public LongContextInferenceOperatorFactory operatorFactory() {
        return new LongContextInferenceOperatorFactory(settings, engineFactory, allocatorSource);
    }

    /** Keys {@code events} by {@link InferenceEvent#key()} and runs the operator on them. */
    public Result apply(DataStream<InferenceEvent> events) {
        SingleOutputStreamOperator<InferenceResult> results = events
                .keyBy(InferenceEvent::key)
                .transform(name, TypeInformation.of(InferenceResult.class), operatorFactory());
        return new Result(results, results.getSideOutput(LongContextInferenceOperator.REJECTED));
    }

    /**
     * What {@link #apply} returns.
     *
     * @param results one result per answered event, per key in event order
     * @param rejected events not answered (empty, too long, failed, timed out), with the reason
     */
    public record Result(SingleOutputStreamOperator<InferenceResult> results, DataStream<RejectedEvent> rejected) {}

    /** Collects the settings; {@link #build()} validates them together. */
    public static final class Builder {
        private String modelPath;
        private String modelName;
        private Task task = Task.generate();
        private int maxContextTokens = 4096;
        private int sinkTokens = 4;
        private int maxNewTokens = 128;
        private int maxSequences = 4;
        private int capacity = 16;
        private int threads = 1;
        private int batchRows = 4;
        private long batchBytes = 1 << 20;
        private Duration batchDelay = Duration.ofMillis(10);
        private long kvBudgetBytes = InferenceSettings.DEFAULT_KV_BUDGET_BYTES;
        private Duration requestTimeout = Duration.ZERO;
        private String kvType; // null: the task manager's flinkqwen.kv, else f32
        private EngineFactory engineFactory = EngineFactory.continuousBatching();
        private AllocatorSource allocatorSource = AllocatorSource.shared();
        private String name = "qwen-inference";

        private Builder() {}

        /** A {@code .gguf} file or a Hugging Face folder; it must exist on every task manager. */
        public Builder model(Path path) {
            return model(path == null ? null : path.toString());
        }

        public Builder model(String path) {
            this.modelPath = path;
            return this;
        }

        /** The name results carry; by default the model path's file name. */
        public Builder modelName(String name) {
            this.modelName = name;
            return this;
        }

        public Builder task(Task task) {
            this.task = task;
            return this;
        }

        /**
         * The context policy: a prompt plus its answer takes at most {@code maxContextTokens};
         * when a key's history does not fit, the system turn, the {@code sinkTokens} tokens after
         * it and the most recent tokens are kept.
         */
        public Builder contextPolicy(int maxContextTokens, int sinkTokens) {
            this.maxContextTokens = maxContextTokens;
            this.sinkTokens = sinkTokens;
            return this;
        }

        public Builder maxNewTokens(int n) {
            this.maxNewTokens = n;
            return this;
        }

        /** Sequences per engine step, requests in flight at most, kernel threads. */
        public Builder engine(int maxSequences, int capacity, int threads) {
            this.maxSequences = maxSequences;
            this.capacity = capacity;
            this.threads = threads;
            return this;
        }

        /** The Arrow micro-batch goes to the engine at {@code maxRows}, {@code maxBytes} or {@code maxDelay}, whichever first. */
        public Builder batch(int maxRows, long maxBytes, Duration maxDelay) {
            this.batchRows = maxRows;
            this.batchBytes = maxBytes;
            this.batchDelay = maxDelay;
            return this;
        }

        /**
         * KV-cache bytes per operator instance, running requests and idle keys together: idle
         * keys' caches are evicted least recently used first, and a request without room waits
         * in the engine's queue (backpressure). 0 runs one request at a time and keeps no idle cache.
         */
        public Builder kvBudgetBytes(long bytes) {
            this.kvBudgetBytes = bytes;
            return this;
        }

        /**
         * How the engine stores its KV caches: {@code "f32"} (exact), {@code "f16"} or {@code "q8"}
         * (see {@link KvFormat}); null, the default, takes the task manager's system property
         * {@value KvFormat#PROPERTY}, else F32. Checked by {@link #build()}.
         */
        public Builder kvType(String type) {
            this.kvType = type;
            return this;
        }

        /** {@link #kvType(String)} as a format. */
        public Builder kvType(KvFormat format) {
            return kvType(format == null ? null : format.id());
        }

        /** Requests unanswered this long after their hand-over go to the side output; zero: none. */
        public Builder requestTimeout(Duration timeout) {
            this.requestTimeout = timeout;
            return this;
        }

        /** The operator's name in the job graph. */
        public Builder name(String operatorName) {
            this.name = operatorName;
            return this;
        }

        /** The engine each operator instance makes; by default {@link EngineFactory#continuousBatching()}. */
        public Builder engineFactory(EngineFactory factory) {
            this.engineFactory = factory;
            return this;
        }

        /** Where each operator instance takes its Arrow child allocator from. */
        public Builder arrowAllocator(AllocatorSource source) {
            this.allocatorSource = source;
            return this;
        }

        /**
         * Checks the settings together.
         *
         * @throws IllegalArgumentException naming what is wrong and the call (or option) that fixes it
         */
        public QwenInference build() {
            require(modelPath != null && !modelPath.isBlank(),
                    "no model: call model(path) with a .gguf file or a Hugging Face folder (option qwen.model.path)");
            require(task != null, "no task: call task(Task.generate()), task(Task.translate(\"de\")) or "
                    + "task(Task.summarize(everyEvents, every, timeDomain))");
            require(maxContextTokens >= 2, "maxContextTokens is " + maxContextTokens
                    + ": pass at least 2 to contextPolicy(maxContextTokens, sinkTokens) (option qwen.context.max-tokens)");
            require(maxNewTokens >= 1, "maxNewTokens is " + maxNewTokens
                    + ": pass at least 1 to maxNewTokens(n) (option qwen.max-new-tokens)");
            require(maxNewTokens < maxContextTokens, "maxNewTokens (" + maxNewTokens + ") leaves no room for a prompt in "
                    + maxContextTokens + " context tokens: lower maxNewTokens(n) below " + maxContextTokens
                    + " or raise contextPolicy(maxContextTokens, ..) (options qwen.max-new-tokens, qwen.context.max-tokens)");
            require(sinkTokens >= 0 && sinkTokens < maxContextTokens - maxNewTokens, "sinkTokens (" + sinkTokens
                    + ") must be in [0, maxContextTokens - maxNewTokens = " + (maxContextTokens - maxNewTokens)
                    + "): lower contextPolicy(.., sinkTokens) (option qwen.context.sink-tokens)");
            require(maxSequences >= 1, "maxSequences is " + maxSequences
                    + ": pass at least 1 to engine(maxSequences, ..) (option qwen.engine.max-sequences)");
            require(capacity >= maxSequences, "capacity (" + capacity + ") is below maxSequences (" + maxSequences
                    + "): raise engine(.., capacity, ..) to at least " + maxSequences
                    + " (option qwen.engine.capacity)");
            require(threads >= 1, "threads is " + threads
                    + ": pass at least 1 to engine(.., .., threads) (option qwen.engine.threads)");
            require(batchRows >= 1, "batch maxRows is " + batchRows
                    + ": pass at least 1 to batch(maxRows, ..) (option qwen.batch.max-rows)");
            require(batchBytes >= 1, "batch maxBytes is " + batchBytes
                    + ": pass at least 1 to batch(.., maxBytes, ..) (option qwen.batch.max-bytes)");
            require(batchDelay != null && !batchDelay.isNegative(), "batch maxDelay is " + batchDelay
                    + ": pass zero or a positive duration to batch(.., .., maxDelay) (option qwen.batch.max-delay)");
            require(kvBudgetBytes >= 0, "kvBudgetBytes is " + kvBudgetBytes
                    + ": pass 0 (one request at a time, no idle cache) or more to kvBudgetBytes(bytes) (option qwen.kv.budget)");
            require(requestTimeout != null && !requestTimeout.isNegative(), "requestTimeout is " + requestTimeout
                    + ": pass Duration.ZERO (no timeout) or a positive duration to requestTimeout(..)"
                    + " (option qwen.request.timeout)");
            KvFormat kvFormat = null;
            if (kvType != null) {
                try {
                    kvFormat = QwenInferenceOptions.parseKvType("kvType", kvType);
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException(e.getMessage() + ": pass one of them to kvType(..) (option "
                            + QwenInferenceOptions.KV_TYPE.key() + ")", e);
                }
            }
            require(engineFactory != null, "engineFactory is null: leave it unset for EngineFactory.continuousBatching()");
            require(allocatorSource != null, "arrowAllocator is null: leave it unset for AllocatorSource.shared()");
            Objects.requireNonNull(name, "name");
            InferenceSettings settings = new InferenceSettings(modelPath, modelName, task.systemPrompt(), maxContextTokens,
                    sinkTokens, maxNewTokens, maxSequences, capacity, threads,
                    new ArrowRequestBatcher.Limits(batchRows, batchBytes, batchDelay.toMillis()), kvBudgetBytes,
                    requestTimeout.toMillis(), task.summaries(), kvFormat);
            return new QwenInference(this, settings);
        }

        private static void require(boolean ok, String message) {
            if (!ok) {
                throw new IllegalArgumentException(message);
            }
        }
    }
}
