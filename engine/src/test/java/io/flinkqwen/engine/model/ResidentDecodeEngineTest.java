/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.engine.LoadedModel;
import io.flinkqwen.engine.testmodel.TestModelGenerator;
import io.flinkqwen.kernels.DType;
import io.flinkqwen.kernels.KernelPool;
import io.flinkqwen.kernels.Quantize;
import io.flinkqwen.kernels.WeightMatrix;
import io.flinkqwen.kernels.backend.CpuKernelBackend;
import io.flinkqwen.kernels.backend.DenseDecoderSpec;
import io.flinkqwen.kernels.backend.KernelBackend;
import io.flinkqwen.kernels.backend.KernelOp;
import io.flinkqwen.kernels.backend.ResidentDecoder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * How the engine drives a {@link ResidentDecoder} (issue 7), without a device: a backend whose
 * resident decoder is a plain-Java decode step written here (float64 sums, from the {@link
 * DenseDecoderSpec} alone) runs beside the CPU backend. Checks that the engine hands over the
 * right weights and RoPE tables, uploads what the device lacks (after prefill, on growth, on a
 * switch of sequence, after a truncation), writes each step's keys and values back into the host
 * cache, and falls back to the per-op path where the backend has no resident decoder. The
 * device kernels themselves are checked by {@link ResidentDecodeTest} on TornadoVM.
 */
class ResidentDecodeEngineTest {

    /** float64 reference against float CPU kernels over 3 layers. */
    static final double TOL = 1e-4;
    static final int[] PROMPT = {84, 104, 101, 32, 108, 111, 103, 300, 257, 19};

    @TempDir static Path dir;
    static KernelPool pool;
    static LoadedModel model;

    @BeforeAll
    static void open() throws Exception {
        pool = new KernelPool(2);
        Path file = dir.resolve("dense.gguf");
        new TestModelGenerator(TestModelGenerator.tinyConfig(), 11).write(TestModelGenerator.Format.GGUF, DType.F32, file, 0);
        model = LoadedModel.open(file);
    }

    @AfterAll
    static void close() throws Exception {
        model.close();
        pool.close();
    }

    @Test
    void decodeRunsOnTheResidentDecoderWithUploadsWhereTheDeviceLacksPositions() {
        FakeDevice fake = new FakeDevice(true);
        System.setProperty(ResidentDecode.POSITIONS_PROPERTY, "16");
        try {
            Qwen2Model cpu = new Qwen2Model(model.config(), model.weights(), pool, 4, null, CpuKernelBackend.INSTANCE, KvFormat.F32);
            Qwen2Model dev = new Qwen2Model(model.config(), model.weights(), pool, 4, null, fake, KvFormat.F32);
            KvCache c = cpu.newCache(8);
            KvCache d = dev.newCache(8);
            float[] a = cpu.forward(c, PROMPT, 0, PROMPT.length);
            float[] b = dev.forward(d, PROMPT, 0, PROMPT.length);
            assertTrue(fake.decoders.isEmpty(), "prefill stays on the per-op path");
            for (int step = 0; step < 14; step++) {
                int[] next = {Logits.argmax(a)};
                a = cpu.forward(c, next, 0, 1);
                b = dev.forward(d, next, 0, 1);
                assertClose(a, b, TOL, "step " + step);
            }
            assertEquals(14, dev.residentSteps());
            // a decoder of 16 positions at position 10, one of 32 at position 16 (doubled)
            assertEquals(2, fake.decoders.size());
            assertEquals(16, fake.decoders.get(0).positions());
            assertEquals(32, fake.decoders.get(1).positions());
            assertTrue(fake.decoders.get(0).closed, "the outgrown decoder is closed");
            assertEquals(List.of("0+10"), fake.decoders.get(0).uploads);
            assertEquals(List.of("0+16"), fake.decoders.get(1).uploads);
            assertEquals(6 + 8, fake.decoders.get(0).decodes + fake.decoders.get(1).decodes);
            // the host cache holds what the CPU would have written (its keys and values, float64 vs float)
            KvBlockPool p = d.pool();
            for (int b0 = 0; b0 < d.blockCount(); b0++) {
                float[] want = c.block(b0).keysF32;
                float[] got = d.block(b0).keysF32;
                for (int i = 0; i < want.length; i++) {
                    assertEquals(want[i], got[i], TOL, "key element " + i + " of block " + b0 + " (" + p.blockPositions() + " positions)");
                }
            }
        } finally {
            System.clearProperty(ResidentDecode.POSITIONS_PROPERTY);
        }
    }

