/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.inference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.engine.testmodel.TestModelGenerator;
import io.flinkqwen.kernels.DType;
import io.flinkqwen.operators.LoopbackMiniCluster;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.arrow.memory.RootAllocator;
import org.apache.flink.api.common.JobID;
import org.apache.flink.api.common.JobStatus;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.connector.source.util.ratelimit.RateLimiterStrategy;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.datagen.source.DataGeneratorSource;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.runtime.execution.SuppressRestartsException;
import org.apache.flink.runtime.executiongraph.AccessExecutionGraph;
import org.apache.flink.runtime.executiongraph.AccessExecutionVertex;
import org.apache.flink.runtime.minicluster.MiniCluster;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.test.junit5.InjectMiniCluster;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.util.ExceptionUtils;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * A job whose model file is unusable fails, in bounded time, under restart strategies that would
 * otherwise retry forever (Flink's default with checkpoints, and a fixed delay with unlimited
 * attempts), and the failure names the file; a model file that is not there at all is retried as
 * the strategy says (it may still be on its way to the TaskManager). Restarts are counted from the
 * execution graph: a task's attempt number grows by one with each restart.
 */
class ModelLoadFailureITCase {

    /** Far more than the jobs here take (a failure in open() ends them in about a second). */
    static final long BOUND_SECONDS = 60;

    @RegisterExtension
    static final MiniClusterExtension MINI_CLUSTER = LoopbackMiniCluster.withSlots(1);

    @TempDir
    static Path dir;

    static Path good;
    static RootAllocator arrow;

    @BeforeAll
    static void writeModel() throws Exception {
        good = dir.resolve("tiny.gguf");
        new TestModelGenerator(TestModelGenerator.tinyConfig(), 11).write(TestModelGenerator.Format.GGUF, DType.F32, good, 0);
        arrow = new RootAllocator();
    }

    @AfterAll
    static void closeArrow() {
        assertEquals(0, arrow.getAllocatedMemory(), "Arrow memory leaked");
        arrow.close();
    }

    /** {@code none}: Flink's default with checkpoints (exponential delay, unlimited attempts). */
    static Configuration restartStrategy(String type, int attempts) {
        Configuration c = new Configuration();
        if (type.equals("fixed-delay")) {
            c.setString("restart-strategy.type", "fixed-delay");
            c.setString("restart-strategy.fixed-delay.attempts", Integer.toString(attempts));
            c.setString("restart-strategy.fixed-delay.delay", "100 ms");
        }
        return c;
    }

    static JobClient submit(Path model, Configuration restart) throws Exception {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(1);
        env.enableCheckpointing(200);
        env.configure(restart);
        DataGeneratorSource<InferenceEvent> source = new DataGeneratorSource<>(
                new LongContextInferenceJobITCase.Events(), 20, RateLimiterStrategy.perSecond(4),
                TypeInformation.of(InferenceEvent.class));
        InferenceSettings settings = InferenceSettings.of(model).withContext(256, 4).withMaxNewTokens(4).withEngine(2, 4, 1);
        env.fromSource(source, WatermarkStrategy.noWatermarks(), "events")
                .keyBy(InferenceEvent::key)
                .transform("qwen", TypeInformation.of(InferenceResult.class),
                        new LongContextInferenceOperatorFactory(settings, EngineFactory.continuousBatching(), () -> arrow))
                .sinkTo(new DiscardingSink<>());
        return env.executeAsync("model-load-" + model.getFileName());
    }

    /** The highest attempt number of the job's tasks: how often the job restarted. */
    static int restarts(MiniCluster mini, JobID job) throws Exception {
        return restarts(mini.getArchivedExecutionGraph(job).get(BOUND_SECONDS, TimeUnit.SECONDS));
    }

    static int restarts(AccessExecutionGraph graph) {
        int max = 0;
        for (AccessExecutionVertex v : graph.getAllExecutionVertices()) {
            max = Math.max(max, v.getCurrentExecutionAttempt().getAttemptNumber());
        }
        return max;
    }

