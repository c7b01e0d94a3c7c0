/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.gguf;

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
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * A GGUF model file (versions 2 and 3, little-endian), as llama.cpp writes it: a header of
 * metadata key/values and tensor infos, then the tensor data, each tensor aligned to {@code
 * general.alignment} (default 32) bytes.
 *
 * <p>{@link #open} parses the header through a buffered channel and checks it against the file:
 * magic, version, every count and length, duplicate names, dims, types, alignment and that every
 * tensor lies inside the file without overlapping another. Errors are {@link
 * ModelFormatException}s that name the file and what is wrong where. Tensor data is never read at
 * open; {@link #matrix} maps it and {@link #vector} decodes small 1-D tensors.
 *
 * <p>Metadata values are typed as {@link GgufValueType} documents: integer scalars are {@code
 * Long}, FLOAT32 {@code Float}, FLOAT64 {@code Double}, BOOL {@code Boolean}, STRING {@code
 * String}; arrays are primitive arrays of the file's width, or an unmodifiable {@code
 * List<String>}. The typed getters convert between compatible types and name the key when a value
 * is missing or of an incompatible type.
 *
 * <p>Shapes are row-major, outermost first: the file's dims (innermost first, {@code ne0} = number
 * of columns) reversed. An instance is immutable after {@link #open} and safe to share between
 * threads; mapped matrices stay valid after {@link #close}.
 */
public final class GgufFile implements TensorStore {

    /** "GGUF" read as a little-endian int. */
    static final int MAGIC = 0x46554747;

    public static final int DEFAULT_ALIGNMENT = 32;

    /** Far above any model (Qwen2-MoE 57B has ~500 tensors in GGUF): a larger count is corrupt. */
    static final long MAX_TENSORS = 1_000_000;

    static final long MAX_KEYS = 1_000_000;

    /** GGML_MAX_DIMS. */
    static final int MAX_DIMS = 4;

    /** Smallest tensor info: name length, n_dims, one dim, type, offset. */
    private static final int MIN_TENSOR_INFO_BYTES = 8 + 4 + 8 + 4 + 8;

    /** Smallest metadata entry: key length, value type, a one-byte value. */
    private static final int MIN_KV_BYTES = 8 + 4 + 1;

    private final Path path;
    private final FileChannel channel;
    private final int version;
    private final int alignment;
    private final long dataOffset;
    private final Map<String, Object> metadata;
    private final Map<String, GgufValueType> types;
    private final Map<String, GgufValueType> elementTypes;
    private final Map<String, GgufTensorInfo> tensors;
    private volatile boolean closed;

    private GgufFile(
            Path path,
            FileChannel channel,
            int version,
            int alignment,
            long dataOffset,
            Map<String, Object> metadata,
            Map<String, GgufValueType> types,
            Map<String, GgufValueType> elementTypes,
            Map<String, GgufTensorInfo> tensors) {
        this.path = path;
        this.channel = channel;
        this.version = version;
        this.alignment = alignment;
        this.dataOffset = dataOffset;
        this.metadata = Collections.unmodifiableMap(metadata);
        this.types = types;
        this.elementTypes = elementTypes;
        this.tensors = Collections.unmodifiableMap(tensors);
    }

    /**
     * Opens and checks a GGUF file; the file stays open until {@link #close}.
     *
     * @throws ModelFormatException if the file is missing, not GGUF, of another version, or
     *     corrupt; the message names the file and the problem
     * @throws UncheckedIOException if reading fails
     */
    public static GgufFile open(Path path) {
        if (Files.isDirectory(path)) {
            throw new ModelFormatException(path + ": is a folder, expected a .gguf file");
        }
        FileChannel channel = TensorStores.openForReading(path);
        try {
            return parse(path, channel);
        } catch (RuntimeException | Error e) {
            TensorStores.closeAfterFailure(List.of(channel), e);
            throw e;
        }
    }

    private static GgufFile parse(Path path, FileChannel channel) {
        long fileSize;
        try {
            fileSize = channel.size();
        } catch (IOException e) {
            throw new UncheckedIOException(path + ": cannot read the size", e);
        }
        GgufHeaderReader r = new GgufHeaderReader(channel, path, fileSize);

        r.context(() -> "the magic");
        int magic = r.i32();
        if (magic != MAGIC) {
            byte[] b = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(magic).array();
            throw r.error(
                    String.format(
                            "not a GGUF file: it starts with bytes %02x %02x %02x %02x, expected"
                                    + " 47 47 55 46 (\"GGUF\")",
                            b[0], b[1], b[2], b[3]));
        }
        r.context(() -> "the version");
        long version = r.u32();
        if (version != 2 && version != 3) {
            long swapped = Integer.reverseBytes((int) version) & 0xFFFFFFFFL;
            if (swapped == 2 || swapped == 3) {
                throw r.error(
                        "GGUF version field reads "
                                + version
                                + ": a big-endian GGUF file, which is not supported (only"
                                + " little-endian versions 2 and 3)");
            }
            throw r.error("GGUF version " + version + " is not supported (supported: 2, 3)");
        }

        r.context(() -> "the tensor count");
        long countAt = r.position();
        long tensorCount = r.i64();
        if (tensorCount < 0 || tensorCount > MAX_TENSORS) {
            throw r.error(
                    String.format(
                            "tensor count %s at byte %d is absurd (more than %d): corrupt header",
                            Long.toUnsignedString(tensorCount), countAt, MAX_TENSORS));
        }
        r.context(() -> "the metadata count");
        long kvCountAt = r.position();
        long kvCount = r.i64();
        if (kvCount < 0 || kvCount > MAX_KEYS) {
            throw r.error(
                    String.format(
                            "metadata count %s at byte %d is absurd (more than %d): corrupt header",
                            Long.toUnsignedString(kvCount), kvCountAt, MAX_KEYS));
        }
        r.checkCount(kvCount, kvCountAt, MIN_KV_BYTES, "metadata count");

        Map<String, Object> metadata = new LinkedHashMap<>();
        Map<String, GgufValueType> types = new LinkedHashMap<>();
        Map<String, GgufValueType> elementTypes = new LinkedHashMap<>();
        for (long i = 0; i < kvCount; i++) {
            long entry = i;
            r.context(() -> "the key of metadata entry " + entry + " of " + kvCount);
            long keyAt = r.position();
            String key = r.string();
            if (metadata.containsKey(key)) {
                throw r.error(
                        String.format("duplicate metadata key '%s' (entry %d at byte %d)", key, i, keyAt));
            }
            r.context(() -> "the value type of metadata key '" + key + "'");
            long typeAt = r.position();
            long typeId = r.u32();
            GgufValueType type =
                    GgufValueType.byId(typeId)
                            .orElseThrow(
                                    () ->
                                            r.error(
                                                    String.format(
                                                            "metadata key '%s' has unknown value type %d"
                                                                    + " at byte %d",
                                                            key, typeId, typeAt)));
            r.context(() -> "the value of metadata key '" + key + "'");
            Object value;
            if (type == GgufValueType.ARRAY) {
                long elemAt = r.position();
                long elemId = r.u32();
                GgufValueType elem =
                        GgufValueType.byId(elemId)
                                .orElseThrow(
                                        () ->
                                                r.error(
                                                        String.format(
                                                                "metadata array '%s' has unknown element"
                                                                        + " type %d at byte %d",
                                                                key, elemId, elemAt)));
                if (elem == GgufValueType.ARRAY) {
                    throw r.error(
                            String.format(
                                    "metadata key '%s' is an array of arrays (byte %d): nested arrays"
                                            + " are not supported",
                                    key, elemAt));
                }
                value = readArray(r, key, elem);
                elementTypes.put(key, elem);
            } else {
                value = readScalar(r, key, type);
            }
            metadata.put(key, value);
            types.put(key, type);
        }

        r.checkCount(tensorCount, countAt, MIN_TENSOR_INFO_BYTES, "tensor count");
        List<long[]> dimsList = new ArrayList<>();
        List<String> names = new ArrayList<>();
        List<GgmlType> typeList = new ArrayList<>();
        List<Long> relOffsets = new ArrayList<>();
        List<Long> sizes = new ArrayList<>();
        Map<String, Long> nameAt = new LinkedHashMap<>();
        for (long i = 0; i < tensorCount; i++) {
            long index = i;
            r.context(() -> "the name of tensor info " + index + " of " + tensorCount);
            long at = r.position();
            String name = r.string();
            if (nameAt.containsKey(name)) {
                throw r.error(
                        String.format(
                                "duplicate tensor name '%s' (tensor infos at bytes %d and %d)",
                                name, nameAt.get(name), at));
            }
            nameAt.put(name, at);
            r.context(() -> "the dimensions of tensor '" + name + "'");
            long nDimsAt = r.position();
            long nDims = r.u32();
            if (nDims < 1 || nDims > MAX_DIMS) {
                throw r.error(
                        String.format(
                                "tensor '%s' has %d dimensions (byte %d); GGUF allows 1 to %d",
                                name, nDims, nDimsAt, MAX_DIMS));
            }
            long[] dims = new long[(int) nDims];
            long elements = 1;
            for (int d = 0; d < nDims; d++) {
                long dimAt = r.position();
                dims[d] = r.i64();
                if (dims[d] <= 0) {
                    throw r.error(
                            String.format(
                                    "tensor '%s' has dimension ne%d = %s (byte %d); dimensions must be"
                                            + " positive",
                                    name, d, Long.toUnsignedString(dims[d]), dimAt));
                }
                try {
                    elements = Math.multiplyExact(elements, dims[d]);
                } catch (ArithmeticException e) {
                    throw r.error(
                            String.format(
                                    "tensor '%s' has dims %s whose product overflows",
                                    name, unsignedList(dims, d + 1)));
                }
            }
            r.context(() -> "the type of tensor '" + name + "'");
            long typeAt = r.position();
            long typeId = r.u32();
            Optional<GgmlType> type = GgmlType.byId(typeId);
            if (type.isEmpty()) {
                String known =
                        GgmlType.removedName(typeId)
                                .map(n -> "type " + typeId + " (" + n + "), which ggml has removed")
                                .orElse("unknown type id " + typeId);
                throw r.error(
                        String.format(
                                "tensor '%s' has %s (byte %d); convert the model again with a"
                                        + " supported type (F32, F16, BF16, Q8_0, Q4_0)",
                                name, known, typeAt));
            }
            GgmlType t = type.get();
            if (dims[0] % t.blockSize() != 0) {
                throw r.error(
                        String.format(
                                "tensor '%s' (%s, dims %s innermost first) has rows of %d values, not"
                                        + " a multiple of the %s block size %d",
                                name, t, Arrays.toString(dims), dims[0], t, t.blockSize()));
            }
            long sizeBytes;
            try {
                sizeBytes = t.byteSize(elements);
            } catch (ArithmeticException e) {
                throw r.error(String.format("tensor '%s' is too large: %d values of %s", name, elements, t));
            }
            r.context(() -> "the data offset of tensor '" + name + "'");
            long offAt = r.position();
            long rel = r.i64();
            if (rel < 0) {
                throw r.error(
                        String.format(
                                "tensor '%s' has data offset %s (byte %d), beyond any file",
                                name, Long.toUnsignedString(rel), offAt));
            }
            names.add(name);
            dimsList.add(dims);
            typeList.add(t);
            relOffsets.add(rel);
            sizes.add(sizeBytes);
        }
        long headerEnd = r.position();

        int alignment = alignment(r, metadata, types);
        long dataOffset = align(headerEnd, alignment);

        Map<String, GgufTensorInfo> tensors = new LinkedHashMap<>();
        for (int i = 0; i < names.size(); i++) {
            String name = names.get(i);
            long rel = relOffsets.get(i);
            long size = sizes.get(i);
            if (rel % alignment != 0) {
                throw r.error(
                        String.format(
                                "tensor '%s' has data offset %d, not a multiple of the alignment %d"
                                        + " (misaligned)",
                                name, rel, alignment));
            }
            long start = dataOffset + rel;
            long end = start + size;
            if (start < 0 || end < 0 || end > fileSize) {
                throw r.error(
                        String.format(
                                "truncated: the data of tensor '%s' (%s %s, %d bytes) spans bytes [%s,"
                                        + " %s), past the end of the file at byte %d",
                                name,
                                typeList.get(i),
                                Arrays.toString(reversed(dimsList.get(i))),
                                size,
                                Long.toUnsignedString(start),
                                Long.toUnsignedString(end),
                                fileSize));
            }
            tensors.put(
                    name, new GgufTensorInfo(name, reversed(dimsList.get(i)), typeList.get(i), start, size));
        }
        TensorStores.checkNoOverlap(tensors.values(), "bytes", r::error);
        return new GgufFile(
                path, channel, (int) version, alignment, dataOffset, metadata, types, elementTypes, tensors);
    }

    private static Object readScalar(GgufHeaderReader r, String key, GgufValueType type) {
        switch (type) {
            case UINT8:
                return (long) r.u8();
            case INT8:
                return (long) (byte) r.u8();
            case UINT16:
                return (long) (r.i16() & 0xFFFF);
            case INT16:
                return (long) r.i16();
            case UINT32:
                return r.u32();
            case INT32:
                return (long) r.i32();
            case UINT64:
            case INT64:
                return r.i64();
            case FLOAT32:
                return r.f32();
            case FLOAT64:
                return r.f64();
            case BOOL:
                return readBool(r, key);
            case STRING:
                return r.string();
            default:
                throw new AssertionError(type);
        }
    }

    private static boolean readBool(GgufHeaderReader r, String key) {
        long at = r.position();
        int b = r.u8();
        if (b > 1) {
            throw r.error(
                    String.format(
                            "BOOL value %d of metadata key '%s' at byte %d is neither 0 nor 1", b, key, at));
        }
        return b == 1;
    }

    private static Object readArray(GgufHeaderReader r, String key, GgufValueType elem) {
        long countAt = r.position();
        long count = r.i64();
        String what = "element count of metadata array '" + key + "'";
        r.checkCount(count, countAt, elem == GgufValueType.STRING ? 8 : elem.size(), what);
        if (count > Integer.MAX_VALUE - 8) {
            throw r.error(String.format("%s at byte %d is %d: too large", what, countAt, count));
        }
        int n = (int) count;
        int[] index = new int[1];
        r.context(() -> "element " + index[0] + " of " + n + " of metadata array '" + key + "'");
        switch (elem) {
            case UINT8:
            case INT8:
                {
                    byte[] a = new byte[n];
                    for (; index[0] < n; index[0]++) {
                        a[index[0]] = (byte) r.u8();
                    }
                    return a;
                }
            case UINT16:
            case INT16:
                {
                    short[] a = new short[n];
                    for (; index[0] < n; index[0]++) {
                        a[index[0]] = r.i16();
                    }
                    return a;
                }
            case UINT32:
            case INT32:
                {
                    int[] a = new int[n];
                    for (; index[0] < n; index[0]++) {
                        a[index[0]] = r.i32();
                    }
                    return a;
                }
            case UINT64:
            case INT64:
                {
                    long[] a = new long[n];
                    for (; index[0] < n; index[0]++) {
                        a[index[0]] = r.i64();
                    }
                    return a;
                }
            case FLOAT32:
                {
                    float[] a = new float[n];
                    for (; index[0] < n; index[0]++) {
                        a[index[0]] = r.f32();
                    }
                    return a;
                }
            case FLOAT64:
                {
                    double[] a = new double[n];
                    for (; index[0] < n; index[0]++) {
                        a[index[0]] = r.f64();
                    }
                    return a;
                }
            case BOOL:
                {
                    boolean[] a = new boolean[n];
                    for (; index[0] < n; index[0]++) {
                        a[index[0]] = readBool(r, key);
                    }
                    return a;
                }
            case STRING:
                {
                    String[] a = new String[n];
                    for (; index[0] < n; index[0]++) {
                        a[index[0]] = r.string();
                    }
                    return Collections.unmodifiableList(Arrays.asList(a));
                }
            default:
                throw new AssertionError(elem);
        }
    }

    private static int alignment(
            GgufHeaderReader r, Map<String, Object> metadata, Map<String, GgufValueType> types) {
        Object value = metadata.get("general.alignment");
        if (value == null) {
            return DEFAULT_ALIGNMENT;
        }
        GgufValueType type = types.get("general.alignment");
        if (!type.isInteger()) {
            throw r.error("metadata general.alignment is " + type + ", expected an integer (UINT32)");
        }
        long a = (Long) value;
        if (!isValidAlignment(a)) {
            throw r.error(
                    "metadata general.alignment = " + Long.toUnsignedString(a)
                            + " is not a power of two between 1 and 2^30");
        }
        return (int) a;
    }

    /** A power of two from 1 to 2^30: the alignments the reader and writer accept. */
    static boolean isValidAlignment(long a) {
        return a > 0 && a <= (1 << 30) && Long.bitCount(a) == 1;
    }

    static long align(long position, long alignment) {
        return (position + alignment - 1) / alignment * alignment;
    }

    private static long[] reversed(long[] dims) {
        long[] out = new long[dims.length];
        for (int i = 0; i < dims.length; i++) {
            out[i] = dims[dims.length - 1 - i];
        }
        return out;
    }

    private static String unsignedList(long[] values, int n) {
        return Arrays.stream(values, 0, n)
                .mapToObj(Long::toUnsignedString)
                .collect(Collectors.joining(", ", "[", "]"));
    }

    // ---------------------------------------------------------------- file facts

    public Path path() {
        return path;
    }

    /** The GGUF version of the file: 2 or 3. */
    public int version() {
        return version;
    }

    /** Alignment of the data section and of every tensor in it, in bytes. */
    public int alignment() {
        return alignment;
    }

    /** Absolute file offset of the data section. */
    public long dataOffset() {
        return dataOffset;
    }

    // ---------------------------------------------------------------- metadata

    /**
     * All metadata in file order, typed as {@link GgufValueType} documents. Array values are the
     * reader's own arrays: do not modify them (the typed getters return copies).
     */
    public Map<String, Object> metadata() {
        return metadata;
    }

    public boolean has(String key) {
        return metadata.containsKey(key);
    }

    /** The value type stored for {@code key} (ARRAY for arrays), or empty if absent. */
    public Optional<GgufValueType> type(String key) {
        return Optional.ofNullable(types.get(key));
    }

    /** The element type of the array stored for {@code key}, or empty if absent or no array. */
    public Optional<GgufValueType> elementType(String key) {
        return Optional.ofNullable(elementTypes.get(key));
    }

    private Object require(String key) {
        Object v = metadata.get(key);
        if (v == null) {
            throw new ModelFormatException(path + ": metadata key '" + key + "' is missing");
        }
        return v;
    }

    private String describe(String key) {
        GgufValueType t = types.get(key);
        return t == GgufValueType.ARRAY ? "an ARRAY of " + elementTypes.get(key) : t.toString();
    }

    private ModelFormatException wrongType(String key, String expected) {
        return new ModelFormatException(
                path + ": metadata key '" + key + "' is " + describe(key) + ", expected " + expected);
    }

    public String getString(String key) {
        Object v = require(key);
        if (!(v instanceof String)) {
            throw wrongType(key, "a STRING");
        }
        return (String) v;
    }

    public String getString(String key, String defaultValue) {
        return has(key) ? getString(key) : defaultValue;
    }

    /**
     * An integer of any width and sign.
     *
     * @throws ModelFormatException if missing, not an integer, or a UINT64 above {@code
     *     Long.MAX_VALUE}
     */
    public long getLong(String key) {
        Object v = require(key);
        GgufValueType t = types.get(key);
        if (!t.isInteger()) {
            throw wrongType(key, "an integer");
        }
        long value = (Long) v;
        if (t == GgufValueType.UINT64 && value < 0) {
            throw new ModelFormatException(
                    path + ": metadata key '" + key + "' = " + Long.toUnsignedString(value)
                            + " does not fit a signed 64-bit integer");
        }
        return value;
    }

    public long getLong(String key, long defaultValue) {
        return has(key) ? getLong(key) : defaultValue;
    }

    /** An integer of any width and sign that fits an {@code int}. */
    public int getInt(String key) {
        long value = getLong(key);
        if (value != (int) value) {
            throw new ModelFormatException(
                    path + ": metadata key '" + key + "' = " + value + " does not fit a 32-bit integer");
        }
        return (int) value;
    }

    public int getInt(String key, int defaultValue) {
        return has(key) ? getInt(key) : defaultValue;
    }

    /** A FLOAT32 or FLOAT64 (or an integer, converted). FLOAT32 values widen exactly. */
    public double getDouble(String key) {
        Object v = require(key);
        if (v instanceof Float) {
            return (Float) v;
        }
        if (v instanceof Double) {
            return (Double) v;
        }
        if (types.get(key).isInteger()) {
            return (double) getLong(key);
        }
        throw wrongType(key, "a number");
    }

    public double getDouble(String key, double defaultValue) {
        return has(key) ? getDouble(key) : defaultValue;
    }

    /** A FLOAT32 exactly, or a FLOAT64 or integer rounded to float. */
    public float getFloat(String key) {
        Object v = require(key);
        if (v instanceof Float) {
            return (Float) v;
        }
        return (float) getDouble(key);
    }

    public float getFloat(String key, float defaultValue) {
        return has(key) ? getFloat(key) : defaultValue;
    }

    public boolean getBool(String key) {
        Object v = require(key);
        if (!(v instanceof Boolean)) {
            throw wrongType(key, "a BOOL");
        }
        return (Boolean) v;
    }

    public boolean getBool(String key, boolean defaultValue) {
        return has(key) ? getBool(key) : defaultValue;
    }

    /** An array of STRING, unmodifiable and not copied (the vocabulary has 151k entries). */
    @SuppressWarnings("unchecked")
    public List<String> getStringArray(String key) {
        Object v = require(key);
        if (elementTypes.get(key) != GgufValueType.STRING) {
            throw wrongType(key, "an ARRAY of STRING");
        }
        return (List<String>) v;
    }

    /** An integer array of any element width, each element converted exactly to {@code int}. */
    public int[] getIntArray(String key) {
        long[] wide = integerArray(key, "an ARRAY of integers");
        int[] out = new int[wide.length];
        for (int i = 0; i < wide.length; i++) {
            if (wide[i] != (int) wide[i]) {
                throw new ModelFormatException(
                        String.format(
                                "%s: element %d of metadata array '%s' = %d does not fit a 32-bit integer",
                                path, i, key, wide[i]));
            }
            out[i] = (int) wide[i];
        }
        return out;
    }

    /** An integer array of any element width, converted exactly to {@code long}. */
    public long[] getLongArray(String key) {
        return integerArray(key, "an ARRAY of integers");
    }

    private long[] integerArray(String key, String expected) {
        Object v = require(key);
        GgufValueType elem = elementTypes.get(key);
        if (elem == null || !elem.isInteger()) {
            throw wrongType(key, expected);
        }
        boolean unsigned = elem.isUnsigned();
        if (v instanceof byte[]) {
            byte[] a = (byte[]) v;
            long[] out = new long[a.length];
            for (int i = 0; i < a.length; i++) {
                out[i] = unsigned ? a[i] & 0xFF : a[i];
            }
            return out;
        }
        if (v instanceof short[]) {
            short[] a = (short[]) v;
            long[] out = new long[a.length];
            for (int i = 0; i < a.length; i++) {
                out[i] = unsigned ? a[i] & 0xFFFF : a[i];
            }
            return out;
        }
        if (v instanceof int[]) {
            int[] a = (int[]) v;
            long[] out = new long[a.length];
            for (int i = 0; i < a.length; i++) {
                out[i] = unsigned ? a[i] & 0xFFFFFFFFL : a[i];
            }
            return out;
        }
        long[] a = ((long[]) v).clone();
        if (unsigned) {
            for (int i = 0; i < a.length; i++) {
                if (a[i] < 0) {
                    throw new ModelFormatException(
                            String.format(
                                    "%s: element %d of metadata array '%s' = %s does not fit a signed"
                                            + " 64-bit integer",
                                    path, i, key, Long.toUnsignedString(a[i])));
                }
            }
        }
        return a;
    }

    /** A FLOAT32 array (copied), or a FLOAT64 array rounded to float. */
    public float[] getFloatArray(String key) {
        Object v = require(key);
        if (v instanceof float[]) {
            return ((float[]) v).clone();
        }
        if (v instanceof double[]) {
            double[] a = (double[]) v;
            float[] out = new float[a.length];
            for (int i = 0; i < a.length; i++) {
                out[i] = (float) a[i];
            }
            return out;
        }
        throw wrongType(key, "an ARRAY of FLOAT32");
    }

    // ---------------------------------------------------------------- tensors

    /** Tensor infos in file order. */
    public List<GgufTensorInfo> tensors() {
        return List.copyOf(tensors.values());
    }

    /** The info of one tensor, or a {@link ModelFormatException} naming it and near names. */
    public GgufTensorInfo tensor(String name) {
        return TensorStores.require(tensors, name, path);
    }

    @Override
    public String source() {
        return path.toString();
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
        GgufTensorInfo t = tensor(name);
        TensorStores.checkShape(t, path, rows, cols);
        return TensorStores.mapMatrix(channel, path, t, dtypeOf(t), rows, cols);
    }

    @Override
    public WeightMatrix[] expertMatrices(String name, int experts, int rows, int cols) {
        checkOpen();
        GgufTensorInfo t = tensor(name);
        return TensorStores.mapExpertMatrices(channel, path, t, dtypeOf(t), experts, rows, cols);
    }

    @Override
    public float[] vector(String name, int length) {
        checkOpen();
        GgufTensorInfo t = tensor(name);
        TensorStores.checkShape(t, path, length);
        DType dtype = dtypeOf(t);
        ByteBuffer bytes = ByteBuffer.allocate(Math.toIntExact(t.sizeBytes())).order(ByteOrder.LITTLE_ENDIAN);
        try {
            if (!TensorStores.readFully(channel, bytes, t.offset())) {
                throw new ModelFormatException(path + ": truncated while reading tensor " + name);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(path + ": cannot read tensor " + name, e);
        }
        return TensorStores.decode(bytes.flip(), dtype, length);
    }

    /**
     * The raw bytes of a tensor of any type, mapped read-only and little-endian (for copying
     * tensors the kernels cannot read, and for tests).
     *
     * @throws ModelFormatException if the tensor is missing or larger than 2 GiB (use {@link
     *     #matrix})
     */
    public ByteBuffer tensorData(String name) {
        checkOpen();
        return TensorStores.mapBytes(channel, path, tensor(name));
    }

    private DType dtypeOf(GgufTensorInfo t) {
        return TensorStores.kernelDType(t, path, t.type().dtype(), t.type()::notSupportedMessage);
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException(path + " is closed");
        }
    }

    /** Closes the file; matrices mapped before stay readable. */
    @Override
    public void close() {
        closed = true;
        TensorStores.closeAll(List.of(channel), path);
    }

    @Override
    public String toString() {
        return String.format(
                "GgufFile[%s, v%d, %d keys, %d tensors]", path, version, metadata.size(), tensors.size());
    }
}
