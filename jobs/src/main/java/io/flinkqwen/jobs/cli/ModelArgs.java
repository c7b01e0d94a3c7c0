/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.jobs.cli;

import io.flinkqwen.engine.LoadedModel;
import io.flinkqwen.engine.hub.ModelLocator;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Locale;

/** The {@code --model} argument: a local GGUF file, a Hugging Face folder, or a Hugging Face id. */
final class ModelArgs {

    private ModelArgs() {}

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
