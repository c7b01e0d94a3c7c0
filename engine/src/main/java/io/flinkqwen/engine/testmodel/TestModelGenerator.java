/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.testmodel;

import static io.flinkqwen.engine.model.TensorNaming.Field.*;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.flinkqwen.engine.config.Qwen2Config;
import io.flinkqwen.engine.config.Qwen2MoeConfig;
import io.flinkqwen.engine.config.RopeScaling;
import io.flinkqwen.engine.gguf.GgufWriter;
import io.flinkqwen.engine.model.TensorNaming;
import io.flinkqwen.engine.model.TensorNaming.Field;
import io.flinkqwen.engine.safetensors.SafetensorsWriter;
import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.Float16;
import io.flinkqwen.kernels.Quantize;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.function.Supplier;

/**
 * Writes random-weight Qwen2 and Qwen2-MoE models from a seed, the same numbers as a Hugging Face folder
 * ({@code config.json}, {@code model.safetensors} or shards, {@code tokenizer.json}) and as a
 * GGUF file with llama.cpp's {@code qwen2} / {@code qwen2moe} metadata and tensor names, so that our engine and
 * llama.cpp can be run on identical weights.
 *
 * <p>Each tensor's values come from its own random stream, seeded by the model seed and the
 * tensor's role, so both formats (and every dtype) hold the same model. Scales are chosen so
 * the model is not degenerate: every projection maps unit-scale inputs to unit-scale outputs, the
 * embedding is small beside the residual branches (so the input token's own embedding does not
 * dominate), and logits spread over about +-12, so greedy decoding mostly has clear winners.
 */
public final class TestModelGenerator {

    /** Model file formats the generator writes. */
    public enum Format {
        GGUF,
        HF
    }

    /**
     * A tiny dense shape for tests: GQA (4 query heads over 2 KV heads), 3 layers, an untied LM
     * head. Untied because a random tied head votes for repeating the input token (its own
     * embedding is in the residual stream), and a model that says one token forever checks
     * little; {@link #tinyTiedConfig()} covers the tied path.
     */
    public static Qwen2Config tinyConfig() {
        return new Qwen2Config(512, 128, 256, 3, 4, 2, 1024, 1_000_000.0, 1e-6, false, -1, -1);
    }

    /** {@link #tinyConfig()} with tied embeddings, as Qwen2-0.5B and 1.5B have. */
    public static Qwen2Config tinyTiedConfig() {
        return new Qwen2Config(512, 128, 256, 3, 4, 2, 1024, 1_000_000.0, 1e-6, true, -1, -1);
    }

    /**
     * {@link #tinyConfig()} with YaRN: trained context 64, extended 4x to 256 positions, RoPE
     * theta 10,000 (with Qwen2's 1e6 and a context this short, YaRN's ramp between kept and
     * interpolated frequencies would cover only pairs 0 to 3 of 16; with 10,000 it covers 0 to 5,
     * so more pairs get a partial mix). Written with {@code qwen2.rope.scaling.*} in GGUF and
     * {@code rope_scaling} in {@code config.json}.
     */
    public static Qwen2Config tinyYarnConfig() {
        return new Qwen2Config(512, 128, 256, 3, 4, 2, 64, 10_000.0, 1e-6, false, -1, -1, RopeScaling.yarn(4, 64));
    }

    /**
     * A tiny Qwen2-MoE shape for tests: {@link #tinyConfig()}'s attention, 8 experts of FFN 64,
     * top-2, a shared expert of FFN 128, every layer sparse, {@code norm_topk_prob} false (what
     * llama.cpp's qwen2moe computes, so the GGUF can be checked against it).
     */
    public static Qwen2MoeConfig tinyMoeConfig() {
        return new Qwen2MoeConfig(
                512, 128, 256, 3, 4, 2, 1024, 1_000_000.0, 1e-6, false, -1, -1, 8, 2, 64, 128, false, 1, List.of());
    }

