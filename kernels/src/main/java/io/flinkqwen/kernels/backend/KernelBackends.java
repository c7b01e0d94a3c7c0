/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels.backend;

import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.KernelPool;
import io.flinkqwen.kernels.WeightMatrix;
import java.util.Collection;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import java.util.ServiceLoader;
import java.util.Set;
import java.util.TreeMap;

/**
 * Chooses the kernel backend: {@code cpu}, a named backend found through {@link
 * KernelBackendProvider}, or {@code auto} (the first provider that opens, else the CPU). The
 * choice is logged once per JVM and device name, in one line.
 *
 * <p>The common plumbing is the system property {@value #DEVICE_PROPERTY}: the command line's
 * {@code --device} and the operator's option set it; {@link #fromSystemProperty} reads it (default
 * {@code auto}). One backend per name per JVM: opened once, shared by every model.
 */
public final class KernelBackends {

    /** System property naming the device: {@code auto} (default), {@code cpu}, {@code tornado}. */
    public static final String DEVICE_PROPERTY = "flinkqwen.device";

    private static final System.Logger LOG = System.getLogger(KernelBackends.class.getName());
    private static final Map<String, KernelBackend> OPENED = new HashMap<>();

    private KernelBackends() {}

    /** The backend {@value #DEVICE_PROPERTY} names (default {@code auto}), with CPU fallback per op. */
    public static KernelBackend fromSystemProperty() {
        return select(System.getProperty(DEVICE_PROPERTY, "auto"));
    }

    /**
     * The backend for {@code device} ({@code auto}, {@code cpu} or a provider's name), wrapped with
     * {@link #withCpuFallback}.
     *
     * @throws IllegalArgumentException if a named backend is not on the class path or cannot open
     *     (the message says why); {@code auto} never throws, it falls back to the CPU
     */
    public static synchronized KernelBackend select(String device) {
        String name = device == null || device.isBlank() ? "auto" : device.trim().toLowerCase(Locale.ROOT);
        KernelBackend cached = OPENED.get(name);
        if (cached != null) {
            return cached;
        }
        KernelBackend chosen;
        if (name.equals("cpu")) {
            chosen = CpuKernelBackend.INSTANCE;
            LOG.log(System.Logger.Level.INFO, "kernels: cpu backend (--device cpu)");
        } else if (name.equals("auto")) {
            chosen = openAuto();
        } else {
            Map<String, KernelBackendProvider> providers = providers();
            KernelBackendProvider p = providers.get(name);
            if (p == null) {
                throw new IllegalArgumentException("no kernel backend '" + name + "' on the class path (found: cpu"
                        + (providers.isEmpty() ? "" : ", " + String.join(", ", providers.keySet()))
                        + "); the tornado backend needs TornadoVM and the kernels-tornado module, see the README");
            }
            try {
                chosen = withCpuFallback(p.open());
            } catch (KernelBackendProvider.UnavailableBackendException e) {
                throw new IllegalArgumentException("kernel backend '" + name + "' cannot run here: " + e.getMessage(), e);
            }
            LOG.log(System.Logger.Level.INFO, "kernels: " + name + " backend on " + chosen.description());
        }
        OPENED.put(name, chosen);
        return chosen;
    }

    private static KernelBackend openAuto() {
        StringBuilder why = new StringBuilder();
        for (KernelBackendProvider p : providers().values()) {
            try {
                KernelBackend b = withCpuFallback(p.open());
                LOG.log(System.Logger.Level.INFO, "kernels: " + p.name() + " backend on " + b.description() + " (--device auto)");
                return b;
            } catch (KernelBackendProvider.UnavailableBackendException | RuntimeException | LinkageError e) {
                why.append("; ").append(p.name()).append(": ").append(e.getMessage());
            }
        }
        LOG.log(System.Logger.Level.INFO, "kernels: cpu backend (--device auto: "
                + (why.length() == 0 ? "no accelerator backend on the class path" : why.substring(2)) + ")");
        return CpuKernelBackend.INSTANCE;
    }

    /**
     * The providers on the class path, by name. One that cannot be loaded (kernels-tornado's Java
     * 25 classes on an older JVM) is left out, and logged.
     */
    public static Map<String, KernelBackendProvider> providers() {
        Map<String, KernelBackendProvider> out = new TreeMap<>();
        java.util.Iterator<KernelBackendProvider> it =
                ServiceLoader.load(KernelBackendProvider.class, KernelBackends.class.getClassLoader()).iterator();
        while (true) {
            try {
                if (!it.hasNext()) {
                    break;
                }
                KernelBackendProvider p = it.next();
                out.putIfAbsent(p.name(), p);
            } catch (java.util.ServiceConfigurationError | LinkageError e) {
                LOG.log(System.Logger.Level.WARNING, "kernels: a backend on the class path cannot load here: " + e);
            }
        }
        return out;
    }

    /**
     * {@code backend} for the ops and weight formats it supports, the CPU kernels for the rest,
     * decided per call from {@link KernelBackend#supports}. The CPU backend is returned as is.
     */
    public static KernelBackend withCpuFallback(KernelBackend backend) {
        if (backend == CpuKernelBackend.INSTANCE || backend instanceof Fallback) {
            return backend;
        }
        return new Fallback(backend);
    }

    /** Per-op dispatch to an accelerator backend or the CPU. */
    private static final class Fallback implements KernelBackend {
        private final KernelBackend device;
        private final KernelBackend cpu = CpuKernelBackend.INSTANCE;
        private final Set<KernelOp> ops = EnumSet.noneOf(KernelOp.class);
        private final Set<DType> matMulTypes = EnumSet.noneOf(DType.class);

