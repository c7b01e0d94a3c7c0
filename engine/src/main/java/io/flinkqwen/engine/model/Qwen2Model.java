/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.model;

import io.flinkqwen.engine.config.Qwen2Config;
import io.flinkqwen.engine.config.Qwen2MoeConfig;
import io.flinkqwen.kernels.Attention;
import io.flinkqwen.kernels.KernelPool;
import io.flinkqwen.kernels.Quantize;
import io.flinkqwen.kernels.RmsNorm;
import io.flinkqwen.kernels.Rope;
import io.flinkqwen.kernels.VectorOps;
import io.flinkqwen.kernels.backend.KernelBackend;
import io.flinkqwen.kernels.backend.KernelBackends;
import io.flinkqwen.kernels.backend.KernelOp;

/**
 * The Qwen2 and Qwen2-MoE forward pass, in the paper's order: embed, then per layer {RMSNorm,
 * Q/K/V with bias, NeoX RoPE, KV cache, grouped-query attention, output projection, residual,
 * RMSNorm, SwiGLU FFN or MoE block, residual}, then RMSNorm and the LM head. The two models
 * differ only in the FFN of MoE layers ({@link MoeBlock}).
 *
 * <p>Prefill and decode are the same code with a token count: {@code n} tokens of one sequence
 * go through each matrix together, so every weight row is read once per chunk of up to {@link
 * #maxChunkTokens()} tokens.
 *
 * <p>Matrix products, norms, SwiGLU, residual adds and the MoE router go through a {@link
 * KernelBackend} (the {@code flinkqwen.device} system property's, CPU by default; ops it does not
 * support run on the CPU); RoPE, biases, the KV cache and attention run on the CPU kernels. Where
 * the backend offers a {@link io.flinkqwen.kernels.backend.ResidentDecoder} (dense models), a
 * single-token {@link #forward} is instead one device launch per group of up to 16 layers ({@link
 * ResidentDecode}).
 *
 * <p>Not thread-safe: one caller at a time (the activations below are reused across calls so
 * that the per-token path does not allocate). Matrix products use all threads of the pool.
 */
public final class Qwen2Model {

    private final Qwen2Config config;
    private final Qwen2Weights weights;
    private final KernelPool pool;
    private final KernelBackend ops; // with CPU fallback per op
    private final int maxChunk;

    // RoPE tables, (position, headDim / 2).
    private final float[] ropeCos;
    private final float[] ropeSin;

    // Activations for up to maxChunk tokens, row-major (token, width).
    private final float[] x; // residual stream (n, hidden)
    private final float[] xb; // normed input (n, hidden)
    private final float[] q; // (n, hidden)
    private final float[] k; // (n, kvDim)
    private final float[] v; // (n, kvDim)
    private final float[][] qkv; // {q, k, v}
    // which sequence and position each activation row belongs to: one cache and consecutive
    // positions for a prefill chunk, one row per sequence for a batched decode step
    private final KvCache[] rowCache;
    private final int[] rowPos;
    private final float[] att; // attention output (n, hidden)
    private final float[] proj; // o / down projection output (n, hidden)
    private final float[] gate; // (n, intermediate)
    private final float[] up; // (n, intermediate)
    private final float[] logits; // (vocab), last token
    private float[] batchLogits = new float[0]; // (sequences, vocab), forwardBatch
    private final float[][] scores; // per worker: one tile's scores (at most a block's positions)
    private final float[][] softmaxState; // per worker: (running max, running sum) per query head of a unit
    private final float[][] kvScratch; // per worker: one F16/Q8 tile's keys and values as floats
    private final KvFormat kvFormat;
    private final KvBlockPool defaultPool; // newCache(int)'s blocks
    private final AttentionTask attentionTask = new AttentionTask();
    private final MoeBlock moe; // null for a dense model
    private ResidentDecode resident; // single-sequence decode on the device; null: per-op path

    /** The most rows of a prefill chunk that read each KV tile together. */
    static final int MAX_ROWS_PER_UNIT = 16;

    /** With the KV cache format {@link KvFormat#fromSystemProperty()} names. */
    public Qwen2Model(Qwen2Config config, Qwen2Weights weights, KernelPool pool, int maxChunkTokens) {
        this(config, weights, pool, maxChunkTokens, null, KernelBackends.fromSystemProperty(), KvFormat.fromSystemProperty());
    }