    /**
     * {@link #tinyMoeConfig()} with layer 1 dense ({@code mlp_only_layers = [1]}, FFN 256).
     * llama.cpp's qwen2moe has no dense layers: this shape is checked against the float64
     * reference only.
     */
    public static Qwen2MoeConfig tinyMoeMixedConfig() {
        return new Qwen2MoeConfig(
                512, 128, 256, 3, 4, 2, 1024, 1_000_000.0, 1e-6, false, -1, -1, 8, 2, 64, 128, false, 1, List.of(1));
    }

    /**
     * A mid-size Qwen2-MoE shape for benchmarks, Qwen1.5-MoE-A2.7B's structure at half its
     * widths and two thirds of its layers: hidden 1024, 16 layers of 16 heads (16 KV heads), 60
     * experts of FFN 704, top-4, a shared expert of FFN 2816, the real 151,936-entry vocabulary,
     * untied head. 2.59B parameters (0.66B active), 2.76 GB in Q8_0: it fits this kind of
     * machine where A2.7B (15 GB in Q8_0) does not.
     */
    public static Qwen2MoeConfig halfA27bConfig() {
        return new Qwen2MoeConfig(
                151936, 1024, 2816, 16, 16, 16, 8192, 1_000_000.0, 1e-6, false, -1, -1, 60, 4, 704, 2816, false, 1,
                List.of());
    }

    /**
     * A Qwen2-MoE preset by name: {@code tiny}, {@code tiny-mixed}, {@code half-a2.7b} (see
     * {@link #halfA27bConfig()}), {@code a2.7b}, {@code 57b-a14b}.
     */
    public static Qwen2MoeConfig moePreset(String name) {
        if (name.equalsIgnoreCase("tiny")) {
            return tinyMoeConfig();
        }
        if (name.equalsIgnoreCase("half-a2.7b")) {
            return halfA27bConfig();
        }
        if (name.equalsIgnoreCase("tiny-mixed")) {
            return tinyMoeMixedConfig();
        }
        return Qwen2MoeConfig.preset(name);
    }

    private final Qwen2Config config;
    private final Qwen2MoeConfig moeConfig; // null for a dense model
    private final long seed;
    private final SyntheticVocabulary vocabulary;
    private boolean spreadRouting;

    /**
     * Makes the model's hidden states keep more of each token, so that a MoE router spreads the
     * tokens of a chunk over more experts, closer to a trained model's balanced routing: no
     * q/k/v biases, and keys 4x larger (sharper attention). With the default weights, attention
     * is nearly uniform and the biases are shared by every token, so the hidden states of a
     * sequence converge and most tokens pick the same few experts (a 64-token chunk of {@code
     * half-a2.7b}: 170-226 of the 256 token-expert pairs go to experts with more than 10
     * tokens). For speed measurements; the tests use the default weights.
     */
    public TestModelGenerator spreadRouting() {
        this.spreadRouting = true;
        return this;
    }

    /**
     * A Qwen2-MoE model; its bos/eos ids are replaced by the synthetic vocabulary's.
     */
    public TestModelGenerator(Qwen2MoeConfig moe, long seed) {
        this.seed = seed;
        this.vocabulary = SyntheticVocabulary.create(moe.vocabSize(), Math.min(253, moe.vocabSize() - 259));
        this.moeConfig =
                moe.withSpecialTokens(
                        vocabulary.id(SyntheticVocabulary.ENDOFTEXT), vocabulary.id(SyntheticVocabulary.IM_END));
        this.config = moeConfig.dense();
    }

    /**
     * @param config the shape; its bos/eos ids are replaced by the synthetic vocabulary's
     *     {@code <|endoftext|>} and {@code <|im_end|>}
     */
    public TestModelGenerator(Qwen2Config config, long seed) {
        this.seed = seed;
        this.vocabulary = SyntheticVocabulary.create(config.vocabSize(), Math.min(253, config.vocabSize() - 259));
        this.config =
                config.withSpecialTokens(
                        vocabulary.id(SyntheticVocabulary.ENDOFTEXT), vocabulary.id(SyntheticVocabulary.IM_END));
        this.moeConfig = null;
    }

