/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.safetensors;

import static io.flinkqwen.engine.weights.ModelFileWriting.suppliedData;
import static io.flinkqwen.engine.weights.ModelFileWriting.writeFully;

import com.fasterxml.jackson.core.util.DefaultIndenter;
import com.fasterxml.jackson.core.util.DefaultPrettyPrinter;
import com.fasterxml.jackson.core.util.Separators;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.flinkqwen.engine.weights.ModelFileWriting;
import io.flinkqwen.kernels.DType;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.function.Supplier;

/**
 * Writes Hugging Face safetensors: one file, or shards with a {@code
 * model.safetensors.index.json}, in the layout Hugging Face's reader checks: header JSON padded
 * with spaces to a multiple of 8 bytes, then the tensors' data back to back in the order they
 * were added, covering the data section exactly.
 *
 * <p>Tensor data is produced lazily: each {@link Supplier} is called once, while writing, so only
 * one tensor needs to be in memory at a time; its buffer must hold exactly the tensor's bytes,
 * little-endian, row-major. Files are written to a temporary file in the target folder and moved
 * into place. Not thread-safe.
 */
public final class SafetensorsWriter {

    private record Tensor(String name, SafetensorsDType dtype, long[] shape, long sizeBytes, Supplier<ByteBuffer> data) {}

    private final Map<String, Tensor> tensors = new LinkedHashMap<>();
    private final Map<String, String> metadata = new LinkedHashMap<>();

