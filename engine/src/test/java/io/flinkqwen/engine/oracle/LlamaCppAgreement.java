/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.oracle;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.engine.LoadedModel;
import io.flinkqwen.engine.generate.Generator;
import io.flinkqwen.engine.generate.SamplingParams;
import io.flinkqwen.engine.model.Qwen2Model;
import io.flinkqwen.kernels.KernelPool;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;

/**
 * The comparison every llama.cpp oracle test makes, whatever the architecture: greedy ids for
 * {@code steps} steps and teacher-forced logits at every position (prompt + llama.cpp's greedy
 * continuation), our model against llama.cpp on the same GGUF file.
 */
final class LlamaCppAgreement {

    /** Greedy steps compared. */
    static final int STEPS = 32;

    /** The prompt both engines continue: ids in every test vocabulary, none special. */
    static final int[] PROMPT = {84, 104, 101, 32, 108, 111, 103, 300, 257, 19, 33, 260};


    private LlamaCppAgreement() {}

    /**
     * Asserts that the max |logit difference| is within {@code tolerance} and that greedy ids agree
     * for all {@code steps} (if {@code mustAgree == steps}) or else for at least {@code mustAgree}
     * steps or up to the first near-tie by llama.cpp's logits; prints the measured numbers.
     *
     * @return the max |logit difference| measured
     */
    static double check(
            Path gguf, String label, int[] prompt, int steps, double tolerance, int mustAgree, KernelPool pool)
            throws Exception {
        return check(gguf, label, prompt, steps, tolerance, mustAgree, 0, pool);
    }

    /**
     * As {@link #check(Path, String, int[], int, double, int, KernelPool)}, for MoE models whose
     * routing can flip: a token whose top-k router margin (ours, {@link
     * io.flinkqwen.engine.model.RouterStats#lastCallTopKMargins()}) is below {@code
     * routingMargin} in some layer may pick another expert on llama.cpp's side (its rounded
     * activations move the router logits), which changes that position's output discontinuously
     * (and, through the KV cache, a little of the later ones). Such positions are left out of
     * the logit check (at least 3/4 of the positions must remain), greedy agreement is asserted
     * up to the first of them, and the maximum over all positions is printed. {@code
     * routingMargin} 0 asserts every position.
     */
    static double check(
            Path gguf,
            String label,
            int[] prompt,
            int steps,
            double tolerance,
            int mustAgree,
            double routingMargin,
            KernelPool pool)
            throws Exception {
        LlamaCppOracle.Result ref = LlamaCppOracle.run(gguf, prompt, steps, 2);
        assertEquals(steps, ref.greedy.length, "llama.cpp steps");

        try (LoadedModel model = LoadedModel.open(gguf)) {
            Qwen2Model forward = model.newForward(pool, 16);
            int[] ours = new Generator(forward).generate(prompt, SamplingParams.greedy(steps), null).ids();

            int[] all = concat(prompt, ref.greedy);
            float[][] logits = forward.forwardAllLogits(forward.newCache(all.length), all);
            assertEquals(ref.logits.length, all.length);
            // positions whose routing is a near-tie (ours) are left out of the logit check
            boolean[] compared = new boolean[all.length];
            java.util.Arrays.fill(compared, true);
            int firstLeftOut = all.length;
            if (routingMargin > 0) {
                float[] margins = forward.routerStats().orElseThrow().lastCallTopKMargins();
                assertEquals(all.length, margins.length, "router margins per position");
                for (int p = all.length - 1; p >= 0; p--) {
                    compared[p] = margins[p] >= routingMargin;
                    firstLeftOut = compared[p] ? firstLeftOut : p;
                }
            }
            int checked = 0;
            double maxDiff = 0;
            double maxDiffAll = 0;
            for (int p = 0; p < all.length; p++) {
                checked += compared[p] ? 1 : 0;
                for (int v = 0; v < model.config().vocabSize(); v++) {
                    double d = Math.abs(logits[p][v] - ref.logits[p][v]);
                    maxDiffAll = Math.max(maxDiffAll, d);
                    if (compared[p]) {
                        maxDiff = Math.max(maxDiff, d);
                    }
                }
            }
            int agree = 0;
            while (agree < steps && ours[agree] == ref.greedy[agree]) {
                agree++;
            }
            String leftOut =
                    routingMargin > 0
                            ? String.format(
                                    Locale.ROOT,
                                    " (%.3g over all; %d positions with a top-k router margin below %.2g left out)",
                                    maxDiffAll, all.length - checked, routingMargin)
                            : "";
            System.out.printf(
                    Locale.ROOT,
                    "%s: max |logit - llama.cpp| = %.3g over %d positions x %d vocab%s; greedy ids agree for %d/%d steps; %s%n",
                    label, maxDiff, checked, model.config().vocabSize(), leftOut, agree, steps, ref.provenance);
            int routedSteps = Math.max(0, firstLeftOut - (prompt.length - 1));
            assertTrue(
                    checked >= 3 * all.length / 4,
                    label + ": routing near-ties leave only " + checked + " of " + all.length + " positions to compare");
            assertTrue(maxDiff <= tolerance, label + ": max logit difference " + maxDiff + " > " + tolerance);
            if (mustAgree == steps && routedSteps >= steps) {
                assertArrayEquals(ref.greedy, ours, label + ": greedy ids differ from llama.cpp");
            } else {
                // quantized activations on llama.cpp's side can flip near-ties: require agreement
                // up to the first step whose top-2 gap (by llama.cpp) is within the tolerance
                int firstTie = Math.min(routedSteps, firstNearTie(ref.logits, prompt.length, steps, tolerance));
                assertTrue(
                        agree >= Math.min(mustAgree, firstTie),
                        label + ": greedy ids agree for " + agree + " steps, first near-tie at " + firstTie);
            }
            return maxDiff;
        }
    }

    private static int firstNearTie(float[][] logits, int promptLength, int steps, double gap) {
        for (int s = 0; s < steps; s++) {
            float[] row = logits[promptLength - 1 + s].clone();
            Arrays.sort(row);
            if (row[row.length - 1] - row[row.length - 2] <= 2 * gap) {
                return s;
            }
        }
        return steps;
    }

    private static int[] concat(int[] a, int[] b) {
        int[] r = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }
}
