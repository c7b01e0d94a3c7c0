/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels;

import io.flinkqwen.kernels.backend.CpuKernelBackend;
import io.flinkqwen.kernels.backend.KernelBackend;

/** The kernel suite on the default backend, the CPU kernels. */
class CpuKernelBackendTest extends KernelBackendContract {

    @Override
    protected KernelBackend backend() {
        return CpuKernelBackend.INSTANCE;
    }
}
