/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.tokenizer;

import static io.flinkqwen.engine.tokenizer.IdAssertions.assertSameIds;
import static io.flinkqwen.engine.tokenizer.RealQwen.hfIds;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A tiny vocabulary (256 byte tokens, a few merges, three special tokens), as tiny test models
 * use, through {@link Qwen2Tokenizer#fromVocabulary}, through tokenizer.json, and through
 * Hugging Face on the same tokenizer.json. Needs no oracle files.
 */
class TinyVocabularyTest {

    @TempDir static Path dir;

    private static TinyVocabulary vocabulary;
    private static Qwen2Tokenizer tokenizer;
    private static HuggingFaceTokenizer huggingFace;

    @BeforeAll
    static void load() throws IOException {
        vocabulary = TinyVocabulary.standard();
        tokenizer = vocabulary.fromVocabulary();
        Path json = vocabulary.writeTokenizerJson(dir.resolve("tokenizer.json"), false);
        huggingFace = HuggingFaceTokenizer.newInstance(json, Map.of("truncation", "false"));
    }

    @AfterAll
    static void close() {
        huggingFace.close();
    }

    private int[] ids(String... tokens) {
        int[] out = new int[tokens.length];
        for (int i = 0; i < tokens.length; i++) {
            out[i] = vocabulary.id(tokens[i]);
        }
        return out;
    }

    @Test
    void encodesWithTheMerges() {
        assertArrayEquals(ids("hello", "Ġworld"), tokenizer.encode("hello world"));
        assertArrayEquals(ids("h", "Ã©"), tokenizer.encode("he\u0301")); // NFC first: é is C3 A9
        assertArrayEquals(ids("hello", "ĠĠ", "Ġworld"), tokenizer.encode("hello   world"));
        assertArrayEquals(new int[0], tokenizer.encode(""));
    }

    /**
     * "abab" with merges ranked ["ab a", "a b"]: Hugging Face merges the first "a b", queues the
     * new pair "ab a" of lower rank and merges it before the second "a b", giving "aba" "b".
     * Merging every "a b" first (GPT-2's loop) would give "ab" "ab".
     */
    @Test
    void mergeOrderIsHuggingFacesPriorityQueue() {
        assertArrayEquals(ids("aba", "b"), tokenizer.encode("abab"));
        assertArrayEquals(ids("aba", "b"), hfIds(huggingFace, "abab"));
        assertArrayEquals(ids("aba", "aba", "b"), tokenizer.encode("abaabab"));
    }

    @Test
    void specialTokensAreControlOnlyWhenAskedFor() {
        int imStart = vocabulary.id("<|im_start|>");
        int imEnd = vocabulary.id("<|im_end|>");
        assertEquals(imStart, tokenizer.imStartId().getAsInt());
        assertEquals(imEnd, tokenizer.imEndId().getAsInt());
        assertEquals(vocabulary.id("<|endoftext|>"), tokenizer.endOfTextId().getAsInt());
        assertTrue(tokenizer.isSpecial(imEnd));
        assertFalse(tokenizer.isSpecial(vocabulary.id("hello")));

        String text = "<|im_start|>hello<|im_end|>";
        int[] control = tokenizer.encodeWithSpecialTokens(text);
        assertEquals(imStart, control[0]);
        assertEquals(imEnd, control[control.length - 1]);
        int[] data = tokenizer.encode(text);
        for (int id : data) {
            assertFalse(tokenizer.isSpecial(id));
        }
        assertEquals(text, tokenizer.decode(data));
        assertEquals(text, tokenizer.decode(control));
    }

    @Test
    void vocabularyAccessors() {
        assertEquals(vocabulary.tokens.size(), tokenizer.vocabSize());
        assertEquals(vocabulary.merges.size(), tokenizer.mergeCount());
        assertEquals("Ġworld", tokenizer.token(vocabulary.id("Ġworld")));
        assertEquals(vocabulary.id("Ġworld"), tokenizer.id("Ġworld").getAsInt());
        assertFalse(tokenizer.id("Ġmissing").isPresent());
        assertThrows(IllegalArgumentException.class, () -> tokenizer.token(-1));
        assertThrows(IllegalArgumentException.class, () -> tokenizer.token(vocabulary.tokens.size()));
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> tokenizer.decode(new int[] {1, 99999}));
        assertTrue(e.getMessage().contains("99999"), e.getMessage());
    }

    @Test
    void randomTextMatchesHuggingFaceOnTheSameVocabulary() {
        SplittableRandom random = new SplittableRandom(42);
        for (int i = 0; i < 1000; i++) {
            String text = TokenizerSamples.randomText(random, 30);
            assertSameIds("tiny vocabulary", text, hfIds(huggingFace, text), tokenizer.encodeWithSpecialTokens(text), tokenizer);
        }
        for (String text : List.of("hello world", "abab abababab", "hello\n\n\nworld  ", "é e\u0301 hello")) {
            assertSameIds("tiny vocabulary", text, hfIds(huggingFace, text), tokenizer.encode(text), tokenizer);
        }
    }

    @Test
    void tokenizerJsonOfTheSameVocabularyGivesTheSameIds() {
        Qwen2Tokenizer fromStrings = Qwen2Tokenizer.fromTokenizerJson(
                vocabulary.writeTokenizerJson(dir.resolve("strings.json"), false));
        Qwen2Tokenizer fromArrays = Qwen2Tokenizer.fromTokenizerJson(
                vocabulary.writeTokenizerJson(dir.resolve("arrays.json"), true));
        SplittableRandom random = new SplittableRandom(43);
        for (int i = 0; i < 300; i++) {
            String text = TokenizerSamples.randomText(random, 30);
            int[] expected = tokenizer.encodeWithSpecialTokens(text);
            assertSameIds("merges as strings", text, expected, fromStrings.encodeWithSpecialTokens(text), tokenizer);
            assertSameIds("merges as arrays", text, expected, fromArrays.encodeWithSpecialTokens(text), tokenizer);
        }
        assertEquals(tokenizer.vocabSize(), fromArrays.vocabSize());
    }

    @Test
    void bytesOnlyVocabularyEncodesEveryByteAsItsOwnToken() {
        Qwen2Tokenizer bytes = TinyVocabulary.bytesOnly().fromVocabulary();
        assertArrayEquals(new int[] {'h', 'i', 0xC3, 0xA9}, bytes.encode("hié"));
        assertEquals(256, bytes.vocabSize());
        assertFalse(bytes.imEndId().isPresent());
    }

    @Test
    void rejectsVocabularyWithoutEveryByte() {
        TinyVocabulary v = TinyVocabulary.bytesOnly();
        v.tokens.set(0x41, "A-renamed");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, v::fromVocabulary);
        assertTrue(e.getMessage().contains("0x41"), e.getMessage());
    }

    @Test
    void rejectsMergeOfUnknownTokens() {
        TinyVocabulary v = TinyVocabulary.bytesOnly();
        v.merges.add("x yz");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, v::fromVocabulary);
        assertTrue(e.getMessage().contains("merge 0") && e.getMessage().contains("yz"), e.getMessage());
        TinyVocabulary w = TinyVocabulary.bytesOnly();
        w.merges.add("x y"); // "xy" is not a token
        e = assertThrows(IllegalArgumentException.class, w::fromVocabulary);
        assertTrue(e.getMessage().contains("'xy'"), e.getMessage());
        TinyVocabulary u = TinyVocabulary.bytesOnly();
        u.merges.add("xy");
        e = assertThrows(IllegalArgumentException.class, u::fromVocabulary);
        assertTrue(e.getMessage().contains("one space"), e.getMessage());
    }

    @Test
    void rejectsInconsistentTypesAndDuplicates() {
        TinyVocabulary v = TinyVocabulary.standard();
        assertThrows(
                IllegalArgumentException.class,
                () -> Qwen2Tokenizer.fromVocabulary(v.tokens, v.merges, new int[3]));
        int[] badType = v.typeArray();
        badType[260] = 9;
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class, () -> Qwen2Tokenizer.fromVocabulary(v.tokens, v.merges, badType));
        assertTrue(e.getMessage().contains("token 260"), e.getMessage());
        List<String> duplicated = new ArrayList<>(v.tokens);
        duplicated.set(260, duplicated.get(261));
        e = assertThrows(
                IllegalArgumentException.class,
                () -> Qwen2Tokenizer.fromVocabulary(duplicated, List.of(), v.typeArray()));
        assertTrue(e.getMessage().contains("both"), e.getMessage());
    }

    @Test
    void unusedAndUserDefinedFillersDecodeButOnlyUserDefinedAreMatched() {
        TinyVocabulary v = TinyVocabulary.standard();
        int unused = v.tokens.size();
        v.tokens.add("[PAD" + unused + "]");
        v.types.add(Qwen2Tokenizer.TYPE_UNUSED);
        int userDefined = v.tokens.size();
        v.userDefined("[PAD" + userDefined + "]");
        Qwen2Tokenizer t = v.fromVocabulary();
        assertEquals("[PAD" + unused + "]", t.decode(new int[] {unused}));
        assertFalse(t.isSpecial(userDefined));
        assertArrayEquals(new int[] {userDefined}, t.encodeWithSpecialTokens("[PAD" + userDefined + "]"));
        for (int id : t.encodeWithSpecialTokens("[PAD" + unused + "]")) {
            assertTrue(id < 256, "unused tokens are never matched in text");
        }
        assertFalse(t.encode("[PAD" + userDefined + "]").length == 1);
    }
}
