/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.inference;

import org.apache.flink.annotation.PublicEvolving;

/**
 * An event the operator did not answer, sent to {@link LongContextInferenceOperator#REJECTED}
 * instead of failing the job.
 *
 * @param event the event as received
 * @param reason why, naming the request id and the limit or error
 */
@PublicEvolving
public record RejectedEvent(InferenceEvent event, String reason) {}
