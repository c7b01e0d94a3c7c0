/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.serve;

import io.flinkqwen.engine.generate.Generator.StopReason;
import io.flinkqwen.engine.generate.Sampler;
import io.flinkqwen.engine.generate.SamplingParams;
import io.flinkqwen.engine.model.KvCache;
import io.flinkqwen.engine.model.Qwen2Model;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * An {@link InferenceEngine} that runs many sequences together on one model: a scheduler thread
 * owns the model and repeats steps; between steps it admits queued requests (up to {@code
 * maxSequences} running) and retires finished ones, so a new request starts without waiting for
 * the batch in front of it (continuous batching).
 *
 * <p>Each step prefills the prompts of newly admitted sequences (one forward pass each) and
 * decodes one token for every other running sequence in one batched forward pass ({@link
 * Qwen2Model#forwardBatch}, up to the model's chunk size per pass), so the weights are read once
 * per step for all of them.
 *
 * <p>Sessions: the KV cache of a request with a {@linkplain GenerationRequest#session() session}
 * stays with the session when the request ends, holding every token fed so far. The next request
 * of the session reuses the longest common prefix of that and its prompt and prefills only the
 * rest, so a stream of events appended to a key's history costs only the new tokens. Idle
 * sessions' caches are evicted least-recently-used first to keep the KV bytes of idle sessions
 * within {@code idleKvBudgetBytes}; an evicted session is rebuilt by prefill on its next request.
 * Results do not depend on what was cached: the same prompt gives the same ids either way.
 *
 * <p>Results are deterministic per request: greedy and seeded sampling give the same ids
 * whatever else runs beside them, since every sequence has its own KV cache and sampler.
 */
public final class ContinuousBatchingEngine implements InferenceEngine {

    private final Qwen2Model model;
    private final int maxSequences;
    private final int capacity;
    private final long idleKvBudgetBytes;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition work = lock.newCondition();
    private final LinkedList<Sequence> queue = new LinkedList<>(); // guarded by lock
    private int inFlight; // guarded by lock
    private boolean closed; // guarded by lock
    private final Thread scheduler;

    // scheduler thread only
    private final LinkedHashMap<String, CachedContext> idleSessions = new LinkedHashMap<>(16, 0.75f, true);
    private final Set<String> busySessions = new HashSet<>();
    private long idleKvBytes;
    private final List<Sequence> decoding = new ArrayList<>();
    private final KvCache[] batchCaches;
    private final int[] batchTokens;

    // counters, written by the scheduler thread
    private volatile long steps;
    private final AtomicLong prefilledTokens = new AtomicLong();
    private final AtomicLong reusedTokens = new AtomicLong();
    private final AtomicLong evictions = new AtomicLong();

    /** Without sessions' caches kept beyond 256 MiB. */
    public ContinuousBatchingEngine(Qwen2Model model, int maxSequences, int capacity) {
        this(model, maxSequences, capacity, 256L << 20);
    }

    /**
     * @param model the forward pass; from now on used by the scheduler thread only
     * @param maxSequences sequences running in one step
     * @param capacity requests in flight at most (running + queued), {@code >= maxSequences}
     * @param idleKvBudgetBytes KV-cache bytes that idle sessions may keep (0 keeps none)
     */
    public ContinuousBatchingEngine(Qwen2Model model, int maxSequences, int capacity, long idleKvBudgetBytes) {
        if (maxSequences < 1 || capacity < maxSequences) {
            throw new IllegalArgumentException(
                    "need 1 <= maxSequences <= capacity, got " + maxSequences + " and " + capacity);
        }
        if (idleKvBudgetBytes < 0) {
            throw new IllegalArgumentException("idleKvBudgetBytes must be >= 0, got " + idleKvBudgetBytes);
        }
        this.model = model;
        this.maxSequences = maxSequences;
        this.capacity = capacity;
        this.idleKvBudgetBytes = idleKvBudgetBytes;
        this.batchCaches = new KvCache[model.maxChunkTokens()];
        this.batchTokens = new int[model.maxChunkTokens()];
        this.scheduler = new Thread(this::run, "flinkqwen-engine-scheduler");
        this.scheduler.setDaemon(true);
        this.scheduler.start();
    }

    @Override
    public CompletableFuture<GenerationResult> submit(GenerationRequest request) {
        Sequence s = new Sequence(request);
        lock.lock();
        try {
            if (closed) {
                throw new RejectedExecutionException("the engine is closed; request " + request.id() + " not accepted");
            }
            if (inFlight >= capacity) {
                throw new RejectedExecutionException(
                        "the engine is full (" + capacity + " requests in flight); request " + request.id()
                                + " not accepted: wait for hasCapacity()");
            }
            inFlight++;
            queue.add(s);
            work.signal();
        } finally {
            lock.unlock();
        }
        return s.future;
    }

    @Override
    public boolean hasCapacity() {
        lock.lock();
        try {
            return !closed && inFlight < capacity;
        } finally {
            lock.unlock();
        }
    }

    @Override
    public int inFlight() {
        lock.lock();
        try {
            return inFlight;
        } finally {
            lock.unlock();
        }
    }

    @Override
    public int capacity() {
        return capacity;
    }

    /** Steps run so far (each advances every running sequence by one forward pass). */
    public long steps() {
        return steps;
    }

    /** Prompt tokens run through the model by prefill, over all requests. */
    public long prefilledTokens() {
        return prefilledTokens.get();
    }

    /** Prompt tokens not prefilled because a session's cache already held them. */
    public long reusedTokens() {
        return reusedTokens.get();
    }

    /** Idle sessions whose cache was dropped to stay within the budget. */
    public long evictions() {
        return evictions.get();
    }

    @Override
    public void close() {
        lock.lock();
        try {
            closed = true;
            work.signal();
        } finally {
            lock.unlock();
        }
        try {
            scheduler.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    // ---- the scheduler thread ------------------------------------------------------------

    private void run() {
        List<Sequence> running = new ArrayList<>(maxSequences);
        while (true) {
            lock.lock();
            try {
                while (!closed && running.isEmpty() && !admissible()) {
                    work.awaitUninterruptibly();
                }
                if (closed) {
                    cancel(running);
                    cancel(queue);
                    queue.clear();
                    return;
                }
                // admit between steps, oldest first; a request whose session is running waits
                // (no iterator when nothing waits: a decode step allocates nothing)
                for (Iterator<Sequence> it = queue.isEmpty() ? null : queue.iterator();
                        it != null && it.hasNext() && running.size() < maxSequences; ) {
                    Sequence s = it.next();
                    String session = s.request.session();
                    if (session != null && !busySessions.add(session)) {
                        continue;
                    }
                    it.remove();
                    s.admittedAt = System.nanoTime();
                    running.add(s);
                }
            } finally {
                lock.unlock();
            }
            step(running);
        }
    }

    /** Whether a queued request could start now (its session, if any, is not running). */
    private boolean admissible() {
        for (Sequence s : queue) {
            if (s.request.session() == null || !busySessions.contains(s.request.session())) {
                return true;
            }
        }
        return false;
    }

    private void step(List<Sequence> running) {
        steps++;
        // newcomers: their prompts, one prefill each
        // (index loops, not iterators: the decode step allocates nothing, and this method runs
        // once per step, too rarely for C2 to be relied on to remove an iterator)
        decoding.clear();
        for (int j = 0; j < running.size(); ) {
            Sequence s = running.get(j);
            if (s.cache != null) {
                decoding.add(s);
                j++;
                continue;
            }
            boolean done;
            try {
                done = advance(s);
            } catch (RuntimeException e) {
                finish(s, null, e);
                done = true;
            }
            if (done) {
                running.remove(j);
                retire(s);
            } else {
                j++;
            }
        }
        // everyone else: one token each, all in one forward pass over the weights
        int batch = model.maxChunkTokens();
        for (int from = 0; from < decoding.size(); from += batch) {
            int count = Math.min(batch, decoding.size() - from);
            for (int i = 0; i < count; i++) {
                Sequence s = decoding.get(from + i);
                batchCaches[i] = s.cache;
                batchTokens[i] = s.ids[s.produced - 1];
            }
            float[] all;
            try {
                all = model.forwardBatch(batchCaches, batchTokens, count);
            } catch (RuntimeException e) {
                // one sequence's problem must not fail the others: run them one by one
                for (int i = 0; i < count; i++) {
                    Sequence s = decoding.get(from + i);
                    boolean done;
                    try {
                        done = advance(s);
                    } catch (RuntimeException failure) {
                        finish(s, null, failure);
                        done = true;
                    }
                    if (done) {
                        running.remove(s);
                        retire(s);
                    }
                }
                continue;
            } finally {
                Arrays.fill(batchCaches, 0, count, null);
            }
            int vocab = model.config().vocabSize();
            for (int i = 0; i < count; i++) {
                Sequence s = decoding.get(from + i);
                s.fed.add(batchTokens[i]);
                boolean done;
                try {
                    done = sampleNext(s, all, i * vocab); // the row in place: no copy per token
                } catch (RuntimeException e) {
                    finish(s, null, e);
                    done = true;
                }
                if (done) {
                    running.remove(s);
                    retire(s);
                }
            }
        }
        decoding.clear();
    }

    /** The session gets its cache back before the caller hears of the result, so the caller's
     * next request of the session finds it. */
    private void retire(Sequence s) {
        release(s);
        complete(s);
    }

    /** One forward pass of {@code s} alone; returns true when it finished (see {@link #finish}). */
    private boolean advance(Sequence s) {
        float[] logits;
        if (s.cache == null) {
            logits = prefill(s);
            if (logits == null) {
                finish(s, StopReason.MAX_TOKENS, null);
                return true;
            }
        } else {
            int last = s.ids[s.produced - 1];
            s.one[0] = last;
            logits = model.forward(s.cache, s.one, 0, 1);
            s.fed.add(last);
        }
        return sampleNext(s, logits, 0);
    }

    /**
     * Samples the next token of {@code s} from {@code logits[off, off + vocab)}; returns true when
     * it finished.
     */
    private boolean sampleNext(Sequence s, float[] logits, int off) {
        SamplingParams p = s.request.params();
        int next = s.sampler.sample(logits, off, model.config().vocabSize());
        if (p.isStop(next)) {
            finish(s, StopReason.STOP_TOKEN, null);
            return true;
        }
        s.ids[s.produced++] = next;
        if (s.produced == p.maxNewTokens()) {
            finish(s, StopReason.MAX_TOKENS, null);
            return true;
        }
        if (s.cache.length() >= s.cache.maxPositions()) {
            finish(s, StopReason.CONTEXT_FULL, null);
            return true;
        }
        return false;
    }

    /** Takes the session's cache (or a new one), prefills what it lacks; null if nothing to generate. */
    private float[] prefill(Sequence s) {
        int[] prompt = s.request.promptIds();
        SamplingParams p = s.request.params();
        CachedContext cached = s.request.session() == null ? null : idleSessions.remove(s.request.session());
        int reuse = 0;
        if (cached != null) {
            idleKvBytes -= cached.cache.sizeBytes();
            reuse = commonPrefix(cached.tokens, prompt);
            // the last prompt token always runs: its logits start the generation
            reuse = Math.min(reuse, prompt.length - 1);
            cached.cache.truncate(reuse);
            s.cache = cached.cache;
        } else {
            s.cache = model.newCache(prompt.length + p.maxNewTokens());
        }
        s.fed = new IntList(prompt.length + p.maxNewTokens());
        for (int i = 0; i < reuse; i++) {
            s.fed.add(prompt[i]);
        }
        if (p.maxNewTokens() == 0) {
            return null;
        }
        long t0 = System.nanoTime();
        float[] logits = model.forward(s.cache, prompt, reuse, prompt.length - reuse);
        s.prefillNanos = System.nanoTime() - t0;
        s.decodeStart = System.nanoTime();
        for (int i = reuse; i < prompt.length; i++) {
            s.fed.add(prompt[i]);
        }
        prefilledTokens.addAndGet(prompt.length - reuse);
        reusedTokens.addAndGet(reuse);
        return logits;
    }

    /** After a request: its session keeps the cache (within the budget); the session is free. */
    private void release(Sequence s) {
        String session = s.request.session();
        if (session == null) {
            return;
        }
        lock.lock();
        try {
            busySessions.remove(session);
        } finally {
            lock.unlock();
        }
        if (s.cache == null || s.fed == null) {
            return;
        }
        // the cache holds exactly the fed tokens, unless a forward pass failed half-way
        int[] tokens = s.fed.toArray();
        if (tokens.length != s.cache.length()) {
            return;
        }
        idleSessions.put(session, new CachedContext(s.cache, tokens));
        idleKvBytes += s.cache.sizeBytes();
        for (Iterator<Map.Entry<String, CachedContext>> it = idleSessions.entrySet().iterator();
                idleKvBytes > idleKvBudgetBytes && it.hasNext(); ) {
            CachedContext evicted = it.next().getValue();
            it.remove();
            idleKvBytes -= evicted.cache.sizeBytes();
            evictions.incrementAndGet();
        }
    }

    private static int commonPrefix(int[] a, int[] b) {
        int n = Math.min(a.length, b.length);
        int i = 0;
        while (i < n && a[i] == b[i]) {
            i++;
        }
        return i;
    }

    /** Records how {@code s} ended; {@link #complete} tells the caller. */
    private static void finish(Sequence s, StopReason reason, Throwable failure) {
        s.stopReason = reason;
        s.failure = failure;
    }

    private void complete(Sequence s) {
        lock.lock();
        try {
            inFlight--;
            work.signal();
        } finally {
            lock.unlock();
        }
        Throwable failure = s.failure;
        StopReason reason = s.stopReason;
        if (failure != null) {
            s.future.completeExceptionally(
                    new RequestFailedException("request " + s.request.id() + " failed: " + failure.getMessage(), failure));
            return;
        }
        long now = System.nanoTime();
        s.future.complete(
                new GenerationResult(
                        s.request.id(),
                        Arrays.copyOf(s.ids, s.produced),
                        reason,
                        s.admittedAt - s.submittedAt,
                        s.prefillNanos,
                        s.decodeStart == 0 ? 0 : now - s.decodeStart));
    }

    private void cancel(List<Sequence> sequences) {
        for (Sequence s : sequences) {
            inFlight--;
            s.future.completeExceptionally(new CancellationException("engine closed before request " + s.request.id() + " finished"));
        }
    }

    /** A session's cache between requests, and the tokens whose keys and values it holds. */
    private static final class CachedContext {
        final KvCache cache;
        final int[] tokens;

        CachedContext(KvCache cache, int[] tokens) {
            this.cache = cache;
            this.tokens = tokens;
        }
    }

    /** A request's state while queued or running. */
    private static final class Sequence {
        final GenerationRequest request;
        final CompletableFuture<GenerationResult> future = new CompletableFuture<>();
        final Sampler sampler;
        final int[] ids;
        final int[] one = new int[1];
        final long submittedAt = System.nanoTime();
        long admittedAt;
        long prefillNanos;
        long decodeStart;
        int produced;
        KvCache cache;
        IntList fed; // tokens whose keys and values are in cache, in order
        StopReason stopReason;
        Throwable failure;

        Sequence(GenerationRequest request) {
            this.request = request;
            this.sampler = new Sampler(request.params());
            this.ids = new int[Math.max(1, request.params().maxNewTokens())];
        }
    }

    /** A growable int list, so that feeding a token does not box it. */
    private static final class IntList {
        private int[] a;
        private int n;

        IntList(int capacity) {
            a = new int[Math.max(4, capacity)];
        }

        void add(int v) {
            if (n == a.length) {
                a = Arrays.copyOf(a, 2 * n);
            }
            a[n++] = v;
        }

        int[] toArray() {
            return Arrays.copyOf(a, n);
        }
    }
}
