/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.weights;

/**
 * A model file or folder that cannot be used: truncated, corrupt, a missing tensor, a wrong
 * shape or dtype, a config that disagrees with the tensors. The message always names the file
 * and, where there is one, the tensor, what was expected and what was found.
 */
public class ModelFormatException extends RuntimeException {

    private static final long serialVersionUID = 1L;

    public ModelFormatException(String message) {
        super(message);
    }

    public ModelFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
