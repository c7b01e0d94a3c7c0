/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.connectors.format;

import java.nio.ByteBuffer;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import org.apache.flink.annotation.PublicEvolving;

/**
 * A record that was not processed, with the reason, instead of an exception that fails the job.
 * A Java record, which Flink 2.2 serializes as a POJO.
 *
 * @param origin where the record came from: {@code topic-partition@offset} for Kafka,
 *     {@code file:line} for line files, or the request id for records the model did not answer
 * @param reason what is wrong, naming the field or limit
 * @param payload the record's bytes as text (invalid UTF-8 replaced by U+FFFD), cut at
 *     {@link #MAX_PAYLOAD_CHARS} characters: enough to find the record, not a copy of it
 * @param payloadBytes the record's size in bytes before cutting
 */
@PublicEvolving
public record DeadLetter(String origin, String reason, String payload, int payloadBytes) {

    /** How much of a bad record a dead letter keeps. */
    public static final int MAX_PAYLOAD_CHARS = 1024;

    /** A dead letter for the raw {@code bytes} of a record; {@code bytes} may be null (a Kafka tombstone). */
    public static DeadLetter of(String origin, String reason, byte[] bytes) {
        if (bytes == null) {
            return new DeadLetter(origin, reason, "", 0);
        }
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPLACE)
                    .onUnmappableCharacter(CodingErrorAction.REPLACE)
                    .decode(ByteBuffer.wrap(bytes, 0, Math.min(bytes.length, MAX_PAYLOAD_CHARS * 4)))
                    .toString();
        } catch (java.nio.charset.CharacterCodingException e) {
            throw new IllegalStateException("REPLACE never throws", e);
        }
        return new DeadLetter(origin, reason, cut(text), bytes.length);
    }

    /** A dead letter for a record already held as text. */
    public static DeadLetter ofText(String origin, String reason, String text) {
        String t = text == null ? "" : text;
        return new DeadLetter(origin, reason, cut(t), t.getBytes(StandardCharsets.UTF_8).length);
    }

    private static String cut(String text) {
        return text.length() <= MAX_PAYLOAD_CHARS ? text : text.substring(0, MAX_PAYLOAD_CHARS);
    }
}
