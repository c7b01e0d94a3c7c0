/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels.tornado;

import io.flinkqwen.kernels.backend.KernelBackend;
import io.flinkqwen.kernels.backend.KernelBackendProvider;
import uk.ac.manchester.tornado.api.common.TornadoDevice;
import uk.ac.manchester.tornado.api.runtime.TornadoRuntimeProvider;

/**
 * {@code --device tornado}: TornadoVM's default device. Needs the JVM started with TornadoVM's
 * argfile ({@code java @$TORNADOVM_HOME/tornado-argfile ...}, which the {@code flink-qwen}
 * launcher adds when {@code TORNADOVM_HOME} is set); without it, or without a device, {@link
 * #open} says so.
 */
public final class TornadoKernelBackendProvider implements KernelBackendProvider {

    /** TornadoVM's system property for the bytecode buffer of one task graph, in bytes. */
    static final String BYTECODE_SIZE_PROPERTY = "tornado.tvm.maxbytecodesize";

    /**
     * Set where the user has not: room for a resident step of 80 layers (Qwen2-72B); the tiny
     * test model's 3-layer step already overflows TornadoVM's default of 4096.
     */
    static final int DEFAULT_BYTECODE_SIZE = 1 << 20;

    @Override
    public String name() {
        return "tornado";
    }

    @Override
    public KernelBackend open() throws UnavailableBackendException {
        try {
            if (System.getProperty("tornado.load.api.implementation") == null) {
                throw new UnavailableBackendException(
                        "the JVM was not started with TornadoVM's argfile (java @$TORNADOVM_HOME/tornado-argfile)", null);
            }
            // TornadoVM's bytecode buffer per task graph (4 KiB by default, read once when its
            // runtime loads) overflows with a resident decode step's 9 kernels per layer
            if (System.getProperty(BYTECODE_SIZE_PROPERTY) == null) {
                System.setProperty(BYTECODE_SIZE_PROPERTY, String.valueOf(DEFAULT_BYTECODE_SIZE));
            }
            var runtime = TornadoRuntimeProvider.getTornadoRuntime();
            if (runtime.getNumBackends() == 0) {
                throw new UnavailableBackendException("TornadoVM found no backend (OpenCL, PTX, SPIR-V)", null);
            }
            TornadoDevice device = runtime.getDefaultDevice();
            return new TornadoKernelBackend("TornadoVM " + runtime.getBackendType(0) + " device "
                    + device.getPlatformName().trim() + " / " + device.getDeviceName().trim());
        } catch (UnavailableBackendException e) {
            throw e;
        } catch (RuntimeException | LinkageError e) {
            throw new UnavailableBackendException("TornadoVM did not start: " + e, e);
        }
    }
}
