/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.flinkqwen.engine.weights.ModelFormatException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.text.Normalizer;
import java.util.Map;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Reading tokenizer.json: what is accepted, and what is refused with a message that says why. */
class TokenizerJsonReaderTest {

    @TempDir Path dir;

    private final ObjectMapper mapper = new ObjectMapper();

    /** The tiny vocabulary's tokenizer.json, changed by {@code edit}. */
    private Path tokenizerJson(String name, Consumer<ObjectNode> edit) throws IOException {
        Path file = TinyVocabulary.standard().writeTokenizerJson(dir.resolve(name), false);
        ObjectNode root = (ObjectNode) mapper.readTree(file.toFile());
        edit.accept(root);
        mapper.writeValue(file.toFile(), root);
        return file;
    }

    private static ObjectNode model(ObjectNode root) {
        return (ObjectNode) root.get("model");
    }

    private <T extends Throwable> T refused(Class<T> type, Path file, String... fragments) {
        T e = assertThrows(type, () -> Qwen2Tokenizer.fromTokenizerJson(file));
        assertTrue(e.getMessage().contains(file.toString()), e.getMessage());
        for (String fragment : fragments) {
            assertTrue(e.getMessage().contains(fragment), e.getMessage());
        }
        return e;
    }

    @Test
    void refusesAnotherPreTokenizerRegex() throws IOException {
        Path file = tokenizerJson("gpt2.json", root -> ((ObjectNode) root.get("pre_tokenizer")
                .get("pretokenizers").get(0).get("pattern")).put("Regex", "'s|'t| ?\\p{L}+"));
        refused(UnsupportedOperationException.class, file, "pre_tokenizer", "only Qwen2's");
    }

    @Test
    void refusesSettingsThatChangeIdsAndAreNotImplemented() throws IOException {
        refused(UnsupportedOperationException.class,
                tokenizerJson("wordpiece.json", root -> model(root).put("type", "WordPiece")), "WordPiece");
        refused(UnsupportedOperationException.class,
                tokenizerJson("dropout.json", root -> model(root).put("dropout", 0.1)), "dropout");
        refused(UnsupportedOperationException.class,
                tokenizerJson("fallback.json", root -> model(root).put("byte_fallback", true)), "byte_fallback");
        refused(UnsupportedOperationException.class,
                tokenizerJson("suffix.json", root -> model(root).put("end_of_word_suffix", "</w>")), "end_of_word_suffix");
        refused(UnsupportedOperationException.class,
                tokenizerJson("nfkc.json", root -> root.putObject("normalizer").put("type", "NFKC")), "NFKC");
        refused(UnsupportedOperationException.class,
                tokenizerJson("lstrip.json", root -> ((ObjectNode) root.get("added_tokens").get(0)).put("lstrip", true)),
                "lstrip", "<|endoftext|>");
        refused(UnsupportedOperationException.class,
                tokenizerJson("decoder.json", root -> root.putNull("decoder")), "decoder");
    }

    @Test
    void refusesMalformedFilesNamingThePart() throws IOException {
        Path notJson = Files.writeString(dir.resolve("broken.json"), "{\"model\": {\"vocab\": {\"a\": 1,");
        refused(ModelFormatException.class, notJson, "not valid JSON");
        refused(ModelFormatException.class,
                tokenizerJson("novocab.json", root -> model(root).remove("vocab")), "vocab");
        refused(ModelFormatException.class,
                tokenizerJson("badid.json", root -> ((ObjectNode) model(root).get("vocab")).put("Ġ", "x")), "model.vocab['Ġ']");
        refused(ModelFormatException.class,
                tokenizerJson("badmerge.json", root -> model(root).withArray("merges").add(3)), "model.merges[");
        refused(ModelFormatException.class,
                tokenizerJson("unknownmerge.json", root -> model(root).withArray("merges").add("he zz")), "'zz'");
        refused(ModelFormatException.class,
                tokenizerJson("missingbyte.json", root -> {
                    ObjectNode vocab = (ObjectNode) model(root).get("vocab");
                    vocab.remove("A");
                    vocab.put("A-renamed", 'A');
                }), "0x41");
        refused(ModelFormatException.class,
                tokenizerJson("dupid.json", root -> ((ObjectNode) model(root).get("vocab")).put("Ġw", 0)), "id 0");
        assertThrows(UncheckedIOException.class,
                () -> Qwen2Tokenizer.fromTokenizerJson(dir.resolve("absent.json")));
    }

