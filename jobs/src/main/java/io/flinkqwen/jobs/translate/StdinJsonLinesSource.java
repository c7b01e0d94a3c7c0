/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.jobs.translate;

import io.flinkqwen.connectors.format.DeadLetter;
import io.flinkqwen.connectors.format.RecordDecoder;
import io.flinkqwen.connectors.lines.JsonLinesFormat;
import org.apache.flink.types.Either;

/**
 * JSON lines from this JVM's standard input, for {@code --input -} on the embedded MiniCluster
 * (on a cluster the task manager's stdin is not the user's). Not replayable: a restart after a
 * failure cannot read lines again, so checkpoints do not make stdin input exactly-once.
 */
// Flink 2.2 has no non-legacy source for an unsplittable, unbounded stream such as stdin
@SuppressWarnings("deprecation")
public final class StdinJsonLinesSource<T>
        implements org.apache.flink.streaming.api.functions.source.legacy.SourceFunction<Either<DeadLetter, T>> {

    private static final long serialVersionUID = 1L;

    private final RecordDecoder<T> decoder;
    private final int maxLineBytes;
    private volatile boolean running = true;

    public StdinJsonLinesSource(RecordDecoder<T> decoder, int maxLineBytes) {
        this.decoder = decoder;
        this.maxLineBytes = maxLineBytes;
    }

    @Override
    public void run(SourceContext<Either<DeadLetter, T>> ctx) throws Exception {
        // System.in is not closed: the reader wraps it, and closing would end the JVM's stdin
        JsonLinesFormat.LineReader<T> reader = new JsonLinesFormat.LineReader<>(System.in, decoder, "stdin", maxLineBytes);
        Either<DeadLetter, T> e;
        while (running && (e = reader.read()) != null) {
            synchronized (ctx.getCheckpointLock()) {
                ctx.collect(e);
            }
        }
    }

    @Override
    public void cancel() {
        running = false;
    }
}
