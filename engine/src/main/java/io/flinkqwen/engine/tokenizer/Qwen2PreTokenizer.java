/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.tokenizer;

/**
 * Splits normalized text into the pieces ("words") that BPE then encodes one by one, exactly as
 * Qwen2's tokenizer.json does with a Split pre-tokenizer (behaviour Isolated) over the regex
 * {@link #PATTERN}, run by Hugging Face tokenizers through Oniguruma.
 *
 * <p>This is a hand-written scanner, not {@link java.util.regex.Pattern}, for three reasons.
 * (1) Semantics: Java's {@code \s} is ASCII-only unless {@code UNICODE_CHARACTER_CLASS} is set,
 * and its case-insensitive matching differs by flags; here every class is spelled out below and
 * independent of flags. (2) Speed: one pass over the code points, no backtracking, no match
 * objects; whitespace runs are scanned once, where the regex backtracks over {@code \s*[\r\n]+}
 * and {@code \s+(?!\S)}. (3) It lets the tests compare two independent implementations, this
 * scanner and the regex itself under {@code java.util.regex}, besides Hugging Face's own ids.
 *
 * <p>The regex is an ordered alternation; at each position the first alternative that matches
 * wins (leftmost-first, greedy quantifiers with backtracking). {@link #next} implements the
 * alternatives in that order, and every code point is matched by one of them, so the pieces
 * cover the text without gaps:
 *
 * <ol>
 *   <li>{@code (?i:'s|'t|'re|'ve|'m|'ll|'d)}: English contractions, any case. Oniguruma folds
 *       case by Unicode, so U+017F LATIN SMALL LETTER LONG S counts as {@code s} (checked
 *       against Hugging Face); U+212A KELVIN SIGN folds to {@code k}, which is not in the list.
 *   <li>{@code [^\r\n\p{L}\p{N}]?\p{L}+}: a run of letters, with at most one leading code point
 *       that is neither a letter, a number nor CR/LF (a space, punctuation, a combining mark...).
 *   <li>{@code \p{N}}: one number code point (digits are never grouped).
 *   <li>{@code ?[^\s\p{L}\p{N}]+[\r\n]*}: an optional U+0020 space, a run of "other" code points
 *       (neither whitespace, letter nor number), then any CR/LF that follow.
 *   <li>{@code \s*[\r\n]+}: whitespace up to and including the last CR/LF of a whitespace run.
 *   <li>{@code \s+(?!\S)}: a whitespace run not followed by a non-space; before a non-space the
 *       greedy run backs off by one, leaving its last whitespace to prefix the next piece.
 *   <li>{@code \s+}: a single whitespace code point that 6 left behind.
 * </ol>
 *
 * <p>Character classes: {@code \p{L}} is general category L (Lu, Ll, Lt, Lm, Lo), {@code \p{N}}
 * is N (Nd, Nl, No), both per code point (surrogate pairs are one code point) as the running
 * JVM's {@link Character} tables say; {@code \s} is the Unicode White_Space property (U+0009..D,
 * U+0020, U+0085, U+00A0, U+1680, U+2000..200A, U+2028, U+2029, U+202F, U+205F, U+3000), which is
 * what Oniguruma uses for UTF-8 text and which has been stable since Unicode 6.3. Known limit:
 * letters and digits assigned in a Unicode version newer than the JVM's (Java 17 knows Unicode
 * 13) are "other" here and may be letters for Hugging Face.
 */
final class Qwen2PreTokenizer {

    /** The split regex of Qwen2's (and Qwen2.5's and Qwen3's) tokenizer.json. */
    static final String PATTERN =
            "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
                    + "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

    static final int LETTER = 0;
    static final int NUMBER = 1;
    static final int SPACE = 2;
    static final int OTHER = 3;

    private static final byte[] ASCII_CLASS = new byte[128];

    static {
        for (int c = 0; c < 128; c++) {
            ASCII_CLASS[c] = (byte) classOfSlow(c);
        }
    }

    private Qwen2PreTokenizer() {}

