/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.inference;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

class ContextWindowTest {

    private static int[] range(int from, int to) {
        return IntStream.range(from, to).toArray();
    }

    @Test
    void promptThatFitsIsHistoryThenTurn() {
        ContextWindow w = new ContextWindow(3, 2, 20);
        assertArrayEquals(new int[] {0, 1, 2, 3, 4, 100, 101}, w.prompt(range(0, 5), new int[] {100, 101}));
    }

    @Test
    void trimmingKeepsSystemTurnSinkAndMostRecentTokens() {
        // system 0..2, sink 3..4, then 5..29; turn of 3; room 12 = 3 system + 2 sink + 4 recent + 3 turn
        ContextWindow w = new ContextWindow(3, 2, 12);
        int[] p = w.prompt(range(0, 30), new int[] {100, 101, 102});
        assertArrayEquals(new int[] {0, 1, 2, 3, 4, 26, 27, 28, 29, 100, 101, 102}, p);
    }

    @Test
    void sinkShrinksWhenTheTurnLeavesNoRoomForIt() {
        ContextWindow w = new ContextWindow(3, 4, 6);
        assertArrayEquals(new int[] {0, 1, 2, 3, 100, 101}, w.prompt(range(0, 10), new int[] {100, 101}));
        assertArrayEquals(new int[] {0, 1, 2, 100, 101, 102}, w.prompt(range(0, 10), new int[] {100, 101, 102}));
    }

    @Test
    void turnLongerThanTheContextBesideTheSystemTurnDoesNotFit() {
        ContextWindow w = new ContextWindow(3, 2, 6);
        assertTrue(w.fits(3));
        assertFalse(w.fits(4));
        assertThrows(IllegalArgumentException.class, () -> w.prompt(range(0, 3), range(100, 104)));
    }
}
