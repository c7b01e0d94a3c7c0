/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.model;

import io.flinkqwen.engine.config.Qwen2Config;
import io.flinkqwen.engine.config.Qwen2MoeConfig;
import io.flinkqwen.kernels.Quantize;
import io.flinkqwen.kernels.WeightMatrix;

/**
 * A second, deliberately plain Qwen2 / Qwen2-MoE forward pass in float64, written from the HF modeling code's
 * definitions (not from {@link Qwen2Model}): whole-sequence, no cache, no kernels except weight
 * decoding. Slow; for tiny test models only.
 */
final class ReferenceQwen2 {

    private final Qwen2Config c;
    private final Qwen2Weights w;
    private final Qwen2MoeConfig moeConfig; // null for a dense model

    ReferenceQwen2(Qwen2Config c, Qwen2Weights w) {
        this.c = c;
        this.w = w;
        this.moeConfig = null;
    }

    ReferenceQwen2(Qwen2MoeConfig c, Qwen2Weights w) {
        this.c = c.dense();
        this.w = w;
        this.moeConfig = c;
    }

    /** Logits (position, vocab) for every prefix of {@code ids}. */
    double[][] logits(int[] ids) {
        int n = ids.length;
        int h = c.hiddenSize();
        double[][] x = new double[n][];
        for (int t = 0; t < n; t++) {
            x[t] = row(w.tokenEmbedding, ids[t]);
        }
        for (Qwen2Weights.Layer l : w.layers) {
            double[][] normed = new double[n][];
            for (int t = 0; t < n; t++) {
                normed[t] = rmsNorm(x[t], l.attnNorm);
            }
            double[][] q = new double[n][];
            double[][] k = new double[n][];
            double[][] v = new double[n][];
            for (int t = 0; t < n; t++) {
                q[t] = rope(add(matVec(l.wq, normed[t]), l.bq), t, c.numAttentionHeads());
                k[t] = rope(add(matVec(l.wk, normed[t]), l.bk), t, c.numKeyValueHeads());
                v[t] = add(matVec(l.wv, normed[t]), l.bv);
            }
            int hd = c.headDim();
            for (int t = 0; t < n; t++) {
                double[] out = new double[h];
                for (int head = 0; head < c.numAttentionHeads(); head++) {
                    int kvHead = head / c.kvGroups();
                    double[] s = new double[t + 1];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j <= t; j++) {
                        double dot = 0;
                        for (int i = 0; i < hd; i++) {
                            dot += q[t][head * hd + i] * k[j][kvHead * hd + i];
                        }
                        s[j] = dot / Math.sqrt(hd);
                        max = Math.max(max, s[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j <= t; j++) {
                        s[j] = Math.exp(s[j] - max);
                        sum += s[j];
                    }
                    for (int j = 0; j <= t; j++) {
                        for (int i = 0; i < hd; i++) {
                            out[head * hd + i] += s[j] / sum * v[j][kvHead * hd + i];
                        }
                    }
                }
                double[] o = matVec(l.wo, out);
                for (int i = 0; i < h; i++) {
                    x[t][i] += o[i];
                }
            }
            for (int t = 0; t < n; t++) {
                double[] m = rmsNorm(x[t], l.ffnNorm);
                double[] d =
                        l.ffn instanceof Qwen2Weights.MoeFfn
                                ? moe((Qwen2Weights.MoeFfn) l.ffn, m)
                                : swiGlu((Qwen2Weights.SwiGluFfn) l.ffn, m);
                for (int i = 0; i < h; i++) {
                    x[t][i] += d[i];
                }
            }
        }
        double[][] logits = new double[n][];
        for (int t = 0; t < n; t++) {
            logits[t] = matVec(w.output, rmsNorm(x[t], w.outputNorm));
        }
        return logits;
    }

    private static double[] swiGlu(Qwen2Weights.SwiGluFfn f, double[] m) {
        double[] g = matVec(f.gate, m);
        double[] u = matVec(f.up, m);
        for (int i = 0; i < g.length; i++) {
            g[i] = g[i] / (1 + Math.exp(-g[i])) * u[i];
        }
        return matVec(f.down, g);
    }

    /**
     * HF {@code Qwen2MoeSparseMoeBlock.forward}: routing_weights = softmax(gate(x)); topk;
     * divided by their sum if norm_topk_prob; sum of weight * expert(x); plus
     * sigmoid(shared_expert_gate(x)) * shared_expert(x).
     */
    private double[] moe(Qwen2Weights.MoeFfn f, double[] m) {
        double[] logits = matVec(f.router, m);
        double max = Double.NEGATIVE_INFINITY;
        for (double v : logits) {
            max = Math.max(max, v);
        }
        double[] p = new double[logits.length];
        double sum = 0;
        for (int e = 0; e < p.length; e++) {
            p[e] = Math.exp(logits[e] - max);
            sum += p[e];
        }
        for (int e = 0; e < p.length; e++) {
            p[e] /= sum;
        }
        Integer[] order = new Integer[p.length];
        for (int e = 0; e < p.length; e++) {
            order[e] = e;
        }
        java.util.Arrays.sort(order, (a, b) -> Double.compare(p[b], p[a]));
        int k = moeConfig.numExpertsPerTok();
        double topSum = 0;
        for (int j = 0; j < k; j++) {
            topSum += p[order[j]];
        }
        double[] out = new double[m.length];
        for (int j = 0; j < k; j++) {
            int e = order[j];
            double weight = moeConfig.normTopkProb() ? p[e] / topSum : p[e];
            double[] y = swiGlu(f.experts[e], m);
            for (int i = 0; i < out.length; i++) {
                out[i] += weight * y[i];
            }
        }
        double g = 0;
        for (int i = 0; i < m.length; i++) {
            g += f.sharedGate[i] * m[i];
        }
        double scale = 1 / (1 + Math.exp(-g));
        double[] y = swiGlu(f.shared, m);
        for (int i = 0; i < out.length; i++) {
            out[i] += scale * y[i];
        }
        return out;
    }

    private double[] rmsNorm(double[] x, float[] weight) {
        double ss = 0;
        for (double v : x) {
            ss += v * v;
        }
        double inv = 1 / Math.sqrt(ss / x.length + c.rmsNormEps());
        double[] out = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            out[i] = x[i] * inv * weight[i];
        }
        return out;
    }