    @Test
    void switchingSequencesAndTruncatingReuploadAndKeepTheCpuLogits() {
        FakeDevice fake = new FakeDevice(true);
        Qwen2Model cpu = new Qwen2Model(model.config(), model.weights(), pool, 4, null, CpuKernelBackend.INSTANCE, KvFormat.F32);
        Qwen2Model dev = new Qwen2Model(model.config(), model.weights(), pool, 4, null, fake, KvFormat.F32);
        KvCache[] c = {cpu.newCache(8), cpu.newCache(8)};
        KvCache[] d = {dev.newCache(8), dev.newCache(8)};
        int[][] prompts = {Arrays.copyOfRange(PROMPT, 0, 7), Arrays.copyOfRange(PROMPT, 3, 10)};
        int[] next = new int[2];
        for (int s = 0; s < 2; s++) {
            next[s] = Logits.argmax(cpu.forward(c[s], prompts[s], 0, prompts[s].length));
            dev.forward(d[s], prompts[s], 0, prompts[s].length);
        }
        for (int step = 0; step < 8; step++) {
            int s = step % 2;
            if (step == 4) {
                c[0].truncate(c[0].length() - 3);
                d[0].truncate(d[0].length() - 3);
                next[0] = 401;
            }
            int[] one = {next[s]};
            float[] a = cpu.forward(c[s], one, 0, 1);
            assertClose(a, dev.forward(d[s], one, 0, 1), TOL, "step " + step + " sequence " + s);
            next[s] = Logits.argmax(a);
        }
        // one decoder; every switch uploads the whole other cache, the truncated one from 0 again
        assertEquals(1, fake.decoders.size());
        assertEquals(List.of("0+7", "0+7", "0+8", "0+8", "0+6", "0+9", "0+7", "0+10"), fake.decoders.get(0).uploads);
        // the device-written host caches, read by the per-op path
        int[] two = {5, 6};
        for (int s = 0; s < 2; s++) {
            assertClose(cpu.forward(c[s], two, 0, 2), dev.forward(d[s], two, 0, 2), TOL, "per-op after resident, sequence " + s);
        }
    }

    @Test
    void f16HostCacheGetsTheDeviceKeysAndValuesInItsFormat() {
        FakeDevice fake = new FakeDevice(true);
        Qwen2Model cpu = new Qwen2Model(model.config(), model.weights(), pool, 4, null, CpuKernelBackend.INSTANCE, KvFormat.F16);
        Qwen2Model dev = new Qwen2Model(model.config(), model.weights(), pool, 4, null, fake, KvFormat.F16);
        KvCache c = cpu.newCache(8);
        KvCache d = dev.newCache(8);
        int id = Logits.argmax(cpu.forward(c, PROMPT, 0, PROMPT.length));
        dev.forward(d, PROMPT, 0, PROMPT.length);
        for (int step = 0; step < 6; step++) {
            int[] one = {id};
            float[] a = cpu.forward(c, one, 0, 1);
            // the device attends over F32 keys of its own steps, the CPU over F16 ones
            assertClose(a, dev.forward(d, one, 0, 1), 2e-2, "F16 step " + step);
            id = Logits.argmax(a);
        }
        assertEquals(6, dev.residentSteps());
        // the last step's keys and values, as the decoder gave them, rounded to F16 in the host cache
        float[] newKv = fake.decoders.get(0).lastNewKv;
        int kvDim = model.config().kvDim();
        int pos = d.length() - 1;
        int bp = d.pool().blockPositions();
        KvBlock blk = d.block(pos / bp);
        for (int l = 0; l < model.config().numHiddenLayers(); l++) {
            short[] k = new short[kvDim];
            short[] v = new short[kvDim];
            io.flinkqwen.kernels.Attention.toF16Clamped(k, 0, newKv, 2 * l * kvDim, kvDim);
            io.flinkqwen.kernels.Attention.toF16Clamped(v, 0, newKv, (2 * l + 1) * kvDim, kvDim);
            int off = (l * bp + pos % bp) * kvDim;
            assertArrayEquals(k, Arrays.copyOfRange(blk.keysF16, off, off + kvDim), "F16 keys of layer " + l);
            assertArrayEquals(v, Arrays.copyOfRange(blk.valuesF16, off, off + kvDim), "F16 values of layer " + l);
        }
    }

