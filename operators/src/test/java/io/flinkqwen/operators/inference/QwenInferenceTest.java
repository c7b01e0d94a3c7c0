/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.inference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.engine.model.KvFormat;
import io.flinkqwen.engine.tokenizer.ChatMl;
import io.flinkqwen.operators.arrow.ArrowRequestBatcher;
import java.time.Duration;
import java.util.function.UnaryOperator;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.MemorySize;
import org.junit.jupiter.api.Test;

/** The builder's and the options' validation: each message names what is wrong and the fix. */
class QwenInferenceTest {

    private static QwenInference.Builder valid() {
        return QwenInference.builder().model("model.gguf");
    }

    /** Builds {@code change(valid())} and returns the message it fails with. */
    private static String failure(UnaryOperator<QwenInference.Builder> change) {
        return assertThrows(IllegalArgumentException.class, () -> change.apply(valid()).build()).getMessage();
    }

    private static void assertMentions(String message, String... parts) {
        for (String part : parts) {
            assertTrue(message.contains(part), "'" + message + "' does not mention '" + part + "'");
        }
    }

    @Test
    void builderDefaultsAreTheSettingsDefaults() {
        InferenceSettings s = valid().build().settings();
        assertEquals(InferenceSettings.of(java.nio.file.Path.of("model.gguf")), s);
    }

    @Test
    void builderRejectsMissingModelPath() {
        String m = assertThrows(IllegalArgumentException.class, () -> QwenInference.builder().build()).getMessage();
        assertMentions(m, "no model", "model(path)", "qwen.model.path");
    }

    @Test
    void builderRejectsMaxNewTokensThatFillTheContext() {
        assertMentions(failure(b -> b.contextPolicy(512, 4).maxNewTokens(512)),
                "maxNewTokens (512)", "512 context tokens", "lower maxNewTokens(n)", "contextPolicy(maxContextTokens");
        assertMentions(failure(b -> b.maxNewTokens(0)), "maxNewTokens is 0", "at least 1");
    }

    @Test
    void builderRejectsATooSmallContext() {
        assertMentions(failure(b -> b.contextPolicy(1, 0).maxNewTokens(1)), "maxContextTokens is 1", "contextPolicy");
    }

    @Test
    void builderRejectsSinkTokensThatLeaveNoRecentWindow() {
        assertMentions(failure(b -> b.contextPolicy(256, 200).maxNewTokens(56)),
                "sinkTokens (200)", "maxContextTokens - maxNewTokens = 200", "contextPolicy(.., sinkTokens)");
        assertMentions(failure(b -> b.contextPolicy(256, -1)), "sinkTokens (-1)");
    }

    @Test
    void builderRejectsCapacityBelowSequencesAndZeroThreads() {
        assertMentions(failure(b -> b.engine(8, 4, 1)), "capacity (4) is below maxSequences (8)", "at least 8");
        assertMentions(failure(b -> b.engine(0, 4, 1)), "maxSequences is 0", "engine(maxSequences");
        assertMentions(failure(b -> b.engine(1, 4, 0)), "threads is 0", "qwen.engine.threads");
    }

    @Test
    void builderRejectsImpossibleBatchBounds() {
        assertMentions(failure(b -> b.batch(0, 1024, Duration.ofMillis(5))), "maxRows is 0", "batch(maxRows");
        assertMentions(failure(b -> b.batch(4, 0, Duration.ofMillis(5))), "maxBytes is 0", "qwen.batch.max-bytes");
        assertMentions(failure(b -> b.batch(4, 1024, Duration.ofMillis(-1))), "maxDelay", "qwen.batch.max-delay");
    }

    @Test
    void builderRejectsANegativeKvBudgetAndTimeout() {
        assertMentions(failure(b -> b.kvBudgetBytes(-1)), "kvBudgetBytes is -1", "kvBudgetBytes(bytes)");
        assertMentions(failure(b -> b.requestTimeout(Duration.ofSeconds(-2))), "requestTimeout", "Duration.ZERO");
    }

    @Test
    void builderRejectsAnUnknownKvTypeNamingTheAllowedOnes() {
        assertMentions(failure(b -> b.kvType("q4")), "kvType must be one of f32, f16, q8", "got 'q4'", "kvType(..)",
                "qwen.kv-type");
    }

