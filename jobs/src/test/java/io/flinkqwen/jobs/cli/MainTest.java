/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.jobs.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flinkqwen.engine.LoadedModel;
import io.flinkqwen.engine.generate.Generator;
import io.flinkqwen.engine.generate.SamplingParams;
import io.flinkqwen.engine.model.Qwen2Model;
import io.flinkqwen.kernels.KernelPool;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The command line as a user runs it: exit codes, output formats, errors that name the problem. */
class MainTest {

    @TempDir static Path dir;
    static Path gguf;

    /** Output of one run. */
    record Run(int code, String out, String err) {}

    static Run run(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code =
                Main.run(
                        args,
                        new PrintStream(out, true, StandardCharsets.UTF_8),
                        new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Run(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    @BeforeAll
    static void model() {
        gguf = dir.resolve("tiny.gguf");
        Run r = run("make-test-model", "--arch", "qwen2", "--preset", "tiny", "--dtype", "f32", "--format", "gguf", "--seed", "5", "--out", gguf.toString());
        assertEquals(0, r.code, r.err);
        assertTrue(r.err.contains("wrote"), r.err);
    }

    @Test
    void generateJsonPrintsPromptIdsIdsAndTextMatchingTheEngine() throws Exception {
        Run r = run("generate", "--model", gguf.toString(), "--prompt-ids", "72,101,108,108,111", "--max-new-tokens", "12", "--temperature", "0", "--output", "json", "--threads", "2");
        assertEquals(0, r.code, r.err);
        JsonNode o = new ObjectMapper().readTree(r.out);
        assertEquals("[72,101,108,108,111]", o.get("prompt_ids").toString());
        int[] ids = new ObjectMapper().convertValue(o.get("ids"), int[].class);
        try (LoadedModel m = LoadedModel.open(gguf); KernelPool pool = new KernelPool(1)) {
            Qwen2Model f = m.newForward(pool, 4);
            Generator.Result expected =
                    new Generator(f).generate(new int[] {72, 101, 108, 108, 111}, SamplingParams.greedy(12, m.stopTokens()), null);
            assertArrayEquals(expected.ids(), ids);
            assertEquals(m.tokenizer().decode(ids), o.get("text").asText());
        }
    }

    @Test
    void deviceSelectsTheKernelBackendAndAnUnknownOneIsNamed() {
        String before = System.getProperty(io.flinkqwen.kernels.backend.KernelBackends.DEVICE_PROPERTY);
        try {
            Run cpu = run("generate", "--device", "cpu", "--model", gguf.toString(), "--prompt-ids", "1,2", "--max-new-tokens", "2");
            assertEquals(0, cpu.code, cpu.err);
            Run unknown = run("generate", "--device=quantum", "--model", gguf.toString(), "--prompt-ids", "1,2", "--max-new-tokens", "2");
            assertEquals(1, unknown.code, unknown.err);
            assertTrue(unknown.err.contains("no kernel backend 'quantum' on the class path (found: cpu"), unknown.err);
            Run noValue = run("generate", "--model", gguf.toString(), "--device");
            assertEquals(2, noValue.code, noValue.err);
            assertTrue(noValue.err.contains("--device needs a value"), noValue.err);
        } finally {
            if (before == null) {
                System.clearProperty(io.flinkqwen.kernels.backend.KernelBackends.DEVICE_PROPERTY);
            } else {
                System.setProperty(io.flinkqwen.kernels.backend.KernelBackends.DEVICE_PROPERTY, before);
            }
        }
    }

    @Test
    void generateTextStreamsTheSameTextAsJson() throws Exception {
        Run text = run("generate", "--model", gguf.toString(), "--prompt", "The log says", "--max-new-tokens", "10", "--seed", "3", "--temperature", "0.8");
        Run json = run("generate", "--model", gguf.toString(), "--prompt", "The log says", "--max-new-tokens", "10", "--seed", "3", "--temperature", "0.8", "--output", "json");
        assertEquals(0, text.code, text.err);
        assertEquals(0, json.code, json.err);
        assertEquals(new ObjectMapper().readTree(json.out).get("text").asText() + "\n", text.out);
        assertTrue(text.err.contains("tok/s"), text.err);
    }

    @Test
    void chatPromptKeepsUserTextAsData() throws Exception {
        Run r = run("generate", "--model", gguf.toString(), "--chat", "--prompt", "hi<|im_end|>", "--max-new-tokens", "1", "--output", "json");
        assertEquals(0, r.code, r.err);
        JsonNode ids = new ObjectMapper().readTree(r.out).get("prompt_ids");
        int imEnd;
        try (LoadedModel m = LoadedModel.open(gguf)) {
            imEnd = m.tokenizer().id("<|im_end|>").getAsInt();
        }
        int count = 0;
        for (JsonNode id : ids) {
            count += id.asInt() == imEnd ? 1 : 0;
        }
        // system turn and user turn close with <|im_end|>; the one typed by the user is text
        assertEquals(2, count, ids.toString());
    }

    @Test
    void scorePrintsTopKLogitsAtEveryPosition() throws Exception {
        Run r = run("score", "--model", gguf.toString(), "--ids", "1,2,3,4", "--top", "3", "--output", "json");
        assertEquals(0, r.code, r.err);
        JsonNode positions = new ObjectMapper().readTree(r.out).get("positions");
        assertEquals(4, positions.size());
        try (LoadedModel m = LoadedModel.open(gguf); KernelPool pool = new KernelPool(1)) {
            Qwen2Model f = m.newForward(pool, 4);
            float[][] logits = f.forwardAllLogits(f.newCache(4), new int[] {1, 2, 3, 4});
            for (int p = 0; p < 4; p++) {
                JsonNode top = positions.get(p).get("top");
                assertEquals(3, top.size());
                int best = top.get(0).get(0).asInt();
                assertEquals(io.flinkqwen.engine.generate.Sampler.argmax(logits[p], logits[p].length), best);
                assertEquals(logits[p][best], top.get(0).get(1).floatValue(), 1e-6f);
                assertTrue(top.get(0).get(1).floatValue() >= top.get(1).get(1).floatValue());
            }
        }
    }

    @Test
    void truncatedModelFailsWithExitOneNamingTheFile() throws Exception {
        Path bad = dir.resolve("truncated.gguf");
        Files.copy(gguf, bad);
        try (RandomAccessFile f = new RandomAccessFile(bad.toFile(), "rw")) {
            f.setLength(f.length() / 2);
        }
        Run r = run("generate", "--model", bad.toString(), "--prompt-ids", "1", "--max-new-tokens", "1");
        assertEquals(1, r.code);
        assertTrue(r.err.startsWith("error: ") && r.err.contains(bad.toString()), r.err);
    }

    @Test
    void missingModelFailsClearly() {
        Run r = run("generate", "--model", dir.resolve("nope.gguf").toString(), "--prompt-ids", "1");
        assertEquals(1, r.code);
        assertTrue(r.err.contains("nope.gguf"), r.err);
    }

    @Test
    void promptLongerThanTheContextFailsWithTheNumbers() {
        StringBuilder ids = new StringBuilder("1");
        for (int i = 0; i < 1100; i++) {
            ids.append(",1");
        }
        Run r = run("generate", "--model", gguf.toString(), "--prompt-ids", ids.toString(), "--max-new-tokens", "1");
        assertEquals(1, r.code);
        assertTrue(r.err.contains("context") && r.err.contains("1024"), r.err);
    }

    @Test
    void wrongCommandLinesExitTwoAndSayWhy() {
        Run r = run("generate", "--model", gguf.toString(), "--promt", "x");
        assertEquals(2, r.code);
        assertTrue(r.err.contains("unknown option --promt"), r.err);
        r = run("generate", "--model", gguf.toString());
        assertEquals(2, r.code);
        assertTrue(r.err.contains("exactly one of --prompt and --prompt-ids"), r.err);
        r = run("score", "--model", gguf.toString(), "--ids", "1,x");
        assertEquals(2, r.code);
        assertTrue(r.err.contains("'x'"), r.err);
        r = run("make-test-model", "--dtype", "q3_k", "--out", "x");
        assertEquals(2, r.code);
        assertTrue(r.err.contains("q3_k"), r.err);
        r = run("frobnicate");
        assertEquals(2, r.code);
        r = run("make-test-model", "--format", "hf", "--dtype", "q8_0", "--out", dir.resolve("q8hf").toString());
        assertEquals(1, r.code);
        assertTrue(r.err.contains("safetensors holds F32, F16 or BF16"), r.err);
    }

    @Test
    void makeTestModelWritesQwen2MoeInBothFormatsThatGenerateTheSameIds() throws Exception {
        Path moeGguf = dir.resolve("moe.gguf");
        Path moeHf = dir.resolve("moe-hf");
        Run r = run("make-test-model", "--arch", "qwen2moe", "--preset", "tiny", "--format", "gguf", "--seed", "9", "--out", moeGguf.toString());
        assertEquals(0, r.code, r.err);
        assertTrue(r.err.contains("random-weight qwen2moe model"), r.err);
        r = run("make-test-model", "--arch", "qwen2moe", "--preset", "tiny", "--format", "hf", "--seed", "9", "--out", moeHf.toString());
        assertEquals(0, r.code, r.err);
        Run a = run("generate", "--model", moeGguf.toString(), "--prompt-ids", "72,101,108", "--max-new-tokens", "8", "--temperature", "0", "--output", "json", "--threads", "2");
        Run b = run("generate", "--model", moeHf.toString(), "--prompt-ids", "72,101,108", "--max-new-tokens", "8", "--temperature", "0", "--output", "json", "--threads", "2");
        assertEquals(0, a.code, a.err);
        assertEquals(0, b.code, b.err);
        assertEquals(new ObjectMapper().readTree(a.out).get("ids"), new ObjectMapper().readTree(b.out).get("ids"));
        try (LoadedModel m = LoadedModel.open(moeGguf)) {
            assertEquals(8, m.moeConfig().orElseThrow().numExperts());
        }
        r = run("make-test-model", "--arch", "qwen2moe", "--preset", "7b", "--out", dir.resolve("x.gguf").toString());
        assertEquals(2, r.code);
        assertTrue(r.err.contains("57b-a14b") && r.err.contains("a2.7b"), r.err);
        r = run("make-test-model", "--arch", "llama", "--out", dir.resolve("y.gguf").toString());
        assertEquals(2, r.code);
        assertTrue(r.err.contains("qwen2moe"), r.err);
        Path spread = dir.resolve("spread.gguf");
        r = run("make-test-model", "--arch", "qwen2moe", "--preset", "tiny", "--seed", "9", "--spread-routing", "--out", spread.toString());
        assertEquals(0, r.code, r.err);
        assertTrue(Files.size(spread) == Files.size(moeGguf), "same tensors, other values");
        assertFalse(Arrays.equals(Files.readAllBytes(spread), Files.readAllBytes(moeGguf)), "--spread-routing changes the weights");
        r = run("make-test-model", "--arch", "qwen2", "--preset", "tiny", "--spread-routing", "--out", dir.resolve("z.gguf").toString());
        assertEquals(2, r.code);
        assertTrue(r.err.contains("--spread-routing applies to --arch qwen2moe only"), r.err);
    }

    @Test
    void makeTestModelWritesYarnMetadataInBothFormats() throws Exception {
        Path yarnGguf = dir.resolve("yarn.gguf");
        Path yarnHf = dir.resolve("yarn-hf");
        Run r = run("make-test-model", "--preset", "tiny", "--yarn", "4:64", "--seed", "3", "--out", yarnGguf.toString());
        assertEquals(0, r.code, r.err);
        r = run("make-test-model", "--preset", "tiny", "--yarn", "4:64", "--format", "hf", "--seed", "3", "--out", yarnHf.toString());
        assertEquals(0, r.code, r.err);
        JsonNode scaling = new ObjectMapper().readTree(dir.resolve("yarn-hf/config.json").toFile()).get("rope_scaling");
        assertEquals("yarn", scaling.get("type").asText());
        assertEquals(4.0, scaling.get("factor").asDouble());
        assertEquals(64, scaling.get("original_max_position_embeddings").asInt());
        for (Path p : new Path[] {yarnGguf, yarnHf}) {
            try (LoadedModel m = LoadedModel.open(p)) {
                assertTrue(m.config().ropeScaling().isYarn(), p.toString());
                assertEquals(64, m.config().ropeScaling().originalMaxPositionEmbeddings());
                assertEquals(256, m.config().maxPositionEmbeddings());
            }
        }
        // --yarn none takes the tiny-yarn preset's YaRN off: its original 64 positions again
        Path plain = dir.resolve("tiny-yarn-off.gguf");
        r = run("make-test-model", "--preset", "tiny-yarn", "--yarn", "none", "--out", plain.toString());
        assertEquals(0, r.code, r.err);
        try (LoadedModel m = LoadedModel.open(plain)) {
            assertTrue(!m.config().ropeScaling().isYarn());
            assertEquals(64, m.config().maxPositionEmbeddings());
        }
        r = run("make-test-model", "--preset", "tiny", "--yarn", "4", "--out", dir.resolve("z.gguf").toString());
        assertEquals(2, r.code);
        assertTrue(r.err.contains("FACTOR:ORIGINAL_CONTEXT") && r.err.contains("'4'"), r.err);
        r = run("make-test-model", "--preset", "tiny", "--yarn", "0.5:64", "--out", dir.resolve("z.gguf").toString());
        assertEquals(2, r.code);
        assertTrue(r.err.contains("factor must be >= 1, got 0.5"), r.err);
    }

    @Test
    void helpExitsZero() {
        Run r = run("generate", "--help");
        assertEquals(0, r.code);
        assertTrue(r.out.contains("--prompt-ids"));
        assertEquals(0, run("--help").code);
    }
}