    @Test
    void withoutAResidentDecoderDecodeStaysOnThePerOpPath() {
        FakeDevice fake = new FakeDevice(false);
        Qwen2Model cpu = new Qwen2Model(model.config(), model.weights(), pool, 4, null, CpuKernelBackend.INSTANCE, KvFormat.F32);
        Qwen2Model dev = new Qwen2Model(model.config(), model.weights(), pool, 4, null, fake, KvFormat.F32);
        KvCache c = cpu.newCache(8);
        KvCache d = dev.newCache(8);
        cpu.forward(c, PROMPT, 0, PROMPT.length);
        dev.forward(d, PROMPT, 0, PROMPT.length);
        int[] one = {7};
        // the per-op path runs the CPU kernels here (bit-equal on JDK 17; JDK 25's JIT may round a sum apart)
        assertClose(cpu.forward(c, one, 0, 1), dev.forward(d, one, 0, 1), 1e-5, "per-op path");
        assertEquals(0, dev.residentSteps());
        assertEquals(1, fake.asked, "asked once, then not again");
        dev.forward(d, new int[] {8}, 0, 1);
        assertEquals(1, fake.asked);
    }

    @Test
    void aResidentDecoderThatCannotBeBuiltLeavesDecodeOnThePerOpPath() {
        FakeDevice fake = new FakeDevice(true);
        fake.fail = true;
        Qwen2Model cpu = new Qwen2Model(model.config(), model.weights(), pool, 4, null, CpuKernelBackend.INSTANCE, KvFormat.F32);
        Qwen2Model dev = new Qwen2Model(model.config(), model.weights(), pool, 4, null, fake, KvFormat.F32);
        KvCache c = cpu.newCache(8);
        KvCache d = dev.newCache(8);
        cpu.forward(c, PROMPT, 0, PROMPT.length);
        dev.forward(d, PROMPT, 0, PROMPT.length);
        for (int id : new int[] {7, 8, 9}) {
            assertClose(cpu.forward(c, new int[] {id}, 0, 1), dev.forward(d, new int[] {id}, 0, 1), 1e-5, "per-op path, token " + id);
        }
        assertEquals(0, dev.residentSteps());
        assertEquals(1, fake.asked, "asked once, then not again");
        assertEquals(c.length(), d.length());
    }

