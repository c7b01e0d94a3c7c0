/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.tokenizer;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flinkqwen.engine.tokenizer.Qwen2Tokenizer.AddedToken;
import io.flinkqwen.engine.weights.ModelFormatException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads the parts of a Hugging Face tokenizer.json that a Qwen2 tokenizer consists of, and
 * refuses the settings it does not implement instead of ignoring them.
 *
 * <p>The 11 MB vocabulary and merges are read with Jackson's streaming parser (no tree of
 * 300,000 nodes); the small sections (added tokens, normalizer, pre-tokenizer, decoder) as trees.
 */
final class TokenizerJsonReader {

    /** What the file says, ready for the tokenizer's constructor. */
    record Contents(
            String[] tokens,
            Map<String, Integer> vocab,
            List<String[]> merges,
            boolean ignoreMerges,
            List<AddedToken> added,
            boolean nfc) {}

    private final Path path;
    private final ObjectMapper mapper = new ObjectMapper();

    private String modelType;
    private Map<String, Integer> vocab;
    private List<String[]> merges;
    private boolean ignoreMerges;
    private JsonNode addedTokens;
    private JsonNode normalizer;
    private JsonNode preTokenizer;
    private JsonNode decoder;

    private TokenizerJsonReader(Path path) {
        this.path = path;
    }

    static Contents read(Path path) {
        TokenizerJsonReader reader = new TokenizerJsonReader(path);
        try (JsonParser p = reader.mapper.createParser(path.toFile())) {
            reader.readTop(p);
        } catch (JsonProcessingException e) {
            throw new ModelFormatException(
                    path + ": not valid JSON: " + e.getOriginalMessage() + " at " + e.getLocation(),
                    e);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read tokenizer " + path, e);
        }
        return reader.contents();
    }

