/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.sql;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.engine.LoadedModel;
import io.flinkqwen.engine.generate.Generator;
import io.flinkqwen.engine.generate.SamplingParams;
import io.flinkqwen.engine.testmodel.TestModelGenerator;
import io.flinkqwen.operators.LoopbackMiniCluster;
import io.flinkqwen.engine.tokenizer.ChatMl;
import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.KernelPool;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.types.Row;
import org.apache.flink.util.CloseableIterator;
import org.apache.flink.util.ExceptionUtils;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The SQL functions and the {@code qwen2} model provider in queries on a MiniCluster: every
 * answer equals the engine's greedy output ({@link Generator}, one sequence, no batching) for
 * the conversation {@link SqlPrompts} builds, and bad arguments or options fail with messages
 * that name them. The SQL statements are the README's.
 */
class QwenSqlITCase {

    private static final int MAX_TOKENS = 6;

    @RegisterExtension
    static final MiniClusterExtension MINI_CLUSTER = LoopbackMiniCluster.withSlots(2);

    @TempDir
    static Path dir;

    static Path gguf;
    static LoadedModel reference;
    static KernelPool pool;
    static Generator generator;


    @BeforeAll
    static void writeModel() throws Exception {
        gguf = dir.resolve("tiny.gguf");
        new TestModelGenerator(TestModelGenerator.tinyConfig(), 11).write(TestModelGenerator.Format.GGUF, DType.F32, gguf, 0);
        reference = LoadedModel.open(gguf);
        pool = new KernelPool(1);
        generator = new Generator(reference.newForward(pool, 64));
    }

    @AfterAll
    static void closeModel() {
        pool.close();
        reference.close();
    }

    /** The engine's greedy answer to {@code conversation}, decoded. */
    static String expected(List<ChatMl.Message> conversation, int maxTokens) {
        int[] prompt = new ChatMl(reference.tokenizer()).encode(conversation, true);
        int[] ids = generator.generate(prompt, SamplingParams.greedy(maxTokens, reference.stopTokens()), null).ids();
        return reference.tokenizer().decode(ids);
    }

    static TableEnvironment streaming(int parallelism) {
        TableEnvironment t = TableEnvironment.create(EnvironmentSettings.inStreamingMode());
        t.getConfig().set("parallelism.default", String.valueOf(parallelism));
        t.getConfig().set("restart-strategy.type", "none");
        t.executeSql("CREATE TEMPORARY VIEW docs AS SELECT * FROM (VALUES (1, 'hello world'), (2, 'the lazy dog'),"
                + " (3, 'jumps over the fox'), (4, 'ERROR disk full on node 7')) AS v(id, text)");
        return t;
    }

    static List<Row> rows(TableEnvironment t, String query) throws Exception {
        List<Row> out = new ArrayList<>();
        try (CloseableIterator<Row> it = t.executeSql(query).collect()) {
            it.forEachRemaining(out::add);
        }
        out.sort((a, b) -> Integer.compare((Integer) a.getField(0), (Integer) b.getField(0)));
        return out;
    }

    static final List<String> TEXTS = List.of("hello world", "the lazy dog", "jumps over the fox", "ERROR disk full on node 7");

