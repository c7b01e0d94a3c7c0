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
import io.flinkqwen.connectors.kafka.EmbeddedKafkaBroker;
import io.flinkqwen.engine.LoadedModel;
import io.flinkqwen.engine.generate.Generator;
import io.flinkqwen.engine.generate.SamplingParams;
import io.flinkqwen.engine.testmodel.TestModelGenerator;
import io.flinkqwen.engine.tokenizer.ChatMl;
import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.KernelPool;
import io.flinkqwen.operators.sql.SqlPrompts;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The table examples of {@code examples/sql}, each run by {@code sql} on the embedded
 * MiniCluster with a generated model: summarization over a filesystem table into files,
 * translation over datagen rows to stdout, and both over Kafka tables against a real broker in
 * this JVM, read back with {@code read_committed}. Every text is checked against the engine's
 * greedy answer to the prompt the function builds, from windows this test computes itself from
 * the sample logs.
 */
class SqlTableExamplesTest {

    private static final Path EXAMPLES = Path.of("..", "examples", "sql");
    private static final Path SAMPLE_LOGS = Path.of("..", "examples", "logs", "sample.jsonl");
    private static final int MAX_TOKENS = 5;

    @TempDir static Path dir;
    static Path gguf;
    static LoadedModel reference;
    static KernelPool pool;
    static Generator generator;
    static EmbeddedKafkaBroker kafka;

    @BeforeAll
    static void modelAndBroker() throws Exception {
        gguf = dir.resolve("tiny.gguf");
        new TestModelGenerator(TestModelGenerator.tinyConfig(), 11).write(TestModelGenerator.Format.GGUF, DType.F32, gguf, 0);
        reference = LoadedModel.open(gguf);
        pool = new KernelPool(1);
        generator = new Generator(reference.newForward(pool, 256));
        kafka = EmbeddedKafkaBroker.start();
    }

    @AfterAll
    static void close() throws Exception {
        if (kafka != null) {
            kafka.close();
        }
        pool.close();
        reference.close();
    }

    static String expected(List<ChatMl.Message> conversation) {
        int[] prompt = new ChatMl(reference.tokenizer()).encode(conversation, true);
        int[] ids = generator.generate(prompt, SamplingParams.greedy(MAX_TOKENS, reference.stopTokens()), null).ids();
        return reference.tokenizer().decode(ids);
    }

    /**
     * What the summarize scripts must produce from the sample logs, computed here without Flink:
     * per source and minute of ts (UTC; ISO-8601 or epoch milliseconds), the lines {@code "LEVEL
     * message"} (or the message alone without a level) in file order. Lines that are not JSON
     * are left out, as the scripts' json format skips them.
     */
    static Map<String, List<String>> sampleWindows() throws Exception {
        ObjectMapper json = new ObjectMapper();
        Map<String, List<String>> windows = new TreeMap<>();
        for (String line : Files.readAllLines(SAMPLE_LOGS, StandardCharsets.UTF_8)) {
            JsonNode o;
            try {
                o = json.readTree(line);
            } catch (Exception notJson) {
                continue;
            }
            JsonNode ts = o.get("ts");
            Instant minute = (ts.isNumber() ? Instant.ofEpochMilli(ts.asLong()) : Instant.parse(ts.asText()))
                    .truncatedTo(ChronoUnit.MINUTES);
            String text = (o.has("level") ? o.get("level").asText() + " " : "") + o.get("message").asText();
            windows.computeIfAbsent(o.get("source").asText() + " " + minute, k -> new ArrayList<>()).add(text);
        }
        return windows;
    }

    /** One summary row of the summarize scripts, checked against its window; returns "source start". */
    static String checkSummary(JsonNode o, Map<String, List<String>> windows) {
        assertEquals(List.of("source", "window_start", "window_end", "lines", "summary", "model"), fields(o), o.toString());
        Instant start = Instant.parse(o.get("window_start").asText() + "Z");
        assertEquals(start.plus(1, ChronoUnit.MINUTES), Instant.parse(o.get("window_end").asText() + "Z"), o.toString());
        String window = o.get("source").asText() + " " + start;
        List<String> lines = windows.get(window);
        assertTrue(lines != null, "no such window in the sample: " + window + ", expected one of " + windows.keySet());
        assertEquals(lines.size(), o.get("lines").asInt(), window);
        assertEquals(expected(SqlPrompts.summarize(String.join("\n", lines))), o.get("summary").asText(), window);
        assertEquals("tiny.gguf", o.get("model").asText(), window);
        return window;
    }

