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
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

class KernelBackendsTest {

    @Test
    void cpuIsTheCpuBackend() {
        assertSame(CpuKernelBackend.INSTANCE, KernelBackends.select("cpu"));
        assertSame(CpuKernelBackend.INSTANCE, KernelBackends.select(" CPU "));
    }

    @Test
    void autoFallsBackToTheCpuWithoutAnAcceleratorOnTheClassPath() {
        Assumptions.assumeTrue(KernelBackends.providers().isEmpty(), "an accelerator backend is on this class path");
        assertSame(CpuKernelBackend.INSTANCE, KernelBackends.select("auto"));
        assertSame(CpuKernelBackend.INSTANCE, KernelBackends.select(null));
    }

    @Test
    void namingAMissingBackendFailsAndSaysWhatIsThere() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> KernelBackends.select("cuda"));
        assertTrue(e.getMessage().contains("no kernel backend 'cuda'") && e.getMessage().contains("found: cpu"), e.getMessage());
    }

    /**
     * The GPU backend's kernel suite is {@code TornadoKernelBackendTest} in module kernels-tornado;
     * this build has it only where TornadoVM is installed. Reported here, as not run, when absent.
     */
    @Test
    void tornadoBackendIsTestedInKernelsTornado() {
        Assumptions.assumeTrue(KernelBackends.providers().containsKey("tornado"),
                "tornado backend not run: module kernels-tornado is built only by the Maven profile 'tornado', "
                        + "active where TornadoVM is installed (TORNADOVM_HOME with its tornado-argfile); "
                        + "its kernel suite and model tests run there");
    }

    @Test
    void fallbackSendsUnsupportedOpsAndFormatsToTheCpu() {
        Recording device = new Recording();
        KernelBackend b = KernelBackends.withCpuFallback(device);
        float[] out = new float[2];
        WeightMatrix f16 = WeightMatrix.onHeap(DType.F16, 2, 1, new byte[4]);
        WeightMatrix q8 = WeightMatrix.onHeap(DType.Q8_0, 2, 32, new byte[68]);
        b.matMul(KernelPool.serial(), out, f16, new float[1], 1);
        b.matMul(KernelPool.serial(), out, q8, new float[32], 1);
        b.rmsNorm(new float[1], new float[] {1f}, new float[] {1f}, 1, 1, 1e-6f);
        b.addInPlace(new float[1], new float[1], 1);
        b.prepare(List.of(f16, q8));
        assertEquals(List.of("matMul F16", "add", "prepare [F16[2, 1]]"), device.calls);
        assertTrue(b.description().contains("RMS_NORM") && b.description().contains("Q8_0"), b.description());
        assertSame(b, KernelBackends.withCpuFallback(b));
    }

    /** Supports MATMUL of F16 and ADD only; records what reaches it. */
    private static final class Recording implements KernelBackend {
        final List<String> calls = new ArrayList<>();

        @Override
        public String name() {
            return "recording";
        }

        @Override
        public String description() {
            return "recording";
        }

        @Override
        public boolean supports(KernelOp op, DType weights) {
            return op == KernelOp.ADD || op == KernelOp.MATMUL && weights == DType.F16;
        }

        @Override
        public void prepare(Collection<WeightMatrix> weights) {
            calls.add("prepare " + weights);
        }

        @Override
        public void matMul(KernelPool pool, float[] out, WeightMatrix w, float[] x, int nTokens) {
            calls.add("matMul " + w.dtype());
        }

        @Override
        public void rmsNorm(float[] out, float[] x, float[] weight, int width, int rows, float eps) {
            calls.add("rmsNorm");
        }

        @Override
        public void ropeNeox(float[] x, int rowStride, int rows, int nHeads, int headDim, float[] cos, float[] sin, int[] positions) {
            calls.add("rope");
        }

        @Override
        public void attention(float[] out, float[] q, float[] keys, float[] values, int kvStride, int nHeads, int nKvHeads,
                int headDim, int nPositions, float scale) {
            calls.add("attention");
        }

        @Override
        public void softmaxInPlace(float[] x, int off, int n) {
            calls.add("softmax");
        }

        @Override
        public void swiGlu(float[] out, float[] gate, float[] up, int n) {
            calls.add("swiGlu");
        }

        @Override
        public void addInPlace(float[] acc, float[] x, int n) {
            calls.add("add");
        }

        @Override
        public void routerTopK(float[] logits, int experts, int k, boolean normTopkProb, int[] ids, float[] weights, int rows) {
            calls.add("router");
        }
    }
}
