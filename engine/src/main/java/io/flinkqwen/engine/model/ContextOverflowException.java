/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.model;

/** More tokens than the model's context window (or the sequence's limit) can hold. */
public final class ContextOverflowException extends IllegalArgumentException {

    private static final long serialVersionUID = 1L;

    public ContextOverflowException(int present, int adding, int maxPositions) {
        super(
                String.format(
                        "context overflow: %d tokens in context + %d new = %d, more than the"
                                + " context length %d",
                        present, adding, (long) present + adding, maxPositions));
    }
}
