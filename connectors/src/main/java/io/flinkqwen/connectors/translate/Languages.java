/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.connectors.translate;

import io.flinkqwen.operators.inference.Task;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import org.apache.flink.annotation.PublicEvolving;

/**
 * The languages Qwen2 was trained and evaluated on (the report's ~30), by ISO 639-1 code and by
 * English name. {@code Task.translate} takes the code; this resolves what users write: {@code de},
 * {@code DE}, {@code German}, {@code german}, a region tag such as {@code pt-BR}, and a few common
 * other names ({@code Farsi}, {@code Filipino}, {@code Mandarin}).
 *
 * <p>The code list is {@link Task#languages()}, the one {@code Task.translate} accepts.
 */
@PublicEvolving
public final class Languages {

    /** Code to English name, sorted by code. */
    public static final Map<String, String> BY_CODE = Task.languages();

    /** Lower-case names (English names and a few others) to codes. */
    private static final Map<String, String> BY_NAME;

    static {
        Map<String, String> names = new LinkedHashMap<>();
        BY_CODE.forEach((code, name) -> names.put(name.toLowerCase(Locale.ROOT), code));
        names.put("farsi", "fa");
        names.put("filipino", "tl");
        names.put("mandarin", "zh");
        names.put("myanmar", "my");
        names.put("bangla", "bn");
        names.put("malaysian", "ms");
        names.put("iw", "he"); // the pre-1989 ISO code, still sent by Java's Locale on old JDKs
        names.put("in", "id"); // likewise
        BY_NAME = Collections.unmodifiableMap(names);
    }

    private Languages() {}

    /**
     * The ISO 639-1 code of {@code codeOrName}, or empty when it is not one of the languages.
     * Case and surrounding blanks do not matter; a region or script tag after {@code -} or
     * {@code _} is ignored ({@code zh-Hans}, {@code pt_BR}).
     */
    public static Optional<String> code(String codeOrName) {
        if (codeOrName == null) {
            return Optional.empty();
        }
        String s = codeOrName.trim().toLowerCase(Locale.ROOT);
        if (BY_CODE.containsKey(s)) {
            return Optional.of(s);
        }
        String byName = BY_NAME.get(s);
        if (byName != null) {
            return Optional.of(byName);
        }
        int sep = Math.max(s.indexOf('-'), s.indexOf('_'));
        if (sep == 2 && BY_CODE.containsKey(s.substring(0, 2))) {
            return Optional.of(s.substring(0, 2));
        }
        return Optional.empty();
    }

    /**
     * Like {@link #code} but fails with a message naming the value and the accepted codes.
     *
     * @param what what the value is, for the message (e.g. {@code "target_lang"}, {@code "--to"})
     */
    public static String require(String codeOrName, String what) {
        return code(codeOrName).orElseThrow(() -> new IllegalArgumentException(unknown(codeOrName, what)));
    }

    /** The message for a language that is not one of the list. */
    public static String unknown(String codeOrName, String what) {
        return "unknown language '" + codeOrName + "' in " + what + ": use an ISO 639-1 code or English name of "
                + String.join(", ", BY_CODE.keySet());
    }

    /** The English name of a code from {@link #BY_CODE}. */
    public static String name(String code) {
        String n = BY_CODE.get(code);
        if (n == null) {
            throw new IllegalArgumentException(unknown(code, "Languages.name"));
        }
        return n;
    }
}
