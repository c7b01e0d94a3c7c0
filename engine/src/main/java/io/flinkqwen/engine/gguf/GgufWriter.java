/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.gguf;

import static io.flinkqwen.engine.weights.ModelFileWriting.suppliedData;
import static io.flinkqwen.engine.weights.ModelFileWriting.writeFully;

import io.flinkqwen.engine.weights.ModelFileWriting;
import io.flinkqwen.kernels.DType;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.function.Supplier;

/**
 * Builds a GGUF version 3 file in llama.cpp's layout: header (metadata in insertion order, then
 * tensor infos in insertion order), zero padding to the alignment, then each tensor's data padded
 * to the alignment, tensors contiguous in the order they were added (llama.cpp requires exactly
 * that order and padding).
 *
 * <p>Tensor data is produced lazily: each {@link Supplier} is called once, during {@link #write},
 * so only one tensor needs to be in memory at a time. Its buffer must hold exactly the tensor's
 * bytes, little-endian, in the kernels' {@link DType} layout (which is GGML's), rows of the
 * row-major shape one after another.
 *
 * <p>{@code general.alignment} defaults to 32 and is written only if set with {@link #putUint32}.
 * Putting a key again replaces its value and keeps its first position. Not thread-safe.
 */
public final class GgufWriter {

    /** GGML_MAX_NAME is 64 bytes including the terminating NUL. */
    static final int MAX_NAME_BYTES = 63;

    private record Value(GgufValueType type, GgufValueType elementType, Object value) {}

    private record Tensor(String name, GgmlType type, long[] shape, long sizeBytes, Supplier<ByteBuffer> data) {}

    /**
     * Where everything goes: the header padded to the data section, and each tensor's offset
     * relative to the data section.
     */
    record Layout(byte[] header, List<String> names, long[] offsets, long[] sizes, long fileSize) {
        long dataOffset() {
            return header.length;
        }
    }

    private final Map<String, Value> metadata = new LinkedHashMap<>();
    private final Map<String, Tensor> tensors = new LinkedHashMap<>();

    // ---------------------------------------------------------------- metadata

    public GgufWriter put(String key, String value) {
        return scalar(key, GgufValueType.STRING, Objects.requireNonNull(value, key));
    }

    public GgufWriter putUint8(String key, int value) {
        return scalar(key, GgufValueType.UINT8, checkRange(key, value, 0, 0xFF));
    }

    public GgufWriter putInt8(String key, int value) {
        return scalar(key, GgufValueType.INT8, checkRange(key, value, Byte.MIN_VALUE, Byte.MAX_VALUE));
    }

    public GgufWriter putUint16(String key, int value) {
        return scalar(key, GgufValueType.UINT16, checkRange(key, value, 0, 0xFFFF));
    }

    public GgufWriter putInt16(String key, int value) {
        return scalar(
                key, GgufValueType.INT16, checkRange(key, value, Short.MIN_VALUE, Short.MAX_VALUE));
    }

    public GgufWriter putUint32(String key, long value) {
        return scalar(key, GgufValueType.UINT32, checkRange(key, value, 0, 0xFFFFFFFFL));
    }

    public GgufWriter putInt32(String key, int value) {
        return scalar(key, GgufValueType.INT32, (long) value);
    }

    /** A UINT64; {@code value} is taken as unsigned (negative values are above 2^63). */
    public GgufWriter putUint64(String key, long value) {
        return scalar(key, GgufValueType.UINT64, value);
    }

    public GgufWriter putInt64(String key, long value) {
        return scalar(key, GgufValueType.INT64, value);
    }

    public GgufWriter putFloat32(String key, float value) {
        return scalar(key, GgufValueType.FLOAT32, value);
    }

    public GgufWriter putFloat64(String key, double value) {
        return scalar(key, GgufValueType.FLOAT64, value);
    }

    public GgufWriter putBool(String key, boolean value) {
        return scalar(key, GgufValueType.BOOL, value);
    }

    public GgufWriter putStringArray(String key, List<String> values) {
        return putArray(key, GgufValueType.STRING, values);
    }

    public GgufWriter putInt32Array(String key, int[] values) {
        return putArray(key, GgufValueType.INT32, values);
    }

    public GgufWriter putFloat32Array(String key, float[] values) {
        return putArray(key, GgufValueType.FLOAT32, values);
    }

