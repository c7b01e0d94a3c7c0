/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.sql;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.engine.generate.SamplingParams;
import io.flinkqwen.engine.model.KvFormat;
import io.flinkqwen.engine.serve.GenerationRequest;
import io.flinkqwen.engine.serve.GenerationResult;
import io.flinkqwen.engine.testmodel.TestModelGenerator;
import io.flinkqwen.kernels.DType;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.table.api.ValidationException;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The registry loads a model once per spec, counts its users, and queues calls beyond the engine's capacity. */
class SharedEnginesTest {

    @TempDir
    static Path dir;

    static Path gguf;

    @BeforeAll
    static void writeModel() throws Exception {
        gguf = dir.resolve("tiny.gguf");
        new TestModelGenerator(TestModelGenerator.tinyConfig(), 11).write(TestModelGenerator.Format.GGUF, DType.F32, gguf, 0);
    }

    @Test
    void equalSpecsShareOneModelUntilTheLastLeaseCloses() {
        EngineSpec spec = new EngineSpec(gguf.toString(), 1, 2, 2, 1L << 20);
        try (SharedEngines.Lease a = SharedEngines.acquire(spec)) {
            SharedEngines.Lease b = SharedEngines.acquire(new EngineSpec(gguf.toString(), 1, 2, 2, 1L << 20));
            assertSame(a.model(), b.model(), "one model per spec");
            assertEquals(1, SharedEngines.loaded());
            SharedEngines.Lease c = SharedEngines.acquire(new EngineSpec(gguf.toString(), 1, 1, 2, 1L << 20));
            assertEquals(2, SharedEngines.loaded(), "another engine shape is another engine");
            c.close();
            b.close();
            b.close(); // a second close of one lease is ignored
            assertEquals(1, SharedEngines.loaded());
        }
        assertEquals(0, SharedEngines.loaded());
    }

    @Test
    void callsBeyondTheEnginesCapacityWaitAndAllComplete() throws Exception {
        try (SharedEngines.Lease lease = SharedEngines.acquire(new EngineSpec(gguf.toString(), 1, 2, 2, 1L << 20))) {
            int[] prompt = lease.chatMl().encode(SqlPrompts.summarize("disk full"), true);
            SamplingParams greedy = SamplingParams.greedy(3, lease.stopTokens());
            List<CompletableFuture<GenerationResult>> all = new ArrayList<>();
            for (int i = 0; i < 7; i++) {
                all.add(lease.submit(new GenerationRequest("r" + i, prompt, greedy)));
            }
            int[] first = all.get(0).get().ids();
            for (CompletableFuture<GenerationResult> f : all) {
                assertArrayEquals(first, f.get().ids(), "the same prompt, the same greedy ids");
            }
        }
    }

    @Test
    void functionOptionsNameUnknownKeysAndBadValues() {
        IllegalArgumentException unknown = assertThrows(IllegalArgumentException.class, () -> QwenFunctionOptions.resolve(
                "QWEN_GENERATE", Map.of("qwen.modle.path", "x"), k -> null));
        assertTrue(unknown.getMessage().startsWith("QWEN_GENERATE: unknown option 'qwen.modle.path'; the options are "
                + "qwen.model.path, "), unknown.getMessage());
        IllegalArgumentException tokens = assertThrows(IllegalArgumentException.class, () -> QwenFunctionOptions.resolve(
                "QWEN_SUMMARIZE", Map.of("qwen.max-new-tokens", "0"), k -> k.equals("qwen.model.path") ? "m.gguf" : null));
        assertEquals("QWEN_SUMMARIZE: qwen.max-new-tokens must be >= 1, got 0", tokens.getMessage());
        QwenFunctionOptions.Resolved r = QwenFunctionOptions.resolve("QWEN_GENERATE", Map.of("qwen.engine.threads", "2"),
                k -> Map.of("qwen.model.path", "job.gguf", "qwen.engine.threads", "3").get(k));
        assertEquals(new EngineSpec("job.gguf", 2, 4, 16, 256L << 20), r.spec(), "the constructor's options win");
        assertEquals("Japanese", io.flinkqwen.operators.inference.Task.languages().get(SqlPrompts.languageCode(" JAPANESE ")));
    }

