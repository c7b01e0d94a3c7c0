/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.tokenizer;

import static io.flinkqwen.engine.tokenizer.IdAssertions.escape;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.engine.tokenizer.TokenizerSamples.Language;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The hand-written pre-tokenizer against the regex it implements, run by {@code
 * java.util.regex} with Unicode classes, and against splits worked out by hand from the regex
 * (the ones marked HF were also confirmed with Hugging Face's word ids). Needs no oracle files.
 */
class Qwen2PreTokenizerTest {

    /** The regex with Unicode {@code \s}, classes and case folding: what Oniguruma does. */
    private static final Pattern REGEX =
            Pattern.compile(Qwen2PreTokenizer.PATTERN, Pattern.UNICODE_CHARACTER_CLASS);

    static List<String> scanner(String s) {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < s.length(); ) {
            int end = Qwen2PreTokenizer.next(s, i);
            assertTrue(end > i, "no progress at " + i);
            out.add(s.substring(i, end));
            i = end;
        }
        return out;
    }

    /** Split with behaviour Isolated: matches and the gaps between them are both pieces. */
    static List<String> regex(String s) {
        List<String> out = new ArrayList<>();
        Matcher m = REGEX.matcher(s);
        int last = 0;
        while (m.find()) {
            if (m.start() > last) {
                out.add(s.substring(last, m.start()));
            }
            out.add(m.group());
            last = m.end();
        }
        if (last < s.length()) {
            out.add(s.substring(last));
        }
        return out;
    }

    private static void assertSplit(String text, String... pieces) {
        assertEquals(List.of(pieces), scanner(text), () -> "scanner on " + escape(text));
        assertEquals(List.of(pieces), regex(text), () -> "regex on " + escape(text));
    }

    @Test
    void wordsTakeOneLeadingSpaceOrPunctuation() {
        assertSplit("Hello world", "Hello", " world");
        assertSplit("  hello", " ", " hello");
        assertSplit("(hello) x_y", "(hello", ")", " x", "_y");
        assertSplit("\u3000全角", "\u3000全角");
        assertSplit("a\u00A0b", "a", "\u00A0b"); // HF
        assertSplit("a\u0085b", "a", "\u0085b"); // HF: U+0085 is whitespace, not CR/LF
        assertSplit("नमस्ते", "नमस", "्त", "े"); // marks are not letters
    }

    @Test
    void contractionsMatchInAnyCase() {
        assertSplit("it's DON'T we'Re", "it", "'s", " DON", "'T", " we", "'Re");
        assertSplit("x'ſabc", "x", "'ſ", "abc"); // HF: long s folds to s
        assertSplit("x'\u212Aabc", "x", "'\u212Aabc"); // Kelvin sign folds to k: no contraction
        assertSplit("'sa", "'s", "a");
        assertSplit("'llama", "'ll", "ama");
        assertSplit("'r", "'r");
    }

    @Test
    void numbersAreSingleDigits() {
        assertSplit("12,345.6", "1", "2", ",", "3", "4", "5", ".", "6");
        assertSplit("x²½", "x", "²", "½");
    }

    @Test
    void punctuationRunsTakeOneSpaceAndTrailingNewlines() {
        assertSplit("a...b", "a", "...", "b");
        assertSplit("foo.\r\n bar", "foo", ".\r\n", " bar");
        assertSplit("x ?!\n\n", "x", " ?!\n\n");
        assertSplit("\t.", "\t", ".");
    }

    @Test
    void whitespaceRunsSplitBeforeTheLastSpaceAndAfterTheLastNewline() {
        assertSplit("hello  \n\n  world", "hello", "  \n\n", " ", " world");
        assertSplit("end   ", "end", "   ");
        assertSplit("\t\tx", "\t", "\tx");
        assertSplit("a  5", "a", " ", " ", "5");
        assertSplit(" \n \n  \n   x", " \n \n  \n", "  ", " x");
        assertSplit("\r\n\r\n", "\r\n\r\n");
    }

    @Test
    void scannerEqualsRegexOnSamples() {
        List<String> texts = new ArrayList<>(TokenizerSamples.fixedSamples());
        texts.addAll(TokenizerSamples.WITH_ADDED_TOKENS);
        for (Language l : TokenizerSamples.languages()) {
            texts.add(l.text());
        }
        texts.add(TokenizerSamples.longCorpus(5, 50_000));
        for (String text : texts) {
            String nfc = Normalizer.normalize(text, Normalizer.Form.NFC);
            assertEquals(regex(nfc), scanner(nfc), () -> escape(nfc));
        }
    }

    @Test
    void scannerEqualsRegexOnRandomStrings() {
        SplittableRandom random = new SplittableRandom(2024);
        for (int i = 0; i < 20_000; i++) {
            String text = TokenizerSamples.randomText(random, 30);
            assertEquals(regex(text), scanner(text), () -> escape(text));
        }
    }

    /** Every BMP code point next to each kind of neighbour: the classes agree with the regex's. */
    @Test
    void characterClassesEqualRegexForEveryBmpCodePoint() {
        String[] contexts = {"a%sb", " %s ", "%s\n", "1%s.", "'%s", "%s%s"};
        for (int cp = 0; cp < 0x10000; cp++) {
            if (Character.isSurrogate((char) cp)) {
                continue;
            }
            String c = String.valueOf((char) cp);
            for (String context : contexts) {
                String text = context.replace("%s", c);
                List<String> expected = regex(text);
                List<String> actual = scanner(text);
                if (!expected.equals(actual)) {
                    assertEquals(expected, actual, String.format("U+%04X in %s", cp, escape(text)));
                }
            }
        }
    }
}
