/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.weights;

import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.Float16;
import io.flinkqwen.kernels.WeightMatrix;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Function;
import java.util.function.Supplier;
import java.util.stream.Collectors;

/**
 * What every file-backed {@link TensorStore} does the same way, whatever the format (GGUF,
 * safetensors): open and close the files, find a tensor or name the nearest ones, check a shape
 * and a dtype, check that tensors do not overlap, map a tensor and decode a small one.
 *
 * <p>The messages name the file, the tensor, what was expected and what was found; the format's
 * own words (its type names, what it lists as supported) come in from the caller.
 */
public final class TensorStores {

    private TensorStores() {}

    // ---------------------------------------------------------------- files

    /**
     * Opens a model file read-only.
     *
     * @throws ModelFormatException if there is no such file
     * @throws UncheckedIOException if it cannot be opened
     */
    public static FileChannel openForReading(Path file) {
        try {
            return FileChannel.open(file, StandardOpenOption.READ);
        } catch (NoSuchFileException e) {
            throw new ModelFormatException(file + ": no such file", e);
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot open", e);
        }
    }

    /** Closes the channels of an open that failed; close failures are added to {@code failure}. */
    public static void closeAfterFailure(Iterable<FileChannel> channels, Throwable failure) {
        for (FileChannel ch : channels) {
            try {
                ch.close();
            } catch (IOException suppressed) {
                failure.addSuppressed(suppressed);
            }
        }
    }

    /**
     * Closes every channel, even after one fails to close.
     *
     * @throws UncheckedIOException naming {@code source}, with the first failure as cause and the
     *     others suppressed
     */
    public static void closeAll(Iterable<FileChannel> channels, Path source) {
        IOException failure = null;
        for (FileChannel ch : channels) {
            try {
                ch.close();
            } catch (IOException e) {
                if (failure == null) {
                    failure = e;
                } else {
                    failure.addSuppressed(e);
                }
            }
        }
        if (failure != null) {
            throw new UncheckedIOException(source + ": cannot close", failure);
        }
    }

    /**
     * Fills {@code dst} (from its position, which is taken as 0) with the file's bytes from {@code
     * position} on.
     *
     * @return false if the file ended first; {@code dst.position()} then says how far it got
     */
    public static boolean readFully(FileChannel ch, ByteBuffer dst, long position) throws IOException {
        while (dst.hasRemaining()) {
            if (ch.read(dst, position + dst.position()) < 0) {
                return false;
            }
        }
        return true;
    }

    // ---------------------------------------------------------------- checks at open

    /**
     * Throws the first overlap of two tensors' data, in file order; empty tensors overlap nothing.
     *
     * @param bytes what the offsets count, as the message says it ("bytes", "file bytes")
     * @param error makes the exception from the message, adding the file
     */
    public static void checkNoOverlap(
            Collection<? extends TensorInfo> infos, String bytes, Function<String, ModelFormatException> error) {
        List<TensorInfo> byOffset = new ArrayList<>();
        for (TensorInfo t : infos) {
            if (t.sizeBytes() > 0) {
                byOffset.add(t);
            }
        }
        byOffset.sort(Comparator.comparingLong(TensorInfo::offset));
        for (int i = 1; i < byOffset.size(); i++) {
            TensorInfo a = byOffset.get(i - 1);
            TensorInfo b = byOffset.get(i);
            if (a.offset() + a.sizeBytes() > b.offset()) {
                throw error.apply(
                        String.format(
                                "the data of tensors '%s' (%s [%d, %d)) and '%s' (%s [%d, %d)) overlap",
                                a.name(),
                                bytes,
                                a.offset(),
                                a.offset() + a.sizeBytes(),
                                b.name(),
                                bytes,
                                b.offset(),
                                b.offset() + b.sizeBytes()));
            }
        }
    }

    /**
     * The kernel formats that some of a file format's {@code types} hold, in {@link DType} order,
     * for messages: "F32, F16, BF16".
     */
    public static <T> String kernelDTypeNames(T[] types, Function<T, Optional<DType>> kernelDType) {
        return Arrays.stream(DType.values())
                .filter(d -> Arrays.stream(types).anyMatch(t -> kernelDType.apply(t).equals(Optional.of(d))))
                .map(DType::name)
                .collect(Collectors.joining(", "));
    }

    // ---------------------------------------------------------------- lookups

    /**
     * The tensor called {@code name}.
     *
     * @throws ModelFormatException naming {@code source}, the tensor and the five names closest to
     *     it
     */
    public static <T> T require(Map<String, T> tensors, String name, Path source) {
        T t = tensors.get(name);
        if (t == null) {
            // Show the names closest to the one asked for: usually a naming-scheme mismatch
            // (HF "model.layers.0..." vs GGUF "blk.0...") or an off-by-one layer.
            List<String> near = new ArrayList<>(tensors.keySet());
            near.sort(Comparator.comparingInt((String n) -> -commonPrefix(n, name)));
            String examples = near.stream().limit(5).collect(Collectors.joining(", "));
            throw new ModelFormatException(
                    String.format(
                            "%s has no tensor '%s' (model has %d tensors%s)",
                            source, name, near.size(), near.isEmpty() ? "" : ", e.g. " + examples));
        }
        return t;
    }

