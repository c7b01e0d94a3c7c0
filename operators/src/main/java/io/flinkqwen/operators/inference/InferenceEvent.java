/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.inference;

import org.apache.flink.annotation.PublicEvolving;

/**
 * One event for the long-context operator: a new user turn for the conversation {@code key}.
 * A Java record, which Flink 2.2 serializes as a POJO.
 *
 * @param key the conversation (log source, document, chat); the operator's key; non-null
 * @param requestId the caller's id, echoed in the result and in every rejection
 * @param text the turn's text; data, never control: special tokens in it are not parsed
 * @param eventTimeMillis event time; the result carries it as its timestamp
 */
@PublicEvolving
public record InferenceEvent(String key, String requestId, String text, long eventTimeMillis) {}
