/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.jobs.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.operators.inference.InferenceSettings;
import io.flinkqwen.operators.inference.QwenInference;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The engine options the streaming commands share, as they reach the operator's settings. */
class StreamingJobTest {

    static InferenceSettings engine(String... argv) {
        Args a = Args.parse("translate", List.of(argv), StreamingJob.ENGINE_OPTIONS, Set.of());
        QwenInference.Builder b = QwenInference.builder().model("m.gguf");
        StreamingJob.engine("translate", a, b);
        return b.build().settings();
    }

    @Test
    void kvBudgetMibSetsTheOperatorsKvBudget() {
        assertEquals(3L << 20, engine("--kv-budget-mib", "3").kvBudgetBytes());
        assertEquals(0, engine("--kv-budget-mib", "0").kvBudgetBytes()); // one request at a time, no idle cache
        assertEquals(InferenceSettings.DEFAULT_KV_BUDGET_BYTES, engine().kvBudgetBytes());
        assertEquals(2, engine("--threads", "2").threads());
        String m = assertThrows(Args.UsageException.class, () -> engine("--kv-budget-mib", "-1")).getMessage();
        assertTrue(m.contains("translate: --kv-budget-mib must be >= 0, got -1"), m);
    }

    @Test
    void kvTypeSetsTheOperatorsKvFormatAndUnsetLeavesItToTheTaskManager() {
        assertEquals(io.flinkqwen.engine.model.KvFormat.Q8, engine("--kv-type", "q8").kvFormat());
        assertEquals(null, engine().kvFormat());
        String m = assertThrows(Args.UsageException.class, () -> engine("--kv-type", "q4")).getMessage();
        assertTrue(m.contains("q4"), m);
    }

    static StreamingJob job(String... argv) {
        Args a = Args.parse("translate", List.of(argv), StreamingJob.OPTIONS, StreamingJob.FLAGS, StreamingJob.REPEATABLE);
        return StreamingJob.parse("translate", a);
    }

    @Test
    void kafkaProducerPropertiesAreKeptInOrderAndCheckedForKeyAndValue() {
        StreamingJob j = job("--kafka-bootstrap", "127.0.0.1:9092", "--input-topic", "in", "--output-topic", "out",
                "--kafka-producer-property", "buffer.memory=4096", "--kafka-producer-property=compression.type = zstd",
                "--kafka-producer-property", "linger.ms=");
        assertEquals(List.of("buffer.memory", "compression.type", "linger.ms"), List.copyOf(j.producerProperties.keySet()));
        assertEquals("4096", j.producerProperties.get("buffer.memory"));
        assertEquals("zstd", j.producerProperties.get("compression.type"));
        assertEquals("", j.producerProperties.get("linger.ms"));
        String m = assertThrows(Args.UsageException.class, () -> job("--kafka-bootstrap", "h:1", "--input-topic", "in",
                "--output-topic", "out", "--kafka-producer-property", "buffer.memory")).getMessage();
        assertTrue(m.contains("--kafka-producer-property takes KEY=VALUE, got 'buffer.memory'"), m);
        m = assertThrows(Args.UsageException.class, () -> job("--input", "x.jsonl", "--kafka-producer-property", "a=b"))
                .getMessage();
        assertTrue(m.contains("--kafka-producer-property needs --kafka-bootstrap"), m);
    }
}
