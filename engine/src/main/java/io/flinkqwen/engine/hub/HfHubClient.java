/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.hub;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flinkqwen.engine.hub.HubException.Reason;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpHeaders;
import java.net.http.HttpResponse;
import java.net.http.HttpResponse.BodySubscribers;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.function.Consumer;
import java.util.function.Predicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Downloads model repos from the Hugging Face hub into the standard cache ({@link HubCache}), the
 * way {@code huggingface_hub.snapshot_download} does, so the Python tools and we share one copy:
 *
 * <ol>
 *   <li>{@code GET {endpoint}/api/models/{repo}/revision/{revision}} gives the commit hash
 *       ({@code sha}) and the file list ({@code siblings[].rfilename});
 *   <li>for each wanted file not yet in {@code snapshots/{commit}/}: {@code HEAD
 *       {endpoint}/{repo}/resolve/{commit}/{file}}, redirects to other hosts not followed, gives
 *       the ETag ({@code X-Linked-Etag}, else {@code ETag}), the size ({@code X-Linked-Size},
 *       else {@code Content-Length}) and, for LFS files, the CDN location;
 *   <li>unless {@code blobs/{etag}} exists, {@code GET} it (following redirects) into {@code
 *       blobs/{etag}.incomplete}, resuming with {@code Range} from what is there, check the
 *       digest, rename, and link {@code snapshots/{commit}/{file}} to it;
 *   <li>write {@code refs/{revision}} once every file is in place (not when the revision is
 *       the commit hash itself, like {@code huggingface_hub}).
 * </ol>
 *
 * <p>The token goes only to the endpoint's own origin (scheme, host and port), never to the CDN a
 * file redirects to. Connection drops are retried (resuming) {@code maxRetries} times; when the
 * hub cannot be reached, a complete cached snapshot of the revision is used with a note. With
 * {@code offline} nothing is asked of the network.
 *
 * <p>Thread-safe: concurrent calls in this JVM, or in other JVMs using this class, fetch a given
 * blob once; they queue on {@code {cache}/.locks/...}, the lock files Python uses. Python's
 * {@code filelock} takes {@code flock(2)} locks, which Java's {@code fcntl} locks do not see, so
 * a Python download of the same blob at the same moment is not held off; the worst case is a
 * digest mismatch that deletes the partial file and asks for a rerun.
 */
public final class HfHubClient {

    public static final String DEFAULT_REVISION = "main";
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern CONTENT_RANGE = Pattern.compile("bytes (\\d+)-(\\d+)/(\\d+|\\*)");

    private final URI endpoint;
    private final String token;
    private final HubCache cache;
    private final boolean offline;
    private final Duration etagTimeout;
    private final Duration downloadTimeout;
    private final ProgressListener progress;
    private final Consumer<String> notes;
    private final int maxRetries;
    private final Duration retryBackoff;
    private final HubHttp http;

    private HfHubClient(Builder b) {
        this.endpoint = b.endpoint;
        this.token = b.token;
        this.cache = new HubCache(b.cacheDir, b.symlinks);
        this.offline = b.offline;
        this.etagTimeout = b.etagTimeout;
        this.downloadTimeout = b.downloadTimeout;
        this.progress = b.progress;
        this.notes = b.notes;
        this.maxRetries = b.maxRetries;
        this.retryBackoff = b.retryBackoff;
        this.http = new HubHttp(b.endpoint, b.token, b.etagTimeout, b.httpClient);
    }

    /** A client configured from {@link System#getenv()}, with console progress on stderr. */
    public static HfHubClient fromEnvironment() {
        return builder().build();
    }

    /** A builder whose defaults come from {@link System#getenv()}. */
    public static Builder builder() {
        return builder(System.getenv());
    }

    /** A builder whose defaults come from the given variables (see {@link HubSettings}). */
    public static Builder builder(Map<String, String> env) {
        return new Builder(HubSettings.fromEnvironment(env));
    }

    /** A builder starting from explicit settings. */
    public static Builder builder(HubSettings settings) {
        return new Builder(settings);
    }

    public URI endpoint() {
        return endpoint;
    }

    /** The hub cache folder ({@code HF_HUB_CACHE}), absolute. */
    public Path cacheDir() {
        return cache.root();
    }

