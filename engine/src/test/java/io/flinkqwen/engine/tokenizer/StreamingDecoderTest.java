/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.tokenizer;

import static io.flinkqwen.engine.tokenizer.IdAssertions.escape;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.engine.tokenizer.TokenizerSamples.Language;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Streaming decode never emits half a character and, with its flush, always equals the decode
 * of all ids at once. The byte-per-token vocabulary puts a token boundary after every byte; the
 * real vocabulary has tokens that end inside characters.
 */
class StreamingDecoderTest {

    private static final Qwen2Tokenizer BYTES = TinyVocabulary.bytesOnly().fromVocabulary();

    /** Feeds {@code ids} one by one; returns each call's output, then the flush's. */
    private static List<String> stream(Qwen2Tokenizer tokenizer, int[] ids) {
        StreamingDecoder decoder = new StreamingDecoder(tokenizer);
        List<String> out = new ArrayList<>();
        for (int id : ids) {
            out.add(decoder.accept(id));
            assertTrue(decoder.pendingBytes() <= 3, "at most 3 bytes held");
        }
        out.add(decoder.flush());
        assertEquals(0, decoder.pendingBytes());
        return out;
    }

    private static int[] byteIds(byte[] bytes) {
        int[] ids = new int[bytes.length];
        for (int i = 0; i < bytes.length; i++) {
            ids[i] = bytes[i] & 0xFF; // in the bytes-only vocabulary, id = byte value
        }
        return ids;
    }

    @Test
    void validTextSplitAtEveryByteEmitsEachCharacterWhenItsLastByteArrives() {
        List<String> texts = new ArrayList<>(TokenizerSamples.EMOJI);
        for (Language l : TokenizerSamples.languages()) {
            texts.add(l.text());
        }
        for (String text : texts) {
            byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
            List<String> out = stream(BYTES, byteIds(bytes));
            StringBuilder emitted = new StringBuilder();
            for (int k = 0; k < bytes.length; k++) {
                emitted.append(out.get(k));
                // after byte k, exactly the characters whose bytes all arrived are out
                String complete = completeCharacters(text, k + 1);
                assertEquals(complete, emitted.toString(), () -> "after a byte of " + escape(text));
            }
            assertEquals("", out.get(bytes.length), "nothing is left for flush");
        }
    }

    /** The characters of {@code text} whose UTF-8 ends within its first {@code byteCount} bytes. */
    private static String completeCharacters(String text, int byteCount) {
        int bytes = 0;
        int i = 0;
        while (i < text.length()) {
            int cp = text.codePointAt(i);
            int n = new String(Character.toChars(cp)).getBytes(StandardCharsets.UTF_8).length;
            if (bytes + n > byteCount) {
                break;
            }
            bytes += n;
            i += Character.charCount(cp);
        }
        return text.substring(0, i);
    }

    @Test
    void everyTwoPartSplitOfMultiByteTextReassembles() {
        String text = "a中é😀👨‍👩‍👧🇩🇪ñ\u0301";
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        for (int cut = 0; cut <= bytes.length; cut++) {
            StreamingDecoder decoder = new StreamingDecoder(BYTES);
            StringBuilder sb = new StringBuilder();
            for (int k = 0; k < cut; k++) {
                sb.append(decoder.accept(bytes[k] & 0xFF));
            }
            String first = sb.toString();
            assertFalse(first.contains("\uFFFD"), "no replacement before the rest arrives");
            for (int k = cut; k < bytes.length; k++) {
                sb.append(decoder.accept(bytes[k] & 0xFF));
            }
            sb.append(decoder.flush());
            assertEquals(text, sb.toString());
        }
    }

    @Test
    void invalidBytesAreReplacedAtOnceAndAnIncompleteTailAtFlush() {
        StreamingDecoder decoder = new StreamingDecoder(BYTES);
        assertEquals("\uFFFD", decoder.accept(0x80)); // a stray continuation byte cannot wait
        assertEquals("", decoder.accept(0xE2));
        assertEquals("", decoder.accept(0x82));
        assertEquals("\uFFFDA", decoder.accept('A')); // E2 82 then A: one replacement
        assertEquals("", decoder.accept(0xF0));
        assertEquals(1, decoder.pendingBytes());
        assertEquals("\uFFFD", decoder.flush());
        assertEquals("ok", decoder.accept('o') + decoder.accept('k')); // usable after flush
        assertEquals("\uFFFD\uFFFD", decoder.accept(0xE0) + decoder.accept(0x80)); // never valid
    }

    @Test
    void randomBytesStreamToTheSameTextAsDecodingAtOnce() {
        SplittableRandom random = new SplittableRandom(17);
        for (int i = 0; i < 20_000; i++) {
            byte[] bytes = new byte[random.nextInt(10)];
            for (int k = 0; k < bytes.length; k++) {
                bytes[k] = (byte) (random.nextBoolean() ? 0x80 + random.nextInt(0x80) : random.nextInt(256));
            }
            int[] ids = byteIds(bytes);
            assertEquals(BYTES.decode(ids), String.join("", stream(BYTES, ids)));
        }
    }

    @Test
    void unknownIdIsRefusedAndLeavesTheDecoderAsItWas() {
        StreamingDecoder decoder = new StreamingDecoder(BYTES);
        decoder.accept(0xE4);
        assertThrows(IllegalArgumentException.class, () -> decoder.accept(256));
        assertEquals(1, decoder.pendingBytes());
        assertEquals("中", decoder.accept(0xB8) + decoder.accept(0xAD));
    }

    /** Real tokens end inside characters (a Chinese character or emoji often spans two). */
    @Test
    void realVocabularyStreamsWithoutReplacementCharacters() {
        Qwen2Tokenizer tokenizer = RealQwen.ours();
        List<String> texts = new ArrayList<>(TokenizerSamples.EMOJI);
        texts.addAll(TokenizerSamples.WITH_ADDED_TOKENS);
        for (Language l : TokenizerSamples.languages()) {
            texts.add(l.text());
        }
        int splitCharacters = 0;
        for (String text : texts) {
            int[] ids = tokenizer.encodeWithSpecialTokens(text);
            List<String> out = stream(tokenizer, ids);
            for (int k = 0; k < ids.length; k++) {
                String piece = out.get(k);
                assertFalse(piece.contains("\uFFFD"), () -> "replacement in " + escape(text));
                if (piece.isEmpty()) {
                    splitCharacters++;
                }
            }
            assertEquals(tokenizer.decode(ids), String.join("", out));
        }
        assertTrue(splitCharacters > 100, "the samples have tokens that end inside characters: " + splitCharacters);
    }
}
