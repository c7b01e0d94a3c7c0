/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.tokenizer;

import io.flinkqwen.engine.oracle.OracleFiles;
import static io.flinkqwen.engine.tokenizer.IdAssertions.assertSameIds;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flinkqwen.engine.tokenizer.TokenizerSamples.Language;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The GGUF route: the real Qwen vocabulary laid out as a GGUF file stores it (tokens by id,
 * merges as "a b" strings, token types 1 normal / 3 control / 4 user-defined, and {@code
 * [PAD<id>]} fillers up to the 151,936 embedding rows of Qwen2 models, typed 4 and 5 as
 * converters write them) must tokenize exactly as the tokenizer.json route.
 */
class GgufVocabularyTest {

    /** Embedding rows of the Qwen2 0.5B-7B models; GGUF vocabularies are padded to it. */
    private static final int EMBEDDING_ROWS = 151_936;

    private static Qwen2Tokenizer fromJson;
    private static Qwen2Tokenizer fromGguf;
    private static int realTokens;

    /** Per test so that a missing oracle file reports each test skipped; builds once. */
    @BeforeEach
    void load() throws IOException {
        fromJson = RealQwen.ours();
        if (fromGguf != null) {
            return;
        }
        JsonNode root = new ObjectMapper().readTree(OracleFiles.qwenTokenizerJson().toFile());
        String[] tokens = new String[EMBEDDING_ROWS];
        int[] types = new int[EMBEDDING_ROWS];
        for (Map.Entry<String, JsonNode> e : root.path("model").path("vocab").properties()) {
            tokens[e.getValue().asInt()] = e.getKey();
            types[e.getValue().asInt()] = Qwen2Tokenizer.TYPE_NORMAL;
        }
        for (JsonNode t : root.path("added_tokens")) {
            tokens[t.path("id").asInt()] = t.path("content").asText();
            types[t.path("id").asInt()] =
                    t.path("special").asBoolean()
                            ? Qwen2Tokenizer.TYPE_CONTROL
                            : Qwen2Tokenizer.TYPE_USER_DEFINED;
        }
        realTokens = 0;
        for (int id = 0; id < EMBEDDING_ROWS; id++) {
            if (tokens[id] == null) {
                tokens[id] = "[PAD" + id + "]";
                types[id] = id % 2 == 0 ? Qwen2Tokenizer.TYPE_USER_DEFINED : Qwen2Tokenizer.TYPE_UNUSED;
            } else {
                realTokens++;
            }
        }
        List<String> merges = new ArrayList<>();
        for (JsonNode m : root.path("model").path("merges")) {
            merges.add(m.isArray() ? m.get(0).asText() + " " + m.get(1).asText() : m.asText());
        }
        fromGguf = Qwen2Tokenizer.fromVocabulary(Arrays.asList(tokens), merges, types);
    }

    private static void assertSameAsJson(String text) {
        assertSameIds("encode, GGUF vs tokenizer.json", text, fromJson.encode(text), fromGguf.encode(text), fromJson);
        assertSameIds(
                "encodeWithSpecialTokens, GGUF vs tokenizer.json",
                text,
                fromJson.encodeWithSpecialTokens(text),
                fromGguf.encodeWithSpecialTokens(text),
                fromJson);
    }

    @Test
    void samplesAndLanguagesTokenizeAlike() {
        for (String text : TokenizerSamples.fixedSamples()) {
            assertSameAsJson(text);
        }
        for (String text : TokenizerSamples.WITH_ADDED_TOKENS) {
            assertSameAsJson(text);
        }
        for (Language l : TokenizerSamples.languages()) {
            assertSameAsJson(l.text());
        }
        assertSameAsJson(TokenizerSamples.longCorpus(3, 100_000));
    }

    @Test
    void randomStringsTokenizeAlike() {
        SplittableRandom random = new SplittableRandom(99);
        for (int i = 0; i < 2000; i++) {
            assertSameAsJson(TokenizerSamples.randomText(random, 40));
        }
    }

    @Test
    void vocabularyAgreesIdById() {
        assertEquals(151_669, realTokens);
        assertEquals(EMBEDDING_ROWS, fromGguf.vocabSize()); // fillers are tokens in a GGUF file
        assertEquals(fromJson.mergeCount(), fromGguf.mergeCount());
        for (int id = 0; id < realTokens; id++) {
            assertEquals(fromJson.token(id), fromGguf.token(id));
            assertEquals(fromJson.isSpecial(id), fromGguf.isSpecial(id), fromJson.token(id));
        }
        assertEquals(fromJson.imEndId(), fromGguf.imEndId());
        int[] all = new int[realTokens];
        Arrays.setAll(all, i -> i);
        assertArrayEquals(fromJson.decodeBytes(all), fromGguf.decodeBytes(all));
        assertEquals("[PAD151900]", fromGguf.decode(new int[] {151_900}));
    }
}
