/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Byte-level BPE over one pre-tokenized piece: the piece's UTF-8 bytes start as one byte token
 * each, then pairs of adjacent tokens are merged by merge rank until no listed pair is left.
 *
 * <p>The merge order is Hugging Face's ({@code tokenizers} BPE {@code Word::merge_all}): a
 * priority queue of candidate pairs ordered by (rank, position), lowest first; after each merge
 * the pairs the new token forms with its neighbours are queued, and queue entries whose pair
 * has since changed are dropped. A newly formed pair of lower rank is therefore merged before
 * later occurrences of the pair just merged; that is the order whose ids we must reproduce.
 *
 * <p>Immutable after construction except for the word cache, a {@link ConcurrentHashMap} from
 * piece to ids that is cleared when it reaches {@link #CACHE_CAPACITY} entries (a bound, and
 * a cheap way to follow a stream whose vocabulary drifts). Cached arrays are never mutated.
 */
final class BytePairEncoder {

    /** Pieces cached at most; Hugging Face's BPE uses the same default capacity. */
    static final int CACHE_CAPACITY = 10_000;

    /** Longer pieces (in chars) are not cached, so one huge word cannot pin memory. */
    static final int CACHE_MAX_PIECE = 256;

    private final int[] byteIds = new int[256];
    private final MergeTable merges;
    private final boolean ignoreMerges;
    private final Map<String, Integer> vocab;
    private final ConcurrentHashMap<String, int[]> cache = new ConcurrentHashMap<>();

    /**
     * @param vocab the BPE model's vocabulary (byte-level strings to ids), without added tokens
     * @param mergePairs merges in rank order, each the two byte-level strings merged
     * @param ignoreMerges Hugging Face's {@code ignore_merges}: a piece that is itself a
     *     vocabulary token is that token, whatever the merges would make of it
     * @throws IllegalArgumentException if a byte has no token or a merge names a missing token
     */
    BytePairEncoder(Map<String, Integer> vocab, List<String[]> mergePairs, boolean ignoreMerges) {
        this.vocab = vocab;
        this.ignoreMerges = ignoreMerges;
        for (int b = 0; b < 256; b++) {
            Integer id = vocab.get(String.valueOf(ByteLevel.charOf(b)));
            if (id == null) {
                throw new IllegalArgumentException(
                        String.format(
                                "the vocabulary has no token for byte 0x%02X ('%s'); a byte-level"
                                        + " BPE vocabulary needs all 256",
                                b, ByteLevel.charOf(b)));
            }
            byteIds[b] = id;
        }
        merges = new MergeTable(mergePairs.size());
        for (int rank = 0; rank < mergePairs.size(); rank++) {
            String[] pair = mergePairs.get(rank);
            Integer left = vocab.get(pair[0]);
            Integer right = vocab.get(pair[1]);
            Integer merged = vocab.get(pair[0] + pair[1]);
            if (left == null || right == null || merged == null) {
                String missing = left == null ? pair[0] : right == null ? pair[1] : pair[0] + pair[1];
                throw new IllegalArgumentException(
                        String.format(
                                "merge %d ('%s' '%s'): token '%s' is not in the vocabulary",
                                rank, pair[0], pair[1], missing));
            }
            // a pair listed twice keeps its later rank, as Hugging Face's merge map does
            merges.put(left, right, rank, merged);
        }
    }

    /** Number of merges (distinct pairs). */
    int mergeCount() {
        return merges.size();
    }

    /** Appends the ids of one pre-tokenized piece (non-empty, NFC, no lone surrogates). */
    void encodePiece(String piece, IntList out) {
        int[] cached = cache.get(piece);
        if (cached == null) {
            cached = encodeUncached(piece);
            if (piece.length() <= CACHE_MAX_PIECE) {
                if (cache.size() >= CACHE_CAPACITY) {
                    cache.clear();
                }
                cache.put(piece, cached);
            }
        }
        out.addAll(cached);
    }

    private int[] encodeUncached(String piece) {
        byte[] bytes = piece.getBytes(StandardCharsets.UTF_8);
        if (ignoreMerges) {
            Integer whole = vocab.get(ByteLevel.toByteLevel(bytes, 0, bytes.length));
            if (whole != null) {
                return new int[] {whole};
            }
        }
        int[] symbols = new int[bytes.length];
        for (int i = 0; i < bytes.length; i++) {
            symbols[i] = byteIds[bytes[i] & 0xFF];
        }
        return mergeAll(symbols);
    }

