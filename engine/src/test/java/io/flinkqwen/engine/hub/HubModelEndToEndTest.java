/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.hub;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.engine.LoadedModel;
import io.flinkqwen.engine.generate.Generator;
import io.flinkqwen.engine.generate.SamplingParams;
import io.flinkqwen.engine.model.Qwen2Model;
import io.flinkqwen.engine.testmodel.TestModelGenerator;
import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.KernelPool;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A Hugging Face id resolved against a hub on 127.0.0.1 serving a sharded model we generated:
 * download into the HF cache layout, open, and generate the same ids as the local copy.
 */
class HubModelEndToEndTest {

    @TempDir Path dir;

    @Test
    void hubIdDownloadsAndRunsLikeTheLocalFolder() throws Exception {
        Path local = dir.resolve("local");
        new TestModelGenerator(TestModelGenerator.tinyConfig(), 17).write(TestModelGenerator.Format.HF, DType.BF16, local, 150_000);
        Map<String, FakeHub.RepoFile> files = new LinkedHashMap<>();
        List<Path> all;
        try (Stream<Path> s = Files.list(local)) {
            all = s.sorted().collect(Collectors.toList());
        }
        for (Path p : all) {
            String name = p.getFileName().toString();
            files.put(name, new FakeHub.RepoFile(name, Files.readAllBytes(p), name.endsWith(".safetensors")));
        }
        int[] prompt = {5, 6, 7, 8, 9};
        try (FakeHub hub = new FakeHub(); KernelPool pool = new KernelPool(1)) {
            hub.publish(FakeHub.COMMIT2, files);
            HfHubClient client =
                    HfHubClient.builder(Map.of("HF_HOME", dir.resolve("hf").toString(), "HF_ENDPOINT", hub.endpoint().toString()))
                            .progress(ProgressListener.NONE)
                            .build();
            Path snapshot = ModelLocator.resolve(FakeHub.REPO, client);
            assertTrue(snapshot.toString().contains("snapshots"), snapshot.toString());
            int[] fromHub;
            int[] fromLocal;
            try (LoadedModel m = LoadedModel.open(snapshot)) {
                Qwen2Model f = m.newForward(pool, 8);
                fromHub = new Generator(f).generate(prompt, SamplingParams.greedy(16), null).ids();
            }
            try (LoadedModel m = LoadedModel.open(local)) {
                Qwen2Model f = m.newForward(pool, 8);
                fromLocal = new Generator(f).generate(prompt, SamplingParams.greedy(16), null).ids();
            }
            assertEquals(16, fromHub.length);
            assertArrayEquals(fromLocal, fromHub);
        }
    }
}
