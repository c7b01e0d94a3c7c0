/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.oracle;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.StringJoiner;
import java.util.concurrent.TimeUnit;

/**
 * Runs llama.cpp (node-llama-cpp's prebuilt CPU build, flash attention off, F32 KV cache) on a
 * GGUF file through {@code oracle/llama-oracle.mjs} and returns its greedy ids and
 * teacher-forced logits, with the provenance it reports.
 */
public final class LlamaCppOracle {

    /** What llama.cpp said about one prompt. */
    public static final class Result {
        public final int[] greedy;
        /** (position, vocab): logits after prompt+greedy[0..position]. */
        public final float[][] logits;

        public final String provenance;

        Result(int[] greedy, float[][] logits, String provenance) {
            this.greedy = greedy;
            this.logits = logits;
            this.provenance = provenance;
        }
    }

    private LlamaCppOracle() {}

    public static Result run(Path gguf, int[] prompt, int steps, int threads) throws IOException, InterruptedException {
        Path script = OracleFiles.llamaOracleScript();
        StringJoiner ids = new StringJoiner(",");
        for (int id : prompt) {
            ids.add(Integer.toString(id));
        }
        ProcessBuilder pb =
                new ProcessBuilder("node", script.toString(), gguf.toString(), Integer.toString(steps), Integer.toString(threads), ids.toString())
                        .directory(OracleFiles.dir().toFile())
                        .redirectError(ProcessBuilder.Redirect.PIPE);
        Process p = pb.start();
        byte[] stdout;
        byte[] stderr;
        try (InputStream out = p.getInputStream(); InputStream err = p.getErrorStream()) {
            // the JSON is large (positions x vocab); read both streams without deadlocking
            ByteSink errSink = new ByteSink(err);
            Thread t = new Thread(errSink, "oracle-stderr");
            t.start();
            stdout = out.readAllBytes();
            t.join();
            stderr = errSink.bytes;
        }
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new IOException("llama.cpp oracle timed out on " + gguf);
        }
        if (p.exitValue() != 0) {
            throw new IOException(
                    "llama.cpp oracle failed (exit " + p.exitValue() + ") on " + gguf + ":\n"
                            + new String(stderr, StandardCharsets.UTF_8));
        }
        JsonNode root = new ObjectMapper().readTree(stdout);
        int[] greedy = new int[root.get("greedy").size()];
        for (int i = 0; i < greedy.length; i++) {
            greedy[i] = root.get("greedy").get(i).asInt();
        }
        List<float[]> rows = new ArrayList<>();
        for (JsonNode row : root.get("logits")) {
            float[] r = new float[row.size()];
            for (int i = 0; i < r.length; i++) {
                r[i] = (float) row.get(i).asDouble();
            }
            rows.add(r);
        }
        return new Result(greedy, rows.toArray(new float[0][]), root.get("provenance").toString());
    }

    private static final class ByteSink implements Runnable {
        private final InputStream in;
        volatile byte[] bytes = new byte[0];

        ByteSink(InputStream in) {
            this.in = in;
        }

        @Override
        public void run() {
            try {
                bytes = in.readAllBytes();
            } catch (IOException e) {
                bytes = e.toString().getBytes(StandardCharsets.UTF_8);
            }
        }
    }
}
