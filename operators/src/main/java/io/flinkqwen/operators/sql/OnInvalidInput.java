/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.sql;

import org.apache.flink.annotation.PublicEvolving;

/**
 * What a SQL call with invalid input gives: an unknown target language, {@code max_tokens}
 * below 1, a prompt longer than the model's context. SQL has no side output, so by default the
 * call answers NULL, counts it in the metric {@code invalidInputs} and logs the reason (the
 * first ten, then every thousandth), and the query goes on: one bad row never stops a stream.
 * {@link #FAIL} makes such a call fail the query instead (Flink's restart strategy decides
 * what follows). Failures of the engine itself always fail the call.
 */
@PublicEvolving
public enum OnInvalidInput {
    /** The call answers NULL; the reason is counted and logged. */
    NULL,
    /** The call fails with the reason, naming the function and the value. */
    FAIL
}
