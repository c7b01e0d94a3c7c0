/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.connectors.format;

import org.apache.flink.annotation.PublicEvolving;

/** A record that cannot be decoded; the message is the dead letter's reason. */
@PublicEvolving
public final class MalformedRecordException extends Exception {

    private static final long serialVersionUID = 1L;

    public MalformedRecordException(String reason) {
        super(reason, null, false, false);
    }
}
