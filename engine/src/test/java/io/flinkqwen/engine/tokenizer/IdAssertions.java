/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.tokenizer;

import static org.junit.jupiter.api.Assertions.fail;

import java.util.Arrays;

/** Exact id comparison with a message that shows where and how two tokenizations part. */
final class IdAssertions {

    private IdAssertions() {}

    static void assertSameIds(
            String what, String text, int[] expected, int[] actual, Qwen2Tokenizer vocabulary) {
        if (Arrays.equals(expected, actual)) {
            return;
        }
        int i = 0;
        while (i < expected.length && i < actual.length && expected[i] == actual[i]) {
            i++;
        }
        fail(
                String.format(
                        "%s: ids differ at index %d for text %s%n  expected (%d ids) ...%s%n"
                                + "  actual   (%d ids) ...%s",
                        what,
                        i,
                        escape(text),
                        expected.length,
                        window(expected, i, vocabulary),
                        actual.length,
                        window(actual, i, vocabulary)));
    }

    private static String window(int[] ids, int at, Qwen2Tokenizer vocabulary) {
        StringBuilder sb = new StringBuilder();
        for (int k = Math.max(0, at - 2); k < Math.min(ids.length, at + 4); k++) {
            sb.append(' ').append(ids[k]);
            if (vocabulary != null && vocabulary.hasToken(ids[k])) {
                sb.append('(').append(escape(vocabulary.token(ids[k]))).append(')');
            }
        }
        return sb.toString();
    }

    /** {@code s} quoted, with controls, non-ASCII whitespace and long text made readable. */
    static String escape(String s) {
        String shown = s.length() > 400 ? s.substring(0, 400) + "...(" + s.length() + " chars)" : s;
        StringBuilder sb = new StringBuilder("\"");
        shown.codePoints()
                .forEach(
                        cp -> {
                            if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0)
                                    || Character.isWhitespace(cp) && cp != ' '
                                    || Character.getType(cp) == Character.FORMAT
                                    || Character.getType(cp) == Character.SPACE_SEPARATOR && cp != ' '
                                    || Character.isSurrogate((char) cp) && cp < 0x10000) {
                                sb.append(String.format("\\u%04X", cp));
                            } else {
                                sb.appendCodePoint(cp);
                            }
                        });
        return sb.append('"').toString();
    }
}
