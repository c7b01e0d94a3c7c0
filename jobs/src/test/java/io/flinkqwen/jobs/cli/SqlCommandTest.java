/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.jobs.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flinkqwen.engine.LoadedModel;
import io.flinkqwen.engine.generate.Generator;
import io.flinkqwen.engine.generate.SamplingParams;
import io.flinkqwen.engine.testmodel.TestModelGenerator;
import io.flinkqwen.engine.tokenizer.ChatMl;
import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.KernelPool;
import io.flinkqwen.operators.sql.SqlPrompts;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code sql} on the embedded MiniCluster: the scripts in {@code examples/sql} run with a
 * generated model and print one JSON object per row whose text is the engine's greedy answer;
 * a failing statement is named by its number; wrong command lines exit 2.
 */
class SqlCommandTest {

    private static final Path EXAMPLES = Path.of("..", "examples", "sql");
    private static final int MAX_TOKENS = 5;

    @TempDir static Path dir;
    static Path gguf;
    static LoadedModel reference;
    static KernelPool pool;
    static Generator generator;

    @BeforeAll
    static void model() throws Exception {
        gguf = dir.resolve("tiny.gguf");
        new TestModelGenerator(TestModelGenerator.tinyConfig(), 11).write(TestModelGenerator.Format.GGUF, DType.F32, gguf, 0);
        reference = LoadedModel.open(gguf);
        pool = new KernelPool(1);
        generator = new Generator(reference.newForward(pool, 256));
    }

    @AfterAll
    static void close() {
        pool.close();
        reference.close();
    }

    /** The engine's greedy answer to {@code conversation}, decoded. */
    static String expected(List<ChatMl.Message> conversation, int maxTokens) {
        int[] prompt = new ChatMl(reference.tokenizer()).encode(conversation, true);
        int[] ids = generator.generate(prompt, SamplingParams.greedy(maxTokens, reference.stopTokens()), null).ids();
        return reference.tokenizer().decode(ids);
    }

    static List<JsonNode> rows(String out) throws Exception {
        ObjectMapper json = new ObjectMapper();
        List<JsonNode> rows = new ArrayList<>();
        for (String line : out.strip().split("\n")) {
            if (!line.isBlank()) {
                rows.add(json.readTree(line));
            }
        }
        return rows;
    }

    static MainTest.Run sql(String... args) {
        List<String> all = new ArrayList<>(List.of("sql"));
        all.addAll(List.of(args));
        return MainTest.run(all.toArray(String[]::new));
    }

    @Test
    void functionsExampleAnswersAsTheEngineDoesGreedily() throws Exception {
        MainTest.Run r = sql("--file", EXAMPLES.resolve("functions.sql").toString(), "--model", gguf.toString(),
                "--max-new-tokens", "" + MAX_TOKENS, "--parallelism", "2");
        assertEquals(0, r.code(), r.err());
        List<JsonNode> rows = rows(r.out());
        rows.sort(Comparator.comparingInt(o -> o.get("id").asInt()));
        List<String> texts = List.of("hello world", "the lazy dog; the quick fox", "ERROR disk full on node 7");
        assertEquals(3, rows.size(), r.out());
        for (int i = 0; i < 3; i++) {
            JsonNode o = rows.get(i);
            assertEquals(List.of("id", "answer", "german"), fields(o), o.toString());
            assertEquals(i + 1, o.get("id").asInt());
            assertEquals(expected(SqlPrompts.generate(ChatMl.DEFAULT_SYSTEM_MESSAGE, texts.get(i)), MAX_TOKENS),
                    o.get("answer").asText(), texts.get(i));
            assertEquals(expected(SqlPrompts.translate(texts.get(i), "de"), MAX_TOKENS), o.get("german").asText(),
                    texts.get(i));
        }
    }

    @Test
    void summarizeExampleAnswersAsTheEngineDoesGreedily() throws Exception {
        MainTest.Run r = sql("--file", EXAMPLES.resolve("summarize.sql").toString(), "--model", gguf.toString(),
                "--max-new-tokens", "" + MAX_TOKENS);
        assertEquals(0, r.code(), r.err());
        List<JsonNode> rows = rows(r.out());
        assertEquals(3, rows.size(), r.out());
        for (JsonNode o : rows) {
            assertEquals(List.of("source", "message", "summary", "short_answer"), fields(o), o.toString());
            String message = o.get("message").asText();
            assertEquals(expected(SqlPrompts.summarize(message), MAX_TOKENS), o.get("summary").asText(), message);
            assertEquals(expected(SqlPrompts.generate(ChatMl.DEFAULT_SYSTEM_MESSAGE, message), 4),
                    o.get("short_answer").asText(), message);
        }
    }

    @Test
    void mlPredictExampleRunsTheCreatedModels() throws Exception {
        MainTest.Run r = sql("--file", EXAMPLES.resolve("ml_predict.sql").toString(), "--model", gguf.toString());
        assertEquals(0, r.code(), r.err());
        List<JsonNode> rows = rows(r.out());
        assertEquals(4, rows.size(), r.out());
        List<String> prompts = List.of("Name a prime number.", "What is Flink?");
        for (JsonNode o : rows.subList(0, 2)) {
            assertEquals(List.of("id", "response"), fields(o), o.toString());
            String prompt = prompts.get(o.get("id").asInt() - 1);
            assertEquals(expected(SqlPrompts.generate(ChatMl.DEFAULT_SYSTEM_MESSAGE, prompt), 8),
                    o.get("response").asText(), prompt);
        }
        for (JsonNode o : rows.subList(2, 4)) {
            assertEquals(List.of("id", "french"), fields(o), o.toString());
            String prompt = prompts.get(o.get("id").asInt() - 1);
            assertEquals(expected(SqlPrompts.translate(prompt, "fr"), 8), o.get("french").asText(), prompt);
        }
    }

