/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.benchmarks;

import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.KernelPool;
import io.flinkqwen.kernels.MatMul;
import io.flinkqwen.kernels.Quantize;
import io.flinkqwen.kernels.WeightMatrix;
import java.nio.ByteBuffer;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * {@link MatMul#matMul} at the Qwen2-0.5B projection shapes (rows x cols: q/o 896x896, k/v
 * 128x896, gate/up 4864x896, down 896x4864, LM head 151936x896), per weight format, thread count
 * and token count (1 = decode, 64 = a prefill chunk). Weights sit in a direct buffer, as a mapped
 * GGUF file's do. Bytes per call = {@code rows x rowBytes}: divide by the time for GB/s.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "-XX:+UseParallelGC"})
public class MatMulBench {

    @Param({"Q8_0", "F16", "Q4_0", "F32"})
    public String dtype;

    @Param({"896x896", "128x896", "4864x896", "896x4864", "151936x896"})
    public String shape;

    @Param({"1", "2"})
    public int threads;

    @Param({"1", "64"})
    public int tokens;

    /** Whether the matrix is packed onto the heap ({@link WeightMatrix#packOnHeap}), as models are by default. */
    @Param({"true", "false"})
    public boolean packed;

    private KernelPool pool;
    private WeightMatrix w;
    private float[] x;
    private float[] out;

    @Setup(Level.Trial)
    public void setUp() {
        String[] rc = shape.split("x");
        int rows = Integer.parseInt(rc[0]);
        int cols = Integer.parseInt(rc[1]);
        DType type = DType.valueOf(dtype);
        int rowBytes = Math.toIntExact(type.rowBytes(cols));
        ByteBuffer data = ByteBuffer.allocateDirect(rows * rowBytes);
        Random rnd = new Random(42);
        float[] values = new float[cols];
        byte[] row = new byte[rowBytes];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                values[c] = (float) rnd.nextGaussian() * 0.02f;
            }
            Quantize.quantizeRow(type, values, 0, cols, row, 0);
            data.put(row);
        }
        data.flip();
        w = WeightMatrix.of(type, rows, cols, data);
        if (packed) {
            w = w.packOnHeap();
        }
        x = new float[tokens * cols];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) rnd.nextGaussian();
        }
        out = new float[tokens * rows];
        pool = new KernelPool(threads);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        pool.close();
    }

    @Benchmark
    public float[] matMul() {
        MatMul.matMul(pool, out, w, x, tokens);
        return out;
    }
}
