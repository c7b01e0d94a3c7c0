/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.connectors.format;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.api.common.serialization.SerializationSchema;
import org.apache.flink.api.common.typeinfo.TypeInformation;

/** Dead letters as JSON: {@code {"origin","reason","payload","payload_bytes"}}. */
@PublicEvolving
public final class DeadLetterFormat implements SerializationSchema<DeadLetter>, RecordDecoder<DeadLetter> {

    private static final long serialVersionUID = 1L;

    @Override
    public byte[] serialize(DeadLetter d) {
        return JsonRecords.write(toJson(d));
    }

    public ObjectNode toJson(DeadLetter d) {
        ObjectNode o = JsonRecords.MAPPER.createObjectNode();
        o.put("origin", d.origin());
        o.put("reason", d.reason());
        o.put("payload", d.payload());
        o.put("payload_bytes", d.payloadBytes());
        return o;
    }

    @Override
    public DeadLetter decode(byte[] bytes) throws MalformedRecordException {
        ObjectNode o = JsonRecords.parseObject(bytes, Integer.MAX_VALUE);
        JsonNode size = o.get("payload_bytes");
        String payload = JsonRecords.optionalText(o, "payload");
        return new DeadLetter(JsonRecords.requiredText(o, "origin"), JsonRecords.requiredText(o, "reason"),
                payload == null ? "" : payload, size == null ? 0 : size.intValue());
    }

    @Override
    public TypeInformation<DeadLetter> producedType() {
        return TypeInformation.of(DeadLetter.class);
    }
}
