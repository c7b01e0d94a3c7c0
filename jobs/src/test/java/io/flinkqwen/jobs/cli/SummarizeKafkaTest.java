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
import io.flinkqwen.connectors.kafka.EmbeddedKafkaBroker;
import io.flinkqwen.engine.testmodel.TestModelGenerator;
import io.flinkqwen.kernels.DType;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code summarize} from Kafka to Kafka against a real broker in this JVM: log events in the
 * input topic, the job with exactly-once delivery, and a {@code read_committed} consumer that
 * sees exactly one record per expected summary, each the same as the same job's output over the
 * same lines from a file, and one dead letter per bad record.
 */
class SummarizeKafkaTest {

    @TempDir Path dir;

    @Test
    void kafkaInKafkaOutExactlyOneCommittedRecordPerSummaryAndPerBadRecord() throws Exception {
        Path gguf = dir.resolve("tiny.gguf");
        new TestModelGenerator(TestModelGenerator.tinyConfig(), 11).write(TestModelGenerator.Format.GGUF, DType.F32, gguf, 0);
        // as SummarizeCommandTest: per source, a summary every 3 lines and at the end of each
        // minute of event time; five summaries whatever the timing, two bad records
        List<String> lines = List.of(
                SummarizeCommandTest.log("api-1", 0, "INFO", "GET /orders 200"),
                SummarizeCommandTest.log("db-1", 5_000, "INFO", "checkpoint complete"),
                "not json at all",
                SummarizeCommandTest.log("api-1", 10_000, "WARN", "slow query 1203 ms"),
                SummarizeCommandTest.log("db-1", 15_000, "WARN", "too many connections"),
                "{\"source\":\"api-1\",\"ts\":12000,\"level\":\"INFO\"}",
                SummarizeCommandTest.log("api-1", 20_000, "ERROR", "pool exhausted"),
                SummarizeCommandTest.log("db-1", 25_000, "WARN", "long query"),
                SummarizeCommandTest.log("api-1", 30_000, "INFO", "pool raised to 40"),
                SummarizeCommandTest.log("db-1", 35_000, "INFO", "autovacuum done"),
                SummarizeCommandTest.log("api-1", 70_000, "", "disk full"));
        List<String> options = List.of("--model", gguf.toString(), "--every", "3", "--every-seconds", "60",
                "--max-new-tokens", "4", "--context-tokens", "1000");

        // the reference: the same job over the same lines from a file, to stdout
        Path file = dir.resolve("logs.jsonl");
        Files.write(file, lines, StandardCharsets.UTF_8);
        List<String> fileArgs = new ArrayList<>(List.of("summarize", "--input", file.toString()));
        fileArgs.addAll(options);
        MainTest.Run ref = MainTest.run(fileArgs.toArray(String[]::new));
        assertEquals(0, ref.code(), ref.err());
        ObjectMapper json = new ObjectMapper();
        Map<String, String> expected = new TreeMap<>();
        for (String line : ref.out().strip().split("\n")) {
            JsonNode o = json.readTree(line);
            expected.put(o.get("id").asText(), o.get("output").asText());
        }
        assertEquals(List.of("api-1/summary-1", "api-1/summary-2", "api-1/summary-3", "db-1/summary-1", "db-1/summary-2"),
                new ArrayList<>(expected.keySet()), ref.out());

        try (EmbeddedKafkaBroker kafka = EmbeddedKafkaBroker.start()) {
            kafka.createTopic("logs", 1);
            kafka.createTopic("summaries", 2);
            kafka.createTopic("dead", 1);
            kafka.produce("logs", lines.stream().map(s -> s.getBytes(StandardCharsets.UTF_8)).toList());

            List<String> kafkaArgs = new ArrayList<>(List.of("summarize", "--kafka-bootstrap", kafka.bootstrapServers(),
                    "--input-topic", "logs", "--output-topic", "summaries", "--dead-letter-topic", "dead", "--bounded",
                    "--checkpoint-interval", "500ms"));
            kafkaArgs.addAll(options);
            MainTest.Run r = MainTest.run(kafkaArgs.toArray(String[]::new));
            assertEquals(0, r.code(), r.err());
            assertTrue(r.err().contains("summarize: summaries per source every 3 lines or 60 s of event time, model"
                    + " tiny.gguf from logs to summaries (exactly-once)"), r.err());

            Map<String, String> got = new TreeMap<>();
            List<ConsumerRecord<byte[], byte[]>> records = kafka.readCommitted("summaries");
            for (ConsumerRecord<byte[], byte[]> rec : records) {
                JsonNode o = json.readTree(rec.value());
                String id = o.get("id").asText();
                assertEquals(o.get("key").asText(), new String(rec.key(), StandardCharsets.UTF_8), id);
                assertEquals("summarize", o.get("task").asText(), id);
                assertEquals("tiny.gguf", o.get("model").asText(), id);
                assertTrue(got.put(id, o.get("output").asText()) == null, "summary written twice: " + id);
            }
            assertEquals(expected, got, records.size() + " records");

            List<String> origins = new ArrayList<>();
            for (ConsumerRecord<byte[], byte[]> rec : kafka.readCommitted("dead")) {
                origins.add(json.readTree(rec.value()).get("origin").asText());
            }
            origins.sort(null);
            assertEquals(List.of("logs-0@2", "logs-0@5"), origins);
        }
    }
}
