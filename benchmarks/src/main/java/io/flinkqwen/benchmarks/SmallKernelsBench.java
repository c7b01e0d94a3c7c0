/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.benchmarks;

import io.flinkqwen.kernels.Attention;
import io.flinkqwen.kernels.RmsNorm;
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
import org.openjdk.jmh.annotations.Warmup;

/**
 * The per-token kernels besides matMul at Qwen2-0.5B shapes: RMSNorm over the 896-wide hidden
 * state, one query head (head dim 64, 2 KV heads of a 128-wide KV row) attending over {@code
 * positions} cached positions, and the 7 query heads of one KV group (as a decode step runs
 * them) over an F32, F16 or Q8 cache. Divide a group's time by {@code 7 * positions} for ns per
 * position and head.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "-XX:+UseParallelGC"})
public class SmallKernelsBench {

    private static final int HIDDEN = 896;
    private static final int HEAD_DIM = 64;
    private static final int KV_DIM = 128;

    @Param({"128", "1024"})
    public int positions;

    private float[] x;
    private float[] weight;
    private float[] normOut;
    private float[] q;
    private float[] keys;
    private float[] values;
    private float[] scores;
    private final float[] state = new float[2];
    /** Positions per tile, as the engine's KV blocks hold them. */
    private static final int TILE = 16;
    private float[] attOut;
    private static final int GROUP = 7;
    private float[] qGroup;
    private float[] groupOut;
    private final float[] groupState = new float[2 * GROUP];
    private short[] keysF16;
    private short[] valuesF16;
    private byte[] keysQ8;
    private byte[] valuesQ8;
    private float[] keyScales;
    private float[] valueScales;
    private final float[] kvScratch = new float[Attention.kvScratchFloats(TILE, HEAD_DIM)];

    @Setup(Level.Trial)
    public void setUp() {
        Random rnd = new Random(7);
        x = random(rnd, HIDDEN);
        weight = random(rnd, HIDDEN);
        normOut = new float[HIDDEN];
        q = random(rnd, HEAD_DIM);
        keys = random(rnd, positions * KV_DIM);
        values = random(rnd, positions * KV_DIM);
        scores = new float[TILE];
        attOut = new float[HEAD_DIM];
        qGroup = random(rnd, GROUP * HEAD_DIM);
        groupOut = new float[GROUP * HEAD_DIM];
        keysF16 = new short[keys.length];
        valuesF16 = new short[values.length];
        Attention.toF16Clamped(keysF16, 0, keys, 0, keys.length);
        Attention.toF16Clamped(valuesF16, 0, values, 0, values.length);
        keysQ8 = new byte[keys.length];
        valuesQ8 = new byte[values.length];
        keyScales = new float[keys.length / Attention.Q8_GROUP];
        valueScales = new float[values.length / Attention.Q8_GROUP];
        Attention.quantizeQ8(keysQ8, keyScales, 0, keys, 0, keys.length);
        Attention.quantizeQ8(valuesQ8, valueScales, 0, values, 0, values.length);
    }

    private static float[] random(Random rnd, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) rnd.nextGaussian();
        }
        return a;
    }

    @Benchmark
    public float[] rmsNorm() {
        RmsNorm.rmsNorm(normOut, 0, x, 0, weight, HIDDEN, 1e-6f);
        return normOut;
    }

    @Benchmark
    public float[] attentionOneHead() {
        Attention.begin(attOut, 0, state, 0, 1, HEAD_DIM);
        for (int t0 = 0; t0 < positions; t0 += TILE) {
            Attention.tileF32(attOut, 0, state, 0, q, 0, 1, HEAD_DIM, keys, values, t0 * KV_DIM + HEAD_DIM, KV_DIM,
                    Math.min(TILE, positions - t0), 0.125f, scores);
        }
        Attention.finish(attOut, 0, state, 0, 1, HEAD_DIM);
        return attOut;
    }

    @Benchmark
    public float[] attentionGroupF32() {
        Attention.begin(groupOut, 0, groupState, 0, GROUP, HEAD_DIM);
        for (int t0 = 0; t0 < positions; t0 += TILE) {
            Attention.tileF32(groupOut, 0, groupState, 0, qGroup, 0, GROUP, HEAD_DIM, keys, values, t0 * KV_DIM + HEAD_DIM,
                    KV_DIM, Math.min(TILE, positions - t0), 0.125f, scores);
        }
        Attention.finish(groupOut, 0, groupState, 0, GROUP, HEAD_DIM);
        return groupOut;
    }

    @Benchmark
    public float[] attentionGroupF16() {
        Attention.begin(groupOut, 0, groupState, 0, GROUP, HEAD_DIM);
        for (int t0 = 0; t0 < positions; t0 += TILE) {
            Attention.tileF16(groupOut, 0, groupState, 0, qGroup, 0, GROUP, HEAD_DIM, keysF16, valuesF16,
                    t0 * KV_DIM + HEAD_DIM, KV_DIM, Math.min(TILE, positions - t0), 0.125f, scores, kvScratch);
        }
        Attention.finish(groupOut, 0, groupState, 0, GROUP, HEAD_DIM);
        return groupOut;
    }

    @Benchmark
    public float[] attentionGroupQ8() {
        Attention.begin(groupOut, 0, groupState, 0, GROUP, HEAD_DIM);
        for (int t0 = 0; t0 < positions; t0 += TILE) {
            Attention.tileQ8(groupOut, 0, groupState, 0, qGroup, 0, GROUP, HEAD_DIM, keysQ8, keyScales, valuesQ8,
                    valueScales, t0 * KV_DIM + HEAD_DIM, KV_DIM, Math.min(TILE, positions - t0), 0.125f, scores,
                    kvScratch);
        }
        Attention.finish(groupOut, 0, groupState, 0, GROUP, HEAD_DIM);
        return groupOut;
    }
}
