/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.connectors.format;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.flinkqwen.operators.inference.InferenceResult;
import java.util.Map;
import java.util.TreeMap;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.api.common.serialization.SerializationSchema;
import org.apache.flink.api.common.typeinfo.TypeInformation;

/**
 * Results as one JSON object each:
 * {@code {"key","id","output","model","prompt_tokens","generated_tokens","latency_ms", ...extras}},
 * where the extras are constant fields of the job (e.g. {@code "task": "translate",
 * "target_lang": "de"}). Decoding reads the fixed fields and ignores the rest.
 */
@PublicEvolving
public final class ResultFormat implements SerializationSchema<InferenceResult>, RecordDecoder<InferenceResult> {

    private static final long serialVersionUID = 1L;

    private final TreeMap<String, String> extras;

    /** @param extras constant fields every result carries after the fixed ones; may be empty */
    public ResultFormat(Map<String, String> extras) {
        this.extras = new TreeMap<>(extras);
        for (String k : this.extras.keySet()) {
            if (k.equals("key") || k.equals("id") || k.equals("output") || k.equals("model") || k.equals("prompt_tokens")
                    || k.equals("generated_tokens") || k.equals("latency_ms")) {
                throw new IllegalArgumentException("extra field '" + k + "' would replace a result field");
            }
        }
    }

    public ResultFormat() {
        this(Map.of());
    }

    @Override
    public byte[] serialize(InferenceResult r) {
        return JsonRecords.write(toJson(r));
    }

    /** The JSON object {@link #serialize} writes. */
    public ObjectNode toJson(InferenceResult r) {
        ObjectNode o = JsonRecords.MAPPER.createObjectNode();
        o.put("key", r.key());
        o.put("id", r.requestId());
        o.put("output", r.outputText());
        o.put("model", r.model());
        o.put("prompt_tokens", r.promptTokens());
        o.put("generated_tokens", r.generatedTokens());
        o.put("latency_ms", r.latencyMillis());
        extras.forEach(o::put);
        return o;
    }

    @Override
    public InferenceResult decode(byte[] bytes) throws MalformedRecordException {
        ObjectNode o = JsonRecords.parseObject(bytes, Integer.MAX_VALUE);
        String output = JsonRecords.optionalText(o, "output");
        if (output == null) {
            throw new MalformedRecordException("missing field 'output'");
        }
        return new InferenceResult(JsonRecords.requiredText(o, "key"), JsonRecords.requiredText(o, "id"), output,
                (int) number(o, "prompt_tokens"), (int) number(o, "generated_tokens"), number(o, "latency_ms"),
                JsonRecords.requiredText(o, "model"));
    }

    private static long number(ObjectNode o, String field) throws MalformedRecordException {
        JsonNode n = o.get(field);
        if (n == null || !n.isIntegralNumber()) {
            throw new MalformedRecordException("field '" + field + "' must be an integer");
        }
        return n.longValue();
    }

    @Override
    public TypeInformation<InferenceResult> producedType() {
        return TypeInformation.of(InferenceResult.class);
    }
}
