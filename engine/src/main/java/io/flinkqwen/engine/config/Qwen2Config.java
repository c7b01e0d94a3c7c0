/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.config;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.flinkqwen.engine.weights.ModelFormatException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * The shape of a dense Qwen2 model ({@code Qwen2ForCausalLM}). Fields are Hugging Face's
 * {@code config.json} keys in camelCase; each Javadoc names the HF key and the GGUF key.
 *
 * @param vocabSize HF {@code vocab_size}; GGUF: rows of {@code token_embd.weight}. Embedding
 *     rows, which exceed the tokenizer's 151,646 tokens (151,936 for 0.5B/1.5B, 152,064 for
 *     7B/72B).
 * @param hiddenSize HF {@code hidden_size}; GGUF {@code qwen2.embedding_length}
 * @param intermediateSize HF {@code intermediate_size}; GGUF {@code qwen2.feed_forward_length}
 * @param numHiddenLayers HF {@code num_hidden_layers}; GGUF {@code qwen2.block_count}
 * @param numAttentionHeads HF {@code num_attention_heads}; GGUF {@code qwen2.attention.head_count}
 * @param numKeyValueHeads HF {@code num_key_value_heads}; GGUF {@code
 *     qwen2.attention.head_count_kv}
 * @param maxPositionEmbeddings positions the model serves: HF {@code max_position_embeddings};
 *     GGUF {@code qwen2.context_length}; with YaRN at least {@link
 *     RopeScaling#extendedPositions()} (the constructor raises it: Qwen's YaRN configs keep
 *     {@code max_position_embeddings} at the trained 32768 and name the 4x in {@code
 *     rope_scaling})
 * @param ropeTheta HF {@code rope_theta}; GGUF {@code qwen2.rope.freq_base}
 * @param rmsNormEps HF {@code rms_norm_eps}; GGUF {@code qwen2.attention.layer_norm_rms_epsilon}
 * @param tieWordEmbeddings HF {@code tie_word_embeddings}; GGUF: no {@code output.weight} tensor
 * @param bosTokenId HF {@code bos_token_id}; GGUF {@code tokenizer.ggml.bos_token_id}; -1 if none
 * @param eosTokenId HF {@code eos_token_id}; GGUF {@code tokenizer.ggml.eos_token_id}; -1 if none
 * @param ropeScaling HF {@code rope_scaling}; GGUF {@code qwen2.rope.scaling.*}; {@link
 *     RopeScaling#NONE} (or null, read as none) for plain RoPE
 */
public record Qwen2Config(
        int vocabSize,
        int hiddenSize,
        int intermediateSize,
        int numHiddenLayers,
        int numAttentionHeads,
        int numKeyValueHeads,
        int maxPositionEmbeddings,
        double ropeTheta,
        double rmsNormEps,
        boolean tieWordEmbeddings,
        int bosTokenId,
        int eosTokenId,
        RopeScaling ropeScaling) {

    /** The ids Qwen2 uses: {@code <|endoftext|>} and {@code <|im_end|>}. */
    public static final int QWEN_ENDOFTEXT = 151643;

    public static final int QWEN_IM_END = 151645;

    /** A config without rope scaling. */
    public Qwen2Config(
            int vocabSize,
            int hiddenSize,
            int intermediateSize,
            int numHiddenLayers,
            int numAttentionHeads,
            int numKeyValueHeads,
            int maxPositionEmbeddings,
            double ropeTheta,
            double rmsNormEps,
            boolean tieWordEmbeddings,
            int bosTokenId,
            int eosTokenId) {
        this(vocabSize, hiddenSize, intermediateSize, numHiddenLayers, numAttentionHeads, numKeyValueHeads,
                maxPositionEmbeddings, ropeTheta, rmsNormEps, tieWordEmbeddings, bosTokenId, eosTokenId,
                RopeScaling.NONE);
    }

    public Qwen2Config {
        if (ropeScaling == null) {
            ropeScaling = RopeScaling.NONE;
        }
        // YaRN extends the context: the RoPE tables and KV caches are sized by this field
        maxPositionEmbeddings = Math.max(maxPositionEmbeddings, ropeScaling.extendedPositions());
        positive("vocab_size", vocabSize);
        positive("hidden_size", hiddenSize);
        positive("intermediate_size", intermediateSize);
        positive("num_hidden_layers", numHiddenLayers);
        positive("num_attention_heads", numAttentionHeads);
        positive("num_key_value_heads", numKeyValueHeads);
        positive("max_position_embeddings", maxPositionEmbeddings);
        if (hiddenSize % numAttentionHeads != 0) {
            throw new IllegalArgumentException(
                    String.format(
                            "hidden_size %d is not divisible by num_attention_heads %d",
                            hiddenSize, numAttentionHeads));
        }
        if (numAttentionHeads % numKeyValueHeads != 0) {
            throw new IllegalArgumentException(
                    String.format(
                            "num_attention_heads %d is not a multiple of num_key_value_heads %d"
                                    + " (grouped-query attention shares each KV head by a whole"
                                    + " number of query heads)",
                            numAttentionHeads, numKeyValueHeads));
        }
        if ((hiddenSize / numAttentionHeads) % 2 != 0) {
            throw new IllegalArgumentException(
                    "head dimension " + hiddenSize / numAttentionHeads + " must be even for RoPE");
        }
        if (!(ropeTheta > 0)) {
            throw new IllegalArgumentException("rope_theta must be > 0, got " + ropeTheta);
        }
        if (!(rmsNormEps > 0 && rmsNormEps < 1)) {
            throw new IllegalArgumentException("rms_norm_eps must be in (0, 1), got " + rmsNormEps);
        }
        if (bosTokenId >= vocabSize || eosTokenId >= vocabSize) {
            throw new IllegalArgumentException(
                    String.format(
                            "bos_token_id %d / eos_token_id %d outside vocab_size %d",
                            bosTokenId, eosTokenId, vocabSize));
        }
    }

    private static void positive(String key, int value) {
        if (value <= 0) {
            throw new IllegalArgumentException(key + " must be > 0, got " + value);
        }
    }

    // ---- derived values -------------------------------------------------------------------

    /** Dimension of one attention head. */
    public int headDim() {
        return hiddenSize / numAttentionHeads;
    }

    /** Width of the K (and V) projection: {@code numKeyValueHeads * headDim}. */
    public int kvDim() {
        return numKeyValueHeads * headDim();
    }

    /** Query heads per KV head. */
    public int kvGroups() {
        return numAttentionHeads / numKeyValueHeads;
    }

    /** KV-cache floats per token over all layers (K and V). */
    public long kvFloatsPerToken() {
        return 2L * numHiddenLayers * kvDim();
    }

    /** Parameters of one decoder layer: q/k/v (with biases), o, SwiGLU FFN, two RMSNorms. */
    public long parametersPerLayer() {
        long h = hiddenSize;
        long attention = h * h + h + 2 * (h * kvDim() + kvDim()) + h * h;
        long ffn = 3 * h * intermediateSize;
        long norms = 2 * h;
        return attention + ffn + norms;
    }

    /** All parameters, the untied output head counted once if present. */
    public long parameterCount() {
        long embedding = (long) vocabSize * hiddenSize;
        long head = tieWordEmbeddings ? 0 : embedding;
        return embedding + numHiddenLayers * parametersPerLayer() + hiddenSize + head;
    }

    /** This config with other bos/eos ids (-1: none). */
    public Qwen2Config withSpecialTokens(int bos, int eos) {
        return new Qwen2Config(
                vocabSize, hiddenSize, intermediateSize, numHiddenLayers, numAttentionHeads, numKeyValueHeads,
                maxPositionEmbeddings, ropeTheta, rmsNormEps, tieWordEmbeddings, bos, eos, ropeScaling);
    }

    /**
     * This config with another rope scaling and {@code maxPositionEmbeddings} positions (raised to
     * the scaling's extended context, as the constructor does).
     */
    public Qwen2Config withRopeScaling(RopeScaling scaling, int maxPositionEmbeddings) {
        return new Qwen2Config(
                vocabSize, hiddenSize, intermediateSize, numHiddenLayers, numAttentionHeads, numKeyValueHeads,
                maxPositionEmbeddings, ropeTheta, rmsNormEps, tieWordEmbeddings, bosTokenId, eosTokenId, scaling);
    }

    // ---- presets (Qwen2 technical report, table 1, and the released config.json files) ----

    public static Qwen2Config qwen2_0_5b() {
        return new Qwen2Config(
                151936, 896, 4864, 24, 14, 2, 32768, 1_000_000.0, 1e-6, true, QWEN_ENDOFTEXT,
                QWEN_IM_END);
    }

    public static Qwen2Config qwen2_1_5b() {
        return new Qwen2Config(
                151936, 1536, 8960, 28, 12, 2, 32768, 1_000_000.0, 1e-6, true, QWEN_ENDOFTEXT,
                QWEN_IM_END);
    }

    /**
     * Qwen2-7B with the release's long-context setting: trained on 32,768 positions, extended 4x
     * to 131,072 by YaRN ({@code "rope_scaling": {"type": "yarn", "factor": 4.0,
     * "original_max_position_embeddings": 32768}}, as Qwen's model card for 7B/72B-Instruct has
     * users add to {@code config.json}).
     */
    public static Qwen2Config qwen2_7b() {
        return new Qwen2Config(
                152064, 3584, 18944, 28, 28, 4, 32768, 1_000_000.0, 1e-6, false, QWEN_ENDOFTEXT,
                QWEN_IM_END, RopeScaling.yarn(4, 32768));
    }

    /** Qwen2-72B, with the same YaRN 4x extension (32,768 -> 131,072 positions) as {@link #qwen2_7b()}. */
    public static Qwen2Config qwen2_72b() {
        return new Qwen2Config(
                152064, 8192, 29568, 80, 64, 8, 32768, 1_000_000.0, 1e-6, false, QWEN_ENDOFTEXT,
                QWEN_IM_END, RopeScaling.yarn(4, 32768));
    }

    /** A preset by name: {@code 0.5b}, {@code 1.5b}, {@code 7b}, {@code 72b}. */
    public static Qwen2Config preset(String name) {
        switch (name.toLowerCase(Locale.ROOT)) {
            case "0.5b":
                return qwen2_0_5b();
            case "1.5b":
                return qwen2_1_5b();
            case "7b":
                return qwen2_7b();
            case "72b":
                return qwen2_72b();
            default:
                throw new IllegalArgumentException(
                        "unknown Qwen2 preset '" + name + "' (known: 0.5b, 1.5b, 7b, 72b)");
        }
    }

    // ---- config.json ----------------------------------------------------------------------

    private static final ObjectMapper JSON = new ObjectMapper();

    /** Reads a Hugging Face {@code config.json}; errors name the file and the key. */
    public static Qwen2Config fromConfigJson(Path file) {
        JsonNode root;
        try {
            root = JSON.readTree(Files.readAllBytes(file));
        } catch (IOException e) {
            throw new ModelFormatException("cannot read " + file + ": " + e.getMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new ModelFormatException(file + " is not a JSON object");
        }
        String modelType = root.path("model_type").asText("");
        if (!modelType.isEmpty() && !modelType.equals("qwen2")) {
            throw new ModelFormatException(
                    file + ": model_type is '" + modelType + "', this reader takes 'qwen2'");
        }
        return fromJsonNode(root, file);
    }

    /** The dense keys of a {@code config.json} object (shared with {@link Qwen2MoeConfig}). */
    static Qwen2Config fromJsonNode(JsonNode root, Path file) {
        try {
            int maxPositions = root.path("max_position_embeddings").asInt(32768);
            return new Qwen2Config(
                    requiredInt(root, "vocab_size", file),
                    requiredInt(root, "hidden_size", file),
                    requiredInt(root, "intermediate_size", file),
                    requiredInt(root, "num_hidden_layers", file),
                    requiredInt(root, "num_attention_heads", file),
                    root.has("num_key_value_heads")
                            ? requiredInt(root, "num_key_value_heads", file)
                            : requiredInt(root, "num_attention_heads", file),
                    maxPositions,
                    root.path("rope_theta").asDouble(10000.0),
                    root.path("rms_norm_eps").asDouble(1e-6),
                    root.path("tie_word_embeddings").asBoolean(false),
                    firstId(root.get("bos_token_id")),
                    firstId(root.get("eos_token_id")),
                    RopeScaling.fromJson(root.get("rope_scaling"), maxPositions));
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(file + ": " + e.getMessage(), e);
        }
    }

    static int requiredInt(JsonNode root, String key, Path file) {
        JsonNode n = root.get(key);
        if (n == null || !n.canConvertToInt()) {
            throw new ModelFormatException(
                    file + ": key '" + key + "' is " + (n == null ? "missing" : "not an integer: " + n));
        }
        return n.asInt();
    }

    /** {@code eos_token_id} may be a number or a list (generation configs); take the first. */
    private static int firstId(JsonNode n) {
        if (n == null || n.isNull()) {
            return -1;
        }
        if (n.isArray()) {
            return n.size() == 0 ? -1 : n.get(0).asInt(-1);
        }
        return n.asInt(-1);
    }

    /** This config as a Hugging Face {@code config.json} document. */
    public String toConfigJson() {
        try {
            return JSON.writerWithDefaultPrettyPrinter().writeValueAsString(toConfigNode());
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    ObjectNode toConfigNode() {
        ObjectNode o = JSON.createObjectNode();
        o.putArray("architectures").add("Qwen2ForCausalLM");
        o.put("model_type", "qwen2");
        o.put("vocab_size", vocabSize);
        o.put("hidden_size", hiddenSize);
        o.put("intermediate_size", intermediateSize);
        o.put("num_hidden_layers", numHiddenLayers);
        o.put("num_attention_heads", numAttentionHeads);
        o.put("num_key_value_heads", numKeyValueHeads);
        o.put("max_position_embeddings", maxPositionEmbeddings);
        o.put("rope_theta", ropeTheta);
        ropeScaling.putJson(o);
        o.put("rms_norm_eps", rmsNormEps);
        o.put("tie_word_embeddings", tieWordEmbeddings);
        o.put("hidden_act", "silu");
        o.put("use_sliding_window", false);
        if (bosTokenId >= 0) {
            o.put("bos_token_id", bosTokenId);
        }
        if (eosTokenId >= 0) {
            o.put("eos_token_id", eosTokenId);
        }
        o.put("torch_dtype", "float32");
        return o;
    }
}
