/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.inference;

import io.flinkqwen.engine.LoadedModel;
import io.flinkqwen.engine.generate.SamplingParams;
import io.flinkqwen.engine.serve.GenerationRequest;
import io.flinkqwen.engine.serve.GenerationResult;
import io.flinkqwen.engine.serve.InferenceEngine;
import io.flinkqwen.engine.tokenizer.ChatMl;
import io.flinkqwen.engine.tokenizer.Qwen2Tokenizer;
import io.flinkqwen.kernels.KernelPool;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.RejectedExecutionException;
import java.util.stream.Collectors;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.annotation.VisibleForTesting;
import org.apache.flink.api.common.operators.MailboxExecutor;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeutils.base.array.IntPrimitiveArraySerializer;
import org.apache.flink.metrics.Counter;
import org.apache.flink.runtime.state.VoidNamespace;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.BoundedOneInput;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.operators.StreamOperatorParameters;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.util.OutputTag;

/**
 * The stateful long-context inference operator (keyed by {@link InferenceEvent#key()}): per key
 * it keeps the conversation's token history, appends each event as a ChatML user turn, lets the
 * engine answer greedily, appends the answer to the history and emits an {@link
 * InferenceResult}. Create it with {@link LongContextInferenceOperatorFactory}.
 *
 * <p><b>Threads.</b> Everything here runs on the task's mailbox thread: the engine's futures
 * complete on the engine's scheduler thread, and their callbacks only enqueue a mail; the mail
 * sets the key, touches state and emits. No field is shared with another thread.
 *
 * <p><b>Order.</b> A key's events run one at a time, in arrival order: the next is handed to the
 * engine when the previous one's result arrives, since its prompt is the history that result
 * completes. Different keys run concurrently, up to the engine's capacity. Results of one key
 * come out in order; results of different keys interleave.
 *
 * <p><b>Backpressure, never a drop.</b> Before a hand-over, while the engine has no capacity the
 * operator yields to the mailbox (which runs result mails and so frees capacity); the task
 * reads no input meanwhile.
 *
 * <p><b>State.</b> Keyed {@code history} (int[]): the system turn plus every answered turn.
 * Keyed {@code pending} (list): the key's events not answered yet, the one in the engine first.
 * Both are keyed, not operator list state as in {@code AsyncWaitOperator}, so that rescaling
 * moves a key's waiting events with its history. The history changes only when a result
 * arrives, so a checkpoint holds for every key its history and the events still to answer, and
 * {@link #open()} hands the first of each key to the engine again after a restore. Greedy
 * generation is deterministic, so a restored run emits what an uninterrupted one would. The KV
 * caches are not state: the engine rebuilds them by prefill.
 *
 * <p><b>Bad records</b> go to {@link #REJECTED} with a reason and the key moves on: empty text,
 * a turn that cannot fit the context, a request the engine failed.
 *
 * <p><b>Watermarks</b> are held until every event received before them is answered, so results
 * (stamped with their event's time) are never late. This drains the operator at each watermark.
 */
