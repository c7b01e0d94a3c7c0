/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.model;

/** Comparisons of logit vectors that the model tests share. */
final class Logits {

    private Logits() {}

    /** The largest {@code |a[i] - b[i]|} over {@code a}'s length. */
    static double maxDiff(float[] a, float[] b) {
        double max = 0;
        for (int i = 0; i < a.length; i++) {
            max = Math.max(max, Math.abs(a[i] - b[i]));
        }
        return max;
    }

    /** The index of the largest value, the first of equal ones. */
    static int argmax(float[] x) {
        int best = 0;
        for (int i = 1; i < x.length; i++) {
            if (x[i] > x[best]) {
                best = i;
            }
        }
        return best;
    }

    /** The largest value minus the second largest: how firmly greedy decoding picks its token. */
    static double topTwoGap(float[] x) {
        int best = argmax(x);
        float second = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < x.length; i++) {
            if (i != best) {
                second = Math.max(second, x[i]);
            }
        }
        return x[best] - second;
    }
}
