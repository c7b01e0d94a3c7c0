/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.KernelPool;
import io.flinkqwen.kernels.WeightMatrix;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** The resident-decoder part of the backend SPI: the spec's checks, the CPU's answer, the fallback's delegation. */
class DenseDecoderSpecTest {

    static final int H = 8;
    static final int KV = 4; // 1 KV head of 4 for 2 query heads of 4
    static final int FFN = 6;
    static final int VOCAB = 5;

    static WeightMatrix m(int rows, int cols) {
        return WeightMatrix.onHeap(DType.F32, rows, cols, new byte[4 * rows * cols]);
    }

    static DenseDecoderSpec.Layer layer(WeightMatrix wk) {
        return new DenseDecoderSpec.Layer(new float[H], m(H, H), wk, m(KV, H), new float[H], new float[KV], new float[KV],
                m(H, H), new float[H], m(FFN, H), m(FFN, H), m(H, FFN));
    }

    static DenseDecoderSpec spec(List<DenseDecoderSpec.Layer> layers, float[] rope) {
        return new DenseDecoderSpec(H, 2, 1, 4, FFN, VOCAB, 1e-6f, rope, rope.clone(), layers, new float[H], m(VOCAB, H));
    }

    @Test
    void specKnowsItsKvWidthAndRopePositions() {
        DenseDecoderSpec s = spec(List.of(layer(m(KV, H)), layer(m(KV, H))), new float[10 * 2]);
        assertEquals(KV, s.kvDim());
        assertEquals(10, s.ropePositions());
    }

    @Test
    void specRejectsAWrongShapeNamingTheLayerAndTensor() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> spec(List.of(layer(m(KV, H)), layer(m(KV + 1, H))), new float[20]));
        assertTrue(e.getMessage().contains("layer 1 k must be (4, 8), got (5, 8)"), e.getMessage());
    }

    @Test
    void specRejectsRopeTablesThatAreNotWholeRows() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> spec(List.of(layer(m(KV, H))), new float[7]));
        assertTrue(e.getMessage().contains("RoPE tables of 7"), e.getMessage());
    }

    @Test
    void specRejectsHeadsThatDoNotTileTheHiddenWidth() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new DenseDecoderSpec(
                H, 3, 1, 4, FFN, VOCAB, 1e-6f, new float[20], new float[20], List.of(layer(m(KV, H))), new float[H], m(VOCAB, H)));
        assertTrue(e.getMessage().contains("3/1 heads of 4 for hidden 8"), e.getMessage());
    }

    @Test
    void cpuBackendHasNoResidentDecoderAndNoLaunches() {
        DenseDecoderSpec s = spec(List.of(layer(m(KV, H))), new float[20]);
        assertTrue(CpuKernelBackend.INSTANCE.residentDecoder(s, 4).isEmpty());
        assertEquals(0, CpuKernelBackend.INSTANCE.launches());
    }

    @Test
    void cpuFallbackHandsTheResidentDecoderAndLaunchesThrough() {
        DenseDecoderSpec s = spec(List.of(layer(m(KV, H))), new float[20]);
        ResidentDecoder fake = new ResidentDecoder() {
            @Override
            public int positions() {
                return 4;
            }

            @Override
            public void upload(int from, int count, float[] keys, float[] values) {}

            @Override
            public void decode(float[] embedding, int position, float[] logits, float[] newKv) {}

            @Override
            public long launches() {
                return 0;
            }

            @Override
            public void close() {}
        };
        KernelBackend device = new KernelBackend() {
            @Override
            public String name() {
                return "fake";
            }

            @Override
            public String description() {
                return "fake";
            }

            @Override
            public boolean supports(KernelOp op, DType weights) {
                return false;
            }

            @Override
            public Optional<ResidentDecoder> residentDecoder(DenseDecoderSpec spec, int positions) {
                return spec == s && positions == 4 ? Optional.of(fake) : Optional.empty();
            }

            @Override
            public long launches() {
                return 42;
            }

            @Override
            public void matMul(KernelPool pool, float[] out, WeightMatrix w, float[] x, int nTokens) {}

            @Override
            public void rmsNorm(float[] out, float[] x, float[] weight, int width, int rows, float eps) {}

            @Override
            public void ropeNeox(float[] x, int rowStride, int rows, int nHeads, int headDim, float[] cos, float[] sin, int[] positions) {}

            @Override
            public void attention(float[] out, float[] q, float[] keys, float[] values, int kvStride, int nHeads, int nKvHeads,
                    int headDim, int nPositions, float scale) {}

            @Override
            public void softmaxInPlace(float[] x, int off, int n) {}

            @Override
            public void swiGlu(float[] out, float[] gate, float[] up, int n) {}

            @Override
            public void addInPlace(float[] acc, float[] x, int n) {}

            @Override
            public void routerTopK(float[] logits, int experts, int k, boolean normTopkProb, int[] ids, float[] weights, int rows) {}
        };
        KernelBackend wrapped = KernelBackends.withCpuFallback(device);
        assertSame(fake, wrapped.residentDecoder(s, 4).orElseThrow());
        assertTrue(wrapped.residentDecoder(s, 5).isEmpty());
        assertEquals(42, wrapped.launches());
    }
}
