/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.jobs.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flinkqwen.engine.testmodel.TestModelGenerator;
import io.flinkqwen.kernels.DType;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code translate} on the embedded MiniCluster: a file in, JSON lines out, bad lines reported. */
class TranslateCommandTest {

    @TempDir static Path dir;
    static Path gguf;

    @BeforeAll
    static void model() throws Exception {
        gguf = dir.resolve("tiny.gguf");
        new TestModelGenerator(TestModelGenerator.tinyConfig(), 11).write(TestModelGenerator.Format.GGUF, DType.F32, gguf, 0);
    }

    @Test
    void fileInJsonLinesOutBadLinesReportedWithTheirLineAndTheJobGoesOn() throws Exception {
        ByteArrayOutputStream in = new ByteArrayOutputStream();
        String[] lines = {
            "{\"id\":\"a1\",\"key\":\"doc-a\",\"text\":\"hello world\"}",
            "{\"id\":\"a2\",\"key\":\"doc-a\",\"text\":\"jumps over\",\"target_lang\":\"German\"}",
            "not json at all",
            "{\"id\":\"b1\",\"key\":\"doc-b\",\"text\":\"the lazy dog\",\"target_lang\":\"de\",\"source_lang\":\"en\"}",
            "{\"id\":\"c1\",\"key\":\"doc-c\",\"text\":\"x\",\"target_lang\":\"fr\"}",
            "{\"id\":\"c2\",\"key\":\"doc-c\",\"target_lang\":\"de\"}",
            "{\"id\":\"c3\",\"key\":\"doc-c\",\"text\":\"x\",\"target_lang\":\"Klingon\"}",
        };
        for (String l : lines) {
            in.writeBytes((l + "\n").getBytes(StandardCharsets.UTF_8));
        }
        in.writeBytes(new byte[] {'{', '"', (byte) 0xFE, '"', '}', '\n'});
        in.writeBytes("{\"id\":\"b2\",\"key\":\"doc-b\",\"text\":\"and the end\"}\n".getBytes(StandardCharsets.UTF_8));
        Path requests = dir.resolve("requests.jsonl");
        Files.write(requests, in.toByteArray());

        MainTest.Run r = MainTest.run("translate", "--model", gguf.toString(), "--input", requests.toString(), "--to", "de",
                "--max-new-tokens", "4", "--context-tokens", "256", "--checkpoint-dir", dir.resolve("chk").toString(),
                "--checkpoint-interval", "200ms", "--kv-type", "f16");
        assertEquals(0, r.code(), r.err());

        ObjectMapper json = new ObjectMapper();
        TreeSet<String> ids = new TreeSet<>();
        for (String line : r.out().strip().split("\n")) {
            JsonNode o = json.readTree(line);
            ids.add(o.get("id").asText());
            assertEquals("de", o.get("target_lang").asText(), line);
            assertEquals("translate", o.get("task").asText(), line);
            assertEquals("tiny.gguf", o.get("model").asText(), line);
            assertEquals(o.get("id").asText().charAt(0), o.get("key").asText().charAt(4), line);
            assertTrue(o.get("generated_tokens").asInt() >= 1 && o.get("prompt_tokens").asInt() > 0, line);
            assertTrue(o.has("output") && o.has("latency_ms"), line);
        }
        assertEquals(new TreeSet<>(List.of("a1", "a2", "b1", "b2")), ids, r.out());

        List<String> skipped = new ArrayList<>();
        for (String line : r.err().split("\n")) {
            if (line.startsWith("skipped ")) {
                skipped.add(line);
            }
        }
        skipped.sort(null);
        assertEquals(5, skipped.size(), r.err());
        assertTrue(skipped.get(0).startsWith("skipped request c1 (key doc-c): target_lang 'fr' is not served by this job"
                + " (it translates into de)"), skipped.toString());
        assertTrue(skipped.get(1).startsWith("skipped requests.jsonl:3: not valid JSON"), skipped.toString());
        assertTrue(skipped.get(2).startsWith("skipped requests.jsonl:6: missing field 'text'"), skipped.toString());
        assertTrue(skipped.get(3).startsWith("skipped requests.jsonl:7: unknown language 'Klingon' in target_lang"), skipped.toString());
        assertTrue(skipped.get(4).startsWith("skipped requests.jsonl:8: invalid UTF-8 at byte 2"), skipped.toString());
        assertTrue(r.err().contains("translate: 4 translated, 5 skipped"), r.err());
    }

