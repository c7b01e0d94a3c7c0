/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine;

import io.flinkqwen.engine.config.Qwen2Config;
import io.flinkqwen.engine.config.Qwen2MoeConfig;
import io.flinkqwen.engine.config.RopeScaling;
import io.flinkqwen.engine.gguf.GgufFile;
import io.flinkqwen.engine.model.KvFormat;
import io.flinkqwen.engine.model.Qwen2Model;
import io.flinkqwen.engine.model.Qwen2Weights;
import io.flinkqwen.engine.model.TensorNaming;
import io.flinkqwen.engine.safetensors.SafetensorsStore;
import io.flinkqwen.engine.tokenizer.Qwen2Tokenizer;
import io.flinkqwen.engine.weights.HeapPackedTensorStore;
import io.flinkqwen.engine.weights.ModelFormatException;
import io.flinkqwen.engine.weights.TensorStore;
import io.flinkqwen.engine.weights.WeightPlacement;
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
    private final Qwen2MoeConfig moeConfig; // null for a dense model
    private final TensorStore store;
    private final Qwen2Weights weights;
    private final Qwen2Tokenizer tokenizer;

    private LoadedModel(
            Path source,
            String format,
            Qwen2Config config,
            Qwen2MoeConfig moeConfig,
            TensorStore store,
            Qwen2Weights weights,
            Qwen2Tokenizer tokenizer) {
        this.source = source;
        this.format = format;
        this.config = config;
        this.moeConfig = moeConfig;
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
        return open(path, WeightPlacement.fromSystemProperty());
    }

    /**
     * Opens a {@code .gguf} file or a Hugging Face model folder, with its matrices where {@code
     * placement} says ({@link WeightPlacement}).
     *
     * @throws ModelFormatException naming the file and what is wrong with it
     * @throws IllegalStateException for {@link WeightPlacement#HEAP} when the heap is too small
     */
    public static LoadedModel open(Path path, WeightPlacement placement) {
        LoadedModel mapped = openMapped(path);
        long packed = mapped.weights.packedBytes();
        boolean pack;
        try {
            pack = placement.packs(packed, WeightPlacement.freeHeapBytes(), Runtime.getRuntime().maxMemory());
        } catch (RuntimeException e) {
            mapped.close();
            throw e;
        }
        if (!pack) {
            return mapped;
        }
        TensorStore heap = new HeapPackedTensorStore(mapped.store);
        try {
            Qwen2Weights weights =
                    mapped.moeConfig != null
                            ? Qwen2Weights.load(mapped.moeConfig, heap, mapped.naming())
                            : Qwen2Weights.load(mapped.config, heap, mapped.naming());
            return new LoadedModel(
                    mapped.source, mapped.format, mapped.config, mapped.moeConfig, heap, weights, mapped.tokenizer);
        } catch (RuntimeException | OutOfMemoryError e) {
            mapped.close();
            throw e;
        }
    }

    private TensorNaming naming() {
        return format.equals("gguf") ? TensorNaming.GGUF : TensorNaming.HF;
    }

    private static LoadedModel openMapped(Path path) {
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
            if (!arch.equals("qwen2") && !arch.equals("qwen2moe")) {
                throw new ModelFormatException(
                        file + ": general.architecture is '" + arch + "'; supported: qwen2, qwen2moe");
            }
            Qwen2MoeConfig moe = arch.equals("qwen2moe") ? ggufMoeConfig(gguf) : null;
            Qwen2Config config = moe != null ? moe.dense() : ggufConfig(gguf);
            Qwen2Weights weights =
                    moe != null
                            ? Qwen2Weights.load(moe, gguf, TensorNaming.GGUF)
                            : Qwen2Weights.load(config, gguf, TensorNaming.GGUF);
            Qwen2Tokenizer tokenizer =
                    Qwen2Tokenizer.fromVocabulary(
                            gguf.getStringArray("tokenizer.ggml.tokens"),
                            gguf.getStringArray("tokenizer.ggml.merges"),
                            gguf.getIntArray("tokenizer.ggml.token_type"));
            return new LoadedModel(file, "gguf", config, moe, gguf, weights, tokenizer);
        } catch (RuntimeException e) {
            gguf.close();
            throw e;
        }
    }

    /** The Qwen2 config from llama.cpp's {@code qwen2.*} metadata and the tensors' shapes. */
    static Qwen2Config ggufConfig(GgufFile g) {
        return ggufConfig(g, "qwen2", (int) g.getLong("qwen2.feed_forward_length"));
    }

    /**
     * The Qwen2-MoE config from llama.cpp's {@code qwen2moe.*} metadata. GGUF has no {@code
     * decoder_sparse_step} / {@code mlp_only_layers}: a layer is sparse iff it has {@code
     * blk.N.ffn_gate_inp} (llama.cpp's own qwen2moe files have it on every layer).
     */
    static Qwen2MoeConfig ggufMoeConfig(GgufFile g) {
        int experts = (int) g.getLong("qwen2moe.expert_count");
        // llama.cpp treats the FFN sizes as optional; without them, read them off the tensors
        int expertFfn =
                g.has("qwen2moe.expert_feed_forward_length")
                        ? (int) g.getLong("qwen2moe.expert_feed_forward_length")
                        : (int) g.shape(firstLayerTensor(g, "ffn_gate_exps"))[1];
        int sharedFfn =
                g.has("qwen2moe.expert_shared_feed_forward_length")
                        ? (int) g.getLong("qwen2moe.expert_shared_feed_forward_length")
                        : (int) g.shape(firstLayerTensor(g, "ffn_gate_shexp"))[0];
        int ffn = g.has("qwen2moe.feed_forward_length") ? (int) g.getLong("qwen2moe.feed_forward_length") : expertFfn;
        Qwen2Config d = ggufConfig(g, "qwen2moe", ffn);
        java.util.List<Integer> mlpOnly = new java.util.ArrayList<>();
        for (int l = 0; l < d.numHiddenLayers(); l++) {
            if (!g.contains("blk." + l + ".ffn_gate_inp.weight")) {
                mlpOnly.add(l);
            }
        }
        try {
            return new Qwen2MoeConfig(
                    d.vocabSize(), d.hiddenSize(), d.intermediateSize(), d.numHiddenLayers(), d.numAttentionHeads(),
                    d.numKeyValueHeads(), d.maxPositionEmbeddings(), d.ropeTheta(), d.rmsNormEps(),
                    d.tieWordEmbeddings(), d.bosTokenId(), d.eosTokenId(),
                    experts,
                    (int) g.getLong("qwen2moe.expert_used_count"),
                    expertFfn,
                    sharedFfn,
                    g.has("qwen2moe.expert_weights_norm") && g.getBool("qwen2moe.expert_weights_norm"),
                    1,
                    mlpOnly,
                    d.ropeScaling());
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(g.source() + ": " + e.getMessage(), e);
        }
    }

    /** {@code blk.N.<suffix>.weight} of the first layer that has it (the first sparse layer). */
    private static String firstLayerTensor(GgufFile g, String suffix) {
        for (int l = 0; ; l++) {
            String name = "blk." + l + "." + suffix + ".weight";
            if (g.contains(name) || !g.contains("blk." + l + ".attn_norm.weight")) {
                return name; // absent everywhere: shape() names it
            }
        }
    }

    private static Qwen2Config ggufConfig(GgufFile g, String arch, int ffn) {
        int vocab = (int) g.shape("token_embd.weight")[0];
        int hidden = (int) g.getLong(arch + ".embedding_length");
        int heads = (int) g.getLong(arch + ".attention.head_count");
        try {
            int contextLength = (int) g.getLong(arch + ".context_length");
            return new Qwen2Config(
                    vocab,
                    hidden,
                    ffn,
                    (int) g.getLong(arch + ".block_count"),
                    heads,
                    g.has(arch + ".attention.head_count_kv") ? (int) g.getLong(arch + ".attention.head_count_kv") : heads,
                    contextLength,
                    g.has(arch + ".rope.freq_base") ? g.getDouble(arch + ".rope.freq_base") : 10000.0,
                    g.getDouble(arch + ".attention.layer_norm_rms_epsilon"),
                    !g.contains("output.weight"),
                    g.has("tokenizer.ggml.bos_token_id") ? (int) g.getLong("tokenizer.ggml.bos_token_id") : -1,
                    g.has("tokenizer.ggml.eos_token_id") ? (int) g.getLong("tokenizer.ggml.eos_token_id") : -1,
                    RopeScaling.fromGguf(g, arch, contextLength));
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(g.source() + ": " + e.getMessage(), e);
        }
    }

    private static LoadedModel openHf(Path dir) {
        Path configJson = dir.resolve("config.json");
        if (!Files.isRegularFile(configJson)) {
            throw new ModelFormatException("model folder " + dir + " has no config.json");
        }
        boolean isMoe = Qwen2MoeConfig.modelType(configJson).equals("qwen2_moe");
        Qwen2MoeConfig moe = isMoe ? Qwen2MoeConfig.fromConfigJson(configJson) : null;
        Qwen2Config config = isMoe ? moe.dense() : Qwen2Config.fromConfigJson(configJson);
        Path tokenizerJson = dir.resolve("tokenizer.json");
        if (!Files.isRegularFile(tokenizerJson)) {
            throw new ModelFormatException("model folder " + dir + " has no tokenizer.json");
        }
        Qwen2Tokenizer tokenizer = Qwen2Tokenizer.fromTokenizerJson(tokenizerJson);
        SafetensorsStore store = SafetensorsStore.open(dir);
        try {
            Qwen2Weights weights =
                    isMoe ? Qwen2Weights.load(moe, store, TensorNaming.HF) : Qwen2Weights.load(config, store, TensorNaming.HF);
            return new LoadedModel(dir, "safetensors", config, moe, store, weights, tokenizer);
        } catch (RuntimeException e) {
            store.close();
            throw e;
        }
    }

    /** Prompt tokens per forward pass for a dense model ({@link #defaultChunkTokens()}). */
    public static final int DENSE_CHUNK_TOKENS = 64;

    /** Tokens a routed expert gets per chunk on average, at the MoE chunk {@link #defaultChunkTokens()} picks. */
    public static final int MOE_TOKENS_PER_EXPERT = 8;

    /** The largest chunk {@link #defaultChunkTokens()} picks for a MoE model. */
    public static final int MAX_MOE_CHUNK_TOKENS = 256;

    /**
     * The {@code maxChunkTokens} to give {@link #newForward}: prompt tokens per forward pass
     * (prefill runs a prompt chunk after chunk, all in the same engine step) and the most
     * sequences one decode pass holds. It bounds the activation scratch the forward pass keeps
     * (about 100 KiB per token for a 2048-wide MoE), not the latency of other sequences.
     *
     * <p>A dense model: {@value #DENSE_CHUNK_TOKENS}; its GEMMs already read each weight once per
     * 64 tokens. A MoE model: the smallest multiple of 64 that sends each routed expert {@value
     * #MOE_TOKENS_PER_EXPERT} tokens on average ({@code chunk * top-k / experts}), at most
     * {@value #MAX_MOE_CHUNK_TOKENS}: an expert's weights are read once per chunk for the
     * tokens routed to it, and with evenly spread routing a 64-token chunk gives a Qwen1.5-MoE
     * A2.7B expert about 4 tokens, too few to amortize reading and decoding its rows. For A2.7B
     * (60 experts, top-4) this is 128, for 57B-A14B (64 experts, top-8) 64. llama.cpp prefills
     * up to 512 tokens in one batch by default.
     */
    public int defaultChunkTokens() {
        return defaultChunkTokens(moeConfig);
    }

    /** {@link #defaultChunkTokens()} for a model with this MoE config (null: dense). */
    public static int defaultChunkTokens(Qwen2MoeConfig moe) {
        if (moe == null) {
            return DENSE_CHUNK_TOKENS;
        }
        long wanted = (long) MOE_TOKENS_PER_EXPERT * moe.numExperts();
        long perChunk = (wanted + moe.numExpertsPerTok() - 1) / moe.numExpertsPerTok();
        long chunk = (perChunk + DENSE_CHUNK_TOKENS - 1) / DENSE_CHUNK_TOKENS * DENSE_CHUNK_TOKENS;
        return (int) Math.max(DENSE_CHUNK_TOKENS, Math.min(MAX_MOE_CHUNK_TOKENS, chunk));
    }

    /**
     * A forward pass over these weights on {@code pool}, on the kernel backend the {@code
     * flinkqwen.device} system property names (default {@code auto}: TornadoVM if its backend is
     * on the class path and finds a device, else the CPU), its KV caches in the format the system
     * property {@value KvFormat#PROPERTY} names (F32 if unset).
     */
    public Qwen2Model newForward(KernelPool pool, int maxChunkTokens) {
        return newForward(pool, maxChunkTokens, KvFormat.fromSystemProperty());
    }

    /** {@link #newForward(KernelPool, int)} with its KV caches stored as {@code kvFormat}. */
    public Qwen2Model newForward(KernelPool pool, int maxChunkTokens, KvFormat kvFormat) {
        return newForward(pool, maxChunkTokens, io.flinkqwen.kernels.backend.KernelBackends.fromSystemProperty(), kvFormat);
    }

    /** A forward pass over these weights on {@code backend} (ops it lacks run on the CPU, on {@code pool}). */
    public Qwen2Model newForward(KernelPool pool, int maxChunkTokens, io.flinkqwen.kernels.backend.KernelBackend backend) {
        return newForward(pool, maxChunkTokens, backend, KvFormat.fromSystemProperty());
    }

    /** A forward pass on {@code backend}, its KV caches stored as {@code kvFormat}. */
    public Qwen2Model newForward(
            KernelPool pool, int maxChunkTokens, io.flinkqwen.kernels.backend.KernelBackend backend, KvFormat kvFormat) {
        return new Qwen2Model(config, weights, pool, maxChunkTokens, moeConfig, backend, kvFormat);
    }

    public Path source() {
        return source;
    }

    /** {@code gguf} or {@code safetensors}. */
    public String format() {
        return format;
    }

    /** The dense shape, or for a Qwen2-MoE model its dense part (attention, embeddings, ...). */
    public Qwen2Config config() {
        return config;
    }

    /** All parameters (for MoE: every expert). */
    public long parameterCount() {
        return moeConfig != null ? moeConfig.parameterCount() : config.parameterCount();
    }

    /** Parameters one token goes through (for MoE: top-k experts; dense: all). */
    public long activeParameterCount() {
        return moeConfig != null ? moeConfig.activeParameterCount() : config.parameterCount();
    }

    /** The Qwen2-MoE shape, or empty for a dense Qwen2 model. */
    public java.util.Optional<Qwen2MoeConfig> moeConfig() {
        return java.util.Optional.ofNullable(moeConfig);
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
