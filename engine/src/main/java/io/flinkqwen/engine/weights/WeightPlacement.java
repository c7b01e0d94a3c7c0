/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.weights;

import java.util.Locale;

/**
 * Where the kernels read a model's matrices from.
 *
 * <ul>
 *   <li>{@link #HEAP}: copied once, at load, onto the Java heap in the layout the vector kernels
 *       read fastest ({@link io.flinkqwen.kernels.WeightMatrix#packOnHeap}); needs about the
 *       model's size in heap ({@code -Xmx}, or a Flink TaskManager's task heap). Q4_0 matrices
 *       have no packed layout yet and stay mapped.
 *   <li>{@link #MAPPED}: read from the memory-mapped file; no heap, slower (each row is copied
 *       out of the mapping per call, and Q8_0 blocks are read unaligned).
 *   <li>{@link #AUTO} (the default): {@code HEAP} when the packed matrices fit in the heap still
 *       free at load with a quarter of the maximum heap (at least 512 MiB) to spare for
 *       everything else (KV caches, activations, Flink), else {@code MAPPED}.
 * </ul>
 *
 * <p>The system property {@value #PROPERTY} ({@code auto}, {@code heap}, {@code mapped}) sets
 * the default.
 */
public enum WeightPlacement {
    AUTO,
    HEAP,
    MAPPED;

    public static final String PROPERTY = "flinkqwen.weights";

    /** The placement named by {@value #PROPERTY}, {@link #AUTO} if unset. */
    public static WeightPlacement fromSystemProperty() {
        String v = System.getProperty(PROPERTY);
        return v == null || v.isBlank() ? AUTO : parse(v);
    }

    /** {@code auto}, {@code heap} or {@code mapped}, any case. */
    public static WeightPlacement parse(String value) {
        try {
            return valueOf(value.trim().toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(
                    "weight placement '" + value + "' is not one of auto, heap, mapped", e);
        }
    }

    /** Heap {@link #AUTO} leaves free beside the packed weights, at least. */
    static final long MIN_SPARE_BYTES = 512L << 20;

    /**
     * Whether to pack {@code packedBytes} onto the heap, given {@code freeHeapBytes} of heap
     * still available ({@code maxMemory - used}) out of {@code maxHeapBytes}.
     *
     * @throws IllegalStateException for {@link #HEAP} when the packed weights cannot fit
     */
    public boolean packs(long packedBytes, long freeHeapBytes, long maxHeapBytes) {
        switch (this) {
            case MAPPED:
                return false;
            case HEAP:
                if (packedBytes > freeHeapBytes) {
                    throw new IllegalStateException(String.format(Locale.ROOT,
                            "weights on the heap need %.2f GiB, %.2f GiB of heap is free: raise -Xmx"
                                    + " (or the TaskManager's task heap) or use %s=mapped",
                            packedBytes / (double) (1L << 30), freeHeapBytes / (double) (1L << 30), PROPERTY));
                }
                return true;
            default:
                return packedBytes <= freeHeapBytes - Math.max(MIN_SPARE_BYTES, maxHeapBytes / 4);
        }
    }

    /** Heap still available to allocate: {@code maxMemory - (totalMemory - freeMemory)}. */
    public static long freeHeapBytes() {
        Runtime rt = Runtime.getRuntime();
        return rt.maxMemory() - (rt.totalMemory() - rt.freeMemory());
    }
}
