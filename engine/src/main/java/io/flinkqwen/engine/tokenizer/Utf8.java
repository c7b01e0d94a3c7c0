/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.tokenizer;

/**
 * Lossy UTF-8 decoding with the Unicode "maximal subpart" policy (Unicode 15, section 3.9, U+FFFD
 * substitution): each maximal ill-formed subsequence becomes one U+FFFD. This is what Rust's
 * {@code String::from_utf8_lossy} does, and so what Hugging Face's ByteLevel decoder returns. It
 * is written out here rather than borrowed from {@code new String(bytes, UTF_8)} so that the
 * policy is explicit and so that a stream can stop before an incomplete but still valid tail.
 */
final class Utf8 {

    static final char REPLACEMENT = '\uFFFD';

    private Utf8() {}

    /** Decodes all of {@code bytes[from, to)}; an incomplete tail becomes U+FFFD. */
    static String decodeLossy(byte[] bytes, int from, int to) {
        StringBuilder out = new StringBuilder(to - from);
        decodeLossy(bytes, from, to, out, true);
        return out.toString();
    }

    /**
     * Decodes {@code bytes[from, to)} into {@code out}.
     *
     * @param endOfInput if false, a tail that is a proper prefix of a well-formed sequence (a
     *     character whose last bytes have not arrived yet) is left undecoded
     * @return the index of the first byte not decoded: {@code to}, or the start of the held-back
     *     tail when {@code endOfInput} is false
     */
    static int decodeLossy(byte[] bytes, int from, int to, StringBuilder out, boolean endOfInput) {
        int i = from;
        while (i < to) {
            int b0 = bytes[i] & 0xFF;
            if (b0 < 0x80) {
                out.append((char) b0);
                i++;
                continue;
            }
            int need; // continuation bytes that must follow
            int lo = 0x80; // allowed range of the first continuation byte (Unicode Table 3-7)
            int hi = 0xBF;
            if (b0 >= 0xC2 && b0 <= 0xDF) {
                need = 1;
            } else if (b0 >= 0xE0 && b0 <= 0xEF) {
                need = 2;
                if (b0 == 0xE0) {
                    lo = 0xA0; // no overlong 3-byte forms
                } else if (b0 == 0xED) {
                    hi = 0x9F; // no surrogates
                }
            } else if (b0 >= 0xF0 && b0 <= 0xF4) {
                need = 3;
                if (b0 == 0xF0) {
                    lo = 0x90; // no overlong 4-byte forms
                } else if (b0 == 0xF4) {
                    hi = 0x8F; // nothing above U+10FFFF
                }
            } else {
                // 80..BF (stray continuation), C0, C1, F5..FF: never part of a well-formed sequence
                out.append(REPLACEMENT);
                i++;
                continue;
            }
            // count how many of the expected continuation bytes are present and valid
            int valid = 0;
            while (valid < need && i + 1 + valid < to) {
                int b = bytes[i + 1 + valid] & 0xFF;
                boolean ok = valid == 0 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
                if (!ok) {
                    break;
                }
                valid++;
            }
            if (valid == need) {
                int cp = b0 & (0xFF >> (need + 2));
                for (int k = 1; k <= need; k++) {
                    cp = (cp << 6) | (bytes[i + k] & 0x3F);
                }
                out.appendCodePoint(cp);
                i += need + 1;
            } else if (i + 1 + valid == to && !endOfInput) {
                return i; // a character still arriving: hold it back
            } else {
                out.append(REPLACEMENT); // the maximal subpart: lead byte plus valid continuations
                i += valid + 1;
            }
        }
        return to;
    }
}
