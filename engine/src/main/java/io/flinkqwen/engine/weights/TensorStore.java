/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.weights;

import io.flinkqwen.kernels.WeightMatrix;
import java.util.Set;

/**
 * Named tensors of one model, whatever the file format (GGUF, safetensors single or sharded).
 * Shapes are row-major, outermost first, as Hugging Face writes them: a linear layer's weight is
 * {@code [out, in]}. (GGUF lists dimensions innermost first; its reader reverses them.)
 *
 * <p>Big tensors come back as {@link WeightMatrix} views of the mapped file; only 1-D tensors
 * (norm weights, biases: kilobytes) are decoded onto the heap.
 */
public interface TensorStore extends AutoCloseable {

    /** What to name in error messages: the file or folder. */
    String source();

    Set<String> tensorNames();

    boolean contains(String name);

    /** Row-major shape of a tensor, or throws {@link ModelFormatException} naming it if absent. */
    long[] shape(String name);

    /**
     * A 2-D tensor as a mapped matrix.
     *
     * @throws ModelFormatException if it is missing, not {@code [rows, cols]}, or of a dtype the
     *     kernels cannot read; the message names the source, tensor, expected and actual shape
     */
    WeightMatrix matrix(String name, int rows, int cols);

    /**
     * The per-expert matrices of a 3-D tensor {@code [experts, rows, cols]} (GGUF's merged
     * {@code ffn_*_exps}): expert {@code e}'s matrix is contiguous, mapped as a view of the file.
     *
     * @throws ModelFormatException if it is missing, has another expert count or matrix shape
     *     (the message names both), or a dtype the kernels cannot read
     */
    WeightMatrix[] expertMatrices(String name, int experts, int rows, int cols);

    /**
     * A 1-D tensor of {@code length} values, decoded to F32 on the heap.
     *
     * @throws ModelFormatException if it is missing or of another length or dtype
     */
    float[] vector(String name, int length);

    @Override
    void close();
}