    @Test
    void synchronousFunctionsAnswerAsTheEngineDoesGreedily() throws Exception {
        TableEnvironment t = streaming(2);
        Map<String, String> options = Map.of("qwen.model.path", gguf.toString(), "qwen.max-new-tokens", "" + MAX_TOKENS);
        t.createTemporarySystemFunction("QWEN_GENERATE", new QwenGenerate(options));
        t.createTemporarySystemFunction("QWEN_SUMMARIZE", new QwenSummarize(options));
        t.createTemporarySystemFunction("QWEN_TRANSLATE", new QwenTranslate(options));
        List<Row> rows = rows(t, "SELECT id, QWEN_GENERATE(text), QWEN_GENERATE(text, 3), QWEN_SUMMARIZE(text),"
                + " QWEN_TRANSLATE(text, 'de'), QWEN_TRANSLATE(text, 'Japanese') FROM docs");
        assertEquals(4, rows.size(), rows.toString());
        for (int i = 0; i < rows.size(); i++) {
            String text = TEXTS.get(i);
            Row r = rows.get(i);
            assertEquals(expected(SqlPrompts.generate(ChatMl.DEFAULT_SYSTEM_MESSAGE, text), MAX_TOKENS), r.getField(1), text);
            assertEquals(expected(SqlPrompts.generate(ChatMl.DEFAULT_SYSTEM_MESSAGE, text), 3), r.getField(2), text);
            assertEquals(expected(SqlPrompts.summarize(text), MAX_TOKENS), r.getField(3), text);
            assertEquals(expected(SqlPrompts.translate(text, "de"), MAX_TOKENS), r.getField(4), text);
            assertEquals(expected(SqlPrompts.translate(text, "ja"), MAX_TOKENS), r.getField(5), text);
        }
        assertEquals(0, SharedEngines.loaded(), "engines left open after the job");
    }

    @Test
    void asynchronousFunctionsReadTheJobConfigurationAndAnswerTheSame() throws Exception {
        TableEnvironment t = streaming(1);
        t.executeSql("CREATE TEMPORARY FUNCTION QWEN_GENERATE AS 'io.flinkqwen.operators.sql.QwenGenerateAsync'");
        // the SQL client's SET 'pipeline.global-job-parameters' = '...'
        t.getConfig().set("pipeline.global-job-parameters",
                "qwen.model.path:'" + gguf + "',qwen.max-new-tokens:" + MAX_TOKENS);
        t.executeSql("CREATE TEMPORARY FUNCTION QWEN_SUMMARIZE AS 'io.flinkqwen.operators.sql.QwenSummarizeAsync'");
        t.executeSql("CREATE TEMPORARY FUNCTION QWEN_TRANSLATE AS 'io.flinkqwen.operators.sql.QwenTranslateAsync'");
        List<Row> rows = rows(t, "SELECT id, QWEN_GENERATE(text), QWEN_SUMMARIZE(text), QWEN_TRANSLATE(text, 'fr') FROM docs");
        assertEquals(4, rows.size(), rows.toString());
        for (int i = 0; i < rows.size(); i++) {
            String text = TEXTS.get(i);
            Row r = rows.get(i);
            assertEquals(expected(SqlPrompts.generate(ChatMl.DEFAULT_SYSTEM_MESSAGE, text), MAX_TOKENS), r.getField(1), text);
            assertEquals(expected(SqlPrompts.summarize(text), MAX_TOKENS), r.getField(2), text);
            assertEquals(expected(SqlPrompts.translate(text, "fr"), MAX_TOKENS), r.getField(3), text);
        }
    }

    @Test
    void mlPredictRunsTheModelInProcessAsyncAndSync() throws Exception {
        TableEnvironment t = streaming(1);
        t.executeSql("CREATE MODEL qwen INPUT (prompt STRING) OUTPUT (response STRING) WITH ('provider' = 'qwen2',"
                + " 'model' = '" + gguf + "', 'max-tokens' = '" + MAX_TOKENS + "')");
        t.executeSql("CREATE TEMPORARY VIEW prompts AS SELECT id, text AS prompt FROM docs");
        List<Row> async = rows(t, "SELECT id, response FROM ML_PREDICT(TABLE prompts, MODEL qwen, DESCRIPTOR(prompt))");
        List<Row> sync = rows(t, "SELECT id, response FROM ML_PREDICT(TABLE prompts, MODEL qwen, DESCRIPTOR(prompt),"
                + " MAP['async', 'false'])");
        assertEquals(4, async.size(), async.toString());
        for (int i = 0; i < async.size(); i++) {
            String want = expected(SqlPrompts.generate(ChatMl.DEFAULT_SYSTEM_MESSAGE, TEXTS.get(i)), MAX_TOKENS);
            assertEquals(want, async.get(i).getField(1), TEXTS.get(i));
            assertEquals(want, sync.get(i).getField(1), TEXTS.get(i));
        }

        t.executeSql("CREATE MODEL qwen_de INPUT (text STRING) OUTPUT (translated STRING) WITH ('provider' = 'qwen2',"
                + " 'model' = '" + gguf + "', 'task' = 'translate', 'target-lang' = 'German', 'max-tokens' = '4')");
        List<Row> de = rows(t, "SELECT id, translated FROM ML_PREDICT(TABLE docs, MODEL qwen_de, DESCRIPTOR(text))");
        for (int i = 0; i < de.size(); i++) {
            assertEquals(expected(SqlPrompts.translate(TEXTS.get(i), "de"), 4), de.get(i).getField(1), TEXTS.get(i));
        }
    }

