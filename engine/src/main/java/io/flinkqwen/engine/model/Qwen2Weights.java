/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.model;

import static io.flinkqwen.engine.model.TensorNaming.Field.*;

import io.flinkqwen.engine.config.Qwen2Config;
import io.flinkqwen.engine.config.Qwen2MoeConfig;
import io.flinkqwen.engine.model.TensorNaming.Field;
import io.flinkqwen.engine.weights.ModelFormatException;
import io.flinkqwen.engine.weights.TensorStore;
import io.flinkqwen.kernels.Quantize;
import io.flinkqwen.kernels.WeightMatrix;
import java.util.function.IntFunction;

/**
 * The weights of a Qwen2 or Qwen2-MoE model, immutable once loaded (the two differ only in each
 * layer's {@link Ffn}). Matrices are views of the mapped
 * file; norm weights and biases (kilobytes) are decoded to F32 on the heap. Shapes are given as
 * {@code (rows, cols)} = {@code (out, in)}.
 */
public final class Qwen2Weights {

    /** One decoder layer. */
    public static final class Layer {
        final float[] attnNorm; // (hidden)
        final WeightMatrix wq; // (hidden, hidden)
        final float[] bq; // (hidden)
        final WeightMatrix wk; // (kvDim, hidden)
        final float[] bk; // (kvDim)
        final WeightMatrix wv; // (kvDim, hidden)
        final float[] bv; // (kvDim)
        final WeightMatrix wo; // (hidden, hidden)
        final float[] ffnNorm; // (hidden)
        final Ffn ffn; // dense SwiGLU or MoE
        final WeightMatrix[] qkv; // {wq, wk, wv}: all read the normed input

        Layer(Qwen2Config c, TensorStore s, TensorNaming n, int l, Ffn ffn) {
            int h = c.hiddenSize();
            int kv = c.kvDim();
            attnNorm = s.vector(n.name(ATTN_NORM, l), h);
            wq = s.matrix(n.name(Q, l), h, h);
            bq = s.vector(n.name(Q_BIAS, l), h);
            wk = s.matrix(n.name(K, l), kv, h);
            bk = s.vector(n.name(K_BIAS, l), kv);
            wv = s.matrix(n.name(V, l), kv, h);
            bv = s.vector(n.name(V_BIAS, l), kv);
            wo = s.matrix(n.name(O, l), h, h);
            ffnNorm = s.vector(n.name(FFN_NORM, l), h);
            this.ffn = ffn;
            qkv = new WeightMatrix[] {wq, wk, wv};
        }
    }

    /** A layer's feed-forward block: dense SwiGLU or Mixture-of-Experts. */
    sealed interface Ffn permits SwiGluFfn, MoeFfn {
        long sizeBytes();

        /** Bytes one token reads: all of a dense FFN; a MoE layer's router, shared and top-k experts. */
        long activeBytes();

        long packedBytes();
    }

    /** {@code down(silu(gate(x)) * up(x))}: a dense layer's FFN, a routed or the shared expert. */
    static final class SwiGluFfn implements Ffn {
        final WeightMatrix gate; // (ffn, hidden)
        final WeightMatrix up; // (ffn, hidden)
        final WeightMatrix down; // (hidden, ffn)
        final WeightMatrix[] gateUp; // {gate, up}: both read the same input

        SwiGluFfn(WeightMatrix gate, WeightMatrix up, WeightMatrix down) {
            this.gate = gate;
            this.up = up;
            this.down = down;
            this.gateUp = new WeightMatrix[] {gate, up};
        }

        static SwiGluFfn load(TensorStore s, TensorNaming n, Field gate, Field up, Field down, int l, int ffn, int h) {
            return new SwiGluFfn(
                    s.matrix(n.name(gate, l), ffn, h), s.matrix(n.name(up, l), ffn, h), s.matrix(n.name(down, l), h, ffn));
        }

        int ffnSize() {
            return gate.rows();
        }

        @Override
        public long sizeBytes() {
            return gate.sizeBytes() + up.sizeBytes() + down.sizeBytes();
        }

        @Override
        public long packedBytes() {
            return gate.packedBytes() + up.packedBytes() + down.packedBytes();
        }

        @Override
        public long activeBytes() {
            return sizeBytes();
        }
    }