    @Test
    void aTokenOutsideTheVocabularyIsRejectedNamingItsIndex() {
        Qwen2Model dev = new Qwen2Model(model.config(), model.weights(), pool, 4, null, new FakeDevice(true), KvFormat.F32);
        KvCache d = dev.newCache(8);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> dev.forward(d, new int[] {3, 99999}, 1, 1));
        assertTrue(e.getMessage().contains("99999") && e.getMessage().contains("index 1"), e.getMessage());
        assertEquals(0, d.length());
    }

    private static void assertClose(float[] want, float[] got, double tol, String what) {
        double max = 0;
        for (int i = 0; i < want.length; i++) {
            max = Math.max(max, Math.abs(want[i] - got[i]));
        }
        assertTrue(max <= tol, what + ": max |resident - cpu| logit " + max + " > " + tol);
    }

    /** The CPU kernels per op, and (if {@code resident}) a {@link ReferenceDecoder} as its resident decoder. */
    static final class FakeDevice implements KernelBackend {
        final boolean resident;
        final List<ReferenceDecoder> decoders = new ArrayList<>();
        int asked;
        boolean fail; // residentDecoder throws, as a device out of memory would

        FakeDevice(boolean resident) {
            this.resident = resident;
        }

        @Override
        public String name() {
            return "fake";
        }

        @Override
        public String description() {
            return "CPU kernels with a plain-Java resident decoder (test)";
        }

        @Override
        public boolean supports(KernelOp op, DType weights) {
            return CpuKernelBackend.INSTANCE.supports(op, weights);
        }

        @Override
        public Optional<ResidentDecoder> residentDecoder(DenseDecoderSpec spec, int positions) {
            asked++;
            if (fail) {
                throw new IllegalStateException("fake device: out of memory for the resident plans");
            }
            if (!resident) {
                return Optional.empty();
            }
            ReferenceDecoder d = new ReferenceDecoder(spec, positions);
            decoders.add(d);
            return Optional.of(d);
        }

        @Override
        public void matMul(KernelPool p, float[] out, WeightMatrix w, float[] x, int nTokens) {
            CpuKernelBackend.INSTANCE.matMul(p, out, w, x, nTokens);
        }

        @Override
        public void rmsNorm(float[] out, float[] x, float[] weight, int width, int rows, float eps) {
            CpuKernelBackend.INSTANCE.rmsNorm(out, x, weight, width, rows, eps);
        }

        @Override
        public void ropeNeox(float[] x, int rowStride, int rows, int nHeads, int headDim, float[] cos, float[] sin, int[] positions) {
            CpuKernelBackend.INSTANCE.ropeNeox(x, rowStride, rows, nHeads, headDim, cos, sin, positions);
        }

        @Override
        public void attention(float[] out, float[] q, float[] keys, float[] values, int kvStride, int nHeads, int nKvHeads,
                int headDim, int nPositions, float scale) {
            CpuKernelBackend.INSTANCE.attention(out, q, keys, values, kvStride, nHeads, nKvHeads, headDim, nPositions, scale);
        }

        @Override
        public void softmaxInPlace(float[] x, int off, int n) {
            CpuKernelBackend.INSTANCE.softmaxInPlace(x, off, n);
        }

        @Override
        public void swiGlu(float[] out, float[] gate, float[] up, int n) {
            CpuKernelBackend.INSTANCE.swiGlu(out, gate, up, n);
        }

        @Override
        public void addInPlace(float[] acc, float[] x, int n) {
            CpuKernelBackend.INSTANCE.addInPlace(acc, x, n);
        }

        @Override
        public void routerTopK(float[] logits, int experts, int k, boolean normTopkProb, int[] ids, float[] weights, int rows) {
            CpuKernelBackend.INSTANCE.routerTopK(logits, experts, k, normTopkProb, ids, weights, rows);
        }
    }

    /**
     * A decode step in plain Java from the spec alone, sums in float64: the paper's order,
     * NeoX RoPE from the spec's tables, an F32 KV cache {@code (layer, position, kvDim)}. Records
     * its uploads as {@code "from+count"}.
     */
    static final class ReferenceDecoder implements ResidentDecoder {
        final DenseDecoderSpec s;
        final int positions;
        final float[] keys;
        final float[] values;
        final List<String> uploads = new ArrayList<>();
        float[] lastNewKv;
        int decodes;
        boolean closed;

        ReferenceDecoder(DenseDecoderSpec s, int positions) {
            this.s = s;
            this.positions = positions;
            this.keys = new float[s.layers().size() * positions * s.kvDim()];
            this.values = new float[keys.length];
        }

        @Override
        public int positions() {
            return positions;
        }

        @Override
        public void upload(int from, int count, float[] k, float[] v) {
            uploads.add(from + "+" + count);
            int kvDim = s.kvDim();
            for (int l = 0; l < s.layers().size(); l++) {
                for (int t = 0; t < count; t++) {
                    System.arraycopy(k, (l * count + t) * kvDim, keys, (l * positions + from + t) * kvDim, kvDim);
                    System.arraycopy(v, (l * count + t) * kvDim, values, (l * positions + from + t) * kvDim, kvDim);
                }
            }
        }

        @Override
        public void decode(float[] embedding, int pos, float[] logits, float[] newKv) {
            decodes++;
            int h = s.hidden();
            int kvDim = s.kvDim();
            int hd = s.headDim();
            float[] x = Arrays.copyOf(embedding, h);
            for (int l = 0; l < s.layers().size(); l++) {
                DenseDecoderSpec.Layer w = s.layers().get(l);
                float[] xb = rms(x, w.attnNorm());
                float[] q = add(mv(w.wq(), xb), w.bq());
                float[] k = add(mv(w.wk(), xb), w.bk());
                float[] v = add(mv(w.wv(), xb), w.bv());
                rope(q, pos);
                rope(k, pos);
                int base = l * positions * kvDim;
                System.arraycopy(k, 0, keys, base + pos * kvDim, kvDim);
                System.arraycopy(v, 0, values, base + pos * kvDim, kvDim);
                System.arraycopy(k, 0, newKv, 2 * l * kvDim, kvDim);
                System.arraycopy(v, 0, newKv, (2 * l + 1) * kvDim, kvDim);
                float[] att = new float[h];
                int groups = s.heads() / s.kvHeads();
                for (int head = 0; head < s.heads(); head++) {
                    int ko = base + (head / groups) * hd;
                    double[] sc = new double[pos + 1];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int t = 0; t <= pos; t++) {
                        double dot = 0;
                        for (int i = 0; i < hd; i++) {
                            dot += (double) q[head * hd + i] * keys[ko + t * kvDim + i];
                        }
                        sc[t] = dot / Math.sqrt(hd);
                        max = Math.max(max, sc[t]);
                    }
                    double sum = 0;
                    for (int t = 0; t <= pos; t++) {
                        sc[t] = Math.exp(sc[t] - max);
                        sum += sc[t];
                    }
                    for (int i = 0; i < hd; i++) {
                        double acc = 0;
                        for (int t = 0; t <= pos; t++) {
                            acc += sc[t] * values[ko + t * kvDim + i];
                        }
                        att[head * hd + i] = (float) (acc / sum);
                    }
                }
                x = add(x, mv(w.wo(), att));
                xb = rms(x, w.ffnNorm());
                float[] g = mv(w.gate(), xb);
                float[] u = mv(w.up(), xb);
                for (int i = 0; i < g.length; i++) {
                    g[i] = (float) (g[i] / (1 + Math.exp(-g[i])) * u[i]);
                }
                x = add(x, mv(w.down(), g));
            }
            System.arraycopy(mv(s.output(), rms(x, s.outputNorm())), 0, logits, 0, s.vocab());
            lastNewKv = newKv.clone();
        }

        private float[] rms(float[] x, float[] weight) {
            double ss = 0;
            for (float v : x) {
                ss += (double) v * v;
            }
            double scale = 1 / Math.sqrt(ss / x.length + s.eps());
            float[] out = new float[x.length];
            for (int i = 0; i < x.length; i++) {
                out[i] = (float) (x[i] * scale * weight[i]);
            }
            return out;
        }

        private static float[] mv(WeightMatrix w, float[] x) {
            float[] row = new float[w.cols()];
            float[] out = new float[w.rows()];
            for (int r = 0; r < w.rows(); r++) {
                Quantize.dequantizeRow(row, 0, w, r);
                double acc = 0;
                for (int c = 0; c < row.length; c++) {
                    acc += (double) row[c] * x[c];
                }
                out[r] = (float) acc;
            }
            return out;
        }

        private static float[] add(float[] a, float[] b) {
            float[] out = new float[a.length];
            for (int i = 0; i < a.length; i++) {
                out[i] = a[i] + b[i];
            }
            return out;
        }

        private void rope(float[] x, int pos) {
            int half = s.headDim() / 2;
            for (int head = 0; head < x.length / s.headDim(); head++) {
                for (int i = 0; i < half; i++) {
                    int lo = head * s.headDim() + i;
                    double c = s.ropeCos()[pos * half + i];
                    double sn = s.ropeSin()[pos * half + i];
                    double a = x[lo];
                    double b = x[lo + half];
                    x[lo] = (float) (a * c - b * sn);
                    x[lo + half] = (float) (a * sn + b * c);
                }
            }
        }

        @Override
        public long launches() {
            return decodes + uploads.size();
        }

        @Override
        public void close() {
            closed = true;
        }
    }
}
