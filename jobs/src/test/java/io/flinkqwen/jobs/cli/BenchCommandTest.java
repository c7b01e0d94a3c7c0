/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.jobs.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flinkqwen.engine.LoadedModel;
import io.flinkqwen.engine.oracle.OracleFiles;
import io.flinkqwen.kernels.KernelPool;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code bench}: one JSON object with the speeds, the model facts, and llama.cpp's numbers on request. */
class BenchCommandTest {

    @TempDir static Path dir;
    static Path gguf;

    @BeforeAll
    static void model() {
        gguf = dir.resolve("tiny.gguf");
        MainTest.Run r = MainTest.run("make-test-model", "--arch", "qwen2", "--preset", "tiny", "--dtype", "q8_0", "--format", "gguf", "--seed", "7", "--out", gguf.toString());
        assertEquals(0, r.code(), r.err());
    }

    private static void assertSpeeds(JsonNode o, long weightsBytes) {
        for (String phase : new String[] {"prefill", "decode"}) {
            double median = o.get(phase + "_tokens_per_s").asDouble();
            assertTrue(median > 0, phase + " speed in " + o);
            assertTrue(o.get(phase + "_tokens_per_s_min").asDouble() <= median, o.toString());
            assertTrue(o.get(phase + "_tokens_per_s_max").asDouble() >= median, o.toString());
        }
        double gbs = o.get("decode_weight_gb_per_s").asDouble();
        assertEquals(weightsBytes * o.get("decode_tokens_per_s").asDouble() / 1e9, gbs, 0.01 + 1e-3 * gbs);
    }

    @Test
    void benchPrintsOneJsonObjectWithMediansAndModelFacts() throws Exception {
        MainTest.Run r = MainTest.run("bench", "--model", gguf.toString(), "--prompt-tokens", "9", "--gen-tokens", "5", "--threads", "2", "--runs", "1", "--warmup", "0", "--output", "json");
        assertEquals(0, r.code(), r.err());
        assertEquals(1, r.out().strip().lines().count(), r.out());
        JsonNode o = new ObjectMapper().readTree(r.out());
        try (LoadedModel m = LoadedModel.open(gguf)) {
            assertEquals(m.weights().activeMatrixBytes(), o.get("weights_bytes").asLong());
            assertSpeeds(o, m.weights().activeMatrixBytes());
        }
        assertEquals("Q8_0", o.get("weight_format").asText());
        assertEquals(1, o.get("batch").asInt());
        assertEquals(2, o.get("threads").asInt());
        assertEquals(1, o.get("runs").asInt());
        assertEquals(9, o.get("prompt_tokens").asInt());
        assertEquals(5, o.get("gen_tokens").asInt());
        assertEquals(gguf.toString(), o.get("model").asText());
        // start-up
        assertTrue(o.get("load_ms").asDouble() > 0, r.out());
        assertTrue(o.get("first_token_ms").asDouble() > 0, r.out());
        // the roofline against the in-process probe
        double measured = o.get("measured_read_gb_per_s").asDouble();
        assertTrue(measured > 0.5 && measured < 10_000, "measured read bandwidth " + measured);
        assertEquals(measured, o.get("bandwidth_gb_per_s").asDouble(), 1e-9);
        assertEquals("measured", o.get("bandwidth_source").asText());
        double share = o.get("decode_roofline_share").asDouble();
        assertEquals(o.get("decode_weight_gb_per_s").asDouble() / measured, share, 0.002 + 0.01 * share);
    }