    public boolean offline() {
        return offline;
    }

    public boolean hasToken() {
        return token != null;
    }

    /** Same as {@code snapshot(repoId, DEFAULT_REVISION, fileFilter)}. */
    public Path snapshot(String repoId, Predicate<String> fileFilter) {
        return snapshot(repoId, DEFAULT_REVISION, fileFilter);
    }

    /**
     * Makes the repo's wanted files at a revision present in the cache and returns the snapshot
     * folder {@code {cache}/models--{org}--{name}/snapshots/{commit}}, whose entries are named as
     * in the repo.
     *
     * @param revision a branch, tag or commit hash; null means {@value #DEFAULT_REVISION}
     * @param fileFilter which repo paths (e.g. {@code config.json}, {@code sub/x.bin}) to fetch
     * @throws HubException with a one-line message naming the repo, file or URL and what to do
     * @throws IllegalArgumentException if the repo id or revision is malformed
     */
    public Path snapshot(String repoId, String revision, Predicate<String> fileFilter) {
        RepoRef.checkRepoId(repoId);
        String rev = revision == null ? DEFAULT_REVISION : revision;
        RepoRef.checkRevision(rev);
        Objects.requireNonNull(fileFilter, "fileFilter");
        long start = System.nanoTime();

        if (offline) {
            Optional<Path> cached = cache.completeSnapshot(repoId, rev, fileFilter);
            if (cached.isEmpty()) {
                throw new HubException(
                        Reason.OFFLINE_NOT_CACHED,
                        "HF_HUB_OFFLINE is set and " + repoId + "@" + rev + " is not in the cache "
                                + cache.root() + ": run once with network access, unset"
                                + " HF_HUB_OFFLINE, or pass a local path");
            }
            return fromCache(repoId, cached.get(), fileFilter, start);
        }
        try {
            return download(repoId, rev, fileFilter, start);
        } catch (HubException e) {
            if (!canFallBack(e)) {
                throw e;
            }
            Optional<Path> cached = cache.completeSnapshot(repoId, rev, fileFilter);
            if (cached.isEmpty()) {
                throw e;
            }
            notes.accept("note: using the cached snapshot " + cached.get().getFileName()
                    + " of " + repoId + "@" + rev + " because " + e.getMessage());
            return fromCache(repoId, cached.get(), fileFilter, start);
        }
    }

    /** Network trouble and server errors may pass; answers about the repo (404, 401) may not. */
    private static boolean canFallBack(HubException e) {
        return e.reason() == Reason.UNREACHABLE
                || e.reason() == Reason.DOWNLOAD_INCOMPLETE
                || e.reason() == Reason.HTTP_ERROR;
    }

    private Path fromCache(String repoId, Path dir, Predicate<String> filter, long start) {
        int files = 0;
        try (var walk = Files.walk(dir)) {
            files = (int) walk.filter(p -> !Files.isDirectory(p))
                    .filter(p -> filter.test(dir.relativize(p).toString().replace('\\', '/')))
                    .count();
        } catch (IOException | RuntimeException e) {
            // the count is for the summary line only
        }
        progress.snapshotReady(repoId, dir.getFileName().toString(), files, 0, 0,
                System.nanoTime() - start, dir, true);
        return dir;
    }

    // ---------------------------------------------------------------- the online path

    private record RepoInfo(String commit, List<String> files) {}

    /** What HEAD on a file says. {@code size} is -1 when unknown. */
    private record FileMeta(String file, String etag, long size, URI location) {}