    /** A Qwen2-MoE forward pass: the same blocks, with {@link MoeBlock} as the FFN of MoE layers. */
    public Qwen2Model(Qwen2MoeConfig config, Qwen2Weights weights, KernelPool pool, int maxChunkTokens) {
        this(config.dense(), weights, pool, maxChunkTokens, config, KernelBackends.fromSystemProperty(),
                KvFormat.fromSystemProperty());
    }

    /** On {@code backend}, with the KV cache format {@link KvFormat#fromSystemProperty()} names. */
    public Qwen2Model(
            Qwen2Config config, Qwen2Weights weights, KernelPool pool, int maxChunkTokens, Qwen2MoeConfig moeConfig,
            KernelBackend backend) {
        this(config, weights, pool, maxChunkTokens, moeConfig, backend, KvFormat.fromSystemProperty());
    }

    /** On the backend {@link KernelBackends#fromSystemProperty()} names, KV caches stored as {@code kvFormat}. */
    public Qwen2Model(
            Qwen2Config config, Qwen2Weights weights, KernelPool pool, int maxChunkTokens, Qwen2MoeConfig moeConfig,
            KvFormat kvFormat) {
        this(config, weights, pool, maxChunkTokens, moeConfig, KernelBackends.fromSystemProperty(), kvFormat);
    }

    /**
     * A forward pass on the kernel backend {@code backend} (ops it does not support run on the
     * CPU), which gets the weights once, here.
     *
     * @param moeConfig null for a dense model
     * @param kvFormat how {@link #newCache} and {@link #newPool} store keys and values
     */
    public Qwen2Model(
            Qwen2Config config, Qwen2Weights weights, KernelPool pool, int maxChunkTokens, Qwen2MoeConfig moeConfig,
            KernelBackend backend, KvFormat kvFormat) {
        if (moeConfig != null && !moeConfig.dense().equals(config)) {
            throw new IllegalArgumentException("config is not the dense part of moeConfig");
        }
        this.config = config;
        this.weights = weights;
        this.pool = pool;
        this.ops = KernelBackends.withCpuFallback(backend);
        this.maxChunk = Math.max(1, maxChunkTokens);
        int h = config.hiddenSize();
        int kv = config.kvDim();
        int ffn = config.intermediateSize();
        int half = config.headDim() / 2;
        this.ropeCos = new float[config.maxPositionEmbeddings() * half];
        this.ropeSin = new float[config.maxPositionEmbeddings() * half];
        // plain RoPE, or YaRN's scaled frequencies and magnitude (rope_scaling)
        config.ropeScaling()
                .ropeTable(ropeCos, ropeSin, config.maxPositionEmbeddings(), config.headDim(), config.ropeTheta());
        x = new float[maxChunk * h];
        xb = new float[maxChunk * h];
        q = new float[maxChunk * h];
        k = new float[maxChunk * kv];
        v = new float[maxChunk * kv];
        qkv = new float[][] {q, k, v};
        rowCache = new KvCache[maxChunk];
        rowPos = new int[maxChunk];
        att = new float[maxChunk * h];
        proj = new float[maxChunk * h];
        gate = new float[maxChunk * ffn];
        up = new float[maxChunk * ffn];
        logits = new float[config.vocabSize()];
        scores = new float[pool.threads()][KvBlockPool.MAX_BLOCK_POSITIONS];
        softmaxState = new float[pool.threads()][2 * config.kvGroups() * MAX_ROWS_PER_UNIT];
        kvScratch = new float[pool.threads()][Attention.kvScratchFloats(KvBlockPool.MAX_BLOCK_POSITIONS, config.headDim())];
        this.kvFormat = kvFormat;
        this.defaultPool = newPool();
        moe = moeConfig == null ? null : new MoeBlock(moeConfig, ops, pool, maxChunk);
        for (int l = 0; l < weights.layers.length; l++) {
            if (weights.layers[l].ffn instanceof Qwen2Weights.MoeFfn && moe == null) {
                throw new IllegalArgumentException(
                        "layer " + l + " has MoE weights: construct the model with its Qwen2MoeConfig");
            }
        }
        ops.prepare(weights.matrices());
        resident = moe == null ? ResidentDecode.forModel(config, weights, ops, ropeCos, ropeSin) : null;
    }

    /**
     * Whether single-token {@link #forward} calls may run as one device launch on the backend's
     * resident decoder (where it has one; on by default, off with {@code -Dflinkqwen.resident=false}).
     * For tests and benchmarks that compare it with the per-op path.
     */
    void residentDecode(boolean on) {
        if (resident != null) {
            resident.close();
        }
        resident = on && moe == null ? ResidentDecode.forModel(config, weights, ops, ropeCos, ropeSin) : null;
    }

