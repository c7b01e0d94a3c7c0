/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels.backend;

/**
 * A whole decode step on a device, the residual stream and one sequence's KV cache kept there
 * (made by {@link KernelBackend#residentDecoder}): per token, only the token's embedding row goes
 * in and the logits, plus that token's new keys and values, come out. The device KV cache holds
 * {@link #positions()} positions in F32, layout {@code (layer, position, kvDim)}.
 *
 * <p>The caller keeps its own (host) KV cache authoritative: it writes each step's {@code newKv}
 * into it, and {@link #upload}s the positions the device lacks (a prefill run elsewhere, or a
 * different sequence) before the next {@link #decode}. Not thread-safe: one caller at a time.
 */
public interface ResidentDecoder extends AutoCloseable {

    /** Positions the device KV cache holds: {@link #decode} takes positions below this. */
    int positions();

    /**
     * Copies the keys and values of positions {@code [from, from + count)} into the device cache,
     * position {@code from + t} of layer {@code l} at {@code keys[(l * count + t) * kvDim ..]}
     * (values alike), RoPE already applied to the keys.
     */
    void upload(int from, int count, float[] keys, float[] values);

    /**
     * One decode step at {@code position}, attending to positions {@code [0, position]} of the
     * device cache (earlier ones must be there: decoded or uploaded).
     *
     * @param embedding the token's embedding row, {@code hidden} floats
     * @param logits out: {@code vocab} floats
     * @param newKv out: the step's keys and values, layer {@code l}'s keys at {@code 2 * l *
     *     kvDim}, its values at {@code (2 * l + 1) * kvDim} ({@code 2 * layers * kvDim} floats)
     */
    void decode(float[] embedding, int position, float[] logits, float[] newKv);

    /** Device plan executions so far (uploads included): one per {@link #decode}. */
    long launches();

    /** Frees the device buffers and compiled plans. */
    @Override
    void close();
}
