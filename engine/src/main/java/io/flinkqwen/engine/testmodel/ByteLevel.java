/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.testmodel;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/** GPT-2's byte-to-unicode alphabet: 256 printable characters standing for the 256 bytes. */
final class ByteLevel {

    /** The characters in GPT-2's order: printable Latin-1 bytes first, then the rest mapped to U+0100.. */
    static final List<String> ALPHABET;

    private static final int[] BYTE_AT = new int[256]; // alphabet index -> byte
    private static final int[] INDEX_OF = new int[256]; // byte -> alphabet index

    static {
        List<String> chars = new ArrayList<>(256);
        int idx = 0;
        boolean[] printable = new boolean[256];
        for (int b = 0; b < 256; b++) {
            printable[b] = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        }
        for (int b = 0; b < 256; b++) {
            if (printable[b]) {
                chars.add(String.valueOf((char) b));
                BYTE_AT[idx] = b;
                INDEX_OF[b] = idx++;
            }
        }
        int extra = 0;
        for (int b = 0; b < 256; b++) {
            if (!printable[b]) {
                chars.add(String.valueOf((char) (256 + extra++)));
                BYTE_AT[idx] = b;
                INDEX_OF[b] = idx++;
            }
        }
        ALPHABET = Collections.unmodifiableList(chars);
    }

    private ByteLevel() {}

    static int indexOfByte(int b) {
        return INDEX_OF[b];
    }
}
