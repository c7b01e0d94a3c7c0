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
import java.util.function.BiConsumer;
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
 * A whole dense decode step as one TornadoVM task graph: every layer's RMSNorm, q/k/v product,
 * biases + RoPE + KV store, attention, output product (+ residual), RMSNorm, gate/up product,
 * SwiGLU, down product (+ residual), then the final norm and the LM head: {@code 9 * layers + 2}
 * kernels (more where q/k/v or gate/up do not lie back to back in one weight arena), one plan
 * execution per token. In: the embedding row and the position; out: the logits and the token's
 * new keys and values. On the device for the decoder's life: the weights (its own copy of the
 * backend's arenas), norms, biases, RoPE tables, the residual stream and scratch, and the KV cache
 * of {@link #positions()} positions (F32, every layer).
 *
 * <p>The plan holds two graphs: 0 copies staged KV rows into the cache ({@link #upload}, {@value
 * #STAGE} positions per execution), 1 is the step. The cache arrays are allocated by graph 0,
 * kept there ({@code persistOnDevice}) and used by graph 1 ({@code consumeFromDevice}), so
 * neither copies the cache between host and device.
 */
final class TornadoResidentDecoder implements ResidentDecoder {

    /** Positions per upload execution. */
    static final int STAGE = 16;

    private final Object lock;
    private final AtomicLong launches;
    private final int layers;
    private final int kvDim;
    private final int hidden;
    private final int vocab;
    private final int positions;
    private final FloatArray x;
    private final IntArray step;
    private final FloatArray logits;
    private final FloatArray newKv;
    private final FloatArray keysIn;
    private final FloatArray valuesIn;
    private final IntArray importP;
    private final TornadoExecutionPlan plan;
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
        int ffn = spec.ffn();
        int half = spec.headDim() / 2;
        int qkvDim = hidden + 2 * kvDim;

        // constant inputs, copied once
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
        FloatArray norms = FloatArray.fromArray(normsHost);
        FloatArray biases = FloatArray.fromArray(biasHost);
        FloatArray cos = FloatArray.fromArray(Arrays.copyOf(spec.ropeCos(), positions * half));
        FloatArray sin = FloatArray.fromArray(Arrays.copyOf(spec.ropeSin(), positions * half));
        FloatArray fp = FloatArray.fromArray(new float[] {spec.eps(), (float) (1.0 / Math.sqrt(spec.headDim()))});

        // the device state: KV cache, residual stream, scratch
        FloatArray keys = new FloatArray(layers * positions * kvDim);
        FloatArray values = new FloatArray(layers * positions * kvDim);
        x = new FloatArray(hidden);
        step = new IntArray(1);
        logits = new FloatArray(vocab);
        newKv = new FloatArray(2 * layers * kvDim);
        FloatArray xb = new FloatArray(hidden);
        FloatArray qkv = new FloatArray(qkvDim);
        FloatArray att = new FloatArray(hidden);
        FloatArray gu = new FloatArray(2 * ffn);
        FloatArray g = new FloatArray(ffn);
        FloatArray scores = new FloatArray(spec.heads() * positions);

        // graph 0: upload of staged KV rows
        keysIn = new FloatArray(layers * STAGE * kvDim);
        valuesIn = new FloatArray(layers * STAGE * kvDim);
        importP = IntArray.fromElements(0, 0, layers, kvDim, positions);
        String importName = name + "kv";
        TaskGraph up = new TaskGraph(importName)
                .transferToDevice(DataTransferMode.EVERY_EXECUTION, keysIn, valuesIn, importP)
                .task("k", ResidentKernels::kvImport, new KernelContext(), keysIn, valuesIn, keys, values, importP)
                .persistOnDevice(keys, values);
        GridScheduler grids = new GridScheduler();
        grids.addWorkerGrid(importName + ".k", grid(layers * STAGE * kvDim));

        // graph 1: the step (tasks recorded first, to be added after the graph's transfers)
        Set<Object> arenas = new LinkedHashSet<>();
        List<Object> constants = new ArrayList<>(List.of(pow2, norms, biases, cos, sin, fp));
        Steps tasks = new Steps(grids, name, constants, arenas, pow2, where);
        for (int l = 0; l < layers; l++) {
            DenseDecoderSpec.Layer w = spec.layers().get(l);
            int kvBase = l * positions * kvDim;
            String at = "l" + l;
            // rmsnorm
            tasks.rms(at + "n0", x, norms, xb, 2 * l * hidden, fp);
            // q, k, v: one product where the three lie back to back, else three into one buffer
            tasks.matVec(at + "qkv", new WeightMatrix[] {w.wq(), w.wk(), w.wv()}, xb, qkv, false);
            // biases, rope, kv cache
            IntArray pr = tasks.params(spec.heads(), spec.kvHeads(), spec.headDim(), l * qkvDim, kvBase, 2 * l * kvDim);
            tasks.add(at + "rope", (t, id) -> t.task(id, ResidentKernels::qkvBiasRope, new KernelContext(), qkv, biases, cos,
                    sin, keys, values, newKv, pr, step), (spec.heads() + 2 * spec.kvHeads()) * half);
            // attention
            IntArray pa = tasks.params(spec.headDim(), spec.heads(), spec.kvHeads(), kvBase, positions);
            tasks.add(at + "att", (t, id) -> t.task(id, ResidentKernels::attention, new KernelContext(), qkv, keys, values,
                    scores, att, pa, step, fp), spec.heads() * WG);
            // output projection + residual
            tasks.matVec(at + "o", new WeightMatrix[] {w.wo()}, att, x, true);
            // rmsnorm, SwiGLU FFN, residual
            tasks.rms(at + "n1", x, norms, xb, (2 * l + 1) * hidden, fp);
            tasks.matVec(at + "gu", new WeightMatrix[] {w.gate(), w.up()}, xb, gu, false);
            IntArray ps = tasks.params(ffn, 1);
            tasks.add(at + "swi", (t, id) -> t.task(id, TornadoKernels::swiGluPacked, new KernelContext(), gu, g, ps), ffn);
            tasks.matVec(at + "d", new WeightMatrix[] {w.down()}, g, x, true);
        }
        // final norm, LM head
        tasks.rms("n", x, norms, xb, 2 * layers * hidden, fp);
        tasks.matVec("head", new WeightMatrix[] {spec.output()}, xb, logits, false);
        constants.addAll(arenas);
        TaskGraph stepGraph = new TaskGraph(name)
                .consumeFromDevice(importName, keys, values)
                .transferToDevice(DataTransferMode.FIRST_EXECUTION, constants.toArray())
                .transferToDevice(DataTransferMode.EVERY_EXECUTION, x, step);
        tasks.replay(stepGraph);
        stepGraph.transferToHost(DataTransferMode.EVERY_EXECUTION, logits, newKv);
        plan = new TornadoExecutionPlan(up.snapshot(), stepGraph.snapshot()).withGridScheduler(grids);
        // allocate the cache (graph 0 with nothing staged)
        importP.set(0, 0);
        execute(0);
    }

    private static WorkerGrid1D grid(int threads) {
        WorkerGrid1D g = new WorkerGrid1D(Math.max(WG, (threads + WG - 1) / WG * WG));
        g.setLocalWork(WG, 1, 1);
        return g;
    }

    /** Records the step's tasks (and their parameter arrays) to add to the graph in order. */
    private static final class Steps {
        final GridScheduler grids;
        final String name;
        final List<Object> constants;
        final Set<Object> arenas;
        final FloatArray pow2;
        final Placements where;
        final List<Consumer<TaskGraph>> recorded = new ArrayList<>();

        Steps(GridScheduler grids, String name, List<Object> constants, Set<Object> arenas, FloatArray pow2,
                Placements where) {
            this.grids = grids;
            this.name = name;
            this.constants = constants;
            this.arenas = arenas;
            this.pow2 = pow2;
            this.where = where;
        }

        /** A task {@code id} added by {@code body(graph, id)}, on {@code threads} threads (rounded up to WG). */
        void add(String id, BiConsumer<TaskGraph, String> body, int threads) {
            recorded.add(t -> body.accept(t, id));
            grids.addWorkerGrid(name + "." + id, grid(threads));
        }

        IntArray params(int... v) {
            IntArray p = IntArray.fromElements(v);
            constants.add(p);
            return p;
        }

        void rms(String id, FloatArray in, FloatArray norms, FloatArray out, int normOffset, FloatArray fp) {
            IntArray p = params(normOffset, in.getSize());
            recorded.add(t -> t.task(id, ResidentKernels::rmsNorm, new KernelContext(), in, norms, out, p, fp));
            grids.addWorkerGrid(name + "." + id, grid(WG));
        }

        /** {@code y = ms x} (or {@code y += ...}): one task where the matrices lie back to back, else one each. */
        void matVec(String id, WeightMatrix[] ms, FloatArray in, FloatArray out, boolean accumulate) {
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
                one(id, ps[0], rows, ms[0].cols(), in, out, 0, accumulate);
                return;
            }
            for (int i = 0, yo = 0; i < ms.length; yo += ms[i].rows(), i++) {
                one(id + i, ps[i], ms[i].rows(), ms[i].cols(), in, out, yo, accumulate);
            }
        }

        private void one(String id, Placed w, int rows, int cols, FloatArray in, FloatArray out, int yOffset, boolean acc) {
            IntArray p = params(w.offset(), rows, cols, yOffset, acc ? 1 : 0);
            switch (w.dtype()) {
                case F32:
                    arenas.add(w.floats());
                    recorded.add(t -> t.task(id, ResidentKernels::matVecF32, new KernelContext(), w.floats(), in, out, p));
                    break;
                case F16:
                    arenas.add(w.bytes());
                    recorded.add(t -> t.task(id, ResidentKernels::matVecF16, new KernelContext(), w.bytes(), in, out, p, pow2));
                    break;
                case Q8_0:
                    arenas.add(w.bytes());
                    recorded.add(t -> t.task(id, ResidentKernels::matVecQ8_0, new KernelContext(), w.bytes(), in, out, p, pow2));
                    break;
                default:
                    throw new UnsupportedOperationException("no resident mat-vec for " + w.dtype());
            }
            grids.addWorkerGrid(name + "." + id, grid(rows * WG));
        }

        void replay(TaskGraph g) {
            for (Consumer<TaskGraph> r : recorded) {
                r.accept(g);
            }
        }
    }

    private void execute(int graph) {
        plan.withGraph(graph).execute();
        ownLaunches++;
        launches.incrementAndGet();
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
            for (int t0 = 0; t0 < count; t0 += STAGE) {
                int n = Math.min(STAGE, count - t0);
                for (int l = 0; l < layers; l++) {
                    long src = ((long) l * count + t0) * kvDim;
                    long dst = 4L * l * n * kvDim;
                    MemorySegment.copy(keys, (int) src, keysIn.getSegment(), ValueLayout.JAVA_FLOAT, dst, n * kvDim);
                    MemorySegment.copy(values, (int) src, valuesIn.getSegment(), ValueLayout.JAVA_FLOAT, dst, n * kvDim);
                }
                importP.set(0, n);
                importP.set(1, from + t0);
                execute(0);
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
            MemorySegment.copy(embedding, 0, x.getSegment(), ValueLayout.JAVA_FLOAT, 0, hidden);
            step.set(0, position);
            execute(1);
            MemorySegment.copy(logits.getSegment(), ValueLayout.JAVA_FLOAT, 0, logitsOut, 0, vocab);
            MemorySegment.copy(newKv.getSegment(), ValueLayout.JAVA_FLOAT, 0, newKvOut, 0, 2 * layers * kvDim);
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
                try {
                    plan.close();
                } catch (Exception e) {
                    throw new IllegalStateException("cannot free the resident decoder's TornadoVM plan", e);
                }
            }
        }
    }
}
