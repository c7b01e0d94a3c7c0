/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.gguf;

import io.flinkqwen.engine.weights.TensorStores;
import io.flinkqwen.kernels.DType;
import java.util.Optional;

/**
 * Tensor element types of GGML, by the id a GGUF tensor info stores (ggml.h {@code ggml_type}).
 *
 * <p>Every type carries its block size and block bytes so that a reader can size and bounds-check
 * the data of tensors it cannot decode (a Q4_K model still opens; only asking for a Q4_K matrix
 * fails). Only the types with a {@link #dtype()} are readable by our kernels.
 *
 * <p>Ids 4, 5 (Q4_2, Q4_3), 31-33 (Q4_0_4_4, Q4_0_4_8, Q4_0_8_8) and 36-38 (IQ4_NL_4_4 ...) were
 * removed from ggml and have no constant here; see {@link #removedName(int)}. Ids above 39 are
 * newer than this table.
 */
public enum GgmlType {
    F32(0, 1, 4),
    F16(1, 1, 2),
    Q4_0(2, 32, 18),
    Q4_1(3, 32, 20),
    Q5_0(6, 32, 22),
    Q5_1(7, 32, 24),
    Q8_0(8, 32, 34),
    Q8_1(9, 32, 36),
    Q2_K(10, 256, 84),
    Q3_K(11, 256, 110),
    Q4_K(12, 256, 144),
    Q5_K(13, 256, 176),
    Q6_K(14, 256, 210),
    Q8_K(15, 256, 292),
    IQ2_XXS(16, 256, 66),
    IQ2_XS(17, 256, 74),
    IQ3_XXS(18, 256, 98),
    IQ1_S(19, 256, 50),
    IQ4_NL(20, 32, 18),
    IQ3_S(21, 256, 110),
    IQ2_S(22, 256, 82),
    IQ4_XS(23, 256, 136),
    I8(24, 1, 1),
    I16(25, 1, 2),
    I32(26, 1, 4),
    I64(27, 1, 8),
    F64(28, 1, 8),
    IQ1_M(29, 256, 56),
    BF16(30, 1, 2),
    TQ1_0(34, 256, 54),
    TQ2_0(35, 256, 66),
    MXFP4(39, 32, 17);

    private static final GgmlType[] BY_ID = new GgmlType[40];

    static {
        for (GgmlType t : values()) {
            BY_ID[t.id] = t;
        }
    }

    /** The readable types, in the order error messages list them. */
    private static final String SUPPORTED = TensorStores.kernelDTypeNames(values(), GgmlType::dtype);

    private final int id;
    private final int blockSize;
    private final int blockBytes;

    GgmlType(int id, int blockSize, int blockBytes) {
        this.id = id;
        this.blockSize = blockSize;
        this.blockBytes = blockBytes;
    }

    /** The id stored in a GGUF tensor info. */
    public int id() {
        return id;
    }

    /** Values per block (1 for plain types). */
    public int blockSize() {
        return blockSize;
    }

    /** Bytes per block. */
    public int blockBytes() {
        return blockBytes;
    }

    /**
     * Bytes of {@code elements} values, which must be a whole number of blocks.
     *
     * @throws IllegalArgumentException if {@code elements} is not a multiple of the block size
     * @throws ArithmeticException on overflow
     */
    public long byteSize(long elements) {
        if (elements % blockSize != 0) {
            throw new IllegalArgumentException(
                    String.format(
                            "%s holds blocks of %d values, got %d values", this, blockSize, elements));
        }
        return Math.multiplyExact(elements / blockSize, (long) blockBytes);
    }

    /** The kernels' format of this type, if the kernels read it. */
    public Optional<DType> dtype() {
        switch (this) {
            case F32:
                return Optional.of(DType.F32);
            case F16:
                return Optional.of(DType.F16);
            case BF16:
                return Optional.of(DType.BF16);
            case Q8_0:
                return Optional.of(DType.Q8_0);
            case Q4_0:
                return Optional.of(DType.Q4_0);
            default:
                return Optional.empty();
        }
    }

    /** The GGML type that stores {@code dtype} (they share the byte layout). */
    public static GgmlType of(DType dtype) {
        switch (dtype) {
            case F32:
                return F32;
            case F16:
                return F16;
            case BF16:
                return BF16;
            case Q8_0:
                return Q8_0;
            case Q4_0:
                return Q4_0;
            default:
                throw new IllegalArgumentException("no GGML type for " + dtype);
        }
    }

    /** The type with this id, or empty for removed or unknown ids. */
    public static Optional<GgmlType> byId(long id) {
        if (id < 0 || id >= BY_ID.length) {
            return Optional.empty();
        }
        return Optional.ofNullable(BY_ID[(int) id]);
    }

    /** The name of a type id that ggml used once and removed, or empty. */
    public static Optional<String> removedName(long id) {
        switch ((int) Math.max(-1, Math.min(id, 1000))) {
            case 4:
                return Optional.of("Q4_2");
            case 5:
                return Optional.of("Q4_3");
            case 31:
                return Optional.of("Q4_0_4_4");
            case 32:
                return Optional.of("Q4_0_4_8");
            case 33:
                return Optional.of("Q4_0_8_8");
            case 36:
                return Optional.of("IQ4_NL_4_4");
            case 37:
                return Optional.of("IQ4_NL_4_8");
            case 38:
                return Optional.of("IQ4_NL_8_8");
            default:
                return Optional.empty();
        }
    }

    /** "Q4_K is not supported yet (supported: F32, F16, BF16, Q8_0, Q4_0)". */
    String notSupportedMessage() {
        return name() + " is not supported yet (supported: " + SUPPORTED + ")";
    }
}