    @Test
    void aFailingStatementIsNamedByItsNumberAndStopsTheScript() throws Exception {
        Path script = dir.resolve("bad.sql");
        Files.writeString(script, String.join("\n",
                "-- a comment; with a semicolon",
                "CREATE TEMPORARY VIEW v AS SELECT * FROM (VALUES (1, 'a;b')) AS t(id, s);",
                "SELECT id, s FROM v;",
                "/* the third */ SELECT nope FROM v;",
                "SELECT 1 AS never;"));
        MainTest.Run r = sql("--file", script.toString(), "--model", gguf.toString());
        assertEquals(1, r.code(), r.err());
        assertEquals("{\"id\":1,\"s\":\"a;b\"}", r.out().strip(), r.out());
        List<String> errors = r.err().lines().filter(l -> l.startsWith("error: ")).toList();
        assertEquals(1, errors.size(), r.err());
        assertTrue(errors.get(0).startsWith("error: sql: statement 3 (SELECT nope FROM v) failed: "), errors.get(0));
        assertTrue(errors.get(0).contains("nope"), errors.get(0));
    }

    @Test
    void setAndResetChangeTheSessionOptionsForTheStatementsAfterThem() throws Exception {
        Path script = dir.resolve("set.sql");
        Files.writeString(script, String.join("\n",
                "SET 'table.local-time-zone' = 'Asia/Tokyo';",
                "SELECT CAST(TO_TIMESTAMP_LTZ(0, 3) AS STRING) AS t;",
                "set 'table.local-time-zone'='UTC';",
                "SELECT CAST(TO_TIMESTAMP_LTZ(0, 3) AS STRING) AS t;",
                "SET table.local-time-zone = UTC;"));
        MainTest.Run r = sql("--file", script.toString(), "--model", gguf.toString());
        assertEquals(1, r.code(), r.err());
        assertEquals(List.of("{\"t\":\"1970-01-01 09:00:00.000\"}", "{\"t\":\"1970-01-01 00:00:00.000\"}"),
                r.out().strip().lines().toList(), r.out());
        assertTrue(r.err().contains("error: sql: statement 5 (SET table.local-time-zone = UTC) failed: write SET 'key' ="
                + " 'value', with the key and value in single quotes"), r.err());
    }

    @Test
    void usageErrorsExit2() throws Exception {
        MainTest.Run r = sql("--model", gguf.toString());
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains("sql: --file is required"), r.err());

        r = sql("--file", dir.resolve("missing.sql").toString(), "--model", gguf.toString());
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains("cannot read it"), r.err());

        Path empty = dir.resolve("empty.sql");
        Files.writeString(empty, "-- nothing here\n ; \n");
        r = sql("--file", empty.toString(), "--model", gguf.toString());
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains("has no statements"), r.err());

        r = sql("--file", empty.toString(), "--parallelism", "0");
        assertEquals(2, r.code(), r.err());
        r = sql("--file", empty.toString(), "--bogus", "1");
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains("unknown option --bogus"), r.err());
        assertFalse(r.err().contains("RANDOM WEIGHTS"), r.err());
    }

    @Test
    void offlineTheDefaultModelFallsBackToRandomWeightsOfItsShape() throws Exception {
        Path cache = dir.resolve("fallback-cache");
        java.util.Map<String, String> offline = java.util.Map.of("HF_HUB_OFFLINE", "1", "HF_HOME",
                dir.resolve("hf").toString(), "FLINK_QWEN_CACHE", cache.toString());
        ModelArgs.RandomWeights tiny = new ModelArgs.RandomWeights("tiny", DType.F32, 3, cache);
        Path script = dir.resolve("one.sql");
        Files.writeString(script, "SELECT QWEN_GENERATE('hi', 2) AS a;");
        SummarizeCommandTest.Run r = SummarizeCommandTest.run(new SqlCommand(offline, tiny), "--file", script.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("sql: cannot download Qwen/Qwen2-0.5B-Instruct (HF_HUB_OFFLINE is set"), r.err());
        assertTrue(r.err().contains("model random-weights-tiny-shape"), r.err());
        assertEquals(1, rows(r.out()).size(), r.out());
    }

    @Test
    void splitHonoursQuotesAndComments() {
        assertEquals(List.of("SELECT 'a;b', \"c;d\", `e;f`", "SELECT 2 -- x; y", "SELECT 'it''s; fine'"),
                SqlCommand.split("-- lead; comment\nSELECT 'a;b', \"c;d\", `e;f`;\n/* x; */ SELECT 2 -- x; y\n;"
                        + " SELECT 'it''s; fine';;"));
    }

    private static List<String> fields(JsonNode o) {
        List<String> names = new ArrayList<>();
        o.fieldNames().forEachRemaining(names::add);
        return names;
    }
}