    private Path download(String repoId, String revision, Predicate<String> filter, long start) {
        RepoInfo info = repoInfo(repoId, revision);
        List<String> wanted = new ArrayList<>();
        for (String f : info.files()) {
            if (filter.test(f)) {
                if (!HubCache.isSafeRepoPath(f)) {
                    throw new HubException(Reason.PROTOCOL,
                            repoId + "@" + revision + ": the hub lists an unusable file name '" + f + "'");
                }
                wanted.add(f);
            }
        }
        if (wanted.isEmpty()) {
            throw new HubException(Reason.NOT_FOUND,
                    repoId + "@" + revision + " has none of the wanted files (it has "
                            + abbreviate(info.files()) + ")");
        }
        Path repoDir = cache.repoDir(repoId);
        Path snapshotDir = cache.snapshotDir(repoDir, info.commit());
        int downloadedFiles = 0;
        long downloadedBytes = 0;
        for (String file : wanted) {
            Path pointer = HubCache.pointer(snapshotDir, file);
            if (Files.isRegularFile(pointer)) {
                continue; // a snapshot file is only linked once its blob is complete and checked
            }
            FileMeta meta = head(repoId, info.commit(), file);
            Path blob = cache.blob(repoDir, meta.etag());
            try {
                HubCache.BlobLock lock = cache.lock(repoId, meta.etag());
                try {
                    // another thread or process may have fetched it while we waited
                    if (!Files.isRegularFile(blob)) {
                        downloadedBytes += fetchBlob(repoId, meta, blob);
                        downloadedFiles++;
                    }
                    if (!Files.isRegularFile(pointer)) {
                        cache.link(blob, pointer);
                    }
                } finally {
                    lock.close();
                }
            } catch (IOException e) {
                throw cacheError("cannot write " + file + " into " + repoDir, e);
            } catch (InterruptedException e) {
                throw HubHttp.interrupted(repoId + "/" + file);
            }
        }
        if (!revision.equals(info.commit())) {
            try {
                cache.writeRef(repoDir, revision, info.commit());
            } catch (IOException e) {
                throw cacheError("cannot write refs/" + revision + " in " + repoDir, e);
            }
        }
        progress.snapshotReady(repoId, info.commit(), wanted.size(), downloadedFiles,
                downloadedBytes, System.nanoTime() - start, snapshotDir, false);
        return snapshotDir;
    }

    private RepoInfo repoInfo(String repoId, String revision) {
        URI uri = http.apiUri(repoId, revision);
        HttpResponse<byte[]> response = http.exchange("GET", uri, Map.of(), etagTimeout,
                info -> BodySubscribers.ofByteArray(), true, repoId + "@" + revision);
        if (response.statusCode() != 200) {
            throw http.statusError(response, repoId, revision, null);
        }
        try {
            JsonNode root = JSON.readTree(response.body());
            String sha = root.path("sha").asText("");
            if (!HubCache.isCommitHash(sha)) {
                throw new HubException(Reason.PROTOCOL,
                        repoId + "@" + revision + ": no commit hash ('sha') in the answer from " + uri);
            }
            List<String> files = new ArrayList<>();
            for (JsonNode sibling : root.path("siblings")) {
                String name = sibling.path("rfilename").asText("");
                if (!name.isEmpty()) {
                    files.add(name);
                }
            }
            return new RepoInfo(sha, files);
        } catch (IOException e) {
            throw new HubException(Reason.PROTOCOL,
                    repoId + "@" + revision + ": the answer from " + uri + " is not JSON: " + e.getMessage(), e);
        }
    }

    private FileMeta head(String repoId, String commit, String file) {
        URI uri = http.resolveUri(repoId, commit, file);
        HttpResponse<Void> response = http.exchange("HEAD", uri, Map.of("Accept-Encoding", "identity"),
                etagTimeout, info -> BodySubscribers.discarding(), false, repoId + "/" + file);
        int status = response.statusCode();
        boolean redirect = HubHttp.isRedirect(status);
        if (status != 200 && !redirect) {
            throw http.statusError(response, repoId, commit, file);
        }
        HttpHeaders h = response.headers();
        Optional<String> linked = h.firstValue("X-Linked-Etag");
        String etag = HubHttp.normalizeEtag(linked.or(() -> h.firstValue("ETag")).orElse(""));
        if (etag.isEmpty() || !HubCache.isSafeEtag(etag)) {
            throw new HubException(Reason.PROTOCOL,
                    repoId + "/" + file + ": no usable ETag from " + response.uri()
                            + " (got '" + etag + "'), so the file cannot be cached; is HF_ENDPOINT a hub?");
        }
        OptionalLong size = HubHttp.longHeader(h, "X-Linked-Size");
        if (size.isEmpty() && !redirect) {
            size = HubHttp.longHeader(h, "Content-Length");
        }
        URI location = response.uri();
        if (redirect) {
            location = response.uri().resolve(h.firstValue("Location").orElseThrow());
        }
        return new FileMeta(file, etag, size.orElse(-1), location);
    }

