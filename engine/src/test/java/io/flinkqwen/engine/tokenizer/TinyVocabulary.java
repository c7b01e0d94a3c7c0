/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.tokenizer;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * A small byte-level BPE vocabulary as tiny test models use: the 256 byte tokens (id = byte
 * value), tokens made by a few merges, then the three Qwen2 special tokens. It can be handed to
 * {@link Qwen2Tokenizer#fromVocabulary} as GGUF stores it, or written as a tokenizer.json of
 * Qwen2's shape for {@link Qwen2Tokenizer#fromTokenizerJson} and for Hugging Face.
 */
final class TinyVocabulary {

    final List<String> tokens = new ArrayList<>();
    final List<String> merges = new ArrayList<>();
    final List<Integer> types = new ArrayList<>();

    /** The 256 byte tokens only. */
    static TinyVocabulary bytesOnly() {
        TinyVocabulary v = new TinyVocabulary();
        for (int b = 0; b < 256; b++) {
            v.tokens.add(String.valueOf(ByteLevel.charOf(b)));
            v.types.add(Qwen2Tokenizer.TYPE_NORMAL);
        }
        return v;
    }

    /**
     * Bytes, merges that build "hello", " world", "ab"/"aba" (for the merge-order case), a
     * two-byte "é", then {@code <|endoftext|>}, {@code <|im_start|>}, {@code <|im_end|>}.
     */
    static TinyVocabulary standard() {
        TinyVocabulary v = bytesOnly();
        v.merge("h", "e").merge("l", "l").merge("he", "ll").merge("hell", "o");
        v.merge("Ġ", "w").merge("o", "r").merge("Ġw", "or").merge("Ġwor", "l").merge("Ġworl", "d");
        // "ab a" ranks before "a b": HF merges the first "a b" of "abab", then "ab a" at once
        v.token("ab").merge("ab", "a").merge("a", "b");
        v.merge("Ã", "©"); // é in UTF-8: C3 A9
        v.merge("Ġ", "Ġ").merge("Ċ", "Ċ");
        v.special(Qwen2Tokenizer.ENDOFTEXT).special(Qwen2Tokenizer.IM_START).special(Qwen2Tokenizer.IM_END);
        return v;
    }

    /** Appends merge {@code left right}, and its result token unless it is already there. */
    TinyVocabulary merge(String left, String right) {
        merges.add(left + " " + right);
        if (!tokens.contains(left + right)) {
            token(left + right);
        }
        return this;
    }

    /** Appends a normal token. */
    TinyVocabulary token(String token) {
        tokens.add(token);
        types.add(Qwen2Tokenizer.TYPE_NORMAL);
        return this;
    }

    TinyVocabulary special(String content) {
        tokens.add(content);
        types.add(Qwen2Tokenizer.TYPE_CONTROL);
        return this;
    }

    TinyVocabulary userDefined(String content) {
        tokens.add(content);
        types.add(Qwen2Tokenizer.TYPE_USER_DEFINED);
        return this;
    }

    int id(String token) {
        int id = tokens.indexOf(token);
        if (id < 0) {
            throw new IllegalArgumentException("no token " + token);
        }
        return id;
    }

    int[] typeArray() {
        return types.stream().mapToInt(Integer::intValue).toArray();
    }

    Qwen2Tokenizer fromVocabulary() {
        return Qwen2Tokenizer.fromVocabulary(tokens, merges, typeArray());
    }

    /**
     * Writes this vocabulary as a tokenizer.json of Qwen2's shape.
     *
     * @param arrayMerges merges as {@code ["a", "b"]} (newer files) instead of {@code "a b"}
     */
    Path writeTokenizerJson(Path file, boolean arrayMerges) {
        ObjectMapper mapper = new ObjectMapper();
        ObjectNode root = mapper.createObjectNode();
        root.put("version", "1.0");
        root.putNull("truncation");
        root.putNull("padding");
        ArrayNode added = root.putArray("added_tokens");
        for (int id = 0; id < tokens.size(); id++) {
            int type = types.get(id);
            if (type == Qwen2Tokenizer.TYPE_CONTROL || type == Qwen2Tokenizer.TYPE_USER_DEFINED) {
                ObjectNode t = added.addObject();
                t.put("id", id);
                t.put("content", tokens.get(id));
                t.put("single_word", false);
                t.put("lstrip", false);
                t.put("rstrip", false);
                t.put("normalized", false);
                t.put("special", type == Qwen2Tokenizer.TYPE_CONTROL);
            }
        }
        root.putObject("normalizer").put("type", "NFC");
        ObjectNode pre = root.putObject("pre_tokenizer");
        pre.put("type", "Sequence");
        ArrayNode steps = pre.putArray("pretokenizers");
        ObjectNode split = steps.addObject();
        split.put("type", "Split");
        split.putObject("pattern").put("Regex", Qwen2PreTokenizer.PATTERN);
        split.put("behavior", "Isolated");
        split.put("invert", false);
        ObjectNode byteLevel = steps.addObject();
        byteLevel.put("type", "ByteLevel");
        byteLevel.put("add_prefix_space", false);
        byteLevel.put("trim_offsets", false);
        byteLevel.put("use_regex", false);
        root.set("post_processor", byteLevel.deepCopy());
        root.set("decoder", byteLevel.deepCopy());
        ObjectNode model = root.putObject("model");
        model.put("type", "BPE");
        model.putNull("dropout");
        model.putNull("unk_token");
        model.put("continuing_subword_prefix", "");
        model.put("end_of_word_suffix", "");
        model.put("fuse_unk", false);
        model.put("byte_fallback", false);
        model.put("ignore_merges", false);
        ObjectNode vocab = model.putObject("vocab");
        for (int id = 0; id < tokens.size(); id++) {
            if (types.get(id) == Qwen2Tokenizer.TYPE_NORMAL) {
                vocab.put(tokens.get(id), id);
            }
        }
        ArrayNode mergeList = model.putArray("merges");
        for (String m : merges) {
            if (arrayMerges) {
                String[] parts = m.split(" ");
                mergeList.addArray().add(parts[0]).add(parts[1]);
            } else {
                mergeList.add(m);
            }
        }
        try {
            mapper.writerWithDefaultPrettyPrinter().writeValue(file.toFile(), root);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return file;
    }
}
