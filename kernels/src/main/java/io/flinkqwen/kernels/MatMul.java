/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels;

import static io.flinkqwen.kernels.Simd.F;
import static io.flinkqwen.kernels.Simd.L;

import java.nio.ByteBuffer;
import java.nio.FloatBuffer;
import java.nio.ShortBuffer;
import java.util.concurrent.atomic.AtomicLong;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Weights times activations: {@code out[t][r] = sum_c W[r][c] * x[t][c]} for a {@link
 * WeightMatrix} {@code W} of any {@link DType} and {@code nTokens} activation rows.
 *
 * <p>Layouts: {@code x} is {@code [nTokens][W.cols()]} and {@code out} is {@code
 * [nTokens][W.rows()]}, both row-major from index 0 ({@code out[t * rows + r]}). Only {@code
 * out[0 .. nTokens * rows)} is written; weights and {@code x} are only read. {@code out} must
 * not overlap {@code x}.
 *
 * <p>Rows are read from the heap arrays of a packed matrix ({@link WeightMatrix#packOnHeap}) or,
 * for a mapped one, copied into per-thread heap scratch with one absolute bulk get.
 *
 * <p>Q8_0 matrices multiply the activations rounded to Q8_0 blocks ({@link Quantize#roundQ8_0}),
 * as ggml's CPU backend does, unless the caller asks for the float activations as they are
 * ({@code roundQ8_0} false). Paths, by token count:
 *
 * <ul>
 *   <li>one token (decode): each row dotted as stored (Q8_0: int8 weights times the int8
 *       activations, summed exactly per block, two rows at once, see {@link #dotQ8_0Ints}; F16
 *       bits shifted into floats, see {@link #dotF16Scaled});
 *   <li>up to {@link #INT8_TOKENS} tokens of a Q8_0 matrix: the one-token path, token after
 *       token, so that a token gets the bits it gets alone;
 *   <li>up to {@link #GEMM_MIN} tokens (a decode batch, a MoE expert's share of a prefill):
 *       rows decoded to floats in pairs and dotted with four tokens per pass ({@link
 *       #fewTokenRows});
 *   <li>more (prefill): a small GEMM with the tokens across the vector lanes ({@link
 *       #gemmRows}), in tiles of 2L tokens; a last tile of at most {@link #GEMM_REST} tokens
 *       goes to the paths above instead.
 * </ul>
 *
 * <p>Sums are kept in float (FMA; Q8_0 one-token blocks in exact integers first), so results
 * differ from a sequential float sum by rounding only, and a given token count gives the same
 * bits whatever the thread count or weight layout.
 * F16 weights that are infinite or NaN are not supported by the vector paths (see {@link
 * Simd#halfToFloat}); the scalar twin handles them.
 */
public final class MatMul {

    private static final int QK = 32;
    /**
     * Above this many tokens {@link #gemmRows} runs, else {@link #fewTokenRows}: its tiles of 2L
     * tokens are mostly padding just above L (a Q8_0 704x1024 expert matrix, per-core CPU time:
     * 9 tokens 8.9 GMAC/s in the GEMM vs 13.6 in row pairs; 12 tokens 25.0 vs 18.0).
     */
    static final int GEMM_MIN = L + L / 4;

    /**
     * A GEMM of more than 2L tokens whose last tile would hold at most this many leaves them to
     * the few-token paths, as a batch of their own: a tile costs about as much with one token
     * as with L (the rows are decoded and every column multiplied for the whole vector). A Q8_0
     * 708x1024 expert matrix, per core: 17 tokens 557 us in tiles against 383 us split; 20
     * tokens 560 against 484; 24 tokens gain nothing (572 against 587).
     */
    static final int GEMM_REST = L / 2;

    /**
     * Weight bytes copied to scratch per bulk get on the one-token path: a few rows, small
     * enough to stay in L1/L2 while they are dotted.
     */
    static final int COPY_BYTES = 16 * 1024;

    private static final ThreadLocal<RowsTask> TASKS = ThreadLocal.withInitial(RowsTask::new);
    private static final ThreadLocal<ManyTask> MANY_TASKS = ThreadLocal.withInitial(ManyTask::new);
    /**
     * Ids of pool calls: a worker that runs several pieces of one call transposes each input's
     * activations for the GEMM once ({@link Scratch#tilesHold}), not once per piece.
     */
    private static final AtomicLong CALLS = new AtomicLong();

    private MatMul() {}

    /**
     * {@code out = W x} for {@code nTokens} activation rows, the rows of {@code W} split over the
     * threads of {@code pool} (each worker uses its own {@link KernelPool#scratch}). Allocates
     * nothing once the workers' scratch has grown to this row size.
     */
    public static void matMul(KernelPool pool, float[] out, WeightMatrix w, float[] x, int nTokens) {
        matMul(pool, out, w, x, nTokens, true);
    }

    /**
     * {@link #matMul}, with {@code roundQ8_0} false a Q8_0 matrix multiplies the float
     * activations as they are (as a device backend that does not round them does; see {@code
     * KernelBackend.roundsQ8_0Activations}).
     */
    public static void matMul(KernelPool pool, float[] out, WeightMatrix w, float[] x, int nTokens, boolean roundQ8_0) {
        checkShapes(out, w, x, nTokens);
        RowsTask task = TASKS.get();
        task.set(pool, out, w, x, nTokens);
        task.round = roundQ8_0;
        try {
            pool.parallelFor(w.rows(), task);
        } finally {
            task.clear();
        }
    }

    /**
     * {@code outs[i] = ws[i] x} for several matrices that read the same activations (q/k/v,
     * gate/up), in one hand-off to the pool: the rows of all matrices form one range split over
     * the threads, so the pool wakes and waits once instead of once per matrix. Each result is
     * exactly what {@link #matMul} gives for that matrix.
     *
     * @throws IllegalArgumentException if the matrices' column counts differ
     */
    public static void matMulMany(KernelPool pool, float[][] outs, WeightMatrix[] ws, float[] x, int nTokens) {
        matMulMany(pool, outs, ws, x, nTokens, true);
    }

    /** {@link #matMulMany}, rounding Q8_0 activations or not as {@link #matMul(KernelPool, float[], WeightMatrix, float[], int, boolean)}. */
    public static void matMulMany(
            KernelPool pool, float[][] outs, WeightMatrix[] ws, float[] x, int nTokens, boolean roundQ8_0) {
        if (outs.length != ws.length) {
            throw new IllegalArgumentException(outs.length + " outputs for " + ws.length + " matrices");
        }
        int total = 0;
        for (int i = 0; i < ws.length; i++) {
            if (ws[i].cols() != ws[0].cols()) {
                throw new IllegalArgumentException(
                        "matrices read the same activations: " + ws[0] + " and " + ws[i] + " differ in columns");
            }
            checkShapes(outs[i], ws[i], x, nTokens);
            total += ws[i].rows();
        }
        ManyTask task = MANY_TASKS.get();
        task.set(pool, outs, ws, x, null, ws.length, nTokens);
        task.round = roundQ8_0;
        try {
            pool.parallelFor(total, task);
        } finally {
            task.clear();
        }
    }

    /**
     * {@code outs[i] = ws[i] xs[i]} for several matrices with inputs of their own (the down
     * projections of a token's experts), in one hand-off to the pool, as {@link #matMulMany}
     * does for a shared input. Each result is exactly what {@link #matMul} gives for that pair.
     */
    public static void matMulEach(KernelPool pool, float[][] outs, WeightMatrix[] ws, float[][] xs, int nTokens) {
        matMulEach(pool, outs, ws, xs, ws.length, nTokens);
    }

    /** {@link #matMulEach} for the first {@code count} matrices of the arrays only. */
    public static void matMulEach(
            KernelPool pool, float[][] outs, WeightMatrix[] ws, float[][] xs, int count, int nTokens) {
        if (outs.length < count || ws.length < count || xs.length < count) {
            throw new IllegalArgumentException(
                    count + " products need as many outputs, matrices and inputs, got " + outs.length + ", "
                            + ws.length + ", " + xs.length);
        }
        int total = 0;
        for (int i = 0; i < count; i++) {
            checkShapes(outs[i], ws[i], xs[i], nTokens);
            total += ws[i].rows();
        }
        ManyTask task = MANY_TASKS.get();
        task.set(pool, outs, ws, null, xs, count, nTokens);
        try {
            pool.parallelFor(total, task);
        } finally {
            task.clear();
        }
    }

    /**
     * {@link #matMulEach} where matrix {@code i} multiplies {@code tokens[i]} activation rows (the
     * experts of a MoE layer, each with the tokens routed to it; 0 skips the matrix). The pool
     * splits the work, not the rows, evenly: a row of matrix {@code i} weighs {@code tokens[i]}.
     */
    public static void matMulEach(
            KernelPool pool, float[][] outs, WeightMatrix[] ws, float[][] xs, int[] tokens, int count) {
        matMulEach(pool, outs, ws, xs, tokens, count, true);
    }

    /** {@link #matMulEach}, rounding Q8_0 activations or not as {@link #matMul(KernelPool, float[], WeightMatrix, float[], int, boolean)}. */
    public static void matMulEach(KernelPool pool, float[][] outs, WeightMatrix[] ws, float[][] xs, int[] tokens, int count,
            boolean roundQ8_0) {
        if (outs.length < count || ws.length < count || xs.length < count || tokens.length < count) {
            throw new IllegalArgumentException(
                    count + " products need as many outputs, matrices, inputs and token counts, got " + outs.length
                            + ", " + ws.length + ", " + xs.length + ", " + tokens.length);
        }
        long total = 0;
        for (int i = 0; i < count; i++) {
            if (tokens[i] < 0) {
                throw new IllegalArgumentException("product " + i + " has " + tokens[i] + " tokens");
            }
            if (tokens[i] > 0) {
                checkShapes(outs[i], ws[i], xs[i], tokens[i]);
                total += (long) ws[i].rows() * tokens[i];
            }
        }
        if (total == 0) {
            return;
        }
        ManyTask task = MANY_TASKS.get();
        task.set(pool, outs, ws, null, xs, count, 0);
        task.tokensEach = tokens;
        task.round = roundQ8_0;
        try {
            pool.parallelFor(Math.toIntExact(total), task);
        } finally {
            task.clear();
        }
    }

    /**
     * {@code out = W x} for the weight rows {@code [rowStart, rowEnd)} only, on the calling
     * thread: what one worker of {@link #matMul} runs. Writes {@code out[t * rows + r]} for those
     * rows and every token.
     */
    public static void matMulRows(
            float[] out, WeightMatrix w, float[] x, int nTokens, int rowStart, int rowEnd, Scratch scratch) {
        matMulRows(out, w, x, nTokens, rowStart, rowEnd, scratch, 0, true);
    }

    /**
     * {@link #matMulRows} as a piece of pool call {@code call} (0: none), Q8_0 activations
     * rounded or not.
     */
    private static void matMulRows(float[] out, WeightMatrix w, float[] x, int nTokens, int rowStart, int rowEnd,
            Scratch scratch, long call, boolean round) {
        checkShapes(out, w, x, nTokens);
        checkRange(w, rowStart, rowEnd);
        DType type = w.dtype();
        if ((type == DType.F16 || type == DType.BF16) && !Simd.HALF_VECTORS
                || type.isQuantized() && !Simd.QUANT_VECTORS) {
            matMulRowsScalar(out, w, x, nTokens, rowStart, rowEnd, scratch, round);
            return;
        }
        boolean q8 = type == DType.Q8_0 && round;
        if (nTokens > GEMM_MIN) {
            int rest = nTokens % (2 * L);
            if (nTokens > 2 * L && rest <= GEMM_REST && rest > 0) {
                gemmRows(out, w, x, nTokens - rest, rowStart, rowEnd, scratch, call, q8);
                restRows(out, w, x, nTokens - rest, rest, rowStart, rowEnd, scratch, round);
                return;
            }
            gemmRows(out, w, x, nTokens, rowStart, rowEnd, scratch, call, q8);
            return;
        }
        if (q8) {
            scratch.roundQ8_0(call, x, nTokens, w.cols());
            x = scratch.q8Values();
        }
        boolean ints = q8 && INT8_DOTS && nTokens <= INT8_TOKENS;
        if (nTokens > 1 && !ints) {
            // a decode batch: too few tokens to fill the GEMM's token vectors
            fewTokenRows(out, w, x, nTokens, rowStart, rowEnd, scratch);
            return;
        }
        PackedRows packed = w.packed();
        if (packed != null && ints) {
            // token after token: the 1-token method as decode compiles it (a token loop inside
            // it changed C2's inlining there, and decode steps allocated boxed vectors)
            int cols = w.cols();
            for (int t = 0; t < nTokens; t++) {
                dotRowsQ8_0Ints(out, t * w.rows(), w, packed, rowStart, rowEnd, scratch.q8Ints(), t * cols,
                        scratch.q8Scales(), t * (cols / QK), scratch.floats(2 * (cols / QK)));
            }
            return;
        }
        if (packed != null) {
            dotRowsPacked(out, w, packed, x, rowStart, rowEnd, scratch);
            return;
        }
        int group = Math.max(1, COPY_BYTES / w.rowBytes());
        for (int r = rowStart; r < rowEnd; ) {
            // a group never crosses a chunk: its rows are contiguous bytes of one buffer
            int chunkEnd = (r / w.rowsPerChunk() + 1) * w.rowsPerChunk();
            int end = Math.min(Math.min(rowEnd, chunkEnd), r + group);
            dotRows(out, w, r, end, x, nTokens, scratch, q8);
            r = end;
        }
    }

    /**
     * The last {@code rest} tokens of a GEMM, from token {@code from} on, as a batch of their own
     * ({@link #GEMM_REST}): copied to scratch, multiplied there (never from a per-call cache:
     * the copy's array is the same for every matrix), the results copied back.
     */
    private static void restRows(float[] out, WeightMatrix w, float[] x, int from, int rest, int rowStart, int rowEnd,
            Scratch scratch, boolean round) {
        int rows = w.rows();
        int cols = w.cols();
        float[] rx = scratch.restActivations(rest * cols);
        float[] ro = scratch.restResults(rest * rows);
        System.arraycopy(x, from * cols, rx, 0, rest * cols);
        matMulRows(ro, w, rx, rest, rowStart, rowEnd, scratch, 0, round);
        for (int t = 0; t < rest; t++) {
            System.arraycopy(ro, t * rows + rowStart, out, (from + t) * rows + rowStart, rowEnd - rowStart);
        }
    }

    /**
     * Scalar twin of {@link #matMulRows}: each row decoded with {@link
     * Quantize#dequantizeRowScalar} (typed reads, {@link Float16}), then plain float loops.
     */
    public static void matMulRowsScalar(
            float[] out, WeightMatrix w, float[] x, int nTokens, int rowStart, int rowEnd, Scratch scratch) {
        matMulRowsScalar(out, w, x, nTokens, rowStart, rowEnd, scratch, true);
    }

    /** {@link #matMulRowsScalar}, Q8_0 activations rounded or not. */
    public static void matMulRowsScalar(float[] out, WeightMatrix w, float[] x, int nTokens, int rowStart, int rowEnd,
            Scratch scratch, boolean roundQ8_0) {
        checkShapes(out, w, x, nTokens);
        checkRange(w, rowStart, rowEnd);
        int rows = w.rows();
        int cols = w.cols();
        float[] row = scratch.floats(cols);
        if (w.dtype() == DType.Q8_0 && roundQ8_0) {
            float[] rounded = scratch.floats2(nTokens * cols);
            Quantize.roundQ8_0Scalar(x, 0, nTokens * cols, rounded, 0, null, 0, null, 0);
            x = rounded;
        }
        for (int r = rowStart; r < rowEnd; r++) {
            Quantize.dequantizeRowScalar(row, 0, w, r);
            for (int t = 0; t < nTokens; t++) {
                float sum = 0f;
                int xo = t * cols;
                for (int c = 0; c < cols; c++) {
                    sum += row[c] * x[xo + c];
                }
                out[t * rows + r] = sum;
            }
        }
    }

    // ---- packed matrices: rows read straight from the heap arrays ----

    /** {@code out[r] = W[r] . x} for one token and the rows {@code [rowStart, rowEnd)} of a packed matrix. */
    private static void dotRowsPacked(
            float[] out, WeightMatrix w, PackedRows p, float[] x, int rowStart, int rowEnd, Scratch scratch) {
        int cols = w.cols();
        int rpb = p.rowsPerBlock;
        float[] xs = p.dtype == DType.F16 ? Simd.scaleForHalves(x, cols, scratch.floats2(cols)) : null;
        int spr = cols / QK;
        for (int r = rowStart; r < rowEnd; r++) {
            int b = r / rpb;
            int i = r - b * rpb;
            switch (p.dtype) {
                case Q8_0:
                    out[r] = dotQ8_0Packed(p.quants[b], i * cols, p.scales[b], i * spr, x, 0, cols);
                    break;
                case F16:
                    out[r] = dotF16Scaled(p.halves[b], i * cols, xs, 0, cols);
                    break;
                case BF16:
                    out[r] = dotBF16(p.halves[b], i * cols, x, 0, cols);
                    break;
                case F32:
                    out[r] = VectorOps.dot(p.floats[b], i * cols, x, 0, cols);
                    break;
                default:
                    throw new UnsupportedOperationException("matMul of packed " + p.dtype);
            }
        }
    }

    /**
     * Whether the one-token Q8_0 path multiplies int8 weights with int8 activations ({@link
     * #dotQ8_0Ints}): where 256-bit vectors are native (x86 AVX2 and up). Elsewhere it dots the
     * weights with the rounded activations as floats: the same values, summed in float.
     */
    static final boolean INT8_DOTS = F.vectorBitSize() >= 256;

    /**
     * Up to this many tokens (with {@link #INT8_DOTS}), a Q8_0 matrix multiplies each token as
     * the one-token path does, token after token: a MoE expert's share of a prefill chunk is
     * often this small. Per core, 704x1024: 2 tokens 92 against 119-123 us in {@link
     * #fewTokenRows} (whose row decoding to floats costs about two cycles per eight weights
     * whatever the token count), 3 tokens 138 against 172-175; at 4 tokens the float path wins
     * (184 against 148).
     */
    static final int INT8_TOKENS = 3;

    private static final VectorSpecies<Byte> B128 = ByteVector.SPECIES_128;
    private static final VectorSpecies<Short> S256 = ShortVector.SPECIES_256;
    private static final VectorSpecies<Float> F256 = FloatVector.SPECIES_256;

    /**
     * {@code out[r] = W[r] . x} for one token and the rows {@code [rowStart, rowEnd)} of a packed
     * Q8_0 matrix, {@code x} rounded to Q8_0 blocks ({@code xq}, {@code xd}). Rows go in pairs
     * from the two halves of the range, so that two streams of weights are read at once: with
     * one, a core waited on memory between blocks (two: 1.1-1.3x as fast, measured on 64 MiB
     * matrices). A row's result does not depend on its partner.
     */
    private static void dotRowsQ8_0Ints(float[] out, int outOff, WeightMatrix w, PackedRows p, int rowStart,
            int rowEnd, short[] xq, int xo, float[] xd, int xdo, float[] scales) {
        int cols = w.cols();
        int spr = cols / QK;
        int rpb = p.rowsPerBlock;
        int n = rowEnd - rowStart;
        int half = (n + 1) / 2;
        for (int i = 0; i < half; i++) {
            int r = rowStart + i;
            // the middle row of an odd range goes with itself
            int r2 = i + half < n ? rowStart + i + half : r;
            int b = r / rpb;
            int b2 = r2 / rpb;
            int i1 = r - b * rpb;
            int i2 = r2 - b2 * rpb;
            timesActivationScales(scales, 0, p.scales[b], i1 * spr, xd, xdo, spr);
            timesActivationScales(scales, spr, p.scales[b2], i2 * spr, xd, xdo, spr);
            dotQ8_0Ints(out, outOff + r, p.quants[b], i1 * cols, scales, 0, outOff + r2, p.quants[b2], i2 * cols,
                    scales, spr, xq, xo, cols, QK);
        }
    }

    /**
     * {@code dst[d0 + b] = s[s0 + b] * xd[b]} for a row's {@code n} blocks: the weight scale
     * times the activation scale, once per row rather than once per block in the dot's loop
     * (1.03-1.05x on a 64 MiB matrix).
     */
    private static void timesActivationScales(float[] dst, int d0, float[] s, int s0, float[] xd, int x0, int n) {
        int b = 0;
        for (; b < F.loopBound(n); b += L) {
            FloatVector.fromArray(F, s, s0 + b).mul(FloatVector.fromArray(F, xd, x0 + b)).intoArray(dst, d0 + b);
        }
        for (; b < n; b++) {
            dst[d0 + b] = s[s0 + b] * xd[x0 + b];
        }
    }

    /**
     * {@link #dotRowsQ8_0Ints} for rows {@code [r0, r0 + n)} copied from a mapped matrix into
     * {@code q} (34-byte blocks: F16 scale, then 32 bytes), their scales first widened and
     * multiplied by the activations' into {@code scales}: the same arithmetic, so the same bits
     * as the packed layout.
     */
    private static void dotRowsQ8_0IntsMapped(float[] out, int rows, int r0, int n, byte[] q, int rowBytes, int cols,
            int nTokens, float[] scales, short[] xq, float[] xd) {
        int spr = cols / QK;
        for (int i = 0; i < n; i++) {
            for (int t = 0; t < nTokens; t++) {
                for (int b = 0; b < spr; b++) {
                    scales[(t * n + i) * spr + b] = Simd.scaleAt(q, i * rowBytes + b * 34) * xd[t * spr + b];
                }
            }
        }
        int half = (n + 1) / 2;
        for (int t = 0; t < nTokens; t++) {
            for (int i = 0; i < half; i++) {
                int j = i + half < n ? i + half : i;
                dotQ8_0Ints(out, t * rows + r0 + i, q, i * rowBytes + 2, scales, (t * n + i) * spr,
                        t * rows + r0 + j, q, j * rowBytes + 2, scales, (t * n + j) * spr, xq, t * cols, cols, 34);
            }
        }
    }

    /**
     * Two rows of int8 weights (blocks of 32 every {@code stride} bytes) dotted with int8
     * activations {@code xq}: {@code out[r1]} and {@code out[r2]}; {@code s1}, {@code s2} hold
     * per block the weight scale times the activations' scale. Per block the products of bytes
     * j and j + 16 are added in 16 bits (|w x| <= 128 * 127, so a sum of two fits), the pairs of
     * those in 32 bits, exactly; the block's 8 integer lanes are converted to float and added
     * with weight {@code s} (FMA). The Vector API has no multiply-add of byte or short pairs
     * (x86's pmaddubsw, pmaddwd), hence the shifts.
     */
    private static void dotQ8_0Ints(float[] out, int r1, byte[] q1, int qo1, float[] s1, int so1,
            int r2, byte[] q2, int qo2, float[] s2, int so2, short[] xq, int xo, int n, int stride) {
        FloatVector acc1 = FloatVector.zero(F256);
        FloatVector acc2 = acc1;
        for (int b = 0; b < n / QK; b++) {
            int o1 = qo1 + b * stride;
            int o2 = qo2 + b * stride;
            ShortVector xa = ShortVector.fromArray(S256, xq, xo + b * QK);
            ShortVector xb = ShortVector.fromArray(S256, xq, xo + b * QK + 16);
            ShortVector p1 = widen(q1, o1).mul(xa).add(widen(q1, o1 + 16).mul(xb));
            ShortVector p2 = widen(q2, o2).mul(xa).add(widen(q2, o2 + 16).mul(xb));
            acc1 = pairSums(p1).fma(FloatVector.broadcast(F256, s1[so1 + b]), acc1);
            acc2 = pairSums(p2).fma(FloatVector.broadcast(F256, s2[so2 + b]), acc2);
        }
        out[r1] = acc1.reduceLanes(VectorOperators.ADD);
        out[r2] = acc2.reduceLanes(VectorOperators.ADD);
    }

    /** 16 bytes from {@code q[o]} sign-extended to 16 shorts. */
    private static ShortVector widen(byte[] q, int o) {
        return (ShortVector) ByteVector.fromArray(B128, q, o).convertShape(VectorOperators.B2S, S256, 0);
    }

    /** Lanes 2i and 2i + 1 of 16 shorts added as ints, as 8 floats (exact: |sum| < 2^16). */
    private static FloatVector pairSums(ShortVector p) {
        IntVector v = p.reinterpretAsInts();
        IntVector low = v.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16);
        return (FloatVector) low.add(v.lanewise(VectorOperators.ASHR, 16)).convert(VectorOperators.I2F, 0);
    }

    private static float f16Tail(float sum, short[] h, int ho, float[] xs, int xo, int from, int n) {
        for (int c = from; c < n; c++) {
            sum += Float16.toFloat(h[ho + c]) * (xs[xo + c] * Simd.HALF_X_UNSCALE);
        }
        return sum;
    }

    /**
     * Dot of a packed Q8_0 row (int8 weights {@code q[qo..qo + n)}, one float scale per 32 in
     * {@code s[so..)}) with {@code x[0..n)}: per block the bytes are widened to floats and dotted
     * with x, then the block sum is scaled. The blocks start on 32-byte boundaries of the row.
     */
    static float dotQ8_0Packed(byte[] q, int qo, float[] s, int so, float[] x, int xo0, int n) {
        if (Simd.B.length() == 8 && Simd.BYTE_PARTS == 1) {
            return dotQ8_0Packed8(q, qo, s, so, x, xo0, n);
        }
        int step = Simd.B.length();
        FloatVector acc = FloatVector.zero(F);
        for (int b = 0; b < n / QK; b++) {
            int o = qo + b * QK;
            int xo = xo0 + b * QK;
            FloatVector block = FloatVector.zero(F);
            for (int j = 0; j < QK; j += step) {
                ByteVector bytes = Simd.loadBytes(q, o + j);
                for (int p = 0; p < Simd.BYTE_PARTS; p++) {
                    block = Simd.bytesToFloat(bytes, p).fma(FloatVector.fromArray(F, x, xo + j + p * L), block);
                }
            }
            acc = block.fma(FloatVector.broadcast(F, s[so + b]), acc);
        }
        return acc.reduceLanes(VectorOperators.ADD);
    }

    /**
     * {@link #dotQ8_0Packed} for 8 float lanes (AVX2), the block's four loads written out: the
     * JIT does not unroll the inner loop itself, and unrolled it runs about 1.3x faster. Same
     * FMAs in the same order as the loop, so the same bits.
     */
    private static float dotQ8_0Packed8(byte[] q, int qo, float[] s, int so, float[] x, int xo0, int n) {
        FloatVector acc = FloatVector.zero(F);
        for (int b = 0; b < n / QK; b++) {
            int o = qo + b * QK;
            int xo = xo0 + b * QK;
            FloatVector block = Simd.bytesToFloat(Simd.loadBytes(q, o), 0).mul(FloatVector.fromArray(F, x, xo));
            block = Simd.bytesToFloat(Simd.loadBytes(q, o + 8), 0).fma(FloatVector.fromArray(F, x, xo + 8), block);
            block = Simd.bytesToFloat(Simd.loadBytes(q, o + 16), 0).fma(FloatVector.fromArray(F, x, xo + 16), block);
            block = Simd.bytesToFloat(Simd.loadBytes(q, o + 24), 0).fma(FloatVector.fromArray(F, x, xo + 24), block);
            acc = block.fma(FloatVector.broadcast(F, s[so + b]), acc);
        }
        return acc.reduceLanes(VectorOperators.ADD);
    }

    /**
     * Dot of {@code n} F16 weights {@code h[ho..ho + n)} with x, given {@code xs = x * 2^56}
     * ({@link Simd#scaleForHalves}). Each half is placed in a float's bits by a shift and a mask
     * only ({@link Simd#halfBitsScaled}: the value times 2^-112, no multiply), so the products are
     * {@code w * x * 2^-56} and the sum is scaled back by 2^56 at the end. Scaling by powers of
     * two is exact, so this is the same float arithmetic as dotting the decoded weights with x,
     * barring products below 2^-70 in magnitude (then subnormal: absolute error under 2^-149 *
     * 2^56). Infinite and NaN halves are not supported, as in {@link Simd#halfToFloat}.
     */
    static float dotF16Scaled(short[] h, int ho, float[] xs, int xo, int n) {
        // four accumulators: with two, the FMA latency chain (not loads) bounded the loop
        FloatVector acc0 = FloatVector.zero(F);
        FloatVector acc1 = acc0;
        FloatVector acc2 = acc0;
        FloatVector acc3 = acc0;
        int c = 0;
        int upper4 = n - n % (4 * L);
        for (; c < upper4; c += 4 * L) {
            acc0 = Simd.halfBitsScaled(ShortVector.fromArray(Simd.S, h, ho + c)).fma(FloatVector.fromArray(F, xs, xo + c), acc0);
            acc1 = Simd.halfBitsScaled(ShortVector.fromArray(Simd.S, h, ho + c + L))
                    .fma(FloatVector.fromArray(F, xs, xo + c + L), acc1);
            acc2 = Simd.halfBitsScaled(ShortVector.fromArray(Simd.S, h, ho + c + 2 * L))
                    .fma(FloatVector.fromArray(F, xs, xo + c + 2 * L), acc2);
            acc3 = Simd.halfBitsScaled(ShortVector.fromArray(Simd.S, h, ho + c + 3 * L))
                    .fma(FloatVector.fromArray(F, xs, xo + c + 3 * L), acc3);
        }
        for (; c < F.loopBound(n); c += L) {
            acc0 = Simd.halfBitsScaled(ShortVector.fromArray(Simd.S, h, ho + c)).fma(FloatVector.fromArray(F, xs, xo + c), acc0);
        }
        float sum = acc0.add(acc1).add(acc2.add(acc3)).reduceLanes(VectorOperators.ADD);
        return f16Tail(sum * Simd.HALF_SCALE_BACK, h, ho, xs, xo, c, n);
    }

    // ---- one token: dot the stored row with x ----

    /**
     * {@code out[r] = W[r] . x} for the rows {@code [r0, r1)} of one chunk: their bytes are
     * copied to scratch with one bulk get (a get per row cost about as much as the copy itself
     * for 1 KiB rows), then each row is dotted from its offset in the copy.
     */
    private static void dotRows(float[] out, WeightMatrix w, int r0, int r1, float[] x, int nTokens, Scratch scratch,
            boolean q8Rounded) {
        ByteBuffer chunk = w.chunk(r0);
        int base = w.offset(r0);
        int cols = w.cols();
        int n = r1 - r0;
        switch (w.dtype()) {
            case F32: {
                float[] rows = scratch.floats(n * cols);
                scratch.floatView(chunk).get(base >>> 2, rows, 0, n * cols);
                for (int i = 0; i < n; i++) {
                    out[r0 + i] = VectorOps.dot(rows, i * cols, x, 0, cols);
                }
                break;
            }
            case F16:
            case BF16: {
                short[] h = scratch.shorts(n * cols);
                scratch.shortView(chunk).get(base >>> 1, h, 0, n * cols);
                if (w.dtype() == DType.F16) {
                    float[] xs = Simd.scaleForHalves(x, cols, scratch.floats2(cols));
                    for (int i = 0; i < n; i++) {
                        out[r0 + i] = dotF16Scaled(h, i * cols, xs, 0, cols);
                    }
                } else {
                    for (int i = 0; i < n; i++) {
                        out[r0 + i] = dotBF16(h, i * cols, x, 0, cols);
                    }
                }
                break;
            }
            case Q8_0:
            case Q4_0: {
                int rowBytes = w.rowBytes();
                byte[] q = scratch.bytes(n * rowBytes);
                chunk.get(base, q, 0, n * rowBytes);
                boolean q8 = w.dtype() == DType.Q8_0;
                if (q8 && q8Rounded && INT8_DOTS) {
                    // x is already rounded to Q8_0 blocks; the scratch holds their integers
                    dotRowsQ8_0IntsMapped(out, w.rows(), r0, n, q, rowBytes, cols, nTokens,
                            scratch.floats2(nTokens * n * (cols / QK)), scratch.q8Ints(), scratch.q8Scales());
                    break;
                }
                for (int i = 0; i < n; i++) {
                    out[r0 + i] = q8 ? dotQ8_0(q, i * rowBytes, x, cols) : dotQ4_0(q, i * rowBytes, x, cols);
                }
                break;
            }
            default:
                throw new UnsupportedOperationException("matMul of " + w.dtype());
        }
    }

    /** Dot of {@code n} BF16 weights {@code h[ho..ho + n)} with {@code x[0..n)}. */
    static float dotBF16(short[] h, int ho, float[] x, int xo, int n) {
        FloatVector acc0 = FloatVector.zero(F);
        FloatVector acc1 = acc0;
        int c = 0;
        int upper2 = n - n % (2 * L);
        for (; c < upper2; c += 2 * L) {
            acc0 = Simd.bf16ToFloat(ShortVector.fromArray(Simd.S, h, ho + c)).fma(FloatVector.fromArray(F, x, xo + c), acc0);
            acc1 = Simd.bf16ToFloat(ShortVector.fromArray(Simd.S, h, ho + c + L))
                    .fma(FloatVector.fromArray(F, x, xo + c + L), acc1);
        }
        for (; c < F.loopBound(n); c += L) {
            acc0 = Simd.bf16ToFloat(ShortVector.fromArray(Simd.S, h, ho + c)).fma(FloatVector.fromArray(F, x, xo + c), acc0);
        }
        float sum = acc0.add(acc1).reduceLanes(VectorOperators.ADD);
        for (; c < n; c++) {
            sum += Float16.bf16ToFloat(h[ho + c]) * x[xo + c];
        }
        return sum;
    }

    /**
     * Dot of a Q8_0 row ({@code n / 32} blocks from {@code q[qo]}) with {@code x[0..n)}: per
     * block the int8 values are widened to floats and dotted with x, then the block sum is scaled.
     */
    static float dotQ8_0(byte[] q, int qo, float[] x, int n) {
        int step = Simd.B.length();
        FloatVector acc = FloatVector.zero(F);
        for (int b = 0; b < n / QK; b++) {
            int o = qo + b * 34;
            int xo = b * QK;
            FloatVector block = FloatVector.zero(F);
            for (int j = 0; j < QK; j += step) {
                ByteVector bytes = Simd.loadBytes(q, o + 2 + j);
                for (int p = 0; p < Simd.BYTE_PARTS; p++) {
                    block = Simd.bytesToFloat(bytes, p).fma(FloatVector.fromArray(F, x, xo + j + p * L), block);
                }
            }
            acc = block.fma(FloatVector.broadcast(F, Simd.scaleAt(q, o)), acc);
        }
        return acc.reduceLanes(VectorOperators.ADD);
    }

    /** Dot of a Q4_0 row ({@code n / 32} blocks from {@code q[qo]}) with {@code x[0..n)}. */
    static float dotQ4_0(byte[] q, int qo, float[] x, int n) {
        int step = Simd.B.length();
        FloatVector acc = FloatVector.zero(F);
        for (int b = 0; b < n / QK; b++) {
            int o = qo + b * 18;
            int xo = b * QK;
            FloatVector block = FloatVector.zero(F);
            for (int j = 0; j < QK / 2; j += step) {
                ByteVector bytes = Simd.loadBytes(q, o + 2 + j);
                // Nibbles are unsigned 0..15 (LSHR on byte lanes shifts in zeros), stored offset by 8.
                ByteVector lo = bytes.and((byte) 0x0F).sub((byte) 8);
                ByteVector hi = bytes.lanewise(VectorOperators.LSHR, 4).and((byte) 0x0F).sub((byte) 8);
                for (int p = 0; p < Simd.BYTE_PARTS; p++) {
                    block = Simd.bytesToFloat(lo, p).fma(FloatVector.fromArray(F, x, xo + j + p * L), block);
                    block = Simd.bytesToFloat(hi, p)
                            .fma(FloatVector.fromArray(F, x, xo + QK / 2 + j + p * L), block);
                }
            }
            acc = block.fma(FloatVector.broadcast(F, Simd.scaleAt(q, o)), acc);
        }
        return acc.reduceLanes(VectorOperators.ADD);
    }

    // ---- several tokens: a small GEMM, tokens across the vector lanes ----

    /** Weight rows per step: 6 rows x 2 token vectors = 12 accumulators, + 2 loads + 1 broadcast. */
    private static final int ROWS_PER_STEP = 6;

    /**
     * {@code out[t][r] = W[r] . x[t]} for the rows {@code [rowStart, rowEnd)} and every token.
     * The activations are transposed once per call into tiles of 2L tokens, {@code
     * xt[tile][c][2L]} (padded with zeros), so two vectors hold one column of a tile and a tile
     * is read as one sequential stream.
     * Weight rows are decoded {@link #ROWS_PER_STEP} at a time; for each column, each row's
     * weight is broadcast and multiplied into two token vectors: 12 FMAs per 2 vector loads and
     * 6 broadcasts, and no horizontal sums. A last tile of at most L tokens (a MoE expert's 17-24
     * tokens, say) takes the one-vector step instead of multiplying a vector of padding: at 4,
     * 6, 8, 17, 20, 24 and 36 tokens this ran 1.07-1.15x as fast as two-vector steps only
     * (704x1024 Q8_0, one thread, interleaved runs). Each output is one FMA chain over the
     * columns in order, so it does not depend on the batch it is in, the tile it lands in, the
     * thread count or the weights' layout.
     */
    static void gemmRows(float[] out, WeightMatrix w, float[] x, int nTokens, int rowStart, int rowEnd, Scratch scratch) {
        gemmRows(out, w, x, nTokens, rowStart, rowEnd, scratch, 0, w.dtype() == DType.Q8_0);
    }

    /**
     * {@link #gemmRows} as a piece of pool call {@code call}: the activations are transposed
     * only if this worker has not transposed them already in this call.
     */
    private static void gemmRows(float[] out, WeightMatrix w, float[] x, int nTokens, int rowStart, int rowEnd,
            Scratch scratch, long call, boolean round) {
        int rows = w.rows();
        int cols = w.cols();
        // tiles of 2L tokens, each stored column after column: xt[tile][c][2L], zero padded
        int tw = 2 * L;
        int tiles = (nTokens + tw - 1) / tw;
        int tp = tiles * tw;
        float[] xt = scratch.tiles(tp * cols);
        if (!scratch.tilesHold(call, x, nTokens, cols, round)) {
            transposeTiles(xt, x, nTokens, cols, tiles, round ? scratch.floats2(cols) : null);
            scratch.tilesHeld(call, x, nTokens, cols, round);
        }
        gemmSteps(out, w, nTokens, rowStart, rowEnd, scratch, xt, tiles);
    }

    /**
     * x (nTokens, cols) into tiles of 2L tokens, each column after column, zero padded; with a
     * {@code rounded} buffer of {@code cols} floats, each token is first rounded to Q8_0 blocks
     * there ({@link Quantize#roundQ8_0}).
     */
    private static void transposeTiles(float[] xt, float[] x, int nTokens, int cols, int tiles, float[] rounded) {
        int tw = 2 * L;
        for (int tile = 0; tile < tiles; tile++) {
            int base = tile * cols * tw;
            for (int j = 0; j < tw; j++) {
                int t = tile * tw + j;
                if (t < nTokens) {
                    float[] src = x;
                    int so = t * cols;
                    if (rounded != null) {
                        Quantize.roundQ8_0(x, so, cols, rounded, 0, null, 0, null, 0);
                        src = rounded;
                        so = 0;
                    }
                    for (int c = 0; c < cols; c++) {
                        xt[base + c * tw + j] = src[so + c];
                    }
                } else {
                    for (int c = 0; c < cols; c++) {
                        xt[base + c * tw + j] = 0f;
                    }
                }
            }
        }
    }

    /** The rows {@code [rowStart, rowEnd)} of {@link #gemmRows} over transposed tiles. */
    private static void gemmSteps(
            float[] out, WeightMatrix w, int nTokens, int rowStart, int rowEnd, Scratch scratch, float[] xt, int tiles) {
        int rows = w.rows();
        int cols = w.cols();
        int tw = 2 * L;
        // ROWS_PER_STEP decoded rows, then 2L floats of spill per row for the results
        float[] wr = scratch.floats(ROWS_PER_STEP * cols + ROWS_PER_STEP * 2 * L);
        int spill = ROWS_PER_STEP * cols;
        for (int r0 = rowStart; r0 < rowEnd; r0 += ROWS_PER_STEP) {
            int nr = Math.min(ROWS_PER_STEP, rowEnd - r0);
            for (int i = 0; i < ROWS_PER_STEP; i++) {
                if (i < nr) {
                    Quantize.dequantizeRow(wr, i * cols, w, r0 + i, scratch);
                } else {
                    java.util.Arrays.fill(wr, i * cols, (i + 1) * cols, 0f);
                }
            }
            for (int tile = 0; tile < tiles; tile++) {
                if (nTokens - tile * tw <= L) {
                    // a last tile of at most L tokens: its second vector would be all padding
                    step6x1(out, rows, r0, nr, wr, cols, xt, tile * cols * tw, tile * tw, nTokens, spill);
                } else {
                    step6x2(out, rows, r0, nr, wr, cols, xt, tile * cols * tw, tile * tw, nTokens, spill);
                }
            }
        }
    }

    /**
     * Rows {@code r0 .. r0 + nr} (their {@code n} decoded columns at {@code wr[i * n]}) times
     * the 2L tokens from {@code t} whose same columns start at {@code xt[xo]}, {@code 2L} floats
     * per column.
     */
    private static void step6x2(
            float[] out, int rows, int r0, int nr, float[] wr, int n, float[] xt, int xo, int t, int nTokens,
            int spill) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
        FloatVector b0 = a0, b1 = a0, b2 = a0, b3 = a0, b4 = a0, b5 = a0;
        int w1 = n;
        int w2 = 2 * n;
        int w3 = 3 * n;
        int w4 = 4 * n;
        int w5 = 5 * n;
        for (int c = 0; c < n; c++) {
            int o = xo + c * 2 * L;
            FloatVector xa = FloatVector.fromArray(F, xt, o);
            FloatVector xb = FloatVector.fromArray(F, xt, o + L);
            FloatVector v = FloatVector.broadcast(F, wr[c]);
            a0 = v.fma(xa, a0);
            b0 = v.fma(xb, b0);
            v = FloatVector.broadcast(F, wr[w1 + c]);
            a1 = v.fma(xa, a1);
            b1 = v.fma(xb, b1);
            v = FloatVector.broadcast(F, wr[w2 + c]);
            a2 = v.fma(xa, a2);
            b2 = v.fma(xb, b2);
            v = FloatVector.broadcast(F, wr[w3 + c]);
            a3 = v.fma(xa, a3);
            b3 = v.fma(xb, b3);
            v = FloatVector.broadcast(F, wr[w4 + c]);
            a4 = v.fma(xa, a4);
            b4 = v.fma(xb, b4);
            v = FloatVector.broadcast(F, wr[w5 + c]);
            a5 = v.fma(xa, a5);
            b5 = v.fma(xb, b5);
        }
        a0.intoArray(wr, spill);
        b0.intoArray(wr, spill + L);
        a1.intoArray(wr, spill + 2 * L);
        b1.intoArray(wr, spill + 3 * L);
        a2.intoArray(wr, spill + 4 * L);
        b2.intoArray(wr, spill + 5 * L);
        a3.intoArray(wr, spill + 6 * L);
        b3.intoArray(wr, spill + 7 * L);
        a4.intoArray(wr, spill + 8 * L);
        b4.intoArray(wr, spill + 9 * L);
        a5.intoArray(wr, spill + 10 * L);
        b5.intoArray(wr, spill + 11 * L);
        copyOut(out, rows, r0, nr, t, Math.min(2 * L, nTokens - t), wr, spill);
    }

    /**
     * {@link #step6x2} for a tile whose tokens fit in its first vector ({@code t + L >=
     * nTokens}): six accumulators, each output the same FMA chain over the columns in order, so
     * the same bits as in a two-vector tile.
     */
    private static void step6x1(
            float[] out, int rows, int r0, int nr, float[] wr, int n, float[] xt, int xo, int t, int nTokens,
            int spill) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
        int w1 = n;
        int w2 = 2 * n;
        int w3 = 3 * n;
        int w4 = 4 * n;
        int w5 = 5 * n;
        for (int c = 0; c < n; c++) {
            FloatVector xa = FloatVector.fromArray(F, xt, xo + c * 2 * L);
            a0 = FloatVector.broadcast(F, wr[c]).fma(xa, a0);
            a1 = FloatVector.broadcast(F, wr[w1 + c]).fma(xa, a1);
            a2 = FloatVector.broadcast(F, wr[w2 + c]).fma(xa, a2);
            a3 = FloatVector.broadcast(F, wr[w3 + c]).fma(xa, a3);
            a4 = FloatVector.broadcast(F, wr[w4 + c]).fma(xa, a4);
            a5 = FloatVector.broadcast(F, wr[w5 + c]).fma(xa, a5);
        }
        a0.intoArray(wr, spill);
        a1.intoArray(wr, spill + 2 * L);
        a2.intoArray(wr, spill + 4 * L);
        a3.intoArray(wr, spill + 6 * L);
        a4.intoArray(wr, spill + 8 * L);
        a5.intoArray(wr, spill + 10 * L);
        copyOut(out, rows, r0, nr, t, nTokens - t, wr, spill);
    }

    /**
     * The results of rows {@code r0 .. r0 + nr} for tokens {@code t .. t + n)}, parked at {@code
     * tmp[at]} (2L floats per row), into out. Takes no vectors: a vector argument of a call the JIT does not inline is boxed.
     */
    private static void copyOut(float[] out, int rows, int r0, int nr, int t, int n, float[] tmp, int at) {
        for (int i = 0; i < nr; i++) {
            for (int j = 0; j < n; j++) {
                out[(t + j) * rows + r0 + i] = tmp[at + i * 2 * L + j];
            }
        }
    }

    // ---- a few tokens: one decoded row pair against every token ----

    /**
     * Keeps C2 from unrolling the column loops of the few-token dots below: each of them calls
     * this once per iteration and stores the result after the loop ({@link #unrollGuard}). C2
     * unrolls a loop whose body is small (its {@code LoopUnrollLimit}, 60 nodes) and counts a
     * long multiply as ten nodes, so two of them make the body look too big. Unrolled four
     * times, the loop was scheduled with each accumulator's FMAs back to back and spilled
     * registers: 704x1024, one core, the 4-token dot ran 101 us unrolled against 64 us not,
     * 8 tokens 203 against 156 (JDK 25; JDK 17: 145 against 90). The two multiplies cost an
     * integer unit a few cycles per iteration, next to eight FMAs.
     */
    private static long noUnroll(long guard, int c) {
        return guard + (long) c * 0x9E3779B97F4A7C15L + (long) c * 0x632BE59BD9B4E019L;
    }

    /** Where the few-token dots store {@link #noUnroll}'s value, so that its multiplies are kept. */
    @SuppressWarnings("unused")
    private static long unrollGuard;

    /**
     * {@code out[t][r] = W[r] . x[t]} for up to {@link #GEMM_MIN} tokens: rows decoded two at a time,
     * each pair dotted with four tokens per pass ({@link #dotTokens2}). Measured on AVX2 with 8
     * tokens this beats {@link #gemmRows}, whose token vectors would be half empty or whose row
     * decoding would be amortized over too few tokens (18.2 vs 12.7 GMAC/s per core).
     */
    static void fewTokenRows(float[] out, WeightMatrix w, float[] x, int nTokens, int rowStart, int rowEnd, Scratch scratch) {
        int rows = w.rows();
        int cols = w.cols();
        float[] pair = scratch.floats(2 * cols);
        int r = rowStart;
        for (; r + 2 <= rowEnd; r += 2) {
            Quantize.dequantizeRow(pair, 0, w, r, scratch);
            Quantize.dequantizeRow(pair, cols, w, r + 1, scratch);
            dotTokens2(out, rows, r, pair, x, cols, nTokens);
        }
        if (r < rowEnd) {
            Quantize.dequantizeRow(pair, 0, w, r, scratch);
            dotTokens(out, rows, r, pair, x, cols, nTokens);
        }
    }

    /**
     * {@code out[t * rows + r] = row . x[t]} for every token, four tokens per pass over the row
     * so each loaded weight vector feeds four FMAs.
     */
    static void dotTokens(float[] out, int rows, int r, float[] row, float[] x, int cols, int nTokens) {
        int upper = F.loopBound(cols);
        long guard = 0;
        int t = 0;
        for (; t + 4 <= nTokens; t += 4) {
            int x0 = t * cols;
            int x1 = x0 + cols;
            int x2 = x1 + cols;
            int x3 = x2 + cols;
            FloatVector a0 = FloatVector.zero(F);
            FloatVector a1 = a0;
            FloatVector a2 = a0;
            FloatVector a3 = a0;
            int c = 0;
            for (; c < upper; c += L) {
                guard = noUnroll(guard, c);
                FloatVector wv = FloatVector.fromArray(F, row, c);
                a0 = wv.fma(FloatVector.fromArray(F, x, x0 + c), a0);
                a1 = wv.fma(FloatVector.fromArray(F, x, x1 + c), a1);
                a2 = wv.fma(FloatVector.fromArray(F, x, x2 + c), a2);
                a3 = wv.fma(FloatVector.fromArray(F, x, x3 + c), a3);
            }
            float s0 = a0.reduceLanes(VectorOperators.ADD);
            float s1 = a1.reduceLanes(VectorOperators.ADD);
            float s2 = a2.reduceLanes(VectorOperators.ADD);
            float s3 = a3.reduceLanes(VectorOperators.ADD);
            for (; c < cols; c++) {
                float wc = row[c];
                s0 += wc * x[x0 + c];
                s1 += wc * x[x1 + c];
                s2 += wc * x[x2 + c];
                s3 += wc * x[x3 + c];
            }
            out[t * rows + r] = s0;
            out[(t + 1) * rows + r] = s1;
            out[(t + 2) * rows + r] = s2;
            out[(t + 3) * rows + r] = s3;
        }
        for (; t < nTokens; t++) {
            // one FMA chain per lane, as in the groups of four and in dotTokens2
            int x0 = t * cols;
            FloatVector a0 = FloatVector.zero(F);
            int c = 0;
            for (; c < upper; c += L) {
                guard = noUnroll(guard, c);
                a0 = FloatVector.fromArray(F, row, c).fma(FloatVector.fromArray(F, x, x0 + c), a0);
            }
            float s0 = a0.reduceLanes(VectorOperators.ADD);
            for (; c < cols; c++) {
                s0 += row[c] * x[x0 + c];
            }
            out[t * rows + r] = s0;
        }
        unrollGuard = guard;
    }

    /**
     * {@link #dotTokens} for two decoded rows {@code rows2[0..cols)} (row {@code r}) and {@code
     * rows2[cols..2 cols)} (row {@code r + 1}): a 2-row x 4-token block of eight accumulators, so
     * each step loads 2 weight and 4 activation vectors for 8 FMAs (dotTokens: 5 loads for 4).
     * Per output the sum is the same sequence of FMAs as in dotTokens, so results are identical.
     */
    static void dotTokens2(float[] out, int rows, int r, float[] rows2, float[] x, int cols, int nTokens) {
        int upper = F.loopBound(cols);
        long guard = 0;
        int t = 0;
        for (; t + 4 <= nTokens; t += 4) {
            int x0 = t * cols;
            int x1 = x0 + cols;
            int x2 = x1 + cols;
            int x3 = x2 + cols;
            FloatVector a0 = FloatVector.zero(F);
            FloatVector a1 = a0;
            FloatVector a2 = a0;
            FloatVector a3 = a0;
            FloatVector b0 = a0;
            FloatVector b1 = a0;
            FloatVector b2 = a0;
            FloatVector b3 = a0;
            int c = 0;
            for (; c < upper; c += L) {
                guard = noUnroll(guard, c);
                FloatVector wa = FloatVector.fromArray(F, rows2, c);
                FloatVector wb = FloatVector.fromArray(F, rows2, cols + c);
                FloatVector v = FloatVector.fromArray(F, x, x0 + c);
                a0 = wa.fma(v, a0);
                b0 = wb.fma(v, b0);
                v = FloatVector.fromArray(F, x, x1 + c);
                a1 = wa.fma(v, a1);
                b1 = wb.fma(v, b1);
                v = FloatVector.fromArray(F, x, x2 + c);
                a2 = wa.fma(v, a2);
                b2 = wb.fma(v, b2);
                v = FloatVector.fromArray(F, x, x3 + c);
                a3 = wa.fma(v, a3);
                b3 = wb.fma(v, b3);
            }
            float sa0 = a0.reduceLanes(VectorOperators.ADD);
            float sa1 = a1.reduceLanes(VectorOperators.ADD);
            float sa2 = a2.reduceLanes(VectorOperators.ADD);
            float sa3 = a3.reduceLanes(VectorOperators.ADD);
            float sb0 = b0.reduceLanes(VectorOperators.ADD);
            float sb1 = b1.reduceLanes(VectorOperators.ADD);
            float sb2 = b2.reduceLanes(VectorOperators.ADD);
            float sb3 = b3.reduceLanes(VectorOperators.ADD);
            for (; c < cols; c++) {
                float wa = rows2[c];
                float wb = rows2[cols + c];
                sa0 += wa * x[x0 + c];
                sa1 += wa * x[x1 + c];
                sa2 += wa * x[x2 + c];
                sa3 += wa * x[x3 + c];
                sb0 += wb * x[x0 + c];
                sb1 += wb * x[x1 + c];
                sb2 += wb * x[x2 + c];
                sb3 += wb * x[x3 + c];
            }
            out[t * rows + r] = sa0;
            out[(t + 1) * rows + r] = sa1;
            out[(t + 2) * rows + r] = sa2;
            out[(t + 3) * rows + r] = sa3;
            out[t * rows + r + 1] = sb0;
            out[(t + 1) * rows + r + 1] = sb1;
            out[(t + 2) * rows + r + 1] = sb2;
            out[(t + 3) * rows + r + 1] = sb3;
        }
        for (; t + 2 <= nTokens; t += 2) {
            dot2x2(out, rows, r, rows2, x, cols, t);
        }
        if (t < nTokens) {
            dot2x1(out, rows, r, rows2, x, cols, t);
        }
        unrollGuard = guard;
    }

    /**
     * The two rows of {@link #dotTokens2} against tokens {@code t} and {@code t + 1}: four
     * accumulators, each the same FMA chain as there, so a token gets the same bits in a group
     * of four, of two or alone. (Before, tokens past the last four went through one-row dots,
     * two loads per FMA: a MoE expert's share of a prefill chunk, 1-3 tokens, mostly did.)
     */
    private static void dot2x2(float[] out, int rows, int r, float[] rows2, float[] x, int cols, int t) {
        int upper = F.loopBound(cols);
        long guard = 0;
        int x0 = t * cols;
        int x1 = x0 + cols;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = a0;
        FloatVector b0 = a0;
        FloatVector b1 = a0;
        int c = 0;
        for (; c < upper; c += L) {
            guard = noUnroll(guard, c);
            FloatVector wa = FloatVector.fromArray(F, rows2, c);
            FloatVector wb = FloatVector.fromArray(F, rows2, cols + c);
            FloatVector v = FloatVector.fromArray(F, x, x0 + c);
            a0 = wa.fma(v, a0);
            b0 = wb.fma(v, b0);
            v = FloatVector.fromArray(F, x, x1 + c);
            a1 = wa.fma(v, a1);
            b1 = wb.fma(v, b1);
        }
        float sa0 = a0.reduceLanes(VectorOperators.ADD);
        float sa1 = a1.reduceLanes(VectorOperators.ADD);
        float sb0 = b0.reduceLanes(VectorOperators.ADD);
        float sb1 = b1.reduceLanes(VectorOperators.ADD);
        for (; c < cols; c++) {
            float wa = rows2[c];
            float wb = rows2[cols + c];
            sa0 += wa * x[x0 + c];
            sa1 += wa * x[x1 + c];
            sb0 += wb * x[x0 + c];
            sb1 += wb * x[x1 + c];
        }
        out[t * rows + r] = sa0;
        out[(t + 1) * rows + r] = sa1;
        out[t * rows + r + 1] = sb0;
        out[(t + 1) * rows + r + 1] = sb1;
        unrollGuard = guard;
    }

    /** {@link #dot2x2} for token {@code t} alone. */
    private static void dot2x1(float[] out, int rows, int r, float[] rows2, float[] x, int cols, int t) {
        int upper = F.loopBound(cols);
        long guard = 0;
        int x0 = t * cols;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector b0 = a0;
        int c = 0;
        for (; c < upper; c += L) {
            guard = noUnroll(guard, c);
            FloatVector v = FloatVector.fromArray(F, x, x0 + c);
            a0 = FloatVector.fromArray(F, rows2, c).fma(v, a0);
            b0 = FloatVector.fromArray(F, rows2, cols + c).fma(v, b0);
        }
        float sa0 = a0.reduceLanes(VectorOperators.ADD);
        float sb0 = b0.reduceLanes(VectorOperators.ADD);
        for (; c < cols; c++) {
            sa0 += rows2[c] * x[x0 + c];
            sb0 += rows2[cols + c] * x[x0 + c];
        }
        out[t * rows + r] = sa0;
        out[t * rows + r + 1] = sb0;
        unrollGuard = guard;
    }

    // ---- checks and the reusable pool task ----

    private static void checkShapes(float[] out, WeightMatrix w, float[] x, int nTokens) {
        if (nTokens < 1) {
            throw new IllegalArgumentException("nTokens must be >= 1, got " + nTokens);
        }
        if ((long) nTokens * w.rows() > out.length) {
            throw new IllegalArgumentException(
                    "out holds " + out.length + " floats, " + nTokens + " tokens x " + w + " need "
                            + (long) nTokens * w.rows());
        }
        if ((long) nTokens * w.cols() > x.length) {
            throw new IllegalArgumentException(
                    "x holds " + x.length + " floats, " + nTokens + " tokens x " + w + " need "
                            + (long) nTokens * w.cols());
        }
    }

    private static void checkRange(WeightMatrix w, int rowStart, int rowEnd) {
        if (rowStart < 0 || rowEnd > w.rows() || rowStart > rowEnd) {
            throw new IndexOutOfBoundsException("rows [" + rowStart + ", " + rowEnd + ") of " + w);
        }
    }

    /**
     * The pool task of {@link #matMul}, one per calling thread and reused so that a call
     * allocates nothing (a capturing lambda would be a new object per call). Its fields are
     * published to the workers by the pool's volatile generation write.
     */
    private static final class RowsTask implements KernelPool.RangeTask {
        private KernelPool pool;
        private float[] out;
        private WeightMatrix w;
        private float[] x;
        private int nTokens;
        private long call;
        private boolean round = true;

        void set(KernelPool pool, float[] out, WeightMatrix w, float[] x, int nTokens) {
            this.pool = pool;
            this.out = out;
            this.w = w;
            this.x = x;
            this.nTokens = nTokens;
            this.call = pool == null ? 0 : CALLS.incrementAndGet();
        }

        /** Drops the references so the task does not keep activations or weights reachable. */
        void clear() {
            set(null, null, null, null, 0);
            round = true;
        }

        @Override
        public void run(int start, int end, int worker) {
            matMulRows(out, w, x, nTokens, start, end, pool.scratch(worker), call, round);
        }
    }

    /**
     * The rows of the first {@code count} matrices as one range: {@code [start, end)} cut at
     * matrix borders; every matrix reads {@code x}, or its own {@code xs[i]}.
     */
    private static final class ManyTask implements KernelPool.RangeTask {
        private KernelPool pool;
        private float[][] outs;
        private WeightMatrix[] ws;
        private float[] x;
        private float[][] xs;
        private int count;
        private int nTokens;
        private long call;
        private boolean round = true;

        void set(KernelPool pool, float[][] outs, WeightMatrix[] ws, float[] x, float[][] xs, int count, int nTokens) {
            this.call = pool == null ? 0 : CALLS.incrementAndGet();
            this.pool = pool;
            this.outs = outs;
            this.ws = ws;
            this.x = x;
            this.xs = xs;
            this.count = count;
            this.nTokens = nTokens;
        }

        /** Per-matrix token counts; null when every matrix takes {@link #nTokens} (range = rows). */
        private int[] tokensEach;

        void clear() {
            set(null, null, null, null, null, 0, 0);
            tokensEach = null;
            round = true;
        }

        @Override
        public void run(int start, int end, int worker) {
            if (tokensEach != null) {
                runWeighted(start, end, worker);
                return;
            }
            int base = 0;
            for (int i = 0; i < count && base < end; i++) {
                int rows = ws[i].rows();
                int lo = Math.max(start, base);
                int hi = Math.min(end, base + rows);
                if (lo < hi) {
                    matMulRows(outs[i], ws[i], xs != null ? xs[i] : x, nTokens, lo - base, hi - base, pool.scratch(worker),
                            call, round);
                }
                base += rows;
            }
        }

        /**
         * The range counts work units, {@code tokensEach[i]} per row of matrix i: a row belongs
         * to the worker whose range holds its first unit, so every row is done exactly once.
         */
        private void runWeighted(int start, int end, int worker) {
            long base = 0;
            for (int i = 0; i < count && base < end; i++) {
                int n = tokensEach[i];
                if (n == 0) {
                    continue;
                }
                int rows = ws[i].rows();
                long units = (long) rows * n;
                int lo = (int) Math.min(rows, Math.max(0, ceilDiv(start - base, n)));
                int hi = (int) Math.min(rows, Math.max(0, ceilDiv(end - base, n)));
                if (lo < hi) {
                    matMulRows(outs[i], ws[i], xs[i], n, lo, hi, pool.scratch(worker), call, round);
                }
                base += units;
            }
        }

        private static long ceilDiv(long a, long b) {
            return a >= 0 ? (a + b - 1) / b : -((-a) / b);
        }
    }
}
