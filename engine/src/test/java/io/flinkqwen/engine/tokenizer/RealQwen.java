/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.tokenizer;

import io.flinkqwen.engine.oracle.OracleFiles;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * The real Qwen vocabulary, loaded once per test JVM: our tokenizer, and Hugging Face's own
 * ({@code tokenizers} 0.21 in Rust, through DJL's JNI binding) as the reference. Each getter
 * skips or fails the calling test as {@link OracleFiles} says when the file is absent.
 */
final class RealQwen {

    /** DJL options: never truncate or pad, whatever tokenizer_config.json next to the file says. */
    private static final Map<String, String> NO_TRUNCATION =
            Map.of("truncation", "false", "padding", "false");

    private static Qwen2Tokenizer ours;
    private static HuggingFaceTokenizer huggingFace;
    private static HuggingFaceTokenizer huggingFaceWithoutAddedTokens;
    private static long oursLoadNanos;

    private RealQwen() {}

    static synchronized Qwen2Tokenizer ours() {
        if (ours == null) {
            Path json = OracleFiles.qwenTokenizerJson();
            long t0 = System.nanoTime();
            ours = Qwen2Tokenizer.fromTokenizerJson(json);
            oursLoadNanos = System.nanoTime() - t0;
        }
        return ours;
    }

    /** How long {@link #ours} took to load, in nanoseconds (0 before it is loaded). */
    static synchronized long oursLoadNanos() {
        return oursLoadNanos;
    }

    /** Hugging Face's tokenizer on the same file: parses added tokens in text, as HF always does. */
    static synchronized HuggingFaceTokenizer huggingFace() {
        if (huggingFace == null) {
            huggingFace = load(OracleFiles.qwenTokenizerJson());
        }
        return huggingFace;
    }

    /**
     * Hugging Face's tokenizer on a copy of the file whose {@code added_tokens} list is empty:
     * the reference for {@link Qwen2Tokenizer#encode}, which treats all text as data.
     */
    static synchronized HuggingFaceTokenizer huggingFaceWithoutAddedTokens() {
        if (huggingFaceWithoutAddedTokens == null) {
            Path json = OracleFiles.qwenTokenizerJson();
            try {
                ObjectMapper mapper = new ObjectMapper();
                ObjectNode root = (ObjectNode) mapper.readTree(json.toFile());
                root.putArray("added_tokens");
                Path dir = Files.createTempDirectory("qwen-no-added-tokens");
                Path copy = dir.resolve("tokenizer.json");
                mapper.writeValue(copy.toFile(), root);
                huggingFaceWithoutAddedTokens = load(copy);
                Files.delete(copy);
                Files.delete(dir);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return huggingFaceWithoutAddedTokens;
    }

    private static HuggingFaceTokenizer load(Path json) {
        try {
            return HuggingFaceTokenizer.newInstance(json, NO_TRUNCATION);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Hugging Face's ids for {@code text}, no post-processing (BOS/EOS) added. */
    static int[] hfIds(HuggingFaceTokenizer tokenizer, String text) {
        long[] ids = tokenizer.encode(text, false, false).getIds();
        int[] out = new int[ids.length];
        for (int i = 0; i < ids.length; i++) {
            out[i] = Math.toIntExact(ids[i]);
        }
        return out;
    }

    static String hfDecode(int[] ids) {
        long[] longs = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
            longs[i] = ids[i];
        }
        return huggingFace().decode(longs, false);
    }
}
