/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.gguf;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flinkqwen.engine.oracle.OracleFiles;
import io.flinkqwen.kernels.DType;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Our writer's files read by an independent GGUF parser: node-llama-cpp's {@code
 * readGgufFileInfo} (JavaScript, from the oracle npm packages). Where those are not installed
 * ({@code npm install} in {@code oracle/}) it is skipped saying why, or fails in CI (see {@link
 * OracleFiles}).
 */
class GgufIndependentReaderTest {

    private static final String SCRIPT =
            "import { readGgufFileInfo } from 'node-llama-cpp';\n"
                    + "const info = await readGgufFileInfo(process.argv[1], { logWarnings: false });\n"
                    + "const out = { version: info.version, tensorCount: info.tensorCount,\n"
                    + "  metadata: info.metadata, tensors: info.tensorInfo };\n"
                    + "process.stdout.write(JSON.stringify(out, (k, v) =>"
                    + " typeof v === 'bigint' ? v.toString() : v));\n";

    @TempDir Path dir;

    private static Path oracleDir() {
        // fails in CI, skips (saying why) elsewhere, when the npm packages are missing
        return OracleFiles.nodeLlamaCpp().getParent().getParent();
    }

    private static JsonNode readWithNode(Path oracle, Path file) throws IOException, InterruptedException {
        Process p;
        try {
            p =
                    new ProcessBuilder("node", "--input-type=module", "-e", SCRIPT, file.toString())
                            .directory(oracle.toFile())
                            .redirectError(ProcessBuilder.Redirect.INHERIT)
                            .start();
        } catch (IOException e) {
            throw new IOException("node is not on the PATH (needed for the GGUF cross-check): " + e.getMessage(), e);
        }
        byte[] out = p.getInputStream().readAllBytes();
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "node did not finish in 120 s");
        assertEquals(0, p.exitValue(), "node exit status");
        return new ObjectMapper().readTree(new String(out, StandardCharsets.UTF_8));
    }

    @Test
    void nodeLlamaCppReadsOurMetadataAndTensorInfos() throws Exception {
        Path oracle = oracleDir();
        List<String> tokens = new ArrayList<>();
        for (int i = 0; i < GgufRoundTripTest.VOCAB; i++) {
            tokens.add(i % 1000 == 0 ? "Ġ世界" + i : "t" + i);
        }
        GgufWriter w =
                new GgufWriter()
                        .put("general.architecture", "qwen2")
                        .put("general.name", "Größe 🙂")
                        .putUint32("qwen2.block_count", 24)
                        .putUint64("qwen2.context_length", 32768)
                        .putInt32("test.i32", -7)
                        .putInt8("test.i8", -3)
                        .putUint16("test.u16", 65535)
                        .putInt64("test.i64", -(1L << 40))
                        .putUint64("test.u64", Long.MAX_VALUE)
                        .putFloat32("qwen2.attention.layer_norm_rms_epsilon", 1e-6f)
                        .putFloat64("test.f64", Math.E)
                        .putBool("test.bool", true)
                        .putStringArray("tokenizer.ggml.tokens", tokens)
                        .putInt32Array("tokenizer.ggml.token_type", new int[] {1, 3, -1})
                        .putFloat32Array("tokenizer.ggml.scores", new float[] {0.5f, -2f});
        long[][] shapes = {{3, 7}, {4, 9}, {5, 11}, {2, 64}, {6, 32}, {2, 3, 4}};
        DType[] dtypes = {DType.F32, DType.F16, DType.BF16, DType.Q8_0, DType.Q4_0, DType.F32};
        for (int i = 0; i < shapes.length; i++) {
            long n = 1;
            for (long s : shapes[i]) {
                n *= s;
            }
            int bytes = (int) dtypes[i].rowBytes(shapes[i][shapes[i].length - 1]) * (int) (n / shapes[i][shapes[i].length - 1]);
            w.addTensor("t" + i, dtypes[i], shapes[i], () -> ByteBuffer.allocate(bytes));
        }
        Path file = dir.resolve("cross.gguf");
        w.write(file);

        JsonNode js = readWithNode(oracle, file);
        JsonNode m = js.get("metadata");
        assertEquals(3, js.get("version").asInt());
        assertEquals("qwen2", m.at("/general/architecture").asText());
        assertEquals("Größe 🙂", m.at("/general/name").asText());
        assertEquals(24, m.at("/qwen2/block_count").asInt());
        assertEquals(32768, m.at("/qwen2/context_length").asLong());
        assertEquals(-7, m.at("/test/i32").asInt());
        assertEquals(-3, m.at("/test/i8").asInt());
        assertEquals(65535, m.at("/test/u16").asInt());
        assertEquals(-(1L << 40), m.at("/test/i64").asLong());
        assertEquals(Long.toString(Long.MAX_VALUE), m.at("/test/u64").asText());
        assertEquals((double) 1e-6f, m.at("/qwen2/attention/layer_norm_rms_epsilon").asDouble());
        assertEquals(Math.E, m.at("/test/f64").asDouble());
        assertEquals(true, m.at("/test/bool").asBoolean());
        JsonNode jsTokens = m.at("/tokenizer/ggml/tokens");
        assertEquals(tokens.size(), jsTokens.size());
        for (int i = 0; i < tokens.size(); i++) {
            assertEquals(tokens.get(i), jsTokens.get(i).asText(), "token " + i);
        }
        assertEquals(-1, m.at("/tokenizer/ggml/token_type/2").asInt());
        assertEquals(-2.0, m.at("/tokenizer/ggml/scores/1").asDouble());

        try (GgufFile ours = GgufFile.open(file)) {
            JsonNode tensors = js.get("tensors");
            assertEquals(ours.tensors().size(), tensors.size());
            for (int i = 0; i < tensors.size(); i++) {
                GgufTensorInfo t = ours.tensors().get(i);
                JsonNode j = tensors.get(i);
                assertEquals(t.name(), j.get("name").asText());
                assertEquals(t.type().id(), j.get("ggmlType").asInt(), t.name());
                assertEquals(t.offset(), j.get("fileOffset").asLong(), t.name());
                long[] shape = t.shape();
                assertEquals(shape.length, j.get("dimensions").size());
                for (int d = 0; d < shape.length; d++) {
                    assertEquals(shape[shape.length - 1 - d], j.get("dimensions").get(d).asLong(), "ne" + d);
                }
            }
        }
    }
}
