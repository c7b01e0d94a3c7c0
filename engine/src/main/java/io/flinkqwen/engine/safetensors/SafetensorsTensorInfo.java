/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.safetensors;

import io.flinkqwen.engine.weights.TensorInfo;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Objects;

/**
 * One tensor of a safetensors file or shard, as read from its header and checked against it.
 *
 * @param name the tensor's name, e.g. {@code model.layers.0.self_attn.q_proj.weight}
 * @param dtype element type
 * @param shape row-major shape, outermost first, as in the header; a copy is returned
 * @param file the file (shard) that holds the data
 * @param offset absolute file offset of the first data byte (not relative to the data section)
 * @param sizeBytes bytes of data
 */
public record SafetensorsTensorInfo(
        String name, SafetensorsDType dtype, long[] shape, Path file, long offset, long sizeBytes)
        implements TensorInfo {

    public SafetensorsTensorInfo {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(dtype, "dtype");
        Objects.requireNonNull(file, "file");
        shape = shape.clone();
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof SafetensorsTensorInfo)) {
            return false;
        }
        SafetensorsTensorInfo t = (SafetensorsTensorInfo) o;
        return t.name.equals(name)
                && t.dtype == dtype
                && Arrays.equals(t.shape, shape)
                && t.file.equals(file)
                && t.offset == offset
                && t.sizeBytes == sizeBytes;
    }

    @Override
    public int hashCode() {
        return Objects.hash(name, dtype, Arrays.hashCode(shape), file, offset, sizeBytes);
    }

    @Override
    public String toString() {
        return name + ": " + dtype + " " + Arrays.toString(shape) + " in " + file.getFileName() + " at byte "
                + offset + " (" + sizeBytes + " bytes)";
    }
}
