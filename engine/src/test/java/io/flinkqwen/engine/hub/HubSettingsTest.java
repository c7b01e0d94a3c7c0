/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.hub;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class HubSettingsTest {

    @TempDir Path userHome;

    HubSettings of(Map<String, String> env) {
        return HubSettings.fromEnvironment(env, userHome);
    }

    @Test
    void defaultsMatchHuggingFaceHub() {
        HubSettings s = of(Map.of());

        assertEquals(URI.create("https://huggingface.co"), s.endpoint());
        assertEquals(userHome.resolve(".cache/huggingface"), s.home());
        assertEquals(userHome.resolve(".cache/huggingface/hub"), s.cacheDir());
        assertNull(s.token());
        assertFalse(s.offline());
        assertEquals(Duration.ofSeconds(10), s.etagTimeout());
        assertEquals(Duration.ofSeconds(10), s.downloadTimeout());
    }

    @Test
    void xdgCacheHomeMovesHfHome() {
        HubSettings s = of(Map.of("XDG_CACHE_HOME", "/xdg"));

        assertEquals(Path.of("/xdg/huggingface"), s.home());
        assertEquals(Path.of("/xdg/huggingface/hub"), s.cacheDir());
    }

    @Test
    void hfHomeWinsOverXdgAndHubCacheWinsOverHfHome() {
        assertEquals(Path.of("/hf/hub"), of(Map.of("XDG_CACHE_HOME", "/xdg", "HF_HOME", "/hf")).cacheDir());
        assertEquals(Path.of("/c"), of(Map.of("HF_HOME", "/hf", "HF_HUB_CACHE", "/c")).cacheDir());
        assertEquals(Path.of("/legacy"), of(Map.of("HUGGINGFACE_HUB_CACHE", "/legacy")).cacheDir());
        assertEquals(Path.of("/c"), of(Map.of("HUGGINGFACE_HUB_CACHE", "/legacy", "HF_HUB_CACHE", "/c")).cacheDir());
    }

    @Test
    void tildeExpandsToTheUserHome() {
        assertEquals(userHome.resolve("models/hub"), of(Map.of("HF_HUB_CACHE", "~/models/hub")).cacheDir());
        assertEquals(userHome, of(Map.of("HF_HOME", "~")).home());
    }

    @Test
    void emptyVariablesCountAsUnset() {
        assertEquals(userHome.resolve(".cache/huggingface"), of(Map.of("HF_HOME", "")).home());
        assertNull(of(Map.of("HF_TOKEN", "")).token());
    }

    @Test
    void endpointLosesTrailingSlashesAndMustBeHttp() {
        assertEquals(URI.create("http://127.0.0.1:8080/mirror"),
                of(Map.of("HF_ENDPOINT", "http://127.0.0.1:8080/mirror//")).endpoint());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> of(Map.of("HF_ENDPOINT", "ftp://example")));
        assertTrue(e.getMessage().contains("ftp://example"), e.getMessage());
    }

    @Test
    void tokenComesFromVariableElseTokenFile() throws IOException {
        Path hfHome = userHome.resolve("hf");
        Files.createDirectories(hfHome);
        Files.writeString(hfHome.resolve("token"), "  hf_file\n");

        assertEquals("hf_file", of(Map.of("HF_HOME", hfHome.toString())).token());
        assertEquals("hf_env", of(Map.of("HF_HOME", hfHome.toString(), "HF_TOKEN", "hf_env")).token());
        assertEquals("hf_old", of(Map.of("HF_HOME", hfHome.toString(), "HUGGING_FACE_HUB_TOKEN", "hf_old")).token());

        Path elsewhere = userHome.resolve("elsewhere-token");
        Files.writeString(elsewhere, "hf_path");
        assertEquals("hf_path", of(Map.of("HF_HOME", hfHome.toString(), "HF_TOKEN_PATH", elsewhere.toString())).token());
    }

    @Test
    void offlineAcceptsTheTruthyValuesOfHuggingFaceHub() {
        for (String yes : new String[] {"1", "true", "TRUE", "yes", "On"}) {
            assertTrue(of(Map.of("HF_HUB_OFFLINE", yes)).offline(), yes);
        }
        for (String no : new String[] {"0", "false", "no", "", "2"}) {
            assertFalse(of(Map.of("HF_HUB_OFFLINE", no)).offline(), no);
        }
        assertTrue(of(Map.of("TRANSFORMERS_OFFLINE", "1")).offline());
    }

    @Test
    void timeoutsAreSecondsAndBadValuesNameTheVariable() {
        assertEquals(Duration.ofMillis(2500), of(Map.of("HF_HUB_DOWNLOAD_TIMEOUT", "2.5")).downloadTimeout());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> of(Map.of("HF_HUB_ETAG_TIMEOUT", "soon")));
        assertTrue(e.getMessage().startsWith("HF_HUB_ETAG_TIMEOUT"), e.getMessage());
    }

    @Test
    void toStringHidesTheToken() {
        HubSettings s = of(Map.of("HF_TOKEN", "hf_secret"));
        assertTrue(s.hasToken());
        assertFalse(s.toString().contains("hf_secret"), s.toString());
    }
}
