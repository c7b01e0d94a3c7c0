/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

/** Block tables, reference counts, the prefix index and copy-on-write, without a model. */
class KvCacheTest {

    static final int BP = 4; // positions per block

    static KvBlockPool pool() {
        return new KvBlockPool(2, 32, 32, KvFormat.F32, BP);
    }

    /** Fills positions [length, length + n) with ids and a recognisable key value per position. */
    static void fill(KvCache c, int[] ids, int n) {
        c.reserve(n);
        for (int i = 0; i < n; i++) {
            int p = c.length() + i;
            c.block(p / BP).keysF32[(p % BP) * 32] = 1000 + ids[p];
        }
        c.append(ids, c.length(), n);
    }

    static int[] ids(int n, int salt) {
        int[] a = new int[n];
        for (int i = 0; i < n; i++) {
            a[i] = i < 8 ? i : 100 * salt + i; // the first 8 ids (2 blocks) are common
        }
        return a;
    }

    @Test
    void blocksAreTakenAsTheCacheGrowsAndAllGoBackToThePool() {
        KvBlockPool pool = pool();
        KvCache c = new KvCache(pool, 0, 64);
        assertEquals(0, pool.blocksInUse());
        fill(c, ids(9, 1), 9);
        assertEquals(3, pool.blocksInUse());
        assertEquals(3 * pool.blockBytes(), pool.bytesInUse());
        c.ensureCapacity(20);
        assertEquals(5, c.blockCount());
        c.trimToLength();
        assertEquals(3, c.blockCount());
        c.release();
        assertEquals(0, pool.blocksInUse());
        assertThrows(ContextOverflowException.class, () -> new KvCache(pool, 0, 8).reserve(9));
    }

    @Test
    void aCacheAdoptsOnlyTheFullBlocksOfItsPrefixThatArePublishedAndSharesThem() {
        KvBlockPool pool = pool();
        KvCache a = new KvCache(pool, 0, 64);
        int[] ida = ids(10, 1);
        fill(a, ida, 10);
        a.publishFullBlocks(); // blocks 0 and 1 (positions 0-7); block 2 is not full
        assertEquals(2, pool.publishedBlocks());
        KvCache b = new KvCache(pool, 0, 64);
        int[] idb = ids(12, 2);
        assertEquals(2, pool.publishedPrefixBlocks(idb, 12));
        assertEquals(8, b.adoptPrefix(idb, 12, 12));
        assertSame(a.block(0), b.block(0));
        assertSame(a.block(1), b.block(1));
        assertEquals(3 + 0, pool.blocksInUse(), "b holds a's two blocks and nothing of its own yet");
        fill(b, idb, 4);
        assertEquals(4, pool.blocksInUse());
        // a third cache whose first block differs adopts nothing (keys depend on every earlier token)
        int[] idc = ids(12, 3);
        idc[0] = 77;
        assertEquals(0, new KvCache(pool, 0, 64).adoptPrefix(idc, 12, 12));
        a.release();
        assertEquals(2, pool.publishedBlocks(), "b still holds the shared blocks");
        b.release();
        assertEquals(0, pool.blocksInUse());
        assertEquals(0, pool.publishedBlocks(), "a block leaves the index with its last holder");
    }

    @Test
    void writingIntoASharedBlockCopiesItFirstAndLeavesTheOtherHoldersContentsAlone() {
        KvBlockPool pool = pool();
        KvCache a = new KvCache(pool, 0, 64);
        int[] ida = ids(8, 1);
        fill(a, ida, 8);
        a.publishFullBlocks();
        KvCache b = new KvCache(pool, 0, 64);
        b.adoptPrefix(ida, 8, 8);
        b.truncate(7); // the last position is written again (as the engine does for a whole-block prompt)
        int[] other = ida.clone();
        other[7] = 55;
        fill(b, other, 1);
        assertNotSame(a.block(1), b.block(1));
        assertSame(a.block(0), b.block(0));
        assertEquals(1000 + 7, a.block(1).keysF32[3 * 32], 0f, "a's block untouched");
        assertEquals(1000 + 55, b.block(1).keysF32[3 * 32], 0f);
        assertEquals(1000 + 6, b.block(1).keysF32[2 * 32], 0f, "the copy kept the earlier positions");
        assertEquals(3, pool.blocksInUse());
    }

    @Test
    void aPublishedBlockHeldAloneIsUnpublishedBeforeItIsOverwritten() {
        KvBlockPool pool = pool();
        KvCache a = new KvCache(pool, 0, 64);
        int[] ida = ids(8, 1);
        fill(a, ida, 8);
        a.publishFullBlocks();
        a.truncate(6);
        int[] changed = ida.clone();
        changed[6] = 99;
        fill(a, changed, 1);
        assertEquals(1, pool.publishedBlocks(), "block 1 no longer holds what its key says");
        assertEquals(1, pool.publishedPrefixBlocks(ida, 8));
    }

    @Test
    void anEqualBlockPublishedTwiceIsKeptOnce() {
        KvBlockPool pool = pool();
        KvCache a = new KvCache(pool, 0, 64);
        KvCache b = new KvCache(pool, 0, 64);
        int[] same = ids(8, 1);
        fill(a, same, 8);
        fill(b, same, 8); // prefilled side by side, before either published
        assertEquals(4, pool.blocksInUse());
        a.publishFullBlocks();
        b.publishFullBlocks();
        assertSame(a.block(0), b.block(0));
        assertSame(a.block(1), b.block(1));
        assertEquals(2, pool.blocksInUse(), "b gave its equal blocks back");
    }
}
