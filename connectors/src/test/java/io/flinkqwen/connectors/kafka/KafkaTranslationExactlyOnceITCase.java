/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.connectors.kafka;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.connectors.format.DeadLetter;
import io.flinkqwen.connectors.format.DeadLetterFormat;
import io.flinkqwen.connectors.format.TranslationRequest;
import io.flinkqwen.connectors.format.TranslationRequestFormat;
import io.flinkqwen.connectors.format.TranslationResultFormat;
import io.flinkqwen.connectors.translate.TranslationPipeline;
import io.flinkqwen.connectors.translate.TranslationResult;
import io.flinkqwen.engine.testmodel.TestModelGenerator;
import io.flinkqwen.kernels.DType;
import io.flinkqwen.operators.inference.QwenInference;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Function;
import java.util.stream.Collectors;
import org.apache.flink.api.common.JobStatus;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.JobManagerOptions;
import org.apache.flink.configuration.RestOptions;
import org.apache.flink.configuration.TaskManagerOptions;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * Kafka in, translation on a tiny generated model, Kafka out, exactly once: the job is failed on
 * purpose in the middle of the stream, restores from its last checkpoint and replays from the
 * offsets in it; a read_committed consumer then sees exactly one result per valid request and
 * one dead letter per bad one, although the failed attempt had already written some of them
 * (into transactions that were aborted).
 */
class KafkaTranslationExactlyOnceITCase {

    private static final int KEYS = 3;
    private static final int PER_KEY = 4;

    @RegisterExtension
    static final MiniClusterExtension MINI_CLUSTER = new MiniClusterExtension(
            new MiniClusterResourceConfiguration.Builder()
                    .setConfiguration(loopback())
                    .setNumberTaskManagers(1)
                    .setNumberSlotsPerTaskManager(2)
                    .build());

    @TempDir
    static Path dir;

    static Path gguf;
    static EmbeddedKafkaBroker kafka;

    static final AtomicBoolean failed = new AtomicBoolean();

    private static Configuration loopback() {
        Configuration c = new Configuration();
        c.set(RestOptions.BIND_ADDRESS, "127.0.0.1");
        c.set(RestOptions.ADDRESS, "127.0.0.1");
        c.set(JobManagerOptions.BIND_HOST, "127.0.0.1");
        c.set(TaskManagerOptions.BIND_HOST, "127.0.0.1");
        c.set(TaskManagerOptions.HOST, "127.0.0.1");
        return c;
    }

    @BeforeAll
    static void startKafkaAndWriteModel() throws Exception {
        gguf = dir.resolve("tiny.gguf");
        new TestModelGenerator(TestModelGenerator.tinyConfig(), 11).write(TestModelGenerator.Format.GGUF, DType.F32, gguf, 0);
        kafka = EmbeddedKafkaBroker.start();
    }

    @AfterAll
    static void stopKafka() throws Exception {
        if (kafka != null) {
            kafka.close();
        }
    }

    /** Fails the job once, on the third result of the second batch of requests (ids "p2-..."). */
    static final class FailOnceInSecondBatch implements MapFunction<TranslationResult, TranslationResult> {
        private static final long serialVersionUID = 1L;
        private int secondBatchSeen;

        @Override
        public TranslationResult map(TranslationResult r) {
            if (r.result().requestId().startsWith("p2-") && ++secondBatchSeen == 3 && failed.compareAndSet(false, true)) {
                throw new IllegalStateException("injected failure at " + r.result().requestId());
            }
            return r;
        }
    }

    private static List<byte[]> requests(String batch) {
        List<byte[]> out = new ArrayList<>();
        for (int i = 0; i < KEYS * PER_KEY / 2; i++) {
            String key = "doc-" + (i % KEYS);
            out.add(TranslationRequestFormat.encode(new TranslationRequest(
                    batch + "-" + i, key, "segment " + i + " of " + key + " in " + batch, i % 2 == 0 ? "de" : "fr", "en")));
        }
        return out;
    }

    private static <T> List<T> decode(List<ConsumerRecord<byte[], byte[]>> records,
            io.flinkqwen.connectors.format.RecordDecoder<T> decoder) throws Exception {
        List<T> out = new ArrayList<>();
        for (ConsumerRecord<byte[], byte[]> r : records) {
            out.add(decoder.decode(r.value()));
        }
        return out;
    }