    /** A MoE layer's FFN: router, routed experts, shared expert and its sigmoid gate. */
    static final class MoeFfn implements Ffn {
        final WeightMatrix router; // (experts, hidden)
        final SwiGluFfn[] experts; // each (moeIntermediate, hidden) x2, (hidden, moeIntermediate)
        final SwiGluFfn shared; // (sharedIntermediate, hidden) x2, (hidden, sharedIntermediate)
        final float[] sharedGate; // (hidden)
        final int topK;

        MoeFfn(Qwen2MoeConfig c, TensorStore s, TensorNaming n, int l) {
            topK = c.numExpertsPerTok();
            int h = c.hiddenSize();
            int e = c.numExperts();
            int ff = c.moeIntermediateSize();
            // experts before the router: a wrong expert count is then reported as such
            WeightMatrix[] gates = expertMatrices(s, n, GATE_EXPS, l, e, ff, h);
            WeightMatrix[] ups = expertMatrices(s, n, UP_EXPS, l, e, ff, h);
            WeightMatrix[] downs = expertMatrices(s, n, DOWN_EXPS, l, e, h, ff);
            router = s.matrix(n.name(ROUTER, l), e, h);
            experts = new SwiGluFfn[e];
            for (int i = 0; i < e; i++) {
                experts[i] = new SwiGluFfn(gates[i], ups[i], downs[i]);
            }
            shared = SwiGluFfn.load(s, n, GATE_SHEXP, UP_SHEXP, DOWN_SHEXP, l, c.sharedExpertIntermediateSize(), h);
            sharedGate = sharedGateVector(s, n.name(SHEXP_GATE, l), h);
        }

        /** GGUF merges a layer's experts into one 3-D tensor; HF has one tensor per expert. */
        private static WeightMatrix[] expertMatrices(
                TensorStore s, TensorNaming n, Field f, int l, int experts, int rows, int cols) {
            if (n.mergedExperts()) {
                return s.expertMatrices(n.name(f, l), experts, rows, cols);
            }
            WeightMatrix[] m = new WeightMatrix[experts];
            for (int e = 0; e < experts; e++) {
                m[e] = s.matrix(n.expertName(f, l, e), rows, cols);
            }
            String extra = n.expertName(f, l, experts);
            if (s.contains(extra)) {
                throw new ModelFormatException(
                        s.source() + " has tensor '" + extra + "', more experts than the config's num_experts " + experts);
            }
            return m;
        }

        /** GGUF stores the shared-expert gate as {@code [hidden]}, HF as a Linear {@code [1, hidden]}. */
        private static float[] sharedGateVector(TensorStore s, String name, int h) {
            if (s.shape(name).length == 1) {
                return s.vector(name, h);
            }
            float[] v = new float[h];
            Quantize.dequantizeRowScalar(v, 0, s.matrix(name, 1, h), 0);
            return v;
        }

        @Override
        public long sizeBytes() {
            long total = router.sizeBytes() + shared.sizeBytes();
            for (SwiGluFfn e : experts) {
                total += e.sizeBytes();
            }
            return total;
        }

        @Override
        public long activeBytes() {
            // experts of one layer all have the same shape
            return router.sizeBytes() + shared.sizeBytes() + (long) topK * experts[0].sizeBytes();
        }

        @Override
        public long packedBytes() {
            long total = router.packedBytes() + shared.packedBytes();
            for (SwiGluFfn e : experts) {
                total += e.packedBytes();
            }
            return total;
        }
    }

    final WeightMatrix tokenEmbedding; // (vocab, hidden)
    final Layer[] layers;
    final float[] outputNorm; // (hidden)
    final WeightMatrix output; // (vocab, hidden); the embedding itself when tied

    private Qwen2Weights(Qwen2Config c, TensorStore s, TensorNaming n, IntFunction<Ffn> ffnOfLayer) {
        tokenEmbedding = s.matrix(n.name(EMBED, 0), c.vocabSize(), c.hiddenSize());
        layers = new Layer[c.numHiddenLayers()];
        for (int l = 0; l < layers.length; l++) {
            layers[l] = new Layer(c, s, n, l, ffnOfLayer.apply(l));
        }
        outputNorm = s.vector(n.name(OUTPUT_NORM, 0), c.hiddenSize());
        output =
                c.tieWordEmbeddings()
                        ? tokenEmbedding
                        : s.matrix(n.name(OUTPUT, 0), c.vocabSize(), c.hiddenSize());
    }

