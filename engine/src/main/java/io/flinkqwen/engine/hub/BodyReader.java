/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.hub;

import java.io.IOException;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Flow;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * A response body read by pulling buffers with a timeout. {@code BodyHandlers.ofInputStream()}
 * has no read timeout: a server that stops sending in the middle of a file would block the
 * caller forever, and closing that stream from another thread does not wake a blocked read. Here
 * the reader waits on a queue with {@code poll(timeout)} and cancels the exchange when it runs
 * out. At most {@value #IN_FLIGHT} lists of buffers are requested ahead, so a slow disk slows the
 * socket instead of filling the heap.
 */
final class BodyReader implements HttpResponse.BodySubscriber<BodyReader> {

    private static final int IN_FLIGHT = 4;
    private static final Object END = new Object();

    private final BlockingQueue<Object> queue = new LinkedBlockingQueue<>();
    private final CompletableFuture<BodyReader> body = CompletableFuture.completedFuture(this);
    private Flow.Subscription subscription;
    private boolean cancelled;
    private boolean ended;
    private Iterator<ByteBuffer> current;

    private static final class Failure {
        final Throwable cause;

        Failure(Throwable cause) {
            this.cause = cause;
        }
    }

    @Override
    public synchronized void onSubscribe(Flow.Subscription subscription) {
        this.subscription = subscription;
        if (cancelled) {
            subscription.cancel();
        } else {
            subscription.request(IN_FLIGHT);
        }
    }

    @Override
    public void onNext(List<ByteBuffer> item) {
        queue.add(item);
    }

    @Override
    public void onError(Throwable throwable) {
        queue.add(new Failure(throwable));
    }

    @Override
    public void onComplete() {
        queue.add(END);
    }

    @Override
    public CompletionStage<BodyReader> getBody() {
        return body;
    }

    /**
     * The next non-empty buffer of the body, or null at its end.
     *
     * @throws HttpTimeoutException if nothing arrives for {@code timeout}; the exchange is
     *     cancelled
     * @throws IOException if the connection failed
     */
    ByteBuffer next(Duration timeout) throws IOException, InterruptedException {
        while (true) {
            if (ended) {
                return null;
            }
            if (current != null) {
                while (current.hasNext()) {
                    ByteBuffer buffer = current.next();
                    if (buffer.hasRemaining()) {
                        return buffer;
                    }
                }
                current = null;
                request(1);
            }
            Object item = queue.poll(timeout.toNanos(), TimeUnit.NANOSECONDS);
            if (item == null) {
                cancel();
                throw new HttpTimeoutException(
                        "no data for " + timeout.toMillis() / 1000.0 + " s (HF_HUB_DOWNLOAD_TIMEOUT)");
            }
            if (item == END) {
                ended = true;
                return null;
            }
            if (item instanceof Failure) {
                Throwable cause = ((Failure) item).cause;
                throw cause instanceof IOException
                        ? (IOException) cause
                        : new IOException(cause.toString(), cause);
            }
            @SuppressWarnings("unchecked")
            List<ByteBuffer> buffers = (List<ByteBuffer>) item;
            current = buffers.iterator();
        }
    }

    /** Stops the transfer; the connection is closed, not returned to the pool half-read. */
    synchronized void cancel() {
        cancelled = true;
        if (subscription != null) {
            subscription.cancel();
        }
    }

    private synchronized void request(long n) {
        if (subscription != null && !cancelled) {
            subscription.request(n);
        }
    }
}
