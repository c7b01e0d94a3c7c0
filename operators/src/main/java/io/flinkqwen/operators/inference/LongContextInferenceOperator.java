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
import io.flinkqwen.kernels.backend.KernelBackends;
import io.flinkqwen.operators.arrow.AllocatorSource;
import io.flinkqwen.operators.arrow.ArrowRequestBatcher;
import io.flinkqwen.operators.arrow.RequestBatch;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledFuture;
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
import org.apache.flink.metrics.Histogram;
import org.apache.flink.metrics.MeterView;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.runtime.metrics.DescriptiveStatisticsHistogram;
import org.apache.flink.runtime.state.VoidNamespace;
import org.apache.flink.runtime.state.VoidNamespaceSerializer;
import org.apache.flink.streaming.api.operators.InternalTimer;
import org.apache.flink.streaming.api.operators.InternalTimerService;
import org.apache.flink.streaming.api.operators.Triggerable;
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
 * InferenceResult}. Create it with {@link QwenInference#builder()} or {@link
 * LongContextInferenceOperatorFactory}.
 *
 * <p><b>Summaries.</b> With {@link InferenceSettings#summaries()} set ({@link Task#summarize})
 * events are not answered one by one: they are kept in keyed state {@code collected} until a
 * trigger (N events, or a Flink event- or processing-time timer at the end of a period, which
 * the checkpoint holds) turns them into one pending request {@code <key>/summary-<n>}, whose
 * user turn is the {@link Summaries} template over their texts, applied when it is staged (after
 * the previous summary is in). From there a summary runs as an event does: on the key's history,
 * one at a time per key, with the same side output, timeout and metrics. Keyed {@code
 * summaryCount} and {@code lastSummary} number the summaries and fill {@value Summaries#SUMMARY}.
 *
 * <p><b>Threads.</b> Everything here runs on the task's mailbox thread: the engine's futures
 * complete on the engine's scheduler thread, and their callbacks only enqueue a mail; the mail
 * sets the key, touches state and emits. Metric gauges read volatile copies.
 *
 * <p><b>Arrow micro-batches.</b> A key's next event is tokenized and staged in an Arrow batch
 * ({@link ArrowRequestBatcher}: key, request id, text, event time, and the turn's token ids as a
 * list vector) shared by all keys of this operator instance; the batch goes to the engine when
 * {@link InferenceSettings#batch()} says (count, payload bytes or processing time since its
 * first request, whichever first; a watermark or the end of input flushes it too). Each request
 * hands the engine a {@link RequestBatch#prompt view}: the key's history from state, then the
 * turn's ids read in place from the batch's Arrow data buffer. A batch is closed when the engine
 * has answered all its requests. The operator takes one child allocator of {@link
 * AllocatorSource#parent()} and closes it in {@link #close()}.
 *
 * <p><b>Order.</b> A key's events run one at a time, in arrival order: the next is staged when
 * the previous one's result arrives, since its prompt is the history that result completes.
 * Different keys run concurrently, up to the engine's capacity. Results of one key come out in
 * order; results of different keys interleave.
 *
 * <p><b>Backpressure, never a drop.</b> Before a hand-over, while the engine has no capacity the
 * operator yields to the mailbox (which runs result mails and so frees capacity); the task
 * reads no input meanwhile.
 *
 * <p><b>State.</b> Keyed {@code history} (int[]): the system turn plus every answered turn
 * (for summaries: every summary turn and its answer).
 * Keyed {@code pending} (list): the key's events not answered yet, the one staged or in the
 * engine first. Both are keyed, not operator list state as in {@code AsyncWaitOperator}, so that
 * rescaling moves a key's waiting events with its history. The history changes only when a
 * result arrives, so a checkpoint holds for every key its history and the events still to
 * answer (the staged Arrow batch needs no snapshot: its events are in {@code pending}), and
 * {@link #open()} stages the first of each key again after a restore. Greedy generation is
 * deterministic, so a restored run emits what an uninterrupted one would. The KV caches are not
 * state: the engine rebuilds them by prefill, as it does for keys evicted from its KV budget
 * ({@link InferenceSettings#kvBudgetBytes()}, which bounds running and idle caches together:
 * a request the budget cannot hold yet waits in the engine's queue).
 *
 * <p><b>Bad records</b> go to {@link #REJECTED} with a reason and the key moves on: empty text,
 * a turn that cannot fit the context, a request the engine failed, a request not answered
 * within {@link InferenceSettings#requestTimeoutMillis()} (a processing-time timer; the
 * operator {@linkplain InferenceEngine#cancel cancels} it in the engine, which frees its batch
 * slot and KV cache before its next step).
 *
 * <p><b>Watermarks</b> are held until every event received before them is answered, then until
 * the summaries their event-time timers trigger are answered, so results (stamped with their
 * event's time or their period's end) are never late. This drains the operator at each watermark.
 *
 * <p><b>Metrics</b> (operator group): counters {@code requests}, {@code requestsFailed}, {@code
 * requestsRejected}, {@code requestsTimedOut}, {@code tokensIn} (prompt tokens handed over),
 * {@code tokensOut} (generated), {@code batches}; meters {@code requestsPerSecond}, {@code
 * tokensInPerSecond}, {@code tokensOutPerSecond}; histograms {@code batchSize} (requests per
 * Arrow batch) and {@code latencyMillis} (hand-over to result); gauges {@code queueLength}
 * (requests staged or in the engine), {@code bufferedRequests} (staged in the Arrow batch),
 * {@code openBatches} (Arrow batches the engine still reads), {@code arrowBytes}, {@code kvBytesInUse}, {@code idleKvBytes}, {@code evictions}, {@code
 * prefilledTokens}, {@code reusedTokens}, {@code generatedTokens} (tokens the engine sampled so far:
 * unlike {@code tokensOut}, which counts a result's tokens when it arrives, it advances during a
 * generation, so {@code queueLength > 0} with {@code generatedTokens} advancing means a generation
 * is under way).
 */
@PublicEvolving
public final class LongContextInferenceOperator extends AbstractStreamOperator<InferenceResult>
        implements OneInputStreamOperator<InferenceEvent, InferenceResult>, BoundedOneInput,
                Triggerable<Object, VoidNamespace> {

    private static final long serialVersionUID = 1L;

    /** Events not answered, with the reason. */
    public static final OutputTag<RejectedEvent> REJECTED =
            new OutputTag<>("rejected-inference-events", TypeInformation.of(RejectedEvent.class));

    private final InferenceSettings settings;
    private final EngineFactory engineFactory;
    private final AllocatorSource allocatorSource;
    private final transient MailboxExecutor mailbox;

    private transient ValueState<int[]> history;
    private transient ListState<InferenceEvent> pending;
    // summaries only: events since the key's last summary, summaries triggered, the last answer
    private transient ListState<InferenceEvent> collected;
    private transient ValueState<Long> summaryCount;
    private transient ValueState<String> lastSummary;
    private transient InternalTimerService<VoidNamespace> summaryTimers;

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

    private transient ArrowRequestBatcher batcher;
    /** The requests in the batcher's rows, in row order. */
    private transient List<Request> staged;
    /** Batches handed to the engine whose requests are not all answered. */
    private transient Set<Lease> leases;
    private transient long flushTimerAt;

    /** The request of each key now staged or in the engine; a key is absent when it has none. */
    private transient Map<String, Request> active;

    private transient Counter requests;
    private transient Counter requestsFailed;
    private transient Counter requestsRejected;
    private transient Counter requestsTimedOut;
    private transient Counter tokensIn;
    private transient Counter tokensOut;
    private transient Counter batches;
    private transient Histogram batchSize;
    private transient Histogram latencyMillis;
    private transient volatile int queueLength;
    private transient volatile int bufferedRequests;
    private transient volatile int openBatches;

    /** One event on its way: staged in the Arrow batch, then in the engine. */
    private static final class Request {
        final String key;
        final InferenceEvent event;
        final int[] head; // the history part of the prompt (trimmed); the turn is in the batch
        Lease lease; // null while staged
        int row;
        long startNanos;
        ScheduledFuture<?> timeout;
        GenerationRequest handedOver; // what the engine got, for cancel(); null while staged

        Request(String key, InferenceEvent event, int[] head) {
            this.key = key;
            this.event = event;
            this.head = head;
        }
    }

    /** A flushed batch and how many of its requests the engine has not answered yet. */
    private static final class Lease {
        final RequestBatch batch;
        int open;

        Lease(RequestBatch batch) {
            this.batch = batch;
            this.open = batch.rows();
        }
    }

    LongContextInferenceOperator(
            StreamOperatorParameters<InferenceResult> parameters,
            InferenceSettings settings,
            EngineFactory engineFactory,
            AllocatorSource allocatorSource) {
        super(parameters);
        this.settings = settings;
        this.engineFactory = engineFactory;
        this.allocatorSource = allocatorSource;
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
        collected = context.getKeyedStateStore()
                .getListState(new ListStateDescriptor<>("collected", TypeInformation.of(InferenceEvent.class)));
        summaryCount = context.getKeyedStateStore().getState(new ValueStateDescriptor<>("summaryCount", Long.class));
        lastSummary = context.getKeyedStateStore().getState(new ValueStateDescriptor<>("lastSummary", String.class));
    }

    @Override
    public void open() throws Exception {
        super.open();
        active = new HashMap<>();
        staged = new ArrayList<>();
        leases = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
        flushTimerAt = Long.MAX_VALUE;

        // an unusable model file, or settings that contradict the model, fail the job for good:
        // every restart would fail the same way (ModelLoading says which failures restart)
        model = ModelLoading.open(java.nio.file.Path.of(settings.modelPath()));
        int positions = model.config().maxPositionEmbeddings();
        if (settings.maxContextTokens() > positions) {
            throw ModelLoading.unrecoverable(new IllegalArgumentException("maxContextTokens " + settings.maxContextTokens()
                    + " exceeds the model's max_position_embeddings " + positions + " (" + settings.modelPath() + ")"));
        }
        tokenizer = model.tokenizer();
        chatMl = new ChatMl(tokenizer);
        systemTurn = chatMl.encode(List.of(ChatMl.Message.system(settings.systemPrompt())), false);
        answerEnd = ContextWindow.concat(new int[] {tokenizer.imEndId().orElseThrow()}, 0, 1, tokenizer.encode("\n"));
        sampling = SamplingParams.greedy(settings.maxNewTokens(), model.stopTokens());
        window = new ContextWindow(systemTurn.length, settings.sinkTokens(),
                settings.maxContextTokens() - settings.maxNewTokens());
        if (!window.fits(1)) {
            throw ModelLoading.unrecoverable(new IllegalArgumentException("the system turn (" + systemTurn.length
                    + " tokens) leaves no room in " + window.maxPromptTokens()
                    + " prompt tokens (maxContextTokens - maxNewTokens)"));
        }
        modelName = settings.resolvedModelName();
        pool = new KernelPool(settings.threads());
        // qwen.device from the job's global parameters, else the JVM's flinkqwen.device (default auto)
        String device = getExecutionConfig().getGlobalJobParameters().toMap().getOrDefault(
                QwenInferenceOptions.DEVICE.key(), System.getProperty(KernelBackends.DEVICE_PROPERTY, "auto"));
        // the KV format of the settings (qwen.kv-type), else the JVM's flinkqwen.kv (default f32)
        engine = engineFactory.create(
                model.newForward(pool, model.defaultChunkTokens(), KernelBackends.select(device), settings.resolvedKvFormat()), settings);
        var task = getRuntimeContext().getTaskInfo();
        batcher = new ArrowRequestBatcher(allocatorSource.parent(),
                task.getTaskNameWithSubtasks() + "/" + getOperatorID(), Long.MAX_VALUE, settings.batch());
        registerMetrics(getMetricGroup());
        if (settings.summaries() != null && settings.summaries().everyMillis() > 0) {
            // Flink's timers: keyed, checkpointed with the operator, restored before open() runs
            summaryTimers = getInternalTimerService("summary-triggers", VoidNamespaceSerializer.INSTANCE, this);
        }

        // after a restore: stage the first waiting event of every key again
        List<String> keys;
        try (var stream = getKeyedStateBackend().<VoidNamespace>getKeys("pending", VoidNamespace.INSTANCE)) {
            keys = stream.map(k -> (String) k).collect(Collectors.toList());
        }
        for (String key : keys) {
            setCurrentKey(key);
            startNext(key);
        }
    }

    private void registerMetrics(MetricGroup group) {
        requests = group.counter("requests");
        requestsFailed = group.counter("requestsFailed");
        requestsRejected = group.counter("requestsRejected");
        requestsTimedOut = group.counter("requestsTimedOut");
        tokensIn = group.counter("tokensIn");
        tokensOut = group.counter("tokensOut");
        batches = group.counter("batches");
        group.meter("requestsPerSecond", new MeterView(requests));
        group.meter("tokensInPerSecond", new MeterView(tokensIn));
        group.meter("tokensOutPerSecond", new MeterView(tokensOut));
        batchSize = group.histogram("batchSize", new DescriptiveStatisticsHistogram(1024));
        latencyMillis = group.histogram("latencyMillis", new DescriptiveStatisticsHistogram(1024));
        group.gauge("queueLength", () -> queueLength);
        group.gauge("bufferedRequests", () -> bufferedRequests);
        group.gauge("openBatches", () -> openBatches);
        ArrowRequestBatcher b = batcher;
        group.gauge("arrowBytes", b::allocatedBytes);
        InferenceEngine e = engine;
        group.gauge("kvBytesInUse", () -> e.stats().kvBytesInUse());
        group.gauge("idleKvBytes", () -> e.stats().idleKvBytes());
        group.gauge("evictions", () -> e.stats().evictions());
        group.gauge("prefilledTokens", () -> e.stats().prefilledTokens());
        group.gauge("reusedTokens", () -> e.stats().reusedTokens());
        group.gauge("generatedTokens", () -> e.stats().generatedTokens());
    }

    private void updateGauges() {
        queueLength = active.size();
        bufferedRequests = staged.size();
        openBatches = leases.size();
    }

    @Override
    public void processElement(StreamRecord<InferenceEvent> element) throws Exception {
        InferenceEvent event = element.getValue();
        String key = (String) getCurrentKey();
        Summaries summaries = settings.summaries();
        if (summaries != null) {
            collect(key, event, summaries);
            return;
        }
        pending.add(event);
        if (!active.containsKey(key)) {
            startNext(key);
        }
    }

    /** Summaries: keeps the event for the key's next summary; triggers it after N events. */
    private void collect(String key, InferenceEvent event, Summaries summaries) throws Exception {
        if (event.text() == null || event.text().isEmpty()) {
            reject(event, "request " + event.requestId() + " of key " + key + ": the text is empty");
            return;
        }
        int[] alone = userTurn(summaries.render(event.text(), lastSummary.value()));
        if (!window.fits(alone.length)) {
            reject(event, "request " + event.requestId() + " of key " + key + ": the event alone makes a summary turn of "
                    + alone.length + " tokens; with the system turn (" + window.systemTokens() + ") it exceeds the "
                    + window.maxPromptTokens() + " prompt tokens the context leaves (maxContextTokens "
                    + settings.maxContextTokens() + " - maxNewTokens " + settings.maxNewTokens() + ")");
            return;
        }
        collected.add(event);
        if (summaries.everyMillis() > 0) {
            if (summaries.timeDomain() == Summaries.TimeDomain.EVENT_TIME) {
                summaryTimers.registerEventTimeTimer(VoidNamespace.INSTANCE, summaries.periodEnd(event.eventTimeMillis()));
            } else {
                summaryTimers.registerProcessingTimeTimer(VoidNamespace.INSTANCE,
                        summaries.periodEnd(getProcessingTimeService().getCurrentProcessingTime()));
            }
        }
        if (summaries.everyEvents() > 0) {
            List<InferenceEvent> events = new ArrayList<>();
            collected.get().forEach(events::add);
            if (events.size() >= summaries.everyEvents()) {
                summarize(key, events, event.eventTimeMillis());
                collected.clear();
            }
        }
    }

    /** The end of an event-time period: summarize the key's events of this period and before. */
    @Override
    public void onEventTime(InternalTimer<Object, VoidNamespace> timer) throws Exception {
        List<InferenceEvent> due = new ArrayList<>();
        List<InferenceEvent> later = new ArrayList<>();
        for (InferenceEvent e : collected.get()) {
            (e.eventTimeMillis() <= timer.getTimestamp() ? due : later).add(e);
        }
        if (!due.isEmpty()) {
            collected.update(later);
            summarize((String) timer.getKey(), due, timer.getTimestamp());
        }
    }

    /** The end of a processing-time period: summarize every event the key has collected. */
    @Override
    public void onProcessingTime(InternalTimer<Object, VoidNamespace> timer) throws Exception {
        List<InferenceEvent> due = new ArrayList<>();
        collected.get().forEach(due::add);
        if (!due.isEmpty()) {
            collected.clear();
            long newest = due.stream().mapToLong(InferenceEvent::eventTimeMillis).max().orElseThrow();
            summarize((String) timer.getKey(), due, newest);
        }
    }

    /**
     * Queues the key's next summary of {@code events} as one pending request (the current key is
     * {@code key}). Its text is the events, one per line; the template is applied when it is
     * staged, after the previous summary is in.
     */
    private void summarize(String key, List<InferenceEvent> events, long timestamp) throws Exception {
        Long n = summaryCount.value();
        long next = n == null ? 1 : n + 1;
        summaryCount.update(next);
        String lines = events.stream().map(InferenceEvent::text).collect(Collectors.joining("\n"));
        pending.add(new InferenceEvent(key, key + "/summary-" + next, lines, timestamp));
        if (!active.containsKey(key)) {
            startNext(key);
        }
    }

    /**
     * Stages the key's first waiting event, rejecting bad ones on the way. The current key must
     * be {@code key}, and the key must have nothing staged or in the engine.
     */
    private void startNext(String key) throws Exception {
        List<InferenceEvent> waiting = waiting();
        while (!waiting.isEmpty()) {
            InferenceEvent event = waiting.get(0);
            String problem = null;
            int[] turn = null;
            String text = settings.summaries() == null
                    ? event.text()
                    : settings.summaries().render(event.text(), lastSummary.value());
            if (event.text() == null || event.text().isEmpty()) {
                problem = "request " + event.requestId() + " of key " + key + ": the text is empty";
            } else {
                turn = userTurn(text);
                if (!window.fits(turn.length)) {
                    problem = "request " + event.requestId() + " of key " + key + ": the turn is " + turn.length
                            + " tokens; with the system turn (" + window.systemTokens() + ") it exceeds the "
                            + window.maxPromptTokens() + " prompt tokens the context leaves (maxContextTokens "
                            + settings.maxContextTokens() + " - maxNewTokens " + settings.maxNewTokens() + ")";
                }
            }
            if (problem != null) {
                reject(event, problem);
                waiting.remove(0);
                setWaiting(waiting);
                continue;
            }
            int[] h = history.value();
            stage(key, new Request(key, event, window.head(h != null ? h : systemTurn, turn.length)), text, turn);
            return;
        }
    }

    /** Adds the request to the Arrow batch; flushes it when a bound is reached. */
    private void stage(String key, Request request, String text, int[] turn) throws Exception {
        InferenceEvent event = request.event;
        long now = getProcessingTimeService().getCurrentProcessingTime();
        active.put(key, request);
        staged.add(request);
        boolean full = batcher.add(key, event.requestId(), text, event.eventTimeMillis(), turn, now);
        updateGauges();
        if (full || batcher.isFlushDue(now)) {
            flush();
        } else if (batcher.flushDeadlineMillis() < flushTimerAt) {
            flushTimerAt = batcher.flushDeadlineMillis();
            getProcessingTimeService().registerTimer(flushTimerAt, this::onFlushTimer);
        }
    }

    /** The time bound: flush if the oldest staged request has waited long enough. */
    private void onFlushTimer(long timestamp) throws Exception {
        flushTimerAt = Long.MAX_VALUE;
        if (closing) {
            return;
        }
        if (batcher.isFlushDue(timestamp)) {
            flush();
        } else if (batcher.rows() > 0) {
            flushTimerAt = batcher.flushDeadlineMillis();
            getProcessingTimeService().registerTimer(flushTimerAt, this::onFlushTimer);
        }
    }

    /** Hands every staged request to the engine, each with a view of the batch as its prompt. */
    private void flush() throws Exception {
        RequestBatch batch = batcher.flush();
        if (batch == null) {
            return;
        }
        List<Request> rows = new ArrayList<>(staged);
        staged.clear();
        Lease lease = new Lease(batch);
        leases.add(lease);
        batches.inc();
        batchSize.update(rows.size());
        updateGauges();
        for (int row = 0; row < rows.size(); row++) {
            submit(rows.get(row), lease, row);
        }
    }

    private void submit(Request request, Lease lease, int row) throws Exception {
        while (!engine.hasCapacity()) {
            // backpressure: result mails free capacity; input is not read meanwhile
            mailbox.yield();
        }
        InferenceEvent event = request.event;
        String key = request.key;
        var prompt = lease.batch.prompt(row, request.head);
        request.lease = lease;
        request.row = row;
        request.startNanos = System.nanoTime();
        requests.inc();
        tokensIn.inc(prompt.length());
        CompletableFuture<GenerationResult> future;
        try {
            request.handedOver = new GenerationRequest(event.requestId(), key, prompt, sampling);
            future = engine.submit(request.handedOver);
        } catch (RuntimeException e) {
            active.remove(key);
            lease.open--;
            throw e;
        }
        if (settings.requestTimeoutMillis() > 0) {
            long at = getProcessingTimeService().getCurrentProcessingTime() + settings.requestTimeoutMillis();
            request.timeout = getProcessingTimeService().registerTimer(at, t -> onTimeout(request));
        }
        future.whenComplete((result, error) -> {
            try {
                mailbox.execute(() -> onResult(request, result, error), "inference result %s", event.requestId());
            } catch (RejectedExecutionException e) {
                // the mailbox is closed: the task is going away, the event stays in 'pending'
            }
        });
    }

    /** On the mailbox thread: the engine answered (or failed) {@code request}. */
    private void onResult(Request request, GenerationResult result, Throwable error) throws Exception {
        if (closing) {
            return; // close() closes every batch
        }
        String key = request.key;
        try {
            if (active.get(key) != request) {
                return; // timed out: already on the side output
            }
            if (request.timeout != null) {
                request.timeout.cancel(false);
            }
            Object previousKey = getCurrentKey();
            setCurrentKey(key);
            try {
                answer(request, result, error);
            } finally {
                if (previousKey != null) {
                    setCurrentKey(previousKey);
                }
            }
        } finally {
            release(request.lease);
        }
    }

    /** The current key is the request's: record the answer (or failure) and stage the next event. */
    private void answer(Request request, GenerationResult result, Throwable error) throws Exception {
        String key = request.key;
        InferenceEvent event = request.event;
        active.remove(key);
        updateGauges();
        List<InferenceEvent> waiting = waiting();
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
            int[] head = request.head;
            int turnLength = request.lease.batch.tokenCount(request.row);
            int[] next = new int[head.length + turnLength + ids.length + answerEnd.length];
            System.arraycopy(head, 0, next, 0, head.length);
            request.lease.batch.copyTokenIds(request.row, next, head.length);
            System.arraycopy(ids, 0, next, head.length + turnLength, ids.length);
            System.arraycopy(answerEnd, 0, next, head.length + turnLength + ids.length, answerEnd.length);
            history.update(next);
            String text = tokenizer.decode(ids);
            if (settings.summaries() != null) {
                lastSummary.update(text);
            }
            long latency = (System.nanoTime() - request.startNanos) / 1_000_000L;
            tokensOut.inc(ids.length);
            latencyMillis.update(latency);
            output.collect(new StreamRecord<>(
                    new InferenceResult(key, event.requestId(), text, head.length + turnLength,
                            ids.length, latency, modelName),
                    event.eventTimeMillis()));
        }
        startNext(key);
    }

    /** The request's timeout fired: if it is still unanswered, reject it and move the key on. */
    private void onTimeout(Request request) throws Exception {
        String key = request.key;
        if (closing || active.get(key) != request) {
            return;
        }
        Object previousKey = getCurrentKey();
        setCurrentKey(key);
        try {
            active.remove(key);
            updateGauges();
            List<InferenceEvent> waiting = waiting();
            if (waiting.isEmpty() || !waiting.get(0).equals(request.event)) {
                throw new IllegalStateException("key " + key + ": the timed-out request " + request.event.requestId()
                        + " is not the first waiting one; waiting " + waiting);
            }
            waiting.remove(0);
            setWaiting(waiting);
            requestsTimedOut.inc();
            reject(request.event, "request " + request.event.requestId() + " of key " + key + " timed out: no answer "
                    + settings.requestTimeoutMillis() + " ms after its hand-over to the engine (requestTimeout); "
                    + "the key's history is unchanged");
            // the engine drops it before its next step and frees its slot and KV; its future then
            // completes (cancelled) and onResult closes its Arrow batch share, not before, since
            // the engine may read the prompt until then. The key's next request waits behind it
            // in the engine, as requests of one session do.
            engine.cancel(request.handedOver);
            startNext(key);
        } finally {
            if (previousKey != null) {
                setCurrentKey(previousKey);
            }
        }
    }

    /** One request of the batch is answered; the last closes it. */
    private void release(Lease lease) {
        if (--lease.open == 0) {
            leases.remove(lease);
            lease.batch.close();
            updateGauges();
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

    /** Flushes the batch and waits (yielding to the mailbox) until every event received so far is answered. */
    private void drain() throws Exception {
        while (!active.isEmpty()) {
            if (!staged.isEmpty()) {
                flush();
            } else {
                mailbox.yield();
            }
        }
    }

    /**
     * Holds the watermark until the results of earlier events are out; then fires the event-time
     * summary timers it passes and holds it again until those summaries are out, so that no
     * result (stamped with its event's time or its period's end) is late.
     */
    @Override
    public void processWatermark(Watermark mark) throws Exception {
        drain();
        if (timeServiceManager != null) {
            timeServiceManager.advanceWatermark(mark);
        }
        drain();
        output.emitWatermark(mark);
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
                // joins the engine's scheduler: nothing reads the batches after this
                engine.close();
            }
        } finally {
            try {
                if (leases != null) {
                    for (Lease lease : leases) {
                        lease.batch.close();
                    }
                    leases.clear();
                }
                if (batcher != null) {
                    batcher.close();
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
    }

    /** Requests now staged or in the engine (one per key at most). */
    @VisibleForTesting
    int inFlightCount() {
        return active.size();
    }
}
