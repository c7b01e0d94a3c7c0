/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.weights;

/**
 * Where one tensor of a model file lies, as its reader found it in the header and checked against
 * the file. Each format adds its own element type (and, for safetensors, the shard).
 */
public interface TensorInfo {

    /** The tensor's name as the file spells it. */
    String name();

    /** Row-major shape, outermost first; a copy. */
    long[] shape();

    /** Absolute file offset of the first data byte (not relative to the data section). */
    long offset();

    /** Bytes of data. */
    long sizeBytes();

    /** Number of dimensions (0 for a scalar). */
    default int rank() {
        return shape().length;
    }

    /** Product of the dimensions (1 for a scalar). Unchecked: a reader checked it at open. */
    default long elementCount() {
        long n = 1;
        for (long d : shape()) {
            n *= d;
        }
        return n;
    }
}
