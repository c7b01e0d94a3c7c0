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
}
