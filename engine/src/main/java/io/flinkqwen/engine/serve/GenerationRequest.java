/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.serve;

import io.flinkqwen.engine.generate.SamplingParams;
import java.util.Objects;

/**
 * One generation asked of an {@link InferenceEngine}.
 *
 * @param id the caller's id, echoed in the result and in error messages (a Flink record id)
 * @param session a long-lived context this request continues (a Flink key), or null. The
 *     engine keeps the KV cache of a session between requests and reuses the longest prefix
 *     of {@code promptIds} it already holds, so a request that appends to its session's
 *     history pays only the prefill of the new tokens. Requests of one session run one at a
 *     time, in submission order.
 * @param promptIds the whole context to continue from (for a session: its full history plus
 *     the new tokens), already tokenized; copied
 * @param params sampling, stop tokens and the limit of new tokens
 */
public record GenerationRequest(String id, String session, int[] promptIds, SamplingParams params) {

    /** A request outside any session. */
    public GenerationRequest(String id, int[] promptIds, SamplingParams params) {
        this(id, null, promptIds, params);
    }

    public GenerationRequest {
        Objects.requireNonNull(id, "id");
        Objects.requireNonNull(params, "params");
        if (promptIds == null || promptIds.length == 0) {
            throw new IllegalArgumentException("request " + id + ": the prompt is empty");
        }
        promptIds = promptIds.clone();
    }

    @Override
    public int[] promptIds() {
        return promptIds.clone();
    }
}