    /** Single-token {@link #forward} calls run on the resident decoder so far, since the last {@link #residentDecode} (tests). */
    long residentSteps() {
        return resident == null ? 0 : resident.steps();
    }

    /** The kernel backend this model runs on (with CPU fallback per op). */
    public KernelBackend backend() {
        return ops;
    }

    public Qwen2Config config() {
        return config;
    }

    public Qwen2Weights weights() {
        return weights;
    }

    public int maxChunkTokens() {
        return maxChunk;
    }

    /**
     * A fresh KV cache for one sequence, growing as needed up to the context length, with blocks
     * from this model's own pool (the model's caller's thread owns it, as it owns the model).
     */
    public KvCache newCache(int initialCapacity) {
        return new KvCache(defaultPool, initialCapacity, config.maxPositionEmbeddings());
    }

    /** A new, empty block pool of this model's shape and KV format (one per engine). */
    public KvBlockPool newPool() {
        return new KvBlockPool(
                config.numHiddenLayers(), config.kvDim(), config.headDim(), kvFormat, KvBlockPool.DEFAULT_BLOCK_POSITIONS);
    }

    /** How {@link #newCache} and {@link #newPool} store keys and values. */
    public KvFormat kvFormat() {
        return kvFormat;
    }

    /**
     * Runs {@code tokens[off, off+len)} at the next positions of {@code cache} and returns the
     * logits after the last of them.
     *
     * @return a buffer of {@code vocabSize} logits owned by this model, valid until the next call
     * @throws ContextOverflowException if the tokens do not fit the context
     * @throws IllegalArgumentException if a token id is outside the vocabulary
     */
    public float[] forward(KvCache cache, int[] tokens, int off, int len) {
        if (len <= 0) {
            throw new IllegalArgumentException("forward needs at least one token");
        }
        checkShape(cache);
        cache.reserve(len);
        if (len == 1 && resident != null) {
            // decode on the device in one launch; the per-op path where the backend has none
            if (resident.decode(cache, tokens[off], off, logits)) {
                cache.append(tokens, off, 1);
                return logits;
            }
            resident = null;
        }
        startCall();
        for (int start = 0; start < len; start += maxChunk) {
            int n = Math.min(maxChunk, len - start);
            chunk(cache, tokens, off + start, n);
        }
        return logits;
    }

    /**
     * One decode step for several sequences at once: token {@code tokens[i]} goes to the next
     * position of {@code caches[i]}, and every weight matrix (the LM head included) is read once
     * for all of them. This is where batching pays: decode reads all weights per step, whatever
     * the number of sequences.
     *
     * @param count sequences in this step, at most {@link #maxChunkTokens()}; the caches must be
     *     distinct
     * @return logits, row {@code i} at {@code [i * vocabSize, (i + 1) * vocabSize)}, in a buffer
     *     owned by this model and valid until the next call
     * @throws ContextOverflowException if a sequence's context is full (no cache is changed then)
     */
    public float[] forwardBatch(KvCache[] caches, int[] tokens, int count) {
        if (count <= 0 || count > maxChunk) {
            throw new IllegalArgumentException("a batch holds 1.." + maxChunk + " sequences, got " + count);
        }
        for (int i = 0; i < count; i++) {
            for (int j = 0; j < i; j++) {
                if (caches[i] == caches[j]) {
                    throw new IllegalArgumentException("sequences " + j + " and " + i + " of a batch share one KV cache");
                }
            }
        }
        for (int i = 0; i < count; i++) {
            checkShape(caches[i]);
            if (caches[i].length() >= caches[i].maxPositions()) {
                throw new ContextOverflowException(caches[i].length(), 1, caches[i].maxPositions());
            }
        }
        for (int i = 0; i < count; i++) {
            caches[i].reserve(1);
        }
        startCall();
        for (int i = 0; i < count; i++) {
            rowCache[i] = caches[i];
            rowPos[i] = caches[i].length();
        }
        layers(tokens, 0, count);
        for (int i = 0; i < count; i++) {
            caches[i].append(tokens[i]);
            rowCache[i] = null;
        }
        int h = config.hiddenSize();
        ops.rmsNorm(xb, x, weights.outputNorm, h, count, (float) config.rmsNormEps());
        if (batchLogits.length < count * config.vocabSize()) {
            batchLogits = new float[count * config.vocabSize()];
        }
        ops.matMul(pool, batchLogits, weights.output, xb, count);
        return batchLogits;
    }

