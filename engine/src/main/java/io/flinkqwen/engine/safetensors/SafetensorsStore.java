/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.safetensors;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.json.JsonMapper;
import io.flinkqwen.engine.weights.ModelFormatException;
import io.flinkqwen.engine.weights.TensorStore;
import io.flinkqwen.engine.weights.TensorStores;
import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.WeightMatrix;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * Hugging Face safetensors weights: one {@code .safetensors} file, or a folder holding {@code
 * model.safetensors.index.json} (sharded) or {@code model.safetensors}.
 *
 * <p>A safetensors file is an 8-byte little-endian header length {@code N}, {@code N} bytes of
 * UTF-8 JSON ({@code {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]},
 * ..., "__metadata__": {str: str}}}, offsets relative to the byte after the header), then the raw
 * little-endian row-major data. {@link #open} parses and checks every header (length, JSON,
 * dtypes, that each tensor's byte range matches its dtype and shape, lies inside the file and
 * overlaps no other) and, for a sharded model, that every shard the index names exists and holds
 * the tensors the index maps to it. Errors are {@link ModelFormatException}s that name the file
 * (or index) and the problem.
 *
 * <p>A sharded model's tensors are those of the index's {@code weight_map}; a shard's tensors
 * that the index does not list are ignored, as Hugging Face does. Data is never read at open:
 * {@link #matrix} maps it, {@link #vector} decodes small 1-D tensors. Immutable after open and
 * safe to share between threads; mapped matrices stay valid after {@link #close}.
 */
public final class SafetensorsStore implements TensorStore {

    public static final String SINGLE_FILE = "model.safetensors";
    public static final String INDEX_FILE = "model.safetensors.index.json";

    /** The limit of Hugging Face's own reader (safetensors MAX_HEADER_SIZE). */
    static final long MAX_HEADER_BYTES = 100_000_000L;

    static final JsonMapper JSON =
            JsonMapper.builder()
                    .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
                    .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
                    .build();

    private final Path source;
    private final Map<String, SafetensorsTensorInfo> tensors;
    private final Map<Path, FileChannel> channels;
    private final Map<String, String> metadata;
    private final Map<String, Object> indexMetadata;
    private volatile boolean closed;

    private SafetensorsStore(
            Path source,
            Map<String, SafetensorsTensorInfo> tensors,
            Map<Path, FileChannel> channels,
            Map<String, String> metadata,
            Map<String, Object> indexMetadata) {
        this.source = source;
        this.tensors = Collections.unmodifiableMap(tensors);
        this.channels = channels;
        this.metadata = Collections.unmodifiableMap(metadata);
        this.indexMetadata = Collections.unmodifiableMap(indexMetadata);
    }

    /** The header of one file, checked. */
    private record Header(Map<String, SafetensorsTensorInfo> tensors, Map<String, String> metadata) {}

    /**
     * Opens a {@code .safetensors} file, a {@code *.safetensors.index.json} (with its shards), or a
     * folder holding {@code model.safetensors.index.json} (preferred) or {@code model.safetensors}.
     *
     * @throws ModelFormatException if anything is missing or corrupt; the message names the file
     *     and the problem
     * @throws UncheckedIOException if reading fails
     */
    public static SafetensorsStore open(Path fileOrDir) {
        Path path = fileOrDir;
        if (Files.isDirectory(path)) {
            Path index = path.resolve(INDEX_FILE);
            Path single = path.resolve(SINGLE_FILE);
            if (Files.isRegularFile(index)) {
                return openSharded(fileOrDir, index);
            }
            if (Files.isRegularFile(single)) {
                return openSingle(fileOrDir, single);
            }
            List<String> found;
            try (Stream<Path> s = Files.list(path)) {
                found =
                        s.map(p -> p.getFileName().toString())
                                .filter(n -> n.endsWith(".safetensors") || n.endsWith(".index.json"))
                                .sorted()
                                .collect(Collectors.toList());
            } catch (IOException e) {
                throw new UncheckedIOException(path + ": cannot list the folder", e);
            }
            throw new ModelFormatException(
                    String.format(
                            "%s: holds neither %s nor %s (safetensors files there: %s)",
                            path, INDEX_FILE, SINGLE_FILE, found.isEmpty() ? "none" : found));
        }
        if (path.getFileName() != null && path.getFileName().toString().endsWith(".index.json")) {
            return openSharded(fileOrDir, path);
        }
        return openSingle(fileOrDir, path);
    }

    private static SafetensorsStore openSingle(Path source, Path file) {
        FileChannel ch = TensorStores.openForReading(file);
        try {
            Header h = readHeader(file, ch);
            Map<Path, FileChannel> channels = new LinkedHashMap<>();
            channels.put(file, ch);
            return new SafetensorsStore(source, new LinkedHashMap<>(h.tensors()), channels, h.metadata(), Map.of());
        } catch (RuntimeException | Error e) {
            TensorStores.closeAfterFailure(List.of(ch), e);
            throw e;
        }
    }

    private static SafetensorsStore openSharded(Path source, Path index) {
        JsonNode root = readJson(index, readIndexBytes(index), "index");
        Path dir = index.toAbsolutePath().normalize().getParent();
        JsonNode weightMap = root.get("weight_map");
        if (weightMap == null || !weightMap.isObject()) {
            throw new ModelFormatException(index + ": has no \"weight_map\" object");
        }
        Map<String, Object> indexMetadata = new LinkedHashMap<>();
        JsonNode meta = root.get("metadata");
        if (meta != null && !meta.isNull()) {
            if (!meta.isObject()) {
                throw new ModelFormatException(index + ": \"metadata\" is not an object");
            }
            for (Map.Entry<String, JsonNode> e : meta.properties()) {
                indexMetadata.put(e.getKey(), JSON.convertValue(e.getValue(), Object.class));
            }
        }
        // shard file name -> tensors the index puts there, in index order; shards sorted by name
        Map<String, List<String>> byShard = new TreeMap<>();
        for (Map.Entry<String, JsonNode> e : weightMap.properties()) {
            if (!e.getValue().isTextual()) {
                throw new ModelFormatException(
                        String.format(
                                "%s: weight_map maps tensor '%s' to %s, expected a shard file name",
                                index, e.getKey(), e.getValue()));
            }
            byShard.computeIfAbsent(e.getValue().asText(), k -> new ArrayList<>()).add(e.getKey());
        }
        if (byShard.isEmpty()) {
            throw new ModelFormatException(index + ": weight_map lists no tensors");
        }
        Map<Path, FileChannel> channels = new LinkedHashMap<>();
        try {
            Map<String, Path> shardPaths = new LinkedHashMap<>();
            for (Map.Entry<String, List<String>> e : byShard.entrySet()) {
                String shard = e.getKey();
                Path file = dir.resolve(shard).normalize();
                if (shard.isEmpty() || !dir.equals(file.getParent())) {
                    throw new ModelFormatException(
                            String.format(
                                    "%s: shard '%s' is not a file name in the index's folder", index, shard));
                }
                if (!Files.isRegularFile(file)) {
                    throw new ModelFormatException(
                            String.format(
                                    "%s: shard %s is missing (the index maps %d tensors to it, e.g. '%s')",
                                    index, file, e.getValue().size(), e.getValue().get(0)));
                }
                shardPaths.put(shard, file);
            }
            Map<String, Header> headers = new LinkedHashMap<>();
            Map<String, String> metadata = new LinkedHashMap<>();
            for (Map.Entry<String, Path> e : shardPaths.entrySet()) {
                FileChannel ch = TensorStores.openForReading(e.getValue());
                channels.put(e.getValue(), ch);
                Header h = readHeader(e.getValue(), ch);
                headers.put(e.getKey(), h);
                metadata.putAll(h.metadata());
            }
            Map<String, SafetensorsTensorInfo> tensors = new LinkedHashMap<>();
            for (Map.Entry<String, JsonNode> e : weightMap.properties()) {
                String shard = e.getValue().asText();
                Header h = headers.get(shard);
                SafetensorsTensorInfo t = h.tensors().get(e.getKey());
                if (t == null) {
                    throw new ModelFormatException(
                            String.format(
                                    "%s: maps tensor '%s' to shard %s, but that shard has no such tensor"
                                            + " (it has %d tensors)",
                                    index, e.getKey(), shardPaths.get(shard), h.tensors().size()));
                }
                tensors.put(e.getKey(), t);
            }
            return new SafetensorsStore(source, tensors, channels, metadata, indexMetadata);
        } catch (RuntimeException | Error e) {
            TensorStores.closeAfterFailure(channels.values(), e);
            throw e;
        }
    }

    private static byte[] readIndexBytes(Path index) {
        try {
            long size = Files.size(index);
            if (size > MAX_HEADER_BYTES) {
                throw new ModelFormatException(
                        index + ": is " + size + " bytes, too large for a safetensors index");
            }
            return Files.readAllBytes(index);
        } catch (NoSuchFileException e) {
            throw new ModelFormatException(index + ": no such file", e);
        } catch (IOException e) {
            throw new UncheckedIOException(index + ": cannot read", e);
        }
    }

    private static JsonNode readJson(Path file, byte[] bytes, String what) {
        JsonNode root;
        try {
            root = JSON.readTree(bytes);
        } catch (JsonProcessingException e) {
            throw new ModelFormatException(
                    String.format("%s: the %s is not valid JSON: %s", file, what, e.getOriginalMessage()), e);
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot parse the " + what, e);
        }
        if (root == null || !root.isObject()) {
            throw new ModelFormatException(
                    String.format("%s: the %s is not a JSON object", file, what));
        }
        return root;
    }

    /** Reads and checks the header of one file. */
    private static Header readHeader(Path file, FileChannel ch) {
        try {
            long fileSize = ch.size();
            if (fileSize < 8) {
                throw new ModelFormatException(
                        String.format(
                                "%s: truncated at byte %d while reading the 8-byte header length",
                                file, fileSize));
            }
            ByteBuffer lenBuf = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(ch, lenBuf, 0, file);
            long n = lenBuf.getLong(0);
            if (n < 0 || n > MAX_HEADER_BYTES) {
                throw new ModelFormatException(
                        String.format(
                                "%s: header length %s (bytes 0-7) is absurd (the limit is %d):"
                                        + " corrupt or not a safetensors file",
                                file, Long.toUnsignedString(n), MAX_HEADER_BYTES));
            }
            if (n > fileSize - 8) {
                throw new ModelFormatException(
                        String.format(
                                "%s: truncated at byte %d while reading the %d-byte JSON header that"
                                        + " starts at byte 8",
                                file, fileSize, n));
            }
            if (n < 2) {
                throw new ModelFormatException(
                        file + ": header length " + n + " is too small for a JSON object");
            }
            ByteBuffer json = ByteBuffer.allocate((int) n);
            readFully(ch, json, 8, file);
            byte[] bytes = json.array();
            if (bytes[0] != '{') {
                throw new ModelFormatException(
                        String.format(
                                "%s: the header does not start with '{' (byte 8 is 0x%02x): corrupt or"
                                        + " not a safetensors file",
                                file, bytes[0]));
            }
            JsonNode root = readJson(file, bytes, "header");
            return parseHeader(file, root, 8 + n, fileSize);
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot read", e);
        }
    }

    private static Header parseHeader(Path file, JsonNode root, long dataStart, long fileSize) {
        long dataBytes = fileSize - dataStart;
        Map<String, SafetensorsTensorInfo> tensors = new LinkedHashMap<>();
        Map<String, String> metadata = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> e : root.properties()) {
            String name = e.getKey();
            JsonNode node = e.getValue();
            if (name.equals("__metadata__")) {
                if (!node.isObject()) {
                    throw new ModelFormatException(file + ": __metadata__ is not an object of strings");
                }
                for (Map.Entry<String, JsonNode> kv : node.properties()) {
                    if (!kv.getValue().isTextual()) {
                        throw new ModelFormatException(
                                String.format(
                                        "%s: __metadata__ value of '%s' is %s, expected a string",
                                        file, kv.getKey(), kv.getValue()));
                    }
                    metadata.put(kv.getKey(), kv.getValue().asText());
                }
                continue;
            }
            tensors.put(name, parseTensor(file, name, node, dataStart, dataBytes));
        }
        TensorStores.checkNoOverlap(
                tensors.values(), "file bytes", problem -> new ModelFormatException(file + ": " + problem));
        return new Header(tensors, metadata);
    }

    private static SafetensorsTensorInfo parseTensor(
            Path file, String name, JsonNode node, long dataStart, long dataBytes) {
        if (!node.isObject()) {
            throw new ModelFormatException(
                    String.format("%s: header entry of tensor '%s' is not an object", file, name));
        }
        JsonNode dtypeNode = node.get("dtype");
        if (dtypeNode == null || !dtypeNode.isTextual()) {
            throw new ModelFormatException(
                    String.format("%s: tensor '%s' has no \"dtype\" string", file, name));
        }
        String dtypeName = dtypeNode.asText();
        SafetensorsDType dtype =
                SafetensorsDType.byName(dtypeName)
                        .orElseThrow(
                                () ->
                                        new ModelFormatException(
                                                String.format(
                                                        "%s: tensor '%s' has unknown dtype '%s' (known: %s)",
                                                        file, name, dtypeName, SafetensorsDType.KNOWN)));
        long[] shape = longs(file, name, node.get("shape"), "shape", -1);
        long[] offsets = longs(file, name, node.get("data_offsets"), "data_offsets", 2);
        long elements = 1;
        long size;
        try {
            for (long d : shape) {
                elements = Math.multiplyExact(elements, d);
            }
            size = dtype.byteSize(elements);
        } catch (ArithmeticException | IllegalArgumentException ex) {
            throw new ModelFormatException(
                    String.format(
                            "%s: tensor '%s' (%s %s) has no valid byte size: %s",
                            file, name, dtype, Arrays.toString(shape), ex.getMessage()));
        }
        long begin = offsets[0];
        long end = offsets[1];
        if (end < begin) {
            throw new ModelFormatException(
                    String.format(
                            "%s: tensor '%s' has data_offsets [%d, %d] that end before they begin",
                            file, name, begin, end));
        }
        if (end - begin != size) {
            throw new ModelFormatException(
                    String.format(
                            "%s: tensor '%s' (%s %s) needs %d bytes, but its data_offsets [%d, %d]"
                                    + " span %d",
                            file, name, dtype, Arrays.toString(shape), size, begin, end, end - begin));
        }
        if (end > dataBytes) {
            throw new ModelFormatException(
                    String.format(
                            "%s: truncated: tensor '%s' has data_offsets [%d, %d], past the end of the"
                                    + " %d-byte data section (the file is %d bytes, expected at least %d)",
                            file, name, begin, end, dataBytes, dataStart + dataBytes, dataStart + end));
        }
        return new SafetensorsTensorInfo(name, dtype, shape, file, dataStart + begin, size);
    }

    /** A JSON array of non-negative integers that fit a long; {@code length} -1 for any length. */
    private static long[] longs(Path file, String name, JsonNode node, String field, int length) {
        if (node == null || !node.isArray() || (length >= 0 && node.size() != length)) {
            throw new ModelFormatException(
                    String.format(
                            "%s: tensor '%s' has %s = %s, expected an array of %s non-negative integers",
                            file, name, field, node, length >= 0 ? String.valueOf(length) : "any number of"));
        }
        long[] out = new long[node.size()];
        for (int i = 0; i < out.length; i++) {
            JsonNode v = node.get(i);
            if (!v.isIntegralNumber() || !v.canConvertToLong() || v.asLong() < 0) {
                throw new ModelFormatException(
                        String.format(
                                "%s: tensor '%s' has %s = %s; element %d is not a non-negative integer",
                                file, name, field, node, i));
            }
            out[i] = v.asLong();
        }
        return out;
    }

    private static void readFully(FileChannel ch, ByteBuffer dst, long position, Path file)
            throws IOException {
        if (!TensorStores.readFully(ch, dst, position)) {
            throw new ModelFormatException(
                    String.format(
                            "%s: truncated at byte %d while reading %d bytes at byte %d",
                            file, position + dst.position(), dst.capacity(), position));
        }
    }

    // ---------------------------------------------------------------- facts

    /** The files opened: the single file, or every shard, sorted by file name. */
    public List<Path> files() {
        return List.copyOf(channels.keySet());
    }

    /** The {@code __metadata__} string map (for a sharded model, of all shards merged). */
    public Map<String, String> metadata() {
        return metadata;
    }

    /**
     * The index's {@code "metadata"} object (e.g. {@code total_size}), as plain Java values
     * (numbers as Jackson maps them: {@code Integer}, {@code Long}, {@code BigInteger} or {@code
     * Double}; objects {@code Map}); empty for one file.
     */
    public Map<String, Object> indexMetadata() {
        return indexMetadata;
    }

    /** Tensor infos in header (or index) order. */
    public List<SafetensorsTensorInfo> tensors() {
        return List.copyOf(tensors.values());
    }

    /** One tensor's info, or a {@link ModelFormatException} naming it and near names. */
    public SafetensorsTensorInfo tensor(String name) {
        return TensorStores.require(tensors, name, source);
    }

    @Override
    public String source() {
        return source.toString();
    }

    @Override
    public Set<String> tensorNames() {
        return tensors.keySet();
    }

    @Override
    public boolean contains(String name) {
        return tensors.containsKey(name);
    }

    @Override
    public long[] shape(String name) {
        return tensor(name).shape();
    }

    @Override
    public WeightMatrix matrix(String name, int rows, int cols) {
        checkOpen();
        SafetensorsTensorInfo t = tensor(name);
        TensorStores.checkShape(t, t.file(), rows, cols);
        return TensorStores.mapMatrix(channels.get(t.file()), t.file(), t, dtypeOf(t), rows, cols);
    }

    @Override
    public WeightMatrix[] expertMatrices(String name, int experts, int rows, int cols) {
        checkOpen();
        SafetensorsTensorInfo t = tensor(name);
        return TensorStores.mapExpertMatrices(channels.get(t.file()), t.file(), t, dtypeOf(t), experts, rows, cols);
    }

    @Override
    public float[] vector(String name, int length) {
        checkOpen();
        SafetensorsTensorInfo t = tensor(name);
        TensorStores.checkShape(t, t.file(), length);
        DType dtype = dtypeOf(t);
        ByteBuffer bytes = ByteBuffer.allocate(Math.toIntExact(t.sizeBytes())).order(ByteOrder.LITTLE_ENDIAN);
        try {
            readFully(channels.get(t.file()), bytes, t.offset(), t.file());
        } catch (IOException e) {
            throw new UncheckedIOException(t.file() + ": cannot read tensor " + name, e);
        }
        return TensorStores.decode(bytes.flip(), dtype, length);
    }

    /**
     * The raw bytes of a tensor of any dtype, mapped read-only and little-endian.
     *
     * @throws ModelFormatException if the tensor is missing or larger than 2 GiB (use {@link
     *     #matrix})
     */
    public ByteBuffer tensorData(String name) {
        checkOpen();
        SafetensorsTensorInfo t = tensor(name);
        return TensorStores.mapBytes(channels.get(t.file()), t.file(), t);
    }

    private DType dtypeOf(SafetensorsTensorInfo t) {
        return TensorStores.kernelDType(t, t.file(), t.dtype().dtype(), t.dtype()::notSupportedMessage);
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException(source + " is closed");
        }
    }

    /** Closes every file; matrices mapped before stay readable. */
    @Override
    public void close() {
        closed = true;
        TensorStores.closeAll(channels.values(), source);
    }

    @Override
    public String toString() {
        return String.format(
                "SafetensorsStore[%s, %d files, %d tensors]", source, channels.size(), tensors.size());
    }
}
