/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.connectors.translate;

import io.flinkqwen.operators.inference.InferenceResult;
import org.apache.flink.annotation.PublicEvolving;

/**
 * One translated segment.
 *
 * @param result the model's answer: key, request id, output text, model, token counts, latency
 * @param targetLang the ISO 639-1 code of the language it was translated into
 */
@PublicEvolving
public record TranslationResult(InferenceResult result, String targetLang) {}
