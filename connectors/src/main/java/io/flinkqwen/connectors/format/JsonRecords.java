/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.connectors.format;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import org.apache.flink.annotation.Internal;

/**
 * The checks every JSON event format shares, in the order a reader wants the reason: size,
 * UTF-8, JSON syntax, an object, then each field.
 */
@Internal
public final class JsonRecords {

    /** The default size limit of one record: far more text than a context window holds. */
    public static final int DEFAULT_MAX_RECORD_BYTES = 64 * 1024;

    /** Thread-safe once configured; duplicate keys and trailing data are errors, not last-one-wins. */
    static final ObjectMapper MAPPER = JsonMapper.builder()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .build();

    private JsonRecords() {}

    /** Checks size and encoding and parses one JSON object. */
    public static ObjectNode parseObject(byte[] bytes, int maxBytes) throws MalformedRecordException {
        if (bytes == null) {
            throw new MalformedRecordException("the record has no value (a tombstone)");
        }
        if (bytes.length > maxBytes) {
            throw new MalformedRecordException(
                    "the record is " + bytes.length + " bytes, over the limit of " + maxBytes + " bytes");
        }
        String text = utf8(bytes);
        if (text.isBlank()) {
            throw new MalformedRecordException("the record is empty");
        }
        JsonNode node;
        try {
            node = MAPPER.readTree(text);
        } catch (JsonProcessingException e) {
            throw new MalformedRecordException("not valid JSON: " + e.getOriginalMessage()
                    + (e.getLocation() == null ? "" : " at column " + e.getLocation().getColumnNr()));
        }
        if (!(node instanceof ObjectNode)) {
            throw new MalformedRecordException("expected a JSON object, got " + describe(node));
        }
        return (ObjectNode) node;
    }

    /** Strict UTF-8: the reason names the byte offset of the first bad sequence. */
    static String utf8(byte[] bytes) throws MalformedRecordException {
        CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
        ByteBuffer in = ByteBuffer.wrap(bytes);
        CharBuffer out = CharBuffer.allocate(bytes.length);
        CoderResult r = decoder.decode(in, out, true);
        if (r.isError()) {
            throw new MalformedRecordException("invalid UTF-8 at byte " + in.position() + " (" + r.length()
                    + " bad byte" + (r.length() == 1 ? "" : "s") + ")");
        }
        decoder.flush(out);
        out.flip();
        return out.toString();
    }

    /** A field that must be a non-empty string. */
    public static String requiredText(ObjectNode o, String field) throws MalformedRecordException {
        String s = optionalText(o, field);
        if (s == null) {
            throw new MalformedRecordException("missing field '" + field + "'");
        }
        if (s.isBlank()) {
            throw new MalformedRecordException("field '" + field + "' is empty");
        }
        return s;
    }

    /** A field that may be absent or null; present, it must be a string. */
    public static String optionalText(ObjectNode o, String field) throws MalformedRecordException {
        JsonNode n = o.get(field);
        if (n == null || n.isNull()) {
            return null;
        }
        if (!n.isTextual()) {
            throw new MalformedRecordException("field '" + field + "' must be a string, got " + describe(n));
        }
        return n.textValue();
    }

    static String describe(JsonNode n) {
        return n.getNodeType().name().toLowerCase(java.util.Locale.ROOT)
                + (n.isValueNode() ? " " + cut(n.toString()) : "");
    }

    private static String cut(String s) {
        return s.length() <= 40 ? s : s.substring(0, 40) + "...";
    }

    /** One line of JSON; Jackson escapes control characters, so the line never breaks. */
    static byte[] write(ObjectNode o) {
        try {
            return MAPPER.writeValueAsBytes(o);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("a tree of strings and numbers always serializes", e);
        }
    }
}
