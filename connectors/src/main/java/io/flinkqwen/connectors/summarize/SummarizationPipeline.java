/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.connectors.summarize;

import io.flinkqwen.connectors.format.DeadLetter;
import io.flinkqwen.connectors.format.Decoding;
import io.flinkqwen.connectors.format.LogEvent;
import io.flinkqwen.operators.inference.InferenceEvent;
import io.flinkqwen.operators.inference.InferenceResult;
import io.flinkqwen.operators.inference.QwenInference;
import io.flinkqwen.operators.inference.RejectedEvent;
import io.flinkqwen.operators.inference.Task;
import java.time.Instant;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.types.Either;

/**
 * Decoded log events to rolling summaries per log source: each source is a key of the
 * long-context operator, whose {@link Task#summarize} task collects the source's lines and, at
 * each trigger (N lines, the end of a period), asks the model for the next summary with the
 * previous ones in its context. Malformed events and what the operator rejects (a line too long
 * for the context) are dead letters.
 *
 * <p>Each line reaches the model as {@code <ISO-8601 time> <level> <message>} (see {@link
 * #line}); the message is data, tokenized with special tokens off.
 */
@PublicEvolving
public final class SummarizationPipeline {

    /** The operator's uid and name: savepoints restore its state (each source's history) by it. */
    public static final String OPERATOR_ID = "summarize";

    private SummarizationPipeline() {}

    /**
     * What {@link #apply} returns.
     *
     * @param results one per summary, keyed by the log source, id {@code <source>/summary-<n>}
     * @param deadLetters one per event not summarized, with the reason
     */
    public record Result(DataStream<InferenceResult> results, DataStream<DeadLetter> deadLetters) {}

    /**
     * @param decoded what a source with {@code LogEventFormat} emits
     * @param watermarks for a task with an event-time trigger: timestamps from {@link
     *     LogEvent#tsMillis()} and the watermarks that end its periods; null for none (count or
     *     processing-time triggers)
     * @param inference the operator settings (model, batch, context) with a {@link
     *     Task#summarize} task; its name is set here. Used on the client only, never serialized
     * @throws IllegalArgumentException if the builder's task is not a summary task
     */
    public static Result apply(DataStream<Either<DeadLetter, LogEvent>> decoded, WatermarkStrategy<LogEvent> watermarks,
            QwenInference.Builder inference) {
        QwenInference operator = inference.name(OPERATOR_ID).build();
        if (operator.task().summaries() == null) {
            throw new IllegalArgumentException("task " + operator.task() + " is not a summary task: pass "
                    + "task(Task.summarize(everyEvents, every, timeDomain)) to the builder");
        }
        SingleOutputStreamOperator<LogEvent> events = Decoding.split(decoded, TypeInformation.of(LogEvent.class));
        DataStream<LogEvent> timed = watermarks == null
                ? events
                : events.assignTimestampsAndWatermarks(watermarks).name("log-event-time");
        DataStream<InferenceEvent> turns = timed
                .map(SummarizationPipeline::event)
                .returns(TypeInformation.of(InferenceEvent.class))
                .name("log-lines");
        QwenInference.Result out = operator.apply(turns);
        out.results().uid(OPERATOR_ID);
        DataStream<DeadLetter> dead = events.getSideOutput(Decoding.DEAD_LETTERS)
                .union(out.rejected()
                        .map(SummarizationPipeline::deadLetter)
                        .returns(TypeInformation.of(DeadLetter.class))
                        .name("rejected-lines"));
        return new Result(out.results(), dead);
    }

    /** The operator's event for one log line: key = source, id = {@code source@time}. */
    static InferenceEvent event(LogEvent e) {
        return new InferenceEvent(e.source(), e.source() + "@" + Instant.ofEpochMilli(e.tsMillis()), line(e),
                e.tsMillis());
    }

    /** A log line as the model reads it: {@code 2026-01-01T00:00:05Z WARN disk 91% full}. */
    public static String line(LogEvent e) {
        String time = Instant.ofEpochMilli(e.tsMillis()).toString();
        return e.level().isEmpty() ? time + " " + e.message() : time + " " + e.level() + " " + e.message();
    }

    static DeadLetter deadLetter(RejectedEvent r) {
        return DeadLetter.ofText(r.event().requestId() + " (source " + r.event().key() + ")", r.reason(),
                r.event().text());
    }
}