    /**
     * Fetches a blob into {@code blob}, resuming a {@code .incomplete} file if there is one and
     * retrying dropped connections; the digest is checked before the rename.
     *
     * @return bytes transferred now (resumed bytes excluded)
     */
    private long fetchBlob(String repoId, FileMeta meta, Path blob) {
        Path part = HubCache.incomplete(blob);
        BlobDigest kind = BlobDigest.of(meta.etag());
        long start = System.nanoTime();
        try {
            Files.createDirectories(part.getParent());
        } catch (IOException e) {
            throw cacheError("cannot create " + part.getParent(), e);
        }
        long resumedFrom = sizeOrZero(part);
        long[] transferred = {0};
        progress.started(meta.file(), resumedFrom, meta.size());
        try {
            fetchVerified(repoId, meta, part, kind, transferred);
        } catch (HubException e) {
            progress.stopped(meta.file(), sizeOrZero(part), meta.size());
            throw e;
        }
        try {
            HubCache.move(part, blob);
        } catch (IOException e) {
            throw cacheError("cannot rename " + part + " to " + blob.getFileName(), e);
        }
        long size = sizeOrZero(blob);
        progress.finished(meta.file(), size, transferred[0], System.nanoTime() - start);
        return transferred[0];
    }

    /** Transfers with retries into {@code part} and checks the digest; throws if either fails. */
    private void fetchVerified(String repoId, FileMeta meta, Path part, BlobDigest kind, long[] transferred) {
        String what = repoId + "/" + meta.file();
        Transfer done;
        for (int attempt = 0; ; attempt++) {
            try {
                done = transfer(repoId, meta, part, kind, transferred);
                break;
            } catch (IOException | HubException e) {
                if (e instanceof HubException && ((HubException) e).reason() != Reason.UNREACHABLE) {
                    throw (HubException) e;
                }
                if (attempt >= maxRetries) {
                    long have = sizeOrZero(part);
                    throw new HubException(Reason.DOWNLOAD_INCOMPLETE,
                            "download of " + what + " from " + meta.location() + " stopped at " + have
                                    + (meta.size() >= 0 ? " of " + meta.size() : "") + " bytes after "
                                    + (attempt + 1) + (attempt == 0 ? " try" : " tries") + ": "
                                    + (e instanceof HubException ? e.getMessage() : HubHttp.describe(e))
                                    + "; run again to resume", e);
                }
                sleep(retryBackoff.multipliedBy(attempt + 1), what);
            }
        }
        verify(repoId, meta, part, kind, done);
    }

    /** The end of one attempt: the file's length and, where it could be streamed, its digest. */
    private record Transfer(long size, String digest) {}

