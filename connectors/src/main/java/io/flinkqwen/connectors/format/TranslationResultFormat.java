/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.connectors.format;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.flinkqwen.connectors.translate.TranslationResult;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.api.common.serialization.SerializationSchema;
import org.apache.flink.api.common.typeinfo.TypeInformation;

/**
 * Translation results as JSON: {@link ResultFormat}'s fields plus {@code "task": "translate"} and
 * {@code "target_lang"}.
 */
@PublicEvolving
public final class TranslationResultFormat
        implements SerializationSchema<TranslationResult>, RecordDecoder<TranslationResult> {

    private static final long serialVersionUID = 1L;

    private final ResultFormat results = new ResultFormat();

    @Override
    public byte[] serialize(TranslationResult r) {
        return JsonRecords.write(toJson(r));
    }

    public ObjectNode toJson(TranslationResult r) {
        ObjectNode o = results.toJson(r.result());
        o.put("task", "translate");
        o.put("target_lang", r.targetLang());
        return o;
    }

    @Override
    public TranslationResult decode(byte[] bytes) throws MalformedRecordException {
        ObjectNode o = JsonRecords.parseObject(bytes, Integer.MAX_VALUE);
        return new TranslationResult(results.decode(bytes), JsonRecords.requiredText(o, "target_lang"));
    }

    @Override
    public TypeInformation<TranslationResult> producedType() {
        return TypeInformation.of(TranslationResult.class);
    }
}
