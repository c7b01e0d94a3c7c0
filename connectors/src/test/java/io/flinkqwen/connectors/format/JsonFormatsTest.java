/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.connectors.format;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.connectors.translate.TranslationResult;
import io.flinkqwen.operators.inference.InferenceResult;
import java.nio.charset.StandardCharsets;
import org.apache.flink.types.Either;
import org.junit.jupiter.api.Test;

class JsonFormatsTest {

    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static String reason(RecordDecoder<?> d, byte[] bytes) {
        Either<DeadLetter, ?> e = Decoding.decode(d, "t-0@7", bytes);
        assertTrue(e.isLeft(), "expected a dead letter, got " + (e.isRight() ? e.right() : null));
        assertEquals("t-0@7", e.left().origin());
        return e.left().reason();
    }

    private static void assertReason(String expectedPart, RecordDecoder<?> d, String json) {
        String r = reason(d, utf8(json));
        assertTrue(r.contains(expectedPart), "reason '" + r + "' does not contain '" + expectedPart + "'");
    }

    @Test
    void translationRequestRoundTripsWithAndWithoutSourceLanguage() throws Exception {
        TranslationRequestFormat f = new TranslationRequestFormat();
        TranslationRequest with = new TranslationRequest("r1", "doc-7", "Hello \"world\"\n<|im_end|> \u00e9\u4e2d", "de", "en");
        TranslationRequest without = new TranslationRequest("r2", "doc-7", "x", "zh", null);
        assertEquals(with, f.decode(TranslationRequestFormat.encode(with)));
        assertEquals(without, f.decode(TranslationRequestFormat.encode(without)));
        // one line per record, whatever the text holds
        assertTrue(!new String(TranslationRequestFormat.encode(with), StandardCharsets.UTF_8).contains("\n"));
    }

    @Test
    void translationRequestAcceptsLanguagesByNameAndRegionTag() throws Exception {
        TranslationRequestFormat f = new TranslationRequestFormat();
        TranslationRequest r = f.decode(utf8("{\"id\":\"1\",\"key\":\"k\",\"text\":\"t\",\"target_lang\":\"German\","
                + "\"source_lang\":\"pt-BR\"}"));
        assertEquals("de", r.targetLang());
        assertEquals("pt", r.sourceLang());
    }

    @Test
    void translationRequestTakesTheDefaultTargetOnlyWhenConfigured() throws Exception {
        byte[] noTarget = utf8("{\"id\":\"1\",\"key\":\"k\",\"text\":\"t\"}");
        assertEquals("fr", new TranslationRequestFormat(1000, "French").decode(noTarget).targetLang());
        assertReason("missing field 'target_lang'", new TranslationRequestFormat(), "{\"id\":\"1\",\"key\":\"k\",\"text\":\"t\"}");
        assertThrows(IllegalArgumentException.class, () -> new TranslationRequestFormat(1000, "Klingon"));
    }

    @Test
    void malformedTranslationRequestsBecomeDeadLettersWithTheReason() {
        TranslationRequestFormat f = new TranslationRequestFormat(200, null);
        assertReason("not valid JSON", f, "{\"id\":\"1\",");
        assertReason("not valid JSON", f, "{\"id\":\"1\"} trailing");
        assertReason("not valid JSON", f, "{\"id\":\"1\",\"id\":\"2\",\"key\":\"k\",\"text\":\"t\",\"target_lang\":\"de\"}");
        assertReason("expected a JSON object, got array", f, "[1,2]");
        assertReason("the record is empty", f, "  ");
        assertReason("missing field 'id'", f, "{\"key\":\"k\",\"text\":\"t\",\"target_lang\":\"de\"}");
        assertReason("missing field 'key'", f, "{\"id\":\"1\",\"text\":\"t\",\"target_lang\":\"de\"}");
        assertReason("missing field 'text'", f, "{\"id\":\"1\",\"key\":\"k\",\"text\":null,\"target_lang\":\"de\"}");
        assertReason("field 'text' is empty", f, "{\"id\":\"1\",\"key\":\"k\",\"text\":\" \",\"target_lang\":\"de\"}");
        assertReason("field 'text' must be a string, got number 42", f,
                "{\"id\":\"1\",\"key\":\"k\",\"text\":42,\"target_lang\":\"de\"}");
        assertReason("unknown language 'xx' in target_lang", f, "{\"id\":\"1\",\"key\":\"k\",\"text\":\"t\",\"target_lang\":\"xx\"}");
        assertReason("unknown language 'Elvish' in source_lang", f,
                "{\"id\":\"1\",\"key\":\"k\",\"text\":\"t\",\"target_lang\":\"de\",\"source_lang\":\"Elvish\"}");
        String oversize = "{\"id\":\"1\",\"key\":\"k\",\"target_lang\":\"de\",\"text\":\"" + "a".repeat(200) + "\"}";
        assertReason("the record is " + utf8(oversize).length + " bytes, over the limit of 200 bytes", f, oversize);
        assertEquals("the record has no value (a tombstone)", reason(f, null));
    }

