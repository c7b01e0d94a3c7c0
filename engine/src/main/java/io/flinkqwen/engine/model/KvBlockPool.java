/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.model;

import io.flinkqwen.kernels.Attention;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * The KV blocks of every cache of one engine (or one model's callers): fixed-size blocks of
 * {@link #blockPositions()} positions, handed out and taken back with reference counts, and a
 * prefix index through which caches whose contexts start with the same tokens share those full
 * blocks.
 *
 * <p>Prefix index: a full block that a cache {@linkplain KvCache#publishFullBlocks() publishes}
 * is found by the ids of its positions and by the block before it (so by the whole prefix up to
 * its end: a block's keys and values depend on every token before it). A new cache {@linkplain
 * KvCache#adoptPrefix adopts} the longest chain of published blocks that its prompt starts with
 * and skips their prefill. Shared blocks are read-only: a cache about to write into a block that
 * another cache holds copies it first (copy-on-write), and one about to write into a published
 * block it alone holds takes it out of the index first. A block leaves the index when its last
 * holder lets it go, and goes back to the pool's free list.
 *
 * <p>Memory: {@link #bytesInUse()} counts every block some cache holds once, however many hold
 * it; that is what a KV budget bounds. Free blocks are kept for reuse up to {@link
 * #maxFreeBlocks} (so a steady state allocates nothing), beyond that left to the garbage
 * collector.
 *
 * <p>Not thread-safe: one thread at a time (the engine's scheduler, or the model's caller).
 */
public final class KvBlockPool {

    /** Positions per block unless the constructor says otherwise. */
    public static final int DEFAULT_BLOCK_POSITIONS = 16;

    /** The most positions a block may hold (attention's score scratch is this long). */
    public static final int MAX_BLOCK_POSITIONS = 64;

    private final int layers;
    private final int kvDim;
    private final KvFormat format;
    private final int blockPositions;
    private final int elements; // per block, keys or values
    private final long blockBytes;
    private final ArrayDeque<KvBlock> free = new ArrayDeque<>();
    private final Map<PrefixKey, KvBlock> index = new HashMap<>();
    private int maxFreeBlocks = Integer.MAX_VALUE;
    private int blocksInUse;
    private long nextSerial = 1;
    private long sharedHits;
    private long stamps;

    /**
     * @param layers model layers
     * @param kvDim {@code numKeyValueHeads * headDim}
     * @param headDim elements per head (Q8 needs it and {@code kvDim} in whole groups of 32)
     * @param format storage of keys and values
     * @param blockPositions positions per block, 1 to {@value #MAX_BLOCK_POSITIONS}
     */
    public KvBlockPool(int layers, int kvDim, int headDim, KvFormat format, int blockPositions) {
        if (blockPositions < 1 || blockPositions > MAX_BLOCK_POSITIONS) {
            throw new IllegalArgumentException(
                    "KV block size must be 1.." + MAX_BLOCK_POSITIONS + " positions, got " + blockPositions);
        }
        if (format == KvFormat.Q8 && (headDim % Attention.Q8_GROUP != 0 || kvDim % Attention.Q8_GROUP != 0)) {
            throw new IllegalArgumentException(
                    "KV cache type q8 needs a head size that is a multiple of " + Attention.Q8_GROUP
                            + " (one scale per 32 elements); this model's head size is " + headDim
                            + ": use --kv-type f16 or f32");
        }
        this.layers = layers;
        this.kvDim = kvDim;
        this.format = format;
        this.blockPositions = blockPositions;
        this.elements = layers * blockPositions * kvDim;
        this.blockBytes = 2 * format.bytes(elements);
    }

    public KvFormat format() {
        return format;
    }

    public int blockPositions() {
        return blockPositions;
    }

    public int layers() {
        return layers;
    }

    public int kvDim() {
        return kvDim;
    }

    /** Bytes of one block: keys and values of every layer. */
    public long blockBytes() {
        return blockBytes;
    }

    /** Blocks that {@code positions} positions need. */
    public int blocksFor(int positions) {
        return (positions + blockPositions - 1) / blockPositions;
    }

    /** Bytes of the blocks that {@code positions} positions need. */
    public long bytesFor(int positions) {
        return blocksFor(positions) * blockBytes;
    }

    /** Blocks held by at least one cache, each counted once. */
    public int blocksInUse() {
        return blocksInUse;
    }

    /** {@link #blocksInUse()} in bytes: the KV memory a budget bounds. */
    public long bytesInUse() {
        return blocksInUse * blockBytes;
    }

    /** Blocks in the prefix index now. */
    public int publishedBlocks() {
        return index.size();
    }

    /** Blocks adopted from the prefix index so far (each one a block of prefill skipped). */
    public long sharedHits() {
        return sharedHits;
    }

    /** Keeps at most this many free blocks for reuse (the rest are left to the garbage collector). */
    public void maxFreeBlocks(int max) {
        this.maxFreeBlocks = Math.max(0, max);
        while (free.size() > maxFreeBlocks) {
            free.pop();
        }
    }

    /** A block for one holder, from the free list or new; its contents are undefined. */
    KvBlock acquire() {
        KvBlock b = free.poll();
        if (b == null) {
            b = new KvBlock(format, elements);
        }
        b.refs = 1;
        b.serial = nextSerial++;
        blocksInUse++;
        return b;
    }

    /** One more holder of {@code b}. */
    void retain(KvBlock b) {
        if (b.refs <= 0) {
            throw new IllegalStateException("retaining a KV block that is free");
        }
        b.refs++;
    }

    /** One holder fewer; the last one returns the block to the pool (and takes it out of the index). */
    void release(KvBlock b) {
        if (b.refs <= 0) {
            throw new IllegalStateException("releasing a KV block that is already free");
        }
        if (--b.refs == 0) {
            unpublish(b);
            blocksInUse--;
            if (free.size() < maxFreeBlocks) {
                free.push(b);
            }
        }
    }

    /** A private copy of {@code shared} for a holder about to write into it; releases its hold on {@code shared}. */
    KvBlock copyOnWrite(KvBlock shared) {
        KvBlock copy = acquire();
        copy.copyFrom(shared);
        release(shared);
        return copy;
    }

    /** The published block after {@code parent} (null: the first block) holding {@code ids[off, off + blockPositions)}. */
    KvBlock lookup(KvBlock parent, int[] ids, int off) {
        return index.get(new PrefixKey(parent == null ? 0 : parent.serial, ids, off, blockPositions));
    }

    /**
     * Publishes {@code b}, the full block after {@code parent}, holding {@code ids[off, off +
     * blockPositions)}; returns the block the index holds for that key: {@code b}, or an equal
     * one published before (the caller then swaps to it and releases {@code b}).
     */
    KvBlock publish(KvBlock parent, KvBlock b, int[] ids, int off) {
        if (b.key != null) {
            return b;
        }
        PrefixKey key = new PrefixKey(parent == null ? 0 : parent.serial, ids, off, blockPositions);
        KvBlock existing = index.putIfAbsent(key, b);
        if (existing != null) {
            return existing;
        }
        b.key = key;
        return b;
    }

    /** Takes {@code b} out of the index (before it is written, or when it is freed). */
    void unpublish(KvBlock b) {
        if (b.key != null) {
            index.remove(b.key);
            b.key = null;
        }
    }

    /** A stamp no block carries yet, for {@link KvCache#markBlocks}. */
    public long newStamp() {
        return ++stamps;
    }

    /** How many full blocks at the start of {@code ids[0, n)} are published now (what {@link KvCache#adoptPrefix} would take). */
    public int publishedPrefixBlocks(int[] ids, int n) {
        KvBlock parent = null;
        int found = 0;
        while ((found + 1) * blockPositions <= n) {
            KvBlock b = lookup(parent, ids, found * blockPositions);
            if (b == null) {
                break;
            }
            parent = b;
            found++;
        }
        return found;
    }

    void countSharedHit() {
        sharedHits++;
    }

    /** A published block's identity: its parent's serial and its positions' token ids. */
    static final class PrefixKey {
        final long parent;
        final int[] ids;
        final int hash;

        PrefixKey(long parent, int[] ids, int off, int n) {
            this.parent = parent;
            this.ids = Arrays.copyOfRange(ids, off, off + n);
            this.hash = 31 * Long.hashCode(parent) + Arrays.hashCode(this.ids);
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof PrefixKey && ((PrefixKey) o).parent == parent && Arrays.equals(((PrefixKey) o).ids, ids);
        }

        @Override
        public int hashCode() {
            return hash;
        }
    }
}
