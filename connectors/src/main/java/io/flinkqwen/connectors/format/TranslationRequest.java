/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.connectors.format;

import org.apache.flink.annotation.PublicEvolving;

/**
 * One segment to translate:
 * {@code {"id": "r1", "key": "doc-7", "text": "...", "target_lang": "de", "source_lang": "en"}}.
 *
 * @param id the request id, echoed in the result
 * @param key the conversation or document; segments of one key share a context
 * @param text the segment; data, never control
 * @param targetLang the ISO 639-1 code of the target language (the JSON may name it by code or
 *     by English name; the decoder resolves it)
 * @param sourceLang the ISO 639-1 code of the source language, or null when not given
 */
@PublicEvolving
public record TranslationRequest(String id, String key, String text, String targetLang, String sourceLang) {}