    /**
     * An array of any element type, given as {@link GgufValueType} documents: {@code byte[]} for
     * (U)INT8, {@code short[]} for (U)INT16, {@code int[]} for (U)INT32, {@code long[]} for
     * (U)INT64 (unsigned elements as raw bits), {@code float[]}, {@code double[]}, {@code
     * boolean[]}, or a {@code List<String>}. The values are copied.
     */
    public GgufWriter putArray(String key, GgufValueType elementType, Object values) {
        Objects.requireNonNull(values, key);
        Class<?> expected;
        switch (elementType) {
            case UINT8:
            case INT8:
                expected = byte[].class;
                break;
            case UINT16:
            case INT16:
                expected = short[].class;
                break;
            case UINT32:
            case INT32:
                expected = int[].class;
                break;
            case UINT64:
            case INT64:
                expected = long[].class;
                break;
            case FLOAT32:
                expected = float[].class;
                break;
            case FLOAT64:
                expected = double[].class;
                break;
            case BOOL:
                expected = boolean[].class;
                break;
            case STRING:
                expected = List.class;
                break;
            default:
                throw new IllegalArgumentException(
                        "metadata key '" + key + "': arrays of " + elementType + " are not supported");
        }
        if (!expected.isInstance(values)) {
            throw new IllegalArgumentException(
                    String.format(
                            "metadata key '%s': an array of %s needs a %s, got a %s",
                            key, elementType, expected.getSimpleName(), values.getClass().getSimpleName()));
        }
        Object copy;
        if (values instanceof List) {
            for (Object o : (List<?>) values) {
                if (!(o instanceof String)) {
                    throw new IllegalArgumentException(
                            "metadata key '" + key + "': a STRING array needs non-null strings, got " + o);
                }
            }
            copy = List.copyOf((List<?>) values);
        } else if (values instanceof byte[]) {
            copy = ((byte[]) values).clone();
        } else if (values instanceof short[]) {
            copy = ((short[]) values).clone();
        } else if (values instanceof int[]) {
            copy = ((int[]) values).clone();
        } else if (values instanceof long[]) {
            copy = ((long[]) values).clone();
        } else if (values instanceof float[]) {
            copy = ((float[]) values).clone();
        } else if (values instanceof double[]) {
            copy = ((double[]) values).clone();
        } else {
            copy = ((boolean[]) values).clone();
        }
        metadata.put(checkKey(key), new Value(GgufValueType.ARRAY, elementType, copy));
        return this;
    }

    /**
     * Copies every metadata entry of {@code source} with its type (its tensors are not copied).
     */
    public GgufWriter putAll(GgufFile source) {
        for (Map.Entry<String, Object> e : source.metadata().entrySet()) {
            GgufValueType type = source.type(e.getKey()).orElseThrow();
            if (type == GgufValueType.ARRAY) {
                putArray(e.getKey(), source.elementType(e.getKey()).orElseThrow(), e.getValue());
            } else {
                scalar(e.getKey(), type, e.getValue());
            }
        }
        return this;
    }

    private GgufWriter scalar(String key, GgufValueType type, Object value) {
        metadata.put(checkKey(key), new Value(type, null, value));
        return this;
    }

    private static String checkKey(String key) {
        if (key == null || key.isEmpty()) {
            throw new IllegalArgumentException("metadata keys must be non-empty");
        }
        return key;
    }

    private static long checkRange(String key, long value, long min, long max) {
        if (value < min || value > max) {
            throw new IllegalArgumentException(
                    String.format("metadata key '%s': %d is outside [%d, %d]", key, value, min, max));
        }
        return value;
    }

    // ---------------------------------------------------------------- tensors

    /**
     * Adds a tensor in one of the kernels' formats.
     *
     * @param shape row-major, outermost first, 1 to 4 positive dims; the last (the row length)
     *     a multiple of the block size
     * @param data called once at {@link #write}; must return exactly {@code
     *     dtype.rowBytes(cols) * rows} bytes between its position and limit
     */
    public GgufWriter addTensor(String name, DType dtype, long[] shape, Supplier<ByteBuffer> data) {
        return addTensor(name, GgmlType.of(dtype), shape, data);
    }