    @Test
    void wrongCommandLinesAreUsageErrorsNamingTheOption() throws Exception {
        MainTest.Run r = MainTest.run("translate", "--model", gguf.toString(), "--input", "x", "--to", "Klingon");
        assertEquals(2, r.code());
        assertTrue(r.err().contains("unknown language 'Klingon' in --to"), r.err());
        r = MainTest.run("translate", "--model", gguf.toString(), "--input", "x", "--to", "de", "--kv-type", "int8");
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains("translate: --kv-type must be f32, f16 or q8, got 'int8'"), r.err());

        r = MainTest.run("translate", "--model", gguf.toString(), "--input", "x", "--to", "de", "--output-topic", "t");
        assertEquals(2, r.code());
        assertTrue(r.err().contains("--output-topic needs --kafka-bootstrap"), r.err());

        r = MainTest.run("translate", "--model", gguf.toString(), "--to", "de");
        assertEquals(2, r.code());
        assertTrue(r.err().contains("give exactly one of --input FILE|- and --kafka-bootstrap"), r.err());

        r = MainTest.run("translate", "--model", gguf.toString(), "--input", dir.resolve("missing.jsonl").toString(), "--to", "de");
        assertEquals(1, r.code());
        assertTrue(r.err().contains("missing.jsonl is not a file"), r.err());

        // a setting only the task managers can check (the model's positions): the job's own error, one line
        Path one = dir.resolve("one.jsonl");
        Files.writeString(one, "{\"id\":\"a1\",\"key\":\"k\",\"text\":\"hello\"}\n");
        r = MainTest.run("translate", "--model", gguf.toString(), "--input", one.toString(), "--to", "de",
                "--context-tokens", "4096");
        assertEquals(1, r.code());
        assertTrue(r.err().contains("error: translate: the job failed: maxContextTokens 4096 exceeds the model's"
                + " max_position_embeddings"), r.err());

        r = MainTest.run("translate", "--model", gguf.toString(), "--input", "x", "--to", "de", "--max-new-tokens", "5000",
                "--context-tokens", "256");
        assertEquals(2, r.code());
        assertTrue(r.err().contains("maxNewTokens (5000) leaves no room"), r.err());
    }

    @Test
    void offlineQwen2HalfBFallsBackToRandomWeightsOfItsShapeAndEveryResultIsMarked() throws Exception {
        Path cache = dir.resolve("fallback-cache");
        java.util.Map<String, String> offline = java.util.Map.of("HF_HUB_OFFLINE", "1", "HF_HOME",
                dir.resolve("hf").toString(), "FLINK_QWEN_CACHE", cache.toString());
        // Qwen2-0.5B's shape in the command; the tiny one here to stay fast
        ModelArgs.RandomWeights tiny = new ModelArgs.RandomWeights("tiny", DType.F32, 3, cache);
        Path requests = dir.resolve("fallback.jsonl");
        Files.writeString(requests, "{\"id\":\"a1\",\"key\":\"doc-a\",\"text\":\"hello world\"}\n");
        SummarizeCommandTest.Run r = SummarizeCommandTest.run(new TranslateCommand(offline, tiny), "--model",
                "Qwen/Qwen2-0.5B-Instruct", "--input", requests.toString(), "--to", "de", "--max-new-tokens", "2",
                "--context-tokens", "256");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("translate: cannot download Qwen/Qwen2-0.5B-Instruct (HF_HUB_OFFLINE is set"), r.err());
        assertTrue(r.err().contains("RUNNING ON RANDOM WEIGHTS"), r.err());
        String[] lines = r.out().strip().split("\n");
        assertEquals(1, lines.length, r.out());
        assertEquals("random-weights-tiny-shape", new ObjectMapper().readTree(lines[0]).get("model").asText(), lines[0]);
    }
}
