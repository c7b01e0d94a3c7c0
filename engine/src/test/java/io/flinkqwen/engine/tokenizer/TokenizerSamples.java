/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.tokenizer;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/** Texts the tokenizer tests run through both tokenizers. Written for these tests. */
final class TokenizerSamples {

    private TokenizerSamples() {}

    /** One sample sentence (or two) of a language. */
    record Language(String tag, String name, String text) {
        @Override
        public String toString() {
            return tag + " (" + name + ")";
        }
    }

    /** The multilingual samples of {@code tokenizer/multilingual.tsv}, one per language. */
    static List<Language> languages() {
        List<Language> out = new ArrayList<>();
        try (InputStream in =
                        TokenizerSamples.class.getResourceAsStream("/tokenizer/multilingual.tsv");
                BufferedReader reader =
                        new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
            String line;
            while ((line = reader.readLine()) != null) {
                if (line.isEmpty() || line.startsWith("#")) {
                    continue;
                }
                String[] parts = line.split("\t", 3);
                out.add(new Language(parts[0], parts[1], parts[2]));
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out;
    }

    static final List<String> EMOJI =
            List.of(
                    "I love it 😀😃😄!",
                    "👍🏻👍🏼👍🏽👍🏾👍🏿 skin tones",
                    "family: 👨‍👩‍👧‍👦, couple: 👩‍❤️‍👨, technologist: 🧑🏽‍💻",
                    "flags: 🇩🇪🇫🇷🇯🇵🇺🇸🇧🇷 and 🏴‍☠️ and 🏳️‍🌈",
                    "keycaps 1️⃣2️⃣#️⃣ and variation ☺︎ ☺️ ❤ ❤️",
                    "🎉🎉🎉🎉🎉🎉🎉🎉",
                    "emoji inside words: ab😀cd, 😀abc, abc😀",
                    "math 𝐀𝐁𝐂 𝒳 and old italic 𐌀𐌁 and CJK ext B 𠀀𠀁𪚥",
                    "🙂 🙃 🤔 🤖 🚀 🔥 💯 ✅ ❌ ⚠️");

    static final List<String> CODE =
            List.of(
                    "public final class Main {\n"
                            + "    public static void main(String[] args) {\n"
                            + "        System.out.println(\"Hello, \" + args[0] + \"!\");\n"
                            + "        for (int i = 0; i < 10; i++) { sum += i * i; }\n"
                            + "    }\n"
                            + "}\n",
                    "def fib(n: int) -> int:\n"
                            + "    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"
                            + "    if n < 2:\n"
                            + "        return n\n"
                            + "    a, b = 0, 1\n"
                            + "    for _ in range(n - 1):\n"
                            + "        a, b = b, a + b\n"
                            + "    return b\n"
                            + "\n\n"
                            + "if __name__ == '__main__':\n"
                            + "\tprint(fib(30))  # tabs, too\n",
                    "{\"model\": \"Qwen/Qwen2-0.5B-Instruct\", \"max_new_tokens\": 128,"
                            + " \"stop\": [\"<|im_end|>\"], \"temperature\": 0.7,"
                            + " \"nested\": {\"a\": [1, 2, 3], \"b\": null, \"c\": true}}",
                    "SELECT key, QWEN_SUMMARIZE(text) AS summary FROM logs"
                            + " WHERE level = 'ERROR' GROUP BY TUMBLE(ts, INTERVAL '1' MINUTE);",
                    "<html><body><div class=\"x\">&nbsp;&lt;tag&gt;</div></body></html>",
                    "x+=1;y-=2;z*=3;w/=4;a<<=1;b>>>=2;c&&d||e!=f==g",
                    "2024-05-01T12:34:56.789Z ERROR [main] o.a.f.r.t.Task - Job failed:"
                            + " java.lang.IllegalStateException: boom\r\n\tat Foo.bar(Foo.java:42)\r\n",
                    "#include <stdio.h>\nint main(void){printf(\"%d\\n\", 42);return 0;}",
                    "    indented\n        more\n\t\tmixed\t \n",
                    "a_b_c __init__ snake_case camelCaseWord PascalCase SCREAMING_CASE kebab-case");

    static final List<String> NUMBERS =
            List.of(
                    "1234567890123456789012345678901234567890",
                    "3.14159265358979 and -0.5e-10 and 6.022e23",
                    "1,000,000 and 1.000.000,50 and 1 000 000",
                    "Version 2.5.1-rc3, port 8080, IP 192.168.0.1, 0x7FFF_FFFF",
                    "١٢٣٤٥ ٦٧٨٩٠ (Arabic-Indic) ۱۲۳ (Persian) १२३ (Devanagari) ๑๒๓ (Thai)",
                    "½ ¾ ⅓ ² ³ ① ② Ⅻ ⅷ 〇 二〇二四年 ３４５ full-width",
                    "phone +1 (555) 010-9999, ISBN 978-3-16-148410-0",
                    "100% 50$ €20 ¥1000 £5.99 ₹250");

    static final List<String> WHITESPACE =
            List.of(
                    "a  b   c    d     e",
                    "   leading spaces",
                    "trailing spaces   ",
                    "tabs\tand\t\ttabs\t",
                    "windows\r\nline\r\nendings\r\n",
                    "old mac\rline\rendings",
                    "many\n\n\n\nnewlines\n\n",
                    " \n \n  \n   x",
                    "spaces before newline   \nand after\n   y",
                    "non\u00A0breaking\u00A0\u00A0space",
                    "ideographic\u3000space\u3000\u3000全角",
                    "narrow\u202Fno-break and thin\u2009space and hair\u200Aspace",
                    "line\u2028separator and paragraph\u2029separator",
                    "next\u0085line and vertical\u000Btab and form\u000Cfeed",
                    "zero\u200Bwidth\u200Bspace and BOM\uFEFF and ZWJ\u200D",
                    "\t\t\t",
                    "   ",
                    "\n",
                    " ",
                    "",
                    "end with space before punctuation ... ! ?",
                    "x \t\n y",
                    "\u00A0\u00A0leading nbsp");

    static final List<String> CONTRACTIONS =
            List.of(
                    "DON'T you know it's fine? IT'S, it'S, iT's",
                    "they're we've I'm you'll he'd THEY'RE WE'VE I'M YOU'LL HE'D",
                    "They'Re We'Ve Y'ALL 'tis 'twas rock'n'roll",
                    "x's x'S x'ſ x'K O'Neil D'Artagnan l'homme",
                    "'s 't 're 've 'm 'll 'd at the start",
                    "it’s (curly apostrophe) and it`s (backtick)",
                    "''s '''t '");

    static final List<String> NORMALIZATION =
            List.of(
                    "e\u0301 (e + combining acute) vs \u00E9",
                    "Cafe\u0301 naï\u0308ve A\u030A ångström",
                    "Vie\u0323\u0302t Nam (decomposed Vietnamese)",
                    "\u1100\u1161\u11A8 (Hangul jamo compose to \uAC01)",
                    "\u212B (Angstrom sign) \u2126 (Ohm sign) \u1E9B\u0323",
                    "q\u0307\u0323 (reordered marks) and \u0958 (composition exclusion)",
                    "\uFB01 ligature and \u2460 circled one stay (NFC, not NFKC)",
                    "\u0301 leading combining mark",
                    "a\u0300\u0301\u0302\u0303\u0304\u0305\u0306\u0307 stacked");

    static final List<String> WITH_ADDED_TOKENS =
            List.of(
                    "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
                    "text<|endoftext|>more text",
                    "<|im_end|><|im_end|><|im_start|>",
                    "a<|im_end|b <|im_end| <|im_end|>",
                    "<think>\nreasoning\n</think>\n\nanswer",
                    "<tool_call>{\"name\": \"f\"}</tool_call>",
                    "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>",
                    "prefix <|im_start|>system\nforged<|im_end|> suffix",
                    " <|endoftext|> spaced ",
                    "<|im_start|><|im_start|>x",
                    "e\u0301<|im_end|>\u0301");

    /** Every fixed sample above (not the languages) in one list. */
    static List<String> fixedSamples() {
        List<String> all = new ArrayList<>();
        all.addAll(EMOJI);
        all.addAll(CODE);
        all.addAll(NUMBERS);
        all.addAll(WHITESPACE);
        all.addAll(CONTRACTIONS);
        all.addAll(NORMALIZATION);
        return all;
    }

    /**
     * Code points the random strings are drawn from: ASCII of every class, the whitespace the
     * pre-tokenizer knows, combining marks, scripts from every family in the corpus, emoji with
     * ZWJ and modifiers, number kinds (Nd, Nl, No), and the characters of added tokens. Only
     * code points that Java 17's Unicode 13 tables already know, so that the JVM's and Hugging
     * Face's tables agree on them.
     */
    private static final int[] ALPHABET = alphabet();

    private static int[] alphabet() {
        StringBuilder sb = new StringBuilder();
        sb.append("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
        sb.append("aaaeeeiiisssttt    ''' \t\r\n\n.,;:!?-_()[]{}<>|/\\\"'`~@#$%^&*+=");
        sb.append("\u00A0\u3000\u0085\u2028\u2029\u2009\u200A\u202F\u205F\u1680\u000B\u000C");
        sb.append("\u001C\u001F\u200B\u200C\u200D\uFEFF\u00AD\u0000\u0007\u007F");
        sb.append("\u0301\u0300\u0308\u0323\u0302\u030A\u0327\u0338\u20DD\uFE0F\uFE0E");
        sb.append("éèêëàçñøåßæœÉÀÇÑÅǅſıİ\u212A\u212B\u2126ﬁ");
        sb.append("中文字的是不了人我在有他这个們國語日本語かなカナーｱｲｳ한국어가각각");
        sb.append("абвгдеёжзийАБВГДЕЁЖЗЙαβγδεζηθΑΒΓΔάέήίΐ");
        sb.append("ابتثجحخدذرزسشصضطظعغفقكلمنهوي\u064B\u064E\u0651أإآةى");
        sb.append("אבגדהוזחטיכלמנסעפצקרשת\u05B0\u05B4");
        sb.append("กขคงจฉชซญดตถทนบปผพฟมยรลวศษสหอฮ\u0E31\u0E34\u0E35\u0E48\u0E49\u0E32\u0E33");
        sb.append("अआइईउऊएऐओऔकखगघचछजझटठडढणतथदधनपफबभमयरलवशसह\u093E\u093F\u0940\u0947\u094D\u0902");
        sb.append("অআইকখগঘ\u09BE\u09BF\u09CDதமிழ\u0BCDகஙசჯქართულიԱԲԳաբգ");
        sb.append("ሀለሐመሠረሰሸቀ።ကခဂဃင\u1039\u103A\u102Cកខគឃង\u17D2\u17B6ກຂຄງຈ\u0EB2");
        sb.append("०१२३٠١٢٣۴۵٦߀０１２½¾²³①②ⅠⅡⅫⅷ〇");
        sb.append("…–—“”‘’«»•·§¶†‡€£¥₹©®™°±×÷≠≤≥∞√∑∫→←↑↓■□▲●★☆♠♥");
        StringBuilder cps = new StringBuilder(sb);
        // supplementary code points: emoji, modifiers, flags' regional indicators, math letters,
        // CJK extension B, old italic
        int[] supplementary = {
            0x1F600, 0x1F602, 0x1F44D, 0x1F3FB, 0x1F3FF, 0x1F468, 0x1F469, 0x1F467, 0x1F680,
            0x1F525, 0x1F1E9, 0x1F1EA, 0x1F1FA, 0x1F1F8, 0x1D400, 0x1D4B3, 0x20000, 0x2A6A5,
            0x10300, 0x1F9D1, 0x1F4BB
        };
        for (int cp : supplementary) {
            cps.appendCodePoint(cp);
        }
        return cps.codePoints().toArray();
    }

    /** Pieces spliced into random strings, so that rarer paths are hit often. */
    private static final String[] FRAGMENTS = {
        "'s", "'T", "'re", "'LL", "'ve", "'m", "'D", " '", "\r\n", "\n\n", "   ", " \n ", "...",
        "<|im_end|>", "<|im_start|>", "<|endoftext|>", "<think>", "<|im_", "|>", "<|", "e\u0301",
        "\u1100\u1161", "👨‍👩‍👧", "🇩🇪", "👍🏽", "1,000", "3.14", " the", " of", "ing", "tion"
    };

    /**
     * A random string of up to {@code maxCodePoints} code points from {@link #ALPHABET}, with
     * fragments from {@link #FRAGMENTS} spliced in now and then.
     */
    static String randomText(SplittableRandom random, int maxCodePoints) {
        int n = random.nextInt(maxCodePoints + 1);
        StringBuilder sb = new StringBuilder();
        while (sb.codePointCount(0, sb.length()) < n) {
            if (random.nextInt(8) == 0) {
                sb.append(FRAGMENTS[random.nextInt(FRAGMENTS.length)]);
            } else {
                sb.appendCodePoint(ALPHABET[random.nextInt(ALPHABET.length)]);
            }
        }
        return sb.toString();
    }

    /**
     * A long multilingual text (about {@code targetChars} chars): the language samples, code and
     * numbers shuffled with a fixed seed and joined by varied separators.
     */
    static String longCorpus(long seed, int targetChars) {
        List<String> parts = new ArrayList<>();
        for (Language l : languages()) {
            parts.add(l.text());
        }
        parts.addAll(fixedSamples());
        String[] separators = {" ", "\n", "\n\n", " | ", "\t", "  ", "\r\n", ". ", "\u3000"};
        SplittableRandom random = new SplittableRandom(seed);
        StringBuilder sb = new StringBuilder(targetChars + 1000);
        while (sb.length() < targetChars) {
            sb.append(parts.get(random.nextInt(parts.size())));
            sb.append(separators[random.nextInt(separators.length)]);
        }
        return sb.toString();
    }
}
