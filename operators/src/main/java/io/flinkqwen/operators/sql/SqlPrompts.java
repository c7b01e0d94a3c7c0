/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.sql;

import io.flinkqwen.engine.tokenizer.ChatMl;
import io.flinkqwen.operators.inference.Task;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.apache.flink.annotation.PublicEvolving;

/**
 * The ChatML conversations the SQL functions send: one system turn and the SQL argument as the
 * user turn. The argument is data: {@link ChatMl#encode} tokenizes it with special-token parsing
 * off, so text containing {@code <|im_end|>} cannot forge a turn.
 */
@PublicEvolving
public final class SqlPrompts {

    /** The system turn of {@code QWEN_SUMMARIZE}. */
    public static final String SUMMARIZE_SYSTEM_PROMPT =
            "You summarize text. Answer with a short, factual summary of the user's message, nothing else.";

    private SqlPrompts() {}

    /** {@code QWEN_GENERATE(prompt)}: the prompt as the user turn under {@code systemPrompt}. */
    public static List<ChatMl.Message> generate(String systemPrompt, String prompt) {
        return List.of(ChatMl.Message.system(systemPrompt), ChatMl.Message.user(prompt));
    }

    /** {@code QWEN_SUMMARIZE(text)}. */
    public static List<ChatMl.Message> summarize(String text) {
        return List.of(ChatMl.Message.system(SUMMARIZE_SYSTEM_PROMPT), ChatMl.Message.user(text));
    }

    /**
     * {@code QWEN_TRANSLATE(text, target_lang)}: the translation task's system turn, the same as
     * the DataStream job's ({@link Task#translate}).
     *
     * @throws IllegalArgumentException naming {@code targetLanguage} if it is not a known language
     */
    public static List<ChatMl.Message> translate(String text, String targetLanguage) {
        String system = Task.translate(languageCode(targetLanguage)).systemPrompt();
        return List.of(ChatMl.Message.system(system), ChatMl.Message.user(text));
    }

    /**
     * The ISO 639-1 code of a language given by code ({@code "de"}, any case) or English name
     * ({@code "German"}, any case).
     *
     * @throws IllegalArgumentException naming the value and the accepted codes
     */
    public static String languageCode(String codeOrName) {
        String v = codeOrName == null ? "" : codeOrName.trim().toLowerCase(Locale.ROOT);
        Map<String, String> languages = Task.languages();
        if (languages.containsKey(v)) {
            return v;
        }
        for (Map.Entry<String, String> e : languages.entrySet()) {
            if (e.getValue().toLowerCase(Locale.ROOT).equals(v)) {
                return e.getKey();
            }
        }
        throw new IllegalArgumentException("unknown target language '" + codeOrName
                + "': use an ISO 639-1 code or English name of one of " + String.join(", ", languages.keySet()));
    }
}
