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
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * An {@link InferenceEngine} that runs many sequences together on one model: a scheduler thread
 * owns the model and repeats steps; between steps it admits queued requests (up to {@code
 * maxSequences} running) and retires finished ones, so a new request starts without waiting for
 * the batch in front of it (continuous batching).
 *
 * <p>Each step prefills the prompts of newly admitted sequences and decodes one token for every
 * other running sequence. Today a step runs each sequence's forward pass in turn over the
 * shared weights; the scheduling contract (admission between steps, per-request futures and
 * failures, bounded capacity) is the one a batched forward pass over all sequences will keep.
 *
 * <p>Results are deterministic per request: greedy and seeded sampling give the same ids
 * whatever else runs beside them, since every sequence has its own KV cache and sampler.
 */
public final class ContinuousBatchingEngine implements InferenceEngine {

    private final Qwen2Model model;
    private final int maxSequences;
    private final int capacity;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition work = lock.newCondition();
    private final ArrayDeque<Sequence> queue = new ArrayDeque<>(); // guarded by lock
    private int inFlight; // guarded by lock
    private boolean closed; // guarded by lock
    private final Thread scheduler;
    private final ArrayDeque<KvCache> freeCaches = new ArrayDeque<>(); // scheduler thread only
    private volatile long steps; // written by the scheduler thread only

    /**
     * @param model the forward pass; from now on used by the scheduler thread only
     * @param maxSequences sequences running in one step
     * @param capacity requests in flight at most (running + queued), {@code >= maxSequences}
     */
    public ContinuousBatchingEngine(Qwen2Model model, int maxSequences, int capacity) {
        if (maxSequences < 1 || capacity < maxSequences) {
            throw new IllegalArgumentException(
                    "need 1 <= maxSequences <= capacity, got " + maxSequences + " and " + capacity);
        }
        this.model = model;
        this.maxSequences = maxSequences;
        this.capacity = capacity;
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
                while (!closed && queue.isEmpty() && running.isEmpty()) {
                    work.awaitUninterruptibly();
                }
                if (closed) {
                    cancel(running);
                    cancel(new ArrayList<>(queue));
                    queue.clear();
                    return;
                }
                // admit between steps, oldest first
                while (running.size() < maxSequences && !queue.isEmpty()) {
                    Sequence s = queue.poll();
                    s.admittedAt = System.nanoTime();
                    running.add(s);
                }
            } finally {
                lock.unlock();
            }
            step(running);
        }
    }

    private void step(List<Sequence> running) {
        steps++;
        for (Iterator<Sequence> it = running.iterator(); it.hasNext(); ) {
            Sequence s = it.next();
            boolean done;
            try {
                done = advance(s);
            } catch (RuntimeException e) {
                finish(s, null, e);
                done = true;
            }
            if (done) {
                it.remove();
                if (s.cache != null) {
                    s.cache.clear();
                    freeCaches.push(s.cache);
                    s.cache = null;
                }
            }
        }
    }

    /** One forward pass of {@code s}; returns true when it finished (and was completed). */
    private boolean advance(Sequence s) {
        SamplingParams p = s.request.params();
        int vocab = model.config().vocabSize();
        float[] logits;
        if (s.cache == null) {
            // prefill
            int[] prompt = s.request.promptIds();
            if (p.maxNewTokens() == 0) {
                finish(s, StopReason.MAX_TOKENS, null);
                return true;
            }
            s.cache = freeCaches.isEmpty() ? model.newCache(prompt.length + p.maxNewTokens()) : freeCaches.pop();
            long t0 = System.nanoTime();
            logits = model.forward(s.cache, prompt, 0, prompt.length);
            s.prefillNanos = System.nanoTime() - t0;
            s.decodeStart = System.nanoTime();
        } else {
            s.one[0] = s.ids[s.produced - 1];
            logits = model.forward(s.cache, s.one, 0, 1);
        }
        int next = s.sampler.sample(logits, vocab);
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

    private void finish(Sequence s, StopReason reason, Throwable failure) {
        lock.lock();
        try {
            inFlight--;
        } finally {
            lock.unlock();
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

        Sequence(GenerationRequest request) {
            this.request = request;
            this.sampler = new Sampler(request.params());
            this.ids = new int[Math.max(1, request.params().maxNewTokens())];
        }
    }
}
