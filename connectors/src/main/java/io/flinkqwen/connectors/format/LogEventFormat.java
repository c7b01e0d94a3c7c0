/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.connectors.format;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.format.DateTimeParseException;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.api.common.typeinfo.TypeInformation;

/**
 * JSON log events, {@code {source, ts, level, message}}: {@code ts} is epoch milliseconds or an
 * ISO-8601 instant ({@code 2026-01-01T00:00:00Z}, {@code 2026-01-01T01:00:00+01:00});
 * {@code level} may be absent.
 */
@PublicEvolving
public final class LogEventFormat implements RecordDecoder<LogEvent> {

    private static final long serialVersionUID = 1L;

    private final int maxRecordBytes;

    public LogEventFormat(int maxRecordBytes) {
        if (maxRecordBytes < 1) {
            throw new IllegalArgumentException("maxRecordBytes is " + maxRecordBytes + ": pass at least 1");
        }
        this.maxRecordBytes = maxRecordBytes;
    }

    public LogEventFormat() {
        this(JsonRecords.DEFAULT_MAX_RECORD_BYTES);
    }

    @Override
    public LogEvent decode(byte[] bytes) throws MalformedRecordException {
        ObjectNode o = JsonRecords.parseObject(bytes, maxRecordBytes);
        String source = JsonRecords.requiredText(o, "source");
        long ts = timestamp(o.get("ts"));
        String level = JsonRecords.optionalText(o, "level");
        String message = JsonRecords.optionalText(o, "message");
        if (message == null) {
            throw new MalformedRecordException("missing field 'message'");
        }
        return new LogEvent(source, ts, level == null ? "" : level, message);
    }

    private static long timestamp(JsonNode n) throws MalformedRecordException {
        if (n == null || n.isNull()) {
            throw new MalformedRecordException("missing field 'ts'");
        }
        if (n.isIntegralNumber() && n.canConvertToLong()) {
            return n.longValue();
        }
        if (n.isTextual()) {
            String s = n.textValue().trim();
            try {
                return Instant.parse(s).toEpochMilli();
            } catch (DateTimeParseException e) {
                try {
                    return OffsetDateTime.parse(s).toInstant().toEpochMilli();
                } catch (DateTimeParseException e2) {
                    throw new MalformedRecordException("field 'ts' is not an ISO-8601 instant: '" + s + "'");
                }
            }
        }
        throw new MalformedRecordException("field 'ts' must be epoch milliseconds or an ISO-8601 instant, got "
                + JsonRecords.describe(n));
    }

    /** The event as JSON, {@code ts} as epoch milliseconds. */
    public static byte[] encode(LogEvent e) {
        ObjectNode o = JsonRecords.MAPPER.createObjectNode();
        o.put("source", e.source());
        o.put("ts", e.tsMillis());
        o.put("level", e.level());
        o.put("message", e.message());
        return JsonRecords.write(o);
    }

    @Override
    public TypeInformation<LogEvent> producedType() {
        return TypeInformation.of(LogEvent.class);
    }
}
