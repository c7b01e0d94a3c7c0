/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.arrow;

import java.io.Serializable;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.flink.annotation.PublicEvolving;

/**
 * Where an operator takes its Arrow memory from: it asks for the parent in {@code open()} and
 * takes one child allocator of it for its lifetime. Serializable, so that it travels with the
 * operator factory; tests hand a root allocator they close afterwards (a leak test).
 */
@PublicEvolving
@FunctionalInterface
public interface AllocatorSource extends Serializable {

    /** The parent allocator; not closed by the operator. */
    BufferAllocator parent();

    /** One root allocator per class loader (per job on a Flink cluster), never closed. */
    static AllocatorSource shared() {
        return Shared::root;
    }

    /** Holder of the shared root, made on first use. */
    final class Shared {
        private static RootAllocator root;

        private Shared() {}

        static synchronized BufferAllocator root() {
            if (root == null) {
                root = new RootAllocator();
            }
            return root;
        }
    }
}
