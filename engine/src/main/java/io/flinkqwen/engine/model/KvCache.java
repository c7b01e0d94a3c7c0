/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.model;

import java.util.Arrays;

/**
 * The keys and values of one sequence (RoPE already applied to the keys), as a table of blocks
 * from a {@link KvBlockPool}: position {@code p} lives in block {@code p / blockPositions}. It
 * takes blocks as it grows, up to {@code maxPositions}, so a short conversation does not reserve
 * a 32K-token cache; blocks that start the same as another cache's may be shared with it
 * ({@link #adoptPrefix}, {@link #publishFullBlocks}). It also keeps the token id of every
 * position (4 bytes beside 1-12 KiB of keys and values), which is what names shared blocks.
 *
 * <p>Owned by one thread at a time, the pool's.
 */
public final class KvCache {

    private final KvBlockPool pool;
    private final int maxPositions;
    private KvBlock[] blocks = new KvBlock[4];
    private int blockCount; // blocks held: positions [0, blockCount * blockPositions) have room
    private int[] tokens = new int[16]; // (position) the token id whose keys and values are there
    private int length;
    private int publishedUpTo; // full blocks [0, publishedUpTo) were offered to the prefix index
    private int truncations; // calls of truncate: a device copy of positions is stale after one

    /** An empty cache with room for {@code initialCapacity} positions taken from {@code pool} now. */
    public KvCache(KvBlockPool pool, int initialCapacity, int maxPositions) {
        this.pool = pool;
        this.maxPositions = maxPositions;
        ensureCapacity(initialCapacity);
    }

    public KvBlockPool pool() {
        return pool;
    }

    /** Positions filled so far: the next token goes to position {@code length()}. */
    public int length() {
        return length;
    }

    public int maxPositions() {
        return maxPositions;
    }

    /** Positions the blocks held now have room for. */
    public int capacity() {
        return Math.min(maxPositions, blockCount * pool.blockPositions());
    }

    /** Forgets everything (the blocks are kept for reuse). */
    public void clear() {
        truncate(0);
    }

    /** Drops positions {@code >= newLength} (their blocks stay held, as room to write). */
    public void truncate(int newLength) {
        if (newLength < 0 || newLength > length) {
            throw new IllegalArgumentException("cannot truncate " + length + " positions to " + newLength);
        }
        length = newLength;
        publishedUpTo = Math.min(publishedUpTo, newLength / pool.blockPositions());
        truncations++;
    }

    /** How often {@link #truncate}, {@link #clear} or {@link #release} ran: positions may have been rewritten since. */
    int truncations() {
        return truncations;
    }

    /** The token ids of positions {@code [0, length())}, copied. */
    public int[] tokens() {
        return Arrays.copyOf(tokens, length);
    }

    /**
     * Holds blocks for {@code positions} positions (at most {@link #maxPositions()}) now, and
     * makes the positions from {@link #length()} on writable (a shared block there is copied, a
     * published one unpublished), so that filling them later takes nothing from the pool: the
     * engine charges a request's KV blocks to its budget before the request runs.
     */
    public void ensureCapacity(int positions) {
        int wanted = Math.min(positions, maxPositions);
        int need = pool.blocksFor(wanted);
        if (need > blocks.length) {
            blocks = Arrays.copyOf(blocks, Math.max(need, 2 * blocks.length));
        }
        while (blockCount < need) {
            blocks[blockCount++] = pool.acquire();
        }
        if (wanted > tokens.length) {
            tokens = Arrays.copyOf(tokens, Math.max(wanted, Math.min(maxPositions, 2 * tokens.length)));
        }
        makeWritable(length, Math.max(wanted, length));
    }

    /** Gives back the blocks past the last one {@link #length()} uses. */
    public void trimToLength() {
        int keep = pool.blocksFor(length);
        while (blockCount > keep) {
            pool.release(blocks[--blockCount]);
            blocks[blockCount] = null;
        }
    }

    /** Gives back every block; the cache is empty and may take blocks again. */
    public void release() {
        length = 0;
        publishedUpTo = 0;
        truncations++;
        trimToLength();
    }

    /** Bytes of the blocks this cache holds (shared ones included: see {@link KvBlockPool#bytesInUse()}). */
    public long sizeBytes() {
        return blockCount * pool.blockBytes();
    }

    /** Blocks this cache holds. */
    public int blockCount() {
        return blockCount;
    }

    /**
     * Blocks the pool would hand out for this cache to hold {@code positions} positions and write
     * from position {@code from} on: the ones it lacks, plus the shared ones in the range it
     * would copy.
     */
    public int blocksToWrite(int from, int positions) {
        int bp = pool.blockPositions();
        int need = pool.blocksFor(Math.min(positions, maxPositions));
        int n = Math.max(0, need - blockCount);
        for (int i = from / bp; i < Math.min(blockCount, need); i++) {
            if (blocks[i].refs > 1) {
                n++;
            }
        }
        return n;
    }

