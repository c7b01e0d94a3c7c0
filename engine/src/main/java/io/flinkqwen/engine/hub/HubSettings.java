/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.hub;

import java.io.IOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * Where the hub is, who we are and where the cache lives, read from the environment with the
 * same variables and defaults as Python's {@code huggingface_hub}, so both share one cache:
 *
 * <ul>
 *   <li>{@code HF_ENDPOINT}: default {@code https://huggingface.co}, trailing slashes dropped;
 *   <li>{@code HF_HOME}: default {@code $XDG_CACHE_HOME/huggingface}, else
 *       {@code ~/.cache/huggingface};
 *   <li>{@code HF_HUB_CACHE} (legacy {@code HUGGINGFACE_HUB_CACHE}): default {@code $HF_HOME/hub};
 *   <li>{@code HF_TOKEN} (legacy {@code HUGGING_FACE_HUB_TOKEN}), else the first line of the file
 *       {@code HF_TOKEN_PATH} (default {@code $HF_HOME/token}), else no token;
 *   <li>{@code HF_HUB_OFFLINE} (legacy {@code TRANSFORMERS_OFFLINE}): true for 1/ON/YES/TRUE, any
 *       case;
 *   <li>{@code HF_HUB_ETAG_TIMEOUT}, {@code HF_HUB_DOWNLOAD_TIMEOUT}: seconds, default 10: the
 *       limit for a metadata answer and for a silence in the middle of a download.
 * </ul>
 *
 * <p>Paths starting with {@code ~} are expanded against the user's home. One difference from
 * Python: a variable set to the empty string counts as unset (Python would use "" as a path).
 *
 * @param token the access token, or null for anonymous access; {@link #toString()} hides it
 */
public record HubSettings(
        URI endpoint,
        String token,
        Path home,
        Path cacheDir,
        boolean offline,
        Duration etagTimeout,
        Duration downloadTimeout) {

    public static final String DEFAULT_ENDPOINT = "https://huggingface.co";

    private static final Set<String> TRUE_VALUES = Set.of("1", "ON", "YES", "TRUE");

    public HubSettings {
        Objects.requireNonNull(endpoint, "endpoint");
        Objects.requireNonNull(home, "home");
        Objects.requireNonNull(cacheDir, "cacheDir");
        Objects.requireNonNull(etagTimeout, "etagTimeout");
        Objects.requireNonNull(downloadTimeout, "downloadTimeout");
        checkEndpoint(endpoint);
        if (token != null && token.isBlank()) {
            token = null;
        }
    }

    static void checkEndpoint(URI endpoint) {
        String scheme = endpoint.getScheme();
        if (scheme == null
                || !(scheme.equalsIgnoreCase("http") || scheme.equalsIgnoreCase("https"))
                || endpoint.getHost() == null) {
            throw new IllegalArgumentException(
                    "hub endpoint must be an http(s) URL with a host, got '" + endpoint + "'");
        }
    }

    /** Settings from {@link System#getenv()} and the {@code user.home} system property. */
    public static HubSettings fromEnvironment() {
        return fromEnvironment(System.getenv());
    }

    /** Settings from the given variables; the home folder is the {@code user.home} property. */
    public static HubSettings fromEnvironment(Map<String, String> env) {
        return fromEnvironment(env, Path.of(System.getProperty("user.home")));
    }

    /**
     * Settings from the given variables, expanding {@code ~} against {@code userHome}. Reads the
     * token file if no token variable is set; an unreadable token file means no token.
     *
     * @throws IllegalArgumentException naming the variable if a value is malformed
     */
    public static HubSettings fromEnvironment(Map<String, String> env, Path userHome) {
        Objects.requireNonNull(env, "env");
        Objects.requireNonNull(userHome, "userHome");

        String endpointText = first(env, "HF_ENDPOINT");
        if (endpointText == null) {
            endpointText = DEFAULT_ENDPOINT;
        }
        while (endpointText.endsWith("/")) {
            endpointText = endpointText.substring(0, endpointText.length() - 1);
        }
        URI endpoint;
        try {
            endpoint = URI.create(endpointText);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(
                    "HF_ENDPOINT is not a URL: '" + endpointText + "'", e);
        }

        String homeText = first(env, "HF_HOME");
        Path home;
        if (homeText != null) {
            home = expand(homeText, userHome);
        } else {
            String xdg = first(env, "XDG_CACHE_HOME");
            Path cacheRoot = xdg != null ? expand(xdg, userHome) : userHome.resolve(".cache");
            home = cacheRoot.resolve("huggingface");
        }

        String cacheText = first(env, "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE");
        Path cacheDir = cacheText != null ? expand(cacheText, userHome) : home.resolve("hub");

        String token = first(env, "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN");
        if (token == null) {
            String tokenPath = first(env, "HF_TOKEN_PATH");
            token = readToken(tokenPath != null ? expand(tokenPath, userHome) : home.resolve("token"));
        }

        String offlineText = first(env, "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE");
        boolean offline =
                offlineText != null && TRUE_VALUES.contains(offlineText.trim().toUpperCase(Locale.ROOT));

        return new HubSettings(
                endpoint,
                token == null ? null : token.strip(),
                home,
                cacheDir,
                offline,
                seconds(env, "HF_HUB_ETAG_TIMEOUT", 10),
                seconds(env, "HF_HUB_DOWNLOAD_TIMEOUT", 10));
    }

    /** Whether a token is configured; the token itself never appears in messages. */
    public boolean hasToken() {
        return token != null;
    }

    @Override
    public String toString() {
        return "HubSettings[endpoint=" + endpoint
                + ", token=" + (token == null ? "none" : "***")
                + ", home=" + home
                + ", cacheDir=" + cacheDir
                + ", offline=" + offline
                + ", etagTimeout=" + etagTimeout
                + ", downloadTimeout=" + downloadTimeout + "]";
    }

    /** The first variable that is set to a non-empty value, or null. */
    private static String first(Map<String, String> env, String... names) {
        for (String name : names) {
            String value = env.get(name);
            if (value != null && !value.isEmpty()) {
                return value;
            }
        }
        return null;
    }

    private static Path expand(String path, Path userHome) {
        if (path.equals("~")) {
            return userHome;
        }
        if (path.startsWith("~/") || path.startsWith("~" + userHome.getFileSystem().getSeparator())) {
            return userHome.resolve(path.substring(2));
        }
        return Path.of(path);
    }

    private static String readToken(Path file) {
        try {
            if (!Files.isRegularFile(file)) {
                return null;
            }
            String text = Files.readString(file, StandardCharsets.UTF_8).strip();
            // huggingface_hub writes the token alone; be lenient with a trailing second line.
            int newline = text.indexOf('\n');
            String token = (newline < 0 ? text : text.substring(0, newline)).strip();
            return token.isEmpty() ? null : token;
        } catch (IOException | SecurityException e) {
            return null;
        }
    }

    private static Duration seconds(Map<String, String> env, String name, int defaultSeconds) {
        String value = first(env, name);
        if (value == null) {
            return Duration.ofSeconds(defaultSeconds);
        }
        try {
            double seconds = Double.parseDouble(value.trim());
            if (!(seconds > 0)) {
                throw new NumberFormatException("not positive");
            }
            return Duration.ofMillis(Math.round(seconds * 1000));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(
                    name + " must be a positive number of seconds, got '" + value + "'", e);
        }
    }
}