    @Test
    void kvTypeOfFunctionsAndModelsIsValidatedAndPartOfTheEngine() {
        QwenFunctionOptions.Resolved q8 = QwenFunctionOptions.resolve("QWEN_GENERATE", Map.of("qwen.kv-type", "Q8"),
                k -> k.equals("qwen.model.path") ? "m.gguf" : null);
        assertEquals(KvFormat.Q8, q8.spec().kvFormat());
        QwenFunctionOptions.Resolved fromJob = QwenFunctionOptions.resolve("QWEN_GENERATE", Map.of(),
                k -> Map.of("qwen.model.path", "m.gguf", "qwen.kv-type", "f16").get(k));
        assertEquals(KvFormat.F16, fromJob.spec().kvFormat(), "from the job parameters");
        assertEquals(KvFormat.F32, QwenFunctionOptions.resolve("QWEN_GENERATE", Map.of(),
                k -> k.equals("qwen.model.path") ? "m.gguf" : null).spec().kvFormat(), "unset, no system property: F32");
        IllegalArgumentException bad = assertThrows(IllegalArgumentException.class, () -> QwenFunctionOptions.resolve(
                "QWEN_TRANSLATE", Map.of("qwen.kv-type", "q4"), k -> k.equals("qwen.model.path") ? "m.gguf" : null));
        assertEquals("QWEN_TRANSLATE: qwen.kv-type must be one of f32, f16, q8 (the KV cache format), got 'q4'",
                bad.getMessage());
        // listed last: the unknown-option message keeps its order
        IllegalArgumentException unknown = assertThrows(IllegalArgumentException.class, () -> QwenFunctionOptions.resolve(
                "QWEN_GENERATE", Map.of("qwen.kv.type", "q8"), k -> null));
        assertTrue(unknown.getMessage().endsWith("qwen.on-invalid-input, qwen.kv-type"), unknown.getMessage());

        // CREATE MODEL ... WITH ('kv-type' = ..)
        Configuration model = new Configuration();
        model.setString("model", "m.gguf");
        model.setString("kv-type", "f16");
        assertEquals(KvFormat.F16, QwenModelProviderFactory.spec("m", model).engine().kvFormat());
        model.setString("kv-type", "bf16");
        ValidationException e = assertThrows(ValidationException.class, () -> QwenModelProviderFactory.spec("m", model));
        assertEquals("model m (provider 'qwen2'): 'kv-type' must be one of f32, f16, q8 (the KV cache format), got 'bf16'",
                e.getMessage());
        assertTrue(new QwenModelProviderFactory().optionalOptions().contains(QwenModelOptions.KV_TYPE));
    }

    @Test
    void specsThatDifferInKvTypeGetTheirOwnEngines() {
        EngineSpec f32 = new EngineSpec(gguf.toString(), 1, 2, 2, 1L << 20, "cpu", KvFormat.F32);
        EngineSpec q8 = new EngineSpec(gguf.toString(), 1, 2, 2, 1L << 20, "cpu", KvFormat.Q8);
        try (SharedEngines.Lease a = SharedEngines.acquire(f32);
                SharedEngines.Lease b = SharedEngines.acquire(q8)) {
            assertEquals(2, SharedEngines.loaded(), "another KV type is another engine");
            int[] prompt = b.chatMl().encode(SqlPrompts.summarize("disk full"), true);
            SamplingParams greedy = SamplingParams.greedy(3, b.stopTokens());
            assertTrue(b.submit(new GenerationRequest("q8", prompt, greedy)).join().ids().length <= 3,
                    "a Q8 engine answers");
        }
        assertEquals(0, SharedEngines.loaded());
    }
}
