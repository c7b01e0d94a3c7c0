/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels.tornado;

import static io.flinkqwen.kernels.tornado.TornadoKernels.WG;

import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.WeightMatrix;
import io.flinkqwen.kernels.backend.DenseDecoderSpec;
import io.flinkqwen.kernels.backend.ResidentDecoder;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
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
 * A whole dense decode step on the device: every layer's RMSNorm, q/k/v product, biases + RoPE +
 * KV store, attention, output product (+ residual), RMSNorm, gate/up product, SwiGLU, down
 * product (+ residual), then the final norm and the LM head, as TornadoVM task graphs whose
 * buffers stay on the device: the weights (the plans' own device copies of the backend's
 * arenas), norms, biases, RoPE tables, scratch and the KV cache of {@link #positions()} positions
 * (F32). Per token the embedding row and the position go in; the logits and the token's new keys
 * and values come out.
 *
 * <p>As many layers as fit go into one task graph: TornadoVM 5.2.0 records a graph's tasks in a
 * fixed 8 KiB buffer ({@value #GRAPH_CODE_BYTES} bytes, {@code 14 + 5 * arguments} per task, about
 * 430 per layer here) and builds a dependency graph of at most 1024 nodes (about 40 per layer), so
 * one graph holds about 16 layers. A model with more layers runs as
 * several groups of consecutive layers, one execution per group and token, the residual stream
 * ({@code hidden} floats) passed between groups through the host; each group keeps the KV cache of
 * its own layers. Qwen2-0.5B (24 layers) is 2 launches per token, 72B (80 layers) 5.
 *
 * <p>Each group's plan holds two graphs: 0 copies staged KV rows into the group's cache ({@link
 * #upload}, {@value #STAGE} positions per execution), 1 is the step. The cache arrays are
 * allocated by graph 0, kept there ({@code persistOnDevice}) and used by graph 1 ({@code
 * consumeFromDevice}), so neither copies the cache between host and device.
 */
final class TornadoResidentDecoder implements ResidentDecoder {

    /** Positions per upload execution. */
    static final int STAGE = 16;

    /** TornadoVM 5.2.0's buffer for a task graph's task list (TornadoTaskGraph.highLevelCode). */
    static final int GRAPH_CODE_BYTES = 8192;

    /**
     * TornadoVM 5.2.0's node limit of a task graph's dependency graph (TornadoGraph, which cannot
     * grow), less room for the objects every graph holds (constants, arenas, buffers).
     */
    static final int GRAPH_NODES = 1024 - 160;

    /** System property: at most this many layers per task graph (default: as many as fit). */
    static final String LAYERS_PER_GRAPH_PROPERTY = "flinkqwen.tornado.resident.layersPerGraph";

    private final Object lock;
    private final AtomicLong launches;
    private final int layers;
    private final int kvDim;
    private final int hidden;
    private final int vocab;
    private final int positions;
    private final List<Group> groups = new ArrayList<>();
    private long ownLaunches;
    private boolean closed;

    /** What a matrix is on the device: its arena (bytes or floats) and offset there. */
    record Placed(DType dtype, ByteArray bytes, FloatArray floats, int offset, long size) {
        boolean followedBy(Placed next) {
            return next.dtype == dtype && next.bytes == bytes && next.floats == floats && next.offset == offset + size;
        }
    }

    /** The backend's placement of a matrix (its arenas). */
    interface Placements {
        Placed of(WeightMatrix w);
    }

    /** Inputs shared by the groups (each plan copies them to the device once). */
    private record Constants(
            FloatArray pow2, FloatArray norms, FloatArray biases, FloatArray cos, FloatArray sin, FloatArray fp) {}

    TornadoResidentDecoder(
            DenseDecoderSpec spec, int positions, Placements where, FloatArray pow2, Object lock, AtomicLong launches,
            String name) {
        this.lock = lock;
        this.launches = launches;
        this.layers = spec.layers().size();
        this.kvDim = spec.kvDim();
        this.hidden = spec.hidden();
        this.vocab = spec.vocab();
        this.positions = positions;
        int half = spec.headDim() / 2;
        int qkvDim = hidden + 2 * kvDim;

        float[] normsHost = new float[(2 * layers + 1) * hidden];
        float[] biasHost = new float[layers * qkvDim];
        for (int l = 0; l < layers; l++) {
            DenseDecoderSpec.Layer w = spec.layers().get(l);
            System.arraycopy(w.attnNorm(), 0, normsHost, 2 * l * hidden, hidden);
            System.arraycopy(w.ffnNorm(), 0, normsHost, (2 * l + 1) * hidden, hidden);
            System.arraycopy(w.bq(), 0, biasHost, l * qkvDim, hidden);
            System.arraycopy(w.bk(), 0, biasHost, l * qkvDim + hidden, kvDim);
            System.arraycopy(w.bv(), 0, biasHost, l * qkvDim + hidden + kvDim, kvDim);
        }
        System.arraycopy(spec.outputNorm(), 0, normsHost, 2 * layers * hidden, hidden);
        Constants c = new Constants(pow2, FloatArray.fromArray(normsHost), FloatArray.fromArray(biasHost),
                FloatArray.fromArray(Arrays.copyOf(spec.ropeCos(), positions * half)),
                FloatArray.fromArray(Arrays.copyOf(spec.ropeSin(), positions * half)),
                FloatArray.fromArray(new float[] {spec.eps(), (float) (1.0 / Math.sqrt(spec.headDim()))}));

        // consecutive layers per group, as many as TornadoVM's task-list buffer holds
        int cap = Integer.getInteger(LAYERS_PER_GRAPH_PROPERTY, Integer.MAX_VALUE);
        int budget = GRAPH_CODE_BYTES - taskBytes(6) - taskBytes(6); // room for the head's two tasks
        int l0 = 0;
        while (l0 < layers) {
            int l1 = l0;
            int bytes = 0;
            int nodes = 0;
            while (l1 < layers && l1 - l0 < cap && bytes + layerBytes(spec.layers().get(l1), where) <= budget
                    && nodes + LAYER_NODES <= GRAPH_NODES) {
                bytes += layerBytes(spec.layers().get(l1), where);
                nodes += LAYER_NODES;
                l1++;
            }
            if (l1 == l0) {
                throw new IllegalStateException("one layer's tasks exceed a TornadoVM task graph's " + GRAPH_CODE_BYTES + " bytes");
            }
            groups.add(new Group(spec, c, where, l0, l1, l1 == layers, name + "g" + groups.size()));
            l0 = l1;
        }
    }

    /**
     * Graph nodes of one layer's tasks, at most: per task its node, its parameter array's object
     * and copy-in nodes and one node per array it writes (two more per task where q/k/v or
     * gate/up are separate products).
     */
    static final int LAYER_NODES = 9 * 3 + 13 /* arrays written: 4 by rope, 2 by attention, 1 by each other task */
            + 3 * 4 /* q, k, v and gate, up as separate products */;

    /** Bytes a task with {@code args} arguments (the KernelContext included) takes in a graph's task list. */
    static int taskBytes(int args) {
        return 14 + 5 * args;
    }

    private static int layerBytes(DenseDecoderSpec.Layer w, Placements where) {
        return taskBytes(6) * 2 // rmsnorms
                + matVecBytes(where, w.wq(), w.wk(), w.wv()) + taskBytes(11) /* rope */ + taskBytes(9) /* attention */
                + matVecBytes(where, w.wo()) + matVecBytes(where, w.gate(), w.up()) + taskBytes(4) /* swiglu */
                + matVecBytes(where, w.down());
    }

    private static int matVecBytes(Placements where, WeightMatrix... ms) {
        int args = ms[0].dtype() == DType.F32 ? 5 : 6;
        boolean together = true;
        for (int i = 1; i < ms.length; i++) {
            together &= where.of(ms[i - 1]).followedBy(where.of(ms[i]));
        }
        return (together ? 1 : ms.length) * taskBytes(args);
    }

    private static WorkerGrid1D grid(int threads) {
        WorkerGrid1D g = new WorkerGrid1D(Math.max(WG, (threads + WG - 1) / WG * WG));
        g.setLocalWork(WG, 1, 1);
        return g;
    }

    /**
     * Layers {@code [l0, l1)} (and, in the last group, the final norm and the LM head) as one
     * plan: graph 0 uploads staged KV rows, graph 1 is the step. Its KV cache holds its own
     * layers only, layer {@code l} at {@code (l - l0) * positions * kvDim}.
     */
    private final class Group {
        final int l0;
        final int l1;
        final boolean last;
        final FloatArray x;
        final IntArray step;
        final FloatArray logits;
        final FloatArray newKv;
        final FloatArray keysIn;
        final FloatArray valuesIn;
        final IntArray importP;
        final TornadoExecutionPlan plan;
        final String name;
        final GridScheduler grids = new GridScheduler();
        final List<Object> constants = new ArrayList<>();
        final Set<Object> arenas = new LinkedHashSet<>();
        final Placements where;
        final FloatArray pow2;
        final KernelContext ctx = new KernelContext(); // one for every task of the step graph: fewer graph nodes
        TaskGraph graph;

        Group(DenseDecoderSpec spec, Constants c, Placements where, int l0, int l1, boolean last, String name) {
            this.l0 = l0;
            this.l1 = l1;
            this.last = last;
            this.name = name;
            this.where = where;
            this.pow2 = c.pow2();
            int n = l1 - l0;
            int ffn = spec.ffn();
            int half = spec.headDim() / 2;
            int qkvDim = hidden + 2 * kvDim;
            long kvFloats = (long) n * positions * kvDim;
            if (kvFloats > Integer.MAX_VALUE || (long) spec.heads() * positions > Integer.MAX_VALUE) {
                // device arrays and kernel offsets are ints
                throw new IllegalStateException(String.format("a KV cache of %d layers x %d positions x %d floats "
                        + "exceeds one TornadoVM array (2^31 - 1 elements)", n, positions, kvDim));
            }
            FloatArray keys = new FloatArray((int) kvFloats);
            FloatArray values = new FloatArray((int) kvFloats);
            x = new FloatArray(hidden);
            step = new IntArray(1);
            logits = last ? new FloatArray(vocab) : null;
            newKv = new FloatArray(2 * n * kvDim);
            FloatArray xb = new FloatArray(hidden);
            FloatArray qkv = new FloatArray(qkvDim);
            FloatArray att = new FloatArray(hidden);
            FloatArray gu = new FloatArray(2 * ffn);
            FloatArray g = new FloatArray(ffn);
            FloatArray scores = new FloatArray(spec.heads() * positions);

            // graph 0: upload of staged KV rows
            keysIn = new FloatArray(n * STAGE * kvDim);
            valuesIn = new FloatArray(n * STAGE * kvDim);
            importP = IntArray.fromElements(0, 0, n, kvDim, positions);
            String importName = name + "kv";
            TaskGraph up = new TaskGraph(importName)
                    .transferToDevice(DataTransferMode.EVERY_EXECUTION, keysIn, valuesIn, importP)
                    .task("k", ResidentKernels::kvImport, new KernelContext(), keysIn, valuesIn, keys, values, importP)
                    .persistOnDevice(keys, values);
            grids.addWorkerGrid(importName + ".k", grid(n * STAGE * kvDim));

            // graph 1: the step; parameter arrays are made first, then the graph's transfers, then its tasks
            constants.addAll(List.of(c.pow2(), c.norms(), c.biases(), c.cos(), c.sin(), c.fp()));
            List<Runnable> tasks = new ArrayList<>();
            for (int l = l0; l < l1; l++) {
                DenseDecoderSpec.Layer w = spec.layers().get(l);
                int kvBase = (l - l0) * positions * kvDim;
                String at = "l" + l;
                // rmsnorm
                tasks.add(rms(at + "n0", x, c, xb, 2 * l * hidden));
                // q, k, v: one product where the three lie back to back, else three into one buffer
                tasks.add(matVec(at + "qkv", new WeightMatrix[] {w.wq(), w.wk(), w.wv()}, xb, qkv, false));
                // biases, rope, kv cache
                IntArray pr = params(spec.heads(), spec.kvHeads(), spec.headDim(), l * qkvDim, kvBase, 2 * (l - l0) * kvDim);
                tasks.add(task(at + "rope", (spec.heads() + 2 * spec.kvHeads()) * half, id -> graph.task(id,
                        ResidentKernels::qkvBiasRope, ctx, qkv, c.biases(), c.cos(), c.sin(), keys, values,
                        newKv, pr, step)));
                // attention
                IntArray pa = params(spec.headDim(), spec.heads(), spec.kvHeads(), kvBase, positions);
                tasks.add(task(at + "att", spec.heads() * WG, id -> graph.task(id, ResidentKernels::attention,
                        ctx, qkv, keys, values, scores, att, pa, step, c.fp())));
                // output projection + residual
                tasks.add(matVec(at + "o", new WeightMatrix[] {w.wo()}, att, x, true));
                // rmsnorm, SwiGLU FFN, residual
                tasks.add(rms(at + "n1", x, c, xb, (2 * l + 1) * hidden));
                tasks.add(matVec(at + "gu", new WeightMatrix[] {w.gate(), w.up()}, xb, gu, false));
                IntArray ps = params(ffn, 1);
                tasks.add(task(at + "swi", ffn, id -> graph.task(id, TornadoKernels::swiGluPacked, ctx, gu, g, ps)));
                tasks.add(matVec(at + "d", new WeightMatrix[] {w.down()}, g, x, true));
            }
            if (last) {
                // final norm, LM head
                tasks.add(rms("n", x, c, xb, 2 * layers * hidden));
                tasks.add(matVec("head", new WeightMatrix[] {spec.output()}, xb, logits, false));
            }
            constants.addAll(arenas);
            graph = new TaskGraph(name)
                    .consumeFromDevice(importName, keys, values)
                    .transferToDevice(DataTransferMode.FIRST_EXECUTION, constants.toArray())
                    .transferToDevice(DataTransferMode.EVERY_EXECUTION, x, step);
            for (Runnable t : tasks) {
                t.run();
            }
            graph.transferToHost(DataTransferMode.EVERY_EXECUTION, last ? logits : x, newKv);
            plan = new TornadoExecutionPlan(up.snapshot(), graph.snapshot()).withGridScheduler(grids);
            // allocate the cache (graph 0 with nothing staged)
            execute(plan, 0);
        }

        IntArray params(int... v) {
            IntArray p = IntArray.fromElements(v);
            constants.add(p);
            return p;
        }

        /** A task added later (after the graph's transfers) by {@code add(id)}, on {@code threads} threads rounded up to WG. */
        Runnable task(String id, int threads, java.util.function.Consumer<String> add) {
            grids.addWorkerGrid(name + "." + id, grid(threads));
            return () -> add.accept(id);
        }

        Runnable rms(String id, FloatArray in, Constants c, FloatArray out, int normOffset) {
            IntArray p = params(normOffset, in.getSize());
            return task(id, WG, t -> graph.task(t, ResidentKernels::rmsNorm, ctx, in, c.norms(), out, p, c.fp()));
        }

        /** {@code y = ms x} (or {@code y += ...}): one task where the matrices lie back to back, else one each. */
        Runnable matVec(String id, WeightMatrix[] ms, FloatArray in, FloatArray out, boolean accumulate) {
            Placed[] ps = new Placed[ms.length];
            boolean together = true;
            for (int i = 0; i < ms.length; i++) {
                ps[i] = where.of(ms[i]);
                together &= i == 0 || ps[i - 1].followedBy(ps[i]);
            }
            if (together) {
                int rows = 0;
                for (WeightMatrix m : ms) {
                    rows += m.rows();
                }
                return one(id, ps[0], rows, ms[0].cols(), in, out, 0, accumulate);
            }
            List<Runnable> each = new ArrayList<>();
            for (int i = 0, yo = 0; i < ms.length; yo += ms[i].rows(), i++) {
                each.add(one(id + i, ps[i], ms[i].rows(), ms[i].cols(), in, out, yo, accumulate));
            }
            return () -> each.forEach(Runnable::run);
        }

        private Runnable one(String id, Placed w, int rows, int cols, FloatArray in, FloatArray out, int yOffset, boolean acc) {
            IntArray p = params(w.offset(), rows, cols, yOffset, acc ? 1 : 0);
            switch (w.dtype()) {
                case F32:
                    arenas.add(w.floats());
                    return task(id, rows * WG, t -> graph.task(t, ResidentKernels::matVecF32, ctx, w.floats(), in, out, p));
                case F16:
                    arenas.add(w.bytes());
                    return task(id, rows * WG, t -> graph.task(t, ResidentKernels::matVecF16, ctx, w.bytes(), in, out, p, pow2));
                case Q8_0:
                    arenas.add(w.bytes());
                    return task(id, rows * WG, t -> graph.task(t, ResidentKernels::matVecQ8_0, ctx, w.bytes(), in, out, p, pow2));
                default:
                    throw new UnsupportedOperationException("no resident mat-vec for " + w.dtype());
            }
        }

        /** Uploads positions {@code [from, from + count)} of this group's layers from the decoder-wide staging layout. */
        void upload(int from, int count, float[] keys, float[] values) {
            int n = l1 - l0;
            for (int t0 = 0; t0 < count; t0 += STAGE) {
                int m = Math.min(STAGE, count - t0);
                for (int l = 0; l < n; l++) {
                    int src = ((l0 + l) * count + t0) * kvDim;
                    long dst = 4L * l * m * kvDim;
                    MemorySegment.copy(keys, src, keysIn.getSegment(), ValueLayout.JAVA_FLOAT, dst, m * kvDim);
                    MemorySegment.copy(values, src, valuesIn.getSegment(), ValueLayout.JAVA_FLOAT, dst, m * kvDim);
                }
                importP.set(0, m);
                importP.set(1, from + t0);
                execute(plan, 0);
            }
        }
    }

    private void execute(TornadoExecutionPlan plan, int graph) {
        plan.withGraph(graph).execute();
        ownLaunches++;
        launches.incrementAndGet();
    }

    /** Task graphs per step (groups of layers): launches per token. */
    int graphsPerStep() {
        return groups.size();
    }

    @Override
    public int positions() {
        return positions;
    }

    @Override
    public void upload(int from, int count, float[] keys, float[] values) {
        if (from < 0 || count < 0 || from + count > positions) {
            throw new IllegalArgumentException(
                    "upload of positions [" + from + ", " + (from + count) + ") outside the device cache's " + positions);
        }
        long need = (long) layers * count * kvDim;
        if (keys.length < need || values.length < need) {
            throw new IllegalArgumentException("upload of " + count + " positions needs " + need + " floats of keys and of values, got "
                    + keys.length + " and " + values.length);
        }
        synchronized (lock) {
            checkOpen();
            for (Group g : groups) {
                g.upload(from, count, keys, values);
            }
        }
    }

    @Override
    public void decode(float[] embedding, int position, float[] logitsOut, float[] newKvOut) {
        if (position < 0 || position >= positions) {
            throw new IllegalArgumentException("position " + position + " outside the device cache's " + positions + " positions");
        }
        if (embedding.length < hidden || logitsOut.length < vocab || newKvOut.length < 2 * layers * kvDim) {
            throw new IllegalArgumentException(String.format(
                    "decode needs an embedding of %d, logits of %d and newKv of %d floats, got %d, %d, %d",
                    hidden, vocab, 2 * layers * kvDim, embedding.length, logitsOut.length, newKvOut.length));
        }
        synchronized (lock) {
            checkOpen();
            MemorySegment.copy(embedding, 0, groups.get(0).x.getSegment(), ValueLayout.JAVA_FLOAT, 0, hidden);
            for (int i = 0; i < groups.size(); i++) {
                Group g = groups.get(i);
                if (i > 0) {
                    // the residual stream from the previous group, through the host
                    MemorySegment.copy(groups.get(i - 1).x.getSegment(), 0, g.x.getSegment(), 0, 4L * hidden);
                }
                g.step.set(0, position);
                execute(g.plan, 1);
                MemorySegment.copy(g.newKv.getSegment(), ValueLayout.JAVA_FLOAT, 0, newKvOut, 2 * g.l0 * kvDim,
                        2 * (g.l1 - g.l0) * kvDim);
            }
            MemorySegment.copy(groups.get(groups.size() - 1).logits.getSegment(), ValueLayout.JAVA_FLOAT, 0, logitsOut, 0, vocab);
        }
    }

    @Override
    public long launches() {
        return ownLaunches;
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("resident decoder is closed");
        }
    }

    @Override
    public void close() {
        synchronized (lock) {
            if (!closed) {
                closed = true;
                for (Group g : groups) {
                    try {
                        g.plan.close();
                    } catch (Exception e) {
                        throw new IllegalStateException("cannot free the resident decoder's TornadoVM plan", e);
                    }
                }
            }
        }
    }
}
