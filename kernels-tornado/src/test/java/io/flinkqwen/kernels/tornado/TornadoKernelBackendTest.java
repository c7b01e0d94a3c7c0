/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels.tornado;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.KernelBackendContract;
import io.flinkqwen.kernels.KernelPool;
import io.flinkqwen.kernels.WeightMatrix;
import io.flinkqwen.kernels.backend.KernelBackend;
import io.flinkqwen.kernels.backend.KernelBackendProvider;
import io.flinkqwen.kernels.backend.KernelBackends;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The kernel suite on TornadoVM's default device (PoCL's CPU device where no GPU is present).
 * Runs with {@code -Dtornado.recover.bailout=false} (the profile's argLine): a kernel that
 * TornadoVM cannot compile fails here instead of running as sequential Java.
 */
class TornadoKernelBackendTest extends KernelBackendContract {

    private static TornadoKernelBackend backend;
    private static String unavailable;

    @BeforeAll
    static void open() {
        try {
            backend = (TornadoKernelBackend) new TornadoKernelBackendProvider().open();
        } catch (KernelBackendProvider.UnavailableBackendException e) {
            unavailable = e.getMessage();
        }
    }

    @AfterAll
    static void close() {
        if (backend != null) {
            backend.close();
        }
    }

    @Override
    protected KernelBackend backend() {
        Assumptions.assumeTrue(backend != null, () -> "no TornadoVM device: " + unavailable);
        return backend;
    }

    @Test
    void isFoundThroughServiceLoader() {
        Assumptions.assumeTrue(backend != null, () -> "no TornadoVM device: " + unavailable);
        assertEquals("tornado", KernelBackends.providers().get("tornado").name());
        assertEquals("tornado", KernelBackends.select("tornado").name());
    }

    @Test
    void repeatedCallsReuseTheCompiledPlans() {
        KernelBackend b = backend();
        WeightMatrix w = WeightMatrix.onHeap(DType.F16, 4, 8, new byte[64]);
        float[] out = new float[8];
        b.matMul(KernelPool.serial(), out, w, new float[16], 2);
        int built = backend.graphsBuilt();
        for (int i = 0; i < 3; i++) {
            b.matMul(KernelPool.serial(), out, w, new float[16], 1 + i % 2);
        }
        assertEquals(built, backend.graphsBuilt());
    }
}
