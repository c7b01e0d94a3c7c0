/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.config;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.flinkqwen.engine.gguf.GgufFile;
import io.flinkqwen.engine.gguf.GgufWriter;
import io.flinkqwen.kernels.Rope;
import java.util.Locale;

/**
 * RoPE scaling of a Qwen2 model: none, or YaRN (how Qwen2-7B/72B reach 128K positions from a
 * 32K training context). Read from HF {@code config.json} {@code rope_scaling} and from GGUF
 * {@code <arch>.rope.scaling.*}; no other scaling type is supported, and reading one fails.
 *
 * @param type {@code none} or {@code yarn}; HF {@code rope_scaling.type} / {@code rope_type}
 *     (absent, null or {@code default}: none); GGUF {@code <arch>.rope.scaling.type}
 * @param factor the context extension; HF {@code factor}; GGUF {@code
 *     <arch>.rope.scaling.factor}; 1 for none
 * @param originalMaxPositionEmbeddings the trained context; HF {@code
 *     original_max_position_embeddings} (absent: {@code max_position_embeddings}); GGUF {@code
 *     <arch>.rope.scaling.original_context_length} (absent: {@code <arch>.context_length}); 0 for
 *     none
 * @param betaFast HF {@code beta_fast} (32); GGUF {@code <arch>.rope.scaling.yarn_beta_fast}
 * @param betaSlow HF {@code beta_slow} (1); GGUF {@code <arch>.rope.scaling.yarn_beta_slow}
 * @param attentionFactor what cos and sin are multiplied by (so every attention score by its
 *     square): HF {@code attention_factor}, else {@code mscale(factor, mscale) /
 *     mscale(factor, mscale_all_dim)} when both are given, else {@code 0.1 ln(factor) + 1}; GGUF:
 *     {@code 0.1 ln(factor) + 1} times {@code <arch>.rope.scaling.attn_factor} (1), as llama.cpp
 *     computes it for qwen2
 */
