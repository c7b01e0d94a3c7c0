/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.hub;

import io.flinkqwen.engine.hub.HubException.Reason;
import java.io.IOException;
import java.net.ProxySelector;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpHeaders;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpResponse.BodyHandler;
import java.net.http.HttpResponse.BodySubscribers;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * The hub's HTTP conventions: requests with the token on the hub's own origin only, redirects
 * followed by hand, statuses and {@code X-Error-Code} turned into one-line {@link
 * HubException}s, URLs built with encoded segments.
 */
final class HubHttp {

    static final int MAX_REDIRECTS = 10;
    private static final String USER_AGENT = "flink-qwen/0.1; java/" + Runtime.version().feature();

    private final URI endpoint;
    private final String token;
    private final Duration connectTimeout;
    private final HttpClient supplied;
    private HttpClient http;

    /**
     * @param token null for anonymous requests
     * @param http a client that does not follow redirects, or null to make one on first use
     */
    HubHttp(URI endpoint, String token, Duration connectTimeout, HttpClient http) {
        this.endpoint = endpoint;
        this.token = token;
        this.connectTimeout = connectTimeout;
        this.supplied = http;
    }

    URI apiUri(String repoId, String revision) {
        return URI.create(endpoint + "/api/models/" + repoId + "/revision/" + encodeSegment(revision));
    }

    /**
     * Sends a request and follows redirects by hand, so that the token goes only to the hub's
     * own origin; with {@code crossOrigin} false a redirect to another origin is returned
     * instead of followed (HEAD must read the hub's headers, not the CDN's).
     */
    <T> HttpResponse<T> exchange(String method, URI uri, Map<String, String> headers,
            Duration timeout, BodyHandler<T> handler, boolean crossOrigin, String what) {
        URI current = uri;
        for (int hop = 0; hop <= MAX_REDIRECTS; hop++) {
            HttpRequest.Builder request = HttpRequest.newBuilder(current)
                    .method(method, HttpRequest.BodyPublishers.noBody())
                    .timeout(timeout)
                    .header("User-Agent", USER_AGENT);
            headers.forEach(request::header);
            if (token != null && sameOrigin(current, endpoint)) {
                request.header("Authorization", "Bearer " + token);
            }
            HttpResponse<T> response;
            try {
                response = client().send(request.build(),
                        info -> isRedirect(info.statusCode())
                                ? BodySubscribers.replacing(null)
                                : handler.apply(info));
            } catch (IOException e) {
                throw new HubException(Reason.UNREACHABLE,
                        "cannot reach " + origin(current) + ": " + describe(e)
                                + "; set HF_HUB_OFFLINE=1 to use the cache, or pass a local path"
                                + " (while fetching " + what + ")", e);
            } catch (InterruptedException e) {
                throw interrupted(what);
            }
            Optional<String> location = response.headers().firstValue("Location");
            if (!isRedirect(response.statusCode()) || location.isEmpty()) {
                return response;
            }
            URI next;
            try {
                next = current.resolve(location.get());
            } catch (IllegalArgumentException e) {
                throw new HubException(Reason.PROTOCOL,
                        what + ": bad redirect from " + current + " to '" + location.get() + "'", e);
            }
            if (!crossOrigin && !sameOrigin(next, endpoint)) {
                return response;
            }
            current = next;
        }
        throw new HubException(Reason.PROTOCOL,
                what + ": more than " + MAX_REDIRECTS + " redirects from " + uri);
    }

    HubException statusError(HttpResponse<?> response, String repoId, String revision, String file) {
        int status = response.statusCode();
        HttpHeaders h = response.headers();
        String code = h.firstValue("X-Error-Code").orElse("");
        String serverSays = h.firstValue("X-Error-Message").map(m -> " (" + oneLine(m) + ")").orElse("");
        String from = "HTTP " + status + " from " + response.uri();
        String target = file == null ? repoId + "@" + revision : repoId + "/" + file;
        if (code.equals("RepoNotFound")) {
            return new HubException(Reason.NOT_FOUND,
                    repoId + ": repository not found at " + endpoint + " (" + from + ")" + serverSays
                            + ": check the id, or set HF_TOKEN if it is private");
        }
        if (code.equals("RevisionNotFound")) {
            return new HubException(Reason.NOT_FOUND,
                    repoId + ": revision '" + revision + "' not found (" + from + ")" + serverSays
                            + ": check the branch, tag or commit");
        }
        if (code.equals("GatedRepo") || status == 401 || status == 403) {
            return new HubException(Reason.UNAUTHORIZED,
                    target + ": gated or private (" + from + ")" + serverSays + ": "
                            + (token == null
                                    ? "set HF_TOKEN (or log in with `hf auth login`) to a token with access"
                                    : "the token was refused; request access at " + endpoint + "/" + repoId
                                            + " or set HF_TOKEN to a token with access"));
        }
        if (status == 404) {
            return new HubException(Reason.NOT_FOUND, file == null
                    ? repoId + ": repository or revision '" + revision + "' not found (" + from + ")"
                            + serverSays + ": check the id and revision"
                    : target + ": file not found (" + from + ")" + serverSays);
        }
        return new HubException(Reason.HTTP_ERROR,
                target + ": " + from + serverSays
                        + (status >= 500 || status == 429 ? ": the hub is busy or down, try again later" : ""));
    }