    /** Marks this cache's blocks with {@code stamp}; returns how many were not marked with it yet. */
    public int markBlocks(long stamp) {
        int fresh = 0;
        for (int i = 0; i < blockCount; i++) {
            if (blocks[i].mark != stamp) {
                blocks[i].mark = stamp;
                fresh++;
            }
        }
        return fresh;
    }

    /** Bytes a cache of {@code positions} positions holds in {@code pool}. */
    public static long bytesFor(KvBlockPool pool, int positions) {
        return pool.bytesFor(positions);
    }

    /**
     * For an empty cache: takes the longest chain of published blocks whose token ids are the
     * first full blocks of {@code ids[0, n)}, and returns the positions they hold (their keys and
     * values need no prefill). At most {@code limit} positions are adopted.
     */
    public int adoptPrefix(int[] ids, int n, int limit) {
        if (length != 0) {
            throw new IllegalStateException("adoptPrefix needs an empty cache, this one holds " + length + " positions");
        }
        int bp = pool.blockPositions();
        KvBlock parent = null;
        int adopted = 0;
        while ((adopted + 1) * bp <= Math.min(n, limit)) {
            KvBlock b = pool.lookup(parent, ids, adopted * bp);
            if (b == null) {
                break;
            }
            pool.retain(b);
            if (adopted < blockCount) {
                pool.release(blocks[adopted]);
            } else {
                if (adopted == blocks.length) {
                    blocks = Arrays.copyOf(blocks, 2 * blocks.length);
                }
                blockCount++;
            }
            blocks[adopted] = b;
            pool.countSharedHit();
            parent = b;
            adopted++;
        }
        int positions = adopted * bp;
        if (positions > tokens.length) {
            tokens = Arrays.copyOf(tokens, positions);
        }
        System.arraycopy(ids, 0, tokens, 0, positions);
        length = positions;
        publishedUpTo = adopted;
        return positions;
    }

    /**
     * Offers every full block not offered yet to the pool's prefix index, so that later caches
     * starting with the same tokens share it. Where an equal block was published before, this
     * cache switches to that one and gives its own back.
     */
    public void publishFullBlocks() {
        int bp = pool.blockPositions();
        int full = length / bp;
        for (int i = publishedUpTo; i < full; i++) {
            KvBlock parent = i == 0 ? null : blocks[i - 1];
            KvBlock held = pool.publish(parent, blocks[i], tokens, i * bp);
            if (held != blocks[i]) {
                pool.retain(held);
                pool.release(blocks[i]);
                blocks[i] = held;
            }
        }
        publishedUpTo = Math.max(publishedUpTo, full);
    }

    /**
     * For benchmarks of decode at long context: fills positions {@code [length(), positions)}
     * with copies of the whole blocks already written (block {@code i} gets block {@code i mod
     * k}'s keys, values and ids), so that attention then reads {@code positions} positions
     * without their prefill. The text such a context stands for means nothing; the work per
     * decoded token is that of a real context of that length. {@code length()} and {@code
     * positions} must be whole blocks.
     */
    public void repeatTo(int positions) {
        int bp = pool.blockPositions();
        if (length == 0 || length % bp != 0 || positions % bp != 0 || positions < length || positions > maxPositions) {
            throw new IllegalArgumentException("repeatTo needs whole blocks from " + length + " up to " + positions
                    + " (at most " + maxPositions + ", blocks of " + bp + ")");
        }
        ensureCapacity(positions);
        int src = length / bp;
        for (int i = src; i < positions / bp; i++) {
            blocks[i].copyFrom(blocks[i % src]);
            System.arraycopy(tokens, (i % src) * bp, tokens, i * bp, bp);
        }
        length = positions;
    }

    /** Makes room for {@code extra} more positions, or fails naming the context limit. */
    void reserve(int extra) {
        long needed = (long) length + extra;
        if (needed > maxPositions) {
            throw new ContextOverflowException(length, extra, maxPositions);
        }
        if (needed > blockCount * (long) pool.blockPositions() || needed > tokens.length) {
            ensureCapacity((int) needed);
        } else {
            makeWritable(length, (int) needed);
        }
    }

    /** Copies (shared) or unpublishes (published, held alone) the blocks of positions [from, to). */
    private void makeWritable(int from, int to) {
        if (to <= from) {
            return;
        }
        int bp = pool.blockPositions();
        for (int i = from / bp, last = (to - 1) / bp; i <= last && i < blockCount; i++) {
            KvBlock b = blocks[i];
            if (b.refs > 1) {
                blocks[i] = pool.copyOnWrite(b);
            } else if (b.key != null) {
                pool.unpublish(b);
            }
        }
    }

    /** Records the ids of the {@code n} positions just written and advances {@link #length()}. */
    void append(int[] ids, int off, int n) {
        System.arraycopy(ids, off, tokens, length, n);
        length += n;
    }

    void append(int id) {
        tokens[length++] = id;
    }

    KvBlock block(int i) {
        return blocks[i];
    }
}