    /** Merges {@code symbols} (consumed) by rank; see the class comment for the order. */
    private int[] mergeAll(int[] symbols) {
        final int n = symbols.length;
        if (n < 2) {
            return symbols;
        }
        if (n == 2) {
            int slot = merges.find(symbols[0], symbols[1]);
            return slot < 0 ? symbols : new int[] {merges.mergedAt(slot)};
        }
        // a doubly linked list of symbols; removed symbols have alive[i] == false
        int[] prev = new int[n];
        int[] next = new int[n];
        boolean[] alive = new boolean[n];
        for (int i = 0; i < n; i++) {
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
            alive[i] = true;
        }
        LongHeap queue = new LongHeap(n);
        for (int i = 0; i + 1 < n; i++) {
            int slot = merges.find(symbols[i], symbols[i + 1]);
            if (slot >= 0) {
                queue.push(entry(merges.rankAt(slot), i));
            }
        }
        int remaining = n;
        while (!queue.isEmpty()) {
            long top = queue.pop();
            int rank = (int) (top >>> 32);
            int pos = (int) top;
            if (!alive[pos] || next[pos] < 0) {
                continue;
            }
            int right = next[pos];
            int slot = merges.find(symbols[pos], symbols[right]);
            if (slot < 0 || merges.rankAt(slot) != rank) {
                continue; // stale: the pair at pos changed since it was queued
            }
            // merge the right symbol into pos
            symbols[pos] = merges.mergedAt(slot);
            alive[right] = false;
            remaining--;
            next[pos] = next[right];
            if (next[right] >= 0) {
                prev[next[right]] = pos;
            }
            // queue the pairs the new symbol forms with its neighbours
            if (prev[pos] >= 0) {
                int p = prev[pos];
                int s = merges.find(symbols[p], symbols[pos]);
                if (s >= 0) {
                    queue.push(entry(merges.rankAt(s), p));
                }
            }
            if (next[pos] >= 0) {
                int s = merges.find(symbols[pos], symbols[next[pos]]);
                if (s >= 0) {
                    queue.push(entry(merges.rankAt(s), pos));
                }
            }
        }
        int[] out = new int[remaining];
        int k = 0;
        for (int i = 0; i >= 0; i = next[i]) {
            out[k++] = symbols[i];
        }
        return out;
    }

    /** Queue entry: rank in the high half, position in the low; natural order = (rank, pos). */
    private static long entry(int rank, int pos) {
        return ((long) rank << 32) | pos;
    }

    /** A binary min-heap of longs. */
    private static final class LongHeap {
        private long[] heap;
        private int size;

        LongHeap(int capacity) {
            heap = new long[Math.max(capacity, 4)];
        }

        boolean isEmpty() {
            return size == 0;
        }

        void push(long v) {
            if (size == heap.length) {
                heap = Arrays.copyOf(heap, size * 2);
            }
            int i = size++;
            while (i > 0) {
                int parent = (i - 1) >>> 1;
                if (heap[parent] <= v) {
                    break;
                }
                heap[i] = heap[parent];
                i = parent;
            }
            heap[i] = v;
        }

        long pop() {
            long top = heap[0];
            long last = heap[--size];
            int i = 0;
            while (true) {
                int child = 2 * i + 1;
                if (child >= size) {
                    break;
                }
                if (child + 1 < size && heap[child + 1] < heap[child]) {
                    child++;
                }
                if (heap[child] >= last) {
                    break;
                }
                heap[i] = heap[child];
                i = child;
            }
            heap[i] = last;
            return top;
        }
    }

    /** Open-addressing map from a token pair to its merge rank and merged token id. */
    private static final class MergeTable {
        private static final long EMPTY = -1L; // a key of two non-negative ids is never -1

        private final long[] keys;
        private final int[] ranks;
        private final int[] mergedIds;
        private final int mask;
        private int size;

        MergeTable(int expected) {
            int capacity = Integer.highestOneBit(Math.max(expected, 8) * 2 - 1) << 1;
            keys = new long[capacity];
            Arrays.fill(keys, EMPTY);
            ranks = new int[capacity];
            mergedIds = new int[capacity];
            mask = capacity - 1;
        }

        private static long key(int left, int right) {
            return ((long) left << 32) | (right & 0xFFFFFFFFL);
        }

        private int slotOf(long key) {
            long h = key * 0x9E3779B97F4A7C15L;
            return (int) (h ^ (h >>> 32)) & mask;
        }

        void put(int left, int right, int rank, int merged) {
            long key = key(left, right);
            int i = slotOf(key);
            while (keys[i] != EMPTY && keys[i] != key) {
                i = (i + 1) & mask;
            }
            if (keys[i] == EMPTY) {
                keys[i] = key;
                size++;
            }
            ranks[i] = rank;
            mergedIds[i] = merged;
        }

        /** The slot of pair (left, right), or -1 if it is not a merge. */
        int find(int left, int right) {
            long key = key(left, right);
            int i = slotOf(key);
            while (true) {
                long k = keys[i];
                if (k == key) {
                    return i;
                }
                if (k == EMPTY) {
                    return -1;
                }
                i = (i + 1) & mask;
            }
        }

        int rankAt(int slot) {
            return ranks[slot];
        }

        int mergedAt(int slot) {
            return mergedIds[slot];
        }

        int size() {
            return size;
        }
    }
}