    /**
     * --kv-type and --fill-context: the tiny model's KV is 3 layers x 64 wide, so one block of 16
     * positions is 2 x 3 x 16 x 64 values; 96 positions of context + 4 decoded fit 7 blocks.
     */
    @Test
    void kvTypeAndFillContextReachTheCacheAndItsSize() throws Exception {
        long[] blockBytes = {2L * 3 * 16 * 64 * 4, 2L * 3 * 16 * 64 * 2, 2L * (3 * 16 * 64 + 4 * (3 * 16 * 64 / 32))};
        String[] types = {"f32", "f16", "q8"};
        for (int i = 0; i < 3; i++) {
            MainTest.Run r = MainTest.run("bench", "--model", gguf.toString(), "--prompt-tokens", "32", "--gen-tokens", "4",
                    "--threads", "1", "--runs", "1", "--warmup", "0", "--bandwidth-gb-s", "1", "--kv-type", types[i],
                    "--fill-context", "96");
            assertEquals(0, r.code(), r.err());
            JsonNode o = new ObjectMapper().readTree(r.out());
            assertEquals(types[i], o.get("kv_type").asText());
            assertEquals(96, o.get("fill_context").asInt());
            assertEquals(7 * blockBytes[i], o.get("kv_cache_bytes").asLong(), o.toString());
        }
        MainTest.Run bad = MainTest.run("bench", "--model", gguf.toString(), "--kv-type", "q4");
        assertEquals(2, bad.code());
        assertTrue(bad.err().contains("--kv-type must be f32, f16 or q8"), bad.err());
        bad = MainTest.run("bench", "--model", gguf.toString(), "--fill-context", "100", "--prompt-tokens", "32");
        assertEquals(2, bad.code());
        assertTrue(bad.err().contains("--fill-context"), bad.err());
    }

    @Test
    void givenBandwidthReplacesTheProbe() throws Exception {
        MainTest.Run r = MainTest.run("bench", "--model", gguf.toString(), "--prompt-tokens", "4", "--gen-tokens", "3",
                "--threads", "1", "--runs", "1", "--warmup", "0", "--bandwidth-gb-s", "0.5");
        assertEquals(0, r.code(), r.err());
        JsonNode o = new ObjectMapper().readTree(r.out());
        assertTrue(o.get("measured_read_gb_per_s") == null, "no probe when the figure is given: " + o);
        assertEquals(0.5, o.get("bandwidth_gb_per_s").asDouble(), 1e-9);
        assertEquals("--bandwidth-gb-s", o.get("bandwidth_source").asText());
        assertEquals(o.get("decode_weight_gb_per_s").asDouble() / 0.5, o.get("decode_roofline_share").asDouble(), 0.002);
        for (String bad : new String[] {"0", "-3", "fast"}) {
            r = MainTest.run("bench", "--model", gguf.toString(), "--bandwidth-gb-s", bad);
            assertEquals(2, r.code(), bad);
            assertTrue(r.err().contains("--bandwidth-gb-s"), r.err());
        }
    }

    @Test
    void readBandwidthProbeReportsAPlausibleFigure() {
        try (KernelPool pool = new KernelPool(2)) {
            // small and short here: the figure is checked for sanity, not for speed
            double gbs = ReadBandwidth.measure(pool, 8L << 20, 2, 50_000_000L);
            assertTrue(gbs > 0.5 && gbs < 10_000, "read GB/s " + gbs);
        }
    }

    @Test
    void batchedBenchReportsAggregateSpeed() throws Exception {
        MainTest.Run r = MainTest.run("bench", "--model", gguf.toString(), "--batch", "4", "--prompt-tokens", "6",
                "--gen-tokens", "5", "--runs", "1", "--warmup", "0", "--threads", "1", "--bandwidth-gb-s", "20");
        assertEquals(0, r.code(), r.err());
        JsonNode o = new ObjectMapper().readTree(r.out());
        assertEquals(4, o.get("batch").asInt());
        assertTrue(o.get("decode_tokens_per_s").asDouble() > 0, r.out());
        assertTrue(o.get("first_token_ms").asDouble() > 0, r.out());
        // a step reads the weights once for the 4 tokens it yields
        assertEquals(o.get("weights_bytes").asLong() / 4 * o.get("decode_tokens_per_s").asDouble() / 1e9,
                o.get("decode_weight_gb_per_s").asDouble(), 0.01);
        assertEquals(64, o.get("chunk_tokens").asInt(), "a dense model's default chunk");
        // a batch above the default chunk raises the chunk; one above a given chunk is refused
        r = MainTest.run("bench", "--model", gguf.toString(), "--batch", "65", "--prompt-tokens", "3",
                "--gen-tokens", "2", "--runs", "1", "--warmup", "0", "--threads", "1", "--bandwidth-gb-s", "20");
        assertEquals(0, r.code(), r.err());
        assertEquals(65, new ObjectMapper().readTree(r.out()).get("chunk_tokens").asInt());
        r = MainTest.run("bench", "--model", gguf.toString(), "--batch", "9", "--chunk-tokens", "8");
        assertEquals(2, r.code());
        assertTrue(r.err().contains("--batch must be at most --chunk-tokens (8), got 9"), r.err());
        // a prompt of 6 in chunks of 4: two forward calls, the same speeds reported
        r = MainTest.run("bench", "--model", gguf.toString(), "--chunk-tokens", "4", "--prompt-tokens", "6",
                "--gen-tokens", "3", "--runs", "1", "--warmup", "0", "--threads", "1", "--bandwidth-gb-s", "20");
        assertEquals(0, r.code(), r.err());
        assertTrue(new ObjectMapper().readTree(r.out()).get("prefill_tokens_per_s").asDouble() > 0, r.out());
    }

