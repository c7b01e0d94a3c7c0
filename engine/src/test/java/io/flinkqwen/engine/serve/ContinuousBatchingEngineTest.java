/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.serve;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.engine.LoadedModel;
import io.flinkqwen.engine.generate.Generator;
import io.flinkqwen.engine.generate.SamplingParams;
import io.flinkqwen.engine.testmodel.TestModelGenerator;
import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.KernelPool;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ContinuousBatchingEngineTest {

    @TempDir static Path dir;
    static LoadedModel model;
    static KernelPool pool;

    @BeforeAll
    static void load() throws Exception {
        Path gguf = dir.resolve("tiny.gguf");
        new TestModelGenerator(TestModelGenerator.tinyConfig(), 8).write(TestModelGenerator.Format.GGUF, DType.F32, gguf, 0);
        model = LoadedModel.open(gguf);
        pool = new KernelPool(2);
    }

    @AfterAll
    static void close() {
        model.close();
        pool.close();
    }

    private static SamplingParams params(int i) {
        // a mix of greedy and seeded sampling, different lengths
        return i % 2 == 0
                ? SamplingParams.greedy(4 + i % 7)
                : new SamplingParams(0.9f, 20, 0.95f, 1000 + i, 3 + i % 5, null);
    }

    private static int[] prompt(int i) {
        int[] p = new int[3 + i % 4];
        for (int j = 0; j < p.length; j++) {
            p[j] = (17 * i + 31 * j) % 500;
        }
        return p;
    }

    @Test
    void manyConcurrentRequestsGiveTheIdsOfSequentialGeneration() throws Exception {
        int n = 12;
        List<CompletableFuture<GenerationResult>> futures = new ArrayList<>();
        try (ContinuousBatchingEngine engine = new ContinuousBatchingEngine(model.newForward(pool, 16), 4, n)) {
            for (int i = 0; i < n; i++) {
                futures.add(engine.submit(new GenerationRequest("r" + i, prompt(i), params(i))));
            }
            CompletableFuture.allOf(futures.toArray(new CompletableFuture[0])).get(60, TimeUnit.SECONDS);
            assertEquals(0, engine.inFlight());
            // 12 requests of up to 11 tokens, 4 at a time: far fewer steps than run one by one
            long sequentialSteps = 0;
            for (int i = 0; i < n; i++) {
                sequentialSteps += params(i).maxNewTokens();
            }
            assertTrue(engine.steps() < sequentialSteps, engine.steps() + " steps vs " + sequentialSteps);
        }
        Generator alone = new Generator(model.newForward(pool, 16));
        for (int i = 0; i < n; i++) {
            GenerationResult r = futures.get(i).get();
            assertEquals("r" + i, r.id());
            assertArrayEquals(alone.generate(prompt(i), params(i), null).ids(), r.ids(), "request " + i);
        }
    }

    @Test
    void fullEngineRefusesInsteadOfDroppingAndRecovers() throws Exception {
        try (ContinuousBatchingEngine engine = new ContinuousBatchingEngine(model.newForward(pool, 16), 1, 2)) {
            CompletableFuture<GenerationResult> a = engine.submit(new GenerationRequest("a", prompt(1), SamplingParams.greedy(200)));
            CompletableFuture<GenerationResult> b = engine.submit(new GenerationRequest("b", prompt(2), SamplingParams.greedy(5)));
            assertFalse(engine.hasCapacity());
            RejectedExecutionException e =
                    assertThrows(RejectedExecutionException.class, () -> engine.submit(new GenerationRequest("c", prompt(3), SamplingParams.greedy(5))));
            assertTrue(e.getMessage().contains("request c"), e.getMessage());
            a.get(60, TimeUnit.SECONDS);
            b.get(60, TimeUnit.SECONDS);
            assertTrue(engine.hasCapacity());
            assertEquals(5, engine.submit(new GenerationRequest("c", prompt(3), SamplingParams.greedy(5))).get(60, TimeUnit.SECONDS).ids().length);
        }
    }

    @Test
    void oneBadRequestFailsAloneWithItsId() throws Exception {
        try (ContinuousBatchingEngine engine = new ContinuousBatchingEngine(model.newForward(pool, 16), 3, 3)) {
            CompletableFuture<GenerationResult> good1 = engine.submit(new GenerationRequest("good1", prompt(4), SamplingParams.greedy(6)));
            CompletableFuture<GenerationResult> bad = engine.submit(new GenerationRequest("bad", new int[] {1, 2, 9999}, SamplingParams.greedy(6)));
            CompletableFuture<GenerationResult> tooLong =
                    engine.submit(new GenerationRequest("long", new int[model.config().maxPositionEmbeddings() + 5], SamplingParams.greedy(2)));
            ExecutionException e = assertThrows(ExecutionException.class, () -> bad.get(60, TimeUnit.SECONDS));
            assertTrue(e.getCause().getMessage().contains("request bad") && e.getCause().getMessage().contains("9999"), e.getCause().getMessage());
            e = assertThrows(ExecutionException.class, () -> tooLong.get(60, TimeUnit.SECONDS));
            assertTrue(e.getCause().getMessage().contains("context"), e.getCause().getMessage());
            assertEquals(6, good1.get(60, TimeUnit.SECONDS).ids().length);
            // the engine keeps serving
            assertEquals(2, engine.submit(new GenerationRequest("after", prompt(5), SamplingParams.greedy(2))).get(60, TimeUnit.SECONDS).ids().length);
        }
    }

    @Test
    void lateRequestsJoinTheRunningBatch() throws Exception {
        try (ContinuousBatchingEngine engine = new ContinuousBatchingEngine(model.newForward(pool, 16), 4, 4)) {
            CompletableFuture<GenerationResult> longOne = engine.submit(new GenerationRequest("long", prompt(6), SamplingParams.greedy(400)));
            while (engine.steps() < 3) {
                Thread.onSpinWait();
            }
            CompletableFuture<GenerationResult> late = engine.submit(new GenerationRequest("late", prompt(7), SamplingParams.greedy(3)));
            // the short late request finishes while the long one still runs: it did not wait
            late.get(60, TimeUnit.SECONDS);
            assertFalse(longOne.isDone());
            assertTrue(late.get().queuedNanos() < TimeUnit.SECONDS.toNanos(5));
            longOne.get(120, TimeUnit.SECONDS);
        }
    }

    @Test
    void closeCancelsWhatIsNotDone() throws Exception {
        ContinuousBatchingEngine engine = new ContinuousBatchingEngine(model.newForward(pool, 16), 1, 3);
        CompletableFuture<GenerationResult> running = engine.submit(new GenerationRequest("x", prompt(8), SamplingParams.greedy(100_000)));
        CompletableFuture<GenerationResult> queued = engine.submit(new GenerationRequest("y", prompt(9), SamplingParams.greedy(3)));
        engine.close();
        // a future completed with a CancellationException rethrows it as is from get()
        CancellationException e = assertThrows(CancellationException.class, () -> running.get(10, TimeUnit.SECONDS));
        assertTrue(e.getMessage().contains("request x"), e.getMessage());
        assertTrue(queued.isCompletedExceptionally());
        assertEquals(0, engine.inFlight());
        assertThrows(RejectedExecutionException.class, () -> engine.submit(new GenerationRequest("z", prompt(1), SamplingParams.greedy(1))));
    }

    private static int[] concat(int[]... parts) {
        int n = 0;
        for (int[] p : parts) {
            n += p.length;
        }
        int[] out = new int[n];
        int o = 0;
        for (int[] p : parts) {
            System.arraycopy(p, 0, out, o, p.length);
            o += p.length;
        }
        return out;
    }

    @Test
    void sessionReusesItsCacheAndPrefillsOnlyTheNewTokens() throws Exception {
        Generator fresh = new Generator(model.newForward(pool, 16));
        try (ContinuousBatchingEngine engine = new ContinuousBatchingEngine(model.newForward(pool, 16), 2, 8)) {
            int[] history = {11, 12, 13, 14, 15, 16};
            GenerationResult first = engine.submit(new GenerationRequest("e1", "source-a", history, SamplingParams.greedy(5))).get(60, TimeUnit.SECONDS);
            // the operator appends what the model said and the next event's tokens
            int[] next = concat(history, first.ids(), new int[] {21, 22, 23});
            GenerationResult second = engine.submit(new GenerationRequest("e2", "source-a", next, SamplingParams.greedy(5))).get(60, TimeUnit.SECONDS);
            // cached: the history and the first 4 generated tokens (the 5th was sampled, never fed)
            assertEquals(history.length + 4, engine.reusedTokens());
            assertEquals(history.length + 1 + 3, engine.prefilledTokens());
            // and the result is what a fresh prefill of the whole context gives
            assertArrayEquals(fresh.generate(next, SamplingParams.greedy(5), null).ids(), second.ids());
            // a different context under the same session shares only its common prefix
            int[] other = {11, 12, 99, 98};
            GenerationResult third = engine.submit(new GenerationRequest("e3", "source-a", other, SamplingParams.greedy(4))).get(60, TimeUnit.SECONDS);
            assertEquals(history.length + 4 + 2, engine.reusedTokens());
            assertArrayEquals(fresh.generate(other, SamplingParams.greedy(4), null).ids(), third.ids());
        }
    }

    @Test
    void evictedSessionsAreRebuiltByPrefillWithTheSameResults() throws Exception {
        Generator fresh = new Generator(model.newForward(pool, 16));
        // a budget of 0 keeps no idle cache: every request rebuilds its context
        try (ContinuousBatchingEngine engine = new ContinuousBatchingEngine(model.newForward(pool, 16), 2, 8, 0)) {
            int[] history = {31, 32, 33, 34};
            GenerationResult first = engine.submit(new GenerationRequest("e1", "k", history, SamplingParams.greedy(3))).get(60, TimeUnit.SECONDS);
            int[] next = concat(history, first.ids(), new int[] {40});
            GenerationResult second = engine.submit(new GenerationRequest("e2", "k", next, SamplingParams.greedy(3))).get(60, TimeUnit.SECONDS);
            assertEquals(0, engine.reusedTokens());
            assertEquals(2, engine.evictions());
            assertArrayEquals(fresh.generate(next, SamplingParams.greedy(3), null).ids(), second.ids());
        }
    }

    /** Ids in a direct (off-heap) buffer, read one by one: what the operator's Arrow view does. */
    private static final class DirectTokens implements PromptTokens {
        final java.nio.IntBuffer ids;
        int reads;

        DirectTokens(int[] values) {
            ids = java.nio.ByteBuffer.allocateDirect(4 * values.length).order(java.nio.ByteOrder.nativeOrder()).asIntBuffer();
            ids.put(values).flip();
        }

        @Override
        public int length() {
            return ids.limit();
        }

        @Override
        public int get(int i) {
            reads++;
            return ids.get(i);
        }
    }

    @Test
    void promptReadInPlaceFromOffHeapMemoryGivesTheIdsOfAnArrayPromptAndReusesTheSession() throws Exception {
        Generator fresh = new Generator(model.newForward(pool, 16));
        // a chunk of 16 tokens: a 40-token prompt is prefilled in three chunks from the view
        // (prefix sharing off: with it, admission also copies the ids of the prompt's full blocks once
        // to look them up in the prefix index)
        try (ContinuousBatchingEngine engine = new ContinuousBatchingEngine(model.newForward(pool, 16), 2, 8, 256L << 20, false)) {
            int[] history = new int[40];
            for (int i = 0; i < history.length; i++) {
                history[i] = (7 * i + 3) % 500;
            }
            DirectTokens view = new DirectTokens(history);
            GenerationResult first = engine.submit(new GenerationRequest("d1", "s", view, SamplingParams.greedy(4))).get(60, TimeUnit.SECONDS);
            assertArrayEquals(fresh.generate(history, SamplingParams.greedy(4), null).ids(), first.ids());
            assertEquals(history.length, view.reads);
            int[] next = concat(history, first.ids(), new int[] {5, 6});
            DirectTokens nextView = new DirectTokens(next);
            GenerationResult second = engine.submit(new GenerationRequest("d2", "s", nextView, SamplingParams.greedy(4))).get(60, TimeUnit.SECONDS);
            assertArrayEquals(fresh.generate(next, SamplingParams.greedy(4), null).ids(), second.ids());
            EngineStats stats = engine.stats();
            assertEquals(history.length + 3, stats.reusedTokens());
            assertEquals(history.length + 1 + 2, stats.prefilledTokens());
            assertEquals(0, stats.evictions());
            assertEquals(first.ids().length + second.ids().length, stats.generatedTokens());
            // the idle session holds its cache; nothing runs
            assertTrue(stats.idleKvBytes() > 0, stats.toString());
        }
    }

    @Test
    void requestsOfOneSessionRunOneAtATimeInOrderWhileOthersOverlap() throws Exception {
        try (ContinuousBatchingEngine engine = new ContinuousBatchingEngine(model.newForward(pool, 16), 4, 8)) {
            // a1 long enough (its first 30 tokens hold no stop token) that a loaded machine cannot
            // finish it between two submits: b1 must overlap it
            CompletableFuture<GenerationResult> a1 = engine.submit(new GenerationRequest("a1", "a", prompt(1), SamplingParams.greedy(300)));
            CompletableFuture<GenerationResult> a2 = engine.submit(new GenerationRequest("a2", "a", prompt(2), SamplingParams.greedy(2)));
            CompletableFuture<GenerationResult> b1 = engine.submit(new GenerationRequest("b1", "b", prompt(3), SamplingParams.greedy(2)));
            b1.get(60, TimeUnit.SECONDS);
            // b1 (another session) finished while a1 runs; a2 waits for a1 although it is short
            assertFalse(a1.isDone());
            assertFalse(a2.isDone());
            a2.get(60, TimeUnit.SECONDS);
            assertTrue(a1.isDone());
        }
    }

    @Test
    void cancelledRunningRequestStopsConsumingStepsAndFreesItsSlotAndKv() throws Exception {
        // one sequence per step, one slot: the long request holds both until cancelled
        try (ContinuousBatchingEngine engine = new ContinuousBatchingEngine(model.newForward(pool, 16), 1, 1)) {
            GenerationRequest longOne = new GenerationRequest("long", prompt(6), SamplingParams.greedy(100_000));
            CompletableFuture<GenerationResult> future = engine.submit(longOne);
            while (engine.steps() < 5) {
                Thread.onSpinWait();
            }
            assertFalse(engine.hasCapacity());
            assertTrue(engine.stats().kvBytesInUse() > 0);
            assertTrue(engine.cancel(longOne));
            CancellationException e = assertThrows(CancellationException.class, () -> future.get(10, TimeUnit.SECONDS));
            assertTrue(e.getMessage().contains("request long"), e.getMessage());
            // its slot is free at once, and no step runs for it any more
            assertTrue(engine.hasCapacity());
            assertEquals(0, engine.inFlight());
            long steps = engine.steps();
            Thread.sleep(200);
            assertEquals(steps, engine.steps(), "steps ran after the cancellation");
            assertTrue(steps < 100_000);
            // its cache is gone (no session keeps it): the next step's count shows only the new one
            GenerationResult next = engine.submit(new GenerationRequest("next", prompt(7), SamplingParams.greedy(3))).get(60, TimeUnit.SECONDS);
            assertEquals(3, next.ids().length);
            assertEquals(0, engine.stats().idleKvBytes());
            assertFalse(engine.cancel(longOne), "already cancelled");
        }
    }

    @Test
    void cancelledQueuedRequestLeavesTheQueueAndNeverRuns() throws Exception {
        try (ContinuousBatchingEngine engine = new ContinuousBatchingEngine(model.newForward(pool, 16), 1, 2)) {
            GenerationRequest longOne = new GenerationRequest("long", prompt(6), SamplingParams.greedy(100_000));
            CompletableFuture<GenerationResult> running = engine.submit(longOne);
            GenerationRequest queued = new GenerationRequest("queued", "s", prompt(2), SamplingParams.greedy(3));
            CompletableFuture<GenerationResult> waiting = engine.submit(queued);
            while (engine.steps() < 3) {
                Thread.onSpinWait(); // the long one is running, the other queued behind it
            }
            assertFalse(engine.hasCapacity());
            assertTrue(engine.cancel(queued));
            // completed before cancel returned
            assertTrue(waiting.isCompletedExceptionally());
            assertThrows(CancellationException.class, waiting::join);
            assertTrue(engine.hasCapacity());
            assertEquals(1, engine.inFlight());
            assertFalse(running.isDone());
            assertTrue(engine.cancel(longOne));
            assertThrows(CancellationException.class, () -> running.get(10, TimeUnit.SECONDS));
            assertEquals(prompt(6).length, engine.prefilledTokens(), "only the long request was prefilled");
        }
    }

    @Test
    void cancelledSessionRequestLeavesItsCacheToTheSessionAndTheNextRequestIsExact() throws Exception {
        Generator fresh = new Generator(model.newForward(pool, 16));
        try (ContinuousBatchingEngine engine = new ContinuousBatchingEngine(model.newForward(pool, 16), 1, 2)) {
            int[] history = {11, 12, 13, 14, 15, 16};
            GenerationRequest longOne = new GenerationRequest("long", "k", history, SamplingParams.greedy(100_000));
            CompletableFuture<GenerationResult> future = engine.submit(longOne);
            while (engine.steps() < 5) {
                Thread.onSpinWait();
            }
            engine.cancel(longOne);
            assertThrows(CancellationException.class, () -> future.get(10, TimeUnit.SECONDS));
            int[] next = concat(history, new int[] {21, 22});
            GenerationResult r = engine.submit(new GenerationRequest("next", "k", next, SamplingParams.greedy(4))).get(60, TimeUnit.SECONDS);
            assertEquals(history.length, engine.reusedTokens(), "the history's cache was reused");
            assertArrayEquals(fresh.generate(next, SamplingParams.greedy(4), null).ids(), r.ids());
        }
    }

    /**
     * KV bytes of a fresh request's cache: prompt plus new tokens rounded up to whole blocks of 16
     * positions, K and V, every layer, floats.
     */
    private static long kvBytes(int promptLength, int maxNew) {
        var c = model.config();
        int blocks = (promptLength + maxNew + 15) / 16;
        return 2L * c.numHiddenLayers() * blocks * 16 * c.kvDim() * Float.BYTES;
    }

    @Test
    void kvBudgetBoundsRunningRequestsWhichWaitInTheQueueInsteadOfBeingDropped() throws Exception {
        int maxNew = 40;
        long one = kvBytes(prompt(0).length, maxNew); // prompt(0), prompt(4), prompt(8): same length
        // room for two running caches, not three; four sequences per step otherwise
        try (ContinuousBatchingEngine engine = new ContinuousBatchingEngine(model.newForward(pool, 16), 4, 4, 2 * one + one / 2)) {
            List<CompletableFuture<GenerationResult>> futures = new ArrayList<>();
            for (int i : new int[] {0, 4, 8}) {
                futures.add(engine.submit(new GenerationRequest("r" + i, prompt(i), SamplingParams.greedy(maxNew))));
            }
            long peak = 0;
            while (!futures.get(2).isDone()) {
                peak = Math.max(peak, engine.stats().kvBytesInUse());
                Thread.onSpinWait();
            }
            Generator fresh = new Generator(model.newForward(pool, 16));
            int k = 0;
            for (int i : new int[] {0, 4, 8}) {
                assertArrayEquals(fresh.generate(prompt(i), SamplingParams.greedy(maxNew), null).ids(), futures.get(k++).get().ids());
            }
            assertTrue(peak <= 2 * one, "KV bytes in use " + peak + " exceeded two caches of " + one);
            // the third waited for a running one to end
            GenerationResult third = futures.get(2).get();
            GenerationResult first = futures.get(0).get();
            assertTrue(third.queuedNanos() >= first.prefillNanos() + first.decodeNanos() / 2,
                    "the third request did not wait: queued " + third.queuedNanos());
        }
    }

    @Test
    void kvBudgetEvictsIdleSessionsToAdmitARunningRequest() throws Exception {
        int maxNew = 4;
        long one = kvBytes(prompt(0).length, maxNew);
        try (ContinuousBatchingEngine engine = new ContinuousBatchingEngine(model.newForward(pool, 16), 2, 4, one + one / 2)) {
            engine.submit(new GenerationRequest("a", "a", prompt(0), SamplingParams.greedy(maxNew))).get(60, TimeUnit.SECONDS);
            assertEquals(one, engine.stats().idleKvBytes());
            // b needs the room a's idle cache takes: a is evicted first, b runs
            engine.submit(new GenerationRequest("b", "b", prompt(4), SamplingParams.greedy(maxNew))).get(60, TimeUnit.SECONDS);
            assertEquals(1, engine.evictions());
            assertEquals(one, engine.stats().idleKvBytes());
        }
    }

    @Test
    void requestLargerThanTheBudgetRunsAloneRatherThanNever() throws Exception {
        try (ContinuousBatchingEngine engine = new ContinuousBatchingEngine(model.newForward(pool, 16), 2, 4, 0)) {
            CompletableFuture<GenerationResult> a = engine.submit(new GenerationRequest("a", prompt(1), SamplingParams.greedy(30)));
            CompletableFuture<GenerationResult> b = engine.submit(new GenerationRequest("b", prompt(2), SamplingParams.greedy(2)));
            b.get(60, TimeUnit.SECONDS);
            // b, although shorter, waited for a: they never ran together
            assertTrue(a.isDone());
            assertEquals(0, engine.stats().idleKvBytes());
        }
    }
}
