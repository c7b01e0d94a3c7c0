/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.serve;

import io.flinkqwen.engine.generate.Generator.StopReason;
import io.flinkqwen.engine.generate.Sampler;
import io.flinkqwen.engine.generate.SamplingParams;
import io.flinkqwen.engine.model.KvBlockPool;
import io.flinkqwen.engine.model.KvCache;
import io.flinkqwen.engine.model.Qwen2Model;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.IdentityHashMap;
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
 * rest, so a stream of events appended to a key's history costs only the new tokens. An evicted
 * session is rebuilt by prefill on its next request. Results do not depend on what was cached:
 * the same prompt gives the same ids either way.
 *
 * <p>Paged KV: every cache takes fixed-size blocks from one {@link KvBlockPool} per engine. With
 * prefix sharing on (the default), the full blocks of every prompt are published in the pool's
 * prefix index after its prefill, and a new request whose prompt starts with the same tokens (a
 * shared system prompt or task template) adopts those blocks instead of prefilling them; shared
 * blocks are copied before a write (copy-on-write) and go back to the pool with their last holder.
 *
 * <p>KV budget: {@code kvBudgetBytes} bounds the KV blocks of running requests and idle sessions
 * together, each block counted once however many caches share it ({@link
 * KvBlockPool#bytesInUse()}). A request is admitted with the blocks for its whole run taken at
 * admission (prompt plus {@code maxNewTokens} positions, less what it shares), so a running
 * cache never grows. To admit the oldest queued request the engine first evicts idle
 * sessions, least recently used first; if running requests still leave too little room, it and
 * everything queued behind it wait (oldest first, no overtaking) until running requests end:
 * backpressure through {@link #capacity()}, never a drop. One exception keeps the engine live:
 * a request that alone exceeds the budget runs when nothing else runs. When a request ends its
 * session's cache is kept only while running and idle caches stay within the budget.
 *
 * <p>Cancellation: {@link #cancel} takes a queued request out of the queue at once and a running
 * one out of the batch before the next step, freeing its slot and its KV reservation; its future
 * then completes with a {@link CancellationException}.
 *
 * <p>Results are deterministic per request: greedy and seeded sampling give the same ids
 * whatever else runs beside them, since every sequence has its own KV cache and sampler.
 */
public final class ContinuousBatchingEngine implements InferenceEngine {

    private final Qwen2Model model;
    private final int maxSequences;
    private final int capacity;
    private final long kvBudgetBytes;
    private final int layers;
    private final int kvDim;
    private final int maxPositions;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition work = lock.newCondition();
    private final LinkedList<Sequence> queue = new LinkedList<>(); // guarded by lock
    // every request in flight, by identity (ids are the caller's and need not be unique); guarded by lock
    private final Map<GenerationRequest, Sequence> inFlightByRequest = new IdentityHashMap<>();
    private int inFlight; // guarded by lock
    private boolean closed; // guarded by lock
    private final Thread scheduler;

    // scheduler thread only
    private final LinkedHashMap<String, CachedContext> idleSessions = new LinkedHashMap<>(16, 0.75f, true);
    private final Set<String> busySessions = new HashSet<>();
    private final KvBlockPool kvPool;
    private final boolean prefixSharing;
    private final List<Sequence> running;
    private final List<Sequence> decoding = new ArrayList<>();
    private final KvCache[] batchCaches;
    private final int[] batchTokens;
    private final int[] prefillChunk;

    // counters, written by the scheduler thread
    private volatile long steps;
    /** Tokens sampled so far; written by the scheduler thread only. */
    private volatile long generatedTokens;
    private final AtomicLong prefilledTokens = new AtomicLong();
    private final AtomicLong reusedTokens = new AtomicLong();
    private final AtomicLong evictions = new AtomicLong();
    private final AtomicLong sharedPrefixTokens = new AtomicLong();
    private volatile long kvBytesInUse;
    private volatile long idleKvBytesNow;
    private volatile int idleSessionCount;

    /** With a KV budget of 256 MiB for running and idle caches together. */
    public ContinuousBatchingEngine(Qwen2Model model, int maxSequences, int capacity) {
        this(model, maxSequences, capacity, 256L << 20);
    }

    /**
     * @param model the forward pass; from now on used by the scheduler thread only
     * @param maxSequences sequences running in one step
     * @param capacity requests in flight at most (running + queued), {@code >= maxSequences}
     * @param kvBudgetBytes KV-cache bytes of running requests and idle sessions together (0:
     *     one request at a time, no idle cache kept)
     */
    public ContinuousBatchingEngine(Qwen2Model model, int maxSequences, int capacity, long kvBudgetBytes) {
        this(model, maxSequences, capacity, kvBudgetBytes, true);
    }

    /**
     * @param prefixSharing whether requests share the KV blocks of common prompt prefixes (see
     *     the class comment); off, every request prefills its whole prompt into blocks of its own
     */
    public ContinuousBatchingEngine(
            Qwen2Model model, int maxSequences, int capacity, long kvBudgetBytes, boolean prefixSharing) {
        if (maxSequences < 1 || capacity < maxSequences) {
            throw new IllegalArgumentException(
                    "need 1 <= maxSequences <= capacity, got " + maxSequences + " and " + capacity);
        }
        if (kvBudgetBytes < 0) {
            throw new IllegalArgumentException("kvBudgetBytes must be >= 0, got " + kvBudgetBytes);
        }
        this.model = model;
        this.maxSequences = maxSequences;
        this.capacity = capacity;
        this.kvBudgetBytes = kvBudgetBytes;
        this.layers = model.config().numHiddenLayers();
        this.kvDim = model.config().kvDim();
        this.maxPositions = model.config().maxPositionEmbeddings();
        this.kvPool = model.newPool();
        this.prefixSharing = prefixSharing;
        // free blocks kept for reuse: up to the budget's worth, so a steady state allocates nothing
        this.kvPool.maxFreeBlocks((int) Math.min(Integer.MAX_VALUE, kvBudgetBytes / kvPool.blockBytes() + 1));
        this.running = new ArrayList<>(maxSequences);
        this.batchCaches = new KvCache[model.maxChunkTokens()];
        this.batchTokens = new int[model.maxChunkTokens()];
        this.prefillChunk = new int[model.maxChunkTokens()];
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
            if (inFlightByRequest.putIfAbsent(request, s) != null) {
                throw new IllegalArgumentException("request " + request.id() + " (this very object) is already in flight");
            }
            inFlight++;
            queue.add(s);
            work.signal();
        } finally {
            lock.unlock();
        }
        return s.future;
    }

    /**
     * {@inheritDoc}
     *
     * <p>A queued request leaves the queue and its future completes (cancelled) before this
     * returns. A running one is marked; the scheduler drops it before its next step (within one
     * forward pass), hands its session the cache of what it fed so far, frees its slot and KV
     * reservation, and only then completes its future, so its prompt is not read after that.
     */
    @Override
    public boolean cancel(GenerationRequest request) {
        Sequence queued = null;
        lock.lock();
        try {
            Sequence s = inFlightByRequest.get(request);
            if (s == null || s.cancelled) {
                return false;
            }
            if (queue.remove(s)) {
                inFlightByRequest.remove(request);
                inFlight--;
                queued = s;
            } else {
                s.cancelled = true;
            }
            work.signal();
        } finally {
            lock.unlock();
        }
        if (queued != null) {
            queued.future.completeExceptionally(
                    new CancellationException("request " + request.id() + " cancelled while queued"));
        }
        return true;
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

    /** Prompt tokens not prefilled because their KV blocks were shared from another request's prompt. */
    public long sharedPrefixTokens() {
        return sharedPrefixTokens.get();
    }

    /**
     * The engine's block pool. Its counters may be read from any thread for monitoring (they
     * are plain fields written by the scheduler thread); nothing else may touch it.
     */
    public KvBlockPool kvPool() {
        return kvPool;
    }

    /** Sessions whose KV cache is kept between requests now (within the budget). */
    public int idleSessions() {
        return idleSessionCount;
    }

    /** Idle sessions whose cache was dropped to stay within the budget. */
    public long evictions() {
        return evictions.get();
    }

    /** KV bytes held now, running and idle; evictions, prefilled, reused and generated tokens so far. */
    @Override
    public EngineStats stats() {
        return new EngineStats(kvBytesInUse, idleKvBytesNow, evictions.get(), prefilledTokens.get(), reusedTokens.get(),
                generatedTokens);
    }

    /** The bound on running and idle KV bytes given to the constructor. */
    public long kvBudgetBytes() {
        return kvBudgetBytes;
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
        List<Sequence> dropped = new ArrayList<>();
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
                    inFlightByRequest.clear();
                    return;
                }
                // index loop, not an iterator: a decode step allocates nothing
                for (int j = running.size() - 1; j >= 0; j--) {
                    Sequence s = running.get(j);
                    if (s.cancelled) {
                        running.remove(j);
                        dropped.add(s);
                    }
                }
            } finally {
                lock.unlock();
            }
            for (int j = 0; j < dropped.size(); j++) {
                Sequence s = dropped.get(j);
                release(s);
                s.failure = new CancellationException("request " + s.request.id() + " cancelled while running");
                complete(s);
            }
            dropped.clear();
            lock.lock();
            try {
                admit(running);
            } finally {
                lock.unlock();
            }
            if (running.isEmpty()) {
                continue;
            }
            step(running);
            kvBytesInUse = kvPool.bytesInUse();
            idleKvBytesNow = idleBytes();
        }
    }

    /** Bytes of the blocks that only idle sessions hold: all in use less the running caches' (each block once). */
    private long idleBytes() {
        idleSessionCount = idleSessions.size();
        long stamp = kvPool.newStamp();
        int runningBlocks = 0;
        for (int j = 0; j < running.size(); j++) { // no iterator per step
            KvCache c = running.get(j).cache;
            runningBlocks += c == null ? 0 : c.markBlocks(stamp);
        }
        return kvPool.bytesInUse() - runningBlocks * kvPool.blockBytes();
    }

    /**
     * Admits queued requests between steps, oldest first, while there are free sequences and the
     * KV budget allows; a request whose session is running waits (others may pass it), one the
     * budget cannot hold yet stops admission (nothing passes it). Holds the lock.
     */
    private void admit(List<Sequence> running) {
        // (no iterator when nothing waits: a decode step allocates nothing)
        for (Iterator<Sequence> it = queue.isEmpty() ? null : queue.iterator();
                it != null && it.hasNext() && running.size() < maxSequences; ) {
            Sequence s = it.next();
            String session = s.request.session();
            if (session != null && busySessions.contains(session)) {
                continue;
            }
            CachedContext own = session == null ? null : idleSessions.get(session);
            int positions = (int) Math.min(maxPositions, (long) s.request.prompt().length() + s.request.params().maxNewTokens());
            long need = newBlocks(own, s, positions) * kvPool.blockBytes();
            // idle caches give way to running requests, least recently used first
            for (Iterator<Map.Entry<String, CachedContext>> idle = idleSessions.entrySet().iterator();
                    kvPool.bytesInUse() + need > kvBudgetBytes && idle.hasNext(); ) {
                Map.Entry<String, CachedContext> e = idle.next();
                if (e.getValue() == own) {
                    continue;
                }
                idle.remove();
                e.getValue().cache.release();
                evictions.incrementAndGet();
                // what it held may have been the prefix this request would share
                need = newBlocks(own, s, positions) * kvPool.blockBytes();
            }
            if (kvPool.bytesInUse() + need > kvBudgetBytes && !running.isEmpty()) {
                break; // waits for running requests to end: backpressure, not a drop
            }
            if (session != null) {
                busySessions.add(session);
            }
            it.remove();
            takeCache(s, own, positions);
            s.admittedAt = System.nanoTime();
            running.add(s);
        }
        idleKvBytesNow = idleBytes();
    }

    /**
     * Blocks the pool must hand out to admit {@code s}, of {@code positions} positions: with its
     * session's cache {@code own}, the blocks it lacks plus the shared ones it will write into;
     * without, all of them less the published prefix it adopts.
     */
    private int newBlocks(CachedContext own, Sequence s, int positions) {
        int length = s.request.prompt().length();
        if (own != null) {
            int reuse = Math.min(commonPrefix(own.tokens, s.request.prompt()), length - 1);
            return own.cache.blocksToWrite(reuse, positions);
        }
        if (!prefixSharing) {
            return kvPool.blocksFor(positions);
        }
        int shared = kvPool.publishedPrefixBlocks(s.fullBlockIds(kvPool.blockPositions()), length);
        int copies = shared > 0 && shared * kvPool.blockPositions() >= length ? 1 : 0; // the last prompt token runs
        return kvPool.blocksFor(positions) - shared + copies;
    }

    /**
     * Gives {@code s} its cache at admission, with every block of its run: its session's cache
     * cut back to the common prefix, or a new one that adopts the published blocks its prompt
     * starts with. What is there already is not prefilled ({@link Sequence#reuse}).
     */
    private void takeCache(Sequence s, CachedContext own, int positions) {
        int length = s.request.prompt().length();
        s.fed = new IntList(length + s.request.params().maxNewTokens());
        if (own != null) {
            idleSessions.remove(s.request.session());
            // the last prompt token always runs: its logits start the generation
            int reuse = Math.min(commonPrefix(own.tokens, s.request.prompt()), length - 1);
            own.cache.truncate(reuse);
            own.cache.ensureCapacity(positions);
            s.cache = own.cache;
            s.reuse = reuse;
            s.fed.addAll(own.tokens, reuse);
            return;
        }
        KvCache cache = new KvCache(kvPool, 0, maxPositions);
        int[] ids = prefixSharing ? s.fullBlockIds(kvPool.blockPositions()) : null;
        int adopted = prefixSharing ? cache.adoptPrefix(ids, ids.length, ids.length) : 0;
        if (adopted == length) {
            adopted = length - 1; // the last prompt token always runs (its block is copied first)
            cache.truncate(adopted);
        }
        cache.ensureCapacity(positions);
        s.cache = cache;
        s.reuse = adopted;
        s.sharedTokens = adopted;
        if (adopted > 0) {
            s.fed.addAll(ids, adopted);
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
            if (s.prefilled) {
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
        if (!s.prefilled) {
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

    /** Samples the next token of {@code s} from {@code logits[off, off + vocab)}; true when it finished. */
    private boolean sampleNext(Sequence s, float[] logits, int off) {
        SamplingParams p = s.request.params();
        int next = s.sampler.sample(logits, off, model.config().vocabSize());
        if (p.isStop(next)) {
            finish(s, StopReason.STOP_TOKEN, null);
            return true;
        }
        s.ids[s.produced++] = next;
        generatedTokens++; // one writer (the scheduler thread): volatile suffices for readers
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

    /**
     * Prefills what the cache taken at admission lacks; null if nothing to generate. The prompt
     * is read in place ({@link PromptTokens}): only the ids to prefill pass through {@code
     * prefillChunk}, the forward pass's input, one chunk at a time. With prefix sharing, the
     * prompt's full blocks are then published for later requests.
     */
    private float[] prefill(Sequence s) {
        s.prefilled = true;
        PromptTokens prompt = s.request.prompt();
        int length = prompt.length();
        SamplingParams p = s.request.params();
        int reuse = s.reuse;
        if (p.maxNewTokens() == 0) {
            return null;
        }
        long t0 = System.nanoTime();
        float[] logits = null;
        // the same chunk boundaries as one forward(cache, ids, reuse, length - reuse) call
        for (int from = reuse; from < length; from += prefillChunk.length) {
            int n = Math.min(prefillChunk.length, length - from);
            prompt.copyTo(from, prefillChunk, 0, n);
            logits = model.forward(s.cache, prefillChunk, 0, n);
            s.fed.addAll(prefillChunk, n);
        }
        if (prefixSharing) {
            s.cache.publishFullBlocks();
        }
        s.prefillNanos = System.nanoTime() - t0;
        s.decodeStart = System.nanoTime();
        prefilledTokens.addAndGet(length - reuse);
        reusedTokens.addAndGet(reuse);
        sharedPrefixTokens.addAndGet(s.sharedTokens);
        return logits;
    }

    /**
     * After a request: its session keeps the cache (its unused blocks given back) within the
     * budget, or the cache's blocks go back to the pool; the session is free.
     */
    private void release(Sequence s) {
        String session = s.request.session();
        if (session != null) {
            lock.lock();
            try {
                busySessions.remove(session);
            } finally {
                lock.unlock();
            }
        }
        if (s.cache == null) {
            return;
        }
        // the cache holds exactly the fed tokens, unless a forward pass failed half-way
        if (session == null || s.fed == null || s.fed.size() != s.cache.length()) {
            s.cache.release();
            return;
        }
        s.cache.trimToLength();
        idleSessions.put(session, new CachedContext(s.cache, s.fed.toArray()));
        for (Iterator<Map.Entry<String, CachedContext>> it = idleSessions.entrySet().iterator();
                kvPool.bytesInUse() > kvBudgetBytes && it.hasNext(); ) {
            CachedContext evicted = it.next().getValue();
            it.remove();
            evicted.cache.release();
            evictions.incrementAndGet();
        }
        // before the caller hears of the result, so that its metrics see this eviction
        idleKvBytesNow = idleBytes();
        kvBytesInUse = kvPool.bytesInUse();
    }

    private static int commonPrefix(int[] a, PromptTokens b) {
        int n = Math.min(a.length, b.length());
        int i = 0;
        while (i < n && a[i] == b.get(i)) {
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
            inFlightByRequest.remove(s.request);
            inFlight--;
            work.signal();
        } finally {
            lock.unlock();
        }
        Throwable failure = s.failure;
        StopReason reason = s.stopReason;
        if (failure instanceof CancellationException) {
            s.future.completeExceptionally(failure);
            return;
        }
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
        boolean cancelled; // guarded by lock
        boolean prefilled;
        int reuse; // prompt positions the cache held at admission (session or shared prefix)
        int sharedTokens; // of those, adopted from the prefix index
        private int[] blockIds;
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

        /**
         * The ids of the prompt's full blocks of {@code blockPositions} (the only ones the prefix
         * index can hold), copied once; the rest of the prompt is read in place by prefill.
         */
        int[] fullBlockIds(int blockPositions) {
            if (blockIds == null) {
                PromptTokens p = request.prompt();
                blockIds = new int[p.length() / blockPositions * blockPositions];
                p.copyTo(0, blockIds, 0, blockIds.length);
            }
            return blockIds;
        }
    }

    /** A growable int list, so that feeding a token does not box it. */
    private static final class IntList {
        private int[] a;
        private int n;

        IntList(int capacity) {
            a = new int[Math.max(4, capacity)];
        }

        void addAll(int[] v, int count) {
            if (n + count > a.length) {
                a = Arrays.copyOf(a, Math.max(2 * a.length, n + count));
            }
            System.arraycopy(v, 0, a, n, count);
            n += count;
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

        int size() {
            return n;
        }
    }
}
