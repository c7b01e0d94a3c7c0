/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.testmodel;

import io.flinkqwen.engine.tokenizer.ByteLevel;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A small byte-level BPE vocabulary in Qwen2's shape, for test models that must not need the
 * real 151K-token file: the 256 byte tokens (GPT-2's byte-to-unicode alphabet, id = byte
 * value), merges learned by a few rounds of BPE on a fixed English and code
 * sample, Qwen's three special tokens, then {@code [PAD<id>]} fillers up to the embedding rows
 * (as llama.cpp's converter pads Qwen vocabularies).
 */
public final class SyntheticVocabulary {

    /** GGUF {@code tokenizer.ggml.token_type} values. */
    public static final int TYPE_NORMAL = 1;

    public static final int TYPE_CONTROL = 3;
    public static final int TYPE_UNUSED = 5;

    public static final String ENDOFTEXT = "<|endoftext|>";
    public static final String IM_START = "<|im_start|>";
    public static final String IM_END = "<|im_end|>";

    private static final String SAMPLE =
            "The quick brown fox jumps over the lazy dog. The log line says: ERROR connection"
                    + " refused at 10:42:07, retrying in 5 seconds. INFO the stream processor"
                    + " started the job with parallelism 2 and checkpoints every 10 seconds."
                    + " WARN the operator is backpressured; the queue is full. Summaries of the"
                    + " logs of the service are written to the output topic. public static void"
                    + " main(String[] args) { for (int i = 0; i < n; i++) { sum += x[i]; } }"
                    + " return the result of the translation into the target language.";

    private final List<String> tokens;
    private final List<String> merges;
    private final int[] tokenTypes;
    private final int bpeTokens;

    private SyntheticVocabulary(List<String> tokens, List<String> merges, int[] types, int bpeTokens) {
        this.tokens = tokens;
        this.merges = merges;
        this.tokenTypes = types;
        this.bpeTokens = bpeTokens;
    }

    /**
     * A vocabulary of exactly {@code size} ids: up to {@code maxMerges} merges (fewer if the
     * sample runs out of pairs), the three special tokens right after the BPE tokens, and pads.
     */
    public static SyntheticVocabulary create(int size, int maxMerges) {
        if (size < 256 + 3) {
            throw new IllegalArgumentException("a byte-level vocabulary needs >= 259 ids, got " + size);
        }
        List<String> tokens = new ArrayList<>();
        for (int b = 0; b < 256; b++) {
            tokens.add(String.valueOf(ByteLevel.charOf(b)));
        }
        List<String> merges = learnMerges(Math.min(maxMerges, size - 256 - 3));
        for (String m : merges) {
            tokens.add(m.replace(" ", ""));
        }
        int bpe = tokens.size();
        tokens.add(ENDOFTEXT);
        tokens.add(IM_START);
        tokens.add(IM_END);
        int[] types = new int[size];
        java.util.Arrays.fill(types, 0, bpe, TYPE_NORMAL);
        java.util.Arrays.fill(types, bpe, bpe + 3, TYPE_CONTROL);
        for (int id = tokens.size(); id < size; id++) {
            tokens.add("[PAD" + id + "]");
            types[id] = TYPE_UNUSED;
        }
        return new SyntheticVocabulary(List.copyOf(tokens), List.copyOf(merges), types, bpe);
    }

    /** Greedy BPE training on the sample: merge the most frequent adjacent pair, repeat. */
    private static List<String> learnMerges(int count) {
        // words = the sample split before each space, byte-level encoded (space -> 'Ġ')
        Map<List<String>, Integer> words = new LinkedHashMap<>();
        for (String w : SAMPLE.split("(?= )")) {
            List<String> symbols = new ArrayList<>();
            for (byte b : w.getBytes(java.nio.charset.StandardCharsets.UTF_8)) {
                symbols.add(String.valueOf(ByteLevel.charOf(b)));
            }
            words.merge(symbols, 1, Integer::sum);
        }
        List<String> merges = new ArrayList<>();
        while (merges.size() < count) {
            Map<String, Integer> pairs = new HashMap<>();
            String best = null;
            int bestCount = 0;
            for (Map.Entry<List<String>, Integer> e : words.entrySet()) {
                List<String> s = e.getKey();
                for (int i = 0; i + 1 < s.size(); i++) {
                    String pair = s.get(i) + " " + s.get(i + 1);
                    int c = pairs.merge(pair, e.getValue(), Integer::sum);
                    // most frequent first; ties to the smaller pair, so the result is deterministic
                    if (c > bestCount || (c == bestCount && pair.compareTo(best) < 0)) {
                        bestCount = c;
                        best = pair;
                    }
                }
            }
            if (best == null || merges.contains(best)) {
                break;
            }
            merges.add(best);
            String left = best.substring(0, best.indexOf(' '));
            String right = best.substring(best.indexOf(' ') + 1);
            Map<List<String>, Integer> next = new LinkedHashMap<>();
            for (Map.Entry<List<String>, Integer> e : words.entrySet()) {
                List<String> s = e.getKey();
                List<String> merged = new ArrayList<>(s.size());
                for (int i = 0; i < s.size(); i++) {
                    if (i + 1 < s.size() && s.get(i).equals(left) && s.get(i + 1).equals(right)) {
                        merged.add(left + right);
                        i++;
                    } else {
                        merged.add(s.get(i));
                    }
                }
                next.merge(merged, e.getValue(), Integer::sum);
            }
            words = next;
        }
        return merges;
    }

    /** Token strings by id (byte-level encoded), pads included: GGUF {@code tokenizer.ggml.tokens}. */
    public List<String> tokens() {
        return tokens;
    }

    /** Merges as {@code "left right"}, by rank. */
    public List<String> merges() {
        return merges;
    }

    /** GGUF token types by id. */
    public int[] tokenTypes() {
        return tokenTypes.clone();
    }

    public int size() {
        return tokens.size();
    }

    public int id(String token) {
        int i = tokens.indexOf(token);
        if (i < 0) {
            throw new IllegalArgumentException("no token " + token);
        }
        return i;
    }

    /**
     * A Hugging Face {@code tokenizer.json} for this vocabulary, in Qwen2's structure: the BPE
     * tokens in {@code model.vocab}, the special tokens and pads in {@code added_tokens}.
     */
    public Map<String, Object> tokenizerJson() {
        Map<String, Object> root = new LinkedHashMap<>();
        root.put("version", "1.0");
        root.put("truncation", null);
        root.put("padding", null);
        List<Object> added = new ArrayList<>();
        // the special tokens, then the pads as added tokens too, so that every embedding row has
        // a token in both formats (a random model does pick pad rows; decoding must not fail)
        for (int id = bpeTokens; id < tokens.size(); id++) {
            Map<String, Object> t = new LinkedHashMap<>();
            t.put("id", id);
            t.put("content", tokens.get(id));
            t.put("single_word", false);
            t.put("lstrip", false);
            t.put("rstrip", false);
            t.put("normalized", false);
            t.put("special", true);
            added.add(t);
        }
        root.put("added_tokens", added);
        root.put("normalizer", Map.of("type", "NFC"));
        Map<String, Object> split = new LinkedHashMap<>();
        split.put("type", "Split");
        split.put("pattern", Map.of("Regex", QWEN2_PRETOKENIZER_REGEX));
        split.put("behavior", "Isolated");
        split.put("invert", false);
        root.put(
                "pre_tokenizer",
                Map.of("type", "Sequence", "pretokenizers", List.of(split, byteLevel())));
        root.put("post_processor", byteLevel());
        root.put("decoder", byteLevel());
        Map<String, Object> model = new LinkedHashMap<>();
        model.put("type", "BPE");
        model.put("dropout", null);
        model.put("unk_token", null);
        model.put("continuing_subword_prefix", "");
        model.put("end_of_word_suffix", "");
        model.put("fuse_unk", false);
        model.put("byte_fallback", false);
        model.put("ignore_merges", false);
        Map<String, Integer> vocab = new LinkedHashMap<>();
        for (int id = 0; id < bpeTokens; id++) {
            vocab.put(tokens.get(id), id);
        }
        model.put("vocab", vocab);
        model.put("merges", merges);
        root.put("model", model);
        return root;
    }

    private static Map<String, Object> byteLevel() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("type", "ByteLevel");
        m.put("add_prefix_space", false);
        m.put("trim_offsets", false);
        m.put("use_regex", false);
        return m;
    }

    /** The pre-tokenizer split pattern of Qwen2's tokenizer.json. */
    public static final String QWEN2_PRETOKENIZER_REGEX =
            "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
}
