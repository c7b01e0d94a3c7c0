/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.hub;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.ConnectException;
import java.net.URI;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.UnresolvedAddressException;
import java.time.Duration;
import org.junit.jupiter.api.Test;

class HubHttpTest {

    @Test
    void segmentsArePercentEncodedIncludingSlashes() {
        assertEquals("refs%2Fpr%2F1", HubHttp.encodeSegment("refs/pr/1"));
        assertEquals("a%20b%2B%C3%BC~._-", HubHttp.encodeSegment("a b+ü~._-"));
        HubHttp http = new HubHttp(URI.create("https://hf.example/mirror"), null, Duration.ofSeconds(1), null);
        assertEquals(URI.create("https://hf.example/mirror/org/name/resolve/v%201/sub/a%23b.json"),
                http.resolveUri("org/name", "v 1", "sub/a#b.json"));
        assertEquals(URI.create("https://hf.example/mirror/api/models/org/name/revision/refs%2Fpr%2F1"),
                http.apiUri("org/name", "refs/pr/1"));
    }

    @Test
    void sameOriginComparesSchemeHostAndEffectivePort() {
        URI hub = URI.create("https://huggingface.co");
        assertTrue(HubHttp.sameOrigin(URI.create("https://HuggingFace.co:443/api/x"), hub));
        assertFalse(HubHttp.sameOrigin(URI.create("https://cdn-lfs.huggingface.co/x"), hub));
        assertFalse(HubHttp.sameOrigin(URI.create("http://huggingface.co/x"), hub));
        assertFalse(HubHttp.sameOrigin(URI.create("https://huggingface.co:8443/x"), hub));
        URI local = URI.create("http://127.0.0.1:8080");
        assertFalse(HubHttp.sameOrigin(URI.create("http://127.0.0.1:8081/lfs"), local));
    }

    @Test
    void etagsLoseWeakMarkerAndQuotes() {
        assertEquals("abc", HubHttp.normalizeEtag("W/\"abc\""));
        assertEquals("abc", HubHttp.normalizeEtag(" \"abc\" "));
        assertEquals("abc", HubHttp.normalizeEtag("abc"));
    }

    @Test
    void failuresAreDescribedEvenWithoutMessages() {
        ConnectException refused = new ConnectException();
        refused.initCause(new ClosedChannelException());
        assertEquals("ConnectException (ClosedChannelException)", HubHttp.describe(refused));

        ConnectException unknownHost = new ConnectException();
        unknownHost.initCause(new UnresolvedAddressException());
        assertEquals("ConnectException: unknown host", HubHttp.describe(unknownHost));

        assertEquals("IOException: closed\nlate".replace("\n", " "),
                HubHttp.describe(new IOException("closed\nlate")));
    }
}