    /**
     * Adds a tensor.
     *
     * @param dtype F32, F16 or BF16 (the block formats are GGUF's, not safetensors')
     * @param shape row-major, outermost first; non-negative dims ({@code []} is a scalar)
     * @param data called once while writing; must return exactly the tensor's bytes
     */
    public SafetensorsWriter add(String name, DType dtype, long[] shape, Supplier<ByteBuffer> data) {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(data, "data");
        SafetensorsDType st =
                SafetensorsDType.of(dtype)
                        .orElseThrow(
                                () ->
                                        new IllegalArgumentException(
                                                String.format(
                                                        "tensor '%s': safetensors holds F32, F16 and BF16"
                                                                + " here, not %s (a GGUF block format)",
                                                        name, dtype)));
        if (name.isEmpty() || name.equals("__metadata__")) {
            throw new IllegalArgumentException("'" + name + "' cannot name a tensor");
        }
        if (tensors.containsKey(name)) {
            throw new IllegalArgumentException("tensor '" + name + "' was already added");
        }
        long elements = 1;
        for (long d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException(
                        String.format(
                                "tensor '%s' has shape %s; dimensions cannot be negative",
                                name, Arrays.toString(shape)));
            }
            elements = Math.multiplyExact(elements, d);
        }
        tensors.put(name, new Tensor(name, st, shape.clone(), st.byteSize(elements), data));
        return this;
    }

    /** A {@code __metadata__} entry, written into every file (HF writes {@code format: pt}). */
    public SafetensorsWriter metadata(String key, String value) {
        metadata.put(Objects.requireNonNull(key, "key"), Objects.requireNonNull(value, key));
        return this;
    }

    /** The header of a file holding {@code shard}: length-prefix not included, space padded. */
    private byte[] header(List<Tensor> shard) {
        ObjectNode root = SafetensorsStore.JSON.createObjectNode();
        if (!metadata.isEmpty()) {
            ObjectNode meta = root.putObject("__metadata__");
            metadata.forEach(meta::put);
        }
        long offset = 0;
        for (Tensor t : shard) {
            ObjectNode node = root.putObject(t.name());
            node.put("dtype", t.dtype().name());
            Arrays.stream(t.shape()).forEach(node.putArray("shape")::add);
            node.putArray("data_offsets").add(offset).add(offset + t.sizeBytes());
            offset += t.sizeBytes();
        }
        byte[] json;
        try {
            json = SafetensorsStore.JSON.writeValueAsBytes(root);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        int padded = (json.length + 7) / 8 * 8;
        byte[] out = Arrays.copyOf(json, padded);
        Arrays.fill(out, json.length, padded, (byte) ' ');
        return out;
    }

    /** {@link #header} of every tensor added, for tests that lay out a file by hand. */
    byte[] header() {
        return header(new ArrayList<>(tensors.values()));
    }

    /** Writes every tensor into one file. */
    public void write(Path file) throws IOException {
        writeFile(file.toAbsolutePath(), new ArrayList<>(tensors.values()));
    }

    /**
     * Writes the tensors into shards {@code model-00001-of-0000N.safetensors} of at most {@code
     * maxShardBytes} of tensor data each (a larger tensor gets a shard of its own), filled in the
     * order the tensors were added, then {@code model.safetensors.index.json} with {@code
     * metadata.total_size} and the {@code weight_map} (sorted by name, as Hugging Face writes it).
     * The index is written even for one shard, and written last: a folder whose index is in place
     * is complete. Shards of an earlier write with other names are left alone.
     *
     * @return the shard files, in order
     */
    public List<Path> writeSharded(Path dir, long maxShardBytes) throws IOException {
        if (maxShardBytes <= 0) {
            throw new IllegalArgumentException("maxShardBytes must be positive, got " + maxShardBytes);
        }
        if (tensors.isEmpty()) {
            throw new IllegalStateException("no tensors to write");
        }
        List<List<Tensor>> shards = new ArrayList<>();
        List<Tensor> current = new ArrayList<>();
        long currentBytes = 0;
        long total = 0;
        for (Tensor t : tensors.values()) {
            if (!current.isEmpty() && currentBytes + t.sizeBytes() > maxShardBytes) {
                shards.add(current);
                current = new ArrayList<>();
                currentBytes = 0;
            }
            current.add(t);
            currentBytes += t.sizeBytes();
            total += t.sizeBytes();
        }
        shards.add(current);

        Path target = dir.toAbsolutePath();
        Files.createDirectories(target);
        List<Path> files = new ArrayList<>();
        Map<String, String> weightMap = new TreeMap<>();
        for (int i = 0; i < shards.size(); i++) {
            String name = String.format("model-%05d-of-%05d.safetensors", i + 1, shards.size());
            Path file = target.resolve(name);
            writeFile(file, shards.get(i));
            files.add(file);
            for (Tensor t : shards.get(i)) {
                weightMap.put(t.name(), name);
            }
        }
        ObjectNode index = SafetensorsStore.JSON.createObjectNode();
        index.putObject("metadata").put("total_size", total);
        ObjectNode map = index.putObject("weight_map");
        weightMap.forEach(map::put);
        // Laid out like Python's json.dumps(indent=2), which Hugging Face uses: "key": value.
        DefaultPrettyPrinter pretty =
                new DefaultPrettyPrinter()
                        .withSeparators(
                                Separators.createDefaultInstance()
                                        .withObjectFieldValueSpacing(Separators.Spacing.AFTER))
                        .withObjectIndenter(new DefaultIndenter("  ", "\n"))
                        .withArrayIndenter(new DefaultIndenter("  ", "\n"));
        byte[] json =
                SafetensorsStore.JSON
                        .writer(pretty)
                        .writeValueAsString(index)
                        .concat("\n")
                        .getBytes(StandardCharsets.UTF_8);
        ModelFileWriting.writeAtomically(
                target.resolve(SafetensorsStore.INDEX_FILE), ch -> writeFully(ch, ByteBuffer.wrap(json)));
        return files;
    }

    private void writeFile(Path file, List<Tensor> shard) throws IOException {
        byte[] header = header(shard);
        ModelFileWriting.writeAtomically(
                file,
                ch -> {
                    ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
                    len.putLong(0, header.length);
                    writeFully(ch, len);
                    writeFully(ch, ByteBuffer.wrap(header));
                    for (Tensor t : shard) {
                        writeFully(ch, suppliedData(t.name(), t.dtype(), t.shape(), t.sizeBytes(), t.data()));
                    }
                });
    }
}
