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
import org.apache.arrow.memory.RootAllocator;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.util.CloseableIterator;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/** The builder's {@code apply} in a job: results and the side output of rejected events. */
@SuppressWarnings("try")
class QwenInferenceITCase {

    @RegisterExtension
    static final MiniClusterExtension MINI_CLUSTER = LoopbackMiniCluster.withSlots(1);

    @TempDir
    static Path dir;

    static Path gguf;
    static RootAllocator arrow;


    @BeforeAll
    static void writeModel() throws Exception {
        gguf = dir.resolve("tiny.gguf");
        new TestModelGenerator(TestModelGenerator.tinyConfig(), 11).write(TestModelGenerator.Format.GGUF, DType.F32, gguf, 0);
    }

    @Test
    void applyReturnsResultsAndRejectedEventsAsStreams() throws Exception {
        arrow = new RootAllocator();
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(1);
        DataStream<InferenceEvent> events = env.fromData(
                new InferenceEvent("a", "a1", "hello world", 1),
                new InferenceEvent("b", "b1", "", 2),
                new InferenceEvent("a", "a2", "jumps over", 3),
                new InferenceEvent("b", "b2", "the lazy dog", 4));
        QwenInference.Result out = QwenInference.builder()
                .model(gguf)
                .modelName("tiny")
                .contextPolicy(256, 4)
                .maxNewTokens(4)
                .engine(2, 4, 1)
                .batch(2, 1 << 20, Duration.ofMillis(5))
                .arrowAllocator(() -> arrow)
                .build()
                .apply(events);
        DataStream<String> both = out.results()
                .map(r -> "answered " + r.requestId() + " by " + r.model() + " with " + r.generatedTokens())
                .returns(Types.STRING)
                .union(out.rejected().map(r -> "rejected " + r.event().requestId() + ": " + r.reason()).returns(Types.STRING));
        List<String> lines = new ArrayList<>();
        try (CloseableIterator<String> it = both.executeAndCollect("qwen-builder")) {
            it.forEachRemaining(lines::add);
        }
        lines.sort(null);
        assertEquals(4, lines.size(), lines.toString());
        assertTrue(lines.get(0).startsWith("answered a1 by tiny with "), lines.toString());
        assertTrue(lines.get(1).startsWith("answered a2 by tiny"), lines.toString());
        assertTrue(lines.get(2).startsWith("answered b2 by tiny"), lines.toString());
        assertTrue(lines.get(3).startsWith("rejected b1: ") && lines.get(3).contains("the text is empty"), lines.toString());
        assertEquals(0, arrow.getAllocatedMemory(), "Arrow memory leaked");
        arrow.close();
    }
}
