/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.inference;

import io.flinkqwen.operators.arrow.AllocatorSource;
import java.util.Objects;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.streaming.api.operators.AbstractStreamOperatorFactory;
import org.apache.flink.streaming.api.operators.OneInputStreamOperatorFactory;
import org.apache.flink.streaming.api.operators.StreamOperator;
import org.apache.flink.streaming.api.operators.StreamOperatorParameters;

/**
 * Makes {@link LongContextInferenceOperator}s; hands each the task's mailbox executor (from
 * {@link StreamOperatorParameters}), through which results come back. Use on a keyed stream:
 * {@code events.keyBy(InferenceEvent::key).transform("qwen", TypeInformation.of(InferenceResult.class), factory)},
 * or let {@link QwenInference#builder()} do it.
 */
@PublicEvolving
public final class LongContextInferenceOperatorFactory extends AbstractStreamOperatorFactory<InferenceResult>
        implements OneInputStreamOperatorFactory<InferenceEvent, InferenceResult> {

    private static final long serialVersionUID = 1L;

    private final InferenceSettings settings;
    private final EngineFactory engineFactory;
    private final AllocatorSource allocatorSource;

    public LongContextInferenceOperatorFactory(InferenceSettings settings) {
        this(settings, EngineFactory.continuousBatching());
    }

    public LongContextInferenceOperatorFactory(InferenceSettings settings, EngineFactory engineFactory) {
        this(settings, engineFactory, AllocatorSource.shared());
    }

    /**
     * @param allocatorSource the parent of each operator instance's Arrow child allocator
     */
    public LongContextInferenceOperatorFactory(
            InferenceSettings settings, EngineFactory engineFactory, AllocatorSource allocatorSource) {
        this.settings = Objects.requireNonNull(settings, "settings");
        this.engineFactory = Objects.requireNonNull(engineFactory, "engineFactory");
        this.allocatorSource = Objects.requireNonNull(allocatorSource, "allocatorSource");
    }

    public InferenceSettings settings() {
        return settings;
    }

    @Override
    @SuppressWarnings("unchecked")
    public <T extends StreamOperator<InferenceResult>> T createStreamOperator(
            StreamOperatorParameters<InferenceResult> parameters) {
        return (T) new LongContextInferenceOperator(parameters, settings, engineFactory, allocatorSource);
    }

    @Override
    @SuppressWarnings("rawtypes")
    public Class<? extends StreamOperator> getStreamOperatorClass(ClassLoader classLoader) {
        return LongContextInferenceOperator.class;
    }
}
