/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.connectors.kafka;

import io.flinkqwen.connectors.format.DeadLetter;
import io.flinkqwen.connectors.format.Decoding;
import io.flinkqwen.connectors.format.RecordDecoder;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.types.Either;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;

/**
 * A Kafka record's value through a {@link RecordDecoder}: the event, or a dead letter whose origin
 * is {@code topic-partition@offset}. It never throws, so a bad record cannot fail the source
 * and be read again forever after each restart.
 */
@PublicEvolving
public final class DecodingKafkaDeserializationSchema<T> implements KafkaRecordDeserializationSchema<Either<DeadLetter, T>> {

    private static final long serialVersionUID = 1L;

    private final RecordDecoder<T> decoder;

    public DecodingKafkaDeserializationSchema(RecordDecoder<T> decoder) {
        this.decoder = decoder;
    }

    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<Either<DeadLetter, T>> out) {
        String origin = record.topic() + "-" + record.partition() + "@" + record.offset();
        out.collect(Decoding.decode(decoder, origin, record.value()));
    }

    @Override
    public TypeInformation<Either<DeadLetter, T>> getProducedType() {
        return Decoding.eitherType(decoder);
    }
}
