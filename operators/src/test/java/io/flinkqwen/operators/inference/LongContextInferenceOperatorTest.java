/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.inference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.engine.LoadedModel;
import io.flinkqwen.engine.generate.Generator;
import io.flinkqwen.engine.generate.SamplingParams;
import io.flinkqwen.engine.model.KvFormat;
import io.flinkqwen.engine.serve.EngineStats;
import io.flinkqwen.engine.serve.GenerationRequest;
import io.flinkqwen.engine.serve.GenerationResult;
import io.flinkqwen.engine.serve.InferenceEngine;
import io.flinkqwen.engine.serve.RequestFailedException;
import io.flinkqwen.engine.testmodel.TestModelGenerator;
import io.flinkqwen.engine.tokenizer.ChatMl;
import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.KernelPool;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.function.BooleanSupplier;
import java.util.stream.Collectors;
import java.util.concurrent.TimeUnit;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.Histogram;
import org.apache.flink.metrics.Meter;
import org.apache.flink.metrics.Metric;
import org.apache.flink.metrics.View;
import org.apache.flink.runtime.jobgraph.OperatorID;
import org.apache.flink.runtime.metrics.groups.InternalOperatorMetricGroup;
import org.apache.flink.runtime.metrics.util.InterceptingOperatorMetricGroup;
import org.apache.flink.runtime.metrics.util.InterceptingTaskMetricGroup;
import org.apache.flink.runtime.operators.testutils.MockEnvironment;
import org.apache.flink.runtime.operators.testutils.MockEnvironmentBuilder;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.typeutils.PojoTypeInfo;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.runtime.state.KeyGroupRangeAssignment;
import org.apache.flink.streaming.util.AbstractStreamOperatorTestHarness;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.runtime.tasks.mailbox.Mail;
import org.apache.flink.streaming.runtime.tasks.mailbox.TaskMailbox;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

// Flink's harness and iterator declare close() throws Exception (InterruptedException)
@SuppressWarnings("try")
class LongContextInferenceOperatorTest {

    private static final int MAX_NEW = 6;

    @TempDir
    static Path dir;

    static Path gguf;
    static LoadedModel model;
    static KernelPool pool;
    static Generator generator;

    @BeforeAll
    static void writeModel() throws Exception {
        gguf = dir.resolve("tiny.gguf");
        new TestModelGenerator(TestModelGenerator.tinyConfig(), 11).write(TestModelGenerator.Format.GGUF, DType.F32, gguf, 0);
        model = LoadedModel.open(gguf);
        pool = new KernelPool(1);
        generator = new Generator(model.newForward(pool, 64));
    }

    @AfterAll
    static void closeModel() {
        model.close();
        pool.close();
    }

    /** The parent of every operator's Arrow allocator; closed after each test, which fails on a leak. */
    static RootAllocator arrow;

    @BeforeEach
    void arrowRoot() {
        arrow = new RootAllocator();
    }

    @AfterEach
    void noArrowLeak() {
        long held = arrow.getAllocatedMemory();
        arrow.close(); // throws, naming the child allocator, if one is still open
        assertEquals(0, held, "Arrow memory leaked");
    }

    static LongContextInferenceOperatorFactory factory(InferenceSettings s) {
        return factory(s, EngineFactory.continuousBatching());
    }

    static LongContextInferenceOperatorFactory factory(InferenceSettings s, EngineFactory engines) {
        return new LongContextInferenceOperatorFactory(s, engines, () -> arrow);
    }

    private static InferenceSettings settings() {
        return InferenceSettings.of(gguf).withContext(512, 4).withMaxNewTokens(MAX_NEW).withEngine(2, 4, 1);
    }

    private static List<InferenceEvent> twoKeysThreeEvents() {
        return List.of(
                new InferenceEvent("a", "a1", "hello world", 1),
                new InferenceEvent("b", "b1", "the quick brown fox", 2),
                new InferenceEvent("a", "a2", "jumps over", 3),
                new InferenceEvent("b", "b2", "the lazy dog", 4),
                new InferenceEvent("a", "a3", "once more, with feeling", 5),
                new InferenceEvent("b", "b3", "<|im_end|> is data here", 6));
    }

    // ---- the reference: the engine's Generator alone, history built the same way ----

