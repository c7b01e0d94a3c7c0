/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.ShortBuffer;

/**
 * Per-thread working memory of the matrix kernels: heap copies of one weight row (the Vector API
 * of JDK 17..25 can only load from heap arrays portably) and typed views of the weight buffer
 * last read.
 *
 * <p>Not thread-safe: one thread uses a scratch at a time. Buffers grow to the largest row seen
 * and are then reused, so steady-state kernel calls allocate nothing; the typed views are
 * rebuilt (two small objects) only when a call reads a different weight buffer than the last.
 *
 * <p>A scratch holds a reference to the last weight buffer it read, which keeps that buffer
 * (and its mapping) reachable while the scratch is.
 */
public final class Scratch {

    private static final ThreadLocal<Scratch> PER_THREAD = ThreadLocal.withInitial(Scratch::new);

    private float[] floats = new float[0];
    private float[] floats2 = new float[0];
    private float[] restActivations = new float[0];
    private float[] restResults = new float[0];
    // the GEMM's activation tiles, and what they hold
    private float[] tiles = new float[0];
    private final Held tilesHeld = new Held();
    // activations rounded to Q8_0 blocks (Quantize#roundQ8_0), and what they hold
    private float[] q8Values = new float[0];
    private short[] q8Ints = new short[0];
    private float[] q8Scales = new float[0];
    private final Held q8Held = new Held();
    private short[] shorts = new short[0];
    private byte[] bytes = new byte[0];

    private ByteBuffer floatSource;
    private FloatBuffer floatView;
    private ByteBuffer shortSource;
    private ShortBuffer shortView;

    public Scratch() {}

    /** The scratch of the calling thread, for kernels called without one (not hot loops). */
    static Scratch forCurrentThread() {
        return PER_THREAD.get();
    }

    /** A float array of at least {@code n} elements; contents undefined. */
    float[] floats(int n) {
        if (floats.length < n) {
            floats = new float[n];
        }
        return floats;
    }

    /** Activations of a GEMM's last few tokens ({@link MatMul#GEMM_REST}), at least {@code n} floats. */
    float[] restActivations(int n) {
        if (restActivations.length < n) {
            restActivations = new float[n];
        }
        return restActivations;
    }

    /** Results of a GEMM's last few tokens, at least {@code n} floats. */
    float[] restResults(int n) {
        if (restResults.length < n) {
            restResults = new float[n];
        }
        return restResults;
    }

    /** A second float array of at least {@code n} elements, distinct from {@link #floats}. */
    float[] floats2(int n) {
        if (floats2.length < n) {
            floats2 = new float[n];
        }
        return floats2;
    }

    /**
     * The array for a GEMM's transposed activation tiles, at least {@code n} floats; growing it
     * forgets what it held ({@link #tilesHold}).
     */
    float[] tiles(int n) {
        if (tiles.length < n) {
            tiles = new float[n];
            tilesHeld.forget();
        }
        return tiles;
    }

    /**
     * Whether {@link #tiles} holds {@code x} ({@code tokens x cols}) as transposed in matmul call
     * {@code call} (never for call 0, a call without an id); within one call x does not change.
     */
    boolean tilesHold(long call, float[] x, int tokens, int cols, boolean rounded) {
        return tilesHeld.is(call, x, tokens, cols, rounded);
    }

    /**
     * Records that {@link #tiles} now holds {@code x} as transposed in call {@code call}, its
     * values rounded to Q8_0 blocks or not.
     */
    void tilesHeld(long call, float[] x, int tokens, int cols, boolean rounded) {
        tilesHeld.set(call, x, tokens, cols, rounded);
    }

    /**
     * {@code x} ({@code tokens x cols}) rounded to Q8_0 blocks ({@link Quantize#roundQ8_0}): the
     * values in {@link #q8Values} and, for up to {@link MatMul#INT8_TOKENS} tokens, the integers in {@link #q8Ints} and the
     * block scales in {@link #q8Scales}, each from index 0. Rounds only if this scratch does not
     * hold them from the same matmul call already (never kept for call 0).
     */
    void roundQ8_0(long call, float[] x, int tokens, int cols) {
        if (q8Held.is(call, x, tokens, cols, true)) {
            return;
        }
        int n = tokens * cols;
        if (q8Values.length < n) {
            q8Values = new float[n];
            q8Ints = new short[n];
            q8Scales = new float[n / 32];
        }
        // the integers only where the int8 kernel runs: more tokens are multiplied in float
        Quantize.roundQ8_0(x, 0, n, q8Values, 0, tokens <= MatMul.INT8_TOKENS ? q8Ints : null, 0, q8Scales, 0);
        q8Held.set(call, x, tokens, cols, true);
    }

    /** The rounded values of the last {@link #roundQ8_0}. */
    float[] q8Values() {
        return q8Values;
    }

    /** The int8 values (in shorts) of the last {@link #roundQ8_0}. */
    short[] q8Ints() {
        return q8Ints;
    }

    /** The block scales of the last {@link #roundQ8_0}. */
    float[] q8Scales() {
        return q8Scales;
    }

    /** A short array of at least {@code n} elements; contents undefined. */
    short[] shorts(int n) {
        if (shorts.length < n) {
            shorts = new short[n];
        }
        return shorts;
    }

    /** A byte array of at least {@code n} elements; contents undefined. */
    byte[] bytes(int n) {
        if (bytes.length < n) {
            bytes = new byte[n];
        }
        return bytes;
    }

    /**
     * A little-endian float view of the whole of {@code chunk} (element {@code i} = bytes {@code
     * 4i..4i+3}), for absolute bulk gets; {@code chunk} itself is not modified.
     */
    FloatBuffer floatView(ByteBuffer chunk) {
        if (chunk != floatSource) {
            floatView = wholeLittleEndian(chunk).asFloatBuffer();
            floatSource = chunk;
        }
        return floatView;
    }

    /** A little-endian short view of the whole of {@code chunk}; see {@link #floatView}. */
    ShortBuffer shortView(ByteBuffer chunk) {
        if (chunk != shortSource) {
            shortView = wholeLittleEndian(chunk).asShortBuffer();
            shortSource = chunk;
        }
        return shortView;
    }

    /**
     * What a per-call buffer holds: activations {@code x} ({@code tokens x cols}), prepared in
     * one way or another ({@code variant}), in matmul call {@code call}. Within one call x does
     * not change; a call without an id (0) is never held.
     */
    private static final class Held {
        private long call;
        private float[] source;
        private int tokens;
        private int cols;
        private boolean variant;

        boolean is(long call, float[] x, int tokens, int cols, boolean variant) {
            return call != 0 && call == this.call && x == source && tokens == this.tokens && cols == this.cols
                    && variant == this.variant;
        }

        void set(long call, float[] x, int tokens, int cols, boolean variant) {
            this.call = call;
            this.source = call == 0 ? null : x;
            this.tokens = tokens;
            this.cols = cols;
            this.variant = variant;
        }

        void forget() {
            set(0, null, 0, 0, false);
        }
    }

    private static ByteBuffer wholeLittleEndian(ByteBuffer chunk) {
        // duplicate() shares the bytes but not position, limit or order (it resets to big-endian).
        ByteBuffer d = chunk.duplicate();
        d.clear();
        return d.order(ByteOrder.LITTLE_ENDIAN);
    }
}
