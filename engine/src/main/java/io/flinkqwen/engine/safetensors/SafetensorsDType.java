/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.safetensors;

import io.flinkqwen.engine.weights.TensorStores;
import io.flinkqwen.kernels.DType;
import java.util.Arrays;
import java.util.Optional;
import java.util.stream.Collectors;

/**
 * The {@code "dtype"} strings of a safetensors header, with their sizes in bits, so that a reader
 * can check every tensor's byte range, including tensors our kernels cannot read (a model may
 * carry an I64 buffer or F8 weights: it opens, and only using such a tensor fails).
 */
public enum SafetensorsDType {
    BOOL(8),
    F4(4),
    F6_E2M3(6),
    F6_E3M2(6),
    U8(8),
    I8(8),
    F8_E5M2(8),
    F8_E4M3(8),
    F8_E8M0(8),
    I16(16),
    U16(16),
    F16(16),
    BF16(16),
    I32(32),
    U32(32),
    F32(32),
    C64(64),
    F64(64),
    I64(64),
    U64(64);

    static final String KNOWN =
            Arrays.stream(values()).map(Enum::name).collect(Collectors.joining(", "));

    /** The dtypes the kernels read, in the order error messages list them. */
    private static final String SUPPORTED = TensorStores.kernelDTypeNames(values(), SafetensorsDType::dtype);

    private final int bits;

    SafetensorsDType(int bits) {
        this.bits = bits;
    }

    /** Bits per element. */
    public int bits() {
        return bits;
    }

    /**
     * Bytes of {@code elements} values.
     *
     * @throws IllegalArgumentException if the bits do not fill whole bytes (sub-byte types)
     * @throws ArithmeticException on overflow
     */
    public long byteSize(long elements) {
        long totalBits = Math.multiplyExact(elements, (long) bits);
        if (totalBits % 8 != 0) {
            throw new IllegalArgumentException(
                    elements + " values of " + this + " do not fill a whole number of bytes");
        }
        return totalBits / 8;
    }

    /** The kernels' format of this dtype, if the kernels read it (F32, F16, BF16). */
    public Optional<DType> dtype() {
        switch (this) {
            case F32:
                return Optional.of(DType.F32);
            case F16:
                return Optional.of(DType.F16);
            case BF16:
                return Optional.of(DType.BF16);
            default:
                return Optional.empty();
        }
    }

    /** The safetensors dtype that stores {@code dtype}, if there is one (not for GGUF blocks). */
    public static Optional<SafetensorsDType> of(DType dtype) {
        switch (dtype) {
            case F32:
                return Optional.of(F32);
            case F16:
                return Optional.of(F16);
            case BF16:
                return Optional.of(BF16);
            default:
                return Optional.empty();
        }
    }

    /** "dtype I8 is not supported (supported: F32, F16, BF16)". */
    String notSupportedMessage() {
        return "dtype " + name() + " is not supported (supported: " + SUPPORTED + ")";
    }

    /** The dtype with this header name (case-sensitive, as the format is), or empty. */
    public static Optional<SafetensorsDType> byName(String name) {
        for (SafetensorsDType t : values()) {
            if (t.name().equals(name)) {
                return Optional.of(t);
            }
        }
        return Optional.empty();
    }
}
