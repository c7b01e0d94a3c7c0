/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.hub;

import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * The engine tests' {@link FakeHub} (a Hugging Face hub and CDN on 127.0.0.1, from the engine's
 * test-jar) for tests outside its package: serves the files of a local model folder as the repo
 * {@link #REPO}, {@code *.safetensors} as LFS files behind the CDN.
 */
public final class LoopbackHub implements AutoCloseable {

    public static final String REPO = FakeHub.REPO;

    private final FakeHub hub;

    /** Publishes every file of {@code folder} as the repo's {@code main}. */
    public LoopbackHub(Path folder) throws IOException {
        Map<String, FakeHub.RepoFile> files = new LinkedHashMap<>();
        List<Path> all;
        try (Stream<Path> s = Files.list(folder)) {
            all = s.sorted().toList();
        }
        for (Path p : all) {
            String name = p.getFileName().toString();
            files.put(name, new FakeHub.RepoFile(name, Files.readAllBytes(p), name.endsWith(".safetensors")));
        }
        hub = new FakeHub();
        hub.publish(FakeHub.COMMIT2, files);
    }

    /** For {@code HF_ENDPOINT}. */
    public URI endpoint() {
        return hub.endpoint();
    }

    /** The commit {@code main} points at. */
    public String commit() {
        return FakeHub.COMMIT2;
    }

    /** How many file bodies (hub or CDN) the servers have sent. */
    public int fileTransfers() {
        return hub.fileTransfers().size();
    }

    @Override
    public void close() {
        hub.close();
    }
}
