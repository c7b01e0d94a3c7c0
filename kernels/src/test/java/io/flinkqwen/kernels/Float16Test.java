/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class Float16Test {

    @Test
    void everyHalfSurvivesARoundTripThroughFloat() {
        for (int h = 0; h < 0x10000; h++) {
            float f = Float16.toFloat((short) h);
            if (Float.isNaN(f)) {
                assertTrue(((h >>> 10) & 0x1F) == 0x1F && (h & 0x3FF) != 0, "NaN from 0x" + Integer.toHexString(h));
                continue;
            }
            assertEquals(h, Float16.fromFloat(f) & 0xFFFF, "half 0x" + Integer.toHexString(h));
        }
    }

    @Test
    void knownHalfValuesDecodeExactly() {
        assertEquals(1.0f, Float16.toFloat((short) 0x3C00));
        assertEquals(-2.0f, Float16.toFloat((short) 0xC000));
        assertEquals(65504.0f, Float16.toFloat((short) 0x7BFF));
        assertEquals(0x1p-24f, Float16.toFloat((short) 0x0001)); // smallest subnormal
        assertEquals(Float.POSITIVE_INFINITY, Float16.toFloat((short) 0x7C00));
    }

    @Test
    void fromFloatRoundsToNearestEven() {
        // 1 + 2^-11 lies exactly between 1 and the next half (1 + 2^-10): ties to even -> 1.
        assertEquals(0x3C00, Float16.fromFloat(1.0f + 0x1p-11f) & 0xFFFF);
        // 1 + 3 * 2^-11 lies between 1 + 2^-10 (odd) and 1 + 2^-9 (even): ties to even -> up.
        assertEquals(0x3C02, Float16.fromFloat(1.0f + 3 * 0x1p-11f) & 0xFFFF);
        assertEquals(0x7C00, Float16.fromFloat(1e6f) & 0xFFFF);
        assertEquals(0x0000, Float16.fromFloat(1e-10f) & 0xFFFF);
    }

    @Test
    void bfloat16RoundTripsAndRounds() {
        for (int h = 0; h < 0x10000; h++) {
            float f = Float16.bf16ToFloat((short) h);
            if (!Float.isNaN(f)) {
                assertEquals(h, Float16.bf16FromFloat(f) & 0xFFFF);
            }
        }
        assertEquals(1.0f, Float16.bf16ToFloat(Float16.bf16FromFloat(1.0f + 0x1p-9f)));
        assertEquals(1.0f + 0x1p-7f, Float16.bf16ToFloat(Float16.bf16FromFloat(1.0f + 0x1p-7f + 0x1p-12f)), 0.0f);
    }
}
