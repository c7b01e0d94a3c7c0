/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.model;

import static io.flinkqwen.engine.model.TensorNaming.Field.*;

import io.flinkqwen.engine.config.Qwen2Config;
import io.flinkqwen.engine.weights.TensorStore;
import io.flinkqwen.kernels.WeightMatrix;

/**
 * The weights of a dense Qwen2 model, immutable once loaded. Matrices are views of the mapped
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
        final WeightMatrix wGate; // (intermediate, hidden)
        final WeightMatrix wUp; // (intermediate, hidden)
        final WeightMatrix wDown; // (hidden, intermediate)

        Layer(Qwen2Config c, TensorStore s, TensorNaming n, int l) {
            int h = c.hiddenSize();
            int kv = c.kvDim();
            int ffn = c.intermediateSize();
            attnNorm = s.vector(n.name(ATTN_NORM, l), h);
            wq = s.matrix(n.name(Q, l), h, h);
            bq = s.vector(n.name(Q_BIAS, l), h);
            wk = s.matrix(n.name(K, l), kv, h);
            bk = s.vector(n.name(K_BIAS, l), kv);
            wv = s.matrix(n.name(V, l), kv, h);
            bv = s.vector(n.name(V_BIAS, l), kv);
            wo = s.matrix(n.name(O, l), h, h);
            ffnNorm = s.vector(n.name(FFN_NORM, l), h);
            wGate = s.matrix(n.name(GATE, l), ffn, h);
            wUp = s.matrix(n.name(UP, l), ffn, h);
            wDown = s.matrix(n.name(DOWN, l), h, ffn);
        }
    }

    final WeightMatrix tokenEmbedding; // (vocab, hidden)
    final Layer[] layers;
    final float[] outputNorm; // (hidden)
    final WeightMatrix output; // (vocab, hidden); the embedding itself when tied

    private Qwen2Weights(Qwen2Config c, TensorStore s, TensorNaming n) {
        tokenEmbedding = s.matrix(n.name(EMBED, 0), c.vocabSize(), c.hiddenSize());
        layers = new Layer[c.numHiddenLayers()];
        for (int l = 0; l < layers.length; l++) {
            layers[l] = new Layer(c, s, n, l);
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
        return new Qwen2Weights(config, store, naming);
    }

    /** Bytes of weights read per generated token (the decode roofline's numerator). */
    public long matrixBytes() {
        long total = output.sizeBytes();
        for (Layer l : layers) {
            total += l.wq.sizeBytes() + l.wk.sizeBytes() + l.wv.sizeBytes() + l.wo.sizeBytes();
            total += l.wGate.sizeBytes() + l.wUp.sizeBytes() + l.wDown.sizeBytes();
        }
        return total;
    }

    /** The storage format of the layer matrices, e.g. {@code Q8_0} (of the first layer's Q). */
    public String weightFormat() {
        return layers[0].wq.dtype().toString();
    }
}