    private synchronized HttpClient client() {
        if (http == null) {
            http = supplied != null
                    ? supplied
                    : HttpClient.newBuilder()
                            .version(HttpClient.Version.HTTP_1_1)
                            .followRedirects(HttpClient.Redirect.NEVER)
                            .connectTimeout(connectTimeout)
                            .proxy(ProxySelector.getDefault())
                            .build();
        }
        return http;
    }

    URI resolveUri(String repoId, String revision, String file) {
        StringBuilder path = new StringBuilder();
        for (String segment : file.split("/")) {
            path.append('/').append(encodeSegment(segment));
        }
        return URI.create(endpoint + "/" + repoId + "/resolve/" + encodeSegment(revision) + path);
    }

    /** Percent-encodes everything but RFC 3986 unreserved characters (so {@code /} too). */
    static String encodeSegment(String text) {
        StringBuilder sb = new StringBuilder();
        for (byte b : text.getBytes(StandardCharsets.UTF_8)) {
            int c = b & 0xff;
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                    || c == '-' || c == '.' || c == '_' || c == '~') {
                sb.append((char) c);
            } else {
                sb.append('%').append(Character.toUpperCase(Character.forDigit(c >> 4, 16)))
                        .append(Character.toUpperCase(Character.forDigit(c & 0xf, 16)));
            }
        }
        return sb.toString();
    }

    static boolean sameOrigin(URI a, URI b) {
        return a.getScheme() != null && a.getScheme().equalsIgnoreCase(b.getScheme())
                && a.getHost() != null && a.getHost().equalsIgnoreCase(b.getHost())
                && port(a) == port(b);
    }

    private static int port(URI uri) {
        if (uri.getPort() >= 0) {
            return uri.getPort();
        }
        return "https".equalsIgnoreCase(uri.getScheme()) ? 443 : 80;
    }

    private static String origin(URI uri) {
        return uri.getScheme() + "://" + uri.getRawAuthority();
    }

    static boolean isRedirect(int status) {
        return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
    }

    /** Strips a weak marker and quotes: {@code W/"abc"} becomes {@code abc}. */
    static String normalizeEtag(String etag) {
        String e = etag.strip();
        if (e.startsWith("W/")) {
            e = e.substring(2);
        }
        if (e.length() >= 2 && e.startsWith("\"") && e.endsWith("\"")) {
            e = e.substring(1, e.length() - 1);
        }
        return e;
    }

    static OptionalLong longHeader(HttpHeaders headers, String name) {
        Optional<String> value = headers.firstValue(name);
        if (value.isEmpty()) {
            return OptionalLong.empty();
        }
        try {
            long v = Long.parseLong(value.get().strip());
            return v >= 0 ? OptionalLong.of(v) : OptionalLong.empty();
        } catch (NumberFormatException e) {
            return OptionalLong.empty();
        }
    }

    /**
     * A failure in a few words: the outer exception's class and the first message found down its
     * causes. The JDK's HTTP client often has no message at all (a refused connection is a
     * ConnectException caused by a ClosedChannelException, neither with text); then the classes
     * of the chain are named.
     */
    static String describe(Throwable e) {
        String outer = e.getClass().getSimpleName();
        List<String> chain = new ArrayList<>();
        for (Throwable t = e; t != null && chain.size() < 8; t = t.getCause() == t ? null : t.getCause()) {
            String message = t.getMessage();
            if (message != null && !message.isBlank()) {
                return outer + ": " + oneLine(message);
            }
            if (t instanceof java.nio.channels.UnresolvedAddressException) {
                return outer + ": unknown host";
            }
            if (t != e) {
                chain.add(t.getClass().getSimpleName());
            }
        }
        return chain.isEmpty() ? outer : outer + " (" + String.join(" <- ", chain) + ")";
    }

    static String oneLine(String s) {
        String flat = s.replaceAll("\\s+", " ").strip();
        return flat.length() > 300 ? flat.substring(0, 300) + "..." : flat;
    }

    static HubException interrupted(String what) {
        Thread.currentThread().interrupt();
        return new HubException(Reason.INTERRUPTED, "interrupted while fetching " + what);
    }

}
