/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.tokenizer;

import java.util.Arrays;
import java.util.Objects;

/**
 * Turns generated ids into text as they arrive, never emitting half a character: a token may end
 * inside a multi-byte UTF-8 character (Chinese characters and emoji often span two or three
 * tokens), and those trailing bytes are held back until the character is complete.
 *
 * <p>Contract: the concatenation of everything {@link #accept} returned and then {@link #flush}
 * equals {@link Qwen2Tokenizer#decode} of all ids accepted since the last flush. Bytes that can
 * never become a character (an invalid sequence) are emitted at once as U+FFFD, each maximal
 * ill-formed subsequence as one; only a tail that is still a valid prefix of a character waits.
 * At most 3 bytes are ever held.
 *
 * <p>One instance per generated sequence; not thread-safe.
 */
public final class StreamingDecoder {

    private final Qwen2Tokenizer tokenizer;
    private byte[] pending = new byte[16];
    private int pendingLength;

    public StreamingDecoder(Qwen2Tokenizer tokenizer) {
        this.tokenizer = Objects.requireNonNull(tokenizer, "tokenizer");
    }

    /**
     * Takes the next id and returns the text it completes, possibly empty.
     *
     * @throws IllegalArgumentException if {@code id} has no token (the decoder is unchanged)
     */
    public String accept(int id) {
        int n = tokenizer.tokenByteLength(id);
        if (pendingLength + n > pending.length) {
            pending = Arrays.copyOf(pending, Math.max(pending.length * 2, pendingLength + n));
        }
        tokenizer.copyTokenBytes(id, pending, pendingLength);
        pendingLength += n;
        StringBuilder out = new StringBuilder(pendingLength);
        int done = Utf8.decodeLossy(pending, 0, pendingLength, out, false);
        System.arraycopy(pending, done, pending, 0, pendingLength - done);
        pendingLength -= done;
        return out.toString();
    }

    /**
     * Ends the sequence: returns the held-back bytes as text (an incomplete character becomes
     * U+FFFD) and leaves the decoder empty, ready for a new sequence.
     */
    public String flush() {
        String rest = Utf8.decodeLossy(pending, 0, pendingLength);
        pendingLength = 0;
        return rest;
    }

    /** Number of bytes held back, waiting for the rest of a character (0 to 3). */
    public int pendingBytes() {
        return pendingLength;
    }
}
