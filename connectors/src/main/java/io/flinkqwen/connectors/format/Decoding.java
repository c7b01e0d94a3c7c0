/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.connectors.format;

import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.java.typeutils.EitherTypeInfo;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.types.Either;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

/**
 * Decoding that never throws: every record becomes {@code Either.Right(event)} or
 * {@code Either.Left(deadLetter)}. Sources emit the {@code Either} (a Flink source has no side
 * output); {@link #split} then sends the events on and the dead letters to {@link #DEAD_LETTERS}.
 */
@PublicEvolving
public final class Decoding {

    /** The side output of {@link #split}. */
    public static final OutputTag<DeadLetter> DEAD_LETTERS =
            new OutputTag<>("dead-letters", TypeInformation.of(DeadLetter.class));

    private Decoding() {}

    /**
     * @param origin where the record came from (topic-partition@offset, file:line)
     * @return the event, or a dead letter with the decoder's reason; a decoder that fails with
     *     anything else than {@link MalformedRecordException} is a bug, but the record still
     *     becomes a dead letter naming the exception rather than failing the job in a loop
     */
    public static <T> Either<DeadLetter, T> decode(RecordDecoder<T> decoder, String origin, byte[] bytes) {
        try {
            return Either.Right(decoder.decode(bytes));
        } catch (MalformedRecordException e) {
            return Either.Left(DeadLetter.of(origin, e.getMessage(), bytes));
        } catch (RuntimeException e) {
            return Either.Left(DeadLetter.of(origin, "the decoder failed: " + e, bytes));
        }
    }

    /** The type of what sources with {@code decoder} emit. */
    public static <T> TypeInformation<Either<DeadLetter, T>> eitherType(RecordDecoder<T> decoder) {
        return new EitherTypeInfo<>(TypeInformation.of(DeadLetter.class), decoder.producedType());
    }

    /** The events of {@code decoded}; its dead letters are {@code result.getSideOutput(DEAD_LETTERS)}. */
    public static <T> SingleOutputStreamOperator<T> split(DataStream<Either<DeadLetter, T>> decoded, TypeInformation<T> type) {
        return decoded.process(new Split<T>(), type).name("split-dead-letters");
    }

    private static final class Split<T> extends ProcessFunction<Either<DeadLetter, T>, T> {
        private static final long serialVersionUID = 1L;

        @Override
        public void processElement(Either<DeadLetter, T> value, Context ctx, Collector<T> out) {
            if (value.isLeft()) {
                ctx.output(DEAD_LETTERS, value.left());
            } else {
                out.collect(value.right());
            }
        }
    }
}