    @ParameterizedTest(name = "{0} model under restart strategy {1}")
    @CsvSource({"truncated, default", "truncated, fixed-delay", "garbage, default", "garbage, fixed-delay"})
    void unusableModelFailsTheJobWithoutRestarting(String corruption, String strategy, @InjectMiniCluster MiniCluster mini)
            throws Exception {
        Path bad = dir.resolve(corruption + "-" + strategy + ".gguf");
        byte[] bytes = Files.readAllBytes(good);
        if (corruption.equals("truncated")) {
            Files.write(bad, Arrays.copyOf(bytes, bytes.length / 2));
        } else {
            Arrays.fill(bytes, 0, 64, (byte) 0x5a); // no GGUF magic, no header
            Files.write(bad, bytes);
        }
        long start = System.nanoTime();
        JobClient job = submit(bad, restartStrategy(strategy, Integer.MAX_VALUE));
        ExecutionException e = assertThrows(ExecutionException.class,
                () -> job.getJobExecutionResult().get(BOUND_SECONDS, TimeUnit.SECONDS),
                "the job did not fail within " + BOUND_SECONDS + " s");
        double seconds = (System.nanoTime() - start) / 1e9;
        assertEquals(JobStatus.FAILED, job.getJobStatus().get());
        String trace = ExceptionUtils.stringifyException(e);
        assertTrue(ExceptionUtils.findThrowable(e, SuppressRestartsException.class).isPresent(), trace);
        assertTrue(ExceptionUtils.findThrowableWithMessage(e, bad.toString()).isPresent(),
                "no failure names the file " + bad + ": " + trace);
        assertEquals(0, restarts(mini, job.getJobID()), "the job restarted");
        System.out.printf("%s model, restart strategy %s: FAILED after %.1f s, no restart%n", corruption, strategy, seconds);
    }

    @Test
    void missingModelFileIsRetriedAsTheRestartStrategySays(@InjectMiniCluster MiniCluster mini) throws Exception {
        Path missing = dir.resolve("not-there-yet.gguf");
        JobClient job = submit(missing, restartStrategy("fixed-delay", 2));
        ExecutionException e = assertThrows(ExecutionException.class,
                () -> job.getJobExecutionResult().get(BOUND_SECONDS, TimeUnit.SECONDS));
        String trace = ExceptionUtils.stringifyException(e);
        assertTrue(ExceptionUtils.findThrowable(e, NoSuchFileException.class)
                .filter(f -> f.getMessage().contains(missing.toString()) && f.getMessage().contains("no model file"))
                .isPresent(), trace);
        assertTrue(ExceptionUtils.findThrowable(e, SuppressRestartsException.class).isEmpty(), trace);
        assertEquals(2, restarts(mini, job.getJobID()), "restarts of a job whose model file is missing");
    }

    @Test
    void missingModelFileIsRetriedByTheDefaultStrategy(@InjectMiniCluster MiniCluster mini) throws Exception {
        // the control of the parameterized test: the default does restart a failing job (forever)
        JobClient job = submit(dir.resolve("still-not-there.gguf"), restartStrategy("default", 0));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(BOUND_SECONDS);
        int restarts = 0;
        while (restarts < 1 && System.nanoTime() < deadline) {
            Thread.sleep(200);
            restarts = restarts(mini.getExecutionGraph(job.getJobID()).get(BOUND_SECONDS, TimeUnit.SECONDS));
        }
        JobStatus state = job.getJobStatus().get();
        job.cancel().get(BOUND_SECONDS, TimeUnit.SECONDS);
        assertTrue(restarts >= 1, "the default strategy did not restart the job within " + BOUND_SECONDS + " s");
        assertTrue(state == JobStatus.RESTARTING || state == JobStatus.RUNNING, "state " + state);
    }
}