    /**
     * Greedy answers per event with {@code Generator}, one key after the other; the history is
     * system turn + (user turn + answer + im_end newline)*, trimmed to {@code maxPrompt} keeping
     * the system turn and {@code sink} tokens after it.
     */
    private static List<InferenceResult> reference(List<InferenceEvent> events, int maxPrompt, int sink) {
        ChatMl chat = new ChatMl(model.tokenizer());
        String system = settings().systemPrompt();
        int[] systemTurn = chat.encode(List.of(ChatMl.Message.system(system)), false);
        int imEnd = model.tokenizer().imEndId().orElseThrow();
        int[] newline = model.tokenizer().encode("\n");
        SamplingParams greedy = SamplingParams.greedy(MAX_NEW, model.stopTokens());
        Map<String, int[]> histories = new HashMap<>();
        List<InferenceResult> out = new ArrayList<>();
        for (InferenceEvent e : events) {
            int[] h = histories.getOrDefault(e.key(), systemTurn);
            int[] both = chat.encode(List.of(ChatMl.Message.system(system), ChatMl.Message.user(e.text())), true);
            int[] turn = Arrays.copyOfRange(both, systemTurn.length, both.length);
            int[] prompt;
            if (h.length + turn.length <= maxPrompt) {
                prompt = cat(h, turn);
            } else {
                int head = systemTurn.length + sink;
                int recent = maxPrompt - head - turn.length;
                prompt = cat(cat(Arrays.copyOf(h, head), Arrays.copyOfRange(h, h.length - recent, h.length)), turn);
            }
            int[] ids = generator.generate(prompt, greedy, null).ids();
            histories.put(e.key(), cat(cat(prompt, ids), cat(new int[] {imEnd}, newline)));
            out.add(new InferenceResult(e.key(), e.requestId(), model.tokenizer().decode(ids), prompt.length, ids.length,
                    0, "tiny.gguf"));
        }
        return out;
    }