    @Test
    void invalidInputAnswersNullAndTheRowsAroundItAreAnswered() throws Exception {
        TableEnvironment t = streaming(1);
        Map<String, String> options = Map.of("qwen.model.path", gguf.toString(), "qwen.max-new-tokens", "2");
        t.createTemporarySystemFunction("QWEN_TRANSLATE", new QwenTranslate(options));
        t.createTemporarySystemFunction("QWEN_TRANSLATE_ASYNC", new QwenTranslateAsync(options));
        t.createTemporarySystemFunction("QWEN_GENERATE", new QwenGenerate(options));
        // row 2 asks for a language nobody knows, row 3 for max_tokens 0; rows 1 and 4 are valid
        t.executeSql("CREATE TEMPORARY VIEW asks AS SELECT * FROM (VALUES (1, 'hello world', 'de', 2),"
                + " (2, 'the lazy dog', 'Klingon', 2), (3, 'jumps over the fox', 'fr', 0),"
                + " (4, 'ERROR disk full on node 7', 'Japanese', 2)) AS v(id, text, lang, n)");
        List<Row> rows = rows(t, "SELECT id, QWEN_TRANSLATE(text, lang), QWEN_TRANSLATE_ASYNC(text, lang),"
                + " QWEN_GENERATE(text, n) FROM asks");
        assertEquals(4, rows.size(), rows.toString());
        for (int f = 1; f <= 2; f++) {
            assertEquals(expected(SqlPrompts.translate(TEXTS.get(0), "de"), 2), rows.get(0).getField(f), rows.toString());
            assertEquals(null, rows.get(1).getField(f), "unknown language answers NULL: " + rows);
            assertEquals(expected(SqlPrompts.translate(TEXTS.get(2), "fr"), 2), rows.get(2).getField(f), rows.toString());
            assertEquals(expected(SqlPrompts.translate(TEXTS.get(3), "ja"), 2), rows.get(3).getField(f), rows.toString());
        }
        assertEquals(null, rows.get(2).getField(3), "max_tokens 0 answers NULL: " + rows);
        assertEquals(expected(SqlPrompts.generate(ChatMl.DEFAULT_SYSTEM_MESSAGE, TEXTS.get(0)), 2), rows.get(0).getField(3));
    }

    @Test
    void withOnInvalidInputFailAnUnknownLanguageFailsTheQueryNamingTheValue() {
        TableEnvironment t = streaming(1);
        Map<String, String> options = Map.of("qwen.model.path", gguf.toString(), "qwen.max-new-tokens", "2",
                "qwen.on-invalid-input", "FAIL");
        t.createTemporarySystemFunction("QWEN_TRANSLATE", new QwenTranslate(options));
        t.createTemporarySystemFunction("QWEN_TRANSLATE_ASYNC", new QwenTranslateAsync(options));
        for (String f : List.of("QWEN_TRANSLATE", "QWEN_TRANSLATE_ASYNC")) {
            Exception e = assertThrows(Exception.class, () -> rows(t, "SELECT id, " + f + "(text, 'Klingon') FROM docs"));
            assertTrue(ExceptionUtils.findThrowableWithMessage(e, "QWEN_TRANSLATE: unknown target language 'Klingon'")
                    .isPresent(), () -> f + ": " + ExceptionUtils.stringifyException(e));
        }
    }

