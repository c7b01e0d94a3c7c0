/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.hub;

import io.flinkqwen.engine.hub.HubException.Reason;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Optional;
import java.util.Set;
import java.util.function.Predicate;
import java.util.stream.Stream;

/**
 * Turns a {@code --model} argument into a path the weight loaders can open:
 *
 * <ul>
 *   <li>an existing {@code .gguf} or {@code .safetensors} file: returned as is;
 *   <li>an existing folder with {@code config.json} and at least one {@code *.safetensors} (a
 *       Hugging Face model folder): returned as is;
 *   <li>otherwise {@code org/name} or {@code org/name@revision}: the hub snapshot of {@link
 *       #MODEL_FILES}, downloaded or from the cache, checked the same way as a local folder.
 * </ul>
 *
 * A local path wins over a hub id of the same spelling. Anything else is a {@link HubException}
 * with reason {@link Reason#NOT_A_MODEL} whose message says what was expected.
 */
public final class ModelLocator {

    private static final Set<String> MODEL_FILE_NAMES = Set.of(
            "config.json",
            "generation_config.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "model.safetensors.index.json");

    /**
     * The files a Qwen2 model needs from a hub repo: {@code config.json}, {@code
     * generation_config.json}, {@code tokenizer.json}, {@code tokenizer_config.json}, {@code
     * model.safetensors.index.json} and every {@code *.safetensors}, all at the repo's top level
     * (variants in sub-folders, e.g. {@code onnx/}, are skipped so they are not downloaded too).
     */
    public static final Predicate<String> MODEL_FILES =
            name -> name.indexOf('/') < 0
                    && (MODEL_FILE_NAMES.contains(name) || name.endsWith(".safetensors"));

    private ModelLocator() {}

    /** {@link #resolve(String, HfHubClient)} with a client configured from the environment. */
    public static Path resolve(String modelArg) {
        return resolve(modelArg, null);
    }

    /**
     * @param client used only when the argument is a hub id; null means {@link
     *     HfHubClient#fromEnvironment()}, created then
     * @return the model file or folder
     * @throws HubException naming the argument and what was expected, or the hub's failure
     */
    public static Path resolve(String modelArg, HfHubClient client) {
        if (modelArg == null || modelArg.isBlank()) {
            throw notAModel("the model argument is empty: pass a .gguf file, a Hugging Face model"
                    + " folder or a hub id such as Qwen/Qwen2-0.5B-Instruct");
        }
        Optional<Path> local = existing(modelArg);
        if (local.isPresent()) {
            return checkLocal(local.get());
        }
        Optional<RepoRef> ref = RepoRef.parse(modelArg);
        if (ref.isEmpty()) {
            throw notAModel("'" + modelArg + "' is not a file, folder or Hugging Face id: pass a"
                    + " .gguf file, a folder with config.json and *.safetensors, or org/name[@revision]");
        }
        HfHubClient hub = client != null ? client : HfHubClient.fromEnvironment();
        Path snapshot;
        try {
            snapshot = hub.snapshot(ref.get().repoId(), ref.get().revision(), MODEL_FILES);
        } catch (HubException e) {
            if (e.reason() == Reason.NOT_FOUND) {
                throw new HubException(Reason.NOT_FOUND, e.getMessage()
                        + "; no local file or folder '" + modelArg + "' exists either", e);
            }
            throw e;
        }
        String problem = folderProblem(snapshot);
        if (problem != null) {
            throw notAModel(ref.get() + " is not a Hugging Face safetensors model: its snapshot "
                    + snapshot + " " + problem + " (for a GGUF repo, download the .gguf file and"
                    + " pass its path)");
        }
        return snapshot;
    }

    private static Optional<Path> existing(String arg) {
        try {
            Path path = Path.of(arg);
            return Files.exists(path) ? Optional.of(path) : Optional.empty();
        } catch (InvalidPathException e) {
            return Optional.empty();
        }
    }

    private static Path checkLocal(Path path) {
        if (Files.isDirectory(path)) {
            String problem = folderProblem(path);
            if (problem != null) {
                throw notAModel("folder " + path + " " + problem
                        + ": a Hugging Face model folder needs config.json and *.safetensors");
            }
            return path;
        }
        String name = path.getFileName().toString().toLowerCase(Locale.ROOT);
        if (!Files.isRegularFile(path) || !(name.endsWith(".gguf") || name.endsWith(".safetensors"))) {
            throw notAModel("file " + path + " is not a model: expected a .gguf or .safetensors"
                    + " file, or a folder with config.json");
        }
        return path;
    }

    /** What a model folder lacks, or null if it has config.json and a safetensors file. */
    private static String folderProblem(Path dir) {
        boolean config = Files.isRegularFile(dir.resolve("config.json"));
        boolean weights;
        try (Stream<Path> files = Files.list(dir)) {
            weights = files.anyMatch(p -> p.getFileName().toString().endsWith(".safetensors")
                    && Files.isRegularFile(p));
        } catch (IOException e) {
            return "cannot be listed (" + HubHttp.describe(e) + ")";
        }
        if (!config && !weights) {
            return "has neither config.json nor *.safetensors";
        }
        if (!config) {
            return "has no config.json";
        }
        return weights ? null : "has no *.safetensors file";
    }

    private static HubException notAModel(String message) {
        return new HubException(Reason.NOT_A_MODEL, message);
    }
}