    /**
     * The preset by name: {@code tiny}, {@code tiny-tied}, {@code tiny-yarn}, or a Qwen2 size
     * ({@code 0.5b}, ...; {@code 7b} and {@code 72b} carry YaRN).
     */
    public static Qwen2Config preset(String name) {
        if (name.equalsIgnoreCase("tiny")) {
            return tinyConfig();
        }
        if (name.equalsIgnoreCase("tiny-tied")) {
            return tinyTiedConfig();
        }
        if (name.equalsIgnoreCase("tiny-yarn")) {
            return tinyYarnConfig();
        }
        return Qwen2Config.preset(name);
    }

    /** The dense shape, or for a MoE model its dense part ({@link Qwen2MoeConfig#dense()}). */
    public Qwen2Config config() {
        return config;
    }

    /** The MoE shape, or null for a dense model. */
    public Qwen2MoeConfig moeConfig() {
        return moeConfig;
    }

    /** All parameters of the model written (every expert counted). */
    public long parameterCount() {
        return moeConfig != null ? moeConfig.parameterCount() : config.parameterCount();
    }

    public SyntheticVocabulary vocabulary() {
        return vocabulary;
    }

    /**
     * Writes the model; {@code out} is the {@code .gguf} file for GGUF, the folder for HF.
     *
     * @param maxShardBytes for HF: split into shards of at most this many bytes (0: one file)
     */
    public void write(Format format, DType dtype, Path out, long maxShardBytes) throws IOException {
        switch (format) {
            case GGUF:
                writeGguf(dtype, out);
                break;
            case HF:
                writeHf(dtype, out, maxShardBytes);
                break;
            default:
                throw new AssertionError(format);
        }
    }

    // ---- the weights ----------------------------------------------------------------------

    /** The values of one tensor (row-major), regenerated on demand from the seed. */
    float[] values(Field field, int layer, int rows, int cols, DType dtype) {
        return values(field, layer, -1, rows, cols, dtype);
    }

    /** The values of routed expert {@code expert}'s matrix ({@code -1}: not an expert tensor). */
    float[] values(Field field, int layer, int expert, int rows, int cols, DType dtype) {
        long stream = seed * 0x9E3779B97F4A7C15L + field.ordinal() * 1_000_003L + layer + 65_536L * (expert + 1);
        SplittableRandom random = new SplittableRandom(stream);
        int n = rows * cols;
        float[] v = new float[n];
        double scale;
        double offset = 0;
        switch (field) {
            case ATTN_NORM:
            case FFN_NORM:
            case OUTPUT_NORM:
                offset = 1.0; // RMSNorm gains near one
                scale = 0.2;
                break;
            case Q_BIAS:
            case K_BIAS:
            case V_BIAS:
                scale = spreadRouting ? 0.0 : 0.2;
                break;
            case K:
                scale = (spreadRouting ? 4.0 : 1.0) / Math.sqrt(cols);
                break;
            case ROUTER:
                // router logits spread ~3: the top-k usually wins by a clear margin, so that the
                // rounding of another implementation rarely swaps an expert (a near-tie flips
                // the routing and moves that token's output discontinuously)
                scale = 3.0 / Math.sqrt(cols);
                break;
            case EMBED:
            case OUTPUT:
                // logits = normed hidden . row: spread ~4 whatever the width
                scale = 4.0 / Math.sqrt(config.hiddenSize());
                break;
            default:
                // unit-scale outputs from unit-scale inputs
                scale = 1.0 / Math.sqrt(cols);
                break;
        }
        double half = Math.sqrt(3.0) * scale; // uniform(-a, a) has std a / sqrt(3)
        for (int i = 0; i < n; i++) {
            v[i] = (float) (offset + (2 * random.nextDouble() - 1) * half);
        }
        if ((rows == 1 || field == ROUTER) && dtype != DType.F32) {
            // 1-D tensors and the router stay F32 in GGUF (as llama.cpp keeps them) but take the
            // model dtype in safetensors: round them to that dtype here so that both files hold
            // the same numbers.
            for (int i = 0; i < n; i++) {
                v[i] = dtype == DType.BF16 ? Float16.bf16ToFloat(Float16.bf16FromFloat(v[i])) : Float16.toFloat(Float16.fromFloat(v[i]));
            }
        }
        return v;
    }

