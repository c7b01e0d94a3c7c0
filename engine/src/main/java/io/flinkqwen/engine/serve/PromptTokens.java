/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.serve;

import java.util.Arrays;

/**
 * The token ids of a prompt, read where they lie: a heap array, or memory the caller owns (the
 * Flink operator hands the engine a view over an Arrow batch's buffers, so a micro-batch's ids
 * are read in place, not copied onto the heap first). Flink- and Arrow-free by design.
 *
 * <p>Contract: the ids do not change, and stay readable, until the future of the request that
 * carries them completes; the engine reads them from its scheduler thread before that.
 */
public interface PromptTokens {

    /** Number of ids. */
    int length();

    /** Id {@code i}, {@code 0 <= i < length()}. */
    int get(int i);

    /** Copies ids {@code [from, from + count)} into {@code dst} at {@code dstOffset}. */
    default void copyTo(int from, int[] dst, int dstOffset, int count) {
        for (int i = 0; i < count; i++) {
            dst[dstOffset + i] = get(from + i);
        }
    }

    /** All ids in a new array (for callers that need one; the engine does not). */
    default int[] toArray() {
        int[] out = new int[length()];
        copyTo(0, out, 0, out.length);
        return out;
    }

    /** A copy of {@code ids} on the heap. */
    static PromptTokens of(int[] ids) {
        return new HeapTokens(ids.clone());
    }

    /** Ids in a heap array the caller has handed over. */
    final class HeapTokens implements PromptTokens {
        private final int[] ids;

        private HeapTokens(int[] ids) {
            this.ids = ids;
        }

        @Override
        public int length() {
            return ids.length;
        }

        @Override
        public int get(int i) {
            return ids[i];
        }

        @Override
        public void copyTo(int from, int[] dst, int dstOffset, int count) {
            System.arraycopy(ids, from, dst, dstOffset, count);
        }

        @Override
        public String toString() {
            return Arrays.toString(ids);
        }
    }
}
