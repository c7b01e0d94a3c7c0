/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.config;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.flinkqwen.engine.weights.ModelFormatException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The shape of a Qwen2 Mixture-of-Experts model ({@code Qwen2MoeForCausalLM}): the dense fields
 * of {@link Qwen2Config} plus the routing fields. Each Javadoc names the HF key and the GGUF key
 * (llama.cpp's {@code qwen2moe.*}).
 *
 * @param vocabSize HF {@code vocab_size}; GGUF: rows of {@code token_embd.weight}
 * @param hiddenSize HF {@code hidden_size}; GGUF {@code qwen2moe.embedding_length}
 * @param intermediateSize HF {@code intermediate_size}: the FFN of dense layers; GGUF {@code
 *     qwen2moe.feed_forward_length}
 * @param numHiddenLayers HF {@code num_hidden_layers}; GGUF {@code qwen2moe.block_count}
 * @param numAttentionHeads HF {@code num_attention_heads}; GGUF {@code
 *     qwen2moe.attention.head_count}
 * @param numKeyValueHeads HF {@code num_key_value_heads}; GGUF {@code
 *     qwen2moe.attention.head_count_kv}
 * @param maxPositionEmbeddings HF {@code max_position_embeddings}; GGUF {@code
 *     qwen2moe.context_length}
 * @param ropeTheta HF {@code rope_theta}; GGUF {@code qwen2moe.rope.freq_base}
 * @param rmsNormEps HF {@code rms_norm_eps}; GGUF {@code qwen2moe.attention.layer_norm_rms_epsilon}
 * @param tieWordEmbeddings HF {@code tie_word_embeddings}; GGUF: no {@code output.weight} tensor
 * @param bosTokenId HF {@code bos_token_id}; GGUF {@code tokenizer.ggml.bos_token_id}; -1 if none
 * @param eosTokenId HF {@code eos_token_id}; GGUF {@code tokenizer.ggml.eos_token_id}; -1 if none
 * @param numExperts HF {@code num_experts}; GGUF {@code qwen2moe.expert_count}
 * @param numExpertsPerTok HF {@code num_experts_per_tok} (top-k); GGUF {@code
 *     qwen2moe.expert_used_count}
 * @param moeIntermediateSize HF {@code moe_intermediate_size}: each routed expert's FFN; GGUF
 *     {@code qwen2moe.expert_feed_forward_length}
 * @param sharedExpertIntermediateSize HF {@code shared_expert_intermediate_size}; GGUF {@code
 *     qwen2moe.expert_shared_feed_forward_length}
 * @param normTopkProb HF {@code norm_topk_prob}: renormalise the k routing weights to sum 1;
 *     GGUF {@code qwen2moe.expert_weights_norm} (absent: false, which is what llama.cpp's
 *     qwen2moe graph does and what Qwen's released MoE configs say)
 * @param decoderSparseStep HF {@code decoder_sparse_step}; GGUF: none (every layer that has
 *     {@code blk.N.ffn_gate_inp} is sparse, the reader derives 1 plus {@code mlpOnlyLayers})
 * @param mlpOnlyLayers HF {@code mlp_only_layers}: layers forced dense; GGUF: the layers
 *     without {@code blk.N.ffn_gate_inp}
 * @param ropeScaling HF {@code rope_scaling}; GGUF {@code qwen2moe.rope.scaling.*}; as in {@link
 *     Qwen2Config} (null: none; YaRN raises {@code maxPositionEmbeddings} to its extended context)
 */
public record Qwen2MoeConfig(
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
        int numExperts,
        int numExpertsPerTok,
        int moeIntermediateSize,
        int sharedExpertIntermediateSize,
        boolean normTopkProb,
        int decoderSparseStep,
        List<Integer> mlpOnlyLayers,
        RopeScaling ropeScaling) {

    /** A config without rope scaling. */
    public Qwen2MoeConfig(
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
            int numExperts,
            int numExpertsPerTok,
            int moeIntermediateSize,
            int sharedExpertIntermediateSize,
            boolean normTopkProb,
            int decoderSparseStep,
            List<Integer> mlpOnlyLayers) {
        this(vocabSize, hiddenSize, intermediateSize, numHiddenLayers, numAttentionHeads, numKeyValueHeads,
                maxPositionEmbeddings, ropeTheta, rmsNormEps, tieWordEmbeddings, bosTokenId, eosTokenId, numExperts,
                numExpertsPerTok, moeIntermediateSize, sharedExpertIntermediateSize, normTopkProb, decoderSparseStep,
                mlpOnlyLayers, RopeScaling.NONE);
    }

    public Qwen2MoeConfig {
        mlpOnlyLayers = List.copyOf(mlpOnlyLayers);
        if (ropeScaling == null) {
            ropeScaling = RopeScaling.NONE;
        }
        maxPositionEmbeddings = Math.max(maxPositionEmbeddings, ropeScaling.extendedPositions());
        dense(vocabSize, hiddenSize, intermediateSize, numHiddenLayers, numAttentionHeads, numKeyValueHeads,
                maxPositionEmbeddings, ropeTheta, rmsNormEps, tieWordEmbeddings, bosTokenId, eosTokenId, ropeScaling);
        if (numExperts < 0) {
            throw new IllegalArgumentException("num_experts must be >= 0, got " + numExperts);
        }
        if (numExperts > 0) {
            if (numExpertsPerTok <= 0 || numExpertsPerTok > numExperts) {
                throw new IllegalArgumentException(
                        String.format(
                                "num_experts_per_tok %d must be in [1, num_experts %d] (top-k picks k of the experts)",
                                numExpertsPerTok, numExperts));
            }
            if (moeIntermediateSize <= 0) {
                throw new IllegalArgumentException("moe_intermediate_size must be > 0, got " + moeIntermediateSize);
            }
            if (sharedExpertIntermediateSize <= 0) {
                throw new IllegalArgumentException(
                        "shared_expert_intermediate_size must be > 0, got " + sharedExpertIntermediateSize
                                + " (Qwen2-MoE layers always have a shared expert)");
            }
        }
        if (decoderSparseStep <= 0) {
            throw new IllegalArgumentException("decoder_sparse_step must be > 0, got " + decoderSparseStep);
        }
        for (int l : mlpOnlyLayers) {
            if (l < 0 || l >= numHiddenLayers) {
                throw new IllegalArgumentException(
                        "mlp_only_layers names layer " + l + ", outside [0, " + numHiddenLayers + ")");
            }
        }
    }

    private static Qwen2Config dense(
            int vocab, int hidden, int ffn, int layers, int heads, int kvHeads, int ctx, double theta,
            double eps, boolean tied, int bos, int eos, RopeScaling scaling) {
        return new Qwen2Config(vocab, hidden, ffn, layers, heads, kvHeads, ctx, theta, eps, tied, bos, eos, scaling);
    }

    // ---- derived values -------------------------------------------------------------------

    /**
     * The dense part of this shape (attention, norms, embeddings, dense layers' FFN): what the
     * shared blocks of the forward pass read.
     */
    public Qwen2Config dense() {
        return dense(vocabSize, hiddenSize, intermediateSize, numHiddenLayers, numAttentionHeads, numKeyValueHeads,
                maxPositionEmbeddings, ropeTheta, rmsNormEps, tieWordEmbeddings, bosTokenId, eosTokenId, ropeScaling);
    }

    /**
     * Whether layer {@code l} is a MoE layer, as HF {@code Qwen2MoeDecoderLayer} decides:
     * experts exist, {@code (l + 1) % decoder_sparse_step == 0} and {@code l} is not in {@code
     * mlp_only_layers}.
     */
    public boolean isMoeLayer(int l) {
        return numExperts > 0 && (l + 1) % decoderSparseStep == 0 && !mlpOnlyLayers.contains(l);
    }

    /** Number of MoE layers. */
    public int moeLayerCount() {
        int n = 0;
        for (int l = 0; l < numHiddenLayers; l++) {
            n += isMoeLayer(l) ? 1 : 0;
        }
        return n;
    }

    private long attentionAndNormsPerLayer() {
        long h = hiddenSize;
        long kv = (long) numKeyValueHeads * (hiddenSize / numAttentionHeads);
        return h * h + h + 2 * (h * kv + kv) + h * h + 2 * h;
    }

    /** One routed expert's SwiGLU (gate, up, down). */
    public long parametersPerExpert() {
        return 3L * hiddenSize * moeIntermediateSize;
    }

    /** Router ({@code experts x hidden}), shared expert SwiGLU and its gate ({@code hidden}). */
    private long alwaysActiveMoeParameters() {
        return (long) numExperts * hiddenSize + 3L * hiddenSize * sharedExpertIntermediateSize + hiddenSize;
    }

    private long embeddingAndHead() {
        long embedding = (long) vocabSize * hiddenSize;
        return embedding + (tieWordEmbeddings ? 0 : embedding) + hiddenSize;
    }

    /** All parameters: every expert counted, the untied head once if present. */
    public long parameterCount() {
        int moe = moeLayerCount();
        int denseLayers = numHiddenLayers - moe;
        return embeddingAndHead()
                + numHiddenLayers * attentionAndNormsPerLayer()
                + denseLayers * 3L * hiddenSize * intermediateSize
                + moe * (alwaysActiveMoeParameters() + numExperts * parametersPerExpert());
    }

    /** Parameters one token goes through: top-k experts instead of all, embeddings included. */
    public long activeParameterCount() {
        int moe = moeLayerCount();
        int denseLayers = numHiddenLayers - moe;
        return embeddingAndHead()
                + numHiddenLayers * attentionAndNormsPerLayer()
                + denseLayers * 3L * hiddenSize * intermediateSize
                + moe * (alwaysActiveMoeParameters() + numExpertsPerTok * parametersPerExpert());
    }

    // ---- presets (released config.json files) ---------------------------------------------

    /** Qwen2-57B-A14B: 64 experts of FFN 2560, top-8, shared expert FFN 20480. */
    public static Qwen2MoeConfig qwen2_57b_a14b() {
        return new Qwen2MoeConfig(
                151936, 3584, 18944, 28, 28, 4, 32768, 1_000_000.0, 1e-6, false, Qwen2Config.QWEN_ENDOFTEXT,
                Qwen2Config.QWEN_IM_END, 64, 8, 2560, 20480, false, 1, List.of());
    }

    /** Qwen1.5-MoE-A2.7B: 60 experts of FFN 1408, top-4, shared expert FFN 5632. */
    public static Qwen2MoeConfig qwen15_moe_a2_7b() {
        return new Qwen2MoeConfig(
                151936, 2048, 5632, 24, 16, 16, 8192, 1_000_000.0, 1e-6, false, Qwen2Config.QWEN_ENDOFTEXT,
                Qwen2Config.QWEN_IM_END, 60, 4, 1408, 5632, false, 1, List.of());
    }

    /** A preset by name: {@code 57b-a14b} or {@code a2.7b}. */
    public static Qwen2MoeConfig preset(String name) {
        switch (name.toLowerCase(Locale.ROOT)) {
            case "57b-a14b":
                return qwen2_57b_a14b();
            case "a2.7b":
                return qwen15_moe_a2_7b();
            default:
                throw new IllegalArgumentException(
                        "unknown Qwen2-MoE preset '" + name + "' (known: 57b-a14b, a2.7b)");
        }
    }

    /** This config with other bos/eos ids. */
    public Qwen2MoeConfig withSpecialTokens(int bos, int eos) {
        return new Qwen2MoeConfig(
                vocabSize, hiddenSize, intermediateSize, numHiddenLayers, numAttentionHeads, numKeyValueHeads,
                maxPositionEmbeddings, ropeTheta, rmsNormEps, tieWordEmbeddings, bos, eos, numExperts,
                numExpertsPerTok, moeIntermediateSize, sharedExpertIntermediateSize, normTopkProb,
                decoderSparseStep, mlpOnlyLayers, ropeScaling);
    }

    /**
     * This config with another rope scaling and {@code maxPositionEmbeddings} positions (raised to
     * the scaling's extended context).
     */
    public Qwen2MoeConfig withRopeScaling(RopeScaling scaling, int maxPositionEmbeddings) {
        return new Qwen2MoeConfig(
                vocabSize, hiddenSize, intermediateSize, numHiddenLayers, numAttentionHeads, numKeyValueHeads,
                maxPositionEmbeddings, ropeTheta, rmsNormEps, tieWordEmbeddings, bosTokenId, eosTokenId, numExperts,
                numExpertsPerTok, moeIntermediateSize, sharedExpertIntermediateSize, normTopkProb, decoderSparseStep,
                mlpOnlyLayers, scaling);
    }

    /** This config with {@code norm_topk_prob} set to {@code norm}. */
    public Qwen2MoeConfig withNormTopkProb(boolean norm) {
        return new Qwen2MoeConfig(
                vocabSize, hiddenSize, intermediateSize, numHiddenLayers, numAttentionHeads, numKeyValueHeads,
                maxPositionEmbeddings, ropeTheta, rmsNormEps, tieWordEmbeddings, bosTokenId, eosTokenId, numExperts,
                numExpertsPerTok, moeIntermediateSize, sharedExpertIntermediateSize, norm, decoderSparseStep,
                mlpOnlyLayers, ropeScaling);
    }

    // ---- config.json ----------------------------------------------------------------------

    private static final ObjectMapper JSON = new ObjectMapper();

    /** The {@code model_type} of a {@code config.json}, or "" if it has none. */
    public static String modelType(Path file) {
        return readObject(file).path("model_type").asText("");
    }

    private static JsonNode readObject(Path file) {
        JsonNode root;
        try {
            root = JSON.readTree(Files.readAllBytes(file));
        } catch (IOException e) {
            throw new ModelFormatException("cannot read " + file + ": " + e.getMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new ModelFormatException(file + " is not a JSON object");
        }
        return root;
    }

    /** Reads a Hugging Face {@code config.json} of {@code model_type} qwen2_moe. */
    public static Qwen2MoeConfig fromConfigJson(Path file) {
        JsonNode root = readObject(file);
        String modelType = root.path("model_type").asText("");
        if (!modelType.equals("qwen2_moe")) {
            throw new ModelFormatException(
                    file + ": model_type is '" + modelType + "', this reader takes 'qwen2_moe'");
        }
        // the dense keys are read (and validated) by the dense reader's rules
        Qwen2Config d = Qwen2Config.fromJsonNode(root, file);
        List<Integer> mlpOnly = new ArrayList<>();
        for (JsonNode n : root.path("mlp_only_layers")) {
            mlpOnly.add(n.asInt());
        }
        try {
            return new Qwen2MoeConfig(
                    d.vocabSize(), d.hiddenSize(), d.intermediateSize(), d.numHiddenLayers(),
                    d.numAttentionHeads(), d.numKeyValueHeads(), d.maxPositionEmbeddings(), d.ropeTheta(),
                    d.rmsNormEps(), d.tieWordEmbeddings(), d.bosTokenId(), d.eosTokenId(),
                    Qwen2Config.requiredInt(root, "num_experts", file),
                    Qwen2Config.requiredInt(root, "num_experts_per_tok", file),
                    Qwen2Config.requiredInt(root, "moe_intermediate_size", file),
                    Qwen2Config.requiredInt(root, "shared_expert_intermediate_size", file),
                    root.path("norm_topk_prob").asBoolean(false),
                    root.path("decoder_sparse_step").asInt(1),
                    mlpOnly,
                    d.ropeScaling());
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(file + ": " + e.getMessage(), e);
        }
    }

    /** This config as a Hugging Face {@code config.json} document. */
    public String toConfigJson() {
        ObjectNode o = JSON.createObjectNode();
        ObjectNode d = dense().toConfigNode();
        o.putArray("architectures").add("Qwen2MoeForCausalLM");
        o.put("model_type", "qwen2_moe");
        d.fieldNames().forEachRemaining(
                k -> {
                    if (!k.equals("architectures") && !k.equals("model_type")) {
                        o.set(k, d.get(k));
                    }
                });
        o.put("num_experts", numExperts);
        o.put("num_experts_per_tok", numExpertsPerTok);
        o.put("moe_intermediate_size", moeIntermediateSize);
        o.put("shared_expert_intermediate_size", sharedExpertIntermediateSize);
        o.put("norm_topk_prob", normTopkProb);
        o.put("decoder_sparse_step", decoderSparseStep);
        ArrayNode mlp = o.putArray("mlp_only_layers");
        mlpOnlyLayers.forEach(mlp::add);
        try {
            return JSON.writerWithDefaultPrettyPrinter().writeValueAsString(o);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }
}
