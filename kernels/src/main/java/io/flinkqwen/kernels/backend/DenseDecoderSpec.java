/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels.backend;

import io.flinkqwen.kernels.WeightMatrix;
import java.util.List;
import java.util.Objects;

/**
 * What a {@link ResidentDecoder} needs to run one decode step of a dense Qwen2-style decoder
 * (pre-norm, q/k/v with biases, NeoX RoPE, grouped-query attention, SwiGLU FFN) without model
 * types: shapes, the per-layer weights and the RoPE tables. The token embedding is not here: the
 * caller looks up the token's row and hands it to {@link ResidentDecoder#decode}.
 *
 * @param hidden width of the residual stream
 * @param heads query heads; {@code heads * headDim == hidden}
 * @param kvHeads key/value heads, dividing {@code heads}
 * @param headDim width of one head, even
 * @param ffn intermediate width of the FFN
 * @param vocab rows of {@code output}, the logits per step
 * @param eps RMSNorm epsilon
 * @param ropeCos cosines, {@code (position, headDim / 2)}, at least {@link ResidentDecoder}'s
 *     positions rows (as {@link io.flinkqwen.kernels.Rope#ropeTable}, YaRN included)
 * @param ropeSin sines, as {@code ropeCos}
 * @param layers the decoder layers, in order
 * @param outputNorm final RMSNorm weight, {@code hidden}
 * @param output LM head, {@code (vocab, hidden)}
 */
public record DenseDecoderSpec(
        int hidden, int heads, int kvHeads, int headDim, int ffn, int vocab, float eps, float[] ropeCos,
        float[] ropeSin, List<Layer> layers, float[] outputNorm, WeightMatrix output) {

    /**
     * One layer's weights, shapes as {@code (rows, cols)}.
     *
     * @param attnNorm {@code hidden}
     * @param wq {@code (heads * headDim, hidden)}
     * @param wk {@code (kvHeads * headDim, hidden)}
     * @param wv {@code (kvHeads * headDim, hidden)}
     * @param bq {@code heads * headDim}
     * @param bk {@code kvHeads * headDim}
     * @param bv {@code kvHeads * headDim}
     * @param wo {@code (hidden, heads * headDim)}
     * @param ffnNorm {@code hidden}
     * @param gate {@code (ffn, hidden)}
     * @param up {@code (ffn, hidden)}
     * @param down {@code (hidden, ffn)}
     */
    public record Layer(
            float[] attnNorm, WeightMatrix wq, WeightMatrix wk, WeightMatrix wv, float[] bq, float[] bk, float[] bv,
            WeightMatrix wo, float[] ffnNorm, WeightMatrix gate, WeightMatrix up, WeightMatrix down) {}

    /** Checks every shape against the others; the message names the layer and tensor. */
    public DenseDecoderSpec {
        Objects.requireNonNull(layers, "layers");
        if (hidden <= 0 || heads <= 0 || kvHeads <= 0 || headDim <= 0 || ffn <= 0 || vocab <= 0 || layers.isEmpty()) {
            throw new IllegalArgumentException(String.format(
                    "decoder sizes must be positive: hidden %d, heads %d, kvHeads %d, headDim %d, ffn %d, vocab %d, layers %d",
                    hidden, heads, kvHeads, headDim, ffn, vocab, layers.size()));
        }
        if (heads % kvHeads != 0 || headDim % 2 != 0 || heads * headDim != hidden) {
            throw new IllegalArgumentException(String.format(
                    "need kvHeads | heads, an even headDim and heads * headDim == hidden, got %d/%d heads of %d for hidden %d",
                    heads, kvHeads, headDim, hidden));
        }
        if (ropeCos.length != ropeSin.length || ropeCos.length % (headDim / 2) != 0) {
            throw new IllegalArgumentException("RoPE tables of " + ropeCos.length + " and " + ropeSin.length
                    + " floats are not (positions, headDim / 2 = " + headDim / 2 + ")");
        }
        int kvDim = kvHeads * headDim;
        for (int l = 0; l < layers.size(); l++) {
            Layer w = layers.get(l);
            String at = "layer " + l + " ";
            vector(at + "attn_norm", w.attnNorm(), hidden);
            matrix(at + "q", w.wq(), hidden, hidden);
            matrix(at + "k", w.wk(), kvDim, hidden);
            matrix(at + "v", w.wv(), kvDim, hidden);
            vector(at + "q bias", w.bq(), hidden);
            vector(at + "k bias", w.bk(), kvDim);
            vector(at + "v bias", w.bv(), kvDim);
            matrix(at + "output", w.wo(), hidden, hidden);
            vector(at + "ffn_norm", w.ffnNorm(), hidden);
            matrix(at + "gate", w.gate(), ffn, hidden);
            matrix(at + "up", w.up(), ffn, hidden);
            matrix(at + "down", w.down(), hidden, ffn);
        }
        vector("output_norm", outputNorm, hidden);
        matrix("LM head", output, vocab, hidden);
    }

    /** {@code kvHeads * headDim}: floats of one position's keys (or values) in one layer. */
    public int kvDim() {
        return kvHeads * headDim;
    }

    /** Positions the RoPE tables cover. */
    public int ropePositions() {
        return ropeCos.length / (headDim / 2);
    }

    private static void vector(String what, float[] v, int n) {
        if (v == null || v.length < n) {
            throw new IllegalArgumentException(what + " needs " + n + " floats, got " + (v == null ? "none" : v.length));
        }
    }

    private static void matrix(String what, WeightMatrix w, int rows, int cols) {
        if (w == null || w.rows() != rows || w.cols() != cols) {
            throw new IllegalArgumentException(what + " must be (" + rows + ", " + cols + "), got "
                    + (w == null ? "none" : "(" + w.rows() + ", " + w.cols() + ")"));
        }
    }
}
