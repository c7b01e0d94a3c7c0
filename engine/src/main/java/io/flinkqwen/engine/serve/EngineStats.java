/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.serve;

/**
 * What an {@link InferenceEngine} holds and has done, for metrics; a snapshot, each field read
 * on its own (they need not be consistent with each other).
 *
 * @param kvBytesInUse bytes of KV cache held now: running sequences plus idle sessions
 * @param idleKvBytes the part of {@code kvBytesInUse} held by idle sessions (the budget bounds the
 *     whole of {@code kvBytesInUse})
 * @param evictions idle sessions whose cache was dropped to stay within the budget (or to admit
 *     a request), so far
 * @param prefilledTokens prompt tokens run through the model by prefill, so far
 * @param reusedTokens prompt tokens not prefilled because a session's cache held them, so far
 * @param generatedTokens tokens sampled so far, each counted in the step that sampled it (stop
 *     tokens not counted): it advances while a generation is under way, not only when a request
 *     completes
 */
public record EngineStats(
        long kvBytesInUse, long idleKvBytes, long evictions, long prefilledTokens, long reusedTokens, long generatedTokens) {

    /** An engine that keeps no statistics. */
    public static final EngineStats NONE = new EngineStats(0, 0, 0, 0, 0, 0);
}