    @Test
    void summarizeFilesExampleWritesOneSummaryPerSourceAndMinuteIntoFiles() throws Exception {
        Map<String, List<String>> windows = sampleWindows();
        assertEquals(4, windows.size(), windows.toString()); // api-1 and db-1, minutes 0 and 1
        Path output = dir.resolve("summaries");
        MainTest.Run r = SqlCommandTest.sql("--file", EXAMPLES.resolve("summarize_files.sql").toString(), "--model",
                gguf.toString(), "--max-new-tokens", "" + MAX_TOKENS, "--var", "input=" + SAMPLE_LOGS.toAbsolutePath(),
                "--var", "output=" + output.toAbsolutePath());
        assertEquals(0, r.code(), r.err());
        assertEquals("", r.out().strip(), "an INSERT prints nothing");
        assertTrue(r.err().contains("sql: statement 4 (INSERT INTO summaries SELECT"), r.err());
        assertTrue(r.err().strip().endsWith(") finished"), r.err());

        List<JsonNode> rows = new ArrayList<>();
        try (Stream<Path> files = Files.walk(output)) {
            for (Path f : files.filter(Files::isRegularFile).toList()) {
                // committed part files only: in-progress ones start with '.'
                assertFalse(f.getFileName().toString().startsWith("."), "uncommitted file left: " + f);
                rows.addAll(SqlCommandTest.rows(Files.readString(f, StandardCharsets.UTF_8)));
            }
        }
        Set<String> seen = new TreeSet<>();
        for (JsonNode o : rows) {
            assertTrue(seen.add(checkSummary(o, windows)), "window summarized twice: " + o);
        }
        assertEquals(windows.keySet(), seen, rows.toString());
    }

    @Test
    void translateDatagenExampleTranslatesEveryGeneratedRow() throws Exception {
        MainTest.Run r = SqlCommandTest.sql("--file", EXAMPLES.resolve("translate_datagen.sql").toString(), "--model",
                gguf.toString(), "--max-new-tokens", "" + MAX_TOKENS, "--var", "rows=5", "--var", "rate=50", "--var",
                "lang=French");
        assertEquals(0, r.code(), r.err());
        List<String> sentences = List.of("The checkout service is back online.", "Disk usage on node 7 is above 90 percent.",
                "Please restart the payment gateway after the deployment.", "All systems are operating normally.");
        Map<Integer, JsonNode> byId = new TreeMap<>();
        for (JsonNode o : SqlCommandTest.rows(r.out())) {
            assertEquals(List.of("id", "text", "translated", "model"), fields(o), o.toString());
            assertTrue(byId.put(o.get("id").asInt(), o) == null, "id twice: " + o);
        }
        assertEquals(Set.of(1, 2, 3, 4, 5), byId.keySet(), r.out());
        for (Map.Entry<Integer, JsonNode> e : byId.entrySet()) {
            String text = sentences.get((e.getKey() - 1) % 4);
            assertEquals(text, e.getValue().get("text").asText());
            assertEquals(expected(SqlPrompts.translate(text, "French")), e.getValue().get("translated").asText(), text);
            assertEquals("tiny.gguf", e.getValue().get("model").asText());
        }
    }

    @Test
    void aVariableWithoutValueOrDefaultIsAUsageErrorBeforeAnythingRuns() {
        MainTest.Run r = SqlCommandTest.sql("--file", EXAMPLES.resolve("summarize_files.sql").toString(), "--model",
                "Qwen/Qwen2-7B-Instruct");
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains("summarize_files.sql, statement 3 (CREATE TEMPORARY TABLE summaries"), r.err());
        assertTrue(r.err().contains("): ${output} has no value: give --var output=VALUE"), r.err());
        // the model was not looked for
        assertFalse(r.err().contains("Qwen2-7B"), r.err());

