/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.inference;

import java.util.Arrays;
import org.apache.flink.annotation.Internal;

/**
 * The context policy of the long-context operator: a key's prompt is its history plus the new
 * turn, and when that does not fit it keeps the system turn, the first {@code sinkTokens} tokens
 * after it (attention sinks, as StreamingLLM keeps them) and the most recent tokens that fit,
 * dropping the middle. The cut may fall inside a turn; the engine's session cache then no
 * longer matches past the sink and rebuilds the rest by prefill.
 *
 * <p>Pure and immutable: the same history and turn always give the same prompt, which replay
 * after a restore relies on.
 */
@Internal
final class ContextWindow {

    private final int systemTokens;
    private final int sinkTokens;
    private final int maxPromptTokens;

    /**
     * @param systemTokens length of the system turn every history starts with
     * @param sinkTokens tokens after the system turn always kept
     * @param maxPromptTokens the most tokens a prompt may have (context less the new tokens)
     */
    ContextWindow(int systemTokens, int sinkTokens, int maxPromptTokens) {
        if (systemTokens < 0 || sinkTokens < 0 || maxPromptTokens < 1) {
            throw new IllegalArgumentException("bad window: system " + systemTokens + ", sink " + sinkTokens
                    + ", max prompt " + maxPromptTokens);
        }
        this.systemTokens = systemTokens;
        this.sinkTokens = sinkTokens;
        this.maxPromptTokens = maxPromptTokens;
    }

    /** Whether a turn of {@code turnTokens} fits at all beside the system turn. */
    boolean fits(int turnTokens) {
        return systemTokens + turnTokens <= maxPromptTokens;
    }

    int maxPromptTokens() {
        return maxPromptTokens;
    }

    int systemTokens() {
        return systemTokens;
    }

    /**
     * The prompt for {@code turn} after {@code history}.
     *
     * @param history the key's history, starting with the system turn; not modified
     * @param turn the new turn; {@link #fits} must hold
     */
    int[] prompt(int[] history, int[] turn) {
        return concat(head(history, turn.length), 0, -1, turn);
    }

    /**
     * The part of the prompt before a turn of {@code turnTokens}: the history, trimmed if the
     * two do not fit together. {@code prompt(history, turn)} is this followed by the turn.
     *
     * @param history the key's history, starting with the system turn; not modified (returned
     *     as is when nothing is trimmed)
     * @param turnTokens the new turn's length; {@link #fits} must hold
     */
    int[] head(int[] history, int turnTokens) {
        if (!fits(turnTokens)) {
            throw new IllegalArgumentException("a turn of " + turnTokens + " tokens does not fit "
                    + maxPromptTokens + " tokens beside a system turn of " + systemTokens);
        }
        if (history.length < systemTokens) {
            throw new IllegalArgumentException(
                    "history of " + history.length + " tokens is shorter than the system turn (" + systemTokens + ")");
        }
        if (history.length + turnTokens <= maxPromptTokens) {
            return history;
        }
        int room = maxPromptTokens - systemTokens - turnTokens; // >= 0 by fits()
        int rest = history.length - systemTokens;
        int sink = Math.min(Math.min(sinkTokens, rest), room);
        int recent = Math.min(room - sink, rest - sink);
        int[] out = new int[systemTokens + sink + recent];
        System.arraycopy(history, 0, out, 0, systemTokens + sink);
        System.arraycopy(history, history.length - recent, out, systemTokens + sink, recent);
        return out;
    }

    /** {@code a[from, to)} followed by {@code b}; {@code to = -1} means {@code a.length}. */
    static int[] concat(int[] a, int from, int to, int[] b) {
        if (to < 0) {
            to = a.length;
        }
        int[] out = Arrays.copyOf(Arrays.copyOfRange(a, from, to), to - from + b.length);
        System.arraycopy(b, 0, out, to - from, b.length);
        return out;
    }
}
