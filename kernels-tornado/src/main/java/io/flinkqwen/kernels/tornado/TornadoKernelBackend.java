/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels.tornado;

import static io.flinkqwen.kernels.tornado.TornadoKernels.WG;

import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.KernelPool;
import io.flinkqwen.kernels.WeightMatrix;
import io.flinkqwen.kernels.backend.DenseDecoderSpec;
import io.flinkqwen.kernels.backend.KernelBackend;
import io.flinkqwen.kernels.backend.KernelOp;
import io.flinkqwen.kernels.backend.ResidentDecoder;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Collection;
import java.util.EnumSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.Optional;
import java.util.WeakHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import uk.ac.manchester.tornado.api.GridScheduler;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.TaskGraph;
import uk.ac.manchester.tornado.api.TornadoExecutionPlan;
import uk.ac.manchester.tornado.api.WorkerGrid1D;
import uk.ac.manchester.tornado.api.enums.DataTransferMode;
import uk.ac.manchester.tornado.api.types.arrays.ByteArray;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * The kernels on TornadoVM's default device (a GPU through PTX or OpenCL; PoCL's CPU device in
 * the tests).
 *
 * <p>What lives where:
 *
 * <ul>
 *   <li>Weights: copied once into device "arenas" (byte arenas for F16 and Q8_0, float arenas
 *       for F32, at most {@link #ARENA_BYTES_PROPERTY} bytes each) by {@link #prepare}, or on a
 *       matrix's first use; a mat-mul passes only the matrix's offset and shape. They stay on
 *       the device for the life of the backend.
 *   <li>Activations, norm weights, RoPE angles, KV cache: copied to the device and the results
 *       back at every call (each call is one TornadoVM execution plan launch). This is the
 *       per-op shape of the {@link KernelBackend} interface. The one exception is {@link
 *       #ffnBlock}: a dense FFN's five kernels in one task graph, its intermediates on the device.
 *   <li>Single-sequence decode of a dense model: {@link #residentDecoder} gives a {@link
 *       TornadoResidentDecoder}, whose plans keep the residual stream and the KV cache on the
 *       device for whole decode steps (one launch per token and group of layers).
 * </ul>
 *
 * <p>Each kernel has one execution plan per arena (mat-muls) or one in all (the rest), compiled
 * on first use and rebuilt, twice as large, when a call needs bigger buffers. Launch sizes change
 * per call through the plans' worker grids; sizes reach the kernels in small int arrays (see
 * {@link TornadoKernels}).
 *
 * <p>{@link KernelOp}s reported: all, unless {@value #OPS_PROPERTY} lists fewer (for example
 * {@code matmul}); the per-op copies make small ops cheaper on the CPU for now. Mat-mul formats:
 * F32, F16, Q8_0. Thread-safe: calls are serialised.
 */
public final class TornadoKernelBackend implements KernelBackend {

    /** System property: the ops to report as supported, comma-separated {@link KernelOp} names or {@code all} (default). */
    public static final String OPS_PROPERTY = "flinkqwen.tornado.ops";

    /** System property: the largest weight arena in bytes (default 1 GiB; offsets are ints). */
    public static final String ARENA_BYTES_PROPERTY = "flinkqwen.tornado.arenaBytes";

    private static final Set<DType> MATMUL_TYPES = EnumSet.of(DType.F32, DType.F16, DType.Q8_0);

    private final String description;
    private final Set<KernelOp> ops;
    private final long arenaBytes;
    private final FloatArray pow2 = FloatArray.fromArray(TornadoKernels.POW2_TABLE);
    private final Map<WeightMatrix, Placement> placed = new WeakHashMap<>();
    private final List<AutoCloseable> toClose = new ArrayList<>();
    private int graphs;
    private final AtomicLong launchCount = new AtomicLong();

    private Launch rms;
    private Launch softmax;
    private Launch rope;
    private Launch attention;
    private Launch swiGlu;
    private Launch add;
    private Launch router;

    TornadoKernelBackend(String description) {
        this.description = description;
        this.ops = parseOps(System.getProperty(OPS_PROPERTY, "all"));
        this.arenaBytes = Long.getLong(ARENA_BYTES_PROPERTY, 1L << 30);
    }

    static Set<KernelOp> parseOps(String spec) {
        if (spec.isBlank() || spec.trim().equalsIgnoreCase("all")) {
            return EnumSet.allOf(KernelOp.class);
        }
        Set<KernelOp> out = EnumSet.noneOf(KernelOp.class);
        for (String s : spec.split(",")) {
            out.add(KernelOp.valueOf(s.trim().toUpperCase(Locale.ROOT)));
        }
        return out;
    }

    @Override
    public String name() {
        return "tornado";
    }

    @Override
    public String description() {
        return description;
    }

    @Override
    public boolean supports(KernelOp op, DType weights) {
        if (!ops.contains(op)) {
            return false;
        }
        return op != KernelOp.MATMUL && op != KernelOp.FFN_BLOCK || MATMUL_TYPES.contains(weights);
    }

    // ---------------------------------------------------------------- weights

    /** Where a matrix lives: its arena and its offset there (bytes, or floats for F32). */
    private record Placement(Arena arena, int offset) {}

    /** Weights of one or more matrices on the device, and the mat-mul plan that reads them. */
    private final class Arena {
        final boolean floats;
        final ByteArray bytes;
        final FloatArray floatsArray;
        final int maxRows;
        final int maxCols;
        MatMulLaunch f16;
        MatMulLaunch q8;
        MatMulLaunch f32;
        FfnLaunch ffn; // one weight format per arena in practice; rebuilt if another comes

        Arena(List<WeightMatrix> ms, boolean floats) {
            this.floats = floats;
            long total = 0;
            int rows = 1;
            int cols = 1;
            for (WeightMatrix w : ms) {
                total += floats ? (long) w.rows() * w.cols() : w.sizeBytes();
                rows = Math.max(rows, w.rows());
                cols = Math.max(cols, w.cols());
            }
            this.maxRows = rows;
            this.maxCols = cols;
            MemorySegment seg;
            if (floats) {
                floatsArray = new FloatArray(Math.toIntExact(total));
                bytes = null;
                seg = floatsArray.getSegment();
            } else {
                bytes = new ByteArray(Math.toIntExact(total));
                floatsArray = null;
                seg = bytes.getSegment();
            }
            long at = 0;
            for (WeightMatrix w : ms) {
                placed.put(w, new Placement(this, Math.toIntExact(floats ? at / 4 : at)));
                at = copyRows(w, seg, at);
            }
        }

        MatMulLaunch launch(DType type) {
            switch (type) {
                case F16:
                    return f16 != null ? f16 : (f16 = new MatMulLaunch(this, type));
                case Q8_0:
                    return q8 != null ? q8 : (q8 = new MatMulLaunch(this, type));
                case F32:
                    return f32 != null ? f32 : (f32 = new MatMulLaunch(this, type));
                default:
                    throw new UnsupportedOperationException("no TornadoVM mat-mul for " + type);
            }
        }
    }

    /** Copies all rows of {@code w}, as stored, to {@code seg} from byte {@code at}; returns the end. */
    private static long copyRows(WeightMatrix w, MemorySegment seg, long at) {
        for (int r = 0; r < w.rows(); r += w.rowsPerChunk()) {
            int rowsHere = Math.min(w.rowsPerChunk(), w.rows() - r);
            long len = (long) rowsHere * w.rowBytes();
            MemorySegment src = MemorySegment.ofBuffer(w.chunk(r)).asSlice(w.offset(r), len);
            MemorySegment.copy(src, 0, seg, at, len);
            at += len;
        }
        return at;
    }

    @Override
    public synchronized void prepare(Collection<WeightMatrix> weights) {
        List<WeightMatrix> bytes = new ArrayList<>();
        List<WeightMatrix> floats = new ArrayList<>();
        for (WeightMatrix w : weights) {
            if (MATMUL_TYPES.contains(w.dtype()) && !placed.containsKey(w)) {
                (w.dtype() == DType.F32 ? floats : bytes).add(w);
            }
        }
        packArenas(bytes, false);
        packArenas(floats, true);
    }

    private void packArenas(List<WeightMatrix> ms, boolean floats) {
        List<WeightMatrix> group = new ArrayList<>();
        long size = 0;
        for (WeightMatrix w : ms) {
            if (!group.isEmpty() && size + w.sizeBytes() > arenaBytes) {
                new Arena(group, floats);
                group = new ArrayList<>();
                size = 0;
            }
            group.add(w);
            size += w.sizeBytes();
        }
        if (!group.isEmpty()) {
            new Arena(group, floats);
        }
    }

    private Placement placement(WeightMatrix w) {
        Placement p = placed.get(w);
        if (p == null) {
            // not prepared: an arena of its own (one more compiled plan)
            prepare(List.of(w));
            p = placed.get(w);
        }
        return p;
    }

    // ---------------------------------------------------------------- launches

    /** One compiled task graph with one kernel ("k"), its worker grid and the buffer capacities it was built for. */
    private final class Launch {
        final TornadoExecutionPlan plan;
        final WorkerGrid1D grid;
        final int[] capacity;

        Launch(int[] capacity, Consumer<TaskGraph> body, String kernel) {
            this.capacity = capacity.clone();
            String name = "fq" + (graphs++) + kernel;
            TaskGraph g = new TaskGraph(name);
            body.accept(g);
            grid = new WorkerGrid1D(WG);
            grid.setLocalWork(WG, 1, 1);
            plan = new TornadoExecutionPlan(g.snapshot()).withGridScheduler(new GridScheduler(name + ".k", grid));
            toClose.add(plan);
        }

        boolean fits(int... need) {
            for (int i = 0; i < need.length; i++) {
                if (need[i] > capacity[i]) {
                    return false;
                }
            }
            return true;
        }

        void run(int globalThreads) {
            grid.setGlobalWork(roundUp(globalThreads), 1, 1);
            grid.setLocalWork(WG, 1, 1);
            plan.execute();
            launchCount.incrementAndGet();
        }

        void close() {
            toClose.remove(plan);
            try {
                plan.close();
            } catch (Exception e) {
                throw new IllegalStateException("cannot free a TornadoVM plan", e);
            }
        }
    }

    private static int roundUp(int threads) {
        return Math.max(WG, (threads + WG - 1) / WG * WG);
    }

    /** Capacities grown to at least {@code need}, doubling. */
    private static int[] grown(int[] old, int... need) {
        int[] out = new int[need.length];
        for (int i = 0; i < need.length; i++) {
            int o = old == null ? 0 : old[i];
            out[i] = need[i] <= o ? o : Math.max(need[i], Math.min(Integer.MAX_VALUE / 2, 2 * o));
        }
        return out;
    }

    /** The mat-mul plan of one arena and one weight format, with its activation buffers. */
    private final class MatMulLaunch {
        final Arena arena;
        final DType type;
        Launch launch;
        FloatArray x;
        FloatArray y;

        MatMulLaunch(Arena arena, DType type) {
            this.arena = arena;
            this.type = type;
        }

        /** {@code out[t * rows + r]} for the {@code rows x cols} matrix at {@code offset} of the arena. */
        void run(float[] out, int rows, int cols, float[] in, int offset, int nTokens) {
            int needX = nTokens * cols;
            int needY = nTokens * rows;
            if (launch == null || !launch.fits(needX, needY)) {
                int[] cap = grown(launch == null ? new int[] {arena.maxCols, arena.maxRows} : launch.capacity, needX, needY);
                if (launch != null) {
                    launch.close();
                }
                x = new FloatArray(cap[0]);
                y = new FloatArray(cap[1]);
                IntArray[] ps = new IntArray[1];
                launch = new Launch(cap, g -> {
                    ps[0] = new IntArray(4);
                    KernelContext ctx = new KernelContext();
                    switch (type) {
                        case F16:
                            g.transferToDevice(DataTransferMode.FIRST_EXECUTION, arena.bytes, pow2)
                                    .transferToDevice(DataTransferMode.EVERY_EXECUTION, x, ps[0])
                                    .task("k", TornadoKernels::matMulF16, ctx, arena.bytes, x, y, ps[0], pow2);
                            break;
                        case Q8_0:
                            g.transferToDevice(DataTransferMode.FIRST_EXECUTION, arena.bytes, pow2)
                                    .transferToDevice(DataTransferMode.EVERY_EXECUTION, x, ps[0])
                                    .task("k", TornadoKernels::matMulQ8_0, ctx, arena.bytes, x, y, ps[0], pow2);
                            break;
                        default:
                            g.transferToDevice(DataTransferMode.FIRST_EXECUTION, arena.floatsArray)
                                    .transferToDevice(DataTransferMode.EVERY_EXECUTION, x, ps[0])
                                    .task("k", TornadoKernels::matMulF32, ctx, arena.floatsArray, x, y, ps[0]);
                    }
                    g.transferToHost(DataTransferMode.EVERY_EXECUTION, y);
                }, "mm" + type);
                launchParams = ps[0];
            }
            put(x, in, needX);
            launchParams.set(0, offset);
            launchParams.set(1, rows);
            launchParams.set(2, cols);
            launchParams.set(3, nTokens);
            launch.run(rows * WG);
            get(y, out, needY);
        }

        IntArray launchParams;
    }

    /**
     * A dense FFN block as one task graph over one arena: RMSNorm, the gate/up product (the two
     * matrices back to back, as one), SwiGLU, the down product, the residual add. Only the
     * residual rows go in and out; the normed input, gate/up and SwiGLU outputs and the down
     * projection stay on the device between the five kernels.
     */
    private final class FfnLaunch {
        final Arena arena;
        final DType type;
        final String name = "fq" + (graphs++) + "ffn";
        TornadoExecutionPlan plan;
        WorkerGrid1D[] grids;
        int[] capacity;
        FloatArray x;
        FloatArray norm;
        FloatArray eps;
        IntArray[] p; // rms, gate/up, swiglu, down, add

        FfnLaunch(Arena arena, DType type) {
            this.arena = arena;
            this.type = type;
        }

        void run(float[] xHost, float[] normHost, float epsValue, int width, int ffn, int gateOffset, int downOffset, int rows) {
            int[] need = {rows * width, rows * 2 * ffn, width};
            if (plan == null || need[0] > capacity[0] || need[1] > capacity[1] || need[2] > capacity[2]) {
                build(grown(capacity, need));
            }
            put(x, xHost, rows * width);
            put(norm, normHost, width);
            eps.set(0, epsValue);
            set(p[0], width, rows);
            set(p[1], gateOffset, 2 * ffn, width, rows);
            set(p[2], ffn, rows);
            set(p[3], downOffset, width, ffn, rows);
            set(p[4], rows * width);
            grids[0].setGlobalWork(roundUp(rows * WG), 1, 1);
            grids[1].setGlobalWork(roundUp(2 * ffn * WG), 1, 1);
            grids[2].setGlobalWork(roundUp(rows * ffn), 1, 1);
            grids[3].setGlobalWork(roundUp(width * WG), 1, 1);
            grids[4].setGlobalWork(roundUp(rows * width), 1, 1);
            plan.execute();
            launchCount.incrementAndGet();
            get(x, xHost, rows * width);
        }

        private void set(IntArray a, int... v) {
            for (int i = 0; i < v.length; i++) {
                a.set(i, v[i]);
            }
        }

        private void build(int[] cap) {
            if (plan != null) {
                toClose.remove(plan);
                try {
                    plan.close();
                } catch (Exception e) {
                    throw new IllegalStateException("cannot free a TornadoVM plan", e);
                }
            }
            capacity = cap;
            x = new FloatArray(cap[0]);
            FloatArray xb = new FloatArray(cap[0]);
            FloatArray proj = new FloatArray(cap[0]);
            FloatArray gu = new FloatArray(cap[1]);
            FloatArray g = new FloatArray(cap[1] / 2 + 1);
            norm = new FloatArray(cap[2]);
            eps = new FloatArray(1);
            p = new IntArray[] {new IntArray(2), new IntArray(4), new IntArray(2), new IntArray(4), new IntArray(1)};
            TaskGraph tg = new TaskGraph(name + cap[0]);
            if (type == DType.F32) {
                tg.transferToDevice(DataTransferMode.FIRST_EXECUTION, arena.floatsArray);
            } else {
                tg.transferToDevice(DataTransferMode.FIRST_EXECUTION, arena.bytes, pow2);
            }
            tg.transferToDevice(DataTransferMode.EVERY_EXECUTION, x, norm, eps, p[0], p[1], p[2], p[3], p[4])
                    .task("t0", TornadoKernels::rmsNormRows, new KernelContext(), x, norm, xb, p[0], eps);
            switch (type) {
                case F16:
                    tg.task("t1", TornadoKernels::matMulF16, new KernelContext(), arena.bytes, xb, gu, p[1], pow2);
                    break;
                case Q8_0:
                    tg.task("t1", TornadoKernels::matMulQ8_0, new KernelContext(), arena.bytes, xb, gu, p[1], pow2);
                    break;
                default:
                    tg.task("t1", TornadoKernels::matMulF32, new KernelContext(), arena.floatsArray, xb, gu, p[1]);
            }
            tg.task("t2", TornadoKernels::swiGluPacked, new KernelContext(), gu, g, p[2]);
            switch (type) {
                case F16:
                    tg.task("t3", TornadoKernels::matMulF16, new KernelContext(), arena.bytes, g, proj, p[3], pow2);
                    break;
                case Q8_0:
                    tg.task("t3", TornadoKernels::matMulQ8_0, new KernelContext(), arena.bytes, g, proj, p[3], pow2);
                    break;
                default:
                    tg.task("t3", TornadoKernels::matMulF32, new KernelContext(), arena.floatsArray, g, proj, p[3]);
            }
            tg.task("t4", TornadoKernels::addInPlace, new KernelContext(), x, proj, p[4])
                    .transferToHost(DataTransferMode.EVERY_EXECUTION, x);
            GridScheduler gs = new GridScheduler();
            grids = new WorkerGrid1D[5];
            for (int i = 0; i < 5; i++) {
                grids[i] = new WorkerGrid1D(WG);
                grids[i].setLocalWork(WG, 1, 1);
                gs.addWorkerGrid(tg.getTaskGraphName() + ".t" + i, grids[i]);
            }
            plan = new TornadoExecutionPlan(tg.snapshot()).withGridScheduler(gs);
            toClose.add(plan);
        }
    }

    @Override
    public synchronized void ffnBlock(
            KernelPool pool, float[] x, float[] norm, float eps, WeightMatrix gate, WeightMatrix up, WeightMatrix down,
            int rows) {
        if (rows <= 0) {
            return;
        }
        int width = gate.cols();
        int ffn = gate.rows();
        if (up.rows() != ffn || up.cols() != width || down.rows() != width || down.cols() != ffn
                || up.dtype() != gate.dtype() || down.dtype() != gate.dtype() || !MATMUL_TYPES.contains(gate.dtype())) {
            throw new IllegalArgumentException("an FFN block needs gate and up (ffn, width) and down (width, ffn) of one "
                    + "supported format, got " + gate + ", " + up + ", " + down);
        }
        Placement g = placement(gate);
        Placement u = placement(up);
        Placement d = placement(down);
        long gateSize = gate.dtype() == DType.F32 ? (long) ffn * width : gate.sizeBytes();
        if (g.arena() != u.arena() || g.arena() != d.arena() || u.offset() != g.offset() + gateSize) {
            // not packed as one block: the parts, each on the device
            float[] xb = new float[rows * width];
            float[] gu0 = new float[rows * ffn];
            float[] gu1 = new float[rows * ffn];
            float[] proj = new float[rows * width];
            rmsNorm(xb, x, norm, width, rows, eps);
            matMulMany(pool, new float[][] {gu0, gu1}, new WeightMatrix[] {gate, up}, xb, rows);
            swiGlu(gu0, gu0, gu1, rows * ffn);
            matMul(pool, proj, down, gu0, rows);
            addInPlace(x, proj, rows * width);
            return;
        }
        Arena arena = g.arena();
        if (arena.ffn == null || arena.ffn.type != gate.dtype()) {
            arena.ffn = new FfnLaunch(arena, gate.dtype());
        }
        arena.ffn.run(x, norm, eps, width, ffn, g.offset(), d.offset(), rows);
    }

    private static void put(FloatArray dst, float[] src, int n) {
        MemorySegment.copy(src, 0, dst.getSegment(), ValueLayout.JAVA_FLOAT, 0, n);
    }

    private static void get(FloatArray src, float[] dst, int n) {
        MemorySegment.copy(src.getSegment(), ValueLayout.JAVA_FLOAT, 0, dst, 0, n);
    }

    private static void put(IntArray dst, int[] src, int n) {
        MemorySegment.copy(src, 0, dst.getSegment(), ValueLayout.JAVA_INT, 0, n);
    }

    private static void get(IntArray src, int[] dst, int n) {
        MemorySegment.copy(src.getSegment(), ValueLayout.JAVA_INT, 0, dst, 0, n);
    }

    @Override
    public synchronized void matMul(KernelPool pool, float[] out, WeightMatrix w, float[] x, int nTokens) {
        if (nTokens <= 0) {
            return;
        }
        if (!MATMUL_TYPES.contains(w.dtype())) {
            throw new UnsupportedOperationException("the tornado backend has no mat-mul for " + w.dtype());
        }
        if (x.length < nTokens * w.cols() || out.length < nTokens * w.rows()) {
            throw new IllegalArgumentException(String.format(
                    "%s x %d tokens needs x >= %d and out >= %d floats, got %d and %d",
                    w, nTokens, nTokens * w.cols(), nTokens * w.rows(), x.length, out.length));
        }
        Placement p = placement(w);
        p.arena().launch(w.dtype()).run(out, w.rows(), w.cols(), x, p.offset(), nTokens);
    }

    private float[] fusedOut = new float[0];

    /**
     * One launch for all matrices when they lie back to back in one arena with one format and
     * column count (q/k/v and gate/up do, as {@link #prepare} packs a layer's matrices in order):
     * they are then one matrix of their summed rows, whose result rows are split on the host.
     * Otherwise one launch each.
     */
    @Override
    public synchronized void matMulMany(KernelPool pool, float[][] outs, WeightMatrix[] ws, float[] x, int nTokens) {
        if (nTokens <= 0 || ws.length == 0) {
            return;
        }
        boolean fused = ws.length > 1;
        int rows = 0;
        Placement first = placement(ws[0]);
        long next = first.offset();
        for (WeightMatrix w : ws) {
            Placement p = placement(w);
            fused &= p.arena() == first.arena() && w.dtype() == ws[0].dtype() && w.cols() == ws[0].cols()
                    && p.offset() == next && MATMUL_TYPES.contains(w.dtype());
            next += w.dtype() == DType.F32 ? (long) w.rows() * w.cols() : w.sizeBytes();
            rows += w.rows();
        }
        if (!fused) {
            KernelBackend.super.matMulMany(pool, outs, ws, x, nTokens);
            return;
        }
        for (int i = 0; i < ws.length; i++) {
            if (outs[i].length < nTokens * ws[i].rows()) {
                throw new IllegalArgumentException("output " + i + " holds " + outs[i].length + " floats, "
                        + ws[i] + " x " + nTokens + " tokens needs " + nTokens * ws[i].rows());
            }
        }
        if (x.length < nTokens * ws[0].cols()) {
            throw new IllegalArgumentException("x holds " + x.length + " floats, needs " + nTokens * ws[0].cols());
        }
        if (fusedOut.length < nTokens * rows) {
            fusedOut = new float[nTokens * rows];
        }
        first.arena().launch(ws[0].dtype()).run(fusedOut, rows, ws[0].cols(), x, first.offset(), nTokens);
        for (int t = 0; t < nTokens; t++) {
            for (int i = 0, r = 0; i < ws.length; r += ws[i].rows(), i++) {
                System.arraycopy(fusedOut, t * rows + r, outs[i], t * ws[i].rows(), ws[i].rows());
            }
        }
    }

    // ---------------------------------------------------------------- row and element kernels

    private FloatArray[] rmsBuf; // x, weight, out, eps

    @Override
    public synchronized void rmsNorm(float[] out, float[] x, float[] weight, int width, int rows, float eps) {
        if (rows <= 0) {
            return;
        }
        int n = width * rows;
        if (rms == null || !rms.fits(n, width)) {
            int[] cap = grown(rms == null ? null : rms.capacity, n, width);
            if (rms != null) {
                rms.close();
            }
            FloatArray[] b = {new FloatArray(cap[0]), new FloatArray(cap[1]), new FloatArray(cap[0]), new FloatArray(1)};
            rmsBuf = b;
            IntArray[] ps = new IntArray[1];
            rms = new Launch(cap, g -> {
                ps[0] = new IntArray(2);
                g.transferToDevice(DataTransferMode.EVERY_EXECUTION, b[0], b[1], b[3], ps[0])
                        .task("k", TornadoKernels::rmsNormRows, new KernelContext(), b[0], b[1], b[2], ps[0], b[3])
                        .transferToHost(DataTransferMode.EVERY_EXECUTION, b[2]);
            }, "rms");
            rmsParams = ps[0];
        }
        put(rmsBuf[0], x, n);
        put(rmsBuf[1], weight, width);
        rmsBuf[3].set(0, eps);
        rmsParams.set(0, width);
        rmsParams.set(1, rows);
        rms.run(rows * WG);
        get(rmsBuf[2], out, n);
    }

    private IntArray rmsParams;
    private FloatArray[] softmaxBuf;
    private IntArray softmaxParams;

    @Override
    public synchronized void softmaxInPlace(float[] x, int off, int n) {
        if (n <= 0) {
            return;
        }
        if (softmax == null || !softmax.fits(n)) {
            int[] cap = grown(softmax == null ? null : softmax.capacity, n);
            if (softmax != null) {
                softmax.close();
            }
            FloatArray[] b = {new FloatArray(cap[0])};
            softmaxBuf = b;
            IntArray[] ps = new IntArray[1];
            softmax = new Launch(cap, g -> {
                ps[0] = new IntArray(1);
                g.transferToDevice(DataTransferMode.EVERY_EXECUTION, b[0], ps[0])
                        .task("k", TornadoKernels::softmax, new KernelContext(), b[0], ps[0])
                        .transferToHost(DataTransferMode.EVERY_EXECUTION, b[0]);
            }, "softmax");
            softmaxParams = ps[0];
        }
        MemorySegment.copy(x, off, softmaxBuf[0].getSegment(), ValueLayout.JAVA_FLOAT, 0, n);
        softmaxParams.set(0, n);
        softmax.run(WG);
        MemorySegment.copy(softmaxBuf[0].getSegment(), ValueLayout.JAVA_FLOAT, 0, x, off, n);
    }

    private FloatArray[] ropeBuf; // x, cos rows, sin rows
    private IntArray ropeParams;

    @Override
    public synchronized void ropeNeox(
            float[] x, int rowStride, int rows, int nHeads, int headDim, float[] cos, float[] sin, int[] positions) {
        if (rows <= 0) {
            return;
        }
        int half = headDim / 2;
        int n = (rows - 1) * rowStride + nHeads * headDim;
        int table = rows * half;
        if (rope == null || !rope.fits(n, table)) {
            int[] cap = grown(rope == null ? null : rope.capacity, n, table);
            if (rope != null) {
                rope.close();
            }
            FloatArray[] b = {new FloatArray(cap[0]), new FloatArray(cap[1]), new FloatArray(cap[1])};
            ropeBuf = b;
            IntArray[] ps = new IntArray[1];
            rope = new Launch(cap, g -> {
                ps[0] = new IntArray(4);
                g.transferToDevice(DataTransferMode.EVERY_EXECUTION, b[0], b[1], b[2], ps[0])
                        .task("k", TornadoKernels::ropeNeoxRows, new KernelContext(), b[0], b[1], b[2], ps[0])
                        .transferToHost(DataTransferMode.EVERY_EXECUTION, b[0]);
            }, "rope");
            ropeParams = ps[0];
        }
        put(ropeBuf[0], x, n);
        // each row's own angles: the tables stay on the host, only rows * half of them travel
        for (int t = 0; t < rows; t++) {
            MemorySegment.copy(cos, positions[t] * half, ropeBuf[1].getSegment(), ValueLayout.JAVA_FLOAT, 4L * t * half, half);
            MemorySegment.copy(sin, positions[t] * half, ropeBuf[2].getSegment(), ValueLayout.JAVA_FLOAT, 4L * t * half, half);
        }
        ropeParams.set(0, rowStride);
        ropeParams.set(1, rows);
        ropeParams.set(2, nHeads);
        ropeParams.set(3, headDim);
        rope.run(rows * nHeads * half);
        get(ropeBuf[0], x, n);
    }

    private FloatArray[] attBuf; // q, keys, values, scores, out, scale
    private IntArray attParams;

    @Override
    public synchronized void attention(
            float[] out, float[] q, float[] keys, float[] values, int kvStride, int nHeads, int nKvHeads, int headDim,
            int nPositions, float scale) {
        if (nPositions < 1 || nHeads % nKvHeads != 0) {
            throw new IllegalArgumentException("need nPositions >= 1 and nKvHeads dividing nHeads, got "
                    + nPositions + ", " + nHeads + "/" + nKvHeads);
        }
        int qn = nHeads * headDim;
        int kv = (nPositions - 1) * kvStride + nKvHeads * headDim;
        int sc = nHeads * nPositions;
        if (attention == null || !attention.fits(qn, kv, sc)) {
            int[] cap = grown(attention == null ? null : attention.capacity, qn, kv, sc);
            if (attention != null) {
                attention.close();
            }
            FloatArray[] b = {new FloatArray(cap[0]), new FloatArray(cap[1]), new FloatArray(cap[1]),
                    new FloatArray(cap[2]), new FloatArray(cap[0]), new FloatArray(1)};
            attBuf = b;
            IntArray[] ps = new IntArray[1];
            attention = new Launch(cap, g -> {
                ps[0] = new IntArray(5);
                g.transferToDevice(DataTransferMode.EVERY_EXECUTION, b[0], b[1], b[2], b[5], ps[0])
                        .task("k", TornadoKernels::attention, new KernelContext(), b[0], b[1], b[2], b[3], b[4], ps[0], b[5])
                        .transferToHost(DataTransferMode.EVERY_EXECUTION, b[4]);
            }, "attention");
            attParams = ps[0];
        }
        put(attBuf[0], q, qn);
        put(attBuf[1], keys, kv);
        put(attBuf[2], values, kv);
        attBuf[5].set(0, scale);
        attParams.set(0, headDim);
        attParams.set(1, kvStride);
        attParams.set(2, nPositions);
        attParams.set(3, nHeads);
        attParams.set(4, nKvHeads);
        attention.run(nHeads * WG);
        get(attBuf[4], out, qn);
    }

    private FloatArray[] swiBuf; // gate, up, out
    private IntArray swiParams;

    @Override
    public synchronized void swiGlu(float[] out, float[] gate, float[] up, int n) {
        if (n <= 0) {
            return;
        }
        if (swiGlu == null || !swiGlu.fits(n)) {
            int[] cap = grown(swiGlu == null ? null : swiGlu.capacity, n);
            if (swiGlu != null) {
                swiGlu.close();
            }
            FloatArray[] b = {new FloatArray(cap[0]), new FloatArray(cap[0]), new FloatArray(cap[0])};
            swiBuf = b;
            IntArray[] ps = new IntArray[1];
            swiGlu = new Launch(cap, g -> {
                ps[0] = new IntArray(1);
                g.transferToDevice(DataTransferMode.EVERY_EXECUTION, b[0], b[1], ps[0])
                        .task("k", TornadoKernels::swiGlu, new KernelContext(), b[0], b[1], b[2], ps[0])
                        .transferToHost(DataTransferMode.EVERY_EXECUTION, b[2]);
            }, "swiglu");
            swiParams = ps[0];
        }
        put(swiBuf[0], gate, n);
        put(swiBuf[1], up, n);
        swiParams.set(0, n);
        swiGlu.run(n);
        get(swiBuf[2], out, n);
    }

    private FloatArray[] addBuf; // acc, x
    private IntArray addParams;

    @Override
    public synchronized void addInPlace(float[] acc, float[] x, int n) {
        if (n <= 0) {
            return;
        }
        if (add == null || !add.fits(n)) {
            int[] cap = grown(add == null ? null : add.capacity, n);
            if (add != null) {
                add.close();
            }
            FloatArray[] b = {new FloatArray(cap[0]), new FloatArray(cap[0])};
            addBuf = b;
            IntArray[] ps = new IntArray[1];
            add = new Launch(cap, g -> {
                ps[0] = new IntArray(1);
                g.transferToDevice(DataTransferMode.EVERY_EXECUTION, b[0], b[1], ps[0])
                        .task("k", TornadoKernels::addInPlace, new KernelContext(), b[0], b[1], ps[0])
                        .transferToHost(DataTransferMode.EVERY_EXECUTION, b[0]);
            }, "add");
            addParams = ps[0];
        }
        put(addBuf[0], acc, n);
        put(addBuf[1], x, n);
        addParams.set(0, n);
        add.run(n);
        get(addBuf[0], acc, n);
    }

    private FloatArray[] routerBuf; // logits, weights
    private IntArray routerIds;
    private IntArray routerParams;

    @Override
    public synchronized void routerTopK(
            float[] logits, int experts, int k, boolean normTopkProb, int[] ids, float[] weights, int rows) {
        if (rows <= 0) {
            return;
        }
        if (k < 1 || k > experts) {
            throw new IllegalArgumentException("top-k needs 1 <= k <= experts, got k " + k + " of " + experts);
        }
        int nl = rows * experts;
        int nk = rows * k;
        if (router == null || !router.fits(nl, nk)) {
            int[] cap = grown(router == null ? null : router.capacity, nl, nk);
            if (router != null) {
                router.close();
            }
            FloatArray[] b = {new FloatArray(cap[0]), new FloatArray(cap[1])};
            IntArray outIds = new IntArray(cap[1]);
            routerBuf = b;
            routerIds = outIds;
            IntArray[] ps = new IntArray[1];
            router = new Launch(cap, g -> {
                ps[0] = new IntArray(4);
                g.transferToDevice(DataTransferMode.EVERY_EXECUTION, b[0], ps[0])
                        .task("k", TornadoKernels::routerTopK, new KernelContext(), b[0], outIds, b[1], ps[0])
                        .transferToHost(DataTransferMode.EVERY_EXECUTION, outIds, b[1]);
            }, "router");
            routerParams = ps[0];
        }
        put(routerBuf[0], logits, nl);
        routerParams.set(0, experts);
        routerParams.set(1, k);
        routerParams.set(2, normTopkProb ? 1 : 0);
        routerParams.set(3, rows);
        router.run(rows);
        get(routerIds, ids, nk);
        get(routerBuf[1], weights, nk);
    }

    // ---------------------------------------------------------------- resident decode

    /**
     * A {@link TornadoResidentDecoder} over this backend's weight arenas (its plan holds its own
     * device copy of them), or empty where a matrix has a format without a device mat-vec or
     * {@code positions} is outside {@code [1, spec.ropePositions()]}.
     */
    @Override
    public synchronized Optional<ResidentDecoder> residentDecoder(DenseDecoderSpec spec, int positions) {
        if (positions < 1 || positions > spec.ropePositions()) {
            return Optional.empty();
        }
        List<WeightMatrix> all = new ArrayList<>();
        for (DenseDecoderSpec.Layer l : spec.layers()) {
            all.addAll(List.of(l.wq(), l.wk(), l.wv(), l.wo(), l.gate(), l.up(), l.down()));
        }
        all.add(spec.output());
        for (WeightMatrix w : all) {
            if (!MATMUL_TYPES.contains(w.dtype())) {
                return Optional.empty();
            }
        }
        prepare(all); // no-op for matrices already placed
        TornadoResidentDecoder d = new TornadoResidentDecoder(spec, positions, w -> {
            Placement p = placement(w);
            long size = w.dtype() == DType.F32 ? (long) w.rows() * w.cols() : w.sizeBytes();
            return new TornadoResidentDecoder.Placed(w.dtype(), p.arena().bytes, p.arena().floatsArray, p.offset(), size);
        }, pow2, this, launchCount, "fq" + (graphs++) + "step");
        toClose.add(d);
        return Optional.of(d);
    }

    /** Plan executions of this backend and its resident decoders so far. */
    @Override
    public long launches() {
        return launchCount.get();
    }

    @Override
    public synchronized void close() {
        for (AutoCloseable c : new ArrayList<>(toClose)) {
            try {
                c.close();
            } catch (Exception e) {
                // best effort: the device memory goes with the process anyway
            }
        }
        toClose.clear();
        placed.clear();
    }

    /** Compiled task graphs so far (tests: plans are reused, not rebuilt per call). */
    synchronized int graphsBuilt() {
        return graphs;
    }
}