    /**
     * rotate_half: pairs (i, i + d/2) of each head, angle pos * inv_freq[i], cos and sin times
     * the attention scaling (HF {@code Qwen2RotaryEmbedding}).
     */
    private double[] rope(double[] x, int pos, int heads) {
        int hd = c.headDim();
        int half = hd / 2;
        double[] invFreq = invFreq();
        double scaling = c.ropeScaling().isYarn() ? c.ropeScaling().attentionFactor() : 1.0;
        for (int head = 0; head < heads; head++) {
            for (int i = 0; i < half; i++) {
                double angle = pos * invFreq[i];
                double cos = Math.cos(angle) * scaling;
                double sin = Math.sin(angle) * scaling;
                double a = x[head * hd + i];
                double b = x[head * hd + i + half];
                x[head * hd + i] = a * cos - b * sin;
                x[head * hd + i + half] = b * cos + a * sin;
            }
        }
        return x;
    }

    /**
     * theta^(-2i/d), or with YaRN HF's {@code _compute_yarn_parameters}: a blend of the
     * extrapolated (as trained) and interpolated (divided by factor) frequencies, weighted by a
     * linear ramp between the correction dims of beta_fast and beta_slow.
     */
    private double[] invFreq() {
        int dim = c.headDim();
        double base = c.ropeTheta();
        double[] inv = new double[dim / 2];
        for (int i = 0; i < inv.length; i++) {
            inv[i] = 1.0 / Math.pow(base, 2.0 * i / dim);
        }
        if (!c.ropeScaling().isYarn()) {
            return inv;
        }
        double factor = c.ropeScaling().factor();
        int original = c.ropeScaling().originalMaxPositionEmbeddings();
        double low = Math.max(Math.floor(correctionDim(c.ropeScaling().betaFast(), dim, base, original)), 0);
        double high = Math.min(Math.ceil(correctionDim(c.ropeScaling().betaSlow(), dim, base, original)), dim - 1);
        if (low == high) {
            high += 0.001;
        }
        for (int i = 0; i < inv.length; i++) {
            double extrapolationFactor = 1 - Math.min(Math.max((i - low) / (high - low), 0), 1);
            inv[i] = inv[i] / factor * (1 - extrapolationFactor) + inv[i] * extrapolationFactor;
        }
        return inv;
    }

    private static double correctionDim(double rotations, int dim, double base, int maxPositions) {
        return dim * Math.log(maxPositions / (rotations * 2 * Math.PI)) / (2 * Math.log(base));
    }

    private static double[] add(double[] x, float[] bias) {
        for (int i = 0; i < x.length; i++) {
            x[i] += bias[i];
        }
        return x;
    }

    private static double[] row(WeightMatrix m, int r) {
        float[] f = new float[m.cols()];
        Quantize.dequantizeRowScalar(f, 0, m, r);
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) {
            d[i] = f[i];
        }
        return d;
    }

    private static double[] matVec(WeightMatrix m, double[] x) {
        double[] out = new double[m.rows()];
        float[] f = new float[m.cols()];
        for (int r = 0; r < m.rows(); r++) {
            Quantize.dequantizeRowScalar(f, 0, m, r);
            double s = 0;
            for (int i = 0; i < f.length; i++) {
                s += f[i] * x[i];
            }
            out[r] = s;
        }
        return out;
    }
}
