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
import org.junit.jupiter.api.AfterAll;
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

    private static KeyedOneInputStreamOperatorTestHarness<String, InferenceEvent, InferenceResult> harness(
            LongContextInferenceOperatorFactory factory) throws Exception {
        return new KeyedOneInputStreamOperatorTestHarness<>(factory, InferenceEvent::key, Types.STRING);
    }

    private static List<InferenceResult> results(KeyedOneInputStreamOperatorTestHarness<String, InferenceEvent, InferenceResult> h) {
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

    private static List<RejectedEvent> rejected(KeyedOneInputStreamOperatorTestHarness<String, InferenceEvent, InferenceResult> h) {
        var side = h.getSideOutput(LongContextInferenceOperator.REJECTED);
        return side == null ? List.of() : side.stream().map(StreamRecord::getValue).collect(Collectors.toList());
    }

    /** Runs the harness's mails (result callbacks) on this, the mailbox thread, until {@code done}. */
    private static void runMailsUntil(
            KeyedOneInputStreamOperatorTestHarness<String, InferenceEvent, InferenceResult> h, BooleanSupplier done)
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
        try (var h = harness(new LongContextInferenceOperatorFactory(settings()))) {
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
        try (var h = harness(new LongContextInferenceOperatorFactory(settings().withEngine(1, 1, 1)))) {
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
        try (var h = harness(new LongContextInferenceOperatorFactory(settings()))) {
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
        try (var h = harness(new LongContextInferenceOperatorFactory(settings()))) {
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
        try (var h = harness(new LongContextInferenceOperatorFactory(settings()))) {
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
        public void close() {
            delegate.close();
        }
    }

    @Test
    void requestTheEngineFailsGoesToTheSideOutputAndHistoryIsUnchanged() throws Exception {
        List<InferenceEvent> good = List.of(
                new InferenceEvent("a", "a1", "hello world", 1), new InferenceEvent("a", "a2", "jumps over", 3));
        EngineFactory failing = (forward, s) -> new FailingEngine(EngineFactory.continuousBatching().create(forward, s));
        try (var h = harness(new LongContextInferenceOperatorFactory(settings(), failing))) {
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
        try (var h = harness(new LongContextInferenceOperatorFactory(settings().withContext(maxContext, sink)))) {
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
        try (var h = new KeyedOneInputStreamOperatorTestHarness<>(new LongContextInferenceOperatorFactory(settings()),
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
            try (var h = new KeyedOneInputStreamOperatorTestHarness<>(new LongContextInferenceOperatorFactory(settings()),
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
        try (var h = harness(new LongContextInferenceOperatorFactory(settings().withContext(4096, 4)))) {
            Exception e = assertThrows(Exception.class, h::open);
            String message = String.valueOf(e.getMessage()) + " " + (e.getCause() == null ? "" : e.getCause().getMessage());
            assertTrue(message.contains("max_position_embeddings 1024"), message);
        }
    }

    @Test
    void watermarkWaitsForTheResultsOfEarlierEvents() throws Exception {
        try (var h = harness(new LongContextInferenceOperatorFactory(settings()))) {
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
}
