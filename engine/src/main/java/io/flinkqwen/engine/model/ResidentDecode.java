/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.model;

import io.flinkqwen.engine.config.Qwen2Config;
import io.flinkqwen.kernels.Float16;
import io.flinkqwen.kernels.Quantize;
import io.flinkqwen.kernels.backend.DenseDecoderSpec;
import io.flinkqwen.kernels.backend.KernelBackend;
import io.flinkqwen.kernels.backend.ResidentDecoder;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Single-sequence decode of a dense model on a backend's {@link ResidentDecoder} (issue 7): one
 * device launch per token, the residual stream and a mirror of one sequence's KV cache on the
 * device. The host {@link KvCache} stays authoritative: each step's new keys and values are
 * written into it (in its format), and before a step the positions the device lacks (a prefill
 * run on the per-op path, another sequence's cache, a cache truncated since) are uploaded from it.
 * So every other path (prefill, batched decode, scoring) reads the same cache as before.
 *
 * <p>The device cache is F32 whatever the host format; it starts at {@value #POSITIONS_PROPERTY}
 * positions (default {@value #DEFAULT_POSITIONS}, at most the context length) and doubles, with a
 * new decoder and a full upload, when a sequence outgrows it.
 */
final class ResidentDecode {

    /** System property: {@code false} keeps decode on the per-op path (default {@code true}). */
    static final String ENABLED_PROPERTY = "flinkqwen.resident";

    /** System property: the device KV cache's first size in positions. */
    static final String POSITIONS_PROPERTY = "flinkqwen.resident.positions";

    static final int DEFAULT_POSITIONS = 1024;

    private static final System.Logger LOG = System.getLogger(ResidentDecode.class.getName());

    /** Positions read from the host cache per upload call (bounds the staging arrays). */
    private static final int UPLOAD_CHUNK = 256;

    private final Qwen2Config config;
    private final KernelBackend backend;
    private final DenseDecoderSpec spec;
    private final Qwen2Weights weights;
    private final float[] embedding;
    private final float[] newKv;
    private ResidentDecoder decoder;
    private KvCache bound; // the cache whose positions [0, deviceLength) the device holds
    private int boundTruncations;
    private int deviceLength;
    private long steps;

    private ResidentDecode(Qwen2Config config, Qwen2Weights weights, KernelBackend backend, DenseDecoderSpec spec) {
        this.config = config;
        this.weights = weights;
        this.backend = backend;
        this.spec = spec;
        this.embedding = new float[config.hiddenSize()];
        this.newKv = new float[2 * config.numHiddenLayers() * config.kvDim()];
    }

    /**
     * A resident decode helper for a dense model on a device backend, or null where it cannot
     * apply (the CPU backend, a MoE layer, or {@value #ENABLED_PROPERTY} = false). Whether the
     * backend has a resident decoder for these weights is known only at the first step.
     */
    static ResidentDecode forModel(
            Qwen2Config config, Qwen2Weights weights, KernelBackend backend, float[] ropeCos, float[] ropeSin) {
        if (!Boolean.parseBoolean(System.getProperty(ENABLED_PROPERTY, "true")) || backend.name().equals("cpu")) {
            return null;
        }
        List<DenseDecoderSpec.Layer> layers = new ArrayList<>();
        for (Qwen2Weights.Layer l : weights.layers) {
            if (!(l.ffn instanceof Qwen2Weights.SwiGluFfn)) {
                return null;
            }
            Qwen2Weights.SwiGluFfn f = (Qwen2Weights.SwiGluFfn) l.ffn;
            layers.add(new DenseDecoderSpec.Layer(
                    l.attnNorm, l.wq, l.wk, l.wv, l.bq, l.bk, l.bv, l.wo, l.ffnNorm, f.gate, f.up, f.down));
        }
        DenseDecoderSpec spec = new DenseDecoderSpec(config.hiddenSize(), config.numAttentionHeads(),
                config.numKeyValueHeads(), config.headDim(), config.intermediateSize(), config.vocabSize(),
                (float) config.rmsNormEps(), ropeCos, ropeSin, layers, weights.outputNorm, weights.output);
        return new ResidentDecode(config, weights, backend, spec);
    }

    /** Frees the device decoder, if one was made. */
    void close() {
        if (decoder != null) {
            decoder.close();
            decoder = null;
        }
    }

    /** Tokens decoded on the device so far. */
    long steps() {
        return steps;
    }

    /**
     * Runs {@code token} at position {@code cache.length()} (already reserved) on the device and
     * writes its logits to {@code logits} and its keys and values into {@code cache}; the caller
     * appends the token. False, with nothing changed, where the backend has no resident decoder
     * for this model: the caller runs the per-op path, and should drop this helper.
     */
    boolean decode(KvCache cache, int token, int tokenIndex, float[] logits) {
        if (token < 0 || token >= config.vocabSize()) {
            throw new IllegalArgumentException("token id " + token + " at index " + tokenIndex
                    + " is outside the vocabulary [0, " + config.vocabSize() + ")");
        }
        int pos = cache.length();
        if (decoder == null || pos >= decoder.positions()) {
            int cap = Integer.getInteger(POSITIONS_PROPERTY, DEFAULT_POSITIONS);
            cap = Math.max(1, cap);
            while (cap <= pos && cap < config.maxPositionEmbeddings()) {
                cap = (int) Math.min((long) cap * 2, config.maxPositionEmbeddings());
            }
            cap = Math.min(cap, config.maxPositionEmbeddings());
            if (decoder != null) {
                decoder.close();
                decoder = null;
            }
            Optional<ResidentDecoder> d;
            try {
                d = backend.residentDecoder(spec, cap);
            } catch (RuntimeException e) {
                // a device limit met while building the plans (memory, a compiler's limits):
                // decode goes on per op, and the log says why
                LOG.log(System.Logger.Level.WARNING, "resident decode unavailable on " + backend.name()
                        + " (" + cap + " positions), decoding per op: " + e, e);
                return false;
            }
            if (d.isEmpty()) {
                return false;
            }
            decoder = d.get();
            bound = null;
        }
        if (cache != bound || cache.truncations() != boundTruncations) {
            bound = cache;
            boundTruncations = cache.truncations();
            deviceLength = 0;
        }
        if (deviceLength < pos) {
            upload(cache, deviceLength, pos);
        }
        Quantize.dequantizeRow(embedding, 0, weights.tokenEmbedding, token);
        decoder.decode(embedding, pos, logits, newKv);
        store(cache, pos);
        deviceLength = pos + 1;
        steps++;
        return true;
    }

    /** Uploads positions {@code [from, to)} of {@code cache} to the device, dequantized to F32. */
    private void upload(KvCache cache, int from, int to) {
        int layers = config.numHiddenLayers();
        int kvDim = config.kvDim();
        int chunk = Math.min(UPLOAD_CHUNK, to - from);
        float[] keys = new float[layers * chunk * kvDim];
        float[] values = new float[layers * chunk * kvDim];
        int bp = cache.pool().blockPositions();
        KvFormat format = cache.pool().format();
        for (int p0 = from; p0 < to; p0 += chunk) {
            int n = Math.min(chunk, to - p0);
            for (int l = 0; l < layers; l++) {
                for (int t = 0; t < n; t++) {
                    int pos = p0 + t;
                    KvBlock b = cache.block(pos / bp);
                    int src = (l * bp + pos % bp) * kvDim;
                    int dst = (l * n + t) * kvDim;
                    if (format == KvFormat.F32) {
                        System.arraycopy(b.keysF32, src, keys, dst, kvDim);
                        System.arraycopy(b.valuesF32, src, values, dst, kvDim);
                    } else if (format == KvFormat.F16) {
                        for (int i = 0; i < kvDim; i++) {
                            keys[dst + i] = Float16.toFloat(b.keysF16[src + i]);
                            values[dst + i] = Float16.toFloat(b.valuesF16[src + i]);
                        }
                    } else {
                        for (int i = 0; i < kvDim; i++) {
                            keys[dst + i] = b.keysQ8[src + i] * b.keyScales[(src + i) / 32];
                            values[dst + i] = b.valuesQ8[src + i] * b.valueScales[(src + i) / 32];
                        }
                    }
                }
            }
            decoder.upload(p0, n, keys, values);
        }
    }

    /** Writes the step's keys and values ({@link #newKv}) at {@code position} of {@code cache}, in its format. */
    private void store(KvCache cache, int position) {
        int kvDim = config.kvDim();
        int bp = cache.pool().blockPositions();
        KvBlock b = cache.block(position / bp);
        for (int l = 0; l < config.numHiddenLayers(); l++) {
            int k = 2 * l * kvDim;
            b.store((l * bp + position % bp) * kvDim, newKv, k, newKv, k + kvDim, kvDim);
        }
    }
}
