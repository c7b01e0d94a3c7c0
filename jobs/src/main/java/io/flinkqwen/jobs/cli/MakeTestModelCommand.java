/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.jobs.cli;

import io.flinkqwen.engine.config.Qwen2Config;
import io.flinkqwen.engine.config.Qwen2MoeConfig;
import io.flinkqwen.engine.config.RopeScaling;
import io.flinkqwen.engine.testmodel.TestModelGenerator;
import io.flinkqwen.kernels.DType;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/** {@code make-test-model}: a random-weight Qwen2 or Qwen2-MoE model from a seed. */
final class MakeTestModelCommand implements Main.Command {

    @Override
    public String usage() {
        return String.join(
                "\n",
                "usage: flink-qwen make-test-model --arch qwen2 --preset tiny|tiny-tied|tiny-yarn|0.5b|1.5b|7b|72b",
                "       flink-qwen make-test-model --arch qwen2moe --preset tiny|tiny-mixed|half-a2.7b|a2.7b|57b-a14b",
                "         --dtype f32|f16|bf16|q8_0|q4_0 --format gguf|hf --seed N --out PATH",
                "         [--shard-size BYTES] [--yarn FACTOR:ORIGINAL_CONTEXT|none] [--spread-routing]",
                "",
                "Writes random weights (the same numbers in either format) with a synthetic",
                "byte-level BPE vocabulary. --out is the .gguf file, or the folder for --format hf.",
                "--shard-size splits the safetensors into shards with model.safetensors.index.json.",
                "--yarn sets YaRN rope scaling (GGUF rope.scaling.* keys, config.json rope_scaling):",
                "the model serves FACTOR x ORIGINAL_CONTEXT positions; 'none' removes the preset's",
                "(7b, 72b and tiny-yarn carry YaRN). --spread-routing (qwen2moe) drops the q/k/v",
                "biases and sharpens attention so that the router spreads a chunk's tokens over",
                "more experts, closer to a trained model than the default weights: for speed runs.");
    }

    @Override
    public void run(List<String> argv, PrintStream out, PrintStream err) throws Exception {
        Args a =
                Args.parse(
                        "make-test-model",
                        argv,
                        Set.of("arch", "preset", "dtype", "format", "seed", "out", "shard-size", "yarn"),
                        Set.of("spread-routing"));
        String arch = a.string("arch", "qwen2");
        if (!arch.equals("qwen2") && !arch.equals("qwen2moe")) {
            throw new Args.UsageException(
                    "make-test-model: --arch " + arch + " is not supported (supported: qwen2, qwen2moe)");
        }
        Qwen2Config preset = null;
        Qwen2MoeConfig moePreset = null;
        try {
            if (arch.equals("qwen2moe")) {
                moePreset = TestModelGenerator.moePreset(a.string("preset", "tiny"));
            } else {
                preset = TestModelGenerator.preset(a.string("preset", "tiny"));
            }
        } catch (IllegalArgumentException e) {
            throw new Args.UsageException("make-test-model: " + e.getMessage());
        }
        if (a.has("yarn")) {
            RopeScaling scaling = parseYarn(a.string("yarn"));
            // without YaRN the model keeps the original context it had before the extension
            if (preset != null) {
                int positions = scaling.isYarn() ? scaling.originalMaxPositionEmbeddings() : originalContext(preset);
                preset = preset.withRopeScaling(scaling, positions);
            } else {
                int positions = scaling.isYarn()
                        ? scaling.originalMaxPositionEmbeddings()
                        : originalContext(moePreset.dense());
                moePreset = moePreset.withRopeScaling(scaling, positions);
            }
        }
        DType dtype;
        try {
            dtype = TestModelGenerator.parseDType(a.string("dtype", "f32"));
        } catch (IllegalArgumentException e) {
            throw new Args.UsageException("make-test-model: " + e.getMessage());
        }
        TestModelGenerator.Format format;
        String f = a.string("format", "gguf").toUpperCase(Locale.ROOT);
        try {
            format = TestModelGenerator.Format.valueOf(f);
        } catch (IllegalArgumentException e) {
            throw new Args.UsageException("make-test-model: --format must be gguf or hf, got '" + a.string("format") + "'");
        }
        long seed = a.longValue("seed", 42);
        Path outPath = Paths.get(a.string("out"));
        long shard = a.longValue("shard-size", 0);
        if (shard > 0 && format != TestModelGenerator.Format.HF) {
            throw new Args.UsageException("make-test-model: --shard-size applies to --format hf only");
        }
        TestModelGenerator gen =
                moePreset != null ? new TestModelGenerator(moePreset, seed) : new TestModelGenerator(preset, seed);
        if (a.flag("spread-routing")) {
            if (moePreset == null) {
                throw new Args.UsageException("make-test-model: --spread-routing applies to --arch qwen2moe only");
            }
            gen.spreadRouting();
        }
        err.printf(
                Locale.ROOT,
                "writing a random-weight %s model: %.3fB parameters, %s, %s, seed %d -> %s%n",
                arch, gen.parameterCount() / 1e9, dtype, format.name().toLowerCase(Locale.ROOT), seed, outPath);
        long t0 = System.nanoTime();
        gen.write(format, dtype, outPath, shard);
        long bytes =
                Files.isDirectory(outPath)
                        ? Files.walk(outPath).filter(Files::isRegularFile).mapToLong(p -> p.toFile().length()).sum()
                        : Files.size(outPath);
        err.printf(Locale.ROOT, "wrote %.1f MB in %.1f s%n", bytes / 1e6, (System.nanoTime() - t0) / 1e9);
    }

    private static int originalContext(Qwen2Config c) {
        return c.ropeScaling().isYarn() ? c.ropeScaling().originalMaxPositionEmbeddings() : c.maxPositionEmbeddings();
    }

    /** {@code FACTOR:ORIGINAL_CONTEXT} (YaRN with the default betas) or {@code none}. */
    static RopeScaling parseYarn(String value) {
        if (value.equalsIgnoreCase("none")) {
            return RopeScaling.NONE;
        }
        String[] parts = value.split(":", -1);
        try {
            if (parts.length == 2) {
                return RopeScaling.yarn(Double.parseDouble(parts[0]), Integer.parseInt(parts[1]));
            }
        } catch (IllegalArgumentException e) { // NumberFormatException too
            throw new Args.UsageException("make-test-model: --yarn " + value + ": " + e.getMessage());
        }
        throw new Args.UsageException(
                "make-test-model: --yarn takes FACTOR:ORIGINAL_CONTEXT (such as 4:32768) or none, got '" + value + "'");
    }
}
