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
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.util.CloseableIterator;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The operator in a real job on a MiniCluster: checkpoints every 200 ms, one failure injected
 * after a checkpoint completed, and the job's results equal a failure-free run's. The results
 * come through {@code executeAndCollect}, whose sink releases only what a completed checkpoint
 * covers, so the comparison is exact: no deduplication.
 */
// Flink's harness and iterator declare close() throws Exception (InterruptedException)
@SuppressWarnings("try")
class LongContextInferenceJobITCase {

    private static final int KEYS = 3;
    private static final int EVENTS_PER_KEY = 4;

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

    /** Event i: key i % KEYS, its (i / KEYS)-th turn. */
    static final class Events implements GeneratorFunction<Long, InferenceEvent> {
        @Override
        public InferenceEvent map(Long i) {
            String key = "key-" + (i % KEYS);
            return new InferenceEvent(key, key + "/" + (i / KEYS), "event " + i + " says hello", i);
        }
    }

    /** The operators' Arrow parent: same JVM as the MiniCluster; checked for leaks after both runs. */
    static RootAllocator arrow;

    private static List<InferenceResult> run(boolean injectFailure) throws Exception {
        StreamExecutionEnvironment env = FailOnceAfterCheckpoint.checkpointedEnv();
        DataGeneratorSource<InferenceEvent> source = new DataGeneratorSource<>(
                new Events(), (long) KEYS * EVENTS_PER_KEY, RateLimiterStrategy.perSecond(8),
                TypeInformation.of(InferenceEvent.class));
        InferenceSettings settings = InferenceSettings.of(gguf).withContext(256, 4).withMaxNewTokens(6).withEngine(2, 4, 1);
        DataStream<InferenceResult> results = env.fromSource(source, WatermarkStrategy.noWatermarks(), "events")
                .keyBy(InferenceEvent::key)
                .transform("qwen", TypeInformation.of(InferenceResult.class),
                        new LongContextInferenceOperatorFactory(settings, EngineFactory.continuousBatching(), () -> arrow))
                .map(new FailOnceAfterCheckpoint(injectFailure, 5));
        List<InferenceResult> out = new ArrayList<>();
        try (CloseableIterator<InferenceResult> it = results.executeAndCollect("long-context-" + injectFailure)) {
            it.forEachRemaining(r -> out.add(new InferenceResult(
                    r.key(), r.requestId(), r.outputText(), r.promptTokens(), r.generatedTokens(), 0, r.model())));
        }
        return out;
    }

    @Test
    void jobWithAFailureMidStreamEmitsWhatAFailureFreeRunEmits() throws Exception {
        arrow = new RootAllocator();
        List<InferenceResult> clean = run(false);
        assertEquals(KEYS * EVENTS_PER_KEY, clean.size());
        List<InferenceResult> recovered = run(true);
        assertTrue(FailOnceAfterCheckpoint.failed(), "the failure was not injected");
        // results emitted before the failure and replayed after it went through the map twice
        assertTrue(FailOnceAfterCheckpoint.passed() >= recovered.size(), FailOnceAfterCheckpoint.passed() + " passed, " + recovered.size() + " collected");
        Map<String, List<InferenceResult>> cleanByKey = clean.stream().collect(Collectors.groupingBy(InferenceResult::key));
        Map<String, List<InferenceResult>> recoveredByKey =
                recovered.stream().collect(Collectors.groupingBy(InferenceResult::key));
        // exactly once and in per-key order
        assertEquals(cleanByKey, recoveredByKey);
        // the failed task's operator closed its batches and allocator as well
        assertEquals(0, arrow.getAllocatedMemory(), "Arrow memory leaked");
        arrow.close();
    }
}
