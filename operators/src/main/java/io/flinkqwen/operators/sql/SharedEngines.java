/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.sql;

import io.flinkqwen.engine.LoadedModel;
import io.flinkqwen.engine.hub.ModelLocator;
import io.flinkqwen.engine.serve.ContinuousBatchingEngine;
import io.flinkqwen.engine.serve.GenerationRequest;
import io.flinkqwen.engine.serve.GenerationResult;
import io.flinkqwen.engine.serve.InferenceEngine;
import io.flinkqwen.engine.tokenizer.ChatMl;
import io.flinkqwen.kernels.KernelPool;
import io.flinkqwen.operators.inference.ModelLoading;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import org.apache.flink.annotation.Internal;
import org.apache.flink.annotation.VisibleForTesting;

/**
 * One loaded model and one {@link ContinuousBatchingEngine} per {@link EngineSpec} per JVM,
 * reference counted: the parallel instances of SQL functions and ML_PREDICT models in a task
 * manager share them, so the weights are mapped once and concurrent calls of all instances are
 * batched together by the engine. The last {@link Lease#close()} closes the engine and unmaps
 * the model.
 *
 * <p>The registry is static, so "per JVM" means per class loader that loaded this class: with
 * the jar in a job's user code, the jobs of one task manager each have their own.
 */
@Internal
public final class SharedEngines {

    private static final Map<EngineSpec, Shared> ENGINES = new HashMap<>(); // guarded by SharedEngines.class

    private SharedEngines() {}

    /**
     * The engine of {@code spec}, loaded now if no lease holds it.
     *
     * @throws RuntimeException naming the model if it cannot be found or loaded
     */
    public static Lease acquire(EngineSpec spec) {
        synchronized (SharedEngines.class) {
            Shared s = ENGINES.get(spec);
            if (s == null) {
                s = Shared.load(spec);
                ENGINES.put(spec, s);
            }
            s.refs++;
            return new Lease(s);
        }
    }

    /** Engines loaded now (each held by at least one lease). */
    @VisibleForTesting
    public static int loaded() {
        synchronized (SharedEngines.class) {
            return ENGINES.size();
        }
    }

    private static void release(Shared s) {
        synchronized (SharedEngines.class) {
            if (--s.refs > 0) {
                return;
            }
            ENGINES.remove(s.spec);
        }
        s.close();
    }

    /** One holder's use of a shared engine; {@link #close()} once, when the holder closes. */
    public static final class Lease implements AutoCloseable {
        private final Shared shared;
        private boolean closed;

        private Lease(Shared shared) {
            this.shared = shared;
        }

        public ChatMl chatMl() {
            return shared.chatMl;
        }

        public LoadedModel model() {
            return shared.model;
        }

        /** Ids that end a generation (the model's eos, {@code <|im_end|>}, {@code <|endoftext|>}). */
        public int[] stopTokens() {
            return shared.stopTokens.clone();
        }

        /**
         * Hands {@code request} to the engine, or queues it while the engine is at capacity: the
         * future completes with the result, or exceptionally with why the request failed.
         */
        public CompletableFuture<GenerationResult> submit(GenerationRequest request) {
            return shared.submit(request);
        }

        /** Cancels a request given to {@link #submit} (a waiting one at once, a running one before the next step). */
        public void cancel(GenerationRequest request) {
            shared.cancel(request);
        }

        @Override
        public synchronized void close() {
            if (!closed) {
                closed = true;
                release(shared);
            }
        }
    }

    /** A request waiting for room in the engine. */
    private record Waiting(GenerationRequest request, CompletableFuture<GenerationResult> result) {}

    private static final class Shared {
        final EngineSpec spec;
        final LoadedModel model;
        final KernelPool pool;
        final InferenceEngine engine;
        final ChatMl chatMl;
        final int[] stopTokens;
        int refs; // guarded by SharedEngines.class

        // more requests than the engine's capacity wait here; guarded by this
        private final ArrayDeque<Waiting> waiting = new ArrayDeque<>();
        private int handedOver;
        private boolean closed;

        private Shared(EngineSpec spec, LoadedModel model, KernelPool pool, InferenceEngine engine) {
            this.spec = spec;
            this.model = model;
            this.pool = pool;
            this.engine = engine;
            this.chatMl = new ChatMl(model.tokenizer());
            this.stopTokens = model.stopTokens();
        }

        static Shared load(EngineSpec spec) {
            // an unusable model fails the job instead of restarting it forever (ModelLoading)
            LoadedModel model = ModelLoading.open(ModelLocator.resolve(spec.model()));
            KernelPool pool = null;
            try {
                pool = new KernelPool(spec.threads());
                InferenceEngine engine = new ContinuousBatchingEngine(
                        model.newForward(pool, model.defaultChunkTokens(), io.flinkqwen.kernels.backend.KernelBackends.select(spec.device()),
                                spec.kvFormat()),
                        spec.maxSequences(), spec.capacity(), spec.kvBudgetBytes());
                return new Shared(spec, model, pool, engine);
            } catch (RuntimeException e) {
                if (pool != null) {
                    pool.close();
                }
                model.close();
                throw e;
            }
        }

        CompletableFuture<GenerationResult> submit(GenerationRequest request) {
            CompletableFuture<GenerationResult> result = new CompletableFuture<>();
            synchronized (this) {
                if (closed) {
                    throw new IllegalStateException("the engine of " + spec.model() + " is closed");
                }
                if (handedOver >= engine.capacity()) {
                    waiting.add(new Waiting(request, result));
                    return result;
                }
                handedOver++;
            }
            handOver(request, result);
            return result;
        }

        // the engine counts a request out before it completes its future, so a request handed
        // over from a completion callback always finds room
        private void handOver(GenerationRequest request, CompletableFuture<GenerationResult> result) {
            CompletableFuture<GenerationResult> running;
            try {
                running = engine.submit(request);
            } catch (RuntimeException e) {
                result.completeExceptionally(e);
                next();
                return;
            }
            running.whenComplete((r, failure) -> {
                next();
                if (failure != null) {
                    result.completeExceptionally(failure);
                } else {
                    result.complete(r);
                }
            });
        }

        /** One handed-over request ended: the oldest waiting one takes its place. */
        private void next() {
            Waiting w;
            synchronized (this) {
                w = closed ? null : waiting.poll();
                if (w == null) {
                    handedOver--;
                    return;
                }
            }
            handOver(w.request(), w.result());
        }

        void cancel(GenerationRequest request) {
            Waiting found = null;
            synchronized (this) {
                for (Waiting w : waiting) {
                    if (w.request() == request) {
                        found = w;
                        break;
                    }
                }
                if (found != null) {
                    waiting.remove(found);
                }
            }
            if (found != null) {
                found.result().completeExceptionally(new CancellationException("request " + request.id() + " cancelled"));
            } else {
                engine.cancel(request);
            }
        }

        void close() {
            ArrayDeque<Waiting> left;
            synchronized (this) {
                closed = true;
                left = new ArrayDeque<>(waiting);
                waiting.clear();
            }
            for (Waiting w : left) {
                w.result().completeExceptionally(
                        new CancellationException("engine of " + spec.model() + " closed before request " + w.request().id() + " started"));
            }
            try {
                engine.close(); // joins the scheduler
            } finally {
                pool.close();
                model.close();
            }
        }
    }
}
