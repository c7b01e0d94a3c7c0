/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels.backend;

/**
 * The operations of the forward pass a {@link KernelBackend} may run. A backend answers per op
 * (and, for {@link #MATMUL}, per weight format) whether it runs it ({@link
 * KernelBackend#supports}); the engine runs every other op on the CPU kernels (ggml's
 * {@code supports_op}).
 */
public enum KernelOp {
    /** Weights times activations: mat-vec for one token, a small GEMM for several. */
    MATMUL,
    /** RMSNorm of whole rows. */
    RMS_NORM,
    /** NeoX (half-split) rotary embedding of whole rows. */
    ROPE_NEOX,
    /** Grouped-query attention of one token over a float KV cache. */
    ATTENTION,
    /** Softmax of one vector in place. */
    SOFTMAX,
    /** {@code silu(gate) * up}. */
    SWIGLU,
    /** Residual add, {@code acc += x}. */
    ADD,
    /** MoE router: softmax over all experts, top-k, optional renormalisation. */
    ROUTER_TOP_K,
    /**
     * A dense layer's whole FFN as one op (RMSNorm, gate/up, SwiGLU, down, residual add), its
     * intermediate activations never leaving the device. A fused op: a backend that does not
     * support it (the CPU's) gets the parts instead, one call each.
     */
    FFN_BLOCK
}
