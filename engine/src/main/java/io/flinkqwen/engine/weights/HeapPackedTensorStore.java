/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.weights;

import io.flinkqwen.kernels.WeightMatrix;
import java.util.Set;

/**
 * A {@link TensorStore} whose matrices are those of another, packed onto the heap ({@link
 * WeightMatrix#packOnHeap}); see {@link WeightPlacement#HEAP}. Closing it closes the other.
 */
public final class HeapPackedTensorStore implements TensorStore {

    private final TensorStore mapped;

    public HeapPackedTensorStore(TensorStore mapped) {
        this.mapped = mapped;
    }

    @Override
    public String source() {
        return mapped.source();
    }

    @Override
    public Set<String> tensorNames() {
        return mapped.tensorNames();
    }

    @Override
    public boolean contains(String name) {
        return mapped.contains(name);
    }

    @Override
    public long[] shape(String name) {
        return mapped.shape(name);
    }

    @Override
    public WeightMatrix matrix(String name, int rows, int cols) {
        return mapped.matrix(name, rows, cols).packOnHeap();
    }

    @Override
    public WeightMatrix[] expertMatrices(String name, int experts, int rows, int cols) {
        WeightMatrix[] m = mapped.expertMatrices(name, experts, rows, cols);
        for (int i = 0; i < m.length; i++) {
            m[i] = m[i].packOnHeap();
        }
        return m;
    }

    @Override
    public float[] vector(String name, int length) {
        return mapped.vector(name, length);
    }

    @Override
    public void close() {
        mapped.close();
    }
}
