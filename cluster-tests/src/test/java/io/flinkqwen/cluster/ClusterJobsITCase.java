/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.flinkqwen.connectors.kafka.EmbeddedKafkaBroker;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import org.apache.flink.runtime.state.KeyGroupRangeAssignment;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.common.quota.ClientQuotaAlteration;
import org.apache.kafka.common.quota.ClientQuotaEntity;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * The log-summarization and translation jobs of the shaded jar, submitted with {@code flink run}
 * to a session cluster of separate JVMs (one JobManager, two TaskManagers of one slot each) and
 * run at parallelism 2 between a real Kafka broker's topics, with failures injected. Every
 * scenario reads the results back with a {@code read_committed} consumer and asserts that every
 * input has exactly one result (nothing lost, nothing duplicated), that each key's context
 * survived (greedy decoding is deterministic: the results equal those of an undisturbed run, or
 * carry the key's growing history), and that the operator's KV budget and Arrow memory are back
 * to rest afterwards. The numbers of the cluster document come from this test's output ({@code
 * [cluster]} lines).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ClusterJobsITCase {

    /** Summaries every 3 lines; 6 lines per source: summary-1 and summary-2 per source. */
    static final int EVERY = 3;
    static final int LINES = 6;
    /** Six log sources, three on each subtask of a keyed operator at parallelism 2. */
    static final List<String> SOURCES = balancedSources();
    /** Per translated segment. */
    static final int MAX_NEW_TOKENS = 12;
    /**
     * Per summary: long enough that a summary's generation lasts seconds (the tiny model decodes
     * a few hundred tokens per second per key), so that the TaskManager kill can be timed to land
     * in one. Some summaries end earlier, at a stop token.
     */
    static final int SUMMARY_NEW_TOKENS = 800;
    /** The summaries' context: the test model serves 4096 positions (YaRN, 4 x 1024). */
    static final int SUMMARY_CONTEXT = 4096;
    static final long KV_BUDGET = 256L << 20; // the jobs' default (InferenceSettings)
    static final Duration JOB_TIMEOUT = Duration.ofMinutes(3);
    /**
     * What the Arrow batches of one operator may hold: at most {@code capacity} (16) requests are
     * staged or in the engine, in batches of up to 1 MiB of payload (the jobs' defaults), and Arrow
     * rounds buffers up to powers of two.
     */
    static final long ARROW_BOUND = 2L * (16 / 4 + 1) << 20;
    static final List<String> OPERATOR_METRICS = List.of("requests", "requestsRejected", "arrowBytes", "kvBytesInUse",
            "idleKvBytes", "queueLength", "bufferedRequests", "openBatches", "tokensOut", "generatedTokens", "evictions");
    /** What an operator's Arrow allocator holds with no request: its empty staging batch (418 bytes seen). */
    static final long ARROW_AT_REST = 1024;

    EmbeddedKafkaBroker broker;
    FlinkProcessCluster cluster;
    Path jar;
    Path model;
    Path work;
    /** Results of the undisturbed summarization run, by id: the reference of the chaos runs. */
    Map<String, JsonNode> summaryReference;
    /** Results of the translation run with poison records, by id. */
    Map<String, JsonNode> translationReference;
    final List<String> jobs = new ArrayList<>();
    long suiteStart;

    @BeforeAll
    void startClusterAndBroker() throws Exception {
        suiteStart = System.nanoTime();
        jar = Paths.get(System.getProperty("flinkqwen.cluster.jobs-jar", "../jobs/target/flink-qwen-jobs-flink.jar"))
                .toAbsolutePath().normalize();
        assertTrue(Files.isRegularFile(jar), "no " + jar + ": run `mvn verify` (it packages the jobs module first)");
        String cp = Files.readString(Paths.get(System.getProperty("flinkqwen.cluster.classpath",
                "target/flink-lib.classpath"))).trim();
        work = Paths.get(System.getProperty("flinkqwen.cluster.work-dir", "target/cluster"))
                .resolve("run-" + System.currentTimeMillis()).toAbsolutePath();
        Files.createDirectories(work);
        // client quotas measured over 2 windows of 1 s, not 11: the slow-sink scenario's quota
        // holds back its results within a second, not after 10 s of them have passed
        broker = EmbeddedKafkaBroker.start(Map.of("quota.window.num", "2", "quota.window.size.seconds", "1"));
        long t0 = System.nanoTime();
        // Flink's default restart strategy (with checkpoints: exponential delay, retrying forever):
        // a corrupt model must end the job by itself (the operator suppresses restarts), a lost
        // TaskManager must not. Network buffers as small as Flink allows (4 KiB, one exclusive
        // buffer per channel, one floating per gate, no overdraft), so that a slow sink back-pressures the
        // source with tens of KB of input, not tens of MB.
        cluster = FlinkProcessCluster.start(work, cp, 2, Map.of(
                "taskmanager.memory.segment-size", "4kb",
                "taskmanager.network.memory.buffers-per-channel", "1",
                "taskmanager.network.memory.floating-buffers-per-gate", "1",
                "taskmanager.network.memory.max-overdraft-buffers-per-gate", "0"), Duration.ofMinutes(3));
        log("cluster up (JobManager + 2 TaskManagers registered) in %.1f s", secondsSince(t0));
        model = work.resolve("tiny.gguf");
        FlinkProcessCluster.Client made = cluster.runJar(jar, "io.flinkqwen.jobs.cli.Main", List.of("make-test-model",
                "--arch", "qwen2", "--preset", "tiny", "--dtype", "f32", "--format", "gguf", "--seed", "7",
                "--yarn", "4:1024", "--out", model.toString()), Duration.ofMinutes(2));
        assertEquals(0, made.exitCode(), made.output());
    }

    @AfterEach
    void cancelJobs(TestInfo test) throws Exception {
        for (String job : jobs) {
            String state = cluster.rest.jobState(job);
            if (state.equals("RUNNING") || state.equals("RESTARTING") || state.equals("CREATED")) {
                cluster.rest.cancel(job);
                RestApi.await("job " + job + " cancelled", Duration.ofMinutes(1),
                        () -> cluster.rest.jobState(job).equals("CANCELED"));
            }
        }
        jobs.clear();
        // Arrow's allocator fails loudly when an operator closes with memory still allocated
        String logs = cluster.taskManagerLogs();
        assertFalse(logs.contains("Memory was leaked") || logs.contains("still holds"),
                "an Arrow allocator leaked (see the task manager logs)");
        assertFalse(logs.contains("OutOfMemoryError"), "a task manager ran out of memory");
        log("%s done at %.1f s into the suite", test.getDisplayName(), secondsSince(suiteStart));
    }

    @AfterAll
    void stop() throws Exception {
        try {
            if (cluster != null) {
                cluster.close();
                assertTrue(cluster.liveChildren().isEmpty(), "child JVMs left: " + cluster.liveChildren());
            }
        } finally {
            if (broker != null) {
                broker.close();
            }
        }
        log("suite took %.1f s", secondsSince(suiteStart));
    }

    // ---------------------------------------------------------------- summarization

    @Test
    @Order(1)
    void summarizationRunsOnBothTaskManagersWithExactlyOneSummaryPerTrigger() throws Exception {
        Map<Integer, List<String>> bySubtask = new TreeMap<>();
        for (String s : SOURCES) {
            bySubtask.computeIfAbsent(KeyGroupRangeAssignment.assignKeyToParallelOperator(s, 128, 2),
                    k -> new ArrayList<>()).add(s);
        }
        assertEquals(Set.of(0, 1), bySubtask.keySet(), "the test's sources must hash to both subtasks");
        assertEquals(bySubtask.get(0).size(), bySubtask.get(1).size(), "sources per subtask: " + bySubtask);

        Topics t = topics("sum-base");
        KafkaData.produce(broker, t.in, logLines(0, LINES));
        String job = submitSummarize(t, 2);
        long running = awaitAllTasksRunning(job);
        List<JsonNode> results = awaitResults(t.out, SOURCES.size() * LINES / EVERY, job);
        log("summarize p=2: %d summaries committed %.1f s after all tasks ran", results.size(), secondsSince(running));

        summaryReference = exactlyOnePerId(results, expectedSummaryIds());
        assertHistoryGrows(summaryReference);
        String vertex = cluster.rest.vertexWithMetric(job, "kvBytesInUse");
        Map<Integer, String> where = cluster.rest.subtaskLocations(job, vertex);
        assertEquals(2, where.size(), "subtasks of the summarize operator: " + where);
        assertNotEquals(where.get(0), where.get(1), "both subtasks on one task manager: " + where);
        Map<Integer, Map<String, Double>> m = awaitQuietOperator(job, vertex);
        for (int subtask : List.of(0, 1)) {
            assertTrue(m.get(subtask).get("requests") > 0, "subtask " + subtask + " on " + where.get(subtask)
                    + " answered nothing: " + m);
        }
        long tokens = results.stream().mapToLong(r -> r.path("generated_tokens").asLong()).sum();
        log("summarize p=2: sources per subtask %s, subtasks on %s, requests per subtask %s, generated tokens per"
                + " subtask %s (%d in all)", bySubtask, where, perSubtask(m, "requests"), perSubtask(m, "generatedTokens"),
                tokens);
        assertNoLateDuplicates(job, t.out, results.size());
    }

    @Test
    @Order(2)
    void taskManagerKilledMidGenerationLosesAndDuplicatesNothing() throws Exception {
        Topics t = topics("sum-kill");
        KafkaData.produce(broker, t.in, logLines(0, EVERY));
        String job = submitSummarize(t, 2);
        awaitAllTasksRunning(job);
        awaitResults(t.out, SOURCES.size(), job); // summary-1 of every source is committed
        String vertex = cluster.rest.vertexWithMetric(job, "kvBytesInUse");
        Map<Integer, String> where = cluster.rest.subtaskLocations(job, vertex);
        // the tokens each subtask generated for the first summaries: the second ones count from here
        Map<Integer, Map<String, Double>> before = awaitQuietOperator(job, vertex);

        // the second half of every source's lines, then the kill while a subtask generates
        assertEquals(SOURCES.size(), KafkaData.committed(broker, t.out).size(), "summaries before the kill");
        KafkaData.produce(broker, t.in, logLines(EVERY, LINES));
        MidGeneration seen = awaitGeneration(job, vertex, before);
        String victim = where.get(seen.subtask());
        long kill = System.nanoTime();
        long killMillis = System.currentTimeMillis();
        cluster.killTaskManager(victim);
        double sampleToKillMillis = (kill - seen.polledAt()) / 1e6;
        cluster.startTaskManager("tm-" + victim + "-replacement");
        // no checkpoint completes without the victim: what is committed now was committed before the kill
        int committedAtKill = KafkaData.committed(broker, t.out).size();
        RestApi.await("the job restarting after the kill", Duration.ofSeconds(60),
                () -> !cluster.rest.jobState(job).equals("RUNNING") || !cluster.rest.allTasksRunning(job));
        double toRestarting = secondsSince(kill);
        RestApi.await("all tasks running again", Duration.ofMinutes(2), () -> cluster.rest.allTasksRunning(job));
        double toRunning = secondsSince(kill);
        // the killed TaskManager acknowledges nothing: a checkpoint completed after the kill is a new one
        RestApi.await("a checkpoint after the restore", Duration.ofMinutes(2),
                () -> cluster.rest.get("/jobs/" + job + "/checkpoints").path("latest").path("completed")
                        .path("latest_ack_timestamp").asLong() > killMillis);
        double toCheckpoint = secondsSince(kill);

        List<JsonNode> results = awaitResults(t.out, SOURCES.size() * LINES / EVERY, job);
        Map<String, JsonNode> byId = exactlyOnePerId(results, expectedSummaryIds());
        assertSameAsReference(byId, summaryReference);
        // numRestarts comes from the JobManager's metric store, which can lag behind the job (one
        // suite run read 0 here after the job had restarted and committed every summary)
        RestApi.await("the job's restart count to show the restart after the kill", Duration.ofSeconds(30),
                () -> cluster.rest.numRestarts(job) >= 1);
        long restarts = cluster.rest.numRestarts(job);

        // mid-generation: at the last metric fetch before the kill, the victim subtask had generated
        // fewer of its second summaries' tokens than they hold (what the restored run generated)
        long victimTokens = 0;
        List<String> victimSummaries = new ArrayList<>();
        for (JsonNode r : byId.values()) {
            String key = r.path("key").asText();
            if (r.path("id").asText().endsWith("/summary-2")
                    && KeyGroupRangeAssignment.assignKeyToParallelOperator(key, 128, 2) == seen.subtask()) {
                victimTokens += r.path("generated_tokens").asLong();
                victimSummaries.add(key + ":" + r.path("generated_tokens").asLong());
            }
        }
        assertTrue(seen.generated() < victimTokens, "the victim subtask had generated " + seen.generated()
                + " tokens of its second summaries at the last fetch before the kill, not fewer than their "
                + victimTokens + " " + victimSummaries + ": the kill did not land mid-generation");
        assertTrue(committedAtKill < SOURCES.size() * LINES / EVERY, "every summary was committed before the kill");
        log("TaskManager %s (subtask %d) killed mid-generation: its metrics, read over REST %.0f ms before the"
                + " SIGKILL (the JobManager fetches them every 100 ms), showed %.0f requests in flight and %.0f of the"
                + " %d tokens of its second summaries %s generated (+%.0f since the fetch before); %d of %d summaries"
                + " committed at the kill", victim, seen.subtask(),
                sampleToKillMillis, seen.inFlight(), seen.generated(), victimTokens, victimSummaries, seen.advance(),
                committedAtKill, SOURCES.size() * LINES / EVERY);
        log("after the kill: job restarting after %.1f s, all tasks RUNNING again after %.1f s (a replacement"
                + " TaskManager started at the kill), first new checkpoint after %.1f s, %d restart(s); %d summaries,"
                + " 0 lost, 0 duplicated, equal to the undisturbed run", toRestarting, toRunning, toCheckpoint,
                restarts, byId.size());
        awaitQuietOperator(job, vertex);
        assertNoLateDuplicates(job, t.out, results.size());
    }

    /**
     * A subtask seen generating: requests in flight, and its {@code generatedTokens} advanced
     * between two metric fetches of the JobManager that both lie after {@code before}.
     *
     * @param generated tokens generated since {@code before}, at the later fetch
     * @param advance tokens generated between the two fetches
     * @param polledAt when this test read the later fetch ({@link System#nanoTime()})
     */
    record MidGeneration(int subtask, double generated, double advance, double inFlight, long polledAt) {}

    MidGeneration awaitGeneration(String job, String vertex, Map<Integer, Map<String, Double>> before) throws Exception {
        Map<Integer, Double> last = new HashMap<>();
        before.forEach((subtask, m) -> last.put(subtask, m.get("generatedTokens")));
        long deadline = System.nanoTime() + Duration.ofMinutes(2).toNanos();
        Map<Integer, Map<String, Double>> m = Map.of();
        while (System.nanoTime() < deadline) {
            m = cluster.rest.operatorMetrics(job, vertex, List.of("queueLength", "generatedTokens"));
            long polledAt = System.nanoTime();
            for (Map.Entry<Integer, Map<String, Double>> e : m.entrySet()) {
                int subtask = e.getKey();
                Double tokens = e.getValue().get("generatedTokens");
                Double inFlight = e.getValue().get("queueLength");
                if (tokens == null || inFlight == null || tokens.equals(last.get(subtask))) {
                    continue; // not fetched again yet
                }
                double start = before.get(subtask).get("generatedTokens");
                if (last.get(subtask) > start && tokens > last.get(subtask) && inFlight > 0) {
                    return new MidGeneration(subtask, tokens - start, tokens - last.get(subtask), inFlight, polledAt);
                }
                last.put(subtask, tokens);
            }
            Thread.sleep(20);
        }
        throw new AssertionError("no subtask was seen generating in two consecutive metric fetches: " + m);
    }

    // ---------------------------------------------------------------- translation

    @Test
    @Order(3)
    void poisonRecordsBecomeDeadLettersAndEveryValidRequestIsAnswered() throws Exception {
        Topics t = topics("tr-poison");
        List<KafkaData.Input> in = new ArrayList<>(translationRequests());
        String big = "x".repeat(1_000_000);
        in.add(3, new KafkaData.Input("doc-0", "{\"id\": \"bad-json\", \"key\": \"doc-0\", \"text\": ".getBytes(
                StandardCharsets.UTF_8)));
        byte[] utf8 = "{\"id\":\"bad-utf8\",\"key\":\"doc-1\",\"text\":\"AB\",\"target_lang\":\"de\"}"
                .getBytes(StandardCharsets.UTF_8);
        int at = new String(utf8, StandardCharsets.UTF_8).indexOf("AB");
        utf8[at] = (byte) 0xC3; // a lead byte ...
        utf8[at + 1] = (byte) 0x28; // ... without its continuation byte
        in.add(7, new KafkaData.Input("doc-1", utf8));
        in.add(9, KafkaData.translation("bad-1mb", "doc-2", big, "de"));
        KafkaData.produce(broker, t.in, in);

        String job = submitTranslate(t, 2);
        awaitAllTasksRunning(job);
        List<KafkaData.Input> valid = translationRequests();
        List<JsonNode> results = awaitResults(t.out, valid.size(), job);
        List<JsonNode> dead = awaitResults(t.dead, 3, job);
        translationReference = exactlyOnePerId(results, translationIds());
        assertHistoryGrows(translationReference);
        Map<String, String> reasons = new TreeMap<>();
        for (JsonNode d : dead) {
            reasons.put(d.path("origin").asText(), d.path("reason").asText());
        }
        assertEquals(3, dead.size(), "dead letters: " + reasons);
        assertTrue(dead.stream().anyMatch(d -> d.path("payload_bytes").asLong() > 1_000_000),
                "the 1 MB record is not among the dead letters: " + reasons);
        String vertex = cluster.rest.vertexWithMetric(job, "kvBytesInUse");
        Map<Integer, Map<String, Double>> m = awaitQuietOperator(job, vertex);
        Map<Integer, String> where = cluster.rest.subtaskLocations(job, vertex);
        assertNotEquals(where.get(0), where.get(1), "both translate subtasks on one task manager: " + where);
        for (int subtask : List.of(0, 1)) {
            assertTrue(m.get(subtask).get("requests") > 0, "translate subtask " + subtask + " answered nothing: " + m);
        }
        log("translate p=2 with 3 poison records: %d results, 0 lost, 0 duplicated; dead letters %s; requests per"
                + " subtask %s", translationReference.size(), reasons.values(), perSubtask(m, "requests"));
        assertNoLateDuplicates(job, t.out, results.size());
    }

    @Test
    @Order(4)
    void brokerDownForSecondsLosesAndDuplicatesNothing() throws Exception {
        Topics t = topics("tr-broker");
        List<KafkaData.Input> requests = translationRequests();
        int half = requests.size() / 2;
        KafkaData.produce(broker, t.in, requests.subList(0, half));
        String job = submitTranslate(t, 2);
        awaitAllTasksRunning(job);
        awaitResults(t.out, 1, job);
        long down = System.nanoTime();
        broker.stop();
        Thread.sleep(5_000);
        broker.restart();
        log("broker down %.1f s (same ports and log folder)", secondsSince(down));
        KafkaData.produce(broker, t.in, requests.subList(half, requests.size()));
        List<JsonNode> results = awaitResults(t.out, requests.size(), job);
        Map<String, JsonNode> byId = exactlyOnePerId(results, translationIds());
        assertSameAsReference(byId, translationReference);
        log("broker restart: %d results %.1f s after it went down, %d job restart(s), 0 lost, 0 duplicated, equal to the"
                + " undisturbed run", byId.size(), secondsSince(down), cluster.rest.numRestarts(job));
        awaitQuietOperator(job, cluster.rest.vertexWithMetric(job, "kvBytesInUse"));
        assertNoLateDuplicates(job, t.out, results.size());
    }

    @Test
    @Order(5)
    void corruptModelFailsTheRestartedJobClearlyAndInBoundedTime() throws Exception {
        Topics t = topics("tr-corrupt");
        List<KafkaData.Input> requests = translationRequests();
        KafkaData.produce(broker, t.in, requests.subList(0, 4));
        String first = submitTranslate(t, 2);
        awaitAllTasksRunning(first);
        awaitResults(t.out, 4, first);
        cluster.rest.cancel(first);
        RestApi.await("the first job cancelled", Duration.ofMinutes(1),
                () -> cluster.rest.jobState(first).equals("CANCELED"));

        // the same job again, from the same consumer group, with a model file cut in half
        Path corrupt = work.resolve("corrupt-tiny.gguf");
        byte[] good = Files.readAllBytes(model);
        Files.write(corrupt, java.util.Arrays.copyOf(good, good.length / 2));
        KafkaData.produce(broker, t.in, requests.subList(4, requests.size()));
        long start = System.nanoTime();
        String second = submit(translateArgs(t, 2, corrupt));
        RestApi.await("the job with the corrupt model to fail", Duration.ofMinutes(3),
                () -> cluster.rest.jobState(second).equals("FAILED"));
        double failedAfter = secondsSince(start);
        String exceptions = cluster.rest.exceptions(second);
        assertTrue(exceptions.contains(corrupt.getFileName().toString()),
                "the failure does not name the model file: " + exceptions.substring(0, Math.min(3000, exceptions.length())));
        String line = firstLineNaming(exceptions, corrupt.getFileName().toString());
        // one failure, no restart: under the cluster's default strategy (retry forever) the
        // operator's SuppressRestartsException is what ends the job
        JsonNode history = cluster.rest.get("/jobs/" + second + "/exceptions").path("exceptionHistory").path("entries");
        assertEquals(1, history.size(), "failures of the corrupt-model job (1: not restarted): " + history);
        assertTrue(exceptions.contains("SuppressRestartsException"), "the failure is not marked unrecoverable");
        log("corrupt model under Flink's default restart strategy: FAILED %.1f s after submission, %d failure(s),"
                + " no restart; the failure says: %s", failedAfter, history.size(), line);
        assertEquals(4, KafkaData.committed(broker, t.out).size(), "results appeared from the corrupt run");
    }

    /**
     * Bytes per second every producer may write during the slow-sink scenario: well under what
     * the model answers (about 48 KB of results in 10 s on a quiet machine), so that the sink,
     * not the model, is the bottleneck. At 1500 B/s per producer (3000 for the two sinks) a
     * clean-clone CI run saw no back-pressure at all.
     */
    static final double QUOTA = Double.parseDouble(System.getProperty("flinkqwen.cluster.slow-sink.quota", "600"));
    /**
     * The KV budget of the slow-sink job ({@code --kv-budget-mib}): the caches of its 8 keys per
     * subtask (up to 3,400 positions of 1.5 KiB each) fit, so that no cache is evicted and rebuilt
     * by prefill (which would slow the model further).
     */
    static final int SLOW_SINK_KV_MIB = 48;
    /** The result sinks' {@code buffer.memory} in the slow-sink scenario: about 10 results. */
    static final int SLOW_SINK_PRODUCER_BUFFER = 2048;

    @Test
    @Order(6)
    void slowSinkHoldsUpTheJobWithinTheMemoryBudgets() throws Exception {
        Topics t = topics("tr-slow");
        // 93 KB of input (46 KB per source subtask on average). Before the sinks got a small
        // producer buffer, the source was back-pressured only when the model was slow (126-155 of
        // 128-165 samples in two loaded runs, none of 82 on a quiet machine): the default 32 MiB
        // producer buffer took every result and the quota never reached the job
        int docs = Integer.getInteger("flinkqwen.cluster.slow-sink.docs", 16);
        int segments = Integer.getInteger("flinkqwen.cluster.slow-sink.segments", 16);
        int chars = Integer.getInteger("flinkqwen.cluster.slow-sink.chars", 300);
        List<KafkaData.Input> requests = longTranslationRequests(docs, segments, chars);
        long inputBytes = requests.stream().mapToLong(r -> r.value().length).sum();
        KafkaData.produce(broker, t.in, requests);
        // every producer from now on (the job's result sinks) at QUOTA bytes/s: the broker delays its answers
        setDefaultProducerQuota(QUOTA);
        try {
            long start = System.nanoTime();
            // each key's whole history fits its context (no sliding window, which re-prefills it)
            List<String> args = new ArrayList<>(withOption(translateArgs(t, 2, model), "--context-tokens", SUMMARY_CONTEXT));
            args.addAll(List.of("--kv-budget-mib", Integer.toString(SLOW_SINK_KV_MIB)));
            // a small producer buffer: with Kafka's default 32 MiB the producer absorbs every
            // result and the throttled broker never reaches the job; with 4 KiB, send() waits for
            // the broker, the sink's task waits with it and the back-pressure travels upstream
            args.addAll(List.of("--kafka-producer-property", "buffer.memory=" + SLOW_SINK_PRODUCER_BUFFER,
                    "--kafka-producer-property", "batch.size=512"));
            String job = submit(args);
            awaitAllTasksRunning(job);
            String vertex = cluster.rest.vertexWithMetric(job, "kvBytesInUse");
            // sampled by a thread of its own while this one waits for the results
            // KV, Arrow bytes, heap share, source back-pressure ms/s, throttle ms, producer buffer wait ns
            double[] peak = {0, 0, 0, 0, Double.NaN, Double.NaN};
            int[] count = new int[2]; // samples, samples with the source back-pressured
            List<Exception> errors = java.util.Collections.synchronizedList(new ArrayList<>());
            java.util.concurrent.atomic.AtomicBoolean done = new java.util.concurrent.atomic.AtomicBoolean();
            Thread sampler = new Thread(() -> {
                while (!done.get()) {
                    try {
                        Map<Integer, Map<String, Double>> ms = cluster.rest.operatorMetrics(job, vertex, OPERATOR_METRICS);
                        double heap = cluster.rest.maxTaskManagerHeapShare();
                        double backPressure = cluster.rest.sourceBackPressuredMsPerSecond(job);
                        double throttle = cluster.rest.maxMetricEndingWith(job, "produce-throttle-time-max");
                        double bufferWait = cluster.rest.maxMetricEndingWith(job, "bufferpool-wait-time-ns-total");
                        synchronized (peak) {
                            for (Map<String, Double> m : ms.values()) {
                                peak[0] = Math.max(peak[0], m.getOrDefault("kvBytesInUse", 0.0));
                                peak[1] = Math.max(peak[1], m.getOrDefault("arrowBytes", 0.0));
                            }
                            peak[2] = Math.max(peak[2], heap);
                            peak[3] = Math.max(peak[3], backPressure);
                            peak[4] = Double.isNaN(peak[4]) ? throttle : Double.isNaN(throttle) ? peak[4]
                                    : Math.max(peak[4], throttle);
                            peak[5] = Double.isNaN(peak[5]) ? bufferWait : Double.isNaN(bufferWait) ? peak[5]
                                    : Math.max(peak[5], bufferWait);
                            count[0]++;
                            count[1] += backPressure > 0 ? 1 : 0;
                        }
                        Thread.sleep(250);
                    } catch (InterruptedException e) {
                        return;
                    } catch (Exception e) {
                        errors.add(e);
                    }
                }
            }, "metrics-sampler");
            sampler.start();
            List<JsonNode> results;
            try {
                results = awaitResults(t.out, requests.size(), job);
            } finally {
                done.set(true);
                sampler.join();
            }
            double seconds = secondsSince(start);
            assertTrue(errors.isEmpty(), "sampling the metrics failed: " + errors);
            double maxKv;
            double maxArrow;
            double maxHeapShare;
            double maxBackPressure;
            double maxThrottle;
            double maxBufferWait;
            int samples;
            int backpressured;
            synchronized (peak) {
                maxKv = peak[0];
                maxArrow = peak[1];
                maxHeapShare = peak[2];
                maxBackPressure = peak[3];
                maxThrottle = peak[4];
                maxBufferWait = peak[5];
                samples = count[0];
                backpressured = count[1];
            }
            assertTrue(samples >= 3, "only " + samples + " metric samples");
            Map<String, JsonNode> byId = exactlyOnePerId(results, ids(requests));
            long bytes = results.stream().mapToLong(r -> r.toString().length()).sum();
            long budget = (long) SLOW_SINK_KV_MIB << 20;
            assertTrue(maxKv <= budget, "KV caches reached " + maxKv + " bytes, over the budget " + budget);
            assertTrue(maxArrow <= ARROW_BOUND, "Arrow batches held " + maxArrow + " bytes, over " + ARROW_BOUND);
            assertTrue(maxHeapShare < 0.95, "a task manager's heap was " + maxHeapShare + " full");
            // the sink's own producer metrics (registered by the Kafka sink): the quota held its
            // requests back, and send() then waited for buffer memory, i.e. the slow sink held up the
            // task that runs the model and the sink. Whether that reaches the source depends on
            // input still waiting there (the operator queues a key's later requests in its state),
            // so the source's back-pressure is counted and logged, not asserted. Run alone, this
            // scenario saw it in 182-184 of 183-187 samples; run after the suite's other scenarios
            // with the kernels of the stop that balanced the pool's pieces, in none of 169-174 (the
            // stop before, 174 of 184). Why it differs there is not established
            assertTrue(maxThrottle > 0, "the broker never throttled the sink's producers (produce-throttle-time-max "
                    + maxThrottle + ")");
            assertTrue(maxBufferWait > 0, "the sink's send() never waited for producer buffer memory"
                    + " (bufferpool-wait-time-ns-total " + maxBufferWait + ")");
            Map<Integer, Map<String, Double>> rest = awaitQuietOperator(job, vertex, budget);
            log("slow sink (%.0f B/s per producer, the broker throttled a produce request by up to %.0f ms, send()"
                    + " waited %.1f s for buffer memory): %d"
                    + " requests (%d bytes) in, %d results (%d bytes) out in %.1f s from submission, 0 lost, 0"
                    + " duplicated; source back-pressured in %d of %d samples (up to %.0f ms/s); max KV %.2f MiB"
                    + " (budget %d MiB, evictions per subtask %s), max Arrow %.1f KiB (bound %d MiB), max heap share %.2f",
                    QUOTA, maxThrottle, maxBufferWait / 1e9, requests.size(), inputBytes, byId.size(), bytes, seconds,
                    backpressured,
                    samples, maxBackPressure, maxKv / (1 << 20), SLOW_SINK_KV_MIB, perSubtask(rest, "evictions"),
                    maxArrow / 1024, ARROW_BOUND >> 20, maxHeapShare);
        } finally {
            setDefaultProducerQuota(null);
        }
    }

    /**
     * {@code docs} documents (half on each subtask) of {@code segments} segments of about {@code
     * chars} characters each, to German: long records, so that tens of KB fill the network
     * buffers between the source and the operator.
     */
    static List<KafkaData.Input> longTranslationRequests(int docs, int segments, int chars) {
        String[] words = {"the", "queue", "is", "full", "retry", "later", "disk", "usage", "on", "node", "above",
            "ninety", "percent", "service", "restarted", "after", "timeout", "while", "reading", "config"};
        List<KafkaData.Input> out = new ArrayList<>();
        List<String> keys = spreadKeys("doc", docs);
        for (int seg = 0; seg < segments; seg++) {
            for (int d = 0; d < keys.size(); d++) {
                StringBuilder text = new StringBuilder("Segment " + seg + " of " + keys.get(d) + ":");
                for (int w = 0; text.length() < chars; w++) {
                    text.append(' ').append(words[(w * 7 + seg * 3 + d) % words.length]);
                }
                out.add(KafkaData.translation(keys.get(d) + "/" + seg, keys.get(d), text.append('.').toString(), "de"));
            }
        }
        return out;
    }

    @Test
    @Order(7)
    void throughputAtParallelismOneAndTwo() throws Exception {
        // long generations (up to 400 tokens each, 4096 positions per key), so that the model's
        // work, not job start-up and the 1 s checkpoints, fills most of each run
        int docs = Integer.getInteger("flinkqwen.cluster.speed.docs", 16);
        int segments = Integer.getInteger("flinkqwen.cluster.speed.segments", 4);
        int newTokens = Integer.getInteger("flinkqwen.cluster.speed.tokens", 400);
        List<KafkaData.Input> requests = manyTranslationRequests(docs, segments);
        Map<Integer, Double> tokensPerSecond = new TreeMap<>();
        for (int p : List.of(1, 2)) {
            Topics t = topics("tr-speed-p" + p);
            KafkaData.produce(broker, t.in, requests);
            // p=2 as users pass it to a cluster: `flink run -p 2`, no --parallelism
            List<String> args = new ArrayList<>(withOption(withOption(translateArgs(t, p, model), "--max-new-tokens",
                    newTokens), "--context-tokens", SUMMARY_CONTEXT));
            int at = args.indexOf("--parallelism");
            args.subList(at, at + 2).clear();
            String job = cluster.submit(jar, List.of("-p", Integer.toString(p)), args, Duration.ofMinutes(2));
            jobs.add(job);
            long running = awaitAllTasksRunning(job);
            List<JsonNode> results = awaitResults(t.out, requests.size(), job);
            double seconds = secondsSince(running);
            String vertex = cluster.rest.vertexWithMetric(job, "kvBytesInUse");
            assertEquals(p, cluster.rest.subtaskLocations(job, vertex).size(), "flink run -p " + p + " was not applied");
            exactlyOnePerId(results, ids(requests));
            long tokens = results.stream().mapToLong(r -> r.path("generated_tokens").asLong()).sum();
            tokensPerSecond.put(p, tokens / seconds);
            // what each subtask did, from its own metrics: at p=2 both must have worked
            Map<Integer, Map<String, Double>> m = awaitQuietOperator(job, vertex);
            for (int subtask = 0; subtask < p; subtask++) {
                assertTrue(m.get(subtask).get("requests") > 0 && m.get(subtask).get("generatedTokens") > 0,
                        "subtask " + subtask + " of " + p + " did no work: " + m);
            }
            log("throughput p=%d: %d requests, %d generated tokens, all committed %.1f s after all tasks ran: %.1f tok/s;"
                    + " requests per subtask %s, generated tokens per subtask %s", p, results.size(), tokens, seconds,
                    tokens / seconds, perSubtask(m, "requests"), perSubtask(m, "generatedTokens"));
            cluster.rest.cancel(job);
            RestApi.await("job cancelled", Duration.ofMinutes(1), () -> cluster.rest.jobState(job).equals("CANCELED"));
        }
        log("throughput p=2 / p=1: %.2f (2 cores shared with other work)", tokensPerSecond.get(2) / tokensPerSecond.get(1));
    }

    // ---------------------------------------------------------------- helpers

    record Topics(String in, String out, String dead, String group) {}

    /**
     * For each of {@code api}, {@code db} and {@code web}, the first name {@code <prefix>-<i>}
     * whose key group (Flink's, at the default max parallelism 128) falls to subtask 0 of 2 and
     * the first that falls to subtask 1: both subtasks get three sources.
     */
    static List<String> balancedSources() {
        List<String> out = new ArrayList<>();
        for (String prefix : List.of("api", "db", "web")) {
            for (int subtask = 0; subtask < 2; subtask++) {
                for (int i = 1; ; i++) {
                    String name = prefix + "-" + i;
                    if (!out.contains(name) && KeyGroupRangeAssignment.assignKeyToParallelOperator(name, 128, 2) == subtask) {
                        out.add(name);
                        break;
                    }
                }
            }
        }
        return List.copyOf(out);
    }

    /** {@code docs} documents (half on each subtask) of {@code segments} segments each, to German. */
    static List<KafkaData.Input> manyTranslationRequests(int docs, int segments) {
        List<KafkaData.Input> out = new ArrayList<>();
        List<String> keys = spreadKeys("doc", docs);
        for (int seg = 0; seg < segments; seg++) {
            for (String doc : keys) {
                out.add(KafkaData.translation(doc + "/" + seg, doc,
                        "Segment " + seg + " of " + doc + ": the queue is full, retry later.", "de"));
            }
        }
        return out;
    }

    static List<String> ids(List<KafkaData.Input> requests) throws java.io.IOException {
        List<String> ids = new ArrayList<>();
        for (KafkaData.Input r : requests) {
            ids.add(KafkaData.JSON.readTree(r.value()).path("id").asText());
        }
        return ids;
    }

    /** {@code args} with the value of {@code option} (which it holds) replaced by {@code value}. */
    static List<String> withOption(List<String> args, String option, int value) {
        List<String> out = new ArrayList<>(args);
        out.set(out.indexOf(option) + 1, Integer.toString(value));
        return out;
    }

    /** A producer byte-rate quota for every client id (the default entity); null removes it. */
    void setDefaultProducerQuota(Double bytesPerSecond) throws Exception {
        try (Admin admin = broker.admin()) {
            ClientQuotaEntity all = new ClientQuotaEntity(java.util.Collections.singletonMap(ClientQuotaEntity.CLIENT_ID, null));
            admin.alterClientQuotas(List.of(new ClientQuotaAlteration(all,
                    List.of(new ClientQuotaAlteration.Op("producer_byte_rate", bytesPerSecond))))).all().get();
        }
    }

    Topics topics(String name) throws Exception {
        Topics t = new Topics(name + "-in", name + "-out", name + "-dead", name + "-group");
        broker.createTopic(t.in, 2, Map.of("max.message.bytes", Integer.toString(4 << 20)));
        broker.createTopic(t.out, 2);
        broker.createTopic(t.dead, 1, Map.of("max.message.bytes", Integer.toString(4 << 20)));
        return t;
    }

    /** Lines {@code [from, to)} of every source, interleaved across sources. */
    static List<KafkaData.Input> logLines(int from, int to) {
        List<KafkaData.Input> out = new ArrayList<>();
        long t0 = 1_767_225_600_000L;
        String[] levels = {"INFO", "WARN", "ERROR"};
        for (int i = from; i < to; i++) {
            for (int s = 0; s < SOURCES.size(); s++) {
                out.add(KafkaData.logEvent(SOURCES.get(s), t0 + i * 1000L + s, levels[(i + s) % 3],
                        "request " + (i * 7 + s) + " took " + (12 + i * s) + " ms on shard " + (s % 3)));
            }
        }
        return out;
    }

    static List<String> expectedSummaryIds() {
        List<String> ids = new ArrayList<>();
        for (String s : SOURCES) {
            for (int n = 1; n <= LINES / EVERY; n++) {
                ids.add(s + "/summary-" + n);
            }
        }
        return ids;
    }

    /** Four documents (two on each subtask) of three segments each, to German. */
    static List<KafkaData.Input> translationRequests() {
        List<KafkaData.Input> out = new ArrayList<>();
        String[] texts = {"The disk is almost full.", "Delete the old logs.", "Then restart the service."};
        List<String> docs = spreadKeys("doc", 4);
        for (int seg = 0; seg < texts.length; seg++) {
            for (String doc : docs) {
                out.add(KafkaData.translation(doc + "/" + seg, doc, texts[seg] + " (" + doc + ")", "de"));
            }
        }
        return out;
    }

    static List<String> translationIds() throws java.io.IOException {
        return ids(translationRequests());
    }

    /**
     * {@code n} keys {@code <prefix>-<i>}, alternately hashed to subtask 0 and 1 of a keyed
     * operator at parallelism 2 (Flink's key groups at the default max parallelism, 128), so
     * that both TaskManagers hold keyed state.
     */
    static List<String> spreadKeys(String prefix, int n) {
        List<List<String>> bySubtask = List.of(new ArrayList<>(), new ArrayList<>());
        for (int i = 0; bySubtask.get(0).size() + bySubtask.get(1).size() < n; i++) {
            String key = prefix + "-" + i;
            List<String> mine = bySubtask.get(KeyGroupRangeAssignment.assignKeyToParallelOperator(key, 128, 2));
            if (mine.size() < (n + 1) / 2) {
                mine.add(key);
            }
        }
        List<String> out = new ArrayList<>();
        for (int i = 0; out.size() < n; i++) {
            for (List<String> keys : bySubtask) {
                if (i < keys.size()) {
                    out.add(keys.get(i));
                }
            }
        }
        return out;
    }

    List<String> summarizeArgs(Topics t, int parallelism) {
        return List.of("summarize", "--model", model.toString(), "--kafka-bootstrap", broker.bootstrapServers(),
                "--input-topic", t.in, "--output-topic", t.out, "--dead-letter-topic", t.dead, "--group-id", t.group,
                "--every", Integer.toString(EVERY), "--max-new-tokens", Integer.toString(SUMMARY_NEW_TOKENS),
                "--context-tokens", Integer.toString(SUMMARY_CONTEXT), "--checkpoint-interval", "1s",
                "--parallelism", Integer.toString(parallelism));
    }

    List<String> translateArgs(Topics t, int parallelism, Path modelFile) {
        return List.of("translate", "--model", modelFile.toString(), "--to", "de", "--kafka-bootstrap",
                broker.bootstrapServers(), "--input-topic", t.in, "--output-topic", t.out, "--dead-letter-topic", t.dead,
                "--group-id", t.group, "--max-new-tokens", Integer.toString(MAX_NEW_TOKENS), "--context-tokens", "1024",
                "--checkpoint-interval", "1s", "--parallelism", Integer.toString(parallelism));
    }

    String submitSummarize(Topics t, int parallelism) throws Exception {
        return submit(summarizeArgs(t, parallelism));
    }

    String submitTranslate(Topics t, int parallelism) throws Exception {
        return submit(translateArgs(t, parallelism, model));
    }

    String submit(List<String> programArgs) throws Exception {
        String job = cluster.submit(jar, List.of(), programArgs, Duration.ofMinutes(2));
        jobs.add(job);
        return job;
    }

    long awaitAllTasksRunning(String job) throws Exception {
        RestApi.await("all tasks of " + job + " running", Duration.ofMinutes(2), () -> {
            String state = cluster.rest.jobState(job);
            if (state.equals("FAILED")) {
                throw new AssertionError("job " + job + " failed: " + cluster.rest.exceptions(job));
            }
            return cluster.rest.allTasksRunning(job);
        });
        return System.nanoTime();
    }

    /** Polls the topic (read_committed) until it holds {@code n} records; fails if the job fails. */
    List<JsonNode> awaitResults(String topic, int n, String job) throws Exception {
        long deadline = System.nanoTime() + JOB_TIMEOUT.toNanos();
        while (true) {
            List<JsonNode> r = KafkaData.committed(broker, topic);
            if (r.size() >= n) {
                return r;
            }
            if (cluster.rest.jobState(job).equals("FAILED")) {
                throw new AssertionError("job " + job + " failed: " + cluster.rest.exceptions(job));
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("only " + r.size() + " of " + n + " records in " + topic + " after " + JOB_TIMEOUT
                        + "; ids " + KafkaData.countById(r).keySet() + "\n" + cluster.tail("jobmanager", 40));
            }
            Thread.sleep(500);
        }
    }

    /** Every expected id exactly once, nothing else; returns the results by id. */
    static Map<String, JsonNode> exactlyOnePerId(List<JsonNode> results, List<String> expected) {
        Map<String, Integer> counts = KafkaData.countById(results);
        Map<String, Integer> duplicated = new TreeMap<>();
        counts.forEach((id, n) -> {
            if (n > 1) {
                duplicated.put(id, n);
            }
        });
        Set<String> missing = new TreeSet<>(expected);
        missing.removeAll(counts.keySet());
        Set<String> unexpected = new TreeSet<>(counts.keySet());
        expected.forEach(unexpected::remove);
        assertTrue(duplicated.isEmpty() && missing.isEmpty() && unexpected.isEmpty(),
                "duplicated " + duplicated + ", missing " + missing + ", unexpected " + unexpected);
        Map<String, JsonNode> byId = new LinkedHashMap<>();
        results.forEach(r -> byId.put(r.path("id").asText(), r));
        return byId;
    }

    /**
     * The key's context carried over: each later result of a key was prompted with at least the
     * earlier prompt and answer (its history) on top of its own turn.
     */
    static void assertHistoryGrows(Map<String, JsonNode> byId) {
        Map<String, List<JsonNode>> byKey = new HashMap<>();
        byId.values().forEach(r -> byKey.computeIfAbsent(r.path("key").asText(), k -> new ArrayList<>()).add(r));
        for (List<JsonNode> rs : byKey.values()) {
            rs.sort((a, b) -> a.path("id").asText().compareTo(b.path("id").asText()));
            for (int i = 1; i < rs.size(); i++) {
                JsonNode prev = rs.get(i - 1);
                JsonNode cur = rs.get(i);
                long carried = prev.path("prompt_tokens").asLong() + prev.path("generated_tokens").asLong();
                assertTrue(cur.path("prompt_tokens").asLong() > carried,
                        cur.path("id").asText() + " was prompted with " + cur.path("prompt_tokens") + " tokens, not more than "
                                + "the " + carried + " of its key's history before it");
            }
        }
    }

    /** Same outputs and prompt sizes as the undisturbed run: greedy decoding on the same history. */
    static void assertSameAsReference(Map<String, JsonNode> byId, Map<String, JsonNode> reference) {
        assertTrue(reference != null, "the reference run did not run (run the whole class)");
        for (Map.Entry<String, JsonNode> e : byId.entrySet()) {
            JsonNode ref = reference.get(e.getKey());
            assertEquals(ref.path("prompt_tokens").asLong(), e.getValue().path("prompt_tokens").asLong(),
                    e.getKey() + ": prompt size differs from the undisturbed run");
            assertEquals(ref.path("output").asText(), e.getValue().path("output").asText(),
                    e.getKey() + ": output differs from the undisturbed run");
        }
    }

    /**
     * Waits until the inference operator has nothing in flight, then checks that its memory is at
     * rest: no KV cache of a running request ({@code kvBytesInUse} counts running and idle caches),
     * the idle ones within the budget, no Arrow batch staged or open, and no more Arrow memory
     * than the empty staging batch.
     */
    Map<Integer, Map<String, Double>> awaitQuietOperator(String job, String vertex) throws Exception {
        return awaitQuietOperator(job, vertex, KV_BUDGET);
    }

    /** As {@link #awaitQuietOperator(String, String)}, for a job with the KV budget {@code kvBudget}. */
    Map<Integer, Map<String, Double>> awaitQuietOperator(String job, String vertex, long kvBudget) throws Exception {
        List<Map<Integer, Map<String, Double>>> last = new ArrayList<>(List.of(Map.of()));
        int parallelism = cluster.rest.subtaskLocations(job, vertex).size();
        try {
            RestApi.await("the inference operator of " + job + " at rest", Duration.ofMinutes(1), () -> {
                Map<Integer, Map<String, Double>> m = cluster.rest.operatorMetrics(job, vertex, OPERATOR_METRICS);
                last.set(0, m);
                return m.size() == parallelism && m.values().stream().allMatch(s -> s.size() == OPERATOR_METRICS.size()
                        && s.get("queueLength") == 0);
            });
        } catch (AssertionError e) {
            throw new AssertionError(e.getMessage() + "; last metrics " + last.get(0), e);
        }
        for (Map.Entry<Integer, Map<String, Double>> e : last.get(0).entrySet()) {
            Map<String, Double> m = e.getValue();
            String where = "subtask " + e.getKey() + " at rest " + m;
            assertEquals(m.get("idleKvBytes"), m.get("kvBytesInUse"), where + ": KV caches of running requests remain");
            assertTrue(m.get("kvBytesInUse") <= kvBudget, where + ": KV caches over the budget " + kvBudget);
            assertEquals(0.0, m.get("bufferedRequests"), where + ": requests staged in an Arrow batch");
            assertEquals(0.0, m.get("openBatches"), where + ": Arrow batches still open");
            assertTrue(m.get("arrowBytes") < ARROW_AT_REST, where + ": more Arrow memory than an empty staging batch");
        }
        return last.get(0);
    }

    /** After one more completed checkpoint, the topic still holds exactly {@code n} records. */
    void assertNoLateDuplicates(String job, String topic, int n) throws Exception {
        long c = cluster.rest.completedCheckpoints(job);
        RestApi.await("one more checkpoint", Duration.ofMinutes(1), () -> cluster.rest.completedCheckpoints(job) > c + 1);
        assertEquals(n, KafkaData.committed(broker, topic).size(), "records of " + topic + " after two more checkpoints");
    }

    static Map<Integer, Double> perSubtask(Map<Integer, Map<String, Double>> m, String metric) {
        Map<Integer, Double> out = new TreeMap<>();
        m.forEach((k, v) -> out.put(k, v.get(metric)));
        return out;
    }

    static String firstLineNaming(String text, String what) {
        for (String line : text.replace("\\n", "\n").replace("\\t", "\t").split("\n")) {
            if (line.contains(what)) {
                return line.trim().length() > 300 ? line.trim().substring(0, 300) : line.trim();
            }
        }
        return "";
    }

    static double secondsSince(long nanos) {
        return (System.nanoTime() - nanos) / 1e9;
    }

    static void log(String format, Object... args) {
        System.out.println("[cluster] " + String.format(Locale.ROOT, format, args));
    }
}
