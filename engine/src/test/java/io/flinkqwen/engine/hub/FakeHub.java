/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.hub;

import com.sun.net.httpserver.Headers;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A Hugging Face hub and its CDN, as two HTTP servers on 127.0.0.1 (ephemeral ports), serving
 * one model repo the way huggingface.co does:
 *
 * <ul>
 *   <li>{@code GET /api/models/{repo}/revision/{rev}}: {@code sha} and {@code siblings};
 *   <li>{@code HEAD|GET /{repo}/resolve/{rev}/{file}}: small files answered directly with the git
 *       blob id as {@code ETag}; LFS files redirected (302) to the CDN with {@code X-Linked-Etag}
 *       (the SHA-256) and {@code X-Linked-Size};
 *   <li>the CDN: {@code GET /lfs/{sha256}?sig=...}, honouring {@code Range: bytes=N-}.
 * </ul>
 *
 * Digests are computed here independently of the code under test. Faults are injected per file
 * name: drop the connection after N bytes, stall, corrupt a byte, answer with a status. Every
 * request is logged with its method, path, Authorization, Range and the body bytes sent.
 */
final class FakeHub implements AutoCloseable {

    static final String REPO = "acme/tiny-qwen";
    static final String COMMIT1 = "1111111111111111111111111111111111111111";
    static final String COMMIT2 = "2222222222222222222222222222222222222222";
    static final int LFS_SIZE = 3 * 1024 * 1024 + 123;

    /** One request as the server saw it. {@code bytesSent} is the body bytes written. */
    record Request(String server, String method, String path, String authorization, String range,
            int status, long bytesSent) {
        boolean isFileTransfer() {
            return method.equals("GET") && (path.startsWith("/lfs/") || path.contains("/resolve/"));
        }
    }

    record RepoFile(String name, byte[] content, boolean lfs) {
        String etag() {
            return lfs ? sha256(content) : gitBlobSha1(content);
        }
    }

    /** Files of the repo at each commit; "main" points at the last published. */
    private final Map<String, Map<String, RepoFile>> commits = new ConcurrentHashMap<>();
    private volatile String main;
    private final Map<String, byte[]> lfsBlobs = new ConcurrentHashMap<>();

