/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.serve;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.RejectedExecutionException;

/**
 * The engine as a stream processor drives it: requests go in, each result comes back on its own
 * future, many requests are in flight at once. Flink-free; the operator adapts it.
 *
 * <p>Backpressure, never a drop: {@link #submit} refuses work beyond {@link #capacity()} with
 * {@link RejectedExecutionException}, so the caller checks {@link #hasCapacity()} first and
 * waits (the Flink operator yields to its mailbox) instead of losing a record.
 */
public interface InferenceEngine extends AutoCloseable {

    /**
     * Queues a request. The future completes with the result, or exceptionally with the reason
     * this request failed (context overflow, a token outside the vocabulary): one request's
     * failure never fails the others.
     *
     * @throws RejectedExecutionException if {@link #hasCapacity()} is false, or the engine is
     *     closed
     */
    CompletableFuture<GenerationResult> submit(GenerationRequest request);

    /**
     * Cancels {@code request}, the very object given to {@link #submit} (compared by identity:
     * ids are the caller's and need not be unique). The request stops consuming steps, its slot
     * and KV cache are freed, and its future completes exceptionally with a {@link
     * java.util.concurrent.CancellationException} once the engine no longer reads its prompt
     * (the {@link PromptTokens} contract still holds until then); it may still complete normally
     * if it finished in the step under way. Cancelling the future itself
     * does not reach the engine; call this.
     *
     * @return whether the request was in flight and is now being cancelled; false if it had
     *     completed, was cancelled already, was never submitted, or the engine cannot cancel
     *     (this default)
     */
    default boolean cancel(GenerationRequest request) {
        return false;
    }

    /** Whether one more {@link #submit} would be accepted now. */
    boolean hasCapacity();

    /** Requests accepted and not completed yet (queued or running). */
    int inFlight();

    /** The most requests in flight at once. */
    int capacity();

    /** Cache sizes and counters for metrics; {@link EngineStats#NONE} if the engine keeps none. */
    default EngineStats stats() {
        return EngineStats.NONE;
    }

    /** Stops the engine; requests not completed yet complete exceptionally (cancelled). */
    @Override
    void close();
}
