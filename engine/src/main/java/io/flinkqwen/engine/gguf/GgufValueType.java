/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.gguf;

import java.util.Optional;

/**
 * Types of GGUF metadata values, by their id in the file ({@code gguf_type}), and the Java types
 * {@link GgufFile#metadata()} holds them as:
 *
 * <table>
 *   <caption>GGUF value types and their Java representation</caption>
 *   <tr><th>GGUF type</th><th>scalar</th><th>array element type</th></tr>
 *   <tr><td>UINT8, INT8</td><td>{@code Long}</td><td>{@code byte[]}</td></tr>
 *   <tr><td>UINT16, INT16</td><td>{@code Long}</td><td>{@code short[]}</td></tr>
 *   <tr><td>UINT32, INT32</td><td>{@code Long}</td><td>{@code int[]}</td></tr>
 *   <tr><td>UINT64, INT64</td><td>{@code Long}</td><td>{@code long[]}</td></tr>
 *   <tr><td>FLOAT32</td><td>{@code Float}</td><td>{@code float[]}</td></tr>
 *   <tr><td>FLOAT64</td><td>{@code Double}</td><td>{@code double[]}</td></tr>
 *   <tr><td>BOOL</td><td>{@code Boolean}</td><td>{@code boolean[]}</td></tr>
 *   <tr><td>STRING</td><td>{@code String}</td><td>{@code List<String>} (unmodifiable)</td></tr>
 * </table>
 *
 * <p>Integer scalars are {@code Long} holding the exact value, whatever their width or sign
 * (a UINT64 above {@code Long.MAX_VALUE} keeps its two's-complement bits). Integer arrays keep
 * the file's width and hold the raw bits: an unsigned array's elements read as signed Java
 * values; {@link GgufFile#getIntArray} and {@link GgufFile#getLongArray} convert them exactly.
 * Nested arrays (ARRAY of ARRAY) are not supported, like in llama.cpp's reader.
 */
public enum GgufValueType {
    UINT8(0, 1),
    INT8(1, 1),
    UINT16(2, 2),
    INT16(3, 2),
    UINT32(4, 4),
    INT32(5, 4),
    FLOAT32(6, 4),
    BOOL(7, 1),
    STRING(8, 0),
    ARRAY(9, 0),
    UINT64(10, 8),
    INT64(11, 8),
    FLOAT64(12, 8);

    private static final GgufValueType[] BY_ID = new GgufValueType[13];

    static {
        for (GgufValueType t : values()) {
            BY_ID[t.id] = t;
        }
    }

    private final int id;
    private final int size;

    GgufValueType(int id, int size) {
        this.id = id;
        this.size = size;
    }

    /** The id stored in the file. */
    public int id() {
        return id;
    }

    /** Bytes of one value in the file, or 0 for the variable-length STRING and ARRAY. */
    public int size() {
        return size;
    }

    public boolean isInteger() {
        switch (this) {
            case UINT8:
            case INT8:
            case UINT16:
            case INT16:
            case UINT32:
            case INT32:
            case UINT64:
            case INT64:
                return true;
            default:
                return false;
        }
    }

    public boolean isUnsigned() {
        return this == UINT8 || this == UINT16 || this == UINT32 || this == UINT64;
    }

    public boolean isFloat() {
        return this == FLOAT32 || this == FLOAT64;
    }

    /** The type with this id, or empty if the id is unknown. */
    public static Optional<GgufValueType> byId(long id) {
        if (id < 0 || id >= BY_ID.length) {
            return Optional.empty();
        }
        return Optional.of(BY_ID[(int) id]);
    }
}