    private static Supplier<ByteBuffer> encoded(Supplier<float[]> values, DType dtype, int rows, int cols) {
        return () -> {
            float[] v = values.get();
            long rowBytes = dtype.rowBytes(cols);
            byte[] bytes = new byte[Math.toIntExact(rowBytes * rows)];
            for (int r = 0; r < rows; r++) {
                Quantize.quantizeRow(dtype, v, r * cols, cols, bytes, (int) (r * rowBytes));
            }
            return ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        };
    }

    /** One tensor to write: its role, layer, row-major shape and dtype. */
    private interface TensorSink {
        void add(String name, DType dtype, long[] shape, Supplier<ByteBuffer> data);
    }

    private void forEachTensor(TensorNaming naming, DType matrixType, DType vectorType, TensorSink sink) {
        int h = config.hiddenSize();
        int kv = config.kvDim();
        int ffn = config.intermediateSize();
        matrix(sink, naming, EMBED, 0, config.vocabSize(), h, matrixType);
        for (int l = 0; l < config.numHiddenLayers(); l++) {
            vector(sink, naming, ATTN_NORM, l, h, vectorType, matrixType);
            matrix(sink, naming, Q, l, h, h, matrixType);
            vector(sink, naming, Q_BIAS, l, h, vectorType, matrixType);
            matrix(sink, naming, K, l, kv, h, matrixType);
            vector(sink, naming, K_BIAS, l, kv, vectorType, matrixType);
            matrix(sink, naming, V, l, kv, h, matrixType);
            vector(sink, naming, V_BIAS, l, kv, vectorType, matrixType);
            matrix(sink, naming, O, l, h, h, matrixType);
            vector(sink, naming, FFN_NORM, l, h, vectorType, matrixType);
            if (moeConfig != null && moeConfig.isMoeLayer(l)) {
                moe(sink, naming, l, matrixType, vectorType);
            } else {
                matrix(sink, naming, GATE, l, ffn, h, matrixType);
                matrix(sink, naming, UP, l, ffn, h, matrixType);
                matrix(sink, naming, DOWN, l, h, ffn, matrixType);
            }
        }
        vector(sink, naming, OUTPUT_NORM, 0, h, vectorType, matrixType);
        if (!config.tieWordEmbeddings()) {
            matrix(sink, naming, OUTPUT, 0, config.vocabSize(), h, matrixType);
        }
    }

    /**
     * A MoE layer's tensors. The router and the shared-expert gate take {@code vectorType} (F32
     * in GGUF, as llama.cpp keeps {@code ffn_gate_inp}; the model dtype in safetensors); GGUF
     * merges the routed experts into one {@code [experts, rows, cols]} tensor per matrix.
     */
    private void moe(TensorSink sink, TensorNaming naming, int l, DType matrixType, DType vectorType) {
        int h = config.hiddenSize();
        int e = moeConfig.numExperts();
        int ff = moeConfig.moeIntermediateSize();
        int shared = moeConfig.sharedExpertIntermediateSize();
        sink.add(
                naming.tensorName(ROUTER, l),
                vectorType,
                new long[] {e, h},
                encoded(() -> values(ROUTER, l, e, h, matrixType), vectorType, e, h));
        experts(sink, naming, GATE_EXPS, l, ff, h, matrixType);
        experts(sink, naming, UP_EXPS, l, ff, h, matrixType);
        experts(sink, naming, DOWN_EXPS, l, h, ff, matrixType);
        matrix(sink, naming, GATE_SHEXP, l, shared, h, matrixType);
        matrix(sink, naming, UP_SHEXP, l, shared, h, matrixType);
        matrix(sink, naming, DOWN_SHEXP, l, h, shared, matrixType);
        // GGUF ffn_gate_inp_shexp is [hidden]; HF shared_expert_gate is a Linear(hidden, 1)
        long[] gateShape = naming.mergedExperts() ? new long[] {h} : new long[] {1, h};
        sink.add(
                naming.tensorName(SHEXP_GATE, l),
                vectorType,
                gateShape,
                encoded(() -> values(SHEXP_GATE, l, 1, h, matrixType), vectorType, 1, h));
    }

