/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * GPT-2's byte-level alphabet: every byte value 0..255 is written as one printable character,
 * so that a BPE vocabulary of strings can hold arbitrary bytes. Printable bytes ({@code !..~},
 * {@code ¡..¬}, {@code ®..ÿ}) stand for themselves; the other 68 bytes (controls, space, DEL,
 * NBSP, soft hyphen) are written as U+0100 + n in byte order, which is why a space shows up as
 * {@code Ġ} (U+0120) and a newline as {@code Ċ} (U+010A) in the vocabulary.
 */
public final class ByteLevel {

    /** Character that stands for each byte value. */
    private static final char[] BYTE_TO_CHAR = new char[256];

    /** Byte value of each character of the alphabet, -1 for characters outside it. */
    private static final int[] CHAR_TO_BYTE = new int[256 + 68];

    static {
        Arrays.fill(CHAR_TO_BYTE, -1);
        int shifted = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable =
                    (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            char c = printable ? (char) b : (char) (256 + shifted++);
            BYTE_TO_CHAR[b] = c;
            CHAR_TO_BYTE[c] = b;
        }
    }

    private ByteLevel() {}

    /** The alphabet character for {@code b} (only the low 8 bits are used). */
    public static char charOf(int b) {
        return BYTE_TO_CHAR[b & 0xFF];
    }

    /** The byte written by alphabet character {@code c}, or -1 if {@code c} is not in the alphabet. */
    static int byteOf(char c) {
        return c < CHAR_TO_BYTE.length ? CHAR_TO_BYTE[c] : -1;
    }

    /** The byte-level string of {@code bytes[from, to)}: one character per byte. */
    public static String toByteLevel(byte[] bytes, int from, int to) {
        char[] chars = new char[to - from];
        for (int i = from; i < to; i++) {
            chars[i - from] = BYTE_TO_CHAR[bytes[i] & 0xFF];
        }
        return new String(chars);
    }

    /**
     * The bytes a vocabulary token stands for, as Hugging Face's ByteLevel decoder reads them: if
     * every character of the token is in the alphabet, the bytes those characters stand for;
     * otherwise (added tokens such as {@code <|im_end|>} whose characters are not all in it) the
     * token's own UTF-8 bytes.
     */
    static byte[] tokenBytes(String token) {
        byte[] out = new byte[token.length()];
        for (int i = 0; i < token.length(); i++) {
            int b = byteOf(token.charAt(i));
            if (b < 0) {
                return token.getBytes(StandardCharsets.UTF_8);
            }
            out[i] = (byte) b;
        }
        return out;
    }
}
