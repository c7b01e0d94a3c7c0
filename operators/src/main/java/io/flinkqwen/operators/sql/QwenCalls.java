/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.sql;

import io.flinkqwen.engine.generate.SamplingParams;
import io.flinkqwen.engine.serve.GenerationRequest;
import io.flinkqwen.engine.serve.GenerationResult;
import io.flinkqwen.engine.tokenizer.ChatMl;
import java.util.List;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.metrics.SimpleCounter;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What a SQL function or ML_PREDICT model instance does with one call: encode the conversation,
 * hand it to the shared engine, decode the answer. Holds one {@link SharedEngines.Lease}.
 */
final class QwenCalls implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(QwenCalls.class);

    private final String owner;
    private final SharedEngines.Lease lease;
    private final int maxPositions;
    private final String idPrefix;
    private final AtomicLong nextId = new AtomicLong();
    private final Counter requests;
    private final Counter requestsFailed;
    private final Counter tokensOut;
    private final Counter invalidInputs;
    private final OnInvalidInput onInvalidInput;

    /**
     * @param owner the function's or model's name, the first word of every error message
     * @param idPrefix makes request ids unique among the holders of one engine (e.g. the subtask)
     * @param metrics where {@code requests}, {@code requestsFailed}, {@code invalidInputs} and
     *     {@code tokensOut} count; null: not reported
     * @param onInvalidInput what a call with invalid input gives
     */
    QwenCalls(String owner, EngineSpec spec, String idPrefix, MetricGroup metrics, OnInvalidInput onInvalidInput) {
        this.owner = owner;
        this.onInvalidInput = onInvalidInput;
        this.idPrefix = idPrefix;
        try {
            this.lease = SharedEngines.acquire(spec);
        } catch (RuntimeException e) {
            throw new IllegalArgumentException(owner + ": cannot load the model '" + spec.model() + "': " + e.getMessage(), e);
        }
        this.maxPositions = lease.model().config().maxPositionEmbeddings();
        this.requests = metrics == null ? new SimpleCounter() : metrics.counter("requests");
        this.requestsFailed = metrics == null ? new SimpleCounter() : metrics.counter("requestsFailed");
        this.tokensOut = metrics == null ? new SimpleCounter() : metrics.counter("tokensOut");
        this.invalidInputs = metrics == null ? new SimpleCounter() : metrics.counter("invalidInputs");
    }

    /**
     * The answer to a call whose input is invalid ({@code reason} names the function and the
     * value): null, counted and logged, or, with {@link OnInvalidInput#FAIL}, {@code reason} thrown.
     */
    String invalidInput(IllegalArgumentException reason) {
        if (onInvalidInput == OnInvalidInput.FAIL) {
            throw reason;
        }
        invalidInputs.inc();
        long n = invalidInputs.getCount();
        if (n <= 10 || n % 1000 == 0) {
            LOG.warn("{} (invalid input #{}; the call answers NULL, as on-invalid-input = NULL says)", reason.getMessage(), n);
        }
        return null;
    }

    /** The stop tokens of the model, for building {@link SamplingParams}. */
    int[] stopTokens() {
        return lease.stopTokens();
    }

    /** Greedy decoding of at most {@code maxNewTokens}. */
    SamplingParams greedy(int maxNewTokens) {
        return SamplingParams.greedy(maxNewTokens, lease.stopTokens());
    }

    /** Sampling at {@code temperature} (0: greedy) with {@code seed}, at most {@code maxNewTokens}. */
    SamplingParams sampling(double temperature, long seed, int maxNewTokens) {
        return new SamplingParams((float) temperature, 0, 1f, seed, maxNewTokens, lease.stopTokens());
    }

    /**
     * The model's answer to {@code conversation} (with the generation prompt appended).
     *
     * @return a future of the decoded answer; it fails with a message starting with the owner's
     *     name if the prompt does not fit the model's context or the engine failed the request
     */
    CompletableFuture<String> answer(List<ChatMl.Message> conversation, SamplingParams params) {
        return call(conversation, params).answer();
    }

    /** A call on its way: the request (null if it was refused before the engine) and its answer. */
    private record Call(GenerationRequest request, CompletableFuture<String> answer) {}

    private Call call(List<ChatMl.Message> conversation, SamplingParams params) {
        requests.inc();
        int[] prompt = lease.chatMl().encode(conversation, true);
        if (prompt.length >= maxPositions) {
            IllegalArgumentException reason = new IllegalArgumentException(owner + ": the prompt is "
                    + prompt.length + " tokens, the model has " + maxPositions + " positions: shorten the text");
            if (onInvalidInput == OnInvalidInput.FAIL) {
                requestsFailed.inc();
                return new Call(null, CompletableFuture.failedFuture(reason));
            }
            return new Call(null, CompletableFuture.completedFuture(invalidInput(reason)));
        }
        GenerationRequest request = new GenerationRequest(idPrefix + "-" + nextId.getAndIncrement(), prompt, params);
        return new Call(request, lease.submit(request).handle((GenerationResult r, Throwable failure) -> {
            if (failure != null) {
                requestsFailed.inc();
                Throwable cause = failure instanceof CompletionException && failure.getCause() != null ? failure.getCause() : failure;
                throw new CompletionException(new IllegalStateException(
                        owner + ": request " + request.id() + " failed in the engine: " + cause.getMessage(), cause));
            }
            int[] ids = r.ids();
            tokensOut.inc(ids.length);
            return lease.model().tokenizer().decode(ids);
        }));
    }

    /** {@link #answer} on the caller's thread; interrupting the caller cancels the request. */
    String answerBlocking(List<ChatMl.Message> conversation, SamplingParams params) {
        Call c = call(conversation, params);
        try {
            return c.answer().get();
        } catch (InterruptedException e) {
            if (c.request() != null) {
                lease.cancel(c.request()); // the engine stops decoding it before its next step
            }
            Thread.currentThread().interrupt();
            throw new CancellationException(owner + ": interrupted while waiting for the model");
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof RuntimeException re) {
                throw re;
            }
            throw new IllegalStateException(owner + ": " + cause.getMessage(), cause);
        }
    }

    @Override
    public void close() {
        lease.close();
    }
}
