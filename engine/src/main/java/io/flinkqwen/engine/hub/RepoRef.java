/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.hub;

import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A Hugging Face model repo and revision as written on a command line: {@code
 * Qwen/Qwen2-0.5B-Instruct} or {@code Qwen/Qwen2-0.5B-Instruct@v1.0} (a branch, tag, commit hash
 * or {@code refs/pr/N}). The revision defaults to {@value HfHubClient#DEFAULT_REVISION}.
 *
 * <p>Repo ids follow the hub's rules: {@code org/name}, each part of letters, digits, {@code
 * _ . -}, starting and ending with a letter, digit or underscore, the name at most 96 characters,
 * no {@code --} or {@code ..} anywhere.
 */
public record RepoRef(String repoId, String revision) {

    private static final String PART = "[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?";
    private static final Pattern REPO_ID = Pattern.compile("(?:" + PART + "/)?" + PART);
    private static final Pattern ORG_NAME_REV =
            Pattern.compile("(" + PART + "/" + PART + ")(?:@(\\S+))?");

    public RepoRef {
        checkRepoId(repoId);
        checkRevision(revision);
    }

    /**
     * Parses {@code org/name} or {@code org/name@revision}; empty if the text has another shape
     * (a legacy id without an org, a path with more segments, whitespace, ...).
     */
    public static Optional<RepoRef> parse(String text) {
        if (text == null) {
            return Optional.empty();
        }
        Matcher m = ORG_NAME_REV.matcher(text);
        if (!m.matches() || !isValidRepoId(m.group(1))) {
            return Optional.empty();
        }
        String revision = m.group(2) == null ? HfHubClient.DEFAULT_REVISION : m.group(2);
        if (!isValidRevision(revision)) {
            return Optional.empty();
        }
        return Optional.of(new RepoRef(m.group(1), revision));
    }

    /** Whether the hub would accept this id ({@code name} alone is a legacy, valid form). */
    public static boolean isValidRepoId(String repoId) {
        if (repoId == null || !REPO_ID.matcher(repoId).matches()) {
            return false;
        }
        String name = repoId.substring(repoId.indexOf('/') + 1);
        return name.length() <= 96 && !repoId.contains("--") && !repoId.contains("..");
    }

    static void checkRepoId(String repoId) {
        if (!isValidRepoId(repoId)) {
            throw new IllegalArgumentException(
                    "not a Hugging Face repo id: '" + repoId + "' (expected org/name, e.g."
                            + " Qwen/Qwen2-0.5B-Instruct)");
        }
    }

    /** Revisions go into URLs (encoded) and cache paths: no whitespace, no {@code ..} segment. */
    static boolean isValidRevision(String revision) {
        if (revision == null || revision.isEmpty() || revision.startsWith("/")
                || revision.endsWith("/")) {
            return false;
        }
        for (String segment : revision.split("/", -1)) {
            if (segment.isEmpty() || segment.equals(".") || segment.equals("..")) {
                return false;
            }
        }
        return revision.codePoints().noneMatch(c -> Character.isWhitespace(c) || c < 0x20 || c == '\\');
    }

    static void checkRevision(String revision) {
        if (!isValidRevision(revision)) {
            throw new IllegalArgumentException(
                    "not a revision: '" + revision + "' (expected a branch, tag or commit hash)");
        }
    }

    @Override
    public String toString() {
        return repoId + "@" + revision;
    }
}
