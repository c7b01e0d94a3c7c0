/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.hub;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

class ConsoleProgressTest {

    final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    final PrintStream out = new PrintStream(bytes, true, StandardCharsets.UTF_8);
    final AtomicLong clock = new AtomicLong(1_000_000_000L);

    String text() {
        return bytes.toString(StandardCharsets.UTF_8);
    }

    /** One 100 MB file fed in 1000 pieces over 2 s of fake time (one every 2 ms). */
    void feed(ConsoleProgress p) {
        long total = 100_000_000L;
        p.started("model.safetensors", 0, total);
        for (int i = 1; i <= 1000; i++) {
            clock.addAndGet(2_000_000L);
            p.progress("model.safetensors", total * i / 1000, total);
        }
        p.finished("model.safetensors", total, total, 2_000_000_000L);
    }

    @Test
    void terminalBarRedrawsInPlaceAtMostTenTimesASecond() {
        feed(new ConsoleProgress(out, true, clock::get));

        String text = text();
        long redraws = text.chars().filter(c -> c == '\r').count();
        // 2 s of progress: the first draw, at most 10 a second, and the final line
        assertTrue(redraws >= 15 && redraws <= 23, redraws + " redraws");
        assertTrue(text.contains("[##########..........]  50%"), text);
        assertTrue(text.contains("50.0 MB/s"), text);
        String[] lines = text.split("\n");
        assertEquals(1, lines.length, "only the final line ends with a newline");
        String finalLine = lines[0].substring(lines[0].lastIndexOf('\r') + 1).strip();
        assertEquals("model.safetensors        100.0 MB in 2.0 s (50.0 MB/s)", finalLine);
    }

    @Test
    void notATerminalPrintsFinalLinesAndASummaryOnly() {
        ConsoleProgress p = new ConsoleProgress(out, false, clock::get);
        feed(p);
        p.snapshotReady("acme/tiny-qwen", "1111111111111111111111111111111111111111", 4, 1,
                100_000_000L, 2_500_000_000L, Path.of("/cache/snap"), false);

        String text = text();
        assertFalse(text.contains("\r"), text);
        String[] lines = text.split("\n");
        assertEquals(2, lines.length, text);
        assertEquals("model.safetensors        100.0 MB in 2.0 s (50.0 MB/s)", lines[0]);
        assertEquals("acme/tiny-qwen @ 1111111: 4 files, 1 downloaded (100.0 MB in 2.5 s, 40.0 MB/s)"
                + " -> " + Path.of("/cache/snap"), lines[1]);
    }

    @Test
    void summarySaysWhenEverythingCameFromTheCache() {
        ConsoleProgress p = new ConsoleProgress(out, false, clock::get);
        p.snapshotReady("acme/tiny-qwen", "2222222222222222222222222222222222222222", 4, 0, 0, 1,
                Path.of("/s"), true);
        p.snapshotReady("acme/tiny-qwen", "2222222222222222222222222222222222222222", 4, 0, 0, 1,
                Path.of("/s"), false);

        assertEquals("acme/tiny-qwen @ 2222222: 4 files, from the cache -> " + Path.of("/s") + "\n"
                + "acme/tiny-qwen @ 2222222: 4 files, all cached -> " + Path.of("/s") + "\n",
                text().replace(System.lineSeparator(), "\n"));
    }

    @Test
    void stoppedDownloadEndsTheBarLine() {
        ConsoleProgress p = new ConsoleProgress(out, true, clock::get);
        p.started("model.safetensors", 0, 10_000_000L);
        p.progress("model.safetensors", 4_000_000L, 10_000_000L);
        p.stopped("model.safetensors", 4_000_000L, 10_000_000L);

        String text = text();
        // padded with spaces to wipe the longer bar it replaces
        assertTrue(text.matches("(?s).*\\rmodel\\.safetensors +stopped at 4\\.0 MB of 10\\.0 MB *\n"), text);
    }

    @Test
    void resumedFileSaysSoAndRateCountsOnlyNewBytes() {
        ConsoleProgress p = new ConsoleProgress(out, false, clock::get);
        p.started("a.safetensors", 60_000_000L, 100_000_000L);
        p.finished("a.safetensors", 100_000_000L, 40_000_000L, 1_000_000_000L);

        assertEquals("a.safetensors            100.0 MB in 1.0 s (40.0 MB/s), resumed after 60.0 MB",
                text().strip());
    }
}