    /**
     * Binds every tensor of {@code config} in {@code store}; each missing tensor, wrong shape or
     * unsupported dtype fails here, at load, with the tensor's name.
     */
    public static Qwen2Weights load(Qwen2Config config, TensorStore store, TensorNaming naming) {
        return new Qwen2Weights(
                config, store, naming,
                l -> SwiGluFfn.load(store, naming, GATE, UP, DOWN, l, config.intermediateSize(), config.hiddenSize()));
    }

    /**
     * Binds every tensor of a Qwen2-MoE model: MoE layers (per {@link Qwen2MoeConfig#isMoeLayer})
     * get router, experts and shared expert, the others a dense SwiGLU of {@code
     * intermediate_size}. A missing expert tensor or a wrong expert count fails here, named.
     */
    public static Qwen2Weights load(Qwen2MoeConfig config, TensorStore store, TensorNaming naming) {
        Qwen2Config dense = config.dense();
        return new Qwen2Weights(
                dense, store, naming,
                l -> config.isMoeLayer(l)
                        ? new MoeFfn(config, store, naming, l)
                        : SwiGluFfn.load(store, naming, GATE, UP, DOWN, l, dense.intermediateSize(), dense.hiddenSize()));
    }

    /**
     * Bytes of all weight matrices; for MoE layers every expert is counted (a token reads only
     * its top-k: {@link #activeMatrixBytes()}).
     */
    public long matrixBytes() {
        return matrixBytes(false);
    }

    /**
     * Bytes of weights one decoded token reads: {@link #matrixBytes()} with each MoE layer's
     * experts counted k times their size instead of all of them (the same for a dense model).
     */
    public long activeMatrixBytes() {
        return matrixBytes(true);
    }

    private long matrixBytes(boolean activeOnly) {
        long total = output.sizeBytes();
        for (Layer l : layers) {
            total += l.wq.sizeBytes() + l.wk.sizeBytes() + l.wv.sizeBytes() + l.wo.sizeBytes();
            total += activeOnly ? l.ffn.activeBytes() : l.ffn.sizeBytes();
        }
        return total;
    }

    /**
     * Heap bytes these matrices take when packed ({@link WeightMatrix#packOnHeap}), the tied
     * embedding once; 0 for matrices whose format stays mapped.
     */
    public long packedBytes() {
        long total = tokenEmbedding.packedBytes() + (output == tokenEmbedding ? 0 : output.packedBytes());
        for (Layer l : layers) {
            total += l.wq.packedBytes() + l.wk.packedBytes() + l.wv.packedBytes() + l.wo.packedBytes();
            total += l.ffn.packedBytes();
        }
        return total;
    }

    /**
     * Every matrix the forward pass multiplies by (the layers', the router's and experts', the LM
     * head), once each: what a kernel backend copies to its device at load.
     */
    public java.util.List<WeightMatrix> matrices() {
        java.util.List<WeightMatrix> out = new java.util.ArrayList<>();
        for (Layer l : layers) {
            java.util.Collections.addAll(out, l.wq, l.wk, l.wv, l.wo);
            if (l.ffn instanceof MoeFfn) {
                MoeFfn m = (MoeFfn) l.ffn;
                out.add(m.router);
                for (SwiGluFfn e : m.experts) {
                    java.util.Collections.addAll(out, e.gate, e.up, e.down);
                }
                java.util.Collections.addAll(out, m.shared.gate, m.shared.up, m.shared.down);
            } else {
                SwiGluFfn f = (SwiGluFfn) l.ffn;
                java.util.Collections.addAll(out, f.gate, f.up, f.down);
            }
        }
        out.add(output);
        return out;
    }

    /** Whether the kernels read the layer matrices from the heap (of the first layer's Q). */
    public boolean onHeap() {
        return layers[0].wq.isPacked();
    }

    /** The storage format of the layer matrices, e.g. {@code Q8_0} (of the first layer's Q). */
    public String weightFormat() {
        return layers[0].wq.dtype().toString();
    }
}
