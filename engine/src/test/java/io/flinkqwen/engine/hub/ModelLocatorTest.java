/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.hub;

import static io.flinkqwen.engine.hub.FakeHub.COMMIT1;
import static io.flinkqwen.engine.hub.FakeHub.COMMIT2;
import static io.flinkqwen.engine.hub.FakeHub.REPO;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.engine.hub.FakeHub.RepoFile;
import io.flinkqwen.engine.hub.HubException.Reason;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ModelLocatorTest {

    @TempDir Path dir;
    FakeHub fake;
    HfHubClient client;

    @BeforeEach
    void start() throws IOException {
        fake = new FakeHub();
        client = HfHubClient.builder(Map.of(
                        "HF_HOME", dir.resolve("hf").toString(),
                        "HF_ENDPOINT", fake.endpoint().toString()))
                .progress(ProgressListener.NONE)
                .build();
    }

    @AfterEach
    void stop() {
        fake.close();
    }

    HubException fails(String arg) {
        return assertThrows(HubException.class, () -> ModelLocator.resolve(arg, client));
    }

    @Test
    void localModelFilesAreReturnedAsTheyAre() throws IOException {
        Path gguf = Files.write(dir.resolve("qwen2-0.5b.Q8_0.gguf"), new byte[] {1});
        Path safetensors = Files.write(dir.resolve("model.safetensors"), new byte[] {1});

        assertEquals(gguf, ModelLocator.resolve(gguf.toString(), client));
        assertEquals(safetensors, ModelLocator.resolve(safetensors.toString(), client));
        assertTrue(fake.requests.isEmpty());
    }

    @Test
    void localFileOfAnotherKindIsRejected() throws IOException {
        Path text = Files.writeString(dir.resolve("notes.txt"), "hi");

        HubException e = fails(text.toString());

        assertEquals(Reason.NOT_A_MODEL, e.reason());
        assertTrue(e.getMessage().contains(text.toString()) && e.getMessage().contains(".gguf"), e.getMessage());
    }

    @Test
    void localHuggingFaceFolderIsReturnedWhenComplete() throws IOException {
        Path model = Files.createDirectories(dir.resolve("qwen"));
        Files.writeString(model.resolve("config.json"), "{}");
        Files.write(model.resolve("model.safetensors"), new byte[] {1});

        assertEquals(model, ModelLocator.resolve(model.toString(), client));
    }

    @Test
    void localFolderWithoutConfigOrWeightsIsRejected() throws IOException {
        Path model = Files.createDirectories(dir.resolve("qwen"));
        Files.write(model.resolve("model.safetensors"), new byte[] {1});
        HubException noConfig = fails(model.toString());
        assertEquals(Reason.NOT_A_MODEL, noConfig.reason());
        assertTrue(noConfig.getMessage().contains("has no config.json"), noConfig.getMessage());

        Files.delete(model.resolve("model.safetensors"));
        Files.writeString(model.resolve("config.json"), "{}");
        assertTrue(fails(model.toString()).getMessage().contains("has no *.safetensors"));
    }

    @Test
    void somethingElseIsNeitherFileFolderNorId() {
        for (String arg : new String[] {"./no/such/model", "no-such-file.gguf", "a/b/c"}) {
            HubException e = fails(arg);
            assertEquals(Reason.NOT_A_MODEL, e.reason(), arg);
            assertTrue(e.getMessage().contains("'" + arg + "' is not a file, folder or Hugging Face id"),
                    e.getMessage());
        }
        assertEquals(Reason.NOT_A_MODEL, fails(" ").reason());
        assertTrue(fake.requests.isEmpty(), "nothing went to the hub");
    }

    @Test
    void hubIdIsDownloadedWithTheModelFilesOnly() throws IOException {
        Path snapshot = ModelLocator.resolve(REPO, client);

        assertEquals(client.cacheDir().resolve("models--acme--tiny-qwen/snapshots/" + COMMIT1), snapshot);
        assertArrayEquals(fake.file("model.safetensors").content(),
                Files.readAllBytes(snapshot.resolve("model.safetensors")));
        assertTrue(Files.isRegularFile(snapshot.resolve("config.json")));
        assertFalse(Files.exists(snapshot.resolve("README.md")));
        assertFalse(Files.exists(snapshot.resolve("onnx")), "sub-folder variants are not model files");
    }

    @Test
    void hubIdWithRevisionFetchesThatRevision() {
        Map<String, RepoFile> files = new LinkedHashMap<>(fake.files(COMMIT1));
        FakeHub.add(files, "config.json", "{\"v\":2}", false);
        fake.publish(COMMIT2, files);

        Path snapshot = ModelLocator.resolve(REPO + "@" + COMMIT1, client);

        assertEquals(COMMIT1, snapshot.getFileName().toString());
    }

    @Test
    void unknownHubIdSaysNoLocalPathExistsEither() {
        HubException e = fails("acme/missing");

        assertEquals(Reason.NOT_FOUND, e.reason());
        assertTrue(e.getMessage().contains("acme/missing: repository not found"), e.getMessage());
        assertTrue(e.getMessage().endsWith("no local file or folder 'acme/missing' exists either"), e.getMessage());
    }

    @Test
    void hubRepoWithoutSafetensorsIsNotAModel() {
        Map<String, RepoFile> files = new LinkedHashMap<>();
        FakeHub.add(files, "config.json", "{}", false);
        FakeHub.add(files, "qwen2-0_5b-instruct-q8_0.gguf", "GGUF", true);
        fake.publish(COMMIT2, files);

        HubException e = fails(REPO);

        assertEquals(Reason.NOT_A_MODEL, e.reason());
        assertTrue(e.getMessage().contains("has no *.safetensors file"), e.getMessage());
        assertTrue(e.getMessage().contains("GGUF"), e.getMessage());
    }

    @Test
    void modelFilesFilterTakesWhatQwen2Needs() {
        for (String yes : new String[] {"config.json", "generation_config.json", "tokenizer.json",
            "tokenizer_config.json", "model.safetensors", "model-00001-of-00002.safetensors",
            "model.safetensors.index.json"}) {
            assertTrue(ModelLocator.MODEL_FILES.test(yes), yes);
        }
        for (String no : new String[] {"README.md", ".gitattributes", "pytorch_model.bin", "vocab.json",
            "merges.txt", "onnx/model.safetensors", "model.gguf", "LICENSE"}) {
            assertFalse(ModelLocator.MODEL_FILES.test(no), no);
        }
    }
}
