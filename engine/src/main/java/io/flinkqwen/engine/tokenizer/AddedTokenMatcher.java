/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.tokenizer;

import java.util.HashMap;
import java.util.Map;

/**
 * Finds added tokens ({@code <|im_end|>} and friends) in text as whole strings, leftmost first
 * and, among matches that start at the same place, longest first: Hugging Face's added
 * vocabulary matching (an Aho-Corasick automaton in leftmost-longest mode). A trie walked from
 * each position is enough for the handful of added tokens a Qwen vocabulary has.
 */
final class AddedTokenMatcher {

    private static final class Node {
        final Map<Character, Node> children = new HashMap<>(4);
        int id = -1;
    }

    private final Node root = new Node();
    private int count;

    /** Adds {@code content} (non-empty) as the text of token {@code id}. */
    void add(String content, int id) {
        if (content.isEmpty()) {
            throw new IllegalArgumentException("added token " + id + " has empty content");
        }
        Node node = root;
        for (int i = 0; i < content.length(); i++) {
            node = node.children.computeIfAbsent(content.charAt(i), c -> new Node());
        }
        if (node.id < 0) {
            count++;
        }
        node.id = id;
    }

    boolean isEmpty() {
        return count == 0;
    }

    /**
     * The longest added token that starts at char index {@code start} of {@code s}, packed as
     * {@code (end << 32) | id}, or -1 if none does.
     */
    long longestAt(String s, int start) {
        Node node = root;
        long best = -1;
        for (int i = start; i < s.length(); i++) {
            node = node.children.get(s.charAt(i));
            if (node == null) {
                break;
            }
            if (node.id >= 0) {
                best = ((long) (i + 1) << 32) | node.id;
            }
        }
        return best;
    }

    /** Receives the pieces of a split: text between tokens, and the tokens' ids. */
    interface Sink {
        void text(String s, int from, int to);

        void token(int id);
    }

    /** Splits {@code s} into text spans and added tokens, in order; empty spans are skipped. */
    void split(String s, Sink sink) {
        int textStart = 0;
        int i = 0;
        while (i < s.length()) {
            long match = root.children.containsKey(s.charAt(i)) ? longestAt(s, i) : -1;
            if (match < 0) {
                i++;
                continue;
            }
            if (i > textStart) {
                sink.text(s, textStart, i);
            }
            sink.token((int) match);
            i = (int) (match >>> 32);
            textStart = i;
        }
        if (textStart < s.length()) {
            sink.text(s, textStart, s.length());
        }
    }
}
