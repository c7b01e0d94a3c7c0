/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.inference;

import io.flinkqwen.engine.LoadedModel;
import io.flinkqwen.engine.weights.ModelFormatException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import org.apache.flink.annotation.Internal;
import org.apache.flink.runtime.execution.SuppressRestartsException;

/**
 * Opens the model of an operator or function instance (in {@code open()}) and tells Flink which
 * failures a restart cannot cure.
 *
 * <ul>
 *   <li>A file that is there but unusable (truncated, corrupt, a missing tensor, a wrong shape or
 *       dtype, an unsupported architecture: {@link ModelFormatException}) is the same file on the
 *       next attempt: it fails the job at once, under any restart strategy, including Flink's
 *       default with checkpoints (restart forever). Flink's mechanism for that is a {@link
 *       SuppressRestartsException} in the cause chain (its scheduler classifies it as a
 *       non-recoverable error); the engine's message, which names the file, is its cause.
 *   <li>No file at the path, and I/O errors while reading (an unmounted or flaky file system, no
 *       permission) may be transient on a cluster (a model still being copied to this
 *       TaskManager, a mount coming back, a restart scheduled on another TaskManager that has the
 *       file): they stay ordinary failures, and the job's restart strategy decides how often to
 *       retry. Bound them with a {@code failure-rate} or {@code fixed-delay} strategy; the
 *       command line jobs also check on the client that the path exists before submitting.
 * </ul>
 *
 * A file still being written looks truncated: copy models to a temporary name and rename them
 * into place.
 */
@Internal
public final class ModelLoading {

    private ModelLoading() {}

    /**
     * Opens {@code path} as {@link LoadedModel#open(Path)} does.
     *
     * @throws UncheckedIOException with a {@link NoSuchFileException} if nothing is at {@code path}
     *     (restartable)
     * @throws SuppressRestartsException caused by the engine's {@link ModelFormatException} if the
     *     file or folder is unusable (not restartable)
     */
    public static LoadedModel open(Path path) {
        if (!Files.exists(path)) {
            throw new UncheckedIOException(new NoSuchFileException(path.toString(), null,
                    "no model file or folder at this path on this TaskManager (" + host() + "); the job restarts"
                            + " as its restart strategy says, in case the file is still on its way"));
        }
        try {
            return LoadedModel.open(path);
        } catch (ModelFormatException e) {
            throw unrecoverable(e);
        }
    }

    /**
     * {@code cause} wrapped so that Flink fails the job instead of restarting it: for failures
     * that every attempt would repeat (an unusable model, settings that contradict the model).
     */
    public static SuppressRestartsException unrecoverable(Throwable cause) {
        return new SuppressRestartsException(cause);
    }

    private static String host() {
        try {
            return java.net.InetAddress.getLocalHost().getHostName();
        } catch (java.net.UnknownHostException e) {
            return "host name unknown";
        }
    }
}
