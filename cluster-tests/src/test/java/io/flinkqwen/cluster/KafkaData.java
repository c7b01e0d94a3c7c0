/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.cluster;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.flinkqwen.connectors.kafka.EmbeddedKafkaBroker;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/** Inputs written to and results read from the test broker, as JSON. */
final class KafkaData {

    static final ObjectMapper JSON = new ObjectMapper();

    private KafkaData() {}

    /** One record to write: its key (the partition follows it) and value bytes. */
    record Input(String key, byte[] value) {}

    /** A log event of the summarization job. */
    static Input logEvent(String source, long ts, String level, String message) {
        ObjectNode o = JSON.createObjectNode();
        o.put("source", source);
        o.put("ts", ts);
        o.put("level", level);
        o.put("message", message);
        return new Input(source, bytes(o));
    }

    /** A request of the translation job. */
    static Input translation(String id, String key, String text, String lang) {
        ObjectNode o = JSON.createObjectNode();
        o.put("id", id);
        o.put("key", key);
        o.put("text", text);
        o.put("target_lang", lang);
        return new Input(key, bytes(o));
    }

    static byte[] bytes(JsonNode o) {
        try {
            return JSON.writeValueAsBytes(o);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Writes the records in order (one producer, acks=all, idempotent), and waits for them. */
    static void produce(EmbeddedKafkaBroker broker, String topic, List<Input> records) throws Exception {
        Map<String, Object> c = Map.of(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, broker.bootstrapServers(),
                ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class,
                ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class,
                ProducerConfig.ACKS_CONFIG, "all",
                ProducerConfig.MAX_REQUEST_SIZE_CONFIG, 4 << 20);
        try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(c)) {
            for (Input r : records) {
                p.send(new ProducerRecord<>(topic, r.key() == null ? null : r.key().getBytes(StandardCharsets.UTF_8),
                        r.value()));
            }
            p.flush();
        }
    }

    /** Every committed record of {@code topic}, parsed; by {@code id}, failing on none. */
    static List<JsonNode> committed(EmbeddedKafkaBroker broker, String topic) throws IOException {
        List<JsonNode> out = new ArrayList<>();
        for (ConsumerRecord<byte[], byte[]> r : broker.readCommitted(topic)) {
            out.add(JSON.readTree(r.value()));
        }
        return out;
    }

    /** {@code id -> number of committed results with it}, in first-seen order. */
    static Map<String, Integer> countById(List<JsonNode> results) {
        Map<String, Integer> n = new LinkedHashMap<>();
        for (JsonNode r : results) {
            n.merge(r.path("id").asText(), 1, Integer::sum);
        }
        return n;
    }
}