    /** Adds a tensor of any GGML type (to copy tensors the kernels cannot read). */
    public GgufWriter addTensor(String name, GgmlType type, long[] shape, Supplier<ByteBuffer> data) {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(type, "type");
        Objects.requireNonNull(data, "data");
        int nameBytes = name.getBytes(StandardCharsets.UTF_8).length;
        if (nameBytes == 0 || nameBytes > MAX_NAME_BYTES) {
            throw new IllegalArgumentException(
                    String.format(
                            "tensor name '%s' has %d bytes; llama.cpp reads 1 to %d",
                            name, nameBytes, MAX_NAME_BYTES));
        }
        if (tensors.containsKey(name)) {
            throw new IllegalArgumentException("tensor '" + name + "' was already added");
        }
        if (shape.length < 1 || shape.length > GgufFile.MAX_DIMS) {
            throw new IllegalArgumentException(
                    String.format(
                            "tensor '%s' has shape %s; GGUF holds 1 to %d dimensions",
                            name, Arrays.toString(shape), GgufFile.MAX_DIMS));
        }
        long elements = 1;
        for (long d : shape) {
            if (d <= 0) {
                throw new IllegalArgumentException(
                        String.format(
                                "tensor '%s' has shape %s; dimensions must be positive",
                                name, Arrays.toString(shape)));
            }
            elements = Math.multiplyExact(elements, d);
        }
        long cols = shape[shape.length - 1];
        if (cols % type.blockSize() != 0) {
            throw new IllegalArgumentException(
                    String.format(
                            "tensor '%s' of shape %s: %s rows must hold a multiple of %d values, got %d",
                            name, Arrays.toString(shape), type, type.blockSize(), cols));
        }
        tensors.put(name, new Tensor(name, type, shape.clone(), type.byteSize(elements), data));
        return this;
    }

    // ---------------------------------------------------------------- writing

    private int alignment() {
        Value v = metadata.get("general.alignment");
        if (v == null) {
            return GgufFile.DEFAULT_ALIGNMENT;
        }
        if (!v.type().isInteger()) {
            throw new IllegalStateException("general.alignment must be an integer (UINT32), is " + v.type());
        }
        long a = (Long) v.value();
        if (!GgufFile.isValidAlignment(a)) {
            throw new IllegalStateException("general.alignment = " + a + " is not a power of two");
        }
        return (int) a;
    }

    /** Computes the header bytes and where each tensor goes, without calling any supplier. */
    Layout layout() {
        int alignment = alignment();
        Out out = new Out();
        out.bytes("GGUF".getBytes(StandardCharsets.US_ASCII));
        out.i32(3);
        out.i64(tensors.size());
        out.i64(metadata.size());
        for (Map.Entry<String, Value> e : metadata.entrySet()) {
            Value v = e.getValue();
            out.string(e.getKey());
            out.i32(v.type().id());
            if (v.type() == GgufValueType.ARRAY) {
                out.i32(v.elementType().id());
                writeArray(out, v.elementType(), v.value());
            } else {
                writeScalar(out, v.type(), v.value());
            }
        }
        List<String> names = new ArrayList<>();
        long[] offsets = new long[tensors.size()];
        long[] sizes = new long[tensors.size()];
        long next = 0;
        int i = 0;
        for (Tensor t : tensors.values()) {
            out.string(t.name());
            out.i32(t.shape().length);
            for (int d = t.shape().length - 1; d >= 0; d--) {
                out.i64(t.shape()[d]); // innermost first
            }
            out.i32(t.type().id());
            out.i64(next);
            names.add(t.name());
            offsets[i] = next;
            sizes[i] = t.sizeBytes();
            next = GgufFile.align(next + t.sizeBytes(), alignment);
            i++;
        }
        out.padTo(alignment);
        byte[] header = out.toByteArray();
        return new Layout(header, names, offsets, sizes, header.length + next);
    }

    /**
     * Writes the file: to a temporary file in the same folder first, then moved into place, so a
     * reader never sees a half-written model.
     *
     * @throws IllegalStateException if a tensor's supplier returns the wrong number of bytes
     */
    public void write(Path file) throws IOException {
        Layout layout = layout();
        ModelFileWriting.writeAtomically(
                file,
                ch -> {
                    writeFully(ch, ByteBuffer.wrap(layout.header()));
                    long position = layout.header().length;
                    int alignment = alignment();
                    for (Tensor t : tensors.values()) {
                        writeFully(ch, suppliedData(t.name(), t.type(), t.shape(), t.sizeBytes(), t.data()));
                        position += t.sizeBytes();
                        long padded = GgufFile.align(position, alignment);
                        writeFully(ch, ByteBuffer.allocate((int) (padded - position)));
                        position = padded;
                    }
                    if (position != layout.fileSize()) {
                        throw new AssertionError(position + " != " + layout.fileSize());
                    }
                });
    }

