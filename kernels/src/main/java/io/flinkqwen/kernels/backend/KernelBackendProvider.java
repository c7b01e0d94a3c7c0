/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels.backend;

/**
 * A backend module's entry in {@code META-INF/services/io.flinkqwen.kernels.backend.KernelBackendProvider},
 * found with {@link java.util.ServiceLoader}. Constructing a provider must be cheap and must not
 * touch a device: {@link #open} does.
 */
public interface KernelBackendProvider {

    /** The name {@code --device} selects it by, e.g. {@code tornado}. */
    String name();

    /**
     * Opens the backend on its default device.
     *
     * @throws UnavailableBackendException naming why not (no device, the runtime not started as
     *     it needs), for {@code auto} to fall back to the CPU and {@code --device NAME} to report
     */
    KernelBackend open() throws UnavailableBackendException;

    /** Why a backend cannot run here. */
    final class UnavailableBackendException extends Exception {
        private static final long serialVersionUID = 1L;

        public UnavailableBackendException(String message, Throwable cause) {
            super(message, cause);
        }
    }
}
