/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.connectors.lines;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.connectors.format.DeadLetter;
import io.flinkqwen.connectors.format.LogEvent;
import io.flinkqwen.connectors.format.LogEventFormat;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.types.Either;
import org.junit.jupiter.api.Test;

class JsonLinesFormatTest {

    @Test
    void linesBecomeEventsOrDeadLettersNamingTheLineAndTheReaderGoesOn() throws Exception {
        ByteArrayOutputStream in = new ByteArrayOutputStream();
        in.writeBytes("{\"source\":\"a\",\"ts\":1,\"message\":\"one\"}\r\n".getBytes(StandardCharsets.UTF_8));
        in.writeBytes("\n   \n".getBytes(StandardCharsets.UTF_8)); // blank lines: skipped, still counted
        in.writeBytes("{\"source\":\"a\",\"ts\":2}\n".getBytes(StandardCharsets.UTF_8));
        in.writeBytes(new byte[] {'{', '"', (byte) 0xFF, '"', '}', '\n'});
        in.writeBytes(("{\"source\":\"a\",\"ts\":3,\"message\":\"" + "z".repeat(300) + "\"}\n").getBytes(StandardCharsets.UTF_8));
        in.writeBytes("{\"source\":\"b\",\"ts\":4,\"message\":\"last, no newline\"}".getBytes(StandardCharsets.UTF_8));
        List<Either<DeadLetter, LogEvent>> out = new ArrayList<>();
        try (JsonLinesFormat.LineReader<LogEvent> r =
                new JsonLinesFormat.LineReader<>(new ByteArrayInputStream(in.toByteArray()), new LogEventFormat(), "logs.jsonl", 200)) {
            Either<DeadLetter, LogEvent> e;
            while ((e = r.read()) != null) {
                out.add(e);
            }
            assertNull(r.read());
        }
        assertEquals(5, out.size(), out.toString());
        assertEquals(new LogEvent("a", 1, "", "one"), out.get(0).right());
        assertEquals(new DeadLetter("logs.jsonl:4", "missing field 'message'", "{\"source\":\"a\",\"ts\":2}", 21), out.get(1).left());
        assertEquals("logs.jsonl:5", out.get(2).left().origin());
        assertEquals("invalid UTF-8 at byte 2 (1 bad byte)", out.get(2).left().reason());
        assertEquals("logs.jsonl:6", out.get(3).left().origin());
        assertEquals("the line is 334 bytes, over the limit of 200 bytes", out.get(3).left().reason());
        assertEquals(334, out.get(3).left().payloadBytes());
        assertTrue(out.get(3).left().payload().length() <= 201);
        assertEquals(new LogEvent("b", 4, "", "last, no newline"), out.get(4).right());
    }
}