        r = SqlCommandTest.sql("--file", EXAMPLES.resolve("translate_datagen.sql").toString(), "--var", "rows");
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains("--var must be NAME=VALUE"), r.err());
        r = SqlCommandTest.sql("--file", EXAMPLES.resolve("translate_datagen.sql").toString(), "--var", "model=x");
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains("--var model cannot be set: ${model} comes from --model"), r.err());
        r = SqlCommandTest.sql("--file", EXAMPLES.resolve("translate_datagen.sql").toString(), "--var", "a=1", "--var", "a=2");
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains("--var a given twice"), r.err());
    }

    @Test
    void substituteFillsValuesAndDefaultsDoublesQuotesAndNamesWhatIsMissing() {
        Map<String, String> vars = Map.of("topic", "logs", "who", "O'Brien");
        Set<String> used = new TreeSet<>();
        assertEquals("'logs' 'x' 'O''Brien' ${literal} $ {} 'it''s'", SqlCommand.substitute(
                "'${topic}' '${rate:-x}' '${who}' $${literal} $ {} '${quote:-it's}'", vars, used));
        assertEquals(Set.of("topic", "who"), used);
        assertEquals("'logs'", SqlCommand.substitute("'${topic:-other}'", vars, used));
        assertEquals("", SqlCommand.substitute("${empty:-}", vars, used));
        assertEquals("${rows} has no value: give --var rows=VALUE", message(() -> SqlCommand.substitute("a ${rows} b", vars, used)));
        assertTrue(message(() -> SqlCommand.substitute("a ${rows", vars, used)).startsWith("'${' without a closing '}'"));
        assertTrue(message(() -> SqlCommand.substitute("a ${two words}", vars, used))
                .startsWith("'${two words}' is not a variable"));
    }

    private static String message(Runnable r) {
        try {
            r.run();
        } catch (IllegalArgumentException e) {
            return e.getMessage();
        }
        throw new AssertionError("no IllegalArgumentException");
    }

    @Test
    void summarizeKafkaExampleWritesEachSummaryOnceToTheOutputTopic() throws Exception {
        kafka.createTopic("sql-logs", 1);
        kafka.createTopic("sql-summaries", 1);
        List<byte[]> records = new ArrayList<>();
        for (String line : Files.readAllLines(SAMPLE_LOGS, StandardCharsets.UTF_8)) {
            records.add(line.getBytes(StandardCharsets.UTF_8));
        }
        kafka.produce("sql-logs", records);

        MainTest.Run r = SqlCommandTest.sql("--file", EXAMPLES.resolve("summarize_kafka.sql").toString(), "--model",
                gguf.toString(), "--max-new-tokens", "" + MAX_TOKENS, "--var", "bootstrap=" + kafka.bootstrapServers(),
                "--var", "input_topic=sql-logs", "--var", "output_topic=sql-summaries", "--var", "bounded=latest-offset",
                "--var", "checkpoint_interval=500ms");
        assertEquals(0, r.code(), r.err());

        Map<String, List<String>> windows = sampleWindows();
        Set<String> seen = new TreeSet<>();
        List<ConsumerRecord<byte[], byte[]>> out = kafka.readCommitted("sql-summaries");
        for (ConsumerRecord<byte[], byte[]> rec : out) {
            JsonNode o = new ObjectMapper().readTree(rec.value());
            assertEquals(o.get("source").asText(), new String(rec.key(), StandardCharsets.UTF_8), "record key");
            assertTrue(seen.add(checkSummary(o, windows)), "window summarized twice: " + o);
        }
        assertEquals(windows.keySet(), seen, out.size() + " records");
    }

    @Test
    void translateKafkaExampleWritesEachTranslationOnceToTheOutputTopic() throws Exception {
        kafka.createTopic("sql-requests", 2);
        kafka.createTopic("sql-translations", 1);
        List<String> requests = List.of(
                "{\"id\":\"r1\",\"key\":\"doc-a\",\"text\":\"hello world\"}",
                "{\"id\":\"r2\",\"key\":\"doc-a\",\"text\":\"the lazy dog\",\"target_lang\":\"fr\"}",
                "not json at all",
                "{\"id\":\"r3\",\"key\":\"doc-b\",\"text\":\"ERROR disk full on node 7\",\"target_lang\":\"German\"}",
                "{\"id\":\"r4\",\"key\":\"doc-b\",\"target_lang\":\"de\"}");
        kafka.produce("sql-requests", requests.stream().map(s -> s.getBytes(StandardCharsets.UTF_8)).toList());

        MainTest.Run r = SqlCommandTest.sql("--file", EXAMPLES.resolve("translate_kafka.sql").toString(), "--model",
                gguf.toString(), "--max-new-tokens", "" + MAX_TOKENS, "--var", "bootstrap=" + kafka.bootstrapServers(),
                "--var", "input_topic=sql-requests", "--var", "output_topic=sql-translations", "--var", "lang=es",
                "--var", "bounded=latest-offset", "--var", "checkpoint_interval=500ms");
        assertEquals(0, r.code(), r.err());

        Map<String, List<String>> want = new LinkedHashMap<>();
        want.put("r1", List.of("doc-a", "es", "hello world"));
        want.put("r2", List.of("doc-a", "fr", "the lazy dog"));
        want.put("r3", List.of("doc-b", "German", "ERROR disk full on node 7"));
        Map<String, JsonNode> got = new HashMap<>();
        for (ConsumerRecord<byte[], byte[]> rec : kafka.readCommitted("sql-translations")) {
            JsonNode o = new ObjectMapper().readTree(rec.value());
            assertEquals(List.of("id", "key", "target_lang", "translated", "model"), fields(o), o.toString());
            assertEquals(o.get("key").asText(), new String(rec.key(), StandardCharsets.UTF_8), "record key");
            assertTrue(got.put(o.get("id").asText(), o) == null, "translated twice: " + o);
        }
        assertEquals(want.keySet(), got.keySet(), got.toString());
        for (Map.Entry<String, List<String>> e : want.entrySet()) {
            JsonNode o = got.get(e.getKey());
            List<String> w = e.getValue();
            assertEquals(w.get(0), o.get("key").asText(), o.toString());
            assertEquals(w.get(1), o.get("target_lang").asText(), o.toString());
            assertEquals(expected(SqlPrompts.translate(w.get(2), w.get(1))), o.get("translated").asText(), e.getKey());
            assertEquals("tiny.gguf", o.get("model").asText());
        }
    }

    private static List<String> fields(JsonNode o) {
        List<String> names = new ArrayList<>();
        o.fieldNames().forEachRemaining(names::add);
        return names;
    }
}
