/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.connectors.kafka;

import io.flinkqwen.connectors.format.DeadLetter;
import io.flinkqwen.connectors.format.RecordDecoder;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.api.common.serialization.SerializationSchema;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.KafkaSourceBuilder;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.types.Either;
import org.apache.flink.util.function.SerializableFunction;

/**
 * Kafka sources and sinks of this project's JSON events, with the settings exactly-once needs
 * set in one place: sources read committed records only, result sinks write in transactions
 * (committed at each checkpoint) unless told otherwise.
 *
 * <p>Exactly-once needs checkpointing: without it an {@link DeliveryGuarantee#EXACTLY_ONCE} sink
 * commits only when a bounded job ends. Transactions time out after {@link #TRANSACTION_TIMEOUT}
 * unless committed, below the broker's default {@code transaction.max.timeout.ms} (15 min); the
 * checkpoint interval plus the longest restart must stay below it.
 */
@PublicEvolving
public final class KafkaIo {

    /** The producers' {@code transaction.timeout.ms}. */
    public static final Duration TRANSACTION_TIMEOUT = Duration.ofMinutes(10);

    private KafkaIo() {}

    /**
     * A source of decoded events from {@code topic}, reading only committed records
     * ({@code isolation.level=read_committed}), from the group's committed offsets or else the
     * earliest.
     *
     * @param bounded stop at the offsets that are the latest when the job starts (tests, backfills)
     */
    // the connector's committedOffsets(..) takes Kafka's OffsetResetStrategy, deprecated in Kafka 4
    @SuppressWarnings("deprecation")
    public static <T> KafkaSource<Either<DeadLetter, T>> source(
            String bootstrapServers, String topic, String groupId, RecordDecoder<T> decoder, boolean bounded) {
        require(bootstrapServers, "bootstrapServers", "pass host:port[,host:port] of the Kafka brokers (--kafka-bootstrap)");
        require(topic, "topic", "name the topic to read (--input-topic)");
        require(groupId, "groupId", "name the consumer group whose offsets the source commits");
        KafkaSourceBuilder<Either<DeadLetter, T>> b = KafkaSource.<Either<DeadLetter, T>>builder()
                .setBootstrapServers(bootstrapServers)
                .setTopics(topic)
                .setGroupId(groupId)
                .setStartingOffsets(OffsetsInitializer.committedOffsets(
                        org.apache.kafka.clients.consumer.OffsetResetStrategy.EARLIEST))
                .setDeserializer(new DecodingKafkaDeserializationSchema<>(decoder))
                // records of aborted transactions (a failed upstream Flink job) are never read
                .setProperty("isolation.level", "read_committed");
        if (bounded) {
            b.setBounded(OffsetsInitializer.latest());
        }
        return b.build();
    }

    /**
     * A sink of {@code value}-serialized records to {@code topic}, keyed by {@code key} (records
     * of one key land in one partition, in order).
     *
     * @param guarantee {@link DeliveryGuarantee#EXACTLY_ONCE} for results (the default of the jobs)
     * @param transactionalIdPrefix unique per sink and job on the cluster: two sinks with one prefix
     *     abort each other's transactions; required for exactly-once
     */
    public static <T> KafkaSink<T> sink(String bootstrapServers, String topic, SerializationSchema<T> value,
            SerializableFunction<T, String> key, DeliveryGuarantee guarantee, String transactionalIdPrefix) {
        return sink(bootstrapServers, topic, value, key, guarantee, transactionalIdPrefix, Map.of());
    }

    /**
     * {@link #sink} with Kafka producer settings of the user's ({@code compression.type}, {@code
     * buffer.memory}, ...), applied after the sink's own, so they override them.
     */
    public static <T> KafkaSink<T> sink(String bootstrapServers, String topic, SerializationSchema<T> value,
            SerializableFunction<T, String> key, DeliveryGuarantee guarantee, String transactionalIdPrefix,
            Map<String, String> producerProperties) {
        require(bootstrapServers, "bootstrapServers", "pass host:port[,host:port] of the Kafka brokers (--kafka-bootstrap)");
        require(topic, "topic", "name the topic to write (--output-topic)");
        if (guarantee == DeliveryGuarantee.EXACTLY_ONCE) {
            require(transactionalIdPrefix, "transactionalIdPrefix",
                    "exactly-once writes in transactions named after a prefix unique to this sink on the cluster");
        }
        KafkaRecordSerializationSchema<T> records = KafkaRecordSerializationSchema.<T>builder()
                .setTopic(topic)
                .setKeySerializationSchema(new KeyBytes<>(key))
                .setValueSerializationSchema(value)
                .build();
        var b = KafkaSink.<T>builder()
                .setBootstrapServers(bootstrapServers)
                .setRecordSerializer(records)
                .setDeliveryGuarantee(guarantee)
                .setProperty("transaction.timeout.ms", Long.toString(TRANSACTION_TIMEOUT.toMillis()));
        if (transactionalIdPrefix != null) {
            b.setTransactionalIdPrefix(transactionalIdPrefix);
        }
        producerProperties.forEach(b::setProperty);
        return b.build();
    }

    private static void require(String value, String name, String fix) {
        if (value == null || value.isBlank()) {
            throw new IllegalArgumentException(name + " is not set: " + fix);
        }
    }

    /** The record key as UTF-8; null keys give null (Kafka then spreads records round-robin). */
    private static final class KeyBytes<T> implements SerializationSchema<T> {
        private static final long serialVersionUID = 1L;
        private final SerializableFunction<T, String> key;

        KeyBytes(SerializableFunction<T, String> key) {
            this.key = key;
        }

        @Override
        public byte[] serialize(T element) {
            String k = key.apply(element);
            return k == null ? null : k.getBytes(StandardCharsets.UTF_8);
        }
    }
}
