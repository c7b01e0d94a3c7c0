/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.tokenizer;

import static io.flinkqwen.engine.tokenizer.IdAssertions.assertSameIds;
import static io.flinkqwen.engine.tokenizer.IdAssertions.escape;
import static io.flinkqwen.engine.tokenizer.RealQwen.hfDecode;
import static io.flinkqwen.engine.tokenizer.RealQwen.hfIds;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import io.flinkqwen.engine.tokenizer.TokenizerSamples.Language;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Our tokenizer against Hugging Face's own ({@code tokenizers} through DJL) on the real Qwen
 * vocabulary: ids must be equal, not close.
 *
 * <p>Two references: {@link RealQwen#huggingFace()} parses added tokens in text, as Hugging
 * Face always does, so it checks {@link Qwen2Tokenizer#encodeWithSpecialTokens};
 * {@link RealQwen#huggingFaceWithoutAddedTokens()} is the same file with an empty added-token
 * list, Hugging Face's tokenization of text as pure data, so it checks {@link
 * Qwen2Tokenizer#encode} on every text, including texts that contain {@code <|im_end|>}.
 */
class Qwen2TokenizerHuggingFaceTest {

    private static final long RANDOM_SEED = 0x5157454EL; // "QWEN"
    private static final int RANDOM_STRINGS = 3000;

    private static Qwen2Tokenizer tokenizer;
    private static HuggingFaceTokenizer huggingFace;
    private static HuggingFaceTokenizer huggingFaceData;

    /**
     * Per test, not per class, so that without the oracle file every test is reported skipped
     * with the reason (an aborted {@code @BeforeAll} shows as zero tests). Loads once per JVM.
     */
    @BeforeEach
    void load() {
        tokenizer = RealQwen.ours();
        huggingFace = RealQwen.huggingFace();
        huggingFaceData = RealQwen.huggingFaceWithoutAddedTokens();
    }

    /** Both encodings of {@code text} equal Hugging Face's. */
    private static void assertMatchesHuggingFace(String text) {
        assertSameIds(
                "encodeWithSpecialTokens vs Hugging Face",
                text,
                hfIds(huggingFace, text),
                tokenizer.encodeWithSpecialTokens(text),
                tokenizer);
        assertSameIds(
                "encode vs Hugging Face without added tokens",
                text,
                hfIds(huggingFaceData, text),
                tokenizer.encode(text),
                tokenizer);
    }

    static Stream<Language> languages() {
        return TokenizerSamples.languages().stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("languages")
    void languageSampleMatchesHuggingFace(Language language) {
        assertMatchesHuggingFace(language.text());
    }

    @Test
    void corpusCoversAtLeastThirtyLanguages() {
        assertTrue(TokenizerSamples.languages().size() >= 30);
    }

    static Stream<Arguments> fixedSamples() {
        List<Arguments> out = new ArrayList<>();
        addAll(out, "emoji", TokenizerSamples.EMOJI);
        addAll(out, "code", TokenizerSamples.CODE);
        addAll(out, "numbers", TokenizerSamples.NUMBERS);
        addAll(out, "whitespace", TokenizerSamples.WHITESPACE);
        addAll(out, "contractions", TokenizerSamples.CONTRACTIONS);
        addAll(out, "nfc", TokenizerSamples.NORMALIZATION);
        addAll(out, "added tokens", TokenizerSamples.WITH_ADDED_TOKENS);
        return out.stream();
    }

    private static void addAll(List<Arguments> out, String category, List<String> texts) {
        for (int i = 0; i < texts.size(); i++) {
            out.add(Arguments.of(category + " " + i, texts.get(i)));
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fixedSamples")
    void sampleMatchesHuggingFace(String name, String text) {
        assertMatchesHuggingFace(text);
    }

    @Test
    void allLanguagesInOneTextMatchHuggingFace() {
        StringBuilder sb = new StringBuilder();
        for (Language l : TokenizerSamples.languages()) {
            sb.append(l.text()).append('\n');
        }
        assertMatchesHuggingFace(sb.toString());
    }

    @Test
    void longMultilingualCorpusMatchesHuggingFace() {
        String corpus = TokenizerSamples.longCorpus(7, 300_000);
        assertMatchesHuggingFace(corpus);
    }

    @Test
    void randomStringsFromMixedAlphabetMatchHuggingFace() {
        SplittableRandom random = new SplittableRandom(RANDOM_SEED);
        for (int i = 0; i < RANDOM_STRINGS; i++) {
            assertMatchesHuggingFace(TokenizerSamples.randomText(random, 40));
        }
    }

    @Test
    void longRunsOfOneCharacterClassMatchHuggingFace() {
        for (String unit : new String[] {"a", " ", "\n", "\t", "\r\n", "é", "中", "😀", "1", ".", " .", "'s", "\u3000"}) {
            for (int n : new int[] {2, 3, 7, 64, 1000}) {
                assertMatchesHuggingFace(unit.repeat(n));
                assertMatchesHuggingFace("x" + unit.repeat(n) + "y");
                assertMatchesHuggingFace(" " + unit.repeat(n) + " z");
            }
        }
    }

    @Test
    void encodeNeverProducesAddedTokens() {
        for (String text : TokenizerSamples.WITH_ADDED_TOKENS) {
            for (int id : tokenizer.encode(text)) {
                assertTrue(id < 151643, () -> "added token " + id + " from encode of " + escape(text));
            }
        }
    }

    /**
     * The second, piecewise reference for text as data: {@code <|im_end|>} pre-tokenizes into
     * {@code <|}, {@code im}, {@code _end}, {@code |>}, and Hugging Face on each piece alone (no
     * added token can match in a piece) gives the ids {@link Qwen2Tokenizer#encode} must give.
     */
    @Test
    void encodeOfControlTokenTextEqualsHuggingFaceOnItsPieces() {
        String[][] cases = {
            {"a<|im_end|>b", "a", "<|", "im", "_end", "|>", "b"},
            {"<|im_start|>system\n", "<|", "im", "_start", "|>", "system", "\n"},
            {"x <|endoftext|>", "x", " <|", "endoftext", "|>"},
        };
        for (String[] c : cases) {
            List<Integer> expected = new ArrayList<>();
            for (int k = 1; k < c.length; k++) {
                for (int id : hfIds(huggingFace, c[k])) {
                    expected.add(id);
                }
            }
            assertSameIds(
                    "encode vs Hugging Face on the pieces",
                    c[0],
                    expected.stream().mapToInt(Integer::intValue).toArray(),
                    tokenizer.encode(c[0]),
                    tokenizer);
        }
    }

    /**
     * Hugging Face takes UTF-8 and never sees an unpaired surrogate; we encode each as one
     * U+FFFD, as a lossy UTF-8 encoder does. (DJL's JNI passes such a string on in modified
     * UTF-8 and the Rust side decodes that lossily, three U+FFFD per surrogate: an artifact of
     * the binding, not of the tokenizer, which we do not copy.)
     */
    @Test
    void loneSurrogatesEncodeAsOneReplacementCharacterEach() {
        String[][] cases = {
            {"x\uD800y", "x\uFFFDy"},
            {"\uDC00", "\uFFFD"},
            {"a\uD83D", "a\uFFFD"},
            {"\uDE00\uD83D", "\uFFFD\uFFFD"},
            {"\uD83D\uDE00\uD800", "\uD83D\uDE00\uFFFD"},
        };
        for (String[] c : cases) {
            assertEquals(c[1], Qwen2Tokenizer.replaceLoneSurrogates(c[0]));
            assertSameIds("lone surrogate", c[0], hfIds(huggingFace, c[1]), tokenizer.encode(c[0]), tokenizer);
            assertSameIds(
                    "lone surrogate",
                    c[0],
                    hfIds(huggingFace, c[1]),
                    tokenizer.encodeWithSpecialTokens(c[0]),
                    tokenizer);
        }
    }

    @Test
    void decodeMatchesHuggingFace() {
        List<String> texts = new ArrayList<>(TokenizerSamples.fixedSamples());
        texts.addAll(TokenizerSamples.WITH_ADDED_TOKENS);
        for (Language l : TokenizerSamples.languages()) {
            texts.add(l.text());
        }
        for (String text : texts) {
            int[] ids = tokenizer.encodeWithSpecialTokens(text);
            assertEquals(hfDecode(ids), tokenizer.decode(ids), () -> "decode of " + escape(text));
        }
    }

    /**
     * Random id sequences, heavy in single-byte tokens, so that most decode to ill-formed UTF-8:
     * the U+FFFD substitution must be Hugging Face's (Rust's from_utf8_lossy) exactly.
     */
    @Test
    void decodeOfArbitraryIdsMatchesHuggingFaceIncludingInvalidUtf8() {
        int[] byteTokens = new int[256];
        for (int b = 0; b < 256; b++) {
            byteTokens[b] = tokenizer.id(String.valueOf(ByteLevel.charOf(b))).getAsInt();
        }
        SplittableRandom random = new SplittableRandom(RANDOM_SEED + 1);
        for (int i = 0; i < 3000; i++) {
            int[] ids = new int[1 + random.nextInt(8)];
            for (int k = 0; k < ids.length; k++) {
                int pick = random.nextInt(10);
                if (pick < 6) {
                    // lead and continuation bytes mostly, so sequences get cut and restarted
                    int b = random.nextInt(4) == 0 ? random.nextInt(256) : 0x80 + random.nextInt(0x80);
                    ids[k] = byteTokens[b];
                } else if (pick < 9) {
                    ids[k] = random.nextInt(151643);
                } else {
                    ids[k] = 151643 + random.nextInt(26);
                }
            }
            assertEquals(hfDecode(ids), tokenizer.decode(ids), () -> "decode of " + java.util.Arrays.toString(ids));
        }
    }

    /** Ill-formed sequences where decoders are known to differ, one by one. */
    @Test
    void decodeOfIllFormedSequencesMatchesHuggingFace() {
        int[][] sequences = {
            {0xED, 0xA0, 0x80}, {0xED, 0xA6, 0x41}, {0xE0, 0x80, 0xAF}, {0xC0, 0xAF}, {0xF4, 0x90, 0x80, 0x80},
            {0xF0, 0x9F, 0x98}, {0xE2, 0x82, 0x41}, {0x61, 0xF1, 0x80, 0x80, 0xE1, 0x80, 0xC2, 0x62, 0x80, 0x63},
            {0xF0, 0x9F, 0x98, 0x80}, {0xFF}, {0xC3}, {0xE4, 0xB8}
        };
        for (int[] bytes : sequences) {
            int[] ids = new int[bytes.length];
            for (int k = 0; k < bytes.length; k++) {
                ids[k] = tokenizer.id(String.valueOf(ByteLevel.charOf(bytes[k]))).getAsInt();
            }
            assertEquals(hfDecode(ids), tokenizer.decode(ids), () -> java.util.Arrays.toString(bytes));
        }
    }

    @Test
    void decodeOfEncodeIsNfcOfText() {
        List<String> texts = new ArrayList<>(TokenizerSamples.fixedSamples());
        texts.addAll(TokenizerSamples.WITH_ADDED_TOKENS);
        for (Language l : TokenizerSamples.languages()) {
            texts.add(l.text());
        }
        SplittableRandom random = new SplittableRandom(RANDOM_SEED + 2);
        for (int i = 0; i < 500; i++) {
            texts.add(TokenizerSamples.randomText(random, 40));
        }
        for (String text : texts) {
            String nfc = Normalizer.normalize(text, Normalizer.Form.NFC);
            assertEquals(nfc, tokenizer.decode(tokenizer.encode(text)), () -> "round trip of " + escape(text));
        }
    }

    @Test
    void tokenStringsMatchHuggingFace() {
        String corpus = TokenizerSamples.longCorpus(11, 20_000)
                + String.join("", TokenizerSamples.WITH_ADDED_TOKENS);
        Encoding hf = huggingFace.encode(corpus, false, false);
        int[] ids = tokenizer.encodeWithSpecialTokens(corpus);
        assertEquals(List.of(hf.getTokens()), tokenizer.tokenStrings(ids));
        for (int k = 0; k < ids.length; k++) {
            assertEquals(ids[k], tokenizer.id(hf.getTokens()[k]).getAsInt());
        }
    }

    @Test
    void vocabularyFactsOfTheQwen3Edition() {
        assertEquals(151_643 + 26, tokenizer.vocabSize());
        assertEquals(151_387, tokenizer.mergeCount());
        assertEquals(151643, tokenizer.endOfTextId().getAsInt());
        assertEquals(151644, tokenizer.imStartId().getAsInt());
        assertEquals(151645, tokenizer.imEndId().getAsInt());
        assertEquals("<|im_end|>", tokenizer.token(151645));
        assertEquals("Ġthe", tokenizer.token(279));
        for (int id = 151643; id <= 151656; id++) {
            assertTrue(tokenizer.isSpecial(id), tokenizer.token(id));
        }
        for (int id = 151657; id < 151669; id++) {
            assertFalse(tokenizer.isSpecial(id), tokenizer.token(id)); // <tool_call>, FIM, <think>
        }
        assertFalse(tokenizer.isSpecial(279));
        assertFalse(tokenizer.hasToken(151669));
        assertFalse(tokenizer.id("no such token").isPresent());
    }
}