public record RopeScaling(
        String type,
        double factor,
        int originalMaxPositionEmbeddings,
        double betaFast,
        double betaSlow,
        double attentionFactor) {

    /** No scaling: plain RoPE. */
    public static final RopeScaling NONE = new RopeScaling("none", 1, 0, 32, 1, 1);

    public static final double DEFAULT_BETA_FAST = 32;
    public static final double DEFAULT_BETA_SLOW = 1;

    public RopeScaling {
        if (type.equals("none")) {
            if (factor != 1 || attentionFactor != 1) {
                throw new IllegalArgumentException("rope_scaling none has factor 1 and attention factor 1");
            }
        } else if (type.equals("yarn")) {
            if (!(factor >= 1 && factor < 1e6)) {
                throw new IllegalArgumentException("rope_scaling yarn: factor must be >= 1, got " + factor);
            }
            if (originalMaxPositionEmbeddings <= 0) {
                throw new IllegalArgumentException(
                        "rope_scaling yarn: original_max_position_embeddings must be > 0, got "
                                + originalMaxPositionEmbeddings);
            }
            if (!(betaFast > 0) || !(betaSlow > 0)) {
                throw new IllegalArgumentException(
                        "rope_scaling yarn: beta_fast and beta_slow must be > 0, got " + betaFast + ", " + betaSlow);
            }
            if (!(attentionFactor > 0 && attentionFactor < 1e3)) {
                throw new IllegalArgumentException(
                        "rope_scaling yarn: attention factor must be > 0, got " + attentionFactor);
            }
        } else {
            throw new IllegalArgumentException(unsupported(type));
        }
    }

    /** YaRN with the default betas and attention factor {@code 0.1 ln(factor) + 1}. */
    public static RopeScaling yarn(double factor, int originalMaxPositionEmbeddings) {
        return new RopeScaling(
                "yarn", factor, originalMaxPositionEmbeddings, DEFAULT_BETA_FAST, DEFAULT_BETA_SLOW, mscale(factor, 1));
    }

    public boolean isYarn() {
        return type.equals("yarn");
    }

    /**
     * Positions the scaled model serves: {@code floor(factor * originalMaxPositionEmbeddings)}
     * for YaRN, 0 for none.
     */
    public int extendedPositions() {
        if (!isYarn()) {
            return 0;
        }
        return (int) Math.min(Integer.MAX_VALUE, (long) Math.floor(factor * originalMaxPositionEmbeddings));
    }

    /** YaRN's magnitude correction: {@code 0.1 * m * ln(s) + 1} for {@code s > 1}, else 1. */
    public static double mscale(double scale, double m) {
        return scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1;
    }

    /** Fills the RoPE cos/sin tables of {@code positions} positions with this scaling. */
    public void ropeTable(float[] cos, float[] sin, int positions, int headDim, double theta) {
        if (isYarn()) {
            Rope.ropeTableYarn(
                    cos, sin, positions, headDim, theta, factor, originalMaxPositionEmbeddings, betaFast, betaSlow,
                    attentionFactor);
        } else {
            Rope.ropeTable(cos, sin, positions, headDim, theta);
        }
    }

    private static String unsupported(String type) {
        return "rope_scaling type '" + type + "' is not supported (supported: yarn, or none/default for no scaling)";
    }

    // ---- config.json ----------------------------------------------------------------------

    /**
     * The {@code rope_scaling} object of a {@code config.json} ({@code null}, absent or {@code
     * rope_type: default}: none).
     *
     * @param maxPositionEmbeddings the file's {@code max_position_embeddings}, the original context
     *     when {@code original_max_position_embeddings} is absent
     * @throws IllegalArgumentException naming the key and value that are wrong
     */
    static RopeScaling fromJson(JsonNode node, int maxPositionEmbeddings) {
        if (node == null || node.isNull()) {
            return NONE;
        }
        if (!node.isObject()) {
            throw new IllegalArgumentException("rope_scaling must be an object or null, got " + node);
        }
        String type = node.path("type").asText("");
        String ropeType = node.path("rope_type").asText("");
        if (!type.isEmpty() && !ropeType.isEmpty() && !type.equals(ropeType)) {
            throw new IllegalArgumentException(
                    "rope_scaling has type '" + type + "' and rope_type '" + ropeType + "': they must agree");
        }
        String t = (ropeType.isEmpty() ? type : ropeType).toLowerCase(Locale.ROOT);
        if (t.isEmpty()) {
            throw new IllegalArgumentException("rope_scaling " + node + " has no type or rope_type");
        }
        if (t.equals("default") || t.equals("none")) {
            return NONE;
        }
        if (!t.equals("yarn")) {
            throw new IllegalArgumentException(unsupported(t));
        }
        JsonNode factorNode = node.get("factor");
        if (factorNode == null || !factorNode.isNumber()) {
            throw new IllegalArgumentException(
                    "rope_scaling yarn: 'factor' is "
                            + (factorNode == null ? "missing" : "not a number: " + factorNode));
        }
        double factor = factorNode.asDouble();
        int original = maxPositionEmbeddings;
        JsonNode originalNode = node.get("original_max_position_embeddings");
        if (originalNode != null && !originalNode.isNull()) {
            if (!originalNode.canConvertToInt()) {
                throw new IllegalArgumentException(
                        "rope_scaling yarn: 'original_max_position_embeddings' is not an integer: " + originalNode);
            }
            original = originalNode.asInt();
        }
        double attention;
        JsonNode af = node.get("attention_factor");
        double mscale = node.path("mscale").asDouble(0);
        double mscaleAllDim = node.path("mscale_all_dim").asDouble(0);
        if (af != null && !af.isNull()) {
            attention = af.asDouble();
        } else if (mscale != 0 && mscaleAllDim != 0) {
            attention = mscale(factor, mscale) / mscale(factor, mscaleAllDim);
        } else {
            attention = mscale(factor, 1);
        }
        return new RopeScaling(
                "yarn",
                factor,
                original,
                node.path("beta_fast").asDouble(DEFAULT_BETA_FAST),
                node.path("beta_slow").asDouble(DEFAULT_BETA_SLOW),
                attention);
    }

    /** Adds {@code rope_scaling} to a {@code config.json} object ({@code null} for none). */
    void putJson(ObjectNode o) {
        if (!isYarn()) {
            o.putNull("rope_scaling");
            return;
        }
        ObjectNode r = o.putObject("rope_scaling");
        r.put("type", "yarn"); // the key Qwen's model cards name; newer transformers read rope_type
        r.put("rope_type", "yarn");
        r.put("factor", factor);
        r.put("original_max_position_embeddings", originalMaxPositionEmbeddings);
        r.put("beta_fast", betaFast);
        r.put("beta_slow", betaSlow);
        if (attentionFactor != mscale(factor, 1)) {
            r.put("attention_factor", attentionFactor);
        }
    }

    // ---- GGUF -----------------------------------------------------------------------------

    /**
     * The scaling in a GGUF file's {@code <arch>.rope.scaling.*} keys, read as llama.cpp reads
     * them for qwen2: type absent or {@code none} with no factor other than 1 is none; {@code yarn}
     * needs a factor. llama.cpp also treats an absent type with a factor as linear scaling,
     * which is not supported here.
     *
     * @throws IllegalArgumentException naming the key and value that are wrong
     */
    public static RopeScaling fromGguf(GgufFile g, String arch, int contextLength) {
        String p = arch + ".rope.scaling.";
        String type = g.has(p + "type") ? g.getString(p + "type").toLowerCase(Locale.ROOT) : "";
        double factor = g.has(p + "factor") ? g.getDouble(p + "factor") : 0;
        if (!g.has(p + "factor") && g.has(arch + ".rope.scale_linear")) {
            factor = g.getDouble(arch + ".rope.scale_linear"); // llama.cpp's older key
        }
        if (type.isEmpty() || type.equals("none") || (type.equals("linear") && (factor == 0 || factor == 1))) {
            if (factor != 0 && factor != 1 && !type.equals("none")) {
                throw new IllegalArgumentException(
                        p + "factor is " + factor + " without " + p + "type (llama.cpp reads that as linear scaling,"
                                + " which is not supported; only yarn is)");
            }
            return NONE;
        }
        if (!type.equals("yarn")) {
            throw new IllegalArgumentException(p + "type: " + unsupported(type));
        }
        if (!g.has(p + "factor")) {
            throw new IllegalArgumentException(p + "type is yarn but " + p + "factor is missing");
        }
        if (g.has(p + "yarn_log_multiplier")) {
            // llama.cpp reads it for DeepSeek only, with an arch-specific meaning; its qwen2 ignores it
            throw new IllegalArgumentException(
                    p + "yarn_log_multiplier is not supported (llama.cpp reads it for DeepSeek models only)");
        }
        int original =
                g.has(p + "original_context_length") ? (int) g.getLong(p + "original_context_length") : contextLength;
        double attnFactor = g.has(p + "attn_factor") ? g.getDouble(p + "attn_factor") : 1.0;
        return new RopeScaling(
                "yarn",
                factor,
                original,
                g.has(p + "yarn_beta_fast") ? g.getDouble(p + "yarn_beta_fast") : DEFAULT_BETA_FAST,
                g.has(p + "yarn_beta_slow") ? g.getDouble(p + "yarn_beta_slow") : DEFAULT_BETA_SLOW,
                mscale(factor, 1) * attnFactor);
    }

    /**
     * Writes the {@code <arch>.rope.scaling.*} keys llama.cpp reads (nothing for none). Betas
     * other than the defaults are written as {@code yarn_beta_fast/slow}, which llama.cpp's qwen2
     * does not read (it uses 32 and 1).
     */
    public void putGguf(GgufWriter w, String arch) {
        if (!isYarn()) {
            return;
        }
        String p = arch + ".rope.scaling.";
        w.put(p + "type", "yarn");
        w.putFloat32(p + "factor", (float) factor);
        w.putUint32(p + "original_context_length", originalMaxPositionEmbeddings);
        double attnFactor = attentionFactor / mscale(factor, 1);
        if (Math.abs(attnFactor - 1) > 1e-12) {
            w.putFloat32(p + "attn_factor", (float) attnFactor);
        }
        if (betaFast != DEFAULT_BETA_FAST) {
            w.putFloat32(p + "yarn_beta_fast", (float) betaFast);
        }
        if (betaSlow != DEFAULT_BETA_SLOW) {
            w.putFloat32(p + "yarn_beta_slow", (float) betaSlow);
        }
    }
}