    private static int commonPrefix(String a, String b) {
        int n = Math.min(a.length(), b.length());
        int i = 0;
        while (i < n && a.charAt(i) == b.charAt(i)) {
            i++;
        }
        return i;
    }

    /**
     * Checks a tensor's shape.
     *
     * @throws ModelFormatException naming the tensor, the file, its shape and {@code expected}
     */
    public static void checkShape(TensorInfo t, Path file, long... expected) {
        long[] shape = t.shape();
        if (!Arrays.equals(shape, expected)) {
            throw new ModelFormatException(
                    String.format(
                            "tensor %s in %s has shape %s, expected %s",
                            t.name(), file, Arrays.toString(shape), Arrays.toString(expected)));
        }
    }

    /**
     * The kernels' format of a tensor.
     *
     * @param kernelDType the format, or empty if the kernels cannot read the tensor's type
     * @param notSupported says which type is not supported, in the file format's words
     * @throws ModelFormatException naming the tensor and file, then {@code notSupported}
     */
    public static DType kernelDType(
            TensorInfo t, Path file, Optional<DType> kernelDType, Supplier<String> notSupported) {
        return kernelDType.orElseThrow(
                () ->
                        new ModelFormatException(
                                String.format("tensor %s in %s: %s", t.name(), file, notSupported.get())));
    }

    // ---------------------------------------------------------------- data

    /** A 2-D tensor mapped as a matrix; the caller has checked its shape and dtype. */
    public static WeightMatrix mapMatrix(
            FileChannel ch, Path file, TensorInfo t, DType dtype, int rows, int cols) {
        try {
            return WeightMatrix.map(ch, t.offset(), dtype, rows, cols);
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot map tensor " + t.name(), e);
        }
    }

    /**
     * Checks that {@code t} is {@code [experts, rows, cols]} and maps each expert's matrix
     * (contiguous: {@code rows} rows of {@code dtype.rowBytes(cols)} bytes from {@code offset + e *
     * rows * rowBytes}).
     */
    public static WeightMatrix[] mapExpertMatrices(
            FileChannel ch, Path file, TensorInfo t, DType dtype, int experts, int rows, int cols) {
        long[] shape = t.shape();
        if (shape.length == 3 && shape[1] == rows && shape[2] == cols && shape[0] != experts) {
            throw new ModelFormatException(
                    String.format(
                            "tensor %s in %s holds %d experts, the config says %d (shape %s)",
                            t.name(), file, shape[0], experts, Arrays.toString(shape)));
        }
        checkShape(t, file, experts, rows, cols);
        long matrixBytes = dtype.rowBytes(cols) * rows;
        WeightMatrix[] out = new WeightMatrix[experts];
        try {
            for (int e = 0; e < experts; e++) {
                out[e] = WeightMatrix.map(ch, t.offset() + e * matrixBytes, dtype, rows, cols);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot map tensor " + t.name(), e);
        }
        return out;
    }

    /**
     * A tensor's raw bytes, mapped read-only and little-endian.
     *
     * @throws ModelFormatException if it is larger than 2 GiB (map it as a matrix)
     */
    public static ByteBuffer mapBytes(FileChannel ch, Path file, TensorInfo t) {
        if (t.sizeBytes() > Integer.MAX_VALUE) {
            throw new ModelFormatException(
                    String.format(
                            "tensor %s in %s has %d bytes, more than one buffer holds; map it with"
                                    + " matrix()",
                            t.name(), file, t.sizeBytes()));
        }
        try {
            return ch.map(FileChannel.MapMode.READ_ONLY, t.offset(), t.sizeBytes())
                    .order(ByteOrder.LITTLE_ENDIAN);
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot map tensor " + t.name(), e);
        }
    }

    /**
     * Decodes {@code n} values of {@code dtype} to floats: from {@code bytes}' position for F32,
     * from index 0 for the others. {@code bytes} must be little-endian; block formats decode whole
     * blocks only.
     */
    public static float[] decode(ByteBuffer bytes, DType dtype, int n) {
        float[] out = new float[n];
        switch (dtype) {
            case F32:
                bytes.asFloatBuffer().get(out);
                break;
            case F16:
                for (int i = 0; i < n; i++) {
                    out[i] = Float16.toFloat(bytes.getShort(2 * i));
                }
                break;
            case BF16:
                for (int i = 0; i < n; i++) {
                    out[i] = Float16.bf16ToFloat(bytes.getShort(2 * i));
                }
                break;
            case Q8_0:
                for (int b = 0; b < n / 32; b++) {
                    int base = b * 34;
                    float d = Float16.toFloat(bytes.getShort(base));
                    for (int j = 0; j < 32; j++) {
                        out[b * 32 + j] = d * bytes.get(base + 2 + j);
                    }
                }
                break;
            case Q4_0:
                for (int b = 0; b < n / 32; b++) {
                    int base = b * 18;
                    float d = Float16.toFloat(bytes.getShort(base));
                    for (int j = 0; j < 16; j++) {
                        int q = bytes.get(base + 2 + j) & 0xFF;
                        out[b * 32 + j] = d * ((q & 0x0F) - 8);
                        out[b * 32 + j + 16] = d * ((q >>> 4) - 8);
                    }
                }
                break;
            default:
                throw new UnsupportedOperationException("decoding " + dtype + " is not supported yet");
        }
        return out;
    }
}
