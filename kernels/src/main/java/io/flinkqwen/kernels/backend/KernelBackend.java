/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels.backend;

import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.KernelPool;
import io.flinkqwen.kernels.WeightMatrix;
import java.util.Collection;
import java.util.Optional;

/**
 * The kernels of the forward pass behind one interface, so that the engine runs them on the CPU
 * ({@link CpuKernelBackend}, the default) or on an accelerator found at run time ({@link
 * KernelBackends}, through {@link KernelBackendProvider}).
 *
 * <p>Every method takes and returns host memory (Java arrays, laid out as the CPU kernels of the
 * same name document) and has returned when its results are in the output arrays; what a backend
 * keeps on its device between calls (the weights, after {@link #prepare}) is its own business.
 * A backend runs only the ops and weight formats it {@link #supports}; the engine wraps it with
 * {@link KernelBackends#withCpuFallback} so that unsupported calls go to the CPU kernels instead.
 *
 * <p>Results agree with the CPU kernels' scalar twins within float rounding (the order of sums
 * differs); the tolerances are in the shared kernel test suite. Implementations are thread-safe.
 */
public interface KernelBackend extends AutoCloseable {

    /** Short name, as selected by {@code --device}: {@code cpu}, {@code tornado}. */
    String name();

    /** One line naming the device, for the log. */
    String description();

    /**
     * Whether this backend runs {@code op}; for {@link KernelOp#MATMUL} {@code weights} is the
     * weight format asked about, for every other op it is ignored (pass {@code null}).
     */
    boolean supports(KernelOp op, DType weights);

    /**
     * Whether this backend's Q8_0 products round the activations to Q8_0 blocks first ({@link
     * io.flinkqwen.kernels.Quantize#roundQ8_0}), as ggml's CPU backend does. The CPU backend
     * does; a backend that multiplies the float activations (the default) answers false, and its
     * Q8_0 results differ from the CPU backend's by that rounding (relative error about 3e-3 in
     * a product of random weights).
     */
    default boolean roundsQ8_0Activations() {
        return false;
    }

    /**
     * Gives the backend the model's weights once, at load, before the first call (a device
     * backend copies them to device memory here). Optional: a matrix that was not prepared still
     * works, at the cost of being copied on first use. The CPU backend does nothing.
     */
    default void prepare(Collection<WeightMatrix> weights) {}

    /**
     * {@code out[t * rows + r] = sum_c W[r][c] * x[t * cols + c]} for {@code t < nTokens}, as
     * {@link io.flinkqwen.kernels.MatMul#matMul}; {@code pool} is for the CPU, a device backend
     * ignores it.
     */
    void matMul(KernelPool pool, float[] out, WeightMatrix w, float[] x, int nTokens);

    /** {@code outs[i] = ws[i] x} for matrices that read the same activations (q/k/v, gate/up). */
    default void matMulMany(KernelPool pool, float[][] outs, WeightMatrix[] ws, float[] x, int nTokens) {
        for (int i = 0; i < ws.length; i++) {
            matMul(pool, outs[i], ws[i], x, nTokens);
        }
    }

    /**
     * {@code outs[i] = ws[i] xs[i]} over {@code tokens[i]} rows each for {@code i < count} (0
     * tokens skips the matrix): the experts of a MoE layer.
     */
    default void matMulEach(KernelPool pool, float[][] outs, WeightMatrix[] ws, float[][] xs, int[] tokens, int count) {
        for (int i = 0; i < count; i++) {
            if (tokens[i] > 0) {
                matMul(pool, outs[i], ws[i], xs[i], tokens[i]);
            }
        }
    }

    /**
     * RMSNorm of {@code rows} consecutive rows of {@code width} floats from index 0: {@code
     * out[t * width + i] = x[t * width + i] / sqrt(mean_i(x^2) + eps) * weight[i]}. {@code out}
     * may be {@code x}.
     */
    void rmsNorm(float[] out, float[] x, float[] weight, int width, int rows, float eps);

