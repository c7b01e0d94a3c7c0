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
 * @param prompt the whole context to continue from (for a session: its full history plus the
 *     new tokens), already tokenized; read in place, not copied (see {@link PromptTokens} for
 *     how long it must stay readable)
 * @param params sampling, stop tokens and the limit of new tokens
 */
public record GenerationRequest(String id, String session, PromptTokens prompt, SamplingParams params) {

    /** A request outside any session; {@code promptIds} is copied. */
    public GenerationRequest(String id, int[] promptIds, SamplingParams params) {
        this(id, null, promptIds, params);
    }

    /** A request with its prompt in a heap array; {@code promptIds} is copied. */
    public GenerationRequest(String id, String session, int[] promptIds, SamplingParams params) {
        this(id, session, promptIds == null ? null : PromptTokens.of(promptIds), params);
    }

    public GenerationRequest {
        Objects.requireNonNull(id, "id");
        Objects.requireNonNull(params, "params");
        if (prompt == null || prompt.length() == 0) {
            throw new IllegalArgumentException("request " + id + ": the prompt is empty");
        }
    }

    /** The prompt's ids in a new array. */
    public int[] promptIds() {
        return prompt.toArray();
    }
}