    /**
     * One GET of the blob into {@code part}, from where it stopped.
     *
     * @throws IOException for anything worth retrying: a drop, a stall, a short body
     */
    private Transfer transfer(String repoId, FileMeta meta, Path part, BlobDigest kind, long[] transferred)
            throws IOException {
        String what = repoId + "/" + meta.file();
        long have = sizeOrZero(part);
        if (meta.size() >= 0 && have > meta.size()) {
            deleteQuietly(part);
            have = 0;
        }
        if (meta.size() >= 0 && have == meta.size() && Files.exists(part)) {
            return new Transfer(have, null); // complete already: a crash came before the rename
        }
        Map<String, String> headers = have > 0 ? Map.of("Range", "bytes=" + have + "-") : Map.of();
        HttpResponse<BodyReader> response = http.exchange("GET", meta.location(), headers, etagTimeout,
                info -> info.statusCode() == 200 || info.statusCode() == 206
                        ? new BodyReader()
                        : BodySubscribers.replacing(null),
                true, what);
        int status = response.statusCode();
        BodyReader body = response.body();
        long total;
        if (status == 206) {
            String range = response.headers().firstValue("Content-Range").orElse("");
            Matcher m = CONTENT_RANGE.matcher(range);
            if (!m.matches() || Long.parseLong(m.group(1)) != have) {
                body.cancel();
                deleteQuietly(part);
                throw new IOException("asked for bytes from " + have + ", got range '" + range + "'; restarting");
            }
            total = m.group(3).equals("*") ? meta.size() : Long.parseLong(m.group(3));
        } else if (status == 200) {
            have = 0; // the server ignored Range (or none was sent): start over
            total = HubHttp.longHeader(response.headers(), "Content-Length").orElse(meta.size());
        } else if (status == 416) {
            deleteQuietly(part);
            throw new IOException("the server refused the range from byte " + have + "; restarting");
        } else {
            throw http.statusError(response, repoId, null, meta.file());
        }

        MessageDigest digest = null;
        if (!kind.needsSize() || total >= 0) {
            digest = kind.start(total);
        }
        FileChannel out;
        try {
            out = have > 0
                    ? FileChannel.open(part, StandardOpenOption.WRITE, StandardOpenOption.APPEND)
                    : FileChannel.open(part, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                            StandardOpenOption.TRUNCATE_EXISTING);
            if (digest != null && have > 0) {
                BlobDigest.update(digest, part, have);
            }
        } catch (IOException e) {
            body.cancel();
            throw cacheError("cannot write " + part, e);
        }
        long done = have;
        try (out) {
            while (true) {
                ByteBuffer buffer;
                try {
                    buffer = body.next(downloadTimeout);
                } catch (InterruptedException e) {
                    body.cancel();
                    throw HubHttp.interrupted(what);
                }
                if (buffer == null) {
                    break;
                }
                if (digest != null) {
                    digest.update(buffer.duplicate());
                }
                int n = buffer.remaining();
                try {
                    while (buffer.hasRemaining()) {
                        out.write(buffer);
                    }
                } catch (IOException e) {
                    body.cancel();
                    throw cacheError("cannot write " + part + " (disk full? set HF_HUB_CACHE elsewhere)", e);
                }
                done += n;
                transferred[0] += n;
                progress.progress(meta.file(), done, total);
            }
        } catch (IOException e) {
            body.cancel();
            throw e;
        }
        if (total >= 0 && done != total) {
            throw new IOException("the connection closed after " + done + " of " + total + " bytes");
        }
        return new Transfer(done, digest == null ? null : BlobDigest.hex(digest.digest()));
    }

    private void verify(String repoId, FileMeta meta, Path part, BlobDigest kind, Transfer done) {
        String what = repoId + "/" + meta.file();
        try {
            long size = Files.size(part);
            if (meta.size() >= 0 && size != meta.size()) {
                deleteQuietly(part);
                throw new HubException(Reason.CHECKSUM_MISMATCH,
                        "size mismatch for " + what + " from " + meta.location() + ": expected "
                                + meta.size() + " bytes, got " + size + "; the partial download was deleted, run again");
            }
            String actual = done.digest() != null ? done.digest() : kind.ofFile(part);
            if (actual != null && !actual.equals(meta.etag())) {
                deleteQuietly(part);
                throw new HubException(Reason.CHECKSUM_MISMATCH,
                        "checksum mismatch for " + what + " from " + meta.location() + ": expected "
                                + kind.label + " " + meta.etag() + ", got " + actual
                                + "; the partial download was deleted, run again");
            }
        } catch (IOException e) {
            throw cacheError("cannot read back " + part, e);
        }
    }

    private static String abbreviate(List<String> files) {
        if (files.isEmpty()) {
            return "no files";
        }
        List<String> head = files.subList(0, Math.min(8, files.size()));
        return String.join(", ", head) + (files.size() > head.size() ? ", ... " + files.size() + " in all" : "");
    }

    private static long sizeOrZero(Path file) {
        try {
            return Files.exists(file) ? Files.size(file) : 0;
        } catch (IOException e) {
            return 0;
        }
    }

    private static void deleteQuietly(Path file) {
        try {
            Files.deleteIfExists(file);
        } catch (IOException e) {
            // the next attempt truncates it anyway
        }
    }

    private static HubException cacheError(String what, IOException e) {
        return new HubException(Reason.CACHE_IO, what + ": " + HubHttp.describe(e), e);
    }

    private static void sleep(Duration duration, String what) {
        try {
            Thread.sleep(duration.toMillis());
        } catch (InterruptedException e) {
            throw HubHttp.interrupted(what);
        }
    }

    @Override
    public String toString() {
        return "HfHubClient[endpoint=" + endpoint + ", cache=" + cache.root() + ", offline=" + offline
                + ", token=" + (token == null ? "none" : "***") + "]";
    }

