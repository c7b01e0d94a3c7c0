/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.jobs.cli;

import io.flinkqwen.engine.LoadedModel;
import java.io.PrintStream;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Locale;

/** The {@code --model} argument: a local GGUF file, a Hugging Face folder, or a Hugging Face id. */
final class ModelArgs {

    private ModelArgs() {}

    static LoadedModel load(String modelArg, PrintStream err) {
        Path path = Paths.get(modelArg);
        long t0 = System.nanoTime();
        LoadedModel model = LoadedModel.open(path);
        err.printf(
                Locale.ROOT,
                "loaded %s (%s, %s weights, %.2fB parameters) in %.2f s%n",
                model.source(), model.format(), model.weights().weightFormat(),
                model.config().parameterCount() / 1e9, (System.nanoTime() - t0) / 1e9);
        return model;
    }
}