    /**
     * Teacher-forced scoring: the logits after every token of {@code tokens}, row by row.
     * Allocates its result; for tests and the {@code score} command, not the serving path.
     */
    public float[][] forwardAllLogits(KvCache cache, int[] tokens) {
        float[][] all = new float[tokens.length][];
        checkShape(cache);
        cache.reserve(tokens.length);
        startCall();
        for (int start = 0; start < tokens.length; start += maxChunk) {
            int n = Math.min(maxChunk, tokens.length - start);
            float[] chunkLogits = chunkAllLogits(cache, tokens, start, n);
            for (int t = 0; t < n; t++) {
                all[start + t] = java.util.Arrays.copyOfRange(chunkLogits, t * config.vocabSize(), (t + 1) * config.vocabSize());
            }
        }
        return all;
    }

    /**
     * The router statistics of a MoE model (tokens per expert per layer, last call and
     * cumulative), or empty for a dense model.
     */
    public java.util.Optional<RouterStats> routerStats() {
        return moe == null ? java.util.Optional.empty() : java.util.Optional.of(moe.stats());
    }

    private void startCall() {
        if (moe != null) {
            moe.stats().startCall();
        }
    }

    private void chunk(KvCache cache, int[] tokens, int off, int n) {
        layersOf(cache, tokens, off, n);
        // final norm and LM head, last token only
        int h = config.hiddenSize();
        RmsNorm.rmsNorm(xb, 0, x, (n - 1) * h, weights.outputNorm, h, (float) config.rmsNormEps());
        ops.matMul(pool, logits, weights.output, xb, 1);
    }

    private float[] chunkAllLogits(KvCache cache, int[] tokens, int off, int n) {
        layersOf(cache, tokens, off, n);
        int h = config.hiddenSize();
        ops.rmsNorm(xb, x, weights.outputNorm, h, n, (float) config.rmsNormEps());
        float[] out = new float[n * config.vocabSize()];
        ops.matMul(pool, out, weights.output, xb, n);
        return out;
    }

    /** Embeds {@code n} tokens of one sequence and runs every layer; the residual stream ends in {@link #x}. */
    private void layersOf(KvCache cache, int[] tokens, int off, int n) {
        int pos0 = cache.length();
        for (int t = 0; t < n; t++) {
            rowCache[t] = cache;
            rowPos[t] = pos0 + t;
        }
        try {
            layers(tokens, off, n);
        } finally {
            java.util.Arrays.fill(rowCache, 0, n, null);
        }
        cache.append(tokens, off, n);
    }

    /** Embeds {@code n} rows (sequence and position given by rowCache/rowPos) and runs every layer. */
    private void layers(int[] tokens, int off, int n) {
        int h = config.hiddenSize();
        // embed
        for (int t = 0; t < n; t++) {
            int id = tokens[off + t];
            if (id < 0 || id >= config.vocabSize()) {
                throw new IllegalArgumentException(
                        "token id " + id + " at index " + (off + t) + " is outside the vocabulary [0, "
                                + config.vocabSize() + ")");
            }
            Quantize.dequantizeRow(x, t * h, weights.tokenEmbedding, id);
        }
        if (moe != null) {
            moe.stats().startChunk(n);
        }
        for (int l = 0; l < weights.layers.length; l++) {
            Qwen2Weights.Layer layer = weights.layers[l];
            attentionBlock(layer, l, n);
            ffnBlock(layer, l, n);
        }
    }