    /** Settings for a client; every default comes from the environment ({@link HubSettings}). */
    public static final class Builder {
        private URI endpoint;
        private String token;
        private Path cacheDir;
        private boolean offline;
        private Duration etagTimeout;
        private Duration downloadTimeout;
        private HttpClient httpClient;
        private ProgressListener progress = ConsoleProgress.stderr();
        private Consumer<String> notes = System.err::println;
        private int maxRetries = 3;
        private Duration retryBackoff = Duration.ofSeconds(1);
        private boolean symlinks = true;

        private Builder(HubSettings s) {
            this.endpoint = s.endpoint();
            this.token = s.token();
            this.cacheDir = s.cacheDir();
            this.offline = s.offline();
            this.etagTimeout = s.etagTimeout();
            this.downloadTimeout = s.downloadTimeout();
        }

        /** The hub's base URL, e.g. {@code https://huggingface.co} or a mirror. */
        public Builder endpoint(String endpoint) {
            String e = Objects.requireNonNull(endpoint, "endpoint");
            while (e.endsWith("/")) {
                e = e.substring(0, e.length() - 1);
            }
            this.endpoint = URI.create(e);
            return this;
        }

        /** The access token; null or blank for anonymous access. */
        public Builder token(String token) {
            this.token = token == null || token.isBlank() ? null : token.strip();
            return this;
        }

        public Builder cacheDir(Path cacheDir) {
            this.cacheDir = Objects.requireNonNull(cacheDir, "cacheDir");
            return this;
        }

        /** Use the cache only and never touch the network. */
        public Builder offline(boolean offline) {
            this.offline = offline;
            return this;
        }

        /** Limit for connecting and for the answer to a metadata request (default 10 s). */
        public Builder etagTimeout(Duration timeout) {
            this.etagTimeout = positive(timeout, "etagTimeout");
            return this;
        }

        /** Longest silence tolerated in the middle of a download (default 10 s). */
        public Builder downloadTimeout(Duration timeout) {
            this.downloadTimeout = positive(timeout, "downloadTimeout");
            return this;
        }

        /**
         * The HTTP client to use. It must not follow redirects itself ({@link
         * HttpClient.Redirect#NEVER}, the default): this class follows them so that the token
         * never leaves the hub's origin.
         */
        public Builder httpClient(HttpClient httpClient) {
            if (httpClient.followRedirects() != HttpClient.Redirect.NEVER) {
                throw new IllegalArgumentException(
                        "the HttpClient must use Redirect.NEVER; HfHubClient follows redirects itself"
                                + " so the token is not sent to other hosts");
            }
            this.httpClient = httpClient;
            return this;
        }

        /** Where progress goes; default {@link ConsoleProgress#stderr()}. */
        public Builder progress(ProgressListener progress) {
            this.progress = Objects.requireNonNull(progress, "progress");
            return this;
        }

        /** Where one-line notes go (e.g. "using the cached snapshot"); default stderr. */
        public Builder notes(Consumer<String> notes) {
            this.notes = Objects.requireNonNull(notes, "notes");
            return this;
        }

        /** How often a dropped transfer is resumed within one call (default 3). */
        public Builder maxRetries(int maxRetries) {
            if (maxRetries < 0) {
                throw new IllegalArgumentException("maxRetries must be >= 0, got " + maxRetries);
            }
            this.maxRetries = maxRetries;
            return this;
        }

        /** Pause before retry n is n times this (default 1 s). */
        public Builder retryBackoff(Duration backoff) {
            if (backoff.isNegative()) {
                throw new IllegalArgumentException("retryBackoff must not be negative, got " + backoff);
            }
            this.retryBackoff = backoff;
            return this;
        }

        /** False to copy blobs into snapshots instead of linking (tests; odd file systems). */
        Builder symlinks(boolean symlinks) {
            this.symlinks = symlinks;
            return this;
        }

        public HfHubClient build() {
            HubSettings.checkEndpoint(endpoint);
            return new HfHubClient(this);
        }

        private static Duration positive(Duration d, String name) {
            if (d == null || d.isZero() || d.isNegative()) {
                throw new IllegalArgumentException(name + " must be positive, got " + d);
            }
            return d;
        }
    }
}
