/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.model;

import java.util.Arrays;

/**
 * The keys and values of one sequence, per layer laid out as {@code [position][kvDim]} floats
 * (RoPE already applied to the keys). It starts small and doubles up to {@code maxPositions},
 * so a short conversation does not reserve a 32K-token cache (24 MB per 1K tokens for 0.5B).
 * Owned by one thread at a time.
 */
public final class KvCache {

    private final int layers;
    private final int kvDim;
    private final int maxPositions;
    private float[][] keys; // (layer, capacity * kvDim)
    private float[][] values; // (layer, capacity * kvDim)
    private int capacity;
    private int length;

    public KvCache(int layers, int kvDim, int initialCapacity, int maxPositions) {
        this.layers = layers;
        this.kvDim = kvDim;
        this.maxPositions = maxPositions;
        this.capacity = Math.max(1, Math.min(initialCapacity, maxPositions));
        this.keys = new float[layers][capacity * kvDim];
        this.values = new float[layers][capacity * kvDim];
    }

    /** Positions filled so far: the next token goes to position {@code length()}. */
    public int length() {
        return length;
    }

    public int maxPositions() {
        return maxPositions;
    }

    public int capacity() {
        return capacity;
    }

    /** Forgets everything (the arrays are kept for reuse). */
    public void clear() {
        length = 0;
    }

    /** Drops positions {@code >= newLength}. */
    public void truncate(int newLength) {
        if (newLength < 0 || newLength > length) {
            throw new IllegalArgumentException("cannot truncate " + length + " positions to " + newLength);
        }
        length = newLength;
    }

    /**
     * Grows the arrays to hold {@code positions} positions (at most {@link #maxPositions()}) now,
     * so that filling them later does not grow the cache: the engine reserves a request's KV
     * bytes against its budget before the request runs.
     */
    public void ensureCapacity(int positions) {
        int wanted = Math.min(positions, maxPositions);
        if (wanted <= capacity) {
            return;
        }
        for (int l = 0; l < layers; l++) {
            keys[l] = Arrays.copyOf(keys[l], wanted * kvDim);
            values[l] = Arrays.copyOf(values[l], wanted * kvDim);
        }
        capacity = wanted;
    }

    /** Bytes a cache of {@code positions} positions holds, for {@code layers} layers of {@code kvDim}. */
    public static long bytesFor(int layers, int kvDim, int positions) {
        return 2L * layers * positions * kvDim * Float.BYTES;
    }

    /** Makes room for {@code extra} more positions, or fails naming the context limit. */
    void reserve(int extra) {
        long needed = (long) length + extra;
        if (needed > maxPositions) {
            throw new ContextOverflowException(length, extra, maxPositions);
        }
        if (needed <= capacity) {
            return;
        }
        int newCapacity = (int) Math.min(maxPositions, Math.max(needed, 2L * capacity));
        for (int l = 0; l < layers; l++) {
            keys[l] = Arrays.copyOf(keys[l], newCapacity * kvDim);
            values[l] = Arrays.copyOf(values[l], newCapacity * kvDim);
        }
        capacity = newCapacity;
    }

    void advance(int n) {
        length += n;
    }

    float[] keys(int layer) {
        return keys[layer];
    }

    float[] values(int layer) {
        return values[layer];
    }

    /** Bytes held by this cache. */
    public long sizeBytes() {
        return bytesFor(layers, kvDim, capacity);
    }
}
