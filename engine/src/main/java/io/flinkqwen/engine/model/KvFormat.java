/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.model;

import io.flinkqwen.kernels.Attention;
import java.util.Locale;

/**
 * How a KV cache stores its keys and values; attention decodes an F16 or Q8 tile of positions
 * to floats once per tile ({@link Attention}'s {@code tileRowsF32}, {@code tileRowsF16}, {@code
 * tileRowsQ8}).
 *
 * <ul>
 *   <li>{@link #F32}: 4 bytes per element, exact (the default; what the llama.cpp agreement tests use).
 *   <li>{@link #F16}: 2 bytes, binary16 rounded to nearest, clamped to +-65504.
 *   <li>{@link #Q8}: int8 with one float scale per 32 consecutive elements (1.125 bytes): as
 *       llama.cpp's {@code q8_0} cache type, but with a float scale (no half decode in the inner
 *       loop, and no scale rounding). Groups of 32 rather than one scale per head row: keys after
 *       RoPE have a few large channels, and a per-row scale lets one of them coarsen all 64 or
 *       128 elements of the row; Qwen2's head sizes (64, 128) are whole groups.
 * </ul>
 *
 * <p>The system property {@value #PROPERTY} ({@code f32}, {@code f16}, {@code q8}) sets the
 * default; the command line's {@code --kv-type}, the Flink option {@code qwen.kv-type} and the
 * SQL model option {@code 'kv-type'} choose a format per engine.
 */
public enum KvFormat {
    F32,
    F16,
    Q8;

    public static final String PROPERTY = "flinkqwen.kv";

    /** The format named by {@value #PROPERTY}, {@link #F32} if unset. */
    public static KvFormat fromSystemProperty() {
        String v = System.getProperty(PROPERTY);
        return v == null || v.isBlank() ? F32 : parse(v);
    }

    /** {@code f32}, {@code f16} or {@code q8} ({@code q8_0} too), any case. */
    public static KvFormat parse(String value) {
        String v = value.trim().toUpperCase(Locale.ROOT);
        if (v.equals("Q8_0")) {
            return Q8;
        }
        try {
            return valueOf(v);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("KV cache type '" + value + "' is not one of f32, f16, q8", e);
        }
    }

    /** Bytes that {@code elements} elements take in this format ({@code elements} a multiple of 32 for Q8). */
    public long bytes(long elements) {
        switch (this) {
            case F32:
                return 4 * elements;
            case F16:
                return 2 * elements;
            default:
                return elements + Float.BYTES * (elements / Attention.Q8_GROUP);
        }
    }

    /** The lower-case name the command line and the property use. */
    public String id() {
        return name().toLowerCase(Locale.ROOT);
    }
}
