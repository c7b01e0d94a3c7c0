/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.gguf;

import io.flinkqwen.engine.weights.TensorInfo;
import java.util.Arrays;
import java.util.Objects;

/**
 * One tensor of a GGUF file, as read from its header and checked against the file.
 *
 * @param name the tensor's name, e.g. {@code blk.0.attn_q.weight}
 * @param shape row-major shape, outermost first (the file's dims reversed): a 2-D tensor is
 *     {@code [rows, cols]}; a copy is returned
 * @param type element type
 * @param offset absolute file offset of the first data byte (not relative to the data section)
 * @param sizeBytes bytes of data
 */
public record GgufTensorInfo(String name, long[] shape, GgmlType type, long offset, long sizeBytes)
        implements TensorInfo {

    public GgufTensorInfo {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(type, "type");
        shape = shape.clone();
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof GgufTensorInfo
                && ((GgufTensorInfo) o).name.equals(name)
                && Arrays.equals(((GgufTensorInfo) o).shape, shape)
                && ((GgufTensorInfo) o).type == type
                && ((GgufTensorInfo) o).offset == offset
                && ((GgufTensorInfo) o).sizeBytes == sizeBytes;
    }

    @Override
    public int hashCode() {
        return Objects.hash(name, Arrays.hashCode(shape), type, offset, sizeBytes);
    }

    @Override
    public String toString() {
        return name + ": " + type + " " + Arrays.toString(shape) + " at byte " + offset + " (" + sizeBytes
                + " bytes)";
    }
}