        Fallback(KernelBackend device) {
            this.device = device;
            for (KernelOp op : KernelOp.values()) {
                if (op != KernelOp.MATMUL && op != KernelOp.FFN_BLOCK && device.supports(op, null)) {
                    ops.add(op);
                }
            }
            for (DType t : DType.values()) {
                if (device.supports(KernelOp.MATMUL, t)) {
                    matMulTypes.add(t);
                }
            }
        }

        private KernelBackend on(KernelOp op) {
            return ops.contains(op) ? device : cpu;
        }

        private KernelBackend on(WeightMatrix w) {
            return matMulTypes.contains(w.dtype()) ? device : cpu;
        }

        @Override
        public String name() {
            return device.name();
        }

        @Override
        public String description() {
            Set<KernelOp> onCpu = EnumSet.complementOf(EnumSet.copyOf(withMatMul()));
            onCpu.remove(KernelOp.FFN_BLOCK);
            Set<DType> cpuTypes = matMulTypes.isEmpty() ? EnumSet.allOf(DType.class) : EnumSet.complementOf(EnumSet.copyOf(matMulTypes));
            return device.description() + " (on the CPU: ops " + onCpu + ", MATMUL of " + cpuTypes + ")";
        }

        private Set<KernelOp> withMatMul() {
            Set<KernelOp> s = EnumSet.noneOf(KernelOp.class);
            s.addAll(ops);
            if (!matMulTypes.isEmpty()) {
                s.add(KernelOp.MATMUL);
            }
            return s;
        }

        /** Everything runs somewhere; the fused FFN block only where the device fuses it. */
        @Override
        public boolean supports(KernelOp op, DType weights) {
            return op != KernelOp.FFN_BLOCK || device.supports(op, weights);
        }

        @Override
        public void ffnBlock(
                KernelPool pool, float[] x, float[] norm, float eps, WeightMatrix gate, WeightMatrix up,
                WeightMatrix down, int rows) {
            device.ffnBlock(pool, x, norm, eps, gate, up, down, rows);
        }

        @Override
        public void prepare(Collection<WeightMatrix> weights) {
            java.util.List<WeightMatrix> mine = new java.util.ArrayList<>();
            for (WeightMatrix w : weights) {
                if (matMulTypes.contains(w.dtype())) {
                    mine.add(w);
                }
            }
            device.prepare(mine);
        }

        @Override
        public void matMul(KernelPool pool, float[] out, WeightMatrix w, float[] x, int nTokens) {
            on(w).matMul(pool, out, w, x, nTokens);
        }

        @Override
        public void matMulMany(KernelPool pool, float[][] outs, WeightMatrix[] ws, float[] x, int nTokens) {
            for (WeightMatrix w : ws) {
                if (on(w) != device) {
                    KernelBackend.super.matMulMany(pool, outs, ws, x, nTokens);
                    return;
                }
            }
            device.matMulMany(pool, outs, ws, x, nTokens);
        }

        @Override
        public void matMulEach(KernelPool pool, float[][] outs, WeightMatrix[] ws, float[][] xs, int[] tokens, int count) {
            for (int i = 0; i < count; i++) {
                if (on(ws[i]) != device) {
                    KernelBackend.super.matMulEach(pool, outs, ws, xs, tokens, count);
                    return;
                }
            }
            device.matMulEach(pool, outs, ws, xs, tokens, count);
        }

        @Override
        public void rmsNorm(float[] out, float[] x, float[] weight, int width, int rows, float eps) {
            on(KernelOp.RMS_NORM).rmsNorm(out, x, weight, width, rows, eps);
        }

        @Override
        public void ropeNeox(float[] x, int rowStride, int rows, int nHeads, int headDim, float[] cos, float[] sin, int[] positions) {
            on(KernelOp.ROPE_NEOX).ropeNeox(x, rowStride, rows, nHeads, headDim, cos, sin, positions);
        }

        @Override
        public void attention(
                float[] out, float[] q, float[] keys, float[] values, int kvStride, int nHeads, int nKvHeads,
                int headDim, int nPositions, float scale) {
            on(KernelOp.ATTENTION).attention(out, q, keys, values, kvStride, nHeads, nKvHeads, headDim, nPositions, scale);
        }

        @Override
        public void softmaxInPlace(float[] x, int off, int n) {
            on(KernelOp.SOFTMAX).softmaxInPlace(x, off, n);
        }

        @Override
        public void swiGlu(float[] out, float[] gate, float[] up, int n) {
            on(KernelOp.SWIGLU).swiGlu(out, gate, up, n);
        }

        @Override
        public void swiGluEach(KernelPool pool, float[][] outs, float[][] gates, float[][] ups, int[] ns, int count) {
            on(KernelOp.SWIGLU).swiGluEach(pool, outs, gates, ups, ns, count);
        }

        @Override
        public void addInPlace(float[] acc, float[] x, int n) {
            on(KernelOp.ADD).addInPlace(acc, x, n);
        }

        @Override
        public void routerTopK(float[] logits, int experts, int k, boolean normTopkProb, int[] ids, float[] weights, int rows) {
            on(KernelOp.ROUTER_TOP_K).routerTopK(logits, experts, k, normTopkProb, ids, weights, rows);
        }

        @Override
        public java.util.Optional<ResidentDecoder> residentDecoder(DenseDecoderSpec spec, int positions) {
            return device.residentDecoder(spec, positions);
        }

        @Override
        public long launches() {
            return device.launches();
        }

        @Override
        public void close() {
            device.close();
        }

        @Override
        public String toString() {
            return name() + " (CPU fallback per op)";
        }
    }
}
