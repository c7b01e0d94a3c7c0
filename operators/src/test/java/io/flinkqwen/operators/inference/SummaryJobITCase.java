/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.inference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.engine.testmodel.TestModelGenerator;
import io.flinkqwen.operators.LoopbackMiniCluster;
import io.flinkqwen.kernels.DType;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.apache.arrow.memory.RootAllocator;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.connector.source.util.ratelimit.RateLimiterStrategy;
import org.apache.flink.connector.datagen.source.DataGeneratorSource;
import org.apache.flink.connector.datagen.source.GeneratorFunction;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.util.CloseableIterator;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * Event-time summaries in a real job: checkpoints every 200 ms, one failure injected after a
 * checkpoint completed, and the summaries equal a failure-free run's. The restore must bring
 * back each key's history, its collected events and its Flink timers. {@code executeAndCollect}
 * releases only what a completed checkpoint covers, so the comparison is exact.
 */
// Flink's iterator declares close() throws Exception (InterruptedException)
@SuppressWarnings("try")
class SummaryJobITCase {

    private static final int KEYS = 3;
    private static final int EVENTS_PER_KEY = 6;
    /** Event i has time 10 i: a 60 ms period holds two events of each key; three periods in all. */
    private static final Duration PERIOD = Duration.ofMillis(60);

    @RegisterExtension
    static final MiniClusterExtension MINI_CLUSTER = LoopbackMiniCluster.withSlots(1);

    @TempDir
    static Path dir;

    static Path gguf;


    @BeforeAll
    static void writeModel() throws Exception {
        gguf = dir.resolve("tiny.gguf");
        new TestModelGenerator(TestModelGenerator.tinyConfig(), 11).write(TestModelGenerator.Format.GGUF, DType.F32, gguf, 0);
    }

    static final class Events implements GeneratorFunction<Long, InferenceEvent> {
        @Override
        public InferenceEvent map(Long i) {
            String key = "source-" + (i % KEYS);
            return new InferenceEvent(key, key + "/" + (i / KEYS), "line " + i + ": status ok", 10 * i);
        }
    }

    static RootAllocator arrow;
    private static List<InferenceResult> run(boolean injectFailure) throws Exception {
        StreamExecutionEnvironment env = FailOnceAfterCheckpoint.checkpointedEnv();
        DataGeneratorSource<InferenceEvent> source = new DataGeneratorSource<>(
                new Events(), (long) KEYS * EVENTS_PER_KEY, RateLimiterStrategy.perSecond(8),
                TypeInformation.of(InferenceEvent.class));
        QwenInference qwen = QwenInference.builder()
                .model(gguf)
                .task(Task.summarize(0, PERIOD, Summaries.TimeDomain.EVENT_TIME))
                .contextPolicy(256, 4)
                .maxNewTokens(6)
                .engine(2, 4, 1)
                .arrowAllocator(() -> arrow)
                .build();
        var events = env.fromSource(source,
                WatermarkStrategy.<InferenceEvent>forMonotonousTimestamps().withTimestampAssigner((e, t) -> e.eventTimeMillis()),
                "events");
        var results = qwen.apply(events).results().map(new FailOnceAfterCheckpoint(injectFailure, 2));
        List<InferenceResult> out = new ArrayList<>();
        try (CloseableIterator<InferenceResult> it = results.executeAndCollect("summaries-" + injectFailure)) {
            it.forEachRemaining(r -> out.add(new InferenceResult(
                    r.key(), r.requestId(), r.outputText(), r.promptTokens(), r.generatedTokens(), 0, r.model())));
        }
        return out;
    }

    @Test
    void summaryJobWithAFailureMidStreamEmitsWhatAFailureFreeRunEmits() throws Exception {
        arrow = new RootAllocator();
        List<InferenceResult> clean = run(false);
        // one summary per key and period
        assertEquals(KEYS * 3, clean.size(), clean.toString());
        List<InferenceResult> recovered = run(true);
        assertTrue(FailOnceAfterCheckpoint.failed(), "the failure was not injected");
        Map<String, List<InferenceResult>> cleanByKey = clean.stream().collect(Collectors.groupingBy(InferenceResult::key));
        assertEquals(List.of("source-0/summary-1", "source-0/summary-2", "source-0/summary-3"),
                cleanByKey.get("source-0").stream().map(InferenceResult::requestId).toList());
        // exactly once and in per-key order
        assertEquals(cleanByKey, recovered.stream().collect(Collectors.groupingBy(InferenceResult::key)));
        assertEquals(0, arrow.getAllocatedMemory(), "Arrow memory leaked");
        arrow.close();
    }
}
