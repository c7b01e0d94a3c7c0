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

import io.flinkqwen.engine.gguf.GgufFile;
import io.flinkqwen.engine.gguf.GgufWriter;
import java.nio.file.Path;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The GGUF side of {@link RopeScaling}: the {@code <arch>.rope.scaling.*} keys llama.cpp reads. */
class RopeScalingGgufTest {

    @TempDir Path dir;

    private RopeScaling read(Consumer<GgufWriter> keys) throws Exception {
        GgufWriter w = new GgufWriter().put("general.architecture", "qwen2");
        keys.accept(w);
        Path f = dir.resolve("keys.gguf");
        w.write(f);
        try (GgufFile g = GgufFile.open(f)) {
            return RopeScaling.fromGguf(g, "qwen2", 32768);
        }
    }

    @Test
    void readsYarnKeysAsLlamaCppDoes() throws Exception {
        RopeScaling r =
                read(w -> w.put("qwen2.rope.scaling.type", "yarn")
                        .putFloat32("qwen2.rope.scaling.factor", 4f)
                        .putUint32("qwen2.rope.scaling.original_context_length", 32768));
        assertEquals(RopeScaling.yarn(4, 32768), r);
        assertEquals(131072, r.extendedPositions());
        // no original_context_length: llama.cpp takes the context length
        r = read(w -> w.put("qwen2.rope.scaling.type", "yarn").putFloat32("qwen2.rope.scaling.factor", 2f));
        assertEquals(32768, r.originalMaxPositionEmbeddings());
        // attn_factor multiplies llama.cpp's 0.1 ln(factor) + 1
        r = read(w -> w.put("qwen2.rope.scaling.type", "yarn")
                .putFloat32("qwen2.rope.scaling.factor", 4f)
                .putFloat32("qwen2.rope.scaling.attn_factor", 0.5f));
        assertEquals(0.5 * (0.1 * Math.log(4) + 1), r.attentionFactor(), 1e-12);
    }

    @Test
    void noTypeOrNoneIsNoScaling() throws Exception {
        assertEquals(RopeScaling.NONE, read(w -> {}));
        assertEquals(RopeScaling.NONE, read(w -> w.put("qwen2.rope.scaling.type", "none")));
        assertEquals(RopeScaling.NONE, read(w -> w.put("qwen2.rope.scaling.type", "none").putFloat32("qwen2.rope.scaling.factor", 4f)));
        assertEquals(RopeScaling.NONE, read(w -> w.putFloat32("qwen2.rope.scaling.factor", 1f)));
    }

    @Test
    void unsupportedScalingFailsNamingTheKeyAndValue() throws Exception {
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> read(w -> w.put("qwen2.rope.scaling.type", "longrope")));
        assertTrue(e.getMessage().contains("qwen2.rope.scaling.type") && e.getMessage().contains("'longrope'"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> read(w -> w.put("qwen2.rope.scaling.type", "linear").putFloat32("qwen2.rope.scaling.factor", 2f)));
        assertTrue(e.getMessage().contains("'linear'"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> read(w -> w.putFloat32("qwen2.rope.scaling.factor", 2f)));
        assertTrue(e.getMessage().contains("qwen2.rope.scaling.factor is 2.0 without"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> read(w -> w.put("qwen2.rope.scaling.type", "yarn")));
        assertTrue(e.getMessage().contains("qwen2.rope.scaling.factor is missing"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> read(w -> w.put("qwen2.rope.scaling.type", "yarn")
                        .putFloat32("qwen2.rope.scaling.factor", 4f)
                        .putFloat32("qwen2.rope.scaling.yarn_log_multiplier", 0.1f)));
        assertTrue(e.getMessage().contains("yarn_log_multiplier"), e.getMessage());
    }

    @Test
    void writtenKeysReadBack() throws Exception {
        for (RopeScaling s : new RopeScaling[] {
            RopeScaling.yarn(4, 32768), RopeScaling.yarn(8, 64), new RopeScaling("yarn", 2, 4096, 16, 2, 1.5), RopeScaling.NONE
        }) {
            RopeScaling back = read(w -> s.putGguf(w, "qwen2"));
            assertEquals(s.type(), back.type());
            assertEquals(s.factor(), back.factor());
            assertEquals(s.originalMaxPositionEmbeddings(), back.originalMaxPositionEmbeddings());
            assertEquals(s.betaFast(), back.betaFast());
            assertEquals(s.betaSlow(), back.betaSlow());
            assertEquals(s.attentionFactor(), back.attentionFactor(), 1e-6); // attn_factor is a float32
        }
        assertFalse(RopeScaling.NONE.isYarn());
    }
}
