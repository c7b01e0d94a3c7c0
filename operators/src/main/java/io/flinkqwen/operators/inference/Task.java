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
 * What the model does with a key's events: answer each one ({@link #generate}, {@link
 * #translate}), or summarize them every N events or T of event or processing time ({@link
 * #summarize}). The task decides the system turn every key's history starts with.
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
    private final Summaries summaries; // null: every event is answered

    private Task(String name, String systemPrompt) {
        this(name, systemPrompt, null);
    }

    private Task(String name, String systemPrompt, Summaries summaries) {
        this.name = name;
        this.systemPrompt = systemPrompt;
        this.summaries = summaries;
    }

    /**
     * Summarize each key's events: a summary after {@code everyEvents} new events (0: never by
     * count) and at the end of every period {@code every} (aligned to the epoch; zero: never by
     * time) of {@code timeDomain} in which the key had events, whichever comes first. Each summary
     * builds on the key's history, which holds its earlier summaries; results carry the request
     * id {@code <key>/summary-<n>} and, as their timestamp, the period's end (event time), the
     * last event's time (count trigger) or the newest event's time (processing time). Events
     * that no trigger has covered when the input ends are not summarized (with event time the
     * final watermark covers them). The default prompt is {@link Summaries#DEFAULT_TEMPLATE}
     * under {@link Summaries#DEFAULT_SYSTEM_PROMPT}; change them with {@link
     * #withPromptTemplate} and {@link #withSystemPrompt}.
     *
     * @throws IllegalArgumentException naming the fix if no trigger is set, a bound is negative,
     *     or a period has no time domain
     */
    public static Task summarize(int everyEvents, java.time.Duration every, Summaries.TimeDomain timeDomain) {
        if (every == null) {
            throw new IllegalArgumentException(
                    "the summary period is null: pass Duration.ZERO for no time trigger to Task.summarize(.., every, ..)");
        }
        return new Task("summarize", Summaries.DEFAULT_SYSTEM_PROMPT,
                new Summaries(everyEvents, every.toMillis(), timeDomain, Summaries.DEFAULT_TEMPLATE));
    }

    /**
     * This summary task with another user turn: {@code template} must contain {@value
     * Summaries#EVENTS} and may contain {@value Summaries#SUMMARY} (see {@link Summaries}).
     */
    public Task withPromptTemplate(String template) {
        if (summaries == null) {
            throw new IllegalArgumentException("task " + name + " answers every event: a prompt template is for "
                    + "Task.summarize(..) only");
        }
        return new Task(name, systemPrompt,
                new Summaries(summaries.everyEvents(), summaries.everyMillis(), summaries.timeDomain(), template));
    }

    /** This task under another system prompt. */
    public Task withSystemPrompt(String prompt) {
        if (prompt == null || prompt.isBlank()) {
            throw new IllegalArgumentException("the system prompt is empty: pass the assistant's instructions");
        }
        return new Task(name, prompt, summaries);
    }

    /** The summary triggers and prompt, or null if every event is answered. */
    public Summaries summaries() {
        return summaries;
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

    /** The languages {@link #translate} accepts: ISO 639-1 code to English name, sorted by code. */
    public static Map<String, String> languages() {
        return java.util.Collections.unmodifiableMap(LANGUAGES);
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
