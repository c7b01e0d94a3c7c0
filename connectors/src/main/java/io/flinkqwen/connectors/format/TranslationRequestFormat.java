/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.connectors.format;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.flinkqwen.connectors.translate.Languages;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.api.common.typeinfo.TypeInformation;

/**
 * JSON translation requests, {@code {id, key, text, target_lang, source_lang?}}. Languages are
 * resolved to ISO 639-1 codes by {@link Languages}; an unknown one makes the record malformed.
 */
@PublicEvolving
public final class TranslationRequestFormat implements RecordDecoder<TranslationRequest> {

    private static final long serialVersionUID = 1L;

    private final int maxRecordBytes;
    private final String defaultTargetLang;

    /**
     * @param maxRecordBytes larger records are malformed
     * @param defaultTargetLang the target of requests without {@code target_lang} (a code or
     *     name); null: {@code target_lang} is required
     */
    public TranslationRequestFormat(int maxRecordBytes, String defaultTargetLang) {
        if (maxRecordBytes < 1) {
            throw new IllegalArgumentException("maxRecordBytes is " + maxRecordBytes + ": pass at least 1");
        }
        this.maxRecordBytes = maxRecordBytes;
        this.defaultTargetLang = defaultTargetLang == null ? null : Languages.require(defaultTargetLang, "the default target language");
    }

    /** {@link JsonRecords#DEFAULT_MAX_RECORD_BYTES}, {@code target_lang} required. */
    public TranslationRequestFormat() {
        this(JsonRecords.DEFAULT_MAX_RECORD_BYTES, null);
    }

    @Override
    public TranslationRequest decode(byte[] bytes) throws MalformedRecordException {
        ObjectNode o = JsonRecords.parseObject(bytes, maxRecordBytes);
        String id = JsonRecords.requiredText(o, "id");
        String key = JsonRecords.requiredText(o, "key");
        String text = JsonRecords.requiredText(o, "text");
        String target = JsonRecords.optionalText(o, "target_lang");
        String targetCode;
        if (target == null) {
            if (defaultTargetLang == null) {
                throw new MalformedRecordException("missing field 'target_lang'");
            }
            targetCode = defaultTargetLang;
        } else {
            targetCode = Languages.code(target)
                    .orElseThrow(() -> new MalformedRecordException(Languages.unknown(target, "target_lang")));
        }
        String source = JsonRecords.optionalText(o, "source_lang");
        String sourceCode = null;
        if (source != null) {
            sourceCode = Languages.code(source)
                    .orElseThrow(() -> new MalformedRecordException(Languages.unknown(source, "source_lang")));
        }
        return new TranslationRequest(id, key, text, targetCode, sourceCode);
    }

    /** The request as JSON, languages as codes; {@code source_lang} left out when null. */
    public static byte[] encode(TranslationRequest r) {
        ObjectNode o = JsonRecords.MAPPER.createObjectNode();
        o.put("id", r.id());
        o.put("key", r.key());
        o.put("text", r.text());
        o.put("target_lang", r.targetLang());
        if (r.sourceLang() != null) {
            o.put("source_lang", r.sourceLang());
        }
        return JsonRecords.write(o);
    }

    @Override
    public TypeInformation<TranslationRequest> producedType() {
        return TypeInformation.of(TranslationRequest.class);
    }
}
