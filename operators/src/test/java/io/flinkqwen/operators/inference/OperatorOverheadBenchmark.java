/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.inference;

import io.flinkqwen.engine.LoadedModel;
import io.flinkqwen.engine.config.Qwen2Config;
import io.flinkqwen.engine.generate.SamplingParams;
import io.flinkqwen.engine.serve.ContinuousBatchingEngine;
import io.flinkqwen.engine.serve.GenerationRequest;
import io.flinkqwen.engine.serve.GenerationResult;
import io.flinkqwen.engine.testmodel.TestModelGenerator;
import io.flinkqwen.engine.tokenizer.ChatMl;
import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.KernelPool;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.arrow.memory.RootAllocator;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;

/**
 * The operator's overhead: one workload (keys x events, greedy, per-key history) run twice on
 * the same generated model, the same engine settings and the same threads:
 *
 * <ol>
 *   <li><b>engine</b>: straight into a {@link ContinuousBatchingEngine}, with the operator's
 *       prompts (system turn, ChatML user turns, answers appended, the same context window),
 *       each key's next event submitted from the previous one's callback;
 *   <li><b>operator</b>: through {@link LongContextInferenceOperator} in Flink's keyed operator
 *       test harness (mailbox, keyed heap state, Arrow micro-batches, side output, metrics),
 *       events pushed as fast as the operator takes them.
 * </ol>
 *
 * It prints both throughputs (generated tokens and events per second, best of the rounds) and
 * the operator's loss, and checks that both paths generated the same tokens. Not a test: run it
 * by hand (the README has the command). The harness leaves out Flink's network stack and
 * serialization between tasks; it measures what the operator itself adds.
 *
 * <p>Arguments (all optional): {@code --keys 8 --events 8 --max-new 16 --sequences 4
 * --capacity 8 --threads 1 --rounds 3 --batch-rows 4 --batch-delay-ms 2 --shape tiny|small}.
 * {@code small} is a 12-layer, hidden-512 random model, where a decode step costs what it costs
 * in a real small model more than the tiny test shape does.
 */
// Flink's harness declares close() throws Exception (InterruptedException)
@SuppressWarnings("try")
public final class OperatorOverheadBenchmark {

    private OperatorOverheadBenchmark() {}