    private void experts(TensorSink sink, TensorNaming naming, Field f, int l, int rows, int cols, DType dtype) {
        int experts = moeConfig.numExperts();
        if (!naming.mergedExperts()) {
            for (int e = 0; e < experts; e++) {
                int expert = e;
                sink.add(
                        naming.expertName(f, l, e),
                        dtype,
                        new long[] {rows, cols},
                        encoded(() -> values(f, l, expert, rows, cols, dtype), dtype, rows, cols));
            }
            return;
        }
        sink.add(
                naming.tensorName(f, l),
                dtype,
                new long[] {experts, rows, cols},
                () -> {
                    long matrixBytes = dtype.rowBytes(cols) * rows;
                    ByteBuffer all =
                            ByteBuffer.allocate(Math.toIntExact(matrixBytes * experts)).order(ByteOrder.LITTLE_ENDIAN);
                    for (int e = 0; e < experts; e++) {
                        int expert = e;
                        all.put(encoded(() -> values(f, l, expert, rows, cols, dtype), dtype, rows, cols).get());
                    }
                    return all.flip();
                });
    }

    private void matrix(TensorSink sink, TensorNaming naming, Field f, int layer, int rows, int cols, DType dtype) {
        sink.add(
                naming.tensorName(f, layer),
                dtype,
                new long[] {rows, cols},
                encoded(() -> values(f, layer, rows, cols, dtype), dtype, rows, cols));
    }

    private void vector(TensorSink sink, TensorNaming naming, Field f, int layer, int n, DType stored, DType modelType) {
        sink.add(
                naming.tensorName(f, layer),
                stored,
                new long[] {n},
                encoded(() -> values(f, layer, 1, n, modelType), stored, 1, n));
    }

    // ---- GGUF -----------------------------------------------------------------------------

    private void writeGguf(DType dtype, Path file) throws IOException {
        GgufWriter w = new GgufWriter();
        String arch = moeConfig != null ? "qwen2moe" : "qwen2";
        w.put("general.architecture", arch);
        w.put("general.name", "flink-qwen random-weights seed " + seed);
        w.putUint32("general.file_type", fileType(dtype));
        w.putUint32(arch + ".context_length", config.maxPositionEmbeddings());
        w.putUint32(arch + ".embedding_length", config.hiddenSize());
        w.putUint32(arch + ".block_count", config.numHiddenLayers());
        w.putUint32(arch + ".feed_forward_length", config.intermediateSize());
        w.putUint32(arch + ".attention.head_count", config.numAttentionHeads());
        w.putUint32(arch + ".attention.head_count_kv", config.numKeyValueHeads());
        w.putFloat32(arch + ".rope.freq_base", (float) config.ropeTheta());
        config.ropeScaling().putGguf(w, arch);
        w.putFloat32(arch + ".attention.layer_norm_rms_epsilon", (float) config.rmsNormEps());
        if (moeConfig != null) {
            w.putUint32("qwen2moe.expert_count", moeConfig.numExperts());
            w.putUint32("qwen2moe.expert_used_count", moeConfig.numExpertsPerTok());
            w.putUint32("qwen2moe.expert_feed_forward_length", moeConfig.moeIntermediateSize());
            w.putUint32("qwen2moe.expert_shared_feed_forward_length", moeConfig.sharedExpertIntermediateSize());
            if (moeConfig.normTopkProb()) {
                // llama.cpp's qwen2moe graph ignores this key and never renormalises
                w.putBool("qwen2moe.expert_weights_norm", true);
            }
        }
        w.put("tokenizer.ggml.model", "gpt2");
        w.put("tokenizer.ggml.pre", "qwen2");
        w.putStringArray("tokenizer.ggml.tokens", vocabulary.tokens());
        w.putInt32Array("tokenizer.ggml.token_type", vocabulary.tokenTypes());
        w.putStringArray("tokenizer.ggml.merges", vocabulary.merges());
        int endOfText = vocabulary.id(SyntheticVocabulary.ENDOFTEXT);
        w.putUint32("tokenizer.ggml.eos_token_id", config.eosTokenId());
        w.putUint32("tokenizer.ggml.padding_token_id", endOfText);
        w.putUint32("tokenizer.ggml.bos_token_id", config.bosTokenId());
        w.putBool("tokenizer.ggml.add_bos_token", false);
        // llama.cpp keeps norms and biases in F32 whatever the matrices are
        forEachTensor(TensorNaming.GGUF, dtype, DType.F32, w::addTensor);
        Path parent = file.toAbsolutePath().getParent();
        if (parent != null) {
            Files.createDirectories(parent);
        }
        w.write(file);
    }

