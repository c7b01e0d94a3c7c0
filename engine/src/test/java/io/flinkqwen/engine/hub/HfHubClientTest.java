/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.hub;

import static io.flinkqwen.engine.hub.FakeHub.COMMIT1;
import static io.flinkqwen.engine.hub.FakeHub.COMMIT2;
import static io.flinkqwen.engine.hub.FakeHub.LFS_SIZE;
import static io.flinkqwen.engine.hub.FakeHub.REPO;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.engine.hub.FakeHub.RepoFile;
import io.flinkqwen.engine.hub.FakeHub.Request;
import io.flinkqwen.engine.hub.HubException.Reason;
import java.io.IOException;
import java.net.http.HttpClient;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.Predicate;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class HfHubClientTest {

    /** The files taken from the fake repo: not README.md, not onnx/model.safetensors. */
    static final Set<String> WANTED = Set.of(
            "config.json", "generation_config.json", "tokenizer.json", "model.safetensors");
    static final Predicate<String> FILTER = WANTED::contains;

    @TempDir Path home;
    FakeHub fake;
    final List<String> notes = new CopyOnWriteArrayList<>();

    @BeforeEach
    void start() throws IOException {
        fake = new FakeHub();
    }

    @AfterEach
    void stop() {
        fake.close();
    }

    Path cache() {
        return home.resolve("hub");
    }

    Path repoDir() {
        return cache().resolve("models--acme--tiny-qwen");
    }

    /** A client of the fake hub; HF_HOME points into the temp dir so no real token is read. */
    HfHubClient.Builder client() {
        return HfHubClient.builder(Map.of(
                        "HF_HOME", home.toString(),
                        "HF_ENDPOINT", fake.endpoint().toString()))
                .progress(ProgressListener.NONE)
                .notes(notes::add)
                .retryBackoff(Duration.ZERO);
    }

    HfHubClient.Builder unreachableClient() throws IOException {
        return client().endpoint("http://127.0.0.1:" + FakeHub.closedPort());
    }

    Path download(HfHubClient client) {
        return client.snapshot(REPO, "main", FILTER);
    }

    static byte[] read(Path p) throws IOException {
        return Files.readAllBytes(p);
    }

    void assertSnapshotMatches(Path snapshot, String commit) throws IOException {
        for (String name : WANTED) {
            RepoFile f = fake.files(commit).get(name);
            assertArrayEquals(f.content(), read(snapshot.resolve(name)), name);
        }
    }

    @Test
    void snapshotLaysFilesOutInTheHuggingFaceCache() throws IOException {
        Path snapshot = download(client().build());

        assertEquals(repoDir().resolve("snapshots").resolve(COMMIT1), snapshot);
        assertSnapshotMatches(snapshot, COMMIT1);
        for (String name : WANTED) {
            Path pointer = snapshot.resolve(name);
            assertTrue(Files.isSymbolicLink(pointer), name + " should be a symlink");
            String etag = fake.file(name).etag();
            assertEquals(Path.of("..", "..", "blobs", etag), Files.readSymbolicLink(pointer), name);
            assertArrayEquals(fake.file(name).content(), read(repoDir().resolve("blobs").resolve(etag)));
        }
        assertEquals(COMMIT1, Files.readString(repoDir().resolve("refs/main")));
        // not wanted: README and the sub-folder variant
        assertFalse(Files.exists(snapshot.resolve("README.md")));
        assertFalse(Files.exists(snapshot.resolve("onnx")));
        try (Stream<Path> blobs = Files.list(repoDir().resolve("blobs"))) {
            assertEquals(
                    WANTED.stream().map(n -> fake.file(n).etag()).collect(Collectors.toSet()),
                    blobs.map(p -> p.getFileName().toString()).collect(Collectors.toSet()));
        }
        // small files are fetched from the hub, the LFS file from the CDN
        List<Request> transfers = fake.fileTransfers();
        assertEquals(4, transfers.size(), transfers.toString());
        assertEquals(1, transfers.stream().filter(r -> r.server().equals("cdn")).count());
        assertEquals(LFS_SIZE, transfers.stream().filter(r -> r.server().equals("cdn")).findFirst()
                .orElseThrow().bytesSent());
    }

    @Test
    void secondSnapshotMakesNoFileRequests() throws IOException {
        HfHubClient client = client().build();
        Path first = download(client);
        int before = fake.requests.size();

        Path second = download(client);

        assertEquals(first, second);
        List<Request> after = fake.requests.subList(before, fake.requests.size());
        assertEquals(1, after.size(), "only the revision lookup: " + after);
        assertTrue(after.get(0).path().startsWith("/api/models/"));
        assertSnapshotMatches(second, COMMIT1);
    }

    @Test
    void droppedConnectionIsResumedWithRangeInTheSameCall() throws IOException {
        int cut = 1024 * 1024;
        fake.dropOnce("model.safetensors", cut);

        Path snapshot = download(client().maxRetries(2).build());

        assertSnapshotMatches(snapshot, COMMIT1);
        List<Request> cdn = fake.fileTransfers().stream().filter(r -> r.server().equals("cdn")).toList();
        assertEquals(2, cdn.size(), cdn.toString());
        assertNull(cdn.get(0).range());
        assertEquals(cut, cdn.get(0).bytesSent());
        assertEquals("bytes=" + cut + "-", cdn.get(1).range());
        assertEquals(206, cdn.get(1).status());
        assertEquals(LFS_SIZE - cut, cdn.get(1).bytesSent());
    }

    @Test
    void interruptedDownloadIsKeptAndResumedByTheNextCall() throws IOException {
        int cut = 1024 * 1024 + 7;
        fake.dropOnce("model.safetensors", cut);
        String etag = fake.file("model.safetensors").etag();
        Path partial = repoDir().resolve("blobs").resolve(etag + ".incomplete");

        List<String> stopped = new ArrayList<>();
        ProgressListener listener = new ProgressListener() {
            @Override
            public void progress(String file, long done, long total) {}

            @Override
            public void stopped(String file, long done, long total) {
                stopped.add(file + " " + done + " " + total);
            }
        };

        HubException e = assertThrows(HubException.class,
                () -> download(client().maxRetries(0).progress(listener).build()));

        assertEquals(Reason.DOWNLOAD_INCOMPLETE, e.reason());
        assertEquals(List.of("model.safetensors " + cut + " " + LFS_SIZE), stopped);
        assertTrue(e.getMessage().contains(REPO + "/model.safetensors"), e.getMessage());
        assertTrue(e.getMessage().contains("run again to resume"), e.getMessage());
        assertEquals(cut, Files.size(partial));
        assertFalse(Files.exists(repoDir().resolve("snapshots").resolve(COMMIT1).resolve("model.safetensors")));
        assertFalse(Files.exists(repoDir().resolve("refs/main")), "no ref to an incomplete snapshot");

        int before = fake.requests.size();
        Path snapshot = download(client().maxRetries(0).build());

        assertSnapshotMatches(snapshot, COMMIT1);
        assertFalse(Files.exists(partial));
        List<Request> transfers = fake.requests.subList(before, fake.requests.size()).stream()
                .filter(Request::isFileTransfer).toList();
        assertEquals(1, transfers.size(), "the small files were complete already: " + transfers);
        assertEquals("bytes=" + cut + "-", transfers.get(0).range());
        assertEquals(LFS_SIZE - cut, transfers.get(0).bytesSent());
    }

    @Test
    void serverThatIgnoresRangeMakesTheDownloadStartOver() throws IOException {
        fake.dropOnce("model.safetensors", 100_000);
        fake.honourRange = false;

        Path snapshot = download(client().maxRetries(1).build());

        assertSnapshotMatches(snapshot, COMMIT1);
        List<Request> cdn = fake.fileTransfers().stream().filter(r -> r.server().equals("cdn")).toList();
        assertEquals(2, cdn.size());
        assertEquals("bytes=100000-", cdn.get(1).range());
        assertEquals(200, cdn.get(1).status());
        assertEquals(LFS_SIZE, cdn.get(1).bytesSent());
    }

    @Test
    void stalledTransferTimesOutAndResumes() throws IOException {
        fake.stallAfter.put("model.safetensors", 500_000);

        Path snapshot = download(client().downloadTimeout(Duration.ofMillis(300)).maxRetries(1).build());

        assertSnapshotMatches(snapshot, COMMIT1);
        List<Request> cdn = fake.fileTransfers().stream().filter(r -> r.server().equals("cdn")).toList();
        assertEquals(2, cdn.size());
        assertEquals("bytes=500000-", cdn.get(1).range());
    }

    @Test
    void corruptLfsFileFailsNamingFileAndDigestsAndLeavesNoBlob() throws IOException {
        fake.corrupt.add("model.safetensors");
        RepoFile f = fake.file("model.safetensors");
        byte[] corrupted = f.content().clone();
        corrupted[corrupted.length / 2] ^= 0x5a;

        HubException e = assertThrows(HubException.class, () -> download(client().build()));

        assertEquals(Reason.CHECKSUM_MISMATCH, e.reason());
        String m = e.getMessage();
        assertTrue(m.contains(REPO + "/model.safetensors"), m);
        assertTrue(m.contains("expected sha256 " + f.etag()), m);
        assertTrue(m.contains("got " + FakeHub.sha256(corrupted)), m);
        assertFalse(m.contains("\n"), "one line");
        assertBlobAbsent(f.etag(), "model.safetensors");
    }

    @Test
    void corruptSmallFileFailsOnItsGitBlobId() throws IOException {
        fake.corrupt.add("config.json");
        RepoFile f = fake.file("config.json");

        HubException e = assertThrows(HubException.class, () -> download(client().build()));

        assertEquals(Reason.CHECKSUM_MISMATCH, e.reason());
        assertTrue(e.getMessage().contains("expected git-sha1 " + f.etag()), e.getMessage());
        assertTrue(e.getMessage().contains("config.json"), e.getMessage());
        assertBlobAbsent(f.etag(), "config.json");
    }

    void assertBlobAbsent(String etag, String name) {
        Path blobs = repoDir().resolve("blobs");
        assertFalse(Files.exists(blobs.resolve(etag)));
        assertFalse(Files.exists(blobs.resolve(etag + ".incomplete")));
        assertFalse(Files.exists(repoDir().resolve("snapshots").resolve(COMMIT1).resolve(name)));
    }

    @Test
    void tokenIsSentToTheHubButNotToTheCdn() throws IOException {
        fake.requiredToken = "hf_secret";

        Path snapshot = download(client().token("hf_secret").build());

        assertSnapshotMatches(snapshot, COMMIT1);
        List<Request> hub = fake.requests.stream().filter(r -> r.server().equals("hub")).toList();
        List<Request> cdn = fake.requests.stream().filter(r -> r.server().equals("cdn")).toList();
        assertFalse(hub.isEmpty());
        assertFalse(cdn.isEmpty());
        hub.forEach(r -> assertEquals("Bearer hf_secret", r.authorization(), r.toString()));
        cdn.forEach(r -> assertNull(r.authorization(), r.toString()));
    }

    @Test
    void tokenIsReadFromTheEnvironment() throws IOException {
        fake.requiredToken = "hf_from_file";
        Files.writeString(home.resolve("token"), "hf_from_file\n");

        Path snapshot = download(client().build()); // HF_HOME/token

        assertSnapshotMatches(snapshot, COMMIT1);
    }

    @Test
    void gatedRepoWithoutTokenSaysToSetHfToken() {
        fake.requiredToken = "hf_secret";

        HubException e = assertThrows(HubException.class, () -> download(client().build()));

        assertEquals(Reason.UNAUTHORIZED, e.reason());
        String m = e.getMessage();
        assertTrue(m.contains(REPO) && m.contains("gated or private") && m.contains("set HF_TOKEN"), m);
        assertTrue(m.contains("HTTP 401 from " + fake.endpoint() + "/api/models/" + REPO), m);
    }

    @Test
    void refusedTokenIsReported() {
        fake.requiredToken = "hf_secret";

        HubException e = assertThrows(HubException.class, () -> download(client().token("hf_wrong").build()));

        assertEquals(Reason.UNAUTHORIZED, e.reason());
        assertTrue(e.getMessage().contains("token was refused"), e.getMessage());
        assertFalse(e.getMessage().contains("hf_wrong"), "never print the token");
    }

    @Test
    void unknownRepoAndRevisionAreNotFound() {
        HfHubClient client = client().build();

        HubException repo = assertThrows(HubException.class,
                () -> client.snapshot("acme/no-such-model", "main", FILTER));
        assertEquals(Reason.NOT_FOUND, repo.reason());
        assertTrue(repo.getMessage().startsWith("acme/no-such-model: repository not found"), repo.getMessage());

        HubException rev = assertThrows(HubException.class,
                () -> client.snapshot(REPO, "v9", FILTER));
        assertEquals(Reason.NOT_FOUND, rev.reason());
        assertTrue(rev.getMessage().contains("revision 'v9' not found"), rev.getMessage());
    }

    @Test
    void missingFileIsNotFoundNamingItsUrl() {
        fake.statusFor.put("tokenizer.json", 404);

        HubException e = assertThrows(HubException.class, () -> download(client().build()));

        assertEquals(Reason.NOT_FOUND, e.reason());
        assertTrue(e.getMessage().contains(REPO + "/tokenizer.json: file not found"), e.getMessage());
        assertTrue(e.getMessage().contains("/resolve/" + COMMIT1 + "/tokenizer.json"), e.getMessage());
    }

    @Test
    void serverErrorWithoutCacheIsReported() {
        fake.apiStatus = 503;

        HubException e = assertThrows(HubException.class, () -> download(client().build()));

        assertEquals(Reason.HTTP_ERROR, e.reason());
        assertTrue(e.getMessage().contains("HTTP 503"), e.getMessage());
    }

    @Test
    void offlineModeUsesTheCacheWithoutNetwork() throws IOException {
        Path online = download(client().build());

        HfHubClient offline = HfHubClient.builder(Map.of(
                        "HF_HOME", home.toString(),
                        "HF_ENDPOINT", "http://127.0.0.1:" + FakeHub.closedPort(),
                        "HF_HUB_OFFLINE", "1"))
                .progress(ProgressListener.NONE)
                .build();
        int before = fake.requests.size();

        assertTrue(offline.offline());
        assertEquals(online, offline.snapshot(REPO, "main", FILTER));
        assertEquals(online, offline.snapshot(REPO, COMMIT1, FILTER));
        assertEquals(before, fake.requests.size());
    }

    @Test
    void offlineModeWithoutCacheFailsClearly() throws IOException {
        HfHubClient offline = client().offline(true).build();

        HubException e = assertThrows(HubException.class, () -> download(offline));

        assertEquals(Reason.OFFLINE_NOT_CACHED, e.reason());
        assertTrue(e.getMessage().startsWith("HF_HUB_OFFLINE is set and " + REPO + "@main is not in the cache"),
                e.getMessage());
        assertTrue(fake.requests.isEmpty());
    }

    @Test
    void offlineModeRejectsSnapshotWithMissingShard() throws IOException {
        Map<String, RepoFile> files = new LinkedHashMap<>(FakeHub.defaultFiles());
        FakeHub.add(files, "model.safetensors.index.json",
                "{\"weight_map\":{\"a\":\"model.safetensors\",\"b\":\"model-2.safetensors\"}}", false);
        fake.publish(COMMIT2, files);
        Predicate<String> withIndex = f -> FILTER.test(f) || f.endsWith(".index.json");
        // model-2.safetensors is not in the repo, so it never arrives
        Path online = client().build().snapshot(REPO, "main", withIndex);
        assertTrue(Files.isRegularFile(online.resolve("model.safetensors.index.json")));

        HubException e = assertThrows(HubException.class,
                () -> client().offline(true).build().snapshot(REPO, "main", withIndex));

        assertEquals(Reason.OFFLINE_NOT_CACHED, e.reason());
    }

    @Test
    void unreachableHubFailsWithTheFix() throws IOException {
        HfHubClient client = unreachableClient().build();

        HubException e = assertThrows(HubException.class, () -> download(client));

        assertEquals(Reason.UNREACHABLE, e.reason());
        String m = e.getMessage();
        assertTrue(m.startsWith("cannot reach " + client.endpoint() + ": "), m);
        assertTrue(m.contains("ConnectException"), m);
        assertTrue(m.contains("set HF_HUB_OFFLINE=1 to use the cache, or pass a local path"), m);
        assertTrue(m.contains(REPO + "@main"), m);
        assertFalse(m.contains("\n"), m);
    }

    @Test
    void unreachableHubFallsBackToACachedSnapshotWithANote() throws IOException {
        Path online = download(client().build());

        Path fallback = download(unreachableClient().build());

        assertEquals(online, fallback);
        assertEquals(1, notes.size(), notes.toString());
        String note = notes.get(0);
        assertTrue(note.startsWith("note: using the cached snapshot " + COMMIT1 + " of " + REPO + "@main"), note);
        assertTrue(note.contains("cannot reach"), note);
    }

    @Test
    void authorizationErrorsDoNotFallBackToTheCache() throws IOException {
        download(client().build());
        fake.requiredToken = "hf_secret";

        HubException e = assertThrows(HubException.class, () -> download(client().build()));

        assertEquals(Reason.UNAUTHORIZED, e.reason());
        assertTrue(notes.isEmpty());
    }

    @Test
    void newCommitDownloadsOnlyChangedFiles() throws IOException {
        Path first = download(client().build());
        Map<String, RepoFile> files = new LinkedHashMap<>(fake.files(COMMIT1));
        FakeHub.add(files, "config.json", "{\"hidden_size\":128}\n", false);
        fake.publish(COMMIT2, files);
        int before = fake.requests.size();

        Path second = download(client().build());

        assertEquals(repoDir().resolve("snapshots").resolve(COMMIT2), second);
        assertSnapshotMatches(second, COMMIT2);
        assertSnapshotMatches(first, COMMIT1);
        assertEquals(COMMIT2, Files.readString(repoDir().resolve("refs/main")));
        List<Request> transfers = fake.requests.subList(before, fake.requests.size()).stream()
                .filter(Request::isFileTransfer).toList();
        assertEquals(1, transfers.size(), transfers.toString());
        assertTrue(transfers.get(0).path().endsWith("/config.json"));
    }

    @Test
    void concurrentSnapshotsFetchEachBlobOnceAndNeverShowAMissingFile() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            for (int round = 0; round < 3; round++) {
                HfHubClient client = client().cacheDir(home.resolve("round" + round)).build();
                List<Future<Path>> results = new ArrayList<>();
                for (int i = 0; i < 4; i++) {
                    // each caller reads its files at once, while the others may still be linking
                    results.add(pool.submit(() -> {
                        Path snapshot = download(client);
                        assertSnapshotMatches(snapshot, COMMIT1);
                        return snapshot;
                    }));
                }
                for (Future<Path> r : results) {
                    r.get();
                }
            }
        } finally {
            pool.shutdownNow();
        }
        long cdnGets = fake.fileTransfers().stream().filter(r -> r.server().equals("cdn")).count();
        assertEquals(3, cdnGets, "one LFS transfer per round");
    }

    @Test
    void snapshotFilesAreCopiesWhereSymlinksAreOff() throws IOException {
        Path snapshot = download(client().symlinks(false).build());

        assertSnapshotMatches(snapshot, COMMIT1);
        for (String name : WANTED) {
            assertFalse(Files.isSymbolicLink(snapshot.resolve(name)), name);
        }
    }

    @Test
    void progressListenerSeesEveryByteOfEveryDownloadedFile() throws IOException {
        Map<String, Long> last = new LinkedHashMap<>();
        List<String> events = new CopyOnWriteArrayList<>();
        ProgressListener listener = new ProgressListener() {
            @Override
            public void progress(String file, long done, long total) {
                Long previous = last.put(file, done);
                assertTrue(previous == null || previous <= done, "monotonic");
                assertEquals(fake.file(file).content().length, total);
            }

            @Override
            public void started(String file, long resumedFrom, long total) {
                events.add("start " + file);
            }

            @Override
            public void finished(String file, long total, long transferred, long nanos) {
                events.add("done " + file + " " + total + " " + transferred);
            }

            @Override
            public void snapshotReady(String repoId, String commit, int files, int downloaded,
                    long bytes, long nanos, Path folder, boolean fromCache) {
                events.add("ready " + files + " " + downloaded + " " + fromCache);
            }
        };

        download(client().progress(listener).build());

        assertEquals(WANTED, last.keySet().stream().collect(Collectors.toSet()));
        for (String name : WANTED) {
            long size = fake.file(name).content().length;
            assertEquals(size, last.get(name));
            assertTrue(events.contains("done " + name + " " + size + " " + size), events.toString());
        }
        assertEquals("ready 4 4 false", events.get(events.size() - 1));
    }

    @Test
    void builderRefusesAnHttpClientThatFollowsRedirects() {
        HttpClient following = HttpClient.newBuilder().followRedirects(HttpClient.Redirect.NORMAL).build();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> client().httpClient(following));
        assertTrue(e.getMessage().contains("Redirect.NEVER"));
    }

    @Test
    void tokenNeverAppearsInToString() {
        assertFalse(client().token("hf_secret").build().toString().contains("hf_secret"));
    }

    @Test
    void gitBlobIdMatchesGitHashObject() {
        // `printf 'hello\n' | git hash-object --stdin` and `sha256sum`
        byte[] hello = "hello\n".getBytes(StandardCharsets.UTF_8);
        assertEquals("ce013625030ba8dba906f756967f9e9ca394464a", FakeHub.gitBlobSha1(hello));
        assertEquals("5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03", FakeHub.sha256(hello));
    }
}