    @Test
    void kvTypeIsParsedInAnyCaseAndLeftToTheTaskManagerWhenUnset() {
        assertEquals(KvFormat.F16, valid().kvType(" F16 ").build().settings().kvFormat());
        assertEquals(KvFormat.Q8, valid().kvType(KvFormat.Q8).build().settings().kvFormat());
        assertEquals(null, valid().build().settings().kvFormat(), "unset: the task manager's flinkqwen.kv decides");
        Configuration c = new Configuration();
        c.set(QwenInferenceOptions.MODEL_PATH, "/models/q.gguf");
        c.set(QwenInferenceOptions.KV_TYPE, "q8");
        assertEquals(KvFormat.Q8, QwenInferenceOptions.toSettings(c).kvFormat());
        c.set(QwenInferenceOptions.KV_TYPE, "int4");
        assertMentions(assertThrows(IllegalArgumentException.class, () -> QwenInferenceOptions.toSettings(c)).getMessage(),
                "got 'int4'", "qwen.kv-type");
    }

    @Test
    void builderRejectsAMissingTask() {
        assertMentions(failure(b -> b.task(null)), "no task", "Task.generate()");
    }

    @Test
    void translateRejectsAnUnknownLanguageCodeListingTheKnownOnes() {
        String m = assertThrows(IllegalArgumentException.class, () -> Task.translate("xx")).getMessage();
        assertMentions(m, "unknown language code 'xx'", "de", "zh", "ja");
        assertTrue(Task.LANGUAGES.size() >= 29, "languages " + Task.LANGUAGES.size());
        assertEquals("translate-de", Task.translate(" DE ").name());
        assertMentions(Task.translate("de").systemPrompt(), "German");
        assertMentions(assertThrows(IllegalArgumentException.class, () -> Task.generate(" ")).getMessage(),
                "system prompt is empty");
    }

    @Test
    void builderTakesEverySetting() {
        InferenceSettings s = valid()
                .modelName("qwen-test")
                .task(Task.translate("fr"))
                .contextPolicy(1024, 8)
                .maxNewTokens(32)
                .engine(6, 12, 2)
                .batch(16, 4096, Duration.ofMillis(25))
                .kvBudgetBytes(1 << 20)
                .requestTimeout(Duration.ofSeconds(3))
                .build()
                .settings();
        assertEquals(new InferenceSettings("model.gguf", "qwen-test", Task.translate("fr").systemPrompt(), 1024, 8, 32, 6,
                12, 2, new ArrowRequestBatcher.Limits(16, 4096, 25), 1 << 20, 3000), s);
    }

    @Test
    void configurationOptionsFillTheBuilder() {
        Configuration c = new Configuration();
        c.set(QwenInferenceOptions.MODEL_PATH, "/models/q.gguf");
        c.set(QwenInferenceOptions.MAX_CONTEXT_TOKENS, 2048);
        c.set(QwenInferenceOptions.SINK_TOKENS, 2);
        c.set(QwenInferenceOptions.MAX_NEW_TOKENS, 64);
        c.set(QwenInferenceOptions.MAX_SEQUENCES, 8);
        c.set(QwenInferenceOptions.CAPACITY, 32);
        c.set(QwenInferenceOptions.THREADS, 2);
        c.set(QwenInferenceOptions.BATCH_MAX_ROWS, 8);
        c.set(QwenInferenceOptions.BATCH_MAX_BYTES, MemorySize.parse("64kb"));
        c.set(QwenInferenceOptions.BATCH_MAX_DELAY, Duration.ofMillis(20));
        c.set(QwenInferenceOptions.KV_BUDGET, MemorySize.parse("32mb"));
        c.set(QwenInferenceOptions.REQUEST_TIMEOUT, Duration.ofSeconds(5));
        assertEquals(new InferenceSettings("/models/q.gguf", null, ChatMl.DEFAULT_SYSTEM_MESSAGE, 2048, 2, 64, 8, 32, 2,
                new ArrowRequestBatcher.Limits(8, 64 << 10, 20), 32L << 20, 5000), QwenInferenceOptions.toSettings(c));
        c.set(QwenInferenceOptions.TRANSLATE_TO, "ja");
        assertMentions(QwenInferenceOptions.toSettings(c).systemPrompt(), "Japanese");
    }

    @Test
    void configurationWithoutAModelNamesTheOption() {
        String m = assertThrows(IllegalArgumentException.class, () -> QwenInferenceOptions.toSettings(new Configuration()))
                .getMessage();
        assertMentions(m, "qwen.model.path");
    }

    @Test
    void configurationWithAnUnknownLanguageNamesTheCode() {
        Configuration c = new Configuration();
        c.setString("qwen.model.path", "m.gguf");
        c.setString("qwen.task.translate-to", "klingon");
        assertMentions(assertThrows(IllegalArgumentException.class, () -> QwenInferenceOptions.toSettings(c)).getMessage(),
                "unknown language code 'klingon'");
    }
}
