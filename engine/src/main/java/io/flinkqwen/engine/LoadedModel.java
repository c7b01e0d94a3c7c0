/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine;

import io.flinkqwen.engine.config.Qwen2Config;
import io.flinkqwen.engine.gguf.GgufFile;
import io.flinkqwen.engine.model.Qwen2Model;
import io.flinkqwen.engine.model.Qwen2Weights;
import io.flinkqwen.engine.model.TensorNaming;
import io.flinkqwen.engine.safetensors.SafetensorsStore;
import io.flinkqwen.engine.tokenizer.Qwen2Tokenizer;
import io.flinkqwen.engine.weights.ModelFormatException;
import io.flinkqwen.engine.weights.TensorStore;
import io.flinkqwen.kernels.KernelPool;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * A model opened from disk: its config, mapped weights and tokenizer, from a GGUF file or a
 * Hugging Face folder ({@code config.json}, {@code tokenizer.json}, safetensors single or
 * sharded). Everything is validated here, at load; the mapped file stays open until {@link
 * #close()}.
 */
public final class LoadedModel implements AutoCloseable {

    private final Path source;
    private final String format;
    private final Qwen2Config config;
    private final TensorStore store;
    private final Qwen2Weights weights;
    private final Qwen2Tokenizer tokenizer;

    private LoadedModel(
            Path source, String format, Qwen2Config config, TensorStore store, Qwen2Weights weights, Qwen2Tokenizer tokenizer) {
        this.source = source;
        this.format = format;
        this.config = config;
        this.store = store;
        this.weights = weights;
        this.tokenizer = tokenizer;
    }

    /**
     * Opens a {@code .gguf} file or a Hugging Face model folder.
     *
     * @throws ModelFormatException naming the file and what is wrong with it
     */
    public static LoadedModel open(Path path) {
        if (Files.isDirectory(path)) {
            return openHf(path);
        }
        if (!Files.isRegularFile(path)) {
            throw new ModelFormatException("model " + path + " does not exist");
        }
        String name = path.getFileName().toString().toLowerCase(Locale.ROOT);
        if (name.endsWith(".gguf")) {
            return openGguf(path);
        }
        if (name.endsWith(".safetensors") || name.equals("config.json")) {
            return openHf(path.toAbsolutePath().getParent());
        }
        throw new ModelFormatException(
                "model " + path + " is neither a .gguf file nor a Hugging Face folder (config.json + *.safetensors)");
    }

    private static LoadedModel openGguf(Path file) {
        GgufFile gguf = GgufFile.open(file);
        try {
            String arch = gguf.getString("general.architecture");
            if (!arch.equals("qwen2")) {
                throw new ModelFormatException(
                        file + ": general.architecture is '" + arch + "'; supported: qwen2");
            }
            Qwen2Config config = ggufConfig(gguf);
            Qwen2Weights weights = Qwen2Weights.load(config, gguf, TensorNaming.GGUF);
            Qwen2Tokenizer tokenizer =
                    Qwen2Tokenizer.fromVocabulary(
                            gguf.getStringArray("tokenizer.ggml.tokens"),
                            gguf.getStringArray("tokenizer.ggml.merges"),
                            gguf.getIntArray("tokenizer.ggml.token_type"));
            return new LoadedModel(file, "gguf", config, gguf, weights, tokenizer);
        } catch (RuntimeException e) {
            gguf.close();
            throw e;
        }
    }

    /** The Qwen2 config from llama.cpp's {@code qwen2.*} metadata and the tensors' shapes. */
    static Qwen2Config ggufConfig(GgufFile g) {
        int vocab = (int) g.shape("token_embd.weight")[0];
        int hidden = (int) g.getLong("qwen2.embedding_length");
        int heads = (int) g.getLong("qwen2.attention.head_count");
        try {
            return new Qwen2Config(
                    vocab,
                    hidden,
                    (int) g.getLong("qwen2.feed_forward_length"),
                    (int) g.getLong("qwen2.block_count"),
                    heads,
                    g.has("qwen2.attention.head_count_kv") ? (int) g.getLong("qwen2.attention.head_count_kv") : heads,
                    (int) g.getLong("qwen2.context_length"),
                    g.has("qwen2.rope.freq_base") ? g.getDouble("qwen2.rope.freq_base") : 10000.0,
                    g.getDouble("qwen2.attention.layer_norm_rms_epsilon"),
                    !g.contains("output.weight"),
                    g.has("tokenizer.ggml.bos_token_id") ? (int) g.getLong("tokenizer.ggml.bos_token_id") : -1,
                    g.has("tokenizer.ggml.eos_token_id") ? (int) g.getLong("tokenizer.ggml.eos_token_id") : -1);
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(g.source() + ": " + e.getMessage(), e);
        }
    }

    private static LoadedModel openHf(Path dir) {
        Path configJson = dir.resolve("config.json");
        if (!Files.isRegularFile(configJson)) {
            throw new ModelFormatException("model folder " + dir + " has no config.json");
        }
        Qwen2Config config = Qwen2Config.fromConfigJson(configJson);
        Path tokenizerJson = dir.resolve("tokenizer.json");
        if (!Files.isRegularFile(tokenizerJson)) {
            throw new ModelFormatException("model folder " + dir + " has no tokenizer.json");
        }
        Qwen2Tokenizer tokenizer = Qwen2Tokenizer.fromTokenizerJson(tokenizerJson);
        SafetensorsStore store = SafetensorsStore.open(dir);
        try {
            Qwen2Weights weights = Qwen2Weights.load(config, store, TensorNaming.HF);
            return new LoadedModel(dir, "safetensors", config, store, weights, tokenizer);
        } catch (RuntimeException e) {
            store.close();
            throw e;
        }
    }

    /** A forward pass over these weights on {@code pool}. */
    public Qwen2Model newForward(KernelPool pool, int maxChunkTokens) {
        return new Qwen2Model(config, weights, pool, maxChunkTokens);
    }

    public Path source() {
        return source;
    }

    /** {@code gguf} or {@code safetensors}. */
    public String format() {
        return format;
    }

    public Qwen2Config config() {
        return config;
    }

    public Qwen2Weights weights() {
        return weights;
    }

    public Qwen2Tokenizer tokenizer() {
        return tokenizer;
    }

    /** Ids that end a generation: the config's eos, {@code <|im_end|>} and {@code <|endoftext|>}. */
    public int[] stopTokens() {
        java.util.LinkedHashSet<Integer> ids = new java.util.LinkedHashSet<>();
        if (config.eosTokenId() >= 0) {
            ids.add(config.eosTokenId());
        }
        tokenizer.id("<|im_end|>").ifPresent(ids::add);
        tokenizer.id("<|endoftext|>").ifPresent(ids::add);
        return ids.stream().mapToInt(Integer::intValue).toArray();
    }

    @Override
    public void close() {
        store.close();
    }
}