    /**
     * The end (exclusive, a char index) of the piece that starts at char index {@code start} of
     * {@code s}. Requires {@code start < s.length()}; always returns more than {@code start}.
     */
    static int next(String s, int start) {
        final int n = s.length();
        final int cp = s.codePointAt(start);
        final int cpEnd = start + Character.charCount(cp);

        // 1. (?i:'s|'t|'re|'ve|'m|'ll|'d)
        if (cp == '\'' && cpEnd < n) {
            char c1 = s.charAt(cpEnd);
            if (isS(c1) || is(c1, 't') || is(c1, 'm') || is(c1, 'd')) {
                return cpEnd + 1;
            }
            if (cpEnd + 1 < n) {
                char c2 = s.charAt(cpEnd + 1);
                if (((is(c1, 'r') || is(c1, 'v')) && is(c2, 'e')) || (is(c1, 'l') && is(c2, 'l'))) {
                    return cpEnd + 2;
                }
            }
        }

        final int cls = classOf(cp);

        // 2. [^\r\n\p{L}\p{N}]?\p{L}+
        if (cls == LETTER) {
            return endOfRun(s, cpEnd, LETTER);
        }
        if (cls != NUMBER && cp != '\r' && cp != '\n' && cpEnd < n) {
            int cp2 = s.codePointAt(cpEnd);
            if (classOf(cp2) == LETTER) {
                return endOfRun(s, cpEnd + Character.charCount(cp2), LETTER);
            }
        }

        // 3. \p{N}
        if (cls == NUMBER) {
            return cpEnd;
        }

        // 4. ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        if (cls == OTHER || (cp == ' ' && cpEnd < n && classOf(s.codePointAt(cpEnd)) == OTHER)) {
            int end = endOfRun(s, cpEnd, OTHER);
            while (end < n && isCrLf(s.charAt(end))) {
                end++;
            }
            return end;
        }

        // cls == SPACE from here on; every White_Space code point is in the BMP
        int runEnd = start;
        int lastCrLf = -1;
        while (runEnd < n && isSpace(s.charAt(runEnd))) {
            if (isCrLf(s.charAt(runEnd))) {
                lastCrLf = runEnd;
            }
            runEnd++;
        }
        // 5. \s*[\r\n]+ : the greedy \s* backs off until [\r\n]+ can match, which is at the last
        //    CR/LF of the run; [\r\n]+ then ends right after it (the next code point is no CR/LF)
        if (lastCrLf >= 0) {
            return lastCrLf + 1;
        }
        // 6. \s+(?!\S) : the whole run at the end of the text, else the run minus its last
        //    code point (which is followed by whitespace, so the lookahead holds)
        if (runEnd == n) {
            return runEnd;
        }
        if (runEnd - start > 1) {
            return runEnd - 1;
        }
        // 7. \s+ : a lone whitespace code point before a non-space that 2 and 4 did not take
        return runEnd;
    }

    /** The class of code point {@code cp}: {@link #LETTER}, {@link #NUMBER}, {@link #SPACE} or {@link #OTHER}. */
    static int classOf(int cp) {
        return cp < 128 ? ASCII_CLASS[cp] : classOfSlow(cp);
    }

    private static int classOfSlow(int cp) {
        if (isSpace(cp)) {
            return SPACE;
        }
        switch (Character.getType(cp)) {
            case Character.UPPERCASE_LETTER:
            case Character.LOWERCASE_LETTER:
            case Character.TITLECASE_LETTER:
            case Character.MODIFIER_LETTER:
            case Character.OTHER_LETTER:
                return LETTER;
            case Character.DECIMAL_DIGIT_NUMBER:
            case Character.LETTER_NUMBER:
            case Character.OTHER_NUMBER:
                return NUMBER;
            default:
                return OTHER;
        }
    }

    /** The Unicode White_Space property, which Oniguruma's {@code \s} matches for UTF-8 text. */
    static boolean isSpace(int cp) {
        if (cp <= 0x20) {
            return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
        }
        if (cp < 0x85) {
            return false;
        }
        return cp == 0x85
                || cp == 0xA0
                || cp == 0x1680
                || (cp >= 0x2000 && cp <= 0x200A)
                || cp == 0x2028
                || cp == 0x2029
                || cp == 0x202F
                || cp == 0x205F
                || cp == 0x3000;
    }

    private static boolean isCrLf(char c) {
        return c == '\r' || c == '\n';
    }

    /** Case-insensitive match of {@code c} against lower-case ASCII letter {@code lower}. */
    private static boolean is(char c, char lower) {
        return c == lower || c == lower - ('a' - 'A');
    }

    /** {@code s}, {@code S}, or U+017F, whose Unicode case folding is {@code s}. */
    private static boolean isS(char c) {
        return c == 's' || c == 'S' || c == '\u017F';
    }

    /** The end of the run of code points of class {@code cls} that starts at {@code from}. */
    private static int endOfRun(String s, int from, int cls) {
        int n = s.length();
        int i = from;
        while (i < n) {
            int cp = s.codePointAt(i);
            if (classOf(cp) != cls) {
                break;
            }
            i += Character.charCount(cp);
        }
        return i;
    }
}