    @Test
    void jobKilledMidStreamRestoresAndEveryRequestHasExactlyOneCommittedResult() throws Exception {
        String in = "requests";
        String out = "translations";
        String dead = "dead-letters";
        kafka.createTopic(in, 2);
        kafka.createTopic(out, 2);
        kafka.createTopic(dead, 1);

        List<byte[]> first = new ArrayList<>(requests("p1"));
        first.add("{\"id\":\"bad-json\",".getBytes(StandardCharsets.UTF_8));
        first.add("{\"id\":\"no-text\",\"key\":\"doc-0\",\"target_lang\":\"de\"}".getBytes(StandardCharsets.UTF_8));
        first.add(new byte[] {'{', '"', 'i', 'd', '"', ':', '"', (byte) 0xC0, '"', '}'});
        first.add("{\"id\":\"klingon\",\"key\":\"doc-0\",\"text\":\"t\",\"target_lang\":\"Klingon\"}".getBytes(StandardCharsets.UTF_8));
        first.add("{\"id\":\"thai\",\"key\":\"doc-0\",\"text\":\"t\",\"target_lang\":\"Thai\"}".getBytes(StandardCharsets.UTF_8));
        first.add(("{\"id\":\"huge\",\"key\":\"doc-0\",\"target_lang\":\"de\",\"text\":\"" + "a".repeat(5000) + "\"}")
                .getBytes(StandardCharsets.UTF_8));
        kafka.produce(in, first);

        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(2);
        env.enableCheckpointing(300);
        Configuration restart = new Configuration();
        restart.setString("restart-strategy.type", "fixed-delay");
        restart.setString("restart-strategy.fixed-delay.attempts", "3");
        restart.setString("restart-strategy.fixed-delay.delay", "100 ms");
        env.configure(restart);

        var source = KafkaIo.source(kafka.bootstrapServers(), in, "translator", new TranslationRequestFormat(4096, null), false);
        QwenInference.Builder inference = QwenInference.builder()
                .model(gguf)
                .modelName("tiny")
                .contextPolicy(256, 4)
                .maxNewTokens(6)
                .engine(2, 4, 1)
                .batch(2, 1 << 20, Duration.ofMillis(5));
        TranslationPipeline.Result result = TranslationPipeline.apply(
                env.fromSource(source, WatermarkStrategy.noWatermarks(), "requests"), Set.of("de", "fr"), inference);
        String run = UUID.randomUUID().toString().substring(0, 8);
        result.results()
                .map(new FailOnceInSecondBatch())
                .returns(TypeInformation.of(TranslationResult.class))
                .sinkTo(KafkaIo.sink(kafka.bootstrapServers(), out, new TranslationResultFormat(), r -> r.result().key(),
                        DeliveryGuarantee.EXACTLY_ONCE, "results-" + run));
        result.deadLetters()
                .sinkTo(KafkaIo.sink(kafka.bootstrapServers(), dead, new DeadLetterFormat(), DeadLetter::origin,
                        DeliveryGuarantee.EXACTLY_ONCE, "dead-" + run));
        JobClient job = env.executeAsync("kafka-translation");
        try {
            // the first batch's results become visible only when a checkpoint committed them
            int expectedFirst = KEYS * PER_KEY / 2;
            awaitCommitted(out, expectedFirst, job);
            kafka.produce(in, requests("p2"));
            awaitCommitted(out, KEYS * PER_KEY, job);
            // one more checkpoint: anything replayed twice would be committed by now
            Thread.sleep(1000);
        } finally {
            job.cancel().get();
        }
        assertTrue(failed.get(), "the failure was not injected");

        List<TranslationResult> results = decode(kafka.readCommitted(out), new TranslationResultFormat());
        Map<String, Long> perId = results.stream()
                .collect(Collectors.groupingBy(r -> r.result().requestId(), TreeMap::new, Collectors.counting()));
        Set<String> expectedIds = new java.util.TreeSet<>();
        for (int i = 0; i < KEYS * PER_KEY / 2; i++) {
            expectedIds.add("p1-" + i);
            expectedIds.add("p2-" + i);
        }
        assertEquals(expectedIds, perId.keySet());
        assertTrue(perId.values().stream().allMatch(n -> n == 1), "duplicates: " + perId);
        for (TranslationResult r : results) {
            int i = Integer.parseInt(r.result().requestId().substring(3));
            assertEquals(i % 2 == 0 ? "de" : "fr", r.targetLang(), r.toString());
            assertEquals("doc-" + (i % KEYS), r.result().key());
            assertEquals("tiny", r.result().model());
            assertTrue(r.result().generatedTokens() >= 1 && r.result().promptTokens() > 0, r.toString());
        }

        List<DeadLetter> deadLetters = decode(kafka.readCommitted(dead), new DeadLetterFormat());
        assertEquals(6, deadLetters.size(), deadLetters.toString());
        // a dead letter is found by its record's id in its payload (decoding) or its origin (routing)
        Function<String, String> reasonOf = id -> deadLetters.stream()
                .filter(d -> d.payload().contains("\"id\":\"" + id) || d.origin().startsWith("request " + id + " "))
                .map(DeadLetter::reason)
                .reduce((a, b) -> a + " AND " + b)
                .orElse("none for " + id);
        assertTrue(reasonOf.apply("bad-json").startsWith("not valid JSON"), deadLetters.toString());
        assertEquals("missing field 'text'", reasonOf.apply("no-text"));
        assertEquals("invalid UTF-8 at byte 7 (1 bad byte)", reasonOf.apply("\ufffd"));
        assertTrue(reasonOf.apply("klingon").startsWith("unknown language 'Klingon' in target_lang"), deadLetters.toString());
        assertEquals("target_lang 'th' is not served by this job (it translates into de, fr)", reasonOf.apply("thai"));
        assertEquals("the record is 5056 bytes, over the limit of 4096 bytes", reasonOf.apply("huge"));
        assertTrue(deadLetters.stream().filter(d -> d.origin().startsWith(in + "-")).count() == 5, deadLetters.toString());
    }

    private static void awaitCommitted(String topic, int n, JobClient job) throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(90).toNanos();
        int seen = 0;
        while (System.nanoTime() < deadline) {
            JobStatus status = job.getJobStatus().get();
            if (status.isGloballyTerminalState()) {
                throw new AssertionError("the job ended (" + status + ") before " + n + " results were committed");
            }
            seen = kafka.readCommitted(topic).size();
            if (seen >= n) {
                return;
            }
            Thread.sleep(200);
        }
        throw new AssertionError(seen + " of " + n + " results committed in " + topic + " after 90 s");
    }
}
