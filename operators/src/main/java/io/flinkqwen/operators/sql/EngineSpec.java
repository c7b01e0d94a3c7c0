/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.sql;

import io.flinkqwen.engine.model.KvFormat;
import java.io.Serializable;
import java.util.Objects;
import org.apache.flink.annotation.Internal;

/**
 * What makes one shared engine: the model and the engine's shape. Two SQL functions (or models)
 * with equal specs in one JVM share one loaded model and one engine ({@link SharedEngines}).
 *
 * @param model a {@code .gguf} file, a Hugging Face folder or a Hugging Face id, as given
 * @param threads kernel threads of the engine
 * @param maxSequences sequences the engine advances together in one step (the batch bound)
 * @param capacity requests in the engine at most (running and queued); more wait in the
 *     registry's queue, never dropped
 * @param kvBudgetBytes KV-cache bytes of the engine's running requests
 * @param device kernel backend: auto, cpu or tornado
 * @param kvFormat how the engine stores its KV caches
 */
@Internal
public record EngineSpec(
        String model, int threads, int maxSequences, int capacity, long kvBudgetBytes, String device, KvFormat kvFormat)
        implements Serializable {

    /** On the {@code auto} kernel backend, KV caches as {@link KvFormat#fromSystemProperty()} says. */
    public EngineSpec(String model, int threads, int maxSequences, int capacity, long kvBudgetBytes) {
        this(model, threads, maxSequences, capacity, kvBudgetBytes, "auto", KvFormat.fromSystemProperty());
    }

    public EngineSpec {
        Objects.requireNonNull(model, "model");
        Objects.requireNonNull(device, "device");
        Objects.requireNonNull(kvFormat, "kvFormat");
        check(threads >= 1, "threads", threads, ">= 1");
        check(maxSequences >= 1, "max-sequences", maxSequences, ">= 1");
        check(capacity >= maxSequences, "capacity", capacity, ">= max-sequences = " + maxSequences);
        check(kvBudgetBytes >= 0, "kv-budget", kvBudgetBytes, ">= 0");
    }

    private static void check(boolean ok, String name, long value, String expected) {
        if (!ok) {
            throw new IllegalArgumentException(name + " must be " + expected + ", got " + value);
        }
    }
}
