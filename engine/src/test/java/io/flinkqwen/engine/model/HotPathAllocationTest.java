/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.engine.LoadedModel;
import io.flinkqwen.engine.generate.Sampler;
import io.flinkqwen.engine.generate.SamplingParams;
import io.flinkqwen.engine.serve.ContinuousBatchingEngine;
import io.flinkqwen.engine.serve.GenerationRequest;
import io.flinkqwen.engine.serve.GenerationResult;
import io.flinkqwen.engine.testmodel.TestModelGenerator;
import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.KernelPool;
import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The per-token hot path allocates nothing once compiled (issue 3): decode steps of {@link
 * Qwen2Model#forward} (one token) and {@link Qwen2Model#forwardBatch}, measured with HotSpot's
 * per-thread allocation counters on the calling thread and on the kernel pool's workers.
 *
 * <p>Until C2 has compiled the kernels, the Vector API boxes its vectors (interpreter and C1),
 * so an early window allocates whatever the code is; when that ends depends on the compiler
 * threads, which share two cores with everything else here. So the test decodes windows of
 * {@value #WINDOW_STEPS} steps until one allocates nothing on any thread, and fails if none does
 * within {@value #DEADLINE_SECONDS} s. A real per-step allocation (a capturing lambda per layer,
 * a copied logits row) is in every window and fails it.
 *
 * <p>KV caches and the attention scratch are sized before the windows: their growth (doubling,
 * so amortised) is not the per-token path.
 */
class HotPathAllocationTest {

    static final int WINDOW_STEPS = 50;
    static final int DEADLINE_SECONDS = 60;
    static final int BATCH = 4;
    static final int[] PROMPT = {5, 9, 200, 31, 77, 12, 300, 4};
    /** Positions decoded per sequence before its cache is truncated back to the prompt. */
    static final int MAX_DECODED = 300;

    @TempDir static Path dir;

    @ParameterizedTest
    @EnumSource(names = {"Q8_0", "F16", "F32"})
    void decodeStepsAllocateNothingOnceCompiled(DType dtype) throws Exception {
        decodeStepsAllocateNothing(dtype, KvFormat.F32);
    }

    /** The same with a KV cache in F16 or Q8 (Q8_0 weights): attention reads those formats directly. */
    @ParameterizedTest
    @EnumSource(value = KvFormat.class, names = {"F16", "Q8"})
    void decodeStepsWithACompactKvCacheAllocateNothingOnceCompiled(KvFormat kv) throws Exception {
        decodeStepsAllocateNothing(DType.Q8_0, kv);
    }

    private void decodeStepsAllocateNothing(DType dtype, KvFormat kv) throws Exception {
        Path gguf = dir.resolve("tiny-" + dtype + "-" + kv + ".gguf");
        new TestModelGenerator(TestModelGenerator.tinyConfig(), 5).write(TestModelGenerator.Format.GGUF, dtype, gguf, 0);
        Set<Thread> before = Thread.getAllStackTraces().keySet();
        try (LoadedModel model = LoadedModel.open(gguf);
                KernelPool pool = new KernelPool(2)) {
            Allocations alloc = Allocations.ofCurrentThreadAnd(newThreads(before, "flinkqwen-kernel-"));
            Qwen2Model f = model.newForward(pool, 8, kv);
            int vocab = f.config().vocabSize();
            int positions = PROMPT.length + MAX_DECODED;

            // one sequence, a one-token forward per step
            KvCache cache = f.newCache(positions);
            int[] one = {Sampler.argmax(f.forward(cache, PROMPT, 0, PROMPT.length), vocab)};
            long[] single =
                    alloc.untilQuiet(() -> {
                        if (cache.length() + WINDOW_STEPS > positions) {
                            cache.truncate(PROMPT.length);
                        }
                        for (int s = 0; s < WINDOW_STEPS; s++) {
                            one[0] = Sampler.argmax(f.forward(cache, one, 0, 1), vocab);
                        }
                    });
            assertQuiet(dtype + " weights, " + kv + " KV, forward, 1 token", single);

            // BATCH sequences, one forwardBatch per step
            KvCache[] caches = new KvCache[BATCH];
            int[] next = new int[BATCH];
            for (int b = 0; b < BATCH; b++) {
                caches[b] = f.newCache(positions);
                int[] p = PROMPT.clone();
                p[0] = 100 + b;
                next[b] = Sampler.argmax(f.forward(caches[b], p, 0, p.length), vocab);
            }
            long[] batched =
                    alloc.untilQuiet(() -> {
                        if (caches[0].length() + WINDOW_STEPS > positions) {
                            for (KvCache c : caches) {
                                c.truncate(PROMPT.length);
                            }
                        }
                        for (int s = 0; s < WINDOW_STEPS; s++) {
                            float[] logits = f.forwardBatch(caches, next, BATCH);
                            for (int b = 0; b < BATCH; b++) {
                                next[b] = Sampler.argmax(logits, b * vocab, vocab);
                            }
                        }
                    });
            assertQuiet(dtype + " weights, " + kv + " KV, forwardBatch, " + BATCH + " sequences", batched);
        }
    }

    /**
     * The continuous-batching engine's decode step, on its scheduler thread: {@value #BATCH}
     * sequences (greedy and seeded sampling) decode together; windows are {@value #WINDOW_STEPS}
     * engine steps in which no request starts or ends.
     */
    @Test
    void engineDecodeStepsAllocateNothingOnceCompiled() throws Exception {
        Path gguf = dir.resolve("tiny-engine.gguf");
        new TestModelGenerator(TestModelGenerator.tinyConfig(), 5).write(TestModelGenerator.Format.GGUF, DType.Q8_0, gguf, 0);
        Set<Thread> before = Thread.getAllStackTraces().keySet();
        try (LoadedModel model = LoadedModel.open(gguf);
                KernelPool pool = new KernelPool(2)) {
            Qwen2Model f = model.newForward(pool, 8);
            int maxNew = f.config().maxPositionEmbeddings() - PROMPT.length;
            try (ContinuousBatchingEngine engine = new ContinuousBatchingEngine(f, BATCH, BATCH)) {
                long[] workers = newThreads(before, "flinkqwen-kernel-");
                long[] scheduler = newThreads(before, "flinkqwen-engine-scheduler");
                assertEquals(1, scheduler.length);
                Allocations alloc = new Allocations(scheduler, workers);
                List<CompletableFuture<GenerationResult>> running = new ArrayList<>();
                long[] window =
                        alloc.untilQuiet(() -> {
                            running.removeIf(CompletableFuture::isDone);
                            if (running.isEmpty()) {
                                for (int b = 0; b < BATCH; b++) {
                                    SamplingParams p = b % 2 == 0
                                            ? SamplingParams.greedy(maxNew)
                                            : new SamplingParams(0.9f, 20, 0.95f, 7 + b, maxNew, null);
                                    running.add(engine.submit(new GenerationRequest("r" + b, PROMPT, p)));
                                }
                            }
                            // a window: WINDOW_STEPS steps after the step that admitted them
                            long from = engine.steps() + 1;
                            awaitSteps(engine, from, running);
                            awaitSteps(engine, from + WINDOW_STEPS, running);
                        });
                // (a window in which a request started or ended allocated: its result, its cache)
                assertQuiet("engine decode step, " + BATCH + " sequences", window);
            }
        }
    }

    /** Waits until the engine has started step {@code steps}, or every request has ended. */
    private static void awaitSteps(
            ContinuousBatchingEngine engine, long steps, List<CompletableFuture<GenerationResult>> requests) {
        while (engine.steps() < steps && !requests.stream().allMatch(CompletableFuture::isDone)) {
            try {
                Thread.sleep(1);
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
        }
    }

    static void assertQuiet(String what, long[] window) {
        assertEquals(
                0, window[0] + window[1],
                what + ": the last window of " + WINDOW_STEPS + " steps allocated " + window[0]
                        + " bytes on the calling thread and " + window[1] + " on the kernel workers (after "
                        + window[2] + " windows)");
    }

    /** Threads that exist now, were not in {@code before} and whose name starts with {@code prefix}. */
    static long[] newThreads(Set<Thread> before, String prefix) {
        Set<Long> ids = new HashSet<>();
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            if (!before.contains(t) && t.getName().startsWith(prefix)) {
                ids.add(t.getId());
            }
        }
        assertTrue(!ids.isEmpty(), "no new thread named " + prefix + "*");
        return ids.stream().mapToLong(Long::longValue).toArray();
    }

    /**
     * Bytes allocated by two groups of threads (the thread that drives the model, the kernel
     * workers) over a piece of work, from HotSpot's per-thread counters ({@code
     * com.sun.management.ThreadMXBean}).
     */
    static final class Allocations {
        private final com.sun.management.ThreadMXBean mx =
                (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        private final long[] callers;
        private final long[] workers;

        Allocations(long[] callers, long[] workers) {
            assertTrue(mx.isThreadAllocatedMemorySupported() && mx.isThreadAllocatedMemoryEnabled());
            this.callers = callers;
            this.workers = workers;
        }

        /** The calling thread and the given workers. */
        static Allocations ofCurrentThreadAnd(long[] workers) {
            return new Allocations(new long[] {Thread.currentThread().getId()}, workers);
        }

        /**
         * Runs {@code window} until one run allocates nothing on any watched thread, or the
         * deadline passes; returns {caller bytes, worker bytes, windows run} of the last run.
         */
        long[] untilQuiet(Runnable window) {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(DEADLINE_SECONDS);
            long[] last;
            long windows = 0;
            do {
                windows++;
                // the counters are read outside the window: reading them may allocate
                long workersStart = sum(mx.getThreadAllocatedBytes(workers));
                long callersStart = callers.length == 1 ? mx.getThreadAllocatedBytes(callers[0]) : 0;
                window.run();
                long callersEnd = callers.length == 1 ? mx.getThreadAllocatedBytes(callers[0]) : 0;
                long workersEnd = sum(mx.getThreadAllocatedBytes(workers));
                last = new long[] {callersEnd - callersStart, workersEnd - workersStart, windows};
            } while (last[0] + last[1] != 0 && System.nanoTime() < deadline);
            return last;
        }

        private static long sum(long[] v) {
            long s = 0;
            for (long x : v) {
                s += x;
            }
            return s;
        }
    }
}