    private static void writeScalar(Out out, GgufValueType type, Object value) {
        switch (type) {
            case UINT8:
            case INT8:
            case BOOL:
                out.u8(value instanceof Boolean ? ((Boolean) value ? 1 : 0) : (int) (long) (Long) value);
                break;
            case UINT16:
            case INT16:
                out.i16((short) (long) (Long) value);
                break;
            case UINT32:
            case INT32:
                out.i32((int) (long) (Long) value);
                break;
            case UINT64:
            case INT64:
                out.i64((Long) value);
                break;
            case FLOAT32:
                out.i32(Float.floatToRawIntBits((Float) value));
                break;
            case FLOAT64:
                out.i64(Double.doubleToRawLongBits((Double) value));
                break;
            case STRING:
                out.string((String) value);
                break;
            default:
                throw new AssertionError(type);
        }
    }

    private static void writeArray(Out out, GgufValueType elem, Object value) {
        if (value instanceof List) {
            List<?> list = (List<?>) value;
            out.i64(list.size());
            for (Object s : list) {
                out.string((String) s);
            }
        } else if (value instanceof byte[]) {
            byte[] a = (byte[]) value;
            out.i64(a.length);
            out.bytes(a);
        } else if (value instanceof short[]) {
            short[] a = (short[]) value;
            out.i64(a.length);
            for (short x : a) {
                out.i16(x);
            }
        } else if (value instanceof int[]) {
            int[] a = (int[]) value;
            out.i64(a.length);
            for (int x : a) {
                out.i32(x);
            }
        } else if (value instanceof long[]) {
            long[] a = (long[]) value;
            out.i64(a.length);
            for (long x : a) {
                out.i64(x);
            }
        } else if (value instanceof float[]) {
            float[] a = (float[]) value;
            out.i64(a.length);
            for (float x : a) {
                out.i32(Float.floatToRawIntBits(x));
            }
        } else if (value instanceof double[]) {
            double[] a = (double[]) value;
            out.i64(a.length);
            for (double x : a) {
                out.i64(Double.doubleToRawLongBits(x));
            }
        } else if (value instanceof boolean[]) {
            boolean[] a = (boolean[]) value;
            out.i64(a.length);
            for (boolean x : a) {
                out.u8(x ? 1 : 0);
            }
        } else {
            throw new AssertionError(elem + " " + value.getClass());
        }
    }

    /** A growable little-endian byte buffer for the header. */
    private static final class Out {
        private ByteBuffer buf = ByteBuffer.allocate(1 << 16).order(ByteOrder.LITTLE_ENDIAN);

        private void room(int n) {
            if (buf.remaining() < n) {
                long want = Math.max((long) buf.capacity() * 2, (long) buf.position() + n);
                if (want > Integer.MAX_VALUE - 8) {
                    throw new IllegalStateException("GGUF header larger than 2 GiB");
                }
                ByteBuffer bigger = ByteBuffer.allocate((int) want).order(ByteOrder.LITTLE_ENDIAN);
                buf.flip();
                bigger.put(buf);
                buf = bigger;
            }
        }

        void u8(int v) {
            room(1);
            buf.put((byte) v);
        }

        void i16(short v) {
            room(2);
            buf.putShort(v);
        }

        void i32(int v) {
            room(4);
            buf.putInt(v);
        }

        void i64(long v) {
            room(8);
            buf.putLong(v);
        }

        void bytes(byte[] b) {
            room(b.length);
            buf.put(b);
        }

        void string(String s) {
            byte[] b = s.getBytes(StandardCharsets.UTF_8);
            i64(b.length);
            bytes(b);
        }

        void padTo(int alignment) {
            int pad = (int) (GgufFile.align(buf.position(), alignment) - buf.position());
            bytes(new byte[pad]);
        }

        byte[] toByteArray() {
            return Arrays.copyOf(buf.array(), buf.position());
        }
    }
}
