/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.model;

import io.flinkqwen.kernels.Attention;

/**
 * Keys and values of {@code blockPositions} consecutive positions, every layer, in one format:
 * element {@code c} of position {@code p} of layer {@code l} is at {@code (l * blockPositions +
 * p) * kvDim + c} of the keys (and of the values). Only the arrays of the pool's format exist.
 * Reference counted by {@link KvBlockPool}; owned by the pool's thread.
 */
final class KvBlock {
    final float[] keysF32;
    final float[] valuesF32;
    final short[] keysF16;
    final short[] valuesF16;
    final byte[] keysQ8;
    final byte[] valuesQ8;
    final float[] keyScales; // one per 32 elements of keysQ8
    final float[] valueScales;

    int refs; // caches whose table holds this block
    long serial; // new each time the pool hands the block out: prefix keys name their parent by it
    KvBlockPool.PrefixKey key; // non-null while the prefix index holds this block
    long mark; // KvBlockPool#newStamp: counts blocks shared by several caches once

    KvBlock(KvFormat format, int elements) {
        keysF32 = format == KvFormat.F32 ? new float[elements] : null;
        valuesF32 = format == KvFormat.F32 ? new float[elements] : null;
        keysF16 = format == KvFormat.F16 ? new short[elements] : null;
        valuesF16 = format == KvFormat.F16 ? new short[elements] : null;
        keysQ8 = format == KvFormat.Q8 ? new byte[elements] : null;
        valuesQ8 = format == KvFormat.Q8 ? new byte[elements] : null;
        keyScales = format == KvFormat.Q8 ? new float[elements / 32] : null;
        valueScales = format == KvFormat.Q8 ? new float[elements / 32] : null;
    }

    /**
     * Stores one position's {@code n} key and value elements ({@code keys[kOff..]}, {@code
     * values[vOff..]}) at element {@code off} of this block, in the block's format.
     */
    void store(int off, float[] keys, int kOff, float[] values, int vOff, int n) {
        if (keysF32 != null) {
            System.arraycopy(keys, kOff, keysF32, off, n);
            System.arraycopy(values, vOff, valuesF32, off, n);
        } else if (keysF16 != null) {
            Attention.toF16Clamped(keysF16, off, keys, kOff, n);
            Attention.toF16Clamped(valuesF16, off, values, vOff, n);
        } else {
            Attention.quantizeQ8(keysQ8, keyScales, off, keys, kOff, n);
            Attention.quantizeQ8(valuesQ8, valueScales, off, values, vOff, n);
        }
    }

    /** Copies every array of {@code from} (same format and size) into this block. */
    void copyFrom(KvBlock from) {
        copy(from.keysF32, keysF32);
        copy(from.valuesF32, valuesF32);
        copy(from.keyScales, keyScales);
        copy(from.valueScales, valueScales);
        if (keysF16 != null) {
            System.arraycopy(from.keysF16, 0, keysF16, 0, keysF16.length);
            System.arraycopy(from.valuesF16, 0, valuesF16, 0, valuesF16.length);
        }
        if (keysQ8 != null) {
            System.arraycopy(from.keysQ8, 0, keysQ8, 0, keysQ8.length);
            System.arraycopy(from.valuesQ8, 0, valuesQ8, 0, valuesQ8.length);
        }
    }

    private static void copy(float[] from, float[] to) {
        if (to != null) {
            System.arraycopy(from, 0, to, 0, to.length);
        }
    }
}