    public static void main(String[] args) throws Exception {
        int keys = intArg(args, "--keys", 8);
        int events = intArg(args, "--events", 8);
        int maxNew = intArg(args, "--max-new", 16);
        int sequences = intArg(args, "--sequences", 4);
        int capacity = intArg(args, "--capacity", 8);
        int threads = intArg(args, "--threads", 1);
        int rounds = intArg(args, "--rounds", 3);
        int batchRows = intArg(args, "--batch-rows", sequences);
        int batchDelay = intArg(args, "--batch-delay-ms", 2);
        String shape = stringArg(args, "--shape", "tiny");

        Path dir = Files.createTempDirectory("overhead-bench");
        Path gguf = dir.resolve(shape + ".gguf");
        Qwen2Config config = shape.equals("small")
                ? new Qwen2Config(512, 512, 1536, 12, 8, 2, 2048, 1_000_000.0, 1e-6, false, -1, -1)
                : TestModelGenerator.tinyConfig();
        new TestModelGenerator(config, 11).write(TestModelGenerator.Format.GGUF, DType.F32, gguf, 0);

        InferenceSettings settings = InferenceSettings.of(gguf)
                .withContext(1024, 4)
                .withMaxNewTokens(maxNew)
                .withEngine(sequences, capacity, threads)
                .withBatch(batchRows, 1 << 20, batchDelay);
        List<InferenceEvent> workload = new ArrayList<>();
        for (int e = 0; e < events; e++) {
            for (int k = 0; k < keys; k++) {
                workload.add(new InferenceEvent("key-" + k, "key-" + k + "/" + e,
                        "event " + e + " of source " + k + ": GET /api/items/" + (31 * e + k) + " took " + (e + k) + " ms", e));
            }
        }
        System.out.printf(Locale.ROOT, "workload: %d keys x %d events, %d new tokens max, model %s (%d layers, hidden %d), "
                        + "engine %d sequences/step, capacity %d, %d thread(s), Arrow batches of %d rows / %d ms, %s%n",
                keys, events, maxNew, shape, config.numHiddenLayers(), config.hiddenSize(), sequences, capacity, threads,
                batchRows, batchDelay, Runtime.version());

        double bestEngine = 0;
        double bestOperator = 0;
        double engineEvents = 0;
        double operatorEvents = 0;
        for (int round = 1; round <= rounds; round++) {
            Run direct = engineRun(gguf, settings, workload, keys);
            Run op = operatorRun(settings, workload);
            if (direct.tokens != op.tokens) {
                throw new IllegalStateException("the paths differ: engine generated " + direct.tokens
                        + " tokens, operator " + op.tokens);
            }
            System.out.printf(Locale.ROOT, "round %d: engine %.1f tok/s (%.1f events/s), operator %.1f tok/s "
                            + "(%.1f events/s), %d tokens each%n",
                    round, direct.tokensPerSecond(), direct.eventsPerSecond(), op.tokensPerSecond(), op.eventsPerSecond(),
                    op.tokens);
            if (direct.tokensPerSecond() > bestEngine) {
                bestEngine = direct.tokensPerSecond();
                engineEvents = direct.eventsPerSecond();
            }
            if (op.tokensPerSecond() > bestOperator) {
                bestOperator = op.tokensPerSecond();
                operatorEvents = op.eventsPerSecond();
            }
        }
        System.out.printf(Locale.ROOT, "best of %d: engine %.1f tok/s (%.1f events/s), operator %.1f tok/s "
                        + "(%.1f events/s), operator loss %.1f%%%n",
                rounds, bestEngine, engineEvents, bestOperator, operatorEvents, 100.0 * (1 - bestOperator / bestEngine));
    }

    /** Generated tokens and events of one run, and its wall time. */
    record Run(long tokens, int events, long nanos) {
        double tokensPerSecond() {
            return tokens / (nanos / 1e9);
        }

        double eventsPerSecond() {
            return events / (nanos / 1e9);
        }
    }

    /** Through the operator in the keyed harness; model loading (open) is not timed. */
    static Run operatorRun(InferenceSettings settings, List<InferenceEvent> workload) throws Exception {
        try (RootAllocator arrow = new RootAllocator();
                var h = new KeyedOneInputStreamOperatorTestHarness<>(
                        new LongContextInferenceOperatorFactory(settings, EngineFactory.continuousBatching(), () -> arrow),
                        InferenceEvent::key, Types.STRING)) {
            h.open();
            long t0 = System.nanoTime();
            for (InferenceEvent e : workload) {
                h.processElement(e, e.eventTimeMillis());
            }
            h.endInput();
            long nanos = System.nanoTime() - t0;
            long tokens = 0;
            int results = 0;
            for (Object o : h.getOutput()) {
                if (o instanceof StreamRecord<?> r) {
                    tokens += ((InferenceResult) r.getValue()).generatedTokens();
                    results++;
                }
            }
            if (results != workload.size()) {
                throw new IllegalStateException("the operator answered " + results + " of " + workload.size());
            }
            return new Run(tokens, results, nanos);
        }
    }

