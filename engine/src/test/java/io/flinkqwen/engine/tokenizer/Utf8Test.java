/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Lossy UTF-8 decoding: one U+FFFD per maximal ill-formed subpart (Unicode 15 section 3.9; the
 * table examples below are Unicode's own), and stopping before an incomplete tail when asked.
 * Hugging Face's decode is checked against it on the real vocabulary in {@link
 * Qwen2TokenizerHuggingFaceTest}.
 */
class Utf8Test {

    private static String lossy(int... bytes) {
        byte[] b = new byte[bytes.length];
        for (int i = 0; i < bytes.length; i++) {
            b[i] = (byte) bytes[i];
        }
        return Utf8.decodeLossy(b, 0, b.length);
    }

    @Test
    void wellFormedTextDecodesAsIs() {
        String text = "aé中😀\u0000\u007F\u0080\u07FF\u0800\uFFFF\uD800\uDC00\uDBFF\uDFFF";
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        assertEquals(text, Utf8.decodeLossy(bytes, 0, bytes.length));
    }

    @Test
    void eachMaximalSubpartBecomesOneReplacement() {
        // Unicode 15, Table 3-8: 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64
        assertEquals("a\uFFFD\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFDd",
                lossy(0x61, 0xF1, 0x80, 0x80, 0xE1, 0x80, 0xC2, 0x62, 0x80, 0x63, 0x80, 0xBF, 0x64));
        assertEquals("\uFFFD\uFFFD", lossy(0xC0, 0xAF)); // overlong lead C0: two
        assertEquals("\uFFFD\uFFFD\uFFFD", lossy(0xE0, 0x80, 0xAF)); // E0 needs A0..BF next
        assertEquals("\uFFFD\uFFFD\uFFFD", lossy(0xED, 0xA0, 0x80)); // a surrogate: three
        assertEquals("\uFFFD\uFFFD\uFFFD\uFFFD", lossy(0xF4, 0x90, 0x80, 0x80)); // > U+10FFFF
        assertEquals("\uFFFDA", lossy(0xE2, 0x82, 0x41)); // truncated: one
        assertEquals("\uFFFD", lossy(0xF0, 0x9F, 0x98)); // truncated at the end: one
        assertEquals("\uFFFD\uFFFD", lossy(0xF8, 0xFF));
    }

    @Test
    void incompleteTailIsHeldBackOnlyIfItCanStillBecomeACharacter() {
        byte[] b = {0x61, (byte) 0xF0, (byte) 0x9F, (byte) 0x98};
        StringBuilder out = new StringBuilder();
        assertEquals(1, Utf8.decodeLossy(b, 0, b.length, out, false));
        assertEquals("a", out.toString());

        byte[] dead = {0x61, (byte) 0xE0, (byte) 0x80}; // E0 80 can never be completed
        out.setLength(0);
        assertEquals(3, Utf8.decodeLossy(dead, 0, dead.length, out, false));
        assertEquals("a\uFFFD\uFFFD", out.toString());
    }

    /**
     * The JDK's decoder follows the same Unicode recommendation, except that it reads an encoded
     * surrogate ({@code ED A0..BF ..}) as one ill-formed unit where Unicode and Rust see one per
     * byte; with those left out it is a second, independent check.
     */
    @Test
    void randomBytesDecodeAsTheJdkDecodesThemExceptEncodedSurrogates() {
        SplittableRandom random = new SplittableRandom(5);
        int compared = 0;
        for (int i = 0; i < 100_000; i++) {
            byte[] b = new byte[random.nextInt(12)];
            for (int k = 0; k < b.length; k++) {
                int kind = random.nextInt(4);
                b[k] = (byte) (kind == 0 ? random.nextInt(0x80) : kind == 1 ? 0x80 + random.nextInt(0x40)
                        : kind == 2 ? 0xC0 + random.nextInt(0x40) : random.nextInt(256));
            }
            if (hasEncodedSurrogate(b)) {
                continue;
            }
            compared++;
            assertEquals(new String(b, StandardCharsets.UTF_8), Utf8.decodeLossy(b, 0, b.length),
                    () -> java.util.HexFormat.ofDelimiter(" ").formatHex(b));
        }
        assertTrue(compared > 90_000, "compared " + compared);
    }

    @Test
    void encodedSurrogateIsOneReplacementPerByte() {
        assertEquals("\uFFFD\uFFFDA", lossy(0xED, 0xA6, 0x41));
        assertEquals("\uFFFD\uFFFD\uFFFDA", lossy(0xED, 0xBF, 0xBF, 0x41));
        assertEquals("\uD55C", lossy(0xED, 0x95, 0x9C)); // ED 80..9F is fine: U+D55C
    }

    private static boolean hasEncodedSurrogate(byte[] b) {
        for (int i = 0; i + 1 < b.length; i++) {
            if ((b[i] & 0xFF) == 0xED && (b[i + 1] & 0xFF) >= 0xA0 && (b[i + 1] & 0xFF) <= 0xBF) {
                return true;
            }
        }
        return false;
    }
}
