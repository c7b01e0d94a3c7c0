/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.jobs.cli;

import io.flinkqwen.engine.LoadedModel;
import io.flinkqwen.engine.hub.ConsoleProgress;
import io.flinkqwen.engine.hub.HfHubClient;
import io.flinkqwen.engine.hub.HubException;
import io.flinkqwen.engine.hub.ModelLocator;
import io.flinkqwen.engine.hub.RepoRef;
import io.flinkqwen.engine.testmodel.TestModelGenerator;
import io.flinkqwen.kernels.DType;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/** The {@code --model} argument: a local GGUF file, a Hugging Face folder, or a Hugging Face id. */
final class ModelArgs {

    /** The model the README's main command runs when {@code --model} is not given. */
    static final String DEFAULT_MODEL = "Qwen/Qwen2-0.5B-Instruct";

    /** Hub ids whose shape {@link RandomWeights#qwen2_0_5b} has: these may fall back to it. */
    static final Set<String> FALLBACK_IDS = Set.of("Qwen/Qwen2-0.5B-Instruct", "Qwen/Qwen2-0.5B");

    private ModelArgs() {}

    /**
     * The model a job runs.
     *
     * @param path the file or folder every task manager opens
     * @param name what results carry as {@code "model"}: the hub id, the file or folder's name,
     *     or {@code random-weights-<preset>-shape}
     * @param randomWeights true when the fallback replaced the requested model
     */
    record JobModel(Path path, String name, boolean randomWeights) {}

    /**
     * Random weights of a real model's shape, written by our generator into {@code cacheDir} the
     * first time and reused after (DESIGN.md, "Models, online and offline").
     *
     * @param preset a {@link TestModelGenerator#preset} name ({@code 0.5b}, or {@code tiny} in tests)
     */
    record RandomWeights(String preset, DType dtype, long seed, Path cacheDir) {

        /** Qwen2-0.5B's shape in Q8_0 (about 0.5 GB), seed 1, in the cache {@link #cacheDir(Map)} names. */
        static RandomWeights qwen2_0_5b(Map<String, String> env) {
            return new RandomWeights("0.5b", DType.Q8_0, 1, cacheDir(env));
        }

        /** The name results carry, so nobody mistakes the text for a model's answer. */
        String name() {
            return "random-weights-" + preset + "-shape";
        }

        Path file() {
            return cacheDir.resolve(name() + "-" + dtype.name().toLowerCase(Locale.ROOT) + "-seed" + seed + ".gguf");
        }

        /** The cached file, written first if missing (to a temporary name, then moved into place). */
        Path ensure(PrintStream err) throws IOException {
            Path file = file();
            if (Files.isRegularFile(file)) {
                return file;
            }
            Files.createDirectories(cacheDir);
            Path tmp = Files.createTempFile(cacheDir, file.getFileName().toString(), ".partial");
            try {
                long t0 = System.nanoTime();
                TestModelGenerator gen = new TestModelGenerator(TestModelGenerator.preset(preset), seed);
                err.printf(Locale.ROOT, "writing a random-weight model of the %s shape (%.2fB parameters, %s) to %s,"
                        + " once...%n", preset, gen.parameterCount() / 1e9, dtype, file);
                gen.write(TestModelGenerator.Format.GGUF, dtype, tmp, 0);
                // a run stopped half-way leaves a .partial file, never a truncated model under the final name
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
                err.printf(Locale.ROOT, "wrote %s in %.1f s%n", file.getFileName(), (System.nanoTime() - t0) / 1e9);
            } finally {
                Files.deleteIfExists(tmp);
            }
            return file;
        }

        /**
         * {@code FLINK_QWEN_CACHE}, else {@code $XDG_CACHE_HOME/flink-qwen}, else
         * {@code ~/.cache/flink-qwen}.
         */
        static Path cacheDir(Map<String, String> env) {
            String own = env.get("FLINK_QWEN_CACHE");
            if (own != null && !own.isBlank()) {
                return Path.of(own);
            }
            String xdg = env.get("XDG_CACHE_HOME");
            Path root = xdg != null && !xdg.isBlank() ? Path.of(xdg) : Path.of(System.getProperty("user.home"), ".cache");
            return root.resolve("flink-qwen");
        }
    }

    /**
     * Resolves {@code modelArg} as {@link ModelLocator} does, with the hub configured from {@code
     * env}. When it is one of {@link #FALLBACK_IDS} and cannot be downloaded (no network, a
     * firewall, {@code HF_HUB_OFFLINE} without a cached copy), says so in one line on {@code err}
     * and returns {@code fallback} instead: a random-weight model of the same shape.
     *
     * @param fallback null: no fallback, the hub's error is thrown
     * @throws HubException for any other failure, or any failure without a fallback
     */
    static JobModel resolveForJob(String command, String modelArg, Map<String, String> env, RandomWeights fallback,
            PrintStream err) throws IOException {
        Optional<RepoRef> ref = isLocal(modelArg) ? Optional.empty() : RepoRef.parse(modelArg);
        HfHubClient hub = HfHubClient.builder(env)
                .notes(err::println)
                .progress(err == System.err ? ConsoleProgress.stderr() : new ConsoleProgress(err, false, System::nanoTime))
                .build();
        try {
            Path path = ModelLocator.resolve(modelArg, hub);
            return new JobModel(path, ref.map(RepoRef::repoId).orElse(path.getFileName().toString()), false);
        } catch (HubException e) {
            if (fallback == null || ref.isEmpty() || !FALLBACK_IDS.contains(ref.get().repoId()) || !offline(e)) {
                throw e;
            }
            err.println(command + ": cannot download " + modelArg + " (" + e.getMessage() + "); RUNNING ON RANDOM WEIGHTS"
                    + " of its shape instead: every result says \"model\": \"" + fallback.name() + "\" and its text"
                    + " means nothing. For the real model pass --model with a local .gguf file or Hugging Face folder");
            return new JobModel(fallback.ensure(err), fallback.name(), true);
        }
    }

    private static boolean isLocal(String modelArg) {
        try {
            return Files.exists(Path.of(modelArg));
        } catch (java.nio.file.InvalidPathException e) {
            return false;
        }
    }

    /** The hub cannot be reached or is switched off; not an answer about the model (404, 401). */
    private static boolean offline(HubException e) {
        switch (e.reason()) {
            case UNREACHABLE:
            case OFFLINE_NOT_CACHED:
            case DOWNLOAD_INCOMPLETE:
            case HTTP_ERROR:
                return true;
            default:
                return false;
        }
    }

    static LoadedModel load(String modelArg, PrintStream err) {
        // a local file or folder as is; an id such as Qwen/Qwen2-0.5B-Instruct from the hub cache,
        // downloaded with a progress bar on stderr when missing
        Path path = ModelLocator.resolve(modelArg);
        long t0 = System.nanoTime();
        LoadedModel model = LoadedModel.open(path);
        err.printf(
                Locale.ROOT,
                "loaded %s (%s, %s weights, %.2fB parameters%s) in %.2f s%n",
                model.source(), model.format(), model.weights().weightFormat(),
                model.parameterCount() / 1e9,
                model.moeConfig().isPresent()
                        ? String.format(Locale.ROOT, ", %.2fB active", model.activeParameterCount() / 1e9)
                        : "",
                (System.nanoTime() - t0) / 1e9);
        return model;
    }
}
