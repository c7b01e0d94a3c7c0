/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.kernels.backend.CpuKernelBackend;
import io.flinkqwen.kernels.backend.KernelBackend;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The CPU kernels with Q8_0 activations left unrounded (the reference for device backends that
 * do not round them) keep the backend contract, and do differ from the rounding ones.
 */
class CpuFloatActivationsBackendTest extends KernelBackendContract {

    @Override
    protected KernelBackend backend() {
        return CpuKernelBackend.FLOAT_ACTIVATIONS;
    }

    @Test
    void roundingIsWhatTellsTheTwoCpuBackendsApart() {
        assertTrue(CpuKernelBackend.INSTANCE.roundsQ8_0Activations());
        assertFalse(CpuKernelBackend.FLOAT_ACTIVATIONS.roundsQ8_0Activations());
        Random rnd = new Random(7);
        int rows = 16;
        int cols = 256;
        WeightMatrix w = WeightMatrix.onHeap(DType.Q8_0, rows, cols,
                TestMatrices.encode(DType.Q8_0, TestMatrices.weights(rnd, rows, cols), rows, cols));
        for (int n : new int[] {1, 4, 20}) {
            float[] x = Numerics.uniform(rnd, n * cols, 1f);
            float[] rounded = new float[n * rows];
            float[] plain = new float[n * rows];
            CpuKernelBackend.INSTANCE.matMul(KernelPool.serial(), rounded, w, x, n);
            CpuKernelBackend.FLOAT_ACTIVATIONS.matMul(KernelPool.serial(), plain, w, x, n);
            double worst = 0;
            for (int i = 0; i < plain.length; i++) {
                worst = Math.max(worst, Math.abs(rounded[i] - plain[i]));
            }
            // rounding x to 1/254 of a block's max moves a 256-term sum by ~1e-2: far above float error
            assertTrue(worst > 1e-3, n + " tokens: rounded and plain Q8_0 products differ by only " + worst);
        }
    }
}