    @Test
    void batchedBenchVsLlamaCppDecodesAsManySequencesOnBothSides() throws Exception {
        Path oracle = OracleFiles.nodeLlamaCpp().getParent().getParent(); // skips (or fails in CI) when absent
        MainTest.Run r = MainTest.run("bench", "--model", gguf.toString(), "--batch", "3", "--prompt-tokens", "5",
                "--gen-tokens", "4", "--threads", "2", "--runs", "1", "--warmup", "0", "--bandwidth-gb-s", "20",
                "--vs-llama-cpp", "--oracle-dir", oracle.toString());
        assertEquals(0, r.code(), r.err());
        JsonNode o = new ObjectMapper().readTree(r.out());
        JsonNode l = o.get("llama_cpp");
        assertEquals(3, o.get("batch").asInt());
        assertEquals(3, l.get("batch").asInt());
        assertSpeeds(l, o.get("weights_bytes").asLong() / 3);
        assertTrue(l.get("load_ms").asDouble() > 0 && l.get("first_token_ms").asDouble() > 0, l.toString());
        assertEquals(l.get("decode_weight_gb_per_s").asDouble() / 20, l.get("decode_roofline_share").asDouble(), 0.002);
        assertEquals(o.get("decode_tokens_per_s").asDouble() / l.get("decode_tokens_per_s").asDouble(), o.get("decode_ratio").asDouble(), 0.01 * o.get("decode_ratio").asDouble() + 1e-3);
    }

    @Test
    void promptIdsAreDeterministicRegularTokensOfTheVocabulary() {
        assertArrayEquals(new int[] {13, 7932 % 1000, 15851 % 1000}, BenchCommand.promptIds(1000, 3));
        for (int id : BenchCommand.promptIds(200_000, 300)) {
            assertTrue(id >= 0 && id < 151_643, "special or out-of-vocabulary id " + id);
        }
    }

    @Test
    void benchVsLlamaCppReportsBothEnginesAndTheirRatios() throws Exception {
        Path oracle = OracleFiles.nodeLlamaCpp().getParent().getParent(); // skips (or fails in CI) when absent
        MainTest.Run r = MainTest.run("bench", "--model", gguf.toString(), "--prompt-tokens", "9", "--gen-tokens", "5", "--threads", "2", "--runs", "1", "--warmup", "0", "--vs-llama-cpp", "--oracle-dir", oracle.toString());
        assertEquals(0, r.code(), r.err());
        JsonNode o = new ObjectMapper().readTree(r.out());
        long bytes = o.get("weights_bytes").asLong();
        assertSpeeds(o, bytes);
        JsonNode l = o.get("llama_cpp");
        assertSpeeds(l, bytes);
        assertEquals(2, l.get("provenance").get("threads").asInt());
        assertEquals(o.get("decode_tokens_per_s").asDouble() / l.get("decode_tokens_per_s").asDouble(), o.get("decode_ratio").asDouble(), 0.01 * o.get("decode_ratio").asDouble() + 1e-3);
        assertEquals(o.get("prefill_tokens_per_s").asDouble() / l.get("prefill_tokens_per_s").asDouble(), o.get("prefill_ratio").asDouble(), 0.01 * o.get("prefill_ratio").asDouble() + 1e-3);
    }
}