    private void attentionBlock(Qwen2Weights.Layer w, int l, int n) {
        int h = config.hiddenSize();
        int kvDim = config.kvDim();
        int headDim = config.headDim();
        float eps = (float) config.rmsNormEps();
        // rmsnorm
        ops.rmsNorm(xb, x, w.attnNorm, h, n, eps);
        // q, k, v projections, each with its bias (Qwen2 keeps biases on q/k/v only)
        ops.matMulMany(pool, qkv, w.qkv, xb, n); // one hand-off to the pool for all three
        for (int t = 0; t < n; t++) {
            VectorOps.addInPlace(q, t * h, w.bq, 0, h);
            VectorOps.addInPlace(k, t * kvDim, w.bk, 0, kvDim);
            VectorOps.addInPlace(v, t * kvDim, w.bv, 0, kvDim);
        }
        // rope: NeoX half-split rotation (llama.cpp LLAMA_ROPE_TYPE_NEOX for qwen2)
        int half = headDim / 2;
        for (int t = 0; t < n; t++) {
            int table = rowPos[t] * half;
            Rope.ropeNeox(q, t * h, config.numAttentionHeads(), headDim, ropeCos, ropeSin, table);
            Rope.ropeNeox(k, t * kvDim, config.numKeyValueHeads(), headDim, ropeCos, ropeSin, table);
        }
        // cache: each row's key and value go to its sequence's cache at its position, in the
        // cache's format
        for (int t = 0; t < n; t++) {
            storeKv(rowCache[t], l, rowPos[t], t * kvDim);
        }
        // attention: row t (position p of its sequence) sees positions 0 .. p of that sequence
        // (causal); query head hd reads KV head hd / kvGroups (grouped-query attention). A work
        // unit is a run of rows and a run of query heads of one group, which read each KV tile
        // together; groups are split only where rows x KV heads leave threads idle. Rows share a
        // unit only in a prefill chunk (one sequence, consecutive positions).
        int groups = config.kvGroups();
        int perUnit = groups;
        while (perUnit > 1 && (long) n * (config.numAttentionHeads() / perUnit) < pool.threads()) {
            do {
                perUnit--;
            } while (groups % perUnit != 0);
        }
        int headUnits = config.numAttentionHeads() / perUnit;
        int rowsPerUnit = 1;
        if (oneSequence(n)) {
            // as many rows per unit as leave each thread about four units
            rowsPerUnit = MAX_ROWS_PER_UNIT;
            while (rowsPerUnit > 1
                    && (long) ceilDiv(n, rowsPerUnit) * headUnits < Math.min(4L * pool.threads(), (long) n * headUnits)) {
                rowsPerUnit /= 2;
            }
        }
        attentionTask.layer = l;
        attentionTask.headsPerUnit = perUnit;
        attentionTask.rowsPerUnit = rowsPerUnit;
        attentionTask.rows = n;
        pool.parallelFor(ceilDiv(n, rowsPerUnit) * headUnits, attentionTask);
        // output projection, residual
        ops.matMul(pool, proj, w.wo, att, n);
        ops.addInPlace(x, proj, n * h);
    }

    private void ffnBlock(Qwen2Weights.Layer w, int l, int n) {
        int h = config.hiddenSize();
        if (w.ffn instanceof Qwen2Weights.SwiGluFfn
                && ops.supports(KernelOp.FFN_BLOCK, ((Qwen2Weights.SwiGluFfn) w.ffn).gate.dtype())) {
            // the whole block as one op where the backend fuses it (activations stay on its device)
            Qwen2Weights.SwiGluFfn f = (Qwen2Weights.SwiGluFfn) w.ffn;
            ops.ffnBlock(pool, x, w.ffnNorm, (float) config.rmsNormEps(), f.gate, f.up, f.down, n);
            return;
        }
        // rmsnorm
        ops.rmsNorm(xb, x, w.ffnNorm, h, n, (float) config.rmsNormEps());
        // SwiGLU FFN: down(silu(gate(x)) * up(x)), or the MoE block on MoE layers
        if (w.ffn instanceof Qwen2Weights.MoeFfn) {
            moe.forward((Qwen2Weights.MoeFfn) w.ffn, l, proj, xb, n);
        } else {
            FeedForward.swiGlu(ops, pool, (Qwen2Weights.SwiGluFfn) w.ffn, proj, xb, n, gate, up);
        }
        // residual
        ops.addInPlace(x, proj, n * h);
    }

    /**
     * The attention of every (run of rows, run of query heads of one group) unit of a layer,
     * split over the pool: one object per model, reused so that a layer does not allocate a
     * capturing lambda (issue 3). Reads the model's fields; its own fields are published to the
     * workers by the pool's hand-off.
     */
    private final class AttentionTask implements KernelPool.RangeTask {
        int layer;
        int headsPerUnit;
        int rowsPerUnit;
        int rows;