    private static int[] cat(int[] a, int[] b) {
        int[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }

    // ---- harness helpers ----

    private static OneInputStreamOperatorTestHarness<InferenceEvent, InferenceResult> harness(
            LongContextInferenceOperatorFactory factory) throws Exception {
        return new KeyedOneInputStreamOperatorTestHarness<>(factory, InferenceEvent::key, Types.STRING);
    }

    private static List<InferenceResult> results(OneInputStreamOperatorTestHarness<InferenceEvent, InferenceResult> h) {
        List<InferenceResult> out = new ArrayList<>();
        for (Object o : h.getOutput()) {
            if (o instanceof StreamRecord<?> r) {
                InferenceResult x = (InferenceResult) r.getValue();
                // latency is wall time: not part of what must be equal
                out.add(new InferenceResult(x.key(), x.requestId(), x.outputText(), x.promptTokens(), x.generatedTokens(),
                        0, x.model()));
            }
        }
        return out;
    }

    private static List<RejectedEvent> rejected(OneInputStreamOperatorTestHarness<InferenceEvent, InferenceResult> h) {
        var side = h.getSideOutput(LongContextInferenceOperator.REJECTED);
        return side == null ? List.of() : side.stream().map(StreamRecord::getValue).collect(Collectors.toList());
    }

    /** Runs the harness's mails (result callbacks) on this, the mailbox thread, until {@code done}. */
    private static void runMailsUntil(
            OneInputStreamOperatorTestHarness<InferenceEvent, InferenceResult> h, BooleanSupplier done)
            throws Exception {
        TaskMailbox mailbox = h.getTaskMailbox();
        long deadline = System.nanoTime() + 60_000_000_000L;
        while (!done.getAsBoolean()) {
            Optional<Mail> mail = mailbox.tryTake(TaskMailbox.MIN_PRIORITY);
            if (mail.isPresent()) {
                mail.get().run();
            } else {
                Thread.sleep(1);
            }
            assertTrue(System.nanoTime() < deadline, "no result within 60 s");
        }
    }

    private static Map<String, List<InferenceResult>> byKey(List<InferenceResult> results) {
        return results.stream().collect(Collectors.groupingBy(InferenceResult::key));
    }

    // ---- tests ----

    @Test
    void eventsAndResultsAreFlinkPojos() {
        assertInstanceOf(PojoTypeInfo.class, TypeInformation.of(InferenceEvent.class));
        assertInstanceOf(PojoTypeInfo.class, TypeInformation.of(InferenceResult.class));
        assertInstanceOf(PojoTypeInfo.class, TypeInformation.of(RejectedEvent.class));
    }

    @Test
    void resultsOfTwoKeysEqualTheGeneratorReferenceInPerKeyOrder() throws Exception {
        List<InferenceEvent> events = twoKeysThreeEvents();
        List<InferenceResult> expected = reference(events, 512 - MAX_NEW, 4);
        try (var h = harness(factory(settings()))) {
            h.open();
            for (InferenceEvent e : events) {
                h.processElement(e, e.eventTimeMillis());
            }
            h.endInput();
            List<InferenceResult> actual = results(h);
            assertEquals(byKey(expected), byKey(actual));
            assertEquals(List.of(), rejected(h));
            // each result carries its event's time
            for (Object o : h.getOutput()) {
                StreamRecord<?> r = (StreamRecord<?>) o;
                String id = ((InferenceResult) r.getValue()).requestId();
                assertEquals(events.stream().filter(e -> e.requestId().equals(id)).findFirst().orElseThrow().eventTimeMillis(),
                        r.getTimestamp());
            }
        }
    }

    @Test
    void fullEngineBackpressuresInsteadOfDropping() throws Exception {
        // one request in the engine at a time: every hand-over beyond it waits by yielding
        List<InferenceEvent> events = new ArrayList<>(twoKeysThreeEvents());
        events.add(new InferenceEvent("c", "c1", "a third key", 7));
        List<InferenceResult> expected = reference(events, 512 - MAX_NEW, 4);
        try (var h = harness(factory(settings().withEngine(1, 1, 1)))) {
            h.open();
            for (InferenceEvent e : events) {
                h.processElement(e, e.eventTimeMillis());
            }
            h.endInput();
            assertEquals(byKey(expected), byKey(results(h)));
        }
    }

    @Test
    void operatorSnapshotsInFlightAndWaitingEventsAndRestoresToTheUninterruptedOutputs() throws Exception {
        List<InferenceEvent> events = twoKeysThreeEvents();
        List<InferenceResult> expected = reference(events, 512 - MAX_NEW, 4);
        Map<String, InferenceEvent> byId = events.stream().collect(Collectors.toMap(InferenceEvent::requestId, e -> e));
        List<InferenceResult> before;
        OperatorSubtaskState snapshot;
        try (var h = harness(factory(settings()))) {
            h.open();
            for (String id : List.of("a1", "b1", "a2")) {
                h.processElement(byId.get(id), byId.get(id).eventTimeMillis());
            }
            runMailsUntil(h, () -> results(h).size() == 2); // a1, b1 answered; a2 now in the engine
            h.processElement(byId.get("b2"), 4); // b2 in the engine too
            snapshot = h.snapshot(1L, 10L);
            before = results(h);
        }
        List<InferenceResult> after;
        try (var h = harness(factory(settings()))) {
            h.initializeState(snapshot);
            h.open(); // hands a2 and b2 to the engine again
            h.processElement(byId.get("a3"), 5);
            h.processElement(byId.get("b3"), 6);
            h.endInput();
            after = results(h);
        }
        assertEquals(List.of("a1", "b1"), before.stream().map(InferenceResult::requestId).sorted().toList());
        assertEquals(4, after.size());
        List<InferenceResult> all = new ArrayList<>(before);
        all.addAll(after);
        assertEquals(byKey(expected), byKey(all));
    }

    @Test
    void emptyAndOversizeTextGoToTheSideOutputAndTheKeyMovesOn() throws Exception {
        String huge = "lorem ipsum dolor sit amet ".repeat(200);
        List<InferenceEvent> good = List.of(
                new InferenceEvent("a", "a1", "hello world", 1), new InferenceEvent("a", "a2", "jumps over", 4));
        try (var h = harness(factory(settings()))) {
            h.open();
            h.processElement(good.get(0), 1);
            h.processElement(new InferenceEvent("a", "empty", "", 2), 2);
            h.processElement(new InferenceEvent("a", "huge", huge, 3), 3);
            h.processElement(good.get(1), 4);
            h.endInput();
            assertEquals(byKey(reference(good, 512 - MAX_NEW, 4)), byKey(results(h)));
            List<RejectedEvent> bad = rejected(h);
            assertEquals(List.of("empty", "huge"), bad.stream().map(r -> r.event().requestId()).toList());
            assertTrue(bad.get(0).reason().contains("empty"), bad.get(0).reason());
            assertTrue(bad.get(1).reason().contains("exceeds"), bad.get(1).reason());
        }
    }

    /** Fails every request whose id starts with "fail", as the engine fails a bad request. */
    static final class FailingEngine implements InferenceEngine {
        private final InferenceEngine delegate;

        FailingEngine(InferenceEngine delegate) {
            this.delegate = delegate;
        }

        @Override
        public CompletableFuture<GenerationResult> submit(GenerationRequest request) {
            if (request.id().startsWith("fail")) {
                return CompletableFuture.failedFuture(new RequestFailedException("request " + request.id() + ": injected", null));
            }
            return delegate.submit(request);
        }

        @Override
        public boolean hasCapacity() {
            return delegate.hasCapacity();
        }

        @Override
        public int inFlight() {
            return delegate.inFlight();
        }

        @Override
        public int capacity() {
            return delegate.capacity();
        }

        @Override
        public EngineStats stats() {
            return delegate.stats();
        }

        @Override
        public void close() {
            delegate.close();
        }
    }

    /** The KV formats the engines of {@link #operatorStoresItsKvCachesInTheSettingsFormat} got, in order. */
    static final List<KvFormat> KV_FORMATS_SEEN = new java.util.concurrent.CopyOnWriteArrayList<>();

    @Test
    void operatorStoresItsKvCachesInTheSettingsFormat() throws Exception {
        KV_FORMATS_SEEN.clear();
        EngineFactory recording = (forward, s) -> {
            KV_FORMATS_SEEN.add(forward.kvFormat());
            return EngineFactory.continuousBatching().create(forward, s);
        };
        for (KvFormat f : List.of(KvFormat.Q8, KvFormat.F16)) {
            try (var h = harness(factory(settings().withKvFormat(f), recording))) {
                h.open();
                h.processElement(new InferenceEvent("a", "a1", "hello world", 1), 1);
                h.endInput();
                assertEquals(1, results(h).size(), f + ": the event is answered");
                assertEquals(List.of(), rejected(h));
            }
        }
        assertEquals(List.of(KvFormat.Q8, KvFormat.F16), KV_FORMATS_SEEN);
        assertEquals(KvFormat.F32, settings().resolvedKvFormat(), "unset, without the system property: F32");
    }

    @Test
    void requestTheEngineFailsGoesToTheSideOutputAndHistoryIsUnchanged() throws Exception {
        List<InferenceEvent> good = List.of(
                new InferenceEvent("a", "a1", "hello world", 1), new InferenceEvent("a", "a2", "jumps over", 3));
        EngineFactory failing = (forward, s) -> new FailingEngine(EngineFactory.continuousBatching().create(forward, s));
        try (var h = harness(factory(settings(), failing))) {
            h.open();
            h.processElement(good.get(0), 1);
            h.processElement(new InferenceEvent("a", "fail-1", "this one fails", 2), 2);
            h.processElement(good.get(1), 3);
            h.endInput();
            assertEquals(byKey(reference(good, 512 - MAX_NEW, 4)), byKey(results(h)));
            List<RejectedEvent> bad = rejected(h);
            assertEquals(1, bad.size());
            assertTrue(bad.get(0).reason().contains("fail-1") && bad.get(0).reason().contains("injected"),
                    bad.get(0).reason());
        }
    }

    @Test
    void contextTrimmingKeepsTheSystemTurnAndSinkAndMatchesTheTrimmedReference() throws Exception {
        int maxContext = 80;
        int sink = 3;
        List<InferenceEvent> events = new ArrayList<>();
        for (int i = 0; i < 6; i++) {
            events.add(new InferenceEvent("k", "k" + i, "turn number " + i + " of a long talk", i));
        }
        List<InferenceResult> expected = reference(events, maxContext - MAX_NEW, sink);
        // the reference really trims: later prompts stop growing
        assertTrue(expected.get(5).promptTokens() <= maxContext - MAX_NEW);
        int untrimmed = expected.stream().mapToInt(r -> r.generatedTokens() + 2).sum() + expected.get(5).promptTokens();
        assertTrue(untrimmed > maxContext, "the test must overflow the context: " + untrimmed);
        try (var h = harness(factory(settings().withContext(maxContext, sink)))) {
            h.open();
            for (InferenceEvent e : events) {
                h.processElement(e, e.eventTimeMillis());
            }
            h.endInput();
            assertEquals(expected, results(h));
        }
    }

    @Test
    void waitingEventsMoveWithTheirKeyWhenTheOperatorIsRescaled() throws Exception {
        // keyed 'pending' state: after a rescale from 1 to 2 subtasks each key's unanswered
        // events are resubmitted by the subtask that owns the key, next to its history
        int maxParallelism = 128;
        List<InferenceEvent> events = new ArrayList<>();
        for (String key : List.of("a", "b", "c", "d")) {
            for (int i = 0; i < 2; i++) {
                events.add(new InferenceEvent(key, key + i, "rescale " + key + " turn " + i, i));
            }
        }
        List<InferenceResult> expected = reference(events, 512 - MAX_NEW, 4);
        List<InferenceResult> all = new ArrayList<>();
        OperatorSubtaskState snapshot;
        try (var h = new KeyedOneInputStreamOperatorTestHarness<>(factory(settings()),
                InferenceEvent::key, Types.STRING, maxParallelism, 1, 0)) {
            h.open();
            for (InferenceEvent e : events) {
                h.processElement(e, e.eventTimeMillis());
            }
            snapshot = h.snapshot(1L, 10L); // nothing answered yet: every event is in 'pending'
            all.addAll(results(h));
        }
        java.util.Set<String> keysSeen = new java.util.HashSet<>();
        for (int subtask = 0; subtask < 2; subtask++) {
            OperatorSubtaskState part =
                    AbstractStreamOperatorTestHarness.repartitionOperatorState(snapshot, maxParallelism, 1, 2, subtask);
            try (var h = new KeyedOneInputStreamOperatorTestHarness<>(factory(settings()),
                    InferenceEvent::key, Types.STRING, maxParallelism, 2, subtask)) {
                h.initializeState(part);
                h.open();
                h.endInput();
                for (InferenceResult r : results(h)) {
                    assertEquals(subtask, KeyGroupRangeAssignment.assignKeyToParallelOperator(r.key(), maxParallelism, 2),
                            "key " + r.key() + " answered by subtask " + subtask);
                    keysSeen.add(r.key());
                }
                all.addAll(results(h));
            }
        }
        assertEquals(4, keysSeen.size());
        assertEquals(byKey(expected), byKey(all));
    }

    @Test
    void settingsRejectImpossibleLimits() {
        InferenceSettings s = settings();
        assertThrows(IllegalArgumentException.class, () -> s.withMaxNewTokens(512));
        assertThrows(IllegalArgumentException.class, () -> s.withEngine(4, 2, 1));
        assertThrows(IllegalArgumentException.class, () -> s.withContext(512, -1));
    }

    @Test
    void openRejectsAContextLongerThanTheModelsPositions() throws Exception {
        // the tiny model has 1024 positions
        try (var h = harness(factory(settings().withContext(4096, 4)))) {
            Exception e = assertThrows(Exception.class, h::open);
            String message = String.valueOf(e.getMessage()) + " " + (e.getCause() == null ? "" : e.getCause().getMessage());
            assertTrue(message.contains("max_position_embeddings 1024"), message);
        }
    }

    @Test
    void watermarkWaitsForTheResultsOfEarlierEvents() throws Exception {
        try (var h = harness(factory(settings()))) {
            h.open();
            h.processElement(new InferenceEvent("a", "a1", "hello world", 1), 1);
            h.processElement(new InferenceEvent("b", "b1", "the quick brown fox", 2), 2);
            h.processElement(new InferenceEvent("a", "a2", "jumps over", 3), 3);
            h.processWatermark(new Watermark(3));
            List<Object> out = new ArrayList<>(h.getOutput());
            assertEquals(4, out.size(), out.toString());
            assertEquals(new Watermark(3), out.get(3));
        }
    }

    // ---- Arrow batching, metrics, KV budget, timeouts ----

    /** A task metric group whose one operator group keeps every metric by name. */
    static final class OneOperatorMetrics extends InterceptingTaskMetricGroup {
        final InterceptingOperatorMetricGroup operator = new InterceptingOperatorMetricGroup();

        @Override
        public InternalOperatorMetricGroup getOrAddOperator(OperatorID id, String name, Map<String, String> info) {
            return operator;
        }

        @Override
        public InternalOperatorMetricGroup getOrAddOperator(String name) {
            return operator;
        }
    }

    /** A keyed harness (as KeyedOneInputStreamOperatorTestHarness sets one up) whose operator metrics can be read. */
    static final class MetricHarness extends OneInputStreamOperatorTestHarness<InferenceEvent, InferenceResult> {
        final InterceptingOperatorMetricGroup metrics;
        final MockEnvironment environment;

        MetricHarness(LongContextInferenceOperatorFactory factory) throws Exception {
            this(factory, new OneOperatorMetrics());
        }

        private MetricHarness(LongContextInferenceOperatorFactory factory, OneOperatorMetrics group) throws Exception {
            this(factory, group, new MockEnvironmentBuilder().setMetricGroup(group).setMaxParallelism(128).build());
        }

        private MetricHarness(LongContextInferenceOperatorFactory factory, OneOperatorMetrics group, MockEnvironment env)
                throws Exception {
            super(factory, env);
            this.metrics = group.operator;
            this.environment = env;
            KeySelector<InferenceEvent, String> byKey = InferenceEvent::key;
            config.setStatePartitioner(0, byKey);
            config.setStateKeySerializer(Types.STRING.createSerializer(executionConfig.getSerializerConfig()));
            config.serializeAllConfigs();
        }

        Metric metric(String name) {
            Metric m = metrics.get(name);
            assertTrue(m != null, "no metric " + name);
            return m;
        }

        long count(String name) {
            return ((org.apache.flink.metrics.Counter) metric(name)).getCount();
        }

        long gauge(String name) {
            return ((Number) ((Gauge<?>) metric(name)).getValue()).longValue();
        }

        Histogram histogram(String name) {
            return (Histogram) metric(name);
        }

        @Override
        public void close() throws Exception {
            try {
                super.close();
            } finally {
                environment.close();
            }
        }
    }

    /** The payload bytes the batcher counts for one event: key, id and text bytes, 8, 4 per turn token. */
    private static long payloadBytes(InferenceEvent e) {
        ChatMl chat = new ChatMl(model.tokenizer());
        String system = settings().systemPrompt();
        int systemTokens = chat.encode(List.of(ChatMl.Message.system(system)), false).length;
        int turn = chat.encode(List.of(ChatMl.Message.system(system), ChatMl.Message.user(e.text())), true).length - systemTokens;
        return e.key().getBytes(java.nio.charset.StandardCharsets.UTF_8).length + e.requestId().length()
                + e.text().getBytes(java.nio.charset.StandardCharsets.UTF_8).length + 8 + 4L * turn;
    }

    @Test
    void stagedRequestsOfAllKeysGoToTheEngineInOneArrowBatchOnTheTimeBound() throws Exception {
        List<InferenceEvent> events = List.of(
                new InferenceEvent("a", "a1", "hello world", 1),
                new InferenceEvent("b", "b1", "the quick brown fox", 2),
                new InferenceEvent("a", "a2", "jumps over", 3));
        try (var h = new MetricHarness(factory(settings().withBatch(8, 1 << 20, 50)))) {
            h.open();
            h.processElement(events.get(0), 1);
            h.processElement(events.get(1), 2);
            h.processElement(events.get(2), 3); // waits behind a1: not staged
            assertEquals(2, h.gauge("bufferedRequests"));
            assertEquals(2, h.gauge("queueLength"));
            assertTrue(h.gauge("arrowBytes") > 0);
            assertEquals(0, h.count("requests"), "nothing goes to the engine before a bound is reached");
            h.setProcessingTime(49);
            assertEquals(0, h.count("requests"));
            h.setProcessingTime(50);
            assertEquals(2, h.count("requests"));
            assertEquals(0, h.gauge("bufferedRequests"));
            assertEquals(1, h.count("batches"));
            assertEquals(2, h.histogram("batchSize").getStatistics().getMax());
            h.endInput(); // flushes a2's batch of one
            assertEquals(byKey(reference(events, 512 - MAX_NEW, 4)), byKey(results(h)));
            assertEquals(2, h.count("batches"));
            assertEquals(1, h.histogram("batchSize").getStatistics().getMin());
        }
    }

    @Test
    void arrowBatchGoesToTheEngineOnTheByteBound() throws Exception {
        InferenceEvent a1 = new InferenceEvent("a", "a1", "hello world", 1);
        InferenceEvent b1 = new InferenceEvent("b", "b1", "the quick brown fox", 2);
        long bytes = payloadBytes(a1) + payloadBytes(b1);
        try (var h = new MetricHarness(factory(settings().withBatch(100, bytes, 60_000)))) {
            h.open();
            h.processElement(a1, 1);
            assertEquals(0, h.count("requests"));
            assertEquals(1, h.gauge("bufferedRequests"));
            h.processElement(b1, 2); // now exactly at the byte bound
            assertEquals(2, h.count("requests"));
            assertEquals(0, h.gauge("bufferedRequests"));
            h.endInput();
            assertEquals(byKey(reference(List.of(a1, b1), 512 - MAX_NEW, 4)), byKey(results(h)));
        }
    }

    @Test
    void metricsCountRequestsTokensBatchesLatencyAndKvBytes() throws Exception {
        List<InferenceEvent> events = twoKeysThreeEvents();
        List<InferenceResult> expected = reference(events, 512 - MAX_NEW, 4);
        try (var h = new MetricHarness(factory(settings().withBatch(2, 1 << 20, 60_000)))) {
            h.open();
            for (InferenceEvent e : events) {
                h.processElement(e, e.eventTimeMillis());
            }
            h.endInput();
            List<InferenceResult> actual = results(h);
            assertEquals(byKey(expected), byKey(actual));
            long tokensIn = expected.stream().mapToLong(InferenceResult::promptTokens).sum();
            long tokensOut = expected.stream().mapToLong(InferenceResult::generatedTokens).sum();
            assertEquals(6, h.count("requests"));
            assertEquals(0, h.count("requestsRejected"));
            assertEquals(tokensIn, h.count("tokensIn"));
            assertEquals(tokensOut, h.count("tokensOut"));
            Meter out = (Meter) h.metric("tokensOutPerSecond");
            assertEquals(tokensOut, out.getCount());
            ((View) out).update(); // what the metric registry does every few seconds
            assertTrue(out.getRate() > 0, "rate " + out.getRate());
            assertEquals(6, ((Meter) h.metric("requestsPerSecond")).getCount());
            // batches: every request went through one; their sizes add up to the requests
            Histogram batchSize = h.histogram("batchSize");
            assertEquals(h.count("batches"), batchSize.getCount());
            assertEquals(6, Math.round(batchSize.getStatistics().getMean() * batchSize.getCount()));
            assertTrue(batchSize.getStatistics().getMax() <= 2);
            // latency: one sample per result, the results' own values
            Histogram latency = h.histogram("latencyMillis");
            assertEquals(6, latency.getCount());
            List<InferenceResult> raw = new ArrayList<>();
            h.getOutput().forEach(o -> raw.add((InferenceResult) ((StreamRecord<?>) o).getValue()));
            assertEquals(raw.stream().mapToLong(InferenceResult::latencyMillis).max().orElseThrow(),
                    latency.getStatistics().getMax());
            // drained: nothing queued; both keys' caches idle within the budget
            assertEquals(0, h.gauge("queueLength"));
            assertEquals(0, h.gauge("bufferedRequests"));
            assertEquals(0, h.gauge("evictions"));
            long idle = h.gauge("idleKvBytes");
            assertTrue(idle > 0);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (h.gauge("kvBytesInUse") != idle && System.nanoTime() < deadline) {
                Thread.sleep(1); // the engine updates it after its last step
            }
            assertEquals(idle, h.gauge("kvBytesInUse"));
            // the second and third turns of each key reused the key's cache
            assertTrue(h.gauge("reusedTokens") > 0);
            assertEquals(tokensIn, h.gauge("reusedTokens") + h.gauge("prefilledTokens"));
        }
    }

    @Test
    void kvBudgetOfZeroEvictsEveryIdleCacheAndPrefillRebuildsThemWithTheSameResults() throws Exception {
        List<InferenceEvent> events = twoKeysThreeEvents();
        List<InferenceResult> expected = reference(events, 512 - MAX_NEW, 4);
        try (var h = new MetricHarness(factory(settings().withKvBudgetBytes(0)))) {
            h.open();
            for (InferenceEvent e : events) {
                h.processElement(e, e.eventTimeMillis());
            }
            h.endInput();
            assertEquals(byKey(expected), byKey(results(h)));
            assertEquals(6, h.gauge("evictions"), "each request's cache is dropped when it ends");
            assertEquals(0, h.gauge("idleKvBytes"));
            assertEquals(0, h.gauge("reusedTokens"));
            assertEquals(h.count("tokensIn"), h.gauge("prefilledTokens"), "every prompt rebuilt by prefill");
        }
    }

    @Test
    void kvBudgetEvictsTheLeastRecentlyUsedIdleKey() throws Exception {
        // a and b send the same text first: their caches are the same size
        InferenceEvent a1 = new InferenceEvent("a", "a1", "same words", 1);
        InferenceEvent b1 = new InferenceEvent("b", "b1", "same words", 2);
        InferenceEvent b2 = new InferenceEvent("b", "b2", "b goes on", 3);
        InferenceEvent a2 = new InferenceEvent("a", "a2", "a goes on", 4);
        long oneCache;
        try (var h = new MetricHarness(factory(settings()))) {
            h.open();
            h.processElement(a1, 1);
            h.endInput();
            oneCache = h.gauge("idleKvBytes");
        }
        // prefix sharing off: a's and b's first prompts are equal and would share every full block
        try (var h = new MetricHarness(factory(settings().withKvBudgetBytes(2 * oneCache - 1), EngineFactory.continuousBatching(false)))) {
            h.open();
            h.processElement(a1, 1);
            h.processElement(b1, 2);
            h.processWatermark(new Watermark(2)); // both answered; a finished first
            assertEquals(1, h.gauge("evictions"));
            assertEquals(oneCache, h.gauge("idleKvBytes"));
            assertEquals(0, h.gauge("reusedTokens"));
            h.processElement(b2, 3);
            h.processWatermark(new Watermark(3));
            assertTrue(h.gauge("reusedTokens") > 0, "b, used last, kept its cache");
            long reused = h.gauge("reusedTokens");
            long prefilled = h.gauge("prefilledTokens");
            h.processElement(a2, 4);
            h.endInput();
            InferenceResult a2Result = results(h).stream().filter(r -> r.requestId().equals("a2")).findFirst().orElseThrow();
            assertEquals(reused, h.gauge("reusedTokens"), "a was evicted: nothing reused");
            assertEquals(prefilled + a2Result.promptTokens(), h.gauge("prefilledTokens"), "a rebuilt by prefill");
            assertEquals(byKey(reference(List.of(a1, b1, b2, a2), 512 - MAX_NEW, 4)), byKey(results(h)));
        }
    }

    /** Holds requests whose id starts with "slow" until the test completes them; others run. */
    static final class HoldingEngine implements InferenceEngine {
        static final List<CompletableFuture<GenerationResult>> held = new java.util.concurrent.CopyOnWriteArrayList<>();
        static final List<GenerationRequest> heldRequests = new java.util.concurrent.CopyOnWriteArrayList<>();
        static final List<String> cancelled = new java.util.concurrent.CopyOnWriteArrayList<>();
        /** Whether cancel() completes the held future as ContinuousBatchingEngine does (cancelled). */
        static volatile boolean completeOnCancel;
        private final InferenceEngine delegate;

        HoldingEngine(InferenceEngine delegate) {
            this.delegate = delegate;
        }

        @Override
        public CompletableFuture<GenerationResult> submit(GenerationRequest request) {
            if (request.id().startsWith("slow")) {
                CompletableFuture<GenerationResult> f = new CompletableFuture<>();
                held.add(f);
                heldRequests.add(request);
                return f;
            }
            return delegate.submit(request);
        }

        /** Records the cancellation; the held future stays open until the test completes it. */
        @Override
        public boolean cancel(GenerationRequest request) {
            int i = heldRequests.indexOf(request);
            if (i >= 0 && heldRequests.get(i) == request) {
                cancelled.add(request.id());
                if (completeOnCancel) {
                    held.get(i).completeExceptionally(new java.util.concurrent.CancellationException("cancelled " + request.id()));
                }
                return true;
            }
            return delegate.cancel(request);
        }

        @Override
        public boolean hasCapacity() {
            return delegate.hasCapacity();
        }

        @Override
        public int inFlight() {
            return delegate.inFlight();
        }

        @Override
        public int capacity() {
            return delegate.capacity();
        }

        @Override
        public void close() {
            delegate.close();
        }
    }

    @Test
    void requestNotAnsweredWithinTheTimeoutGoesToTheSideOutputAndTheKeyMovesOn() throws Exception {
        HoldingEngine.held.clear();
        HoldingEngine.heldRequests.clear();
        HoldingEngine.cancelled.clear();
        HoldingEngine.completeOnCancel = false;
        InferenceEvent slow = new InferenceEvent("a", "slow-1", "never answered in time", 1);
        InferenceEvent next = new InferenceEvent("a", "a2", "jumps over", 2);
        EngineFactory holding = (forward, s) -> new HoldingEngine(EngineFactory.continuousBatching().create(forward, s));
        try (var h = new MetricHarness(factory(settings().withBatch(1, 1 << 20, 0).withRequestTimeoutMillis(100), holding))) {
            h.open();
            h.processElement(slow, 1);
            h.processElement(next, 2);
            assertEquals(1, h.count("requests"));
            h.setProcessingTime(99);
            assertEquals(List.of(), rejected(h));
            h.setProcessingTime(100);
            List<RejectedEvent> bad = rejected(h);
            assertEquals(1, bad.size());
            assertEquals("slow-1", bad.get(0).event().requestId());
            assertTrue(bad.get(0).reason().contains("timed out") && bad.get(0).reason().contains("100 ms"), bad.get(0).reason());
            assertEquals(1, h.count("requestsTimedOut"));
            assertEquals(List.of("slow-1"), HoldingEngine.cancelled, "the timed-out request was cancelled in the engine");
            h.endInput();
            // the key went on from its unchanged history
            assertEquals(reference(List.of(next), 512 - MAX_NEW, 4), results(h));
            // the late answer is dropped, and its Arrow batch closed (the allocator check after the test)
            HoldingEngine.held.get(0).complete(new GenerationResult("slow-1", new int[] {1, 2}, null, 0, 0, 0));
            assertEquals(1, h.gauge("openBatches"), "the engine may still read the slow request's prompt");
            runMailsUntil(h, () -> h.gauge("openBatches") == 0);
            assertEquals(1, results(h).size());
        }
    }

    @Test
    void timedOutRequestIsCancelledInTheEngineAndItsCancellationClosesTheBatchWithoutFailing() throws Exception {
        HoldingEngine.held.clear();
        HoldingEngine.heldRequests.clear();
        HoldingEngine.cancelled.clear();
        HoldingEngine.completeOnCancel = true;
        InferenceEvent slow = new InferenceEvent("a", "slow-1", "never answered in time", 1);
        InferenceEvent next = new InferenceEvent("a", "a2", "jumps over", 2);
        EngineFactory holding = (forward, s) -> new HoldingEngine(EngineFactory.continuousBatching().create(forward, s));
        try (var h = new MetricHarness(factory(settings().withBatch(1, 1 << 20, 0).withRequestTimeoutMillis(100), holding))) {
            h.open();
            h.processElement(slow, 1);
            h.processElement(next, 2);
            h.setProcessingTime(100);
            assertEquals(List.of("slow-1"), HoldingEngine.cancelled);
            assertEquals(List.of("slow-1"), rejected(h).stream().map(r -> r.event().requestId()).toList());
            // the cancellation comes back as a mail: the slow request's batch is closed, nothing fails
            runMailsUntil(h, () -> h.gauge("openBatches") == 0 || results(h).size() == 1);
            h.endInput();
            runMailsUntil(h, () -> h.gauge("openBatches") == 0);
            assertEquals(reference(List.of(next), 512 - MAX_NEW, 4), results(h));
            assertEquals(0, h.count("requestsFailed"));
        } finally {
            HoldingEngine.completeOnCancel = false;
        }
    }
}