@PublicEvolving
public final class LongContextInferenceOperator extends AbstractStreamOperator<InferenceResult>
        implements OneInputStreamOperator<InferenceEvent, InferenceResult>, BoundedOneInput {

    private static final long serialVersionUID = 1L;

    /** Events not answered, with the reason. */
    public static final OutputTag<RejectedEvent> REJECTED =
            new OutputTag<>("rejected-inference-events", TypeInformation.of(RejectedEvent.class));

    private final InferenceSettings settings;
    private final EngineFactory engineFactory;
    private final transient MailboxExecutor mailbox;

    private transient ValueState<int[]> history;
    private transient ListState<InferenceEvent> pending;

    private transient LoadedModel model;
    private transient KernelPool pool;
    private transient InferenceEngine engine;
    private transient Qwen2Tokenizer tokenizer;
    private transient ChatMl chatMl;
    private transient int[] systemTurn;
    private transient int[] answerEnd;
    private transient SamplingParams sampling;
    private transient ContextWindow window;
    private transient String modelName;
    private transient boolean closing;

    /** The request of each key now in the engine; a key is absent when it has none. */
    private transient Map<String, InFlight> inFlight;

    private transient Counter requests;
    private transient Counter requestsFailed;
    private transient Counter requestsRejected;

    private record InFlight(InferenceEvent event, int[] prompt, long startNanos) {}

    LongContextInferenceOperator(
            StreamOperatorParameters<InferenceResult> parameters,
            InferenceSettings settings,
            EngineFactory engineFactory) {
        super(parameters);
        this.settings = settings;
        this.engineFactory = engineFactory;
        this.mailbox = parameters.getMailboxExecutor();
    }

    @Override
    public void initializeState(org.apache.flink.runtime.state.StateInitializationContext context) throws Exception {
        super.initializeState(context);
        // the runtime context gets the keyed store only after this method: use the context's
        history = context.getKeyedStateStore()
                .getState(new ValueStateDescriptor<>("history", IntPrimitiveArraySerializer.INSTANCE));
        pending = context.getKeyedStateStore()
                .getListState(new ListStateDescriptor<>("pending", TypeInformation.of(InferenceEvent.class)));
    }

    @Override
    public void open() throws Exception {
        super.open();
        inFlight = new HashMap<>();
        requests = getMetricGroup().counter("requests");
        requestsFailed = getMetricGroup().counter("requestsFailed");
        requestsRejected = getMetricGroup().counter("requestsRejected");

        model = LoadedModel.open(java.nio.file.Path.of(settings.modelPath()));
        int positions = model.config().maxPositionEmbeddings();
        if (settings.maxContextTokens() > positions) {
            throw new IllegalArgumentException("maxContextTokens " + settings.maxContextTokens()
                    + " exceeds the model's max_position_embeddings " + positions + " (" + settings.modelPath() + ")");
        }
        tokenizer = model.tokenizer();
        chatMl = new ChatMl(tokenizer);
        systemTurn = chatMl.encode(List.of(ChatMl.Message.system(settings.systemPrompt())), false);
        answerEnd = ContextWindow.concat(new int[] {tokenizer.imEndId().orElseThrow()}, 0, 1, tokenizer.encode("\n"));
        sampling = SamplingParams.greedy(settings.maxNewTokens(), model.stopTokens());
        window = new ContextWindow(systemTurn.length, settings.sinkTokens(),
                settings.maxContextTokens() - settings.maxNewTokens());
        if (!window.fits(1)) {
            throw new IllegalArgumentException("the system turn (" + systemTurn.length + " tokens) leaves no room in "
                    + window.maxPromptTokens() + " prompt tokens (maxContextTokens - maxNewTokens)");
        }
        modelName = settings.resolvedModelName();
        pool = new KernelPool(settings.threads());
        engine = engineFactory.create(model.newForward(pool, 64), settings);

        // after a restore: hand the first waiting event of every key to the engine again
        List<String> keys;
        try (var stream = getKeyedStateBackend().<VoidNamespace>getKeys("pending", VoidNamespace.INSTANCE)) {
            keys = stream.map(k -> (String) k).collect(Collectors.toList());
        }
        for (String key : keys) {
            setCurrentKey(key);
            startNext(key);
        }
    }

    @Override
    public void processElement(StreamRecord<InferenceEvent> element) throws Exception {
        InferenceEvent event = element.getValue();
        String key = (String) getCurrentKey();
        pending.add(event);
        if (!inFlight.containsKey(key)) {
            startNext(key);
        }
    }

    /**
     * Hands the key's first waiting event to the engine, rejecting bad ones on the way. The
     * current key must be {@code key}, and the key must have nothing in the engine.
     */
    private void startNext(String key) throws Exception {
        List<InferenceEvent> waiting = waiting();
        while (!waiting.isEmpty()) {
            InferenceEvent event = waiting.get(0);
            String problem = null;
            int[] prompt = null;
            if (event.text() == null || event.text().isEmpty()) {
                problem = "request " + event.requestId() + " of key " + key + ": the text is empty";
            } else {
                int[] turn = userTurn(event.text());
                if (!window.fits(turn.length)) {
                    problem = "request " + event.requestId() + " of key " + key + ": the turn is " + turn.length
                            + " tokens; with the system turn (" + window.systemTokens() + ") it exceeds the "
                            + window.maxPromptTokens() + " prompt tokens the context leaves (maxContextTokens "
                            + settings.maxContextTokens() + " - maxNewTokens " + settings.maxNewTokens() + ")";
                } else {
                    int[] h = history.value();
                    prompt = window.prompt(h != null ? h : systemTurn, turn);
                }
            }
            if (problem != null) {
                reject(event, problem);
                waiting.remove(0);
                setWaiting(waiting);
                continue;
            }
            submit(key, event, prompt);
            return;
        }
    }

    private void submit(String key, InferenceEvent event, int[] prompt) throws Exception {
        while (!engine.hasCapacity()) {
            // backpressure: result mails free capacity; input is not read meanwhile
            mailbox.yield();
        }
        InFlight request = new InFlight(event, prompt, System.nanoTime());
        inFlight.put(key, request);
        requests.inc();
        CompletableFuture<GenerationResult> future;
        try {
            future = engine.submit(new GenerationRequest(event.requestId(), key, prompt, sampling));
        } catch (RuntimeException e) {
            inFlight.remove(key);
            throw e;
        }
        future.whenComplete((result, error) -> {
            try {
                mailbox.execute(() -> onResult(key, request, result, error), "inference result %s", event.requestId());
            } catch (RejectedExecutionException e) {
                // the mailbox is closed: the task is going away, the event stays in 'pending'
            }
        });
    }

    /** On the mailbox thread: the engine answered (or failed) {@code request} of {@code key}. */
    private void onResult(String key, InFlight request, GenerationResult result, Throwable error) throws Exception {
        if (closing || inFlight.get(key) != request) {
            return; // a stale completion (closing, or a cancelled engine): nothing to do
        }
        Object previousKey = getCurrentKey();
        setCurrentKey(key);
        try {
            inFlight.remove(key);
            List<InferenceEvent> waiting = waiting();
            InferenceEvent event = request.event();
            if (waiting.isEmpty() || !waiting.get(0).equals(event)) {
                throw new IllegalStateException("key " + key + ": the answered request " + event.requestId()
                        + " is not the first waiting one; waiting " + waiting);
            }
            waiting.remove(0);
            setWaiting(waiting);
            if (error != null) {
                Throwable cause = error instanceof CompletionException && error.getCause() != null ? error.getCause() : error;
                if (cause instanceof CancellationException) {
                    throw new IllegalStateException("request " + event.requestId() + " was cancelled by the engine", cause);
                }
                requestsFailed.inc();
                reject(event, "request " + event.requestId() + " of key " + key + " failed in the engine: "
                        + cause.getMessage());
            } else {
                int[] ids = result.ids();
                int[] prompt = request.prompt();
                int[] next = new int[prompt.length + ids.length + answerEnd.length];
                System.arraycopy(prompt, 0, next, 0, prompt.length);
                System.arraycopy(ids, 0, next, prompt.length, ids.length);
                System.arraycopy(answerEnd, 0, next, prompt.length + ids.length, answerEnd.length);
                history.update(next);
                long latencyMillis = (System.nanoTime() - request.startNanos()) / 1_000_000L;
                output.collect(new StreamRecord<>(
                        new InferenceResult(key, event.requestId(), tokenizer.decode(ids), prompt.length, ids.length,
                                latencyMillis, modelName),
                        event.eventTimeMillis()));
            }
            startNext(key);
        } finally {
            if (previousKey != null) {
                setCurrentKey(previousKey);
            }
        }
    }

    private void reject(InferenceEvent event, String reason) {
        requestsRejected.inc();
        output.collect(REJECTED, new StreamRecord<>(new RejectedEvent(event, reason), event.eventTimeMillis()));
    }

    private int[] userTurn(String text) {
        // the turn exactly as ChatML encodes it after the system turn: turns are tokenized one
        // by one, so the user turn and generation prompt follow the system turn's ids
        int[] both = chatMl.encode(
                List.of(ChatMl.Message.system(settings.systemPrompt()), ChatMl.Message.user(text)), true);
        return Arrays.copyOfRange(both, systemTurn.length, both.length);
    }

    private List<InferenceEvent> waiting() throws Exception {
        List<InferenceEvent> list = new ArrayList<>();
        Iterable<InferenceEvent> it = pending.get();
        if (it != null) {
            it.forEach(list::add);
        }
        return list;
    }

    private void setWaiting(List<InferenceEvent> list) throws Exception {
        if (list.isEmpty()) {
            pending.clear();
        } else {
            pending.update(list);
        }
    }

    /** Waits (yielding to the mailbox) until every event received so far is answered. */
    private void drain() throws Exception {
        while (!inFlight.isEmpty()) {
            mailbox.yield();
        }
    }

    @Override
    public void processWatermark(Watermark mark) throws Exception {
        drain();
        super.processWatermark(mark);
    }

    @Override
    public void endInput() throws Exception {
        drain();
    }

    @Override
    public void close() throws Exception {
        closing = true;
        try {
            if (engine != null) {
                engine.close();
            }
        } finally {
            try {
                if (pool != null) {
                    pool.close();
                }
            } finally {
                if (model != null) {
                    model.close();
                }
                super.close();
            }
        }
    }

    /** Requests now in the engine (one per key at most). */
    @VisibleForTesting
    int inFlightCount() {
        return inFlight.size();
    }
}
