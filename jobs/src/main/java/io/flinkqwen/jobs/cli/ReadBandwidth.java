/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.jobs.cli;

import io.flinkqwen.kernels.KernelPool;
import io.flinkqwen.kernels.VectorOps;

/**
 * A quick in-process memory read-bandwidth probe for {@code bench}: the threads of a kernel pool
 * sum a float array much larger than any last-level cache (one vectorised dot of the array with
 * itself, so each element is read once), pass after pass; the best round counts. It measures
 * what a decode step can hope for on this machine with these threads: the weights are read the
 * same way, once per token.
 */
final class ReadBandwidth {

    /** Default array size: well past the L3 of current server CPUs (tens of MiB). */
    static final long DEFAULT_BYTES = 256L << 20;

    private static final int BLOCK = 1 << 16; // floats per work item

    private ReadBandwidth() {}

    /**
     * Read GB/s (1e9 bytes) of the best round of {@code passesPerRound} passes over {@code bytes}
     * bytes, rounds repeated for about {@code budgetNanos} (at least 3).
     */
    static double measure(KernelPool pool, long bytes, int passesPerRound, long budgetNanos) {
        int n = (int) Math.min(Integer.MAX_VALUE - 8, bytes / Float.BYTES);
        n -= n % BLOCK;
        if (n <= 0) {
            throw new IllegalArgumentException("the probe needs at least " + BLOCK * Float.BYTES + " bytes, got " + bytes);
        }
        float[] a = new float[n];
        for (int i = 0; i < n; i += 1024) {
            a[i] = 1e-3f; // Java zeroed it; touching it makes every page resident before timing
        }
        double[] partial = new double[pool.threads()];
        int blocks = n / BLOCK;
        KernelPool.RangeTask pass =
                (start, end, worker) -> {
                    float s = 0;
                    for (int b = start; b < end; b++) {
                        s += VectorOps.dot(a, b * BLOCK, a, b * BLOCK, BLOCK);
                    }
                    partial[worker] += s; // used below, so the reads cannot be dropped
                };
        pool.parallelFor(blocks, pass); // warm-up: JIT, page faults
        long best = Long.MAX_VALUE;
        long deadline = System.nanoTime() + budgetNanos;
        for (int round = 0; round < 3 || System.nanoTime() < deadline; round++) {
            long t0 = System.nanoTime();
            for (int p = 0; p < passesPerRound; p++) {
                pool.parallelFor(blocks, pass);
            }
            best = Math.min(best, System.nanoTime() - t0);
        }
        double sum = 0;
        for (double p : partial) {
            sum += p;
        }
        if (!(sum > 0)) {
            throw new IllegalStateException("bandwidth probe: unexpected sum " + sum);
        }
        return (double) n * Float.BYTES * passesPerRound / best; // bytes per ns = GB/s
    }
}
