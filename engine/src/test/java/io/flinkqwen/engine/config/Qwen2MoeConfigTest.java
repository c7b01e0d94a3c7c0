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
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class Qwen2MoeConfigTest {

    @TempDir Path dir;

    /**
     * Qwen2 technical report: Qwen2-57B-A14B has 57B parameters, 14B activated. By the shapes:
     * per layer attention 29.4M, 64 experts x 27.5M, shared expert 220.2M, router 0.23M; 28
     * layers; embedding and untied head 2 x 544.5M. Total 57.41B, active (8 experts) 14.25B.
     */
    @Test
    void qwen2_57bA14bHas57_4BParametersOf14_2BActive() {
        Qwen2MoeConfig c = Qwen2MoeConfig.qwen2_57b_a14b();
        assertEquals(57.4, c.parameterCount() / 1e9, 0.05);
        assertEquals(14.2, c.activeParameterCount() / 1e9, 0.06);
        assertEquals(28, c.moeLayerCount());
    }

    /**
     * Qwen1.5-MoE-A2.7B (model card: 14.3B total, 2.7B activated; the Qwen blog: 2.0B activated
     * non-embedding). Per layer: attention 16.8M, 60 experts x 8.65M, shared 34.6M, router 0.12M;
     * 24 layers; embedding and head 2 x 311.2M. Total 14.32B, active (4 experts) 2.69B, of which
     * 2.07B outside the embeddings.
     */
    @Test
    void qwen15MoeA2_7bHas14_3BParametersOf2_7BActive() {
        Qwen2MoeConfig c = Qwen2MoeConfig.qwen15_moe_a2_7b();
        assertEquals(14.3, c.parameterCount() / 1e9, 0.05);
        assertEquals(2.7, c.activeParameterCount() / 1e9, 0.05);
        long embeddings = 2L * c.vocabSize() * c.hiddenSize();
        assertEquals(2.0, (c.activeParameterCount() - embeddings) / 1e9, 0.1);
    }

    @Test
    void sparseLayersFollowDecoderSparseStepAndMlpOnlyLayers() {
        Qwen2MoeConfig c =
                new Qwen2MoeConfig(512, 128, 256, 6, 4, 2, 1024, 1e6, 1e-6, false, -1, -1, 8, 2, 64, 128, false, 2, List.of(3));
        // (l + 1) % 2 == 0 -> 1, 3, 5; 3 is mlp-only
        assertFalse(c.isMoeLayer(0));
        assertTrue(c.isMoeLayer(1));
        assertFalse(c.isMoeLayer(2));
        assertFalse(c.isMoeLayer(3));
        assertTrue(c.isMoeLayer(5));
        assertEquals(2, c.moeLayerCount());
        Qwen2MoeConfig none =
                new Qwen2MoeConfig(512, 128, 256, 2, 4, 2, 1024, 1e6, 1e-6, false, -1, -1, 0, 0, 0, 0, false, 1, List.of());
        assertFalse(none.isMoeLayer(0), "no experts: every layer is dense");
    }

    @Test
    void constructorNamesTheWrongValue() {
        IllegalArgumentException e =
                assertThrows(
                        IllegalArgumentException.class,
                        () -> new Qwen2MoeConfig(512, 128, 256, 3, 4, 2, 1024, 1e6, 1e-6, false, -1, -1, 8, 9, 64, 128, false, 1, List.of()));
        assertTrue(e.getMessage().contains("num_experts_per_tok 9") && e.getMessage().contains("num_experts 8"), e.getMessage());
        e =
                assertThrows(
                        IllegalArgumentException.class,
                        () -> new Qwen2MoeConfig(512, 128, 256, 3, 4, 2, 1024, 1e6, 1e-6, false, -1, -1, 8, 2, 64, 128, false, 1, List.of(3)));
        assertTrue(e.getMessage().contains("mlp_only_layers names layer 3"), e.getMessage());
        e =
                assertThrows(
                        IllegalArgumentException.class,
                        () -> new Qwen2MoeConfig(512, 128, 256, 3, 4, 2, 1024, 1e6, 1e-6, false, -1, -1, 8, 2, 64, 128, false, 0, List.of()));
        assertTrue(e.getMessage().contains("decoder_sparse_step"), e.getMessage());
    }

    @Test
    void configJsonRoundTrips() throws Exception {
        Qwen2MoeConfig c =
                new Qwen2MoeConfig(512, 128, 256, 4, 4, 2, 1024, 1e6, 1e-6, false, 3, 4, 8, 2, 64, 128, true, 2, List.of(1));
        Path f = dir.resolve("config.json");
        Files.write(f, c.toConfigJson().getBytes(StandardCharsets.UTF_8));
        assertEquals("qwen2_moe", Qwen2MoeConfig.modelType(f));
        assertEquals(c, Qwen2MoeConfig.fromConfigJson(f));
        // with YaRN: rope_scaling travels with the dense keys, and the context grows to 4 x 512
        Qwen2MoeConfig yarn = c.withRopeScaling(RopeScaling.yarn(4, 512), 512);
        assertEquals(2048, yarn.maxPositionEmbeddings());
        assertEquals(yarn.ropeScaling(), yarn.dense().ropeScaling());
        Files.write(f, yarn.toConfigJson().getBytes(StandardCharsets.UTF_8));
        assertEquals(yarn, Qwen2MoeConfig.fromConfigJson(f));
    }

    @Test
    void configJsonWithoutExpertKeysIsRejectedNamingTheKey() throws Exception {
        Path f = dir.resolve("config.json");
        String json = Qwen2MoeConfig.qwen15_moe_a2_7b().toConfigJson().replace("\"moe_intermediate_size\"", "\"x\"");
        Files.write(f, json.getBytes(StandardCharsets.UTF_8));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> Qwen2MoeConfig.fromConfigJson(f));
        assertTrue(e.getMessage().contains("'moe_intermediate_size' is missing"), e.getMessage());
        Files.write(f, Qwen2Config.qwen2_7b().toConfigJson().getBytes(StandardCharsets.UTF_8));
        e = assertThrows(ModelFormatException.class, () -> Qwen2MoeConfig.fromConfigJson(f));
        assertTrue(e.getMessage().contains("model_type is 'qwen2'"), e.getMessage());
    }
}
