/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.hub;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Predicate;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * The Hugging Face cache layout, shared with Python's {@code huggingface_hub}:
 *
 * <pre>
 * {root}/models--{org}--{name}/
 *     blobs/{etag}                    file contents, named by their ETag
 *     blobs/{etag}.incomplete         a download in progress (resumed from its length)
 *     snapshots/{commit}/{filename}   relative symlink to ../../blobs/{etag} (a copy where
 *                                     symlinks cannot be made)
 *     refs/{revision}                 the commit hash the revision pointed at, no newline
 * {root}/.locks/models--{org}--{name}/{etag}.lock
 * </pre>
 *
 * Everything from the network that becomes part of a path (file names, ETags, commits,
 * revisions) is checked so it cannot climb out of its folder.
 */
final class HubCache {

    private static final Pattern SAFE_NAME = Pattern.compile("[A-Za-z0-9_-][A-Za-z0-9._-]*");
    private static final Pattern COMMIT = Pattern.compile("[0-9a-f]{40}");
    private static final ObjectMapper JSON = new ObjectMapper();
    /** FileLock is per process; threads of one JVM queue on these first. */
    private static final ConcurrentHashMap<Path, ReentrantLock> JVM_LOCKS = new ConcurrentHashMap<>();

    private final Path root;
    private final boolean symlinks;

    HubCache(Path root, boolean symlinks) {
        this.root = root.toAbsolutePath().normalize();
        this.symlinks = symlinks;
    }

    Path root() {
        return root;
    }

    Path repoDir(String repoId) {
        return root.resolve("models--" + repoId.replace("/", "--"));
    }

    static boolean isCommitHash(String revision) {
        return COMMIT.matcher(revision).matches();
    }

    static boolean isSafeEtag(String etag) {
        return SAFE_NAME.matcher(etag).matches() && !etag.endsWith(".incomplete") && etag.length() <= 200;
    }

    Path blob(Path repoDir, String etag) {
        if (!isSafeEtag(etag)) {
            throw new IllegalArgumentException("unsafe ETag for a file name: " + etag);
        }
        return repoDir.resolve("blobs").resolve(etag);
    }

    static Path incomplete(Path blob) {
        return blob.resolveSibling(blob.getFileName() + ".incomplete");
    }

    Path snapshotDir(Path repoDir, String commit) {
        if (!isCommitHash(commit)) {
            throw new IllegalArgumentException("not a commit hash: " + commit);
        }
        return repoDir.resolve("snapshots").resolve(commit);
    }

    /**
     * Where a repo file appears in a snapshot.
     *
     * @throws IllegalArgumentException if the name is absolute, empty or has {@code .}/{@code ..}
     *     segments
     */
    static Path pointer(Path snapshotDir, String filename) {
        if (!isSafeRepoPath(filename)) {
            throw new IllegalArgumentException("unsafe file name in repo: '" + filename + "'");
        }
        return snapshotDir.resolve(filename);
    }

    static boolean isSafeRepoPath(String filename) {
        if (filename == null || filename.isEmpty() || filename.startsWith("/") || filename.contains("\\")) {
            return false;
        }
        for (String segment : filename.split("/", -1)) {
            if (segment.isEmpty() || segment.equals(".") || segment.equals("..")
                    || segment.chars().anyMatch(c -> c < 0x20)) {
                return false;
            }
        }
        return true;
    }

    Path refFile(Path repoDir, String revision) {
        RepoRef.checkRevision(revision);
        return repoDir.resolve("refs").resolve(revision);
    }

    /** The commit a revision pointed at when last fetched; the revision itself if it is one. */
    Optional<String> commitFor(Path repoDir, String revision) {
        if (isCommitHash(revision)) {
            return Optional.of(revision);
        }
        Path ref = refFile(repoDir, revision);
        try {
            if (!Files.isRegularFile(ref)) {
                return Optional.empty();
            }
            String commit = Files.readString(ref, StandardCharsets.UTF_8).strip();
            return isCommitHash(commit) ? Optional.of(commit) : Optional.empty();
        } catch (IOException e) {
            return Optional.empty();
        }
    }