    /**
     * NeoX rotary embedding in place of {@code rows} rows of {@code x}, row {@code t} at {@code t
     * * rowStride} holding {@code nHeads} heads of {@code headDim}, rotated by the angles of
     * position {@code positions[t]} in the tables {@code cos}/{@code sin} ({@code (position,
     * headDim / 2)}, as {@link io.flinkqwen.kernels.Rope#ropeTable}).
     */
    void ropeNeox(float[] x, int rowStride, int rows, int nHeads, int headDim, float[] cos, float[] sin, int[] positions);

    /**
     * Grouped-query attention of one token: query head {@code h} ({@code q[h * headDim ..]})
     * over positions {@code 0 .. nPositions) of KV head {@code h / (nHeads / nKvHeads)}, whose
     * key of position {@code t} is {@code keys[t * kvStride + kvHead * headDim ..][0 ..
     * headDim)} (values alike). Writes {@code out[h * headDim ..]} for every head; as {@link
     * io.flinkqwen.kernels.Attention#attention} per head.
     */
    void attention(
            float[] out, float[] q, float[] keys, float[] values, int kvStride, int nHeads, int nKvHeads, int headDim,
            int nPositions, float scale);

    /** Softmax of {@code x[off .. off + n)} in place, as {@link io.flinkqwen.kernels.Softmax#softmaxInPlace}. */
    void softmaxInPlace(float[] x, int off, int n);

    /** {@code out[i] = silu(gate[i]) * up[i]} for {@code i < n}; {@code out} may be {@code gate}. */
    void swiGlu(float[] out, float[] gate, float[] up, int n);

    /**
     * {@link #swiGlu} of {@code outs[i]}, {@code gates[i]}, {@code ups[i]}, {@code ns[i]}
     * elements, for {@code i < count}: a MoE layer's experts. The CPU backend spreads the
     * elements of all of them over {@code pool}; by default they run one after another on the
     * calling thread.
     */
    default void swiGluEach(KernelPool pool, float[][] outs, float[][] gates, float[][] ups, int[] ns, int count) {
        for (int i = 0; i < count; i++) {
            swiGlu(outs[i], gates[i], ups[i], ns[i]);
        }
    }

    /** {@code acc[i] += x[i]} for {@code i < n}. */
    void addInPlace(float[] acc, float[] x, int n);

    /**
     * Routes {@code rows} tokens over {@code experts} experts as {@link
     * io.flinkqwen.kernels.Router#route} does, token {@code t}'s logits at {@code t * experts},
     * its {@code k} ids and weights at {@code t * k}.
     */
    void routerTopK(float[] logits, int experts, int k, boolean normTopkProb, int[] ids, float[] weights, int rows);

    /**
     * {@code x += down(silu(gate(h)) * up(h))} with {@code h = rmsNorm(x) * norm}, for {@code rows}
     * rows of the residual stream {@code x} ({@code rows, width}, width = {@code gate.cols()}): a
     * dense layer's FFN with its norm and residual add, as one op. Only where {@link #supports}
     * {@code (FFN_BLOCK, gate.dtype())}; the engine calls the parts otherwise.
     *
     * @throws UnsupportedOperationException from backends that do not fuse it
     */
    default void ffnBlock(
            KernelPool pool, float[] x, float[] norm, float eps, WeightMatrix gate, WeightMatrix up, WeightMatrix down,
            int rows) {
        throw new UnsupportedOperationException(name() + " backend does not run the FFN block as one op");
    }

    /**
     * A decoder that runs whole decode steps of the dense decoder {@code spec} on this backend's
     * device, its residual stream and a KV cache of {@code positions} positions kept there, or
     * empty where this backend has none (the CPU's), cannot run these weights (a format it does
     * not support) or {@code positions} exceeds the RoPE tables. Optional: the engine falls back to
     * per-op calls when it is empty. The caller closes the decoder.
     */
    default Optional<ResidentDecoder> residentDecoder(DenseDecoderSpec spec, int positions) {
        return Optional.empty();
    }

    /**
     * Device launches (TornadoVM execution plan executions) so far, for the per-token launch
     * count; 0 for backends without a device.
     */
    default long launches() {
        return 0;
    }

    /** Releases device resources; the CPU backend has none. */
    @Override
    default void close() {}
}