    /** GGUF {@code general.file_type} (llama_ftype) of a model whose matrices are {@code dtype}. */
    private static int fileType(DType dtype) {
        switch (dtype) {
            case F32:
                return 0;
            case F16:
                return 1;
            case Q4_0:
                return 2;
            case Q8_0:
                return 7;
            case BF16:
                return 32;
            default:
                throw new AssertionError(dtype);
        }
    }

    // ---- Hugging Face ---------------------------------------------------------------------

    private void writeHf(DType dtype, Path dir, long maxShardBytes) throws IOException {
        if (dtype.isQuantized()) {
            throw new IllegalArgumentException(
                    "safetensors holds F32, F16 or BF16 weights; " + dtype + " is a GGUF format (use --format gguf)");
        }
        Files.createDirectories(dir);
        ObjectMapper json = new ObjectMapper();
        String configJson =
                (moeConfig != null ? moeConfig.toConfigJson() : config.toConfigJson())
                        .replace("\"float32\"", "\"" + torchDtype(dtype) + "\"");
        Files.write(dir.resolve("config.json"), configJson.getBytes(StandardCharsets.UTF_8));
        Files.write(
                dir.resolve("tokenizer.json"),
                json.writerWithDefaultPrettyPrinter().writeValueAsBytes(vocabulary.tokenizerJson()));
        Files.write(
                dir.resolve("tokenizer_config.json"),
                json.writerWithDefaultPrettyPrinter()
                        .writeValueAsBytes(
                                java.util.Map.of(
                                        "eos_token", SyntheticVocabulary.IM_END,
                                        "pad_token", SyntheticVocabulary.ENDOFTEXT,
                                        "model_max_length", config.maxPositionEmbeddings())));
        SafetensorsWriter w = new SafetensorsWriter();
        w.metadata("format", "pt");
        forEachTensor(TensorNaming.HF, dtype, dtype, w::add);
        if (maxShardBytes > 0) {
            w.writeSharded(dir, maxShardBytes);
        } else {
            w.write(dir.resolve("model.safetensors"));
        }
    }

    private static String torchDtype(DType dtype) {
        switch (dtype) {
            case F32:
                return "float32";
            case F16:
                return "float16";
            case BF16:
                return "bfloat16";
            default:
                throw new AssertionError(dtype);
        }
    }

    /** Parses a dtype name as the command line spells it ({@code f32}, {@code q8_0}, ...). */
    public static DType parseDType(String name) {
        try {
            return DType.valueOf(name.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(
                    "unknown dtype '" + name + "' (known: f32, f16, bf16, q8_0, q4_0)");
        }
    }

}
