/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.serve;

import io.flinkqwen.engine.generate.Generator.StopReason;

/**
 * What an {@link InferenceEngine} generated for one request.
 *
 * @param id the request's id
 * @param ids the generated ids, without the stop token
 * @param stopReason why generation ended
 * @param queuedNanos from submit to admission into the running batch
 * @param prefillNanos the prompt's forward pass
 * @param decodeNanos from the first generated token to the last
 */
public record GenerationResult(
        String id, int[] ids, StopReason stopReason, long queuedNanos, long prefillNanos, long decodeNanos) {

    public GenerationResult {
        ids = ids.clone();
    }

    @Override
    public int[] ids() {
        return ids.clone();
    }
}