        @Override
        public void run(int start, int end, int worker) {
            int headDim = config.headDim();
            int groups = config.kvGroups();
            int headUnits = config.numAttentionHeads() / headsPerUnit;
            float scale = (float) (1.0 / Math.sqrt(headDim));
            // row blocks in zig-zag order (0, last, 1, last - 1, ...): a causal row block's cost
            // grows with its position, so contiguous ranges of units would give the last worker
            // the longest rows (measured: the worker thread spent 6% of a MoE prefill in
            // attention, the caller 1.5%); each unit's result does not depend on who runs it
            int rowBlocks = ceilDiv(rows, rowsPerUnit);
            for (int i = start; i < end; i++) {
                int u = i / headUnits;
                int rb = (u & 1) == 0 ? u >> 1 : rowBlocks - 1 - (u >> 1);
                int t0 = rb * rowsPerUnit;
                int first = (i % headUnits) * headsPerUnit;
                attend(rowCache[t0], layer, first / groups, t0, Math.min(rowsPerUnit, rows - t0), first, headsPerUnit,
                        scale, worker);
            }
        }
    }

    /** Whether rows {@code [0, n)} are one sequence at consecutive positions (a prefill chunk). */
    private boolean oneSequence(int n) {
        for (int t = 1; t < n; t++) {
            if (rowCache[t] != rowCache[0] || rowPos[t] != rowPos[0] + t) {
                return false;
            }
        }
        return true;
    }

    private static int ceilDiv(int a, int b) {
        return (a + b - 1) / b;
    }

    /**
     * Attention of query heads {@code [first, first + nHeads)} of rows {@code [t0, t0 + nRows)}
     * (activations at {@code q}, output at {@code att}), rows of one sequence at consecutive
     * positions, each over the positions up to its own of KV head {@code kvHead} of layer {@code
     * l}: one block at a time with an online softmax, each block read once for all rows and heads
     * of the unit. The scratch is one block's scores and decoded keys and values, whatever the
     * context length.
     */
    private void attend(KvCache cache, int l, int kvHead, int t0, int nRows, int first, int nHeads, float scale,
            int worker) {
        int h = config.hiddenSize();
        int headDim = config.headDim();
        int kvDim = config.kvDim();
        KvBlockPool kvPool = cache.pool();
        int bp = kvPool.blockPositions();
        int kvOff = l * bp * kvDim + kvHead * headDim;
        int o = t0 * h + first * headDim;
        float[] sc = scores[worker];
        float[] st = softmaxState[worker];
        float[] kv = kvScratch[worker];
        for (int r = 0; r < nRows; r++) {
            Attention.begin(att, o + r * h, st, 2 * r * nHeads, nHeads, headDim);
        }
        int visible = rowPos[t0] + 1; // positions row t0 sees; row t0 + r sees r more
        int visibleLast = visible + nRows - 1;
        KvFormat format = kvPool.format();
        for (int b = 0, p0 = 0; p0 < visibleLast; b++, p0 += bp) {
            KvBlock blk = cache.block(b);
            int n = Math.min(bp, visibleLast - p0);
            int visible0 = visible - p0;
            if (format == KvFormat.F32) {
                Attention.tileRowsF32(att, o, st, 0, q, o, h, nRows, visible0, nHeads, headDim, blk.keysF32,
                        blk.valuesF32, kvOff, kvDim, n, scale, sc);
            } else if (format == KvFormat.F16) {
                Attention.tileRowsF16(att, o, st, 0, q, o, h, nRows, visible0, nHeads, headDim, blk.keysF16,
                        blk.valuesF16, kvOff, kvDim, n, scale, sc, kv);
            } else {
                Attention.tileRowsQ8(att, o, st, 0, q, o, h, nRows, visible0, nHeads, headDim, blk.keysQ8, blk.keyScales,
                        blk.valuesQ8, blk.valueScales, kvOff, kvDim, n, scale, sc, kv);
            }
        }
        for (int r = 0; r < nRows; r++) {
            Attention.finish(att, o + r * h, st, 2 * r * nHeads, nHeads, headDim);
        }
    }

    /** Stores row {@code kOff} of {@link #k} and {@link #v} at {@code position} of layer {@code l} of {@code cache}. */
    private void storeKv(KvCache cache, int l, int position, int kOff) {
        int kvDim = config.kvDim();
        int bp = cache.pool().blockPositions();
        KvBlock blk = cache.block(position / bp);
        blk.store((l * bp + position % bp) * kvDim, k, kOff, v, kOff, kvDim);
    }

    private void checkShape(KvCache cache) {
        KvBlockPool p = cache.pool();
        if (p.layers() != config.numHiddenLayers() || p.kvDim() != config.kvDim()) {
            throw new IllegalArgumentException(
                    "KV cache of " + p.layers() + " layers x " + p.kvDim() + " does not fit this model ("
                            + config.numHiddenLayers() + " layers x " + config.kvDim() + ")");
        }
    }
}