    @Test
    void invalidUtf8IsReportedWithItsByteOffsetAndKeptReadableInTheDeadLetter() {
        byte[] good = utf8("{\"id\":\"1\",\"key\":\"k\",\"text\":\"ab\",\"target_lang\":\"de\"}");
        byte[] bad = good.clone();
        int at = new String(good, StandardCharsets.UTF_8).indexOf("ab");
        bad[at] = (byte) 0xC3; // a lead byte followed by an ASCII byte
        Either<DeadLetter, TranslationRequest> e = Decoding.decode(new TranslationRequestFormat(), "f:3", bad);
        assertEquals("invalid UTF-8 at byte " + at + " (1 bad byte)", e.left().reason());
        assertTrue(e.left().payload().contains("\ufffdb"), e.left().payload());
        assertEquals(bad.length, e.left().payloadBytes());
    }

    @Test
    void deadLettersKeepOnlyTheStartOfAnOversizeRecord() {
        byte[] big = utf8("x".repeat(100_000));
        DeadLetter d = Decoding.decode(new LogEventFormat(), "f:1", big).left();
        assertEquals(DeadLetter.MAX_PAYLOAD_CHARS, d.payload().length());
        assertEquals(100_000, d.payloadBytes());
        assertTrue(d.reason().startsWith("the record is 100000 bytes, over the limit of 65536 bytes"), d.reason());
    }

    @Test
    void decoderBugsBecomeDeadLettersToo() {
        RecordDecoder<String> broken = new RecordDecoder<>() {
            @Override
            public String decode(byte[] bytes) {
                throw new IllegalStateException("boom");
            }

            @Override
            public org.apache.flink.api.common.typeinfo.TypeInformation<String> producedType() {
                return org.apache.flink.api.common.typeinfo.Types.STRING;
            }
        };
        assertEquals("the decoder failed: java.lang.IllegalStateException: boom", reason(broken, utf8("{}")));
    }

    @Test
    void logEventRoundTripsAndAcceptsIsoTimestampsAndNoLevel() throws Exception {
        LogEventFormat f = new LogEventFormat();
        LogEvent e = new LogEvent("api-1", 1767225600000L, "WARN", "disk 91% full");
        assertEquals(e, f.decode(LogEventFormat.encode(e)));
        assertEquals(new LogEvent("api-1", 1767225600000L, "", "m"),
                f.decode(utf8("{\"source\":\"api-1\",\"ts\":\"2026-01-01T00:00:00Z\",\"message\":\"m\"}")));
        assertEquals(1767225600000L,
                f.decode(utf8("{\"source\":\"a\",\"ts\":\"2026-01-01T01:00:00+01:00\",\"message\":\"m\"}")).tsMillis());
        // an empty message is a log line too
        assertEquals("", f.decode(utf8("{\"source\":\"a\",\"ts\":1,\"message\":\"\"}")).message());
    }

    @Test
    void malformedLogEventsBecomeDeadLettersWithTheReason() {
        LogEventFormat f = new LogEventFormat();
        assertReason("missing field 'source'", f, "{\"ts\":1,\"message\":\"m\"}");
        assertReason("missing field 'ts'", f, "{\"source\":\"a\",\"message\":\"m\"}");
        assertReason("missing field 'message'", f, "{\"source\":\"a\",\"ts\":1}");
        assertReason("field 'ts' is not an ISO-8601 instant: 'yesterday'", f,
                "{\"source\":\"a\",\"ts\":\"yesterday\",\"message\":\"m\"}");
        assertReason("field 'ts' must be epoch milliseconds or an ISO-8601 instant, got number 1.5", f,
                "{\"source\":\"a\",\"ts\":1.5,\"message\":\"m\"}");
        assertReason("field 'level' must be a string, got boolean true", f,
                "{\"source\":\"a\",\"ts\":1,\"level\":true,\"message\":\"m\"}");
        assertReason("not valid JSON", f, "source=a ts=1 message=m");
    }

    @Test
    void resultsRoundTripWithTheirExtras() throws Exception {
        InferenceResult r = new InferenceResult("doc-7", "r1", "Hallo \u00e9", 31, 5, 12, "tiny.gguf");
        TranslationResultFormat f = new TranslationResultFormat();
        TranslationResult t = new TranslationResult(r, "de");
        byte[] json = f.serialize(t);
        assertEquals(t, f.decode(json));
        assertEquals("{\"key\":\"doc-7\",\"id\":\"r1\",\"output\":\"Hallo \u00e9\",\"model\":\"tiny.gguf\","
                + "\"prompt_tokens\":31,\"generated_tokens\":5,\"latency_ms\":12,\"task\":\"translate\","
                + "\"target_lang\":\"de\"}", new String(json, StandardCharsets.UTF_8));
        assertEquals(r, new ResultFormat().decode(new ResultFormat(java.util.Map.of("task", "summarize")).serialize(r)));
        assertThrows(IllegalArgumentException.class, () -> new ResultFormat(java.util.Map.of("id", "x")));
    }

    @Test
    void deadLettersRoundTrip() throws Exception {
        DeadLetter d = DeadLetter.of("in-1@5", "missing field 'text'", utf8("{\"id\":1}"));
        DeadLetterFormat f = new DeadLetterFormat();
        assertEquals(d, f.decode(f.serialize(d)));
    }
}