    /** Straight into the engine, with the operator's prompts; model loading is not timed. */
    static Run engineRun(Path gguf, InferenceSettings settings, List<InferenceEvent> workload, int keys) throws Exception {
        try (LoadedModel model = LoadedModel.open(gguf);
                KernelPool pool = new KernelPool(settings.threads())) {
            ChatMl chat = new ChatMl(model.tokenizer());
            int[] systemTurn = chat.encode(List.of(ChatMl.Message.system(settings.systemPrompt())), false);
            int[] answerEnd = ContextWindow.concat(new int[] {model.tokenizer().imEndId().orElseThrow()}, 0, 1,
                    model.tokenizer().encode("\n"));
            ContextWindow window = new ContextWindow(systemTurn.length, settings.sinkTokens(),
                    settings.maxContextTokens() - settings.maxNewTokens());
            SamplingParams greedy = SamplingParams.greedy(settings.maxNewTokens(), model.stopTokens());
            // each key's events in order; tokenized up front as the operator tokenizes on arrival
            List<List<int[]>> turns = new ArrayList<>();
            for (int k = 0; k < keys; k++) {
                turns.add(new ArrayList<>());
            }
            for (InferenceEvent e : workload) {
                int k = Integer.parseInt(e.key().substring("key-".length()));
                int[] both = chat.encode(List.of(ChatMl.Message.system(settings.systemPrompt()), ChatMl.Message.user(e.text())), true);
                turns.get(k).add(Arrays.copyOfRange(both, systemTurn.length, both.length));
            }
            // one driver thread plays the mailbox: it submits, and the answers come back to it
            ExecutorService driver = Executors.newSingleThreadExecutor();
            try (ContinuousBatchingEngine engine = new ContinuousBatchingEngine(model.newForward(pool, 64),
                    settings.maxSequences(), settings.capacity(), settings.kvBudgetBytes())) {
                AtomicLong tokens = new AtomicLong();
                CountDownLatch done = new CountDownLatch(workload.size());
                long t0 = System.nanoTime();
                for (int k = 0; k < keys; k++) {
                    KeyChain chain = new KeyChain(engine, driver, "key-" + k, turns.get(k), systemTurn, answerEnd, window,
                            greedy, tokens, done);
                    driver.execute(chain::next);
                }
                if (!done.await(30, TimeUnit.MINUTES)) {
                    throw new IllegalStateException("the engine run did not finish");
                }
                return new Run(tokens.get(), workload.size(), System.nanoTime() - t0);
            } finally {
                driver.shutdownNow();
            }
        }
    }

    /** One key's events, each submitted when the previous one's answer completes its history. */
    private static final class KeyChain {
        final ContinuousBatchingEngine engine;
        final ExecutorService driver;
        final String key;
        final List<int[]> turns;
        final int[] answerEnd;
        final ContextWindow window;
        final SamplingParams greedy;
        final AtomicLong tokens;
        final CountDownLatch done;
        int[] history;
        int next;

        KeyChain(ContinuousBatchingEngine engine, ExecutorService driver, String key, List<int[]> turns, int[] systemTurn, int[] answerEnd,
                ContextWindow window, SamplingParams greedy, AtomicLong tokens, CountDownLatch done) {
            this.engine = engine;
            this.driver = driver;
            this.key = key;
            this.turns = turns;
            this.history = systemTurn;
            this.answerEnd = answerEnd;
            this.window = window;
            this.greedy = greedy;
            this.tokens = tokens;
            this.done = done;
        }

        /** On the driver thread: submits the key's next event; a full engine is waited for, as the operator yields. */
        void next() {
            if (next == turns.size()) {
                return;
            }
            int[] prompt = window.prompt(history, turns.get(next++));
            while (!engine.hasCapacity()) {
                Thread.onSpinWait();
            }
            engine.submit(new GenerationRequest(key + "/" + next, key, prompt, greedy)).whenCompleteAsync((r, error) -> {
                if (error != null) {
                    error.printStackTrace();
                    System.exit(1);
                }
                answered(prompt, r);
            }, driver);
        }

        private void answered(int[] prompt, GenerationResult r) {
            int[] ids = r.ids();
            history = ContextWindow.concat(ContextWindow.concat(prompt, 0, -1, ids), 0, -1, answerEnd);
            tokens.addAndGet(ids.length);
            done.countDown();
            next();
        }
    }

    private static int intArg(String[] args, String name, int fallback) {
        String v = stringArg(args, name, null);
        return v == null ? fallback : Integer.parseInt(v);
    }

    private static String stringArg(String[] args, String name, String fallback) {
        for (int i = 0; i + 1 < args.length; i++) {
            if (args[i].equals(name)) {
                return args[i + 1];
            }
        }
        return fallback;
    }
}