    private void readTop(JsonParser p) throws IOException {
        if (p.nextToken() != JsonToken.START_OBJECT) {
            throw malformed("the top level is not a JSON object");
        }
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String field = p.currentName();
            p.nextToken();
            switch (field) {
                case "model":
                    readModel(p);
                    break;
                case "added_tokens":
                    addedTokens = mapper.readTree(p);
                    break;
                case "normalizer":
                    normalizer = mapper.readTree(p);
                    break;
                case "pre_tokenizer":
                    preTokenizer = mapper.readTree(p);
                    break;
                case "decoder":
                    decoder = mapper.readTree(p);
                    break;
                default:
                    p.skipChildren(); // version, truncation, padding, post_processor: no effect on ids
            }
        }
    }

    private void readModel(JsonParser p) throws IOException {
        if (p.currentToken() != JsonToken.START_OBJECT) {
            throw malformed("model is not an object");
        }
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String field = p.currentName();
            JsonToken value = p.nextToken();
            switch (field) {
                case "type":
                    modelType = p.getValueAsString();
                    break;
                case "vocab":
                    readVocab(p);
                    break;
                case "merges":
                    readMerges(p);
                    break;
                case "ignore_merges":
                    ignoreMerges = value == JsonToken.VALUE_TRUE;
                    break;
                case "byte_fallback":
                    if (value == JsonToken.VALUE_TRUE) {
                        throw unsupported("model.byte_fallback is true");
                    }
                    break;
                case "dropout":
                    if (value != JsonToken.VALUE_NULL && p.getValueAsDouble() != 0.0) {
                        throw unsupported("model.dropout is " + p.getText() + " (BPE dropout is random)");
                    }
                    break;
                case "continuing_subword_prefix":
                case "end_of_word_suffix":
                    if (value != JsonToken.VALUE_NULL && !p.getText().isEmpty()) {
                        throw unsupported("model." + field + " is '" + p.getText() + "'");
                    }
                    break;
                default:
                    p.skipChildren(); // unk_token, fuse_unk: unused when every byte is a token
            }
        }
    }

    private void readVocab(JsonParser p) throws IOException {
        if (p.currentToken() != JsonToken.START_OBJECT) {
            throw malformed("model.vocab is not an object");
        }
        vocab = new HashMap<>(1 << 18);
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String token = p.currentName();
            if (p.nextToken() != JsonToken.VALUE_NUMBER_INT || p.getIntValue() < 0) {
                throw malformed("model.vocab['" + token + "'] is not a non-negative integer id");
            }
            vocab.put(token, p.getIntValue());
        }
    }

    private void readMerges(JsonParser p) throws IOException {
        if (p.currentToken() != JsonToken.START_ARRAY) {
            throw malformed("model.merges is not an array");
        }
        merges = new ArrayList<>(1 << 18);
        JsonToken t;
        while ((t = p.nextToken()) != JsonToken.END_ARRAY) {
            int rank = merges.size();
            if (t == JsonToken.VALUE_STRING) {
                // the older form "a b": byte-level tokens never hold a space, so one space splits
                String merge = p.getText();
                int space = merge.indexOf(' ');
                if (space <= 0 || space == merge.length() - 1 || merge.indexOf(' ', space + 1) >= 0) {
                    throw malformed("model.merges[" + rank + "] '" + merge + "' is not two tokens");
                }
                merges.add(new String[] {merge.substring(0, space), merge.substring(space + 1)});
            } else if (t == JsonToken.START_ARRAY) {
                // the newer form ["a", "b"]
                String left = p.nextToken() == JsonToken.VALUE_STRING ? p.getText() : null;
                String right = p.nextToken() == JsonToken.VALUE_STRING ? p.getText() : null;
                if (left == null || right == null || p.nextToken() != JsonToken.END_ARRAY) {
                    throw malformed("model.merges[" + rank + "] is not an array of two strings");
                }
                merges.add(new String[] {left, right});
            } else {
                throw malformed("model.merges[" + rank + "] is neither a string nor an array");
            }
        }
    }

    private Contents contents() {
        if (modelType == null || vocab == null || merges == null) {
            throw malformed("model must have type, vocab and merges");
        }
        if (!modelType.equals("BPE")) {
            throw unsupported("model.type is " + modelType + ", not BPE");
        }
        List<AddedToken> added = readAddedTokens();
        boolean nfc = readNormalizer();
        checkPreTokenizer();
        if (decoder == null || !"ByteLevel".equals(decoder.path("type").asText())) {
            throw unsupported("decoder is " + shortText(decoder) + ", not ByteLevel");
        }

        added = assignIds(added);
        int size = 0;
        for (int id : vocab.values()) {
            size = Math.max(size, id + 1);
        }
        for (AddedToken t : added) {
            size = Math.max(size, t.id() + 1);
        }
        String[] tokens = new String[size];
        for (Map.Entry<String, Integer> e : vocab.entrySet()) {
            String before = tokens[e.getValue()];
            if (before != null) {
                throw malformed(
                        "model.vocab gives id " + e.getValue() + " to both '" + before + "' and '"
                                + e.getKey() + "'");
            }
            tokens[e.getValue()] = e.getKey();
        }
        for (AddedToken t : added) {
            String before = tokens[t.id()];
            if (before != null && !before.equals(t.content()) && !vocab.containsKey(t.content())) {
                throw malformed(
                        "added token '" + t.content() + "' gets id " + t.id() + ", which model.vocab"
                                + " gives to '" + before + "' (model.vocab has gaps in its ids)");
            }
            tokens[t.id()] = t.content(); // Hugging Face's id_to_token looks at added tokens first
        }
        return new Contents(tokens, vocab, merges, ignoreMerges, added, nfc);
    }

    /**
     * The ids Hugging Face gives the added tokens when it loads the file, which are the ids the
     * model was trained with. It does not take the {@code id} fields as they are (it only warns
     * when they differ): a token that is already in the vocabulary keeps that id; a new one gets
     * the size of the BPE vocabulary, or one more than the largest added id once that is past
     * it. In a consistent file, like Qwen's, both agree.
     */
    private List<AddedToken> assignIds(List<AddedToken> inFileOrder) {
        Map<String, AddedToken> byContent = new LinkedHashMap<>();
        int vocabSize = vocab.size();
        int maxAdded = -1;
        for (AddedToken t : inFileOrder) {
            AddedToken known = byContent.get(t.content());
            Integer id = known != null ? Integer.valueOf(known.id()) : vocab.get(t.content());
            if (id == null) {
                id = maxAdded >= 0 && (maxAdded >= vocabSize || vocabSize == 0) ? maxAdded + 1 : vocabSize;
            }
            byContent.put(t.content(), new AddedToken(id, t.content(), t.special(), t.normalized()));
            maxAdded = Math.max(maxAdded, id);
        }
        return new ArrayList<>(byContent.values());
    }

    private List<AddedToken> readAddedTokens() {
        List<AddedToken> out = new ArrayList<>();
        if (addedTokens == null || addedTokens.isNull()) {
            return out;
        }
        if (!addedTokens.isArray()) {
            throw malformed("added_tokens is not an array");
        }
        for (int i = 0; i < addedTokens.size(); i++) {
            JsonNode t = addedTokens.get(i);
            JsonNode id = t.get("id");
            JsonNode content = t.get("content");
            if (id == null || !id.canConvertToInt() || id.asInt() < 0
                    || content == null || !content.isTextual() || content.asText().isEmpty()) {
                throw malformed("added_tokens[" + i + "] needs an id >= 0 and non-empty content");
            }
            for (String flag : new String[] {"lstrip", "rstrip", "single_word"}) {
                if (t.path(flag).asBoolean(false)) {
                    throw unsupported(
                            "added token '" + content.asText() + "' has " + flag + ": true");
                }
            }
            boolean special = t.path("special").asBoolean(false);
            // Hugging Face's AddedToken defaults normalized to !special
            boolean normalized = t.path("normalized").asBoolean(!special);
            out.add(new AddedToken(id.asInt(), content.asText(), special, normalized));
        }
        return out;
    }

    private boolean readNormalizer() {
        if (normalizer == null || normalizer.isNull()) {
            return false;
        }
        String type = normalizer.path("type").asText();
        if (type.equals("NFC")) {
            return true;
        }
        if (type.equals("Sequence")) {
            JsonNode list = normalizer.path("normalizers");
            boolean nfc = false;
            for (JsonNode n : list) {
                if (!"NFC".equals(n.path("type").asText())) {
                    throw unsupported("normalizer " + shortText(n) + " (only NFC is implemented)");
                }
                nfc = true;
            }
            return nfc;
        }
        throw unsupported("normalizer " + shortText(normalizer) + " (only NFC is implemented)");
    }

    private void checkPreTokenizer() {
        JsonNode steps = preTokenizer == null ? null : preTokenizer.get("pretokenizers");
        boolean ok = preTokenizer != null
                && "Sequence".equals(preTokenizer.path("type").asText())
                && steps != null
                && steps.size() == 2;
        if (ok) {
            JsonNode split = steps.get(0);
            JsonNode byteLevel = steps.get(1);
            ok = "Split".equals(split.path("type").asText())
                    && Qwen2PreTokenizer.PATTERN.equals(split.path("pattern").path("Regex").asText())
                    && "Isolated".equals(split.path("behavior").asText())
                    && !split.path("invert").asBoolean(false)
                    && "ByteLevel".equals(byteLevel.path("type").asText())
                    && !byteLevel.path("add_prefix_space").asBoolean(false)
                    && !byteLevel.path("use_regex").asBoolean(true);
        }
        if (!ok) {
            throw unsupported(
                    "pre_tokenizer " + shortText(preTokenizer) + "; only Qwen2's is implemented:"
                            + " Sequence[Split(Regex " + Qwen2PreTokenizer.PATTERN
                            + ", Isolated), ByteLevel(add_prefix_space false, use_regex false)]");
        }
    }

    private static String shortText(JsonNode node) {
        String s = String.valueOf(node);
        return s.length() > 300 ? s.substring(0, 300) + "..." : s;
    }

    private ModelFormatException malformed(String what) {
        return new ModelFormatException(path + ": " + what);
    }

    private UnsupportedOperationException unsupported(String what) {
        return new UnsupportedOperationException(path + ": unsupported tokenizer setting: " + what);
    }
}