    final List<Request> requests = new CopyOnWriteArrayList<>();
    private final HttpServer hub;
    private final HttpServer cdn;
    private final ExecutorService executor = Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r, "fake-hub");
        t.setDaemon(true);
        return t;
    });
    private final CountDownLatch closing = new CountDownLatch(1);

    // ---- knobs, all per file name
    volatile String requiredToken;
    volatile boolean honourRange = true;
    final Map<String, Integer> dropAfter = new ConcurrentHashMap<>();
    final Map<String, AtomicInteger> dropTimes = new ConcurrentHashMap<>();
    final Map<String, Integer> stallAfter = new ConcurrentHashMap<>();
    final Set<String> corrupt = ConcurrentHashMap.newKeySet();
    final Map<String, Integer> statusFor = new ConcurrentHashMap<>();
    volatile int apiStatus = 0;

    FakeHub() throws IOException {
        InetSocketAddress loopback = new InetSocketAddress(InetAddress.getLoopbackAddress(), 0);
        hub = HttpServer.create(loopback, 0);
        cdn = HttpServer.create(loopback, 0);
        hub.createContext("/", this::hub);
        cdn.createContext("/", this::cdn);
        hub.setExecutor(executor);
        cdn.setExecutor(executor);
        publish(COMMIT1, defaultFiles());
        hub.start();
        cdn.start();
    }

    static Map<String, RepoFile> defaultFiles() {
        byte[] weights = new byte[LFS_SIZE];
        new Random(42).nextBytes(weights);
        byte[] onnx = new byte[4096];
        new Random(7).nextBytes(onnx);
        Map<String, RepoFile> files = new LinkedHashMap<>();
        add(files, "config.json", "{\"architectures\":[\"Qwen2ForCausalLM\"],\"hidden_size\":64}\n", false);
        add(files, "generation_config.json", "{\"do_sample\":false}\n", false);
        add(files, "tokenizer.json", "{\"model\":{\"type\":\"BPE\"}}\n", false);
        add(files, "README.md", "# tiny\n", false);
        files.put("model.safetensors", new RepoFile("model.safetensors", weights, true));
        files.put("onnx/model.safetensors", new RepoFile("onnx/model.safetensors", onnx, true));
        return files;
    }

    static void add(Map<String, RepoFile> files, String name, String text, boolean lfs) {
        files.put(name, new RepoFile(name, text.getBytes(StandardCharsets.UTF_8), lfs));
    }

    /** Adds a commit and moves "main" to it. */
    void publish(String commit, Map<String, RepoFile> files) {
        commits.put(commit, new LinkedHashMap<>(files));
        for (RepoFile f : files.values()) {
            if (f.lfs()) {
                lfsBlobs.put(f.etag(), f.content());
            }
        }
        main = commit;
    }

    Map<String, RepoFile> files(String commit) {
        return Collections.unmodifiableMap(commits.get(commit));
    }

    RepoFile file(String name) {
        return commits.get(main).get(name);
    }

    URI endpoint() {
        return URI.create("http://127.0.0.1:" + hub.getAddress().getPort());
    }

    int cdnPort() {
        return cdn.getAddress().getPort();
    }

    void dropOnce(String file, int afterBytes) {
        dropAfter.put(file, afterBytes);
        dropTimes.put(file, new AtomicInteger(1));
    }

    List<Request> fileTransfers() {
        List<Request> out = new ArrayList<>();
        for (Request r : requests) {
            if (r.isFileTransfer()) {
                out.add(r);
            }
        }
        return out;
    }

    /** A port on 127.0.0.1 that nothing listens on: connections are refused. */
    static int closedPort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    @Override
    public void close() {
        closing.countDown();
        hub.stop(0);
        cdn.stop(0);
        executor.shutdownNow();
    }

    // ------------------------------------------------------------------ the hub

    private void hub(HttpExchange ex) throws IOException {
        try (ex) {
            String path = ex.getRequestURI().getRawPath();
            if (requiredToken != null
                    && !("Bearer " + requiredToken).equals(ex.getRequestHeaders().getFirst("Authorization"))) {
                error(ex, 401, "GatedRepo", "Access to model " + REPO + " is restricted.");
                return;
            }
            if (path.startsWith("/api/models/")) {
                api(ex, path.substring("/api/models/".length()));
            } else if (path.startsWith("/" + REPO + "/resolve/")) {
                resolve(ex, path.substring(("/" + REPO + "/resolve/").length()));
            } else if (path.contains("/resolve/")) {
                error(ex, 401, "RepoNotFound", "Repository not found");
            } else {
                error(ex, 404, null, null);
            }
        }
    }

    private void api(HttpExchange ex, String rest) throws IOException {
        int at = rest.indexOf("/revision/");
        String repo = at < 0 ? rest : rest.substring(0, at);
        if (!repo.equals(REPO)) {
            error(ex, 401, "RepoNotFound", "Repository not found");
            return;
        }
        if (apiStatus != 0) {
            error(ex, apiStatus, null, "injected");
            return;
        }
        String commit = commitOf(at < 0 ? "main" : decode(rest.substring(at + "/revision/".length())));
        if (commit == null) {
            error(ex, 404, "RevisionNotFound", "Invalid rev id");
            return;
        }
        StringBuilder json = new StringBuilder("{\"id\":\"" + REPO + "\",\"sha\":\"" + commit + "\",\"siblings\":[");
        String sep = "";
        for (String name : commits.get(commit).keySet()) {
            json.append(sep).append("{\"rfilename\":\"").append(name).append("\"}");
            sep = ",";
        }
        json.append("]}");
        byte[] body = json.toString().getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", "application/json");
        send(ex, "hub", 200, body, null);
    }

    private void resolve(HttpExchange ex, String rest) throws IOException {
        int slash = rest.indexOf('/');
        String commit = slash < 0 ? null : commitOf(decode(rest.substring(0, slash)));
        if (commit == null) {
            error(ex, 404, "RevisionNotFound", "Invalid rev id");
            return;
        }
        String name = decode(rest.substring(slash + 1));
        RepoFile file = commits.get(commit).get(name);
        Integer status = statusFor.get(name);
        if (status != null) {
            error(ex, status, status == 404 ? "EntryNotFound" : null, "injected");
            return;
        }
        if (file == null) {
            error(ex, 404, "EntryNotFound", "Entry not found");
            return;
        }
        Headers h = ex.getResponseHeaders();
        h.set("X-Repo-Commit", commit);
        if (file.lfs()) {
            h.set("X-Linked-Etag", "\"" + file.etag() + "\"");
            h.set("X-Linked-Size", Long.toString(file.content().length));
            h.set("ETag", "\"" + gitBlobSha1("version https://git-lfs...".getBytes(StandardCharsets.UTF_8)) + "\"");
            h.set("Location", "http://127.0.0.1:" + cdnPort() + "/lfs/" + file.etag() + "?sig=signed&name="
                    + name.replace('/', '_'));
            log(ex, "hub", 302, 0);
            ex.sendResponseHeaders(302, -1);
            return;
        }
        h.set("ETag", "\"" + file.etag() + "\"");
        serve(ex, "hub", name, file.content());
    }

    private String commitOf(String revision) {
        if (revision.equals("main")) {
            return main;
        }
        return commits.containsKey(revision) ? revision : null;
    }

    // ------------------------------------------------------------------ the CDN

    private void cdn(HttpExchange ex) throws IOException {
        try (ex) {
            String path = ex.getRequestURI().getRawPath();
            byte[] content = path.startsWith("/lfs/") ? lfsBlobs.get(path.substring(5)) : null;
            if (content == null) {
                send(ex, "cdn", 404, new byte[0], null);
                return;
            }
            String query = ex.getRequestURI().getRawQuery();
            String name = query.substring(query.indexOf("name=") + 5).replace('_', '/');
            serve(ex, "cdn", name, content);
        }
    }

    // ------------------------------------------------------------------ shared

    /** Serves file bytes with Range support and the injected faults for {@code name}. */
    private void serve(HttpExchange ex, String server, String name, byte[] content) throws IOException {
        byte[] body = content;
        if (corrupt.contains(name)) {
            body = content.clone();
            body[body.length / 2] ^= 0x5a;
        }
        int from = 0;
        String range = ex.getRequestHeaders().getFirst("Range");
        int status = 200;
        if (range != null && honourRange && range.matches("bytes=\\d+-")) {
            from = Integer.parseInt(range.substring(6, range.length() - 1));
            if (from >= body.length) {
                ex.getResponseHeaders().set("Content-Range", "bytes */" + body.length);
                send(ex, server, 416, new byte[0], null);
                return;
            }
            status = 206;
            ex.getResponseHeaders().set(
                    "Content-Range", "bytes " + from + "-" + (body.length - 1) + "/" + body.length);
        }
        ex.getResponseHeaders().set("Accept-Ranges", "bytes");
        byte[] part = java.util.Arrays.copyOfRange(body, from, body.length);
        Integer cut = null;
        AtomicInteger times = dropTimes.get(name);
        if (dropAfter.containsKey(name) && times != null && times.getAndDecrement() > 0) {
            cut = dropAfter.get(name);
        }
        Integer stall = stallAfter.remove(name);
        if (stall != null) {
            writeThenStall(ex, server, status, part, stall);
            return;
        }
        send(ex, server, status, part, cut);
    }

    /**
     * Sends a body. With {@code cutAfter}, announces the full length, sends only that many bytes
     * and closes: the client sees the connection drop mid-body.
     */
    private void send(HttpExchange ex, String server, int status, byte[] body, Integer cutAfter)
            throws IOException {
        boolean head = ex.getRequestMethod().equals("HEAD");
        if (head) {
            // The JDK server would announce "Content-length: 0" for HEAD; set what GET would send.
            ex.getResponseHeaders().set("Content-Length", Integer.toString(body.length));
            log(ex, server, status, 0);
            ex.sendResponseHeaders(status, -1);
            return;
        }
        ex.sendResponseHeaders(status, body.length == 0 ? -1 : body.length);
        int n = cutAfter == null ? body.length : Math.min(cutAfter, body.length);
        log(ex, server, status, n);
        OutputStream out = ex.getResponseBody();
        out.write(body, 0, n);
        out.flush();
        // closing the exchange with bytes missing makes the JDK server drop the connection
    }

    private void writeThenStall(HttpExchange ex, String server, int status, byte[] body, int after)
            throws IOException {
        ex.sendResponseHeaders(status, body.length);
        log(ex, server, status, after);
        OutputStream out = ex.getResponseBody();
        out.write(body, 0, after);
        out.flush();
        try {
            closing.await(5, TimeUnit.SECONDS); // the client gives up long before this
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void error(HttpExchange ex, int status, String code, String message) throws IOException {
        if (code != null) {
            ex.getResponseHeaders().set("X-Error-Code", code);
        }
        if (message != null) {
            ex.getResponseHeaders().set("X-Error-Message", message);
        }
        String server = ex.getLocalAddress().getPort() == cdnPort() ? "cdn" : "hub";
        send(ex, server, status, ("{\"error\":\"" + message + "\"}").getBytes(StandardCharsets.UTF_8), null);
    }

    private void log(HttpExchange ex, String server, int status, long bytes) {
        Headers h = ex.getRequestHeaders();
        requests.add(new Request(server, ex.getRequestMethod(), ex.getRequestURI().getRawPath(),
                h.getFirst("Authorization"), h.getFirst("Range"), status, bytes));
    }

    private static String decode(String s) {
        return URLDecoder.decode(s.replace("+", "%2B"), StandardCharsets.UTF_8);
    }

    static String sha256(byte[] content) {
        return hex("SHA-256", null, content);
    }

    /** What {@code git hash-object} prints: SHA-1 of "blob {size}\0" and the content. */
    static String gitBlobSha1(byte[] content) {
        return hex("SHA-1", ("blob " + content.length + "\0").getBytes(StandardCharsets.US_ASCII), content);
    }

    private static String hex(String algorithm, byte[] prefix, byte[] content) {
        try {
            MessageDigest md = MessageDigest.getInstance(algorithm);
            if (prefix != null) {
                md.update(prefix);
            }
            return HexFormat.of().formatHex(md.digest(content));
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
    }
}
