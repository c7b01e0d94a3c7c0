/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.inference;

import org.apache.flink.annotation.PublicEvolving;

/**
 * What the model answered to one {@link InferenceEvent}.
 *
 * @param key the event's key
 * @param requestId the event's id
 * @param outputText the generated text, decoded, without the stop token
 * @param promptTokens the tokens of the prompt the engine continued (history after trimming +
 *     this turn)
 * @param generatedTokens the tokens generated, without the stop token
 * @param latencyMillis from the request's hand-over to the engine to its result (the wait
 *     behind earlier events of the same key is not included)
 * @param model the model's name (the operator's setting; by default the model file's name)
 */
@PublicEvolving
public record InferenceResult(
        String key,
        String requestId,
        String outputText,
        int promptTokens,
        int generatedTokens,
        long latencyMillis,
        String model) {}
