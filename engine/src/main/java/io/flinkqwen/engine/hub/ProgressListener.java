/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.hub;

import java.nio.file.Path;

/**
 * Told how a download goes. {@link HfHubClient} calls it from the thread that called {@code
 * snapshot}, one file at a time; {@link #progress} is called for every buffer received
 * (kilobytes), so an implementation that draws must throttle itself, as {@link ConsoleProgress}
 * does.
 *
 * <p>Byte counts are of the whole file: a resumed download starts at the bytes already on disk.
 * A total of {@code -1} means the server did not say.
 */
@FunctionalInterface
public interface ProgressListener {

    /** Hears nothing. */
    ProgressListener NONE = (file, bytesDone, totalBytes) -> {};

    /**
     * Bytes of {@code file} (its name in the repo) on disk so far, out of {@code totalBytes}.
     */
    void progress(String file, long bytesDone, long totalBytes);

    /**
     * Before the first byte of a file is requested.
     *
     * @param resumedFrom bytes kept from an earlier, interrupted try (0 for a fresh download)
     */
    default void started(String file, long resumedFrom, long totalBytes) {}

    /** After a file is complete and its digest checked; {@code transferred} excludes resumed bytes. */
    default void finished(String file, long totalBytes, long transferred, long elapsedNanos) {}

    /**
     * After a file's download failed for good (the exception follows); {@code bytesDone} are
     * kept on disk for the next try, unless the file was corrupt.
     */
    default void stopped(String file, long bytesDone, long totalBytes) {}

    /**
     * Once per {@code snapshot} call that returns: how many of the wanted files there are, how many
     * were fetched now, and where the snapshot is.
     *
     * @param commit the commit hash of the snapshot
     * @param fromCache true when the answer came from the cache without asking the hub (offline, or
     *     the hub could not be reached)
     */
    default void snapshotReady(
            String repoId,
            String commit,
            int files,
            int downloadedFiles,
            long downloadedBytes,
            long elapsedNanos,
            Path folder,
            boolean fromCache) {}
}
