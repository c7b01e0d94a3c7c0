/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.inference;

import java.io.Serializable;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import org.apache.flink.annotation.PublicEvolving;

/**
 * What the model does with each event: it decides the system turn. Every event is answered
 * (summaries every N events or T of time are not implemented yet).
 */
@PublicEvolving
public final class Task implements Serializable {

    private static final long serialVersionUID = 1L;

    /** ISO 639-1 codes of the languages Qwen2 was trained on (the report's ~30), with their English names. */
    static final Map<String, String> LANGUAGES = new TreeMap<>(Map.ofEntries(
            Map.entry("ar", "Arabic"), Map.entry("bn", "Bengali"), Map.entry("cs", "Czech"), Map.entry("de", "German"),
            Map.entry("en", "English"), Map.entry("es", "Spanish"), Map.entry("fa", "Persian"), Map.entry("fr", "French"),
            Map.entry("he", "Hebrew"), Map.entry("hi", "Hindi"), Map.entry("id", "Indonesian"), Map.entry("it", "Italian"),
            Map.entry("ja", "Japanese"), Map.entry("km", "Khmer"), Map.entry("ko", "Korean"), Map.entry("lo", "Lao"),
            Map.entry("ms", "Malay"), Map.entry("my", "Burmese"), Map.entry("nl", "Dutch"), Map.entry("pl", "Polish"),
            Map.entry("pt", "Portuguese"), Map.entry("ru", "Russian"), Map.entry("th", "Thai"), Map.entry("tl", "Tagalog"),
            Map.entry("tr", "Turkish"), Map.entry("uk", "Ukrainian"), Map.entry("ur", "Urdu"), Map.entry("vi", "Vietnamese"),
            Map.entry("zh", "Chinese")));

    private final String name;
    private final String systemPrompt;

    private Task(String name, String systemPrompt) {
        this.name = name;
        this.systemPrompt = systemPrompt;
    }

    /** Continue each key's conversation under {@code systemPrompt}. */
    public static Task generate(String systemPrompt) {
        if (systemPrompt == null || systemPrompt.isBlank()) {
            throw new IllegalArgumentException(
                    "the system prompt is empty: pass the assistant's instructions to Task.generate(..), "
                            + "or use Task.generate() for the default");
        }
        return new Task("generate", systemPrompt);
    }

    /** Continue each key's conversation under ChatML's default system prompt. */
    public static Task generate() {
        return generate(io.flinkqwen.engine.tokenizer.ChatMl.DEFAULT_SYSTEM_MESSAGE);
    }

    /**
     * Translate each event's text into the language {@code code} (ISO 639-1, e.g. {@code "de"}).
     *
     * @throws IllegalArgumentException naming the known codes if {@code code} is not one
     */
    public static Task translate(String code) {
        String c = code == null ? "" : code.trim().toLowerCase(Locale.ROOT);
        String language = LANGUAGES.get(c);
        if (language == null) {
            throw new IllegalArgumentException("unknown language code '" + code + "' for Task.translate: use one of "
                    + String.join(", ", LANGUAGES.keySet()));
        }
        return new Task("translate-" + c, "Translate every user message into " + language
                + ". Answer with the translation only, nothing else.");
    }

    public String name() {
        return name;
    }

    /** The system turn every key's history starts with. */
    public String systemPrompt() {
        return systemPrompt;
    }

    @Override
    public String toString() {
        return name;
    }
}