    @Test
    void withoutNormalizerTextIsNotComposed() throws IOException {
        Qwen2Tokenizer nfc = Qwen2Tokenizer.fromTokenizerJson(tokenizerJson("nfc.json", root -> { }));
        Qwen2Tokenizer none = Qwen2Tokenizer.fromTokenizerJson(
                tokenizerJson("none.json", root -> root.putNull("normalizer")));
        assertEquals("e\u0301", none.decode(none.encode("e\u0301")));
        assertEquals("\u00E9", nfc.decode(nfc.encode("e\u0301")));
    }

    @Test
    void normalizedAddedTokenIsMatchedAfterNfc() throws IOException {
        // an added token "é!" (normalized: true) matches "e\u0301!" once NFC has composed it
        Path file = tokenizerJson("normalized.json", root -> {
            ObjectNode t = root.withArray("added_tokens").addObject();
            t.put("id", 273);
            t.put("content", "\u00E9!");
            t.put("single_word", false);
            t.put("lstrip", false);
            t.put("rstrip", false);
            t.put("normalized", true);
            t.put("special", false);
        });
        Qwen2Tokenizer t = Qwen2Tokenizer.fromTokenizerJson(file);
        int[] ids = t.encodeWithSpecialTokens("xe\u0301!");
        assertArrayEquals(new int[] {'x', 273}, ids);
        assertFalse(t.isSpecial(273));
        // Hugging Face's ByteLevel decoder reads the added token's characters as byte-level
        // characters when it can: "é" is byte E9 there, so "é!" decodes to U+FFFD "!"
        assertEquals("x\uFFFD!", t.decode(ids));
        try (HuggingFaceTokenizer hf = HuggingFaceTokenizer.newInstance(file, Map.of())) {
            assertArrayEquals(new long[] {'x', 273}, hf.encode("xe\u0301!", false, false).getIds());
            assertEquals("x\uFFFD!", hf.decode(new long[] {'x', 273}, false));
        }
    }

    /**
     * Hugging Face does not take the added tokens' {@code id} fields as they are: a new token
     * gets the next id after the vocabulary and the added tokens before it, a token already in
     * the vocabulary keeps its id. The real Qwen files are consistent; this file is not.
     */
    @Test
    void addedTokenIdsAreAssignedAsHuggingFaceAssignsThem() throws IOException {
        Path file = tokenizerJson("gaps.json", root -> {
            for (String[] token : new String[][] {{"<gap>", "1000"}, {"he", "2000"}, {"<next>", "5"}}) {
                ObjectNode t = root.withArray("added_tokens").addObject();
                t.put("id", Integer.parseInt(token[1]));
                t.put("content", token[0]);
                t.put("single_word", false);
                t.put("lstrip", false);
                t.put("rstrip", false);
                t.put("normalized", false);
                t.put("special", true);
            }
        });
        Qwen2Tokenizer t = Qwen2Tokenizer.fromTokenizerJson(file);
        String text = "<gap>he<next>hello<|im_end|>";
        try (HuggingFaceTokenizer hf = HuggingFaceTokenizer.newInstance(file, Map.of())) {
            long[] expected = hf.encode(text, false, false).getIds();
            assertArrayEquals(expected, java.util.Arrays.stream(t.encodeWithSpecialTokens(text)).asLongStream().toArray());
            assertEquals(hf.decode(expected, false), t.decode(t.encodeWithSpecialTokens(text)));
        }
        assertEquals(273, t.id("<gap>").getAsInt());
        assertEquals(256, t.id("he").getAsInt());
        assertEquals(274, t.id("<next>").getAsInt());
    }

    @Test
    void ignoreMergesTakesWholeWordsFromTheVocabulary() throws IOException {
        // "xyz" is a token no merge builds: only ignore_merges finds it
        Path plain = tokenizerJson("plain.json", root -> ((ObjectNode) model(root).get("vocab")).put("xyz", 500));
        Path ignore = tokenizerJson("ignore.json", root -> {
            ((ObjectNode) model(root).get("vocab")).put("xyz", 500);
            model(root).put("ignore_merges", true);
        });
        assertArrayEquals(new int[] {'x', 'y', 'z'}, Qwen2Tokenizer.fromTokenizerJson(plain).encode("xyz"));
        assertArrayEquals(new int[] {500}, Qwen2Tokenizer.fromTokenizerJson(ignore).encode("xyz"));
    }

    /** Below U+0300 NFC changes nothing, alone or in pairs: the tokenizer's fast path relies on it. */
    @Test
    void textBelowU0300IsAlreadyNfc() {
        char[] pair = new char[2];
        for (char a = 0; a < 0x300; a++) {
            for (char b = 0; b < 0x300; b++) {
                pair[0] = a;
                pair[1] = b;
                String s = new String(pair);
                if (!Normalizer.isNormalized(s, Normalizer.Form.NFC)) {
                    throw new AssertionError(String.format("U+%04X U+%04X is not NFC", (int) a, (int) b));
                }
            }
        }
    }
}
