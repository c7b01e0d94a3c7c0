/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.engine.weights.ModelFormatException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class Qwen2ConfigTest {

    @TempDir Path dir;

    /** The Qwen2 report's table 1 gives 0.49B, 1.5B, 7.6B and 72.7B; counted from the shapes. */
    @Test
    void presetsReproduceTheReportsParameterCounts() {
        assertEquals(0.49, Qwen2Config.qwen2_0_5b().parameterCount() / 1e9, 0.005);
        assertEquals(1.54, Qwen2Config.qwen2_1_5b().parameterCount() / 1e9, 0.005);
        assertEquals(7.6, Qwen2Config.qwen2_7b().parameterCount() / 1e9, 0.05);
        assertEquals(72.7, Qwen2Config.qwen2_72b().parameterCount() / 1e9, 0.05);
        // exact counts, independently summed: embedding + 24 x (q,k,v with bias, o, 3 FFN, 2 norms) + norm
        long h = 896, kv = 128, f = 4864;
        long layer = h * h + h + 2 * (h * kv + kv) + h * h + 3 * h * f + 2 * h;
        assertEquals(151936 * h + 24 * layer + h, Qwen2Config.qwen2_0_5b().parameterCount());
    }

    @Test
    void presetsCarryTheReportsShapes() {
        Qwen2Config c = Qwen2Config.qwen2_7b();
        assertEquals(128, c.headDim());
        assertEquals(512, c.kvDim());
        assertEquals(7, c.kvGroups());
        assertFalse(c.tieWordEmbeddings());
        assertTrue(Qwen2Config.qwen2_0_5b().tieWordEmbeddings());
        assertEquals(64, Qwen2Config.qwen2_0_5b().headDim());
        assertEquals(8, Qwen2Config.qwen2_72b().numKeyValueHeads());
        assertEquals(1e6, Qwen2Config.preset("1.5B").ropeTheta());
    }

    @Test
    void constructorNamesTheInconsistentValue() {
        IllegalArgumentException e =
                assertThrows(
                        IllegalArgumentException.class,
                        () -> new Qwen2Config(100, 64, 128, 2, 5, 1, 128, 1e6, 1e-6, true, -1, -1));
        assertTrue(e.getMessage().contains("hidden_size 64 is not divisible by num_attention_heads 5"), e.getMessage());
        e =
                assertThrows(
                        IllegalArgumentException.class,
                        () -> new Qwen2Config(100, 64, 128, 2, 4, 3, 128, 1e6, 1e-6, true, -1, -1));
        assertTrue(e.getMessage().contains("num_key_value_heads 3"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Qwen2Config.preset("3b"));
        assertTrue(e.getMessage().contains("3b"));
    }

    @Test
    void configJsonRoundTrips() throws Exception {
        Qwen2Config c = Qwen2Config.qwen2_1_5b();
        Path f = dir.resolve("config.json");
        Files.write(f, c.toConfigJson().getBytes(StandardCharsets.UTF_8));
        assertEquals(c, Qwen2Config.fromConfigJson(f));
    }

    @Test
    void readsTheReleasedConfigJsonShape() throws Exception {
        // the keys and values of Qwen/Qwen2-0.5B-Instruct's config.json
        String json =
                "{\"architectures\":[\"Qwen2ForCausalLM\"],\"attention_dropout\":0.0,\"bos_token_id\":151643,"
                        + "\"eos_token_id\":151645,\"hidden_act\":\"silu\",\"hidden_size\":896,\"initializer_range\":0.02,"
                        + "\"intermediate_size\":4864,\"max_position_embeddings\":32768,\"max_window_layers\":24,"
                        + "\"model_type\":\"qwen2\",\"num_attention_heads\":14,\"num_hidden_layers\":24,"
                        + "\"num_key_value_heads\":2,\"rms_norm_eps\":1e-06,\"rope_theta\":1000000.0,"
                        + "\"sliding_window\":32768,\"tie_word_embeddings\":true,\"torch_dtype\":\"bfloat16\","
                        + "\"transformers_version\":\"4.40.1\",\"use_cache\":true,\"use_sliding_window\":false,"
                        + "\"vocab_size\":151936}";
        Path f = dir.resolve("config.json");
        Files.write(f, json.getBytes(StandardCharsets.UTF_8));
        assertEquals(Qwen2Config.qwen2_0_5b(), Qwen2Config.fromConfigJson(f));
    }

    @Test
    void badConfigJsonNamesFileAndKey() throws Exception {
        Path f = dir.resolve("config.json");
        Files.write(f, "{\"model_type\":\"qwen2\",\"hidden_size\":\"big\"}".getBytes(StandardCharsets.UTF_8));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> Qwen2Config.fromConfigJson(f));
        assertTrue(e.getMessage().contains(f.toString()) && e.getMessage().contains("vocab_size"), e.getMessage());
        Files.write(f, "{\"model_type\":\"llama\"}".getBytes(StandardCharsets.UTF_8));
        e = assertThrows(ModelFormatException.class, () -> Qwen2Config.fromConfigJson(f));
        assertTrue(e.getMessage().contains("llama"), e.getMessage());
        Files.write(f, "{not json".getBytes(StandardCharsets.UTF_8));
        e = assertThrows(ModelFormatException.class, () -> Qwen2Config.fromConfigJson(f));
        assertTrue(e.getMessage().contains(f.toString()), e.getMessage());
    }

    // ---- rope_scaling (YaRN) --------------------------------------------------------------

    /** The 0.5B/1.5B releases have 32K positions; 7B/72B reach 128K with YaRN 4x (the Qwen2 release). */
    @Test
    void sevenAndSeventyTwoBPresetsCarryYarnFourTimesThirtyTwoK() {
        for (Qwen2Config c : new Qwen2Config[] {Qwen2Config.qwen2_7b(), Qwen2Config.qwen2_72b()}) {
            assertTrue(c.ropeScaling().isYarn());
            assertEquals(4.0, c.ropeScaling().factor());
            assertEquals(32768, c.ropeScaling().originalMaxPositionEmbeddings());
            assertEquals(131072, c.maxPositionEmbeddings());
            assertEquals(32.0, c.ropeScaling().betaFast());
            assertEquals(1.0, c.ropeScaling().betaSlow());
            assertEquals(1.1386294361, c.ropeScaling().attentionFactor(), 1e-9); // 0.1 ln 4 + 1
        }
        for (Qwen2Config c : new Qwen2Config[] {Qwen2Config.qwen2_0_5b(), Qwen2Config.qwen2_1_5b()}) {
            assertEquals(RopeScaling.NONE, c.ropeScaling());
            assertEquals(32768, c.maxPositionEmbeddings());
        }
    }

    private Qwen2Config read(String ropeScaling) throws Exception {
        String json =
                "{\"model_type\":\"qwen2\",\"vocab_size\":152064,\"hidden_size\":3584,\"intermediate_size\":18944,"
                        + "\"num_hidden_layers\":28,\"num_attention_heads\":28,\"num_key_value_heads\":4,"
                        + "\"max_position_embeddings\":32768,\"rope_theta\":1000000.0,\"rms_norm_eps\":1e-06,"
                        + "\"tie_word_embeddings\":false,\"bos_token_id\":151643,\"eos_token_id\":151645"
                        + (ropeScaling == null ? "" : ",\"rope_scaling\":" + ropeScaling)
                        + "}";
        Path f = dir.resolve("config.json");
        Files.write(f, json.getBytes(StandardCharsets.UTF_8));
        return Qwen2Config.fromConfigJson(f);
    }

    @Test
    void readsQwensYarnRopeScalingAsTheModelCardWritesIt() throws Exception {
        // Qwen2-7B-Instruct's config.json plus the block its model card says to add for 128K
        Qwen2Config c = read("{\"factor\": 4.0, \"original_max_position_embeddings\": 32768, \"type\": \"yarn\"}");
        assertEquals(Qwen2Config.qwen2_7b(), c);
        // rope_type, no original_max_position_embeddings (then max_position_embeddings is the original)
        c = read("{\"rope_type\": \"yarn\", \"factor\": 2.0}");
        assertEquals(32768, c.ropeScaling().originalMaxPositionEmbeddings());
        assertEquals(65536, c.maxPositionEmbeddings());
        assertEquals(1 + 0.1 * Math.log(2), c.ropeScaling().attentionFactor(), 1e-12);
        // the optional keys
        c = read("{\"type\": \"yarn\", \"rope_type\": \"yarn\", \"factor\": 8, \"beta_fast\": 16, \"beta_slow\": 2,"
                + " \"mscale\": 0.707, \"mscale_all_dim\": 0.707}");
        assertEquals(16.0, c.ropeScaling().betaFast());
        assertEquals(2.0, c.ropeScaling().betaSlow());
        assertEquals(1.0, c.ropeScaling().attentionFactor(), 1e-12); // mscale / mscale_all_dim, equal
        c = read("{\"type\": \"yarn\", \"factor\": 8, \"mscale\": 1.0, \"mscale_all_dim\": 0.5}");
        assertEquals((0.1 * Math.log(8) + 1) / (0.05 * Math.log(8) + 1), c.ropeScaling().attentionFactor(), 1e-12);
        c = read("{\"type\": \"yarn\", \"factor\": 8, \"attention_factor\": 1.5}");
        assertEquals(1.5, c.ropeScaling().attentionFactor());
    }

    @Test
    void absentNullOrDefaultRopeScalingIsNone() throws Exception {
        assertEquals(RopeScaling.NONE, read(null).ropeScaling());
        assertEquals(RopeScaling.NONE, read("null").ropeScaling());
        assertEquals(RopeScaling.NONE, read("{\"rope_type\": \"default\"}").ropeScaling());
        assertEquals(32768, read("null").maxPositionEmbeddings());
    }

    @Test
    void unknownOrBrokenRopeScalingFailsNamingTheValueAndFile() throws Exception {
        for (String type : new String[] {"linear", "dynamic", "longrope", "llama3", "su"}) {
            ModelFormatException e =
                    assertThrows(ModelFormatException.class, () -> read("{\"type\": \"" + type + "\", \"factor\": 2.0}"));
            assertTrue(e.getMessage().contains("'" + type + "'") && e.getMessage().contains("not supported")
                    && e.getMessage().contains(dir.resolve("config.json").toString()), e.getMessage());
        }
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> read("{\"type\": \"yarn\"}"));
        assertTrue(e.getMessage().contains("'factor' is missing"), e.getMessage());
        e = assertThrows(ModelFormatException.class, () -> read("{\"type\": \"yarn\", \"factor\": 0.5}"));
        assertTrue(e.getMessage().contains("factor must be >= 1, got 0.5"), e.getMessage());
        e = assertThrows(ModelFormatException.class, () -> read("{\"type\": \"yarn\", \"rope_type\": \"linear\", \"factor\": 2}"));
        assertTrue(e.getMessage().contains("must agree"), e.getMessage());
        e = assertThrows(ModelFormatException.class, () -> read("{\"factor\": 2}"));
        assertTrue(e.getMessage().contains("no type or rope_type"), e.getMessage());
        e = assertThrows(ModelFormatException.class, () -> read("\"yarn\""));
        assertTrue(e.getMessage().contains("must be an object or null"), e.getMessage());
    }

    @Test
    void yarnConfigJsonRoundTrips() throws Exception {
        Qwen2Config c = Qwen2Config.qwen2_72b();
        Path f = dir.resolve("config.json");
        Files.write(f, c.toConfigJson().getBytes(StandardCharsets.UTF_8));
        String text = Files.readString(f);
        assertTrue(text.contains("\"rope_scaling\"") && text.contains("\"yarn\"")
                && text.contains("\"original_max_position_embeddings\" : 32768"), text);
        assertEquals(c, Qwen2Config.fromConfigJson(f));
        Qwen2Config odd = c.withRopeScaling(new RopeScaling("yarn", 2.5, 4096, 16, 2, 1.25), 4096);
        Files.write(f, odd.toConfigJson().getBytes(StandardCharsets.UTF_8));
        assertEquals(odd, Qwen2Config.fromConfigJson(f));
        assertEquals(10240, odd.maxPositionEmbeddings());
    }
}
