/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.inference;

import io.flinkqwen.engine.model.Qwen2Model;
import io.flinkqwen.engine.serve.ContinuousBatchingEngine;
import io.flinkqwen.engine.serve.InferenceEngine;
import java.io.Serializable;
import org.apache.flink.annotation.PublicEvolving;

/**
 * Makes the engine of one operator instance in {@code open()}. Serializable: it travels with
 * the operator factory. The default is {@link #continuousBatching()}; tests decorate it.
 */
@PublicEvolving
@FunctionalInterface
public interface EngineFactory extends Serializable {

    /**
     * @param forward a forward pass over the loaded weights, owned by the engine from now on
     * @param settings the operator's settings (sequences per step, capacity, KV budget)
     */
    InferenceEngine create(Qwen2Model forward, InferenceSettings settings);

    /**
     * A {@link ContinuousBatchingEngine} with the settings' sequences, capacity and KV budget
     * (running and idle), whose requests share the KV blocks of common prompt prefixes.
     */
    static EngineFactory continuousBatching() {
        return continuousBatching(true);
    }

    /** As {@link #continuousBatching()}, with prefix sharing on or off. */
    static EngineFactory continuousBatching(boolean prefixSharing) {
        return (forward, s) ->
                new ContinuousBatchingEngine(forward, s.maxSequences(), s.capacity(), s.kvBudgetBytes(), prefixSharing);
    }
}