    @Test
    void mlPredictGivesNullForAPromptLongerThanTheContextAndFailsWithFail() throws Exception {
        TableEnvironment t = streaming(1);
        String longText = "word ".repeat(TestModelGenerator.tinyConfig().maxPositionEmbeddings());
        t.executeSql("CREATE TEMPORARY VIEW prompts AS SELECT * FROM (VALUES (1, 'hello world'), (2, '" + longText
                + "'), (3, 'the lazy dog')) AS v(id, prompt)");
        for (String mode : List.of("NULL", "FAIL")) {
            t.executeSql("CREATE MODEL m_" + mode + " INPUT (prompt STRING) OUTPUT (response STRING) WITH ("
                    + "'provider' = 'qwen2', 'model' = '" + gguf + "', 'max-tokens' = '2', 'on-invalid-input' = '" + mode + "')");
        }
        for (String async : List.of("true", "false")) {
            List<Row> rows = rows(t, "SELECT id, response FROM ML_PREDICT(TABLE prompts, MODEL m_NULL, DESCRIPTOR(prompt),"
                    + " MAP['async', '" + async + "'])");
            assertEquals(3, rows.size(), rows.toString());
            assertEquals(expected(SqlPrompts.generate(ChatMl.DEFAULT_SYSTEM_MESSAGE, "hello world"), 2), rows.get(0).getField(1));
            assertEquals(null, rows.get(1).getField(1), "async " + async + ": " + rows);
            assertEquals(expected(SqlPrompts.generate(ChatMl.DEFAULT_SYSTEM_MESSAGE, "the lazy dog"), 2), rows.get(2).getField(1));
            Exception e = assertThrows(Exception.class, () -> rows(t,
                    "SELECT id, response FROM ML_PREDICT(TABLE prompts, MODEL m_FAIL, DESCRIPTOR(prompt), MAP['async', '"
                            + async + "'])"));
            assertTrue(ExceptionUtils.findThrowableWithMessage(e, "positions: shorten the text").isPresent(),
                    () -> ExceptionUtils.stringifyException(e));
        }
    }

    @Test
    void missingModelFailsNamingTheOption() {
        TableEnvironment t = streaming(1);
        t.createTemporarySystemFunction("QWEN_GENERATE", new QwenGenerate());
        Exception e = assertThrows(Exception.class, () -> rows(t, "SELECT id, QWEN_GENERATE(text) FROM docs"));
        assertTrue(ExceptionUtils.findThrowableWithMessage(e, "QWEN_GENERATE has no model: set the job parameter 'qwen.model.path'")
                .isPresent(), () -> ExceptionUtils.stringifyException(e));

        t.executeSql("CREATE MODEL nomodel INPUT (prompt STRING) OUTPUT (response STRING) WITH ('provider' = 'qwen2')");
        Exception m = assertThrows(Exception.class,
                () -> rows(t, "SELECT * FROM ML_PREDICT(TABLE docs, MODEL nomodel, DESCRIPTOR(text))"));
        assertTrue(ExceptionUtils.findThrowableWithMessage(m, "Missing required options are:\n\nmodel").isPresent(),
                () -> ExceptionUtils.stringifyException(m));

        t.executeSql("CREATE MODEL badlang INPUT (prompt STRING) OUTPUT (response STRING) WITH ('provider' = 'qwen2',"
                + " 'model' = '" + gguf + "', 'task' = 'translate', 'target-lang' = 'xx')");
        Exception l = assertThrows(Exception.class,
                () -> rows(t, "SELECT * FROM ML_PREDICT(TABLE docs, MODEL badlang, DESCRIPTOR(text))"));
        assertTrue(ExceptionUtils.findThrowableWithMessage(l, "unknown target language 'xx'").isPresent(),
                () -> ExceptionUtils.stringifyException(l));
    }
}
