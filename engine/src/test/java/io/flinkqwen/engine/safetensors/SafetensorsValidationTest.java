/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.safetensors;

import static io.flinkqwen.engine.safetensors.SafetensorsTestData.assertFails;
import static io.flinkqwen.engine.safetensors.SafetensorsTestData.assertOpenFails;
import static io.flinkqwen.engine.safetensors.SafetensorsTestData.handWritten;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.flinkqwen.kernels.DType;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Every corruption of safetensors files and indexes fails, naming the file and the problem. */
class SafetensorsValidationTest {

    @TempDir Path dir;

    static final String VALID =
            "{\"__metadata__\":{\"format\":\"pt\"},"
                    + "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                    + "\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[24,28]}}";

    private int files;

    /** A file with the valid data section and {@code json} as its header. */
    private Path withHeader(String json) throws IOException {
        return handWritten(dir.resolve("f" + files++ + ".safetensors"), json, new byte[28]);
    }

    private Path valid() throws IOException {
        return withHeader(VALID);
    }

    @Test
    void missingFilesAndFoldersWithoutAModelAreNamed() throws IOException {
        assertOpenFails(dir.resolve("nope.safetensors"), "no such file");
        Path folder = Files.createDirectory(dir.resolve("folder"));
        Files.createFile(folder.resolve("other.safetensors"));
        assertOpenFails(
                folder,
                "holds neither model.safetensors.index.json nor model.safetensors (safetensors files there:"
                        + " [other.safetensors])");
    }

    @Test
    void truncatedFilesAreCaughtWhereverTheyEnd() throws IOException {
        Path good = valid();
        byte[] bytes = Files.readAllBytes(good);
        int headerEnd = 8 + VALID.length();
        Object[][] cuts = {
            {0, "truncated at byte 0 while reading the 8-byte header length"},
            {5, "truncated at byte 5 while reading the 8-byte header length"},
            {8, "truncated at byte 8 while reading the " + VALID.length() + "-byte JSON header that starts at byte 8"},
            {40, "truncated at byte 40 while reading the " + VALID.length() + "-byte JSON header"},
            {headerEnd + 10, "truncated: tensor 'w' has data_offsets [0, 24], past the end of the 10-byte data section"},
            {headerEnd + 26, "truncated: tensor 'b' has data_offsets [24, 28], past the end of the 26-byte data section"},
        };
        for (Object[] cut : cuts) {
            Path file = Files.write(dir.resolve("cut-" + cut[0] + ".safetensors"), Arrays.copyOf(bytes, (Integer) cut[0]));
            assertOpenFails(file, (String) cut[1]);
        }
        for (int length = 0; length < bytes.length; length++) {
            Path file = Files.write(dir.resolve("cut.safetensors"), Arrays.copyOf(bytes, length));
            assertOpenFails(file, "truncated");
        }
    }

    @Test
    void absurdHeaderLengthsAreRejected() throws IOException {
        Path good = valid();
        byte[] bytes = Files.readAllBytes(good);
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 1L << 40);
        assertOpenFails(Files.write(dir.resolve("a.safetensors"), bytes), "header length 1099511627776 (bytes 0-7) is absurd");
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).putLong(0, -1);
        assertOpenFails(Files.write(dir.resolve("b.safetensors"), bytes), "header length 18446744073709551615 (bytes 0-7) is absurd");
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).putLong(0, bytes.length);
        assertOpenFails(
                Files.write(dir.resolve("c.safetensors"), bytes),
                "truncated at byte " + bytes.length + " while reading the " + bytes.length + "-byte JSON header");
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 1);
        assertOpenFails(Files.write(dir.resolve("d.safetensors"), bytes), "header length 1 is too small for a JSON object");
    }

    @Test
    void headersThatAreNotJsonObjectsAreRejected() throws IOException {
        assertOpenFails(withHeader("[" + VALID + "]"), "the header does not start with '{' (byte 8 is 0x5b)");
        assertOpenFails(withHeader(VALID.substring(0, 60)), "the header is not valid JSON");
        assertOpenFails(withHeader(VALID + "}"), "the header is not valid JSON");
        assertOpenFails(
                withHeader(VALID.replace("\"b\":", "\"w\":")), "the header is not valid JSON", "Duplicate field 'w'");
    }

    @Test
    void unknownDTypesFailAtOpenAndUnsupportedOnesWhenUsed() throws IOException {
        assertOpenFails(
                withHeader(VALID.replace("\"F32\"", "\"F17\"")),
                "tensor 'w' has unknown dtype 'F17' (known: BOOL, F4, F6_E2M3");
        assertOpenFails(withHeader(VALID.replace("\"F32\"", "\"f32\"")), "tensor 'w' has unknown dtype 'f32'");
        Path file =
                withHeader(
                        "{\"i8\":{\"dtype\":\"I8\",\"shape\":[2,3],\"data_offsets\":[0,6]},"
                                + "\"f64\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[8,24]},"
                                + "\"fp8\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[24,28]}}");
        try (SafetensorsStore store = SafetensorsStore.open(file)) {
            assertEquals(SafetensorsDType.F8_E4M3, store.tensor("fp8").dtype());
            assertFails(
                    () -> store.matrix("i8", 2, 3),
                    file,
                    "tensor i8 in " + file + ": dtype I8 is not supported (supported: F32, F16, BF16)");
            assertFails(() -> store.vector("f64", 2), file, "tensor f64 in " + file + ": dtype F64 is not supported");
            assertFails(() -> store.vector("fp8", 4), file, "tensor fp8 in " + file + ": dtype F8_E4M3 is not supported");
            assertEquals(4, store.tensorData("fp8").remaining(), "raw bytes of any dtype");
        }
    }

    @Test
    void offsetsThatDisagreeWithTheDTypeAndShapeAreRejected() throws IOException {
        assertOpenFails(
                withHeader(VALID.replace("[0,24]", "[0,20]")),
                "tensor 'w' (F32 [2, 3]) needs 24 bytes, but its data_offsets [0, 20] span 20");
        assertOpenFails(withHeader(VALID.replace("[0,24]", "[24,0]")), "tensor 'w' has data_offsets [24, 0] that end before they begin");
        assertOpenFails(
                withHeader(VALID.replace("[24,28]", "[20,24]")),
                "the data of tensors 'w' (file bytes [",
                "and 'b' (file bytes [",
                ")) overlap");
        assertOpenFails(
                withHeader(VALID.replace("[24,28]", "[100,104]")),
                "truncated: tensor 'b' has data_offsets [100, 104], past the end of the 28-byte data section");
        assertOpenFails(withHeader(VALID.replace("[24,28]", "[24,28,32]")), "tensor 'b' has data_offsets = [24,28,32], expected an array of 2");
        assertOpenFails(withHeader(VALID.replace("[24,28]", "[-4,28]")), "tensor 'b' has data_offsets = [-4,28]; element 0 is not a non-negative integer");
    }

    @Test
    void malformedTensorEntriesAreRejected() throws IOException {
        assertOpenFails(withHeader(VALID.replace("[2,3]", "[-2,3]")), "tensor 'w' has shape = [-2,3]; element 0 is not a non-negative integer");
        assertOpenFails(withHeader(VALID.replace("[2,3]", "[2.5,3]")), "element 0 is not a non-negative integer");
        assertOpenFails(withHeader(VALID.replace("[2,3]", "\"2x3\"")), "tensor 'w' has shape = \"2x3\", expected an array");
        assertOpenFails(
                withHeader(VALID.replace("[2,3]", "[1099511627776,1099511627776]")),
                "tensor 'w' (F32 [1099511627776, 1099511627776]) has no valid byte size");
        assertOpenFails(withHeader(VALID.replace("\"dtype\":\"F32\",", "")), "tensor 'w' has no \"dtype\" string");
        assertOpenFails(
                withHeader("{\"w\":5,\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[24,28]}}"),
                "header entry of tensor 'w' is not an object");
        assertOpenFails(
                withHeader(VALID.replace("{\"format\":\"pt\"}", "{\"format\":1}")),
                "__metadata__ value of 'format' is 1, expected a string");
    }

    private Path sharded() throws IOException {
        Path folder = dir.resolve("sharded");
        SafetensorsWriter w = new SafetensorsWriter();
        for (int i = 0; i < 4; i++) {
            w.add("model.layers." + i + ".weight", DType.F32, new long[] {4, 4}, () -> ByteBuffer.allocate(64));
        }
        assertEquals(2, w.writeSharded(folder, 128).size());
        return folder;
    }

    @Test
    void aMissingShardIsNamedWithTheIndex() throws IOException {
        Path folder = sharded();
        Path index = folder.resolve("model.safetensors.index.json");
        Path second = folder.resolve("model-00002-of-00002.safetensors");
        Files.delete(second);
        assertOpenFails(
                folder,
                index + ": shard " + second + " is missing (the index maps 2 tensors to it, e.g. 'model.layers.2.weight')");
    }

    @Test
    void aTensorTheIndexPutsInAShardThatLacksItIsNamed() throws IOException {
        Path folder = sharded();
        Path index = folder.resolve("model.safetensors.index.json");
        String json = Files.readString(index);
        Files.writeString(
                index,
                json.replace(
                        "\"weight_map\": {",
                        "\"weight_map\": {\"model.norm.weight\": \"model-00001-of-00002.safetensors\","));
        assertOpenFails(
                folder,
                index + ": maps tensor 'model.norm.weight' to shard " + folder.resolve("model-00001-of-00002.safetensors")
                        + ", but that shard has no such tensor (it has 2 tensors)");
    }

    @Test
    void badIndexesAreNamed() throws IOException {
        Path folder = sharded();
        Path index = folder.resolve("model.safetensors.index.json");
        String json = Files.readString(index);
        Files.writeString(index, json.substring(0, json.length() / 2));
        assertOpenFails(folder, index + ": the index is not valid JSON");
        Files.writeString(index, "{\"metadata\": {}}");
        assertOpenFails(folder, index + ": has no \"weight_map\" object");
        Files.writeString(index, "{\"weight_map\": {}}");
        assertOpenFails(folder, index + ": weight_map lists no tensors");
        Files.writeString(index, "{\"weight_map\": {\"a\": \"../escape.safetensors\"}}");
        assertOpenFails(folder, index + ": shard '../escape.safetensors' is not a file name in the index's folder");
        Files.writeString(index, "{\"weight_map\": {\"a\": 3}}");
        assertOpenFails(folder, index + ": weight_map maps tensor 'a' to 3, expected a shard file name");
    }

    @Test
    void aCorruptShardIsNamedItself() throws IOException {
        Path folder = sharded();
        Path shard = folder.resolve("model-00002-of-00002.safetensors");
        byte[] bytes = Files.readAllBytes(shard);
        Files.write(shard, Arrays.copyOf(bytes, bytes.length - 1));
        assertFails(() -> SafetensorsStore.open(folder).close(), shard, "truncated: tensor 'model.layers.3.weight'");
    }

    @Test
    void missingTensorsAndWrongShapesAreNamedWithExpectedAndActual() throws IOException {
        Path file = valid();
        try (SafetensorsStore store = SafetensorsStore.open(file)) {
            assertFails(
                    () -> store.matrix("model.norm.weight", 1, 2),
                    file,
                    "has no tensor 'model.norm.weight' (model has 2 tensors, e.g. ");
            assertFails(() -> store.matrix("w", 3, 2), file, "tensor w in " + file + " has shape [2, 3], expected [3, 2]");
            assertFails(() -> store.vector("w", 6), file, "tensor w in " + file + " has shape [2, 3], expected [6]");
            assertFails(() -> store.vector("b", 3), file, "has shape [2], expected [3]");
            assertFails(() -> store.matrix("b", 1, 2), file, "has shape [2], expected [1, 2]");
        }
    }

    @Test
    void aClosedStoreRefusesNewMapsButOldOnesStayReadable() throws IOException {
        ByteBuffer data = ByteBuffer.allocate(28).order(ByteOrder.LITTLE_ENDIAN).putFloat(0, 7f);
        Path file = handWritten(dir.resolve("c.safetensors"), VALID, data.array());
        SafetensorsStore store = SafetensorsStore.open(file);
        var m = store.matrix("w", 2, 3);
        store.close();
        assertEquals(7f, m.chunk(0).getFloat(0));
        assertThrows(IllegalStateException.class, () -> store.vector("b", 2));
        assertEquals(List.of(file), store.files());
    }

    @Test
    void invalidUtf8InTheHeaderIsNotValidJson() throws IOException {
        byte[] json = VALID.getBytes(StandardCharsets.UTF_8);
        int at = VALID.indexOf("\"b\"") + 1;
        json[at] = (byte) 0xC3;
        Path file = dir.resolve("utf8.safetensors");
        ByteBuffer b = ByteBuffer.allocate(8 + json.length + 28).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(json.length).put(json);
        Files.write(file, b.array());
        assertOpenFails(file, "the header is not valid JSON");
    }
}
