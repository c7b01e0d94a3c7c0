/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.jobs.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.flinkqwen.engine.LoadedModel;
import io.flinkqwen.engine.generate.Generator;
import io.flinkqwen.engine.generate.SamplingParams;
import io.flinkqwen.engine.hub.LoopbackHub;
import io.flinkqwen.engine.testmodel.TestModelGenerator;
import io.flinkqwen.engine.tokenizer.ChatMl;
import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.KernelPool;
import io.flinkqwen.operators.sql.SqlPrompts;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code CREATE MODEL ... WITH ('provider' = 'qwen2', 'model' = 'org/name')}: the provider
 * resolves a Hugging Face id on the task managers through the hub client, configured by their
 * environment ({@code HF_ENDPOINT}, {@code HF_HOME}, {@code HF_HUB_OFFLINE}). A JVM's environment
 * cannot be changed from inside it, so each run is {@code sql} in a child JVM on this test's
 * class path, against a hub on 127.0.0.1 serving a model we generated: downloaded into the HF
 * cache on the first run, read from the cache offline on the second, and offline without a cached
 * copy the statement fails with one line naming the id and the cause.
 */
class SqlModelFromHubTest {

    private static final int MAX_TOKENS = 4;
    private static final List<String> PROMPTS = List.of("Name a prime number.", "What is Flink?");

    @TempDir Path dir;

    @Test
    void mlPredictModelGivenAsAHubIdDownloadsIntoTheHfCacheThenRunsOfflineFromIt() throws Exception {
        Path folder = dir.resolve("tiny-hf");
        new TestModelGenerator(TestModelGenerator.tinyConfig(), 17).write(TestModelGenerator.Format.HF, DType.F32, folder, 0);
        List<String> want = new ArrayList<>();
        try (LoadedModel m = LoadedModel.open(folder); KernelPool pool = new KernelPool(1)) {
            Generator g = new Generator(m.newForward(pool, 256));
            for (String prompt : PROMPTS) {
                int[] ids = new ChatMl(m.tokenizer()).encode(SqlPrompts.generate(ChatMl.DEFAULT_SYSTEM_MESSAGE, prompt), true);
                want.add(m.tokenizer().decode(g.generate(ids, SamplingParams.greedy(MAX_TOKENS, m.stopTokens()), null).ids()));
            }
        }
        Path script = dir.resolve("hub.sql");
        Files.writeString(script, String.join("\n",
                "CREATE TEMPORARY VIEW prompts AS SELECT * FROM (VALUES (1, '" + PROMPTS.get(0) + "'), (2, '"
                        + PROMPTS.get(1) + "')) AS v(id, prompt);",
                "CREATE MODEL qwen INPUT (prompt STRING) OUTPUT (response STRING)",
                "  WITH ('provider' = 'qwen2', 'model' = '" + LoopbackHub.REPO + "', 'max-tokens' = '" + MAX_TOKENS + "');",
                "SELECT id, response FROM ML_PREDICT(TABLE prompts, MODEL qwen, DESCRIPTOR(prompt));"));
        Path hfHome = dir.resolve("hf");

        try (LoopbackHub hub = new LoopbackHub(folder)) {
            Child online = sqlInChildJvm(script, folder, Map.of("HF_ENDPOINT", hub.endpoint().toString(),
                    "HF_HOME", hfHome.toString()));
            assertEquals(0, online.code(), online.err());
            assertEquals(want, responses(online), online.out());
            assertTrue(hub.fileTransfers() > 0, "nothing was downloaded from the hub");
            Path snapshot = hfHome.resolve("hub").resolve("models--acme--tiny-qwen").resolve("snapshots").resolve(hub.commit());
            assertTrue(Files.isRegularFile(snapshot.resolve("model.safetensors")), "not in the HF cache: " + snapshot);
        }

        // the hub gone, HF_HUB_OFFLINE: the same answers from the cache
        Child offline = sqlInChildJvm(script, folder, Map.of("HF_HUB_OFFLINE", "1", "HF_HOME", hfHome.toString()));
        assertEquals(0, offline.code(), offline.err());
        assertEquals(want, responses(offline), offline.out());

        // offline with an empty cache: the ML_PREDICT statement fails, one line naming the id and why
        Child missing = sqlInChildJvm(script, folder, Map.of("HF_HUB_OFFLINE", "1", "HF_HOME",
                dir.resolve("empty-hf").toString()));
        assertEquals(1, missing.code(), missing.err());
        List<String> errors = missing.err().lines().filter(l -> l.startsWith("error: ")).toList();
        assertEquals(1, errors.size(), missing.err());
        String error = errors.get(0);
        assertTrue(error.startsWith("error: sql: statement 3 (SELECT id, response FROM ML_PREDICT"), error);
        assertTrue(error.contains("cannot load the model '" + LoopbackHub.REPO + "'"), error);
        assertTrue(error.contains("HF_HUB_OFFLINE is set and " + LoopbackHub.REPO + "@main is not in the cache"), error);
    }

    private static List<String> responses(Child run) throws Exception {
        List<JsonNode> rows = SqlCommandTest.rows(run.out());
        rows.sort((a, b) -> Integer.compare(a.get("id").asInt(), b.get("id").asInt()));
        List<String> texts = new ArrayList<>();
        for (JsonNode o : rows) {
            texts.add(o.get("response").asText());
        }
        return texts;
    }

    record Child(int code, String out, String err) {}

    /**
     * {@code sql --file script --model functionsModel} in a new JVM on this test's class path,
     * with the HF variables of this JVM removed and {@code hfEnv} set.
     */
    private Child sqlInChildJvm(Path script, Path functionsModel, Map<String, String> hfEnv) throws Exception {
        String classPath = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
        Path out = Files.createTempFile(dir, "child", ".out");
        Path err = Files.createTempFile(dir, "child", ".err");
        ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules=jdk.incubator.vector", "--add-opens=java.base/java.nio=ALL-UNNAMED", "-XX:+UseParallelGC",
                // the command line's logging (stderr only), not the tests' (stdout)
                "-Xss8m", "-Xmx1g", "-Dlog4j2.configurationFile=log4j2.properties", "-cp", classPath, Main.class.getName(), "sql", "--file", script.toString(), "--model",
                functionsModel.toString(), "--max-new-tokens", "" + MAX_TOKENS)
                .redirectOutput(out.toFile())
                .redirectError(err.toFile());
        pb.environment().keySet().removeIf(k -> k.startsWith("HF_") || k.equals("HUGGING_FACE_HUB_TOKEN"));
        pb.environment().putAll(hfEnv);
        Process p = pb.start();
        try {
            if (!p.waitFor(5, TimeUnit.MINUTES)) {
                throw new AssertionError("sql in the child JVM did not end within 5 minutes; stderr:\n"
                        + Files.readString(err, StandardCharsets.UTF_8));
            }
        } finally {
            p.destroyForcibly();
        }
        return new Child(p.exitValue(), Files.readString(out, StandardCharsets.UTF_8),
                Files.readString(err, StandardCharsets.UTF_8));
    }
}