    /** Records that a revision points at a commit; written whole via a rename. */
    void writeRef(Path repoDir, String revision, String commit) throws IOException {
        Path ref = refFile(repoDir, revision);
        Files.createDirectories(ref.getParent());
        Path tmp = Files.createTempFile(ref.getParent(), ".ref-", ".tmp");
        try {
            Files.writeString(tmp, commit, StandardCharsets.UTF_8);
            move(tmp, ref);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    /**
     * Makes {@code pointer} show the blob: a relative symlink, as {@code huggingface_hub} makes,
     * so the cache can move; a copy if the file system refuses links (Windows without developer
     * mode, some network mounts).
     */
    void link(Path blob, Path pointer) throws IOException {
        Files.createDirectories(pointer.getParent());
        // made under a temporary name and renamed over the pointer, so that a reader never sees
        // the pointer missing or half-copied
        Path tmp = pointer.resolveSibling(pointer.getFileName() + ".tmp-" + UUID.randomUUID());
        try {
            boolean linked = false;
            if (symlinks) {
                try {
                    Files.createSymbolicLink(tmp, pointer.getParent().relativize(blob));
                    linked = true;
                } catch (UnsupportedOperationException | IOException e) {
                    // fall through to a copy
                }
            }
            if (!linked) {
                Files.copy(blob, tmp);
            }
            move(tmp, pointer);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    /** Renames atomically where the file system can, replacing the target. */
    static void move(Path from, Path to) throws IOException {
        try {
            Files.move(from, to, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(from, to, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    /**
     * The snapshot the revision points at, if the cache holds it complete enough to use without
     * the hub: the folder exists, it holds at least one file the filter wants, none of those is a
     * dangling link, and every shard named by a {@code *.index.json} in it is present. (Without
     * the hub's file list we cannot know about files that were never fetched; the model loader
     * checks what it needs.)
     */
    Optional<Path> completeSnapshot(String repoId, String revision, Predicate<String> filter) {
        Path repoDir = repoDir(repoId);
        Optional<String> commit = commitFor(repoDir, revision);
        if (commit.isEmpty()) {
            return Optional.empty();
        }
        Path dir = repoDir.resolve("snapshots").resolve(commit.get());
        if (!Files.isDirectory(dir)) {
            return Optional.empty();
        }
        List<String> wanted = new ArrayList<>();
        try (Stream<Path> files = Files.walk(dir)) {
            for (Iterator<Path> it = files.iterator(); it.hasNext(); ) {
                Path file = it.next();
                if (Files.isDirectory(file)) {
                    continue;
                }
                String name = dir.relativize(file).toString().replace(file.getFileSystem().getSeparator(), "/");
                if (!filter.test(name)) {
                    continue;
                }
                if (!Files.isRegularFile(file)) {
                    return Optional.empty(); // a dangling link: its blob is gone
                }
                wanted.add(name);
            }
        } catch (IOException | UncheckedIOException e) {
            return Optional.empty();
        }
        if (wanted.isEmpty()) {
            return Optional.empty();
        }
        for (String name : wanted) {
            if (name.endsWith(".index.json") && !shardsPresent(dir, dir.resolve(name))) {
                return Optional.empty();
            }
        }
        return Optional.of(dir);
    }

    private static boolean shardsPresent(Path dir, Path index) {
        try {
            JsonNode map = JSON.readTree(index.toFile()).path("weight_map");
            for (Iterator<JsonNode> it = map.elements(); it.hasNext(); ) {
                String shard = it.next().asText();
                if (!isSafeRepoPath(shard) || !Files.isRegularFile(dir.resolve(shard))) {
                    return false;
                }
            }
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    /** Held while a blob is fetched and linked: by this JVM's threads and by other processes. */
    BlobLock lock(String repoId, String etag) throws IOException, InterruptedException {
        if (!isSafeEtag(etag)) {
            throw new IllegalArgumentException("unsafe ETag for a file name: " + etag);
        }
        Path lockFile = root.resolve(".locks")
                .resolve(repoDir(repoId).getFileName())
                .resolve(etag + ".lock");
        Files.createDirectories(lockFile.getParent());
        ReentrantLock jvmLock = JVM_LOCKS.computeIfAbsent(lockFile, k -> new ReentrantLock());
        jvmLock.lockInterruptibly();
        FileChannel channel = null;
        try {
            channel = FileChannel.open(lockFile, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
            FileLock fileLock = channel.lock();
            return new BlobLock(jvmLock, channel, fileLock);
        } catch (IOException | RuntimeException e) {
            if (channel != null) {
                channel.close();
            }
            jvmLock.unlock();
            throw e;
        }
    }

    static final class BlobLock implements AutoCloseable {
        private final ReentrantLock jvmLock;
        private final FileChannel channel;
        private final FileLock fileLock;

        private BlobLock(ReentrantLock jvmLock, FileChannel channel, FileLock fileLock) {
            this.jvmLock = jvmLock;
            this.channel = channel;
            this.fileLock = fileLock;
        }

        @Override
        public void close() throws IOException {
            try {
                fileLock.release();
                channel.close();
            } finally {
                jvmLock.unlock();
            }
        }
    }
}
