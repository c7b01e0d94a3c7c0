/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.hub;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Objects;
import java.util.function.LongSupplier;

/**
 * Progress for people: on a terminal, one bar per file redrawn in place with {@code \r} at most
 * ten times a second, then a final line per file; elsewhere (a log file, CI) only the final line
 * per file. Either way one summary line per snapshot. Sizes are in MB of 10^6 bytes.
 *
 * <pre>
 * model.safetensors   [##########..........]  52%   512.3/988.1 MB   41.7 MB/s
 * model.safetensors   988.1 MB in 23.7 s (41.7 MB/s)
 * Qwen/Qwen2-0.5B-Instruct @ 1a2b3c4: 6 files, 4 downloaded (989.0 MB in 24.1 s) -> /home/...
 * </pre>
 */
public final class ConsoleProgress implements ProgressListener {

    static final long REDRAW_NANOS = 100_000_000L;
    private static final int BAR_WIDTH = 20;

    private final PrintStream out;
    private final boolean interactive;
    private final LongSupplier nanoClock;

    private String file;
    private long startNanos;
    private long resumedFrom;
    private long lastDrawNanos;
    private int lastLineLength;

    /**
     * @param interactive true to draw a live bar with carriage returns; false for final lines only
     * @param nanoClock monotonic nanoseconds ({@code System::nanoTime}), replaceable in tests
     */
    public ConsoleProgress(PrintStream out, boolean interactive, LongSupplier nanoClock) {
        this.out = Objects.requireNonNull(out, "out");
        this.interactive = interactive;
        this.nanoClock = Objects.requireNonNull(nanoClock, "nanoClock");
    }

    /**
     * Progress on {@link System#err}, live when the process has a console. ({@code
     * System.console()} is null when stdin or stdout is redirected: then we print final lines
     * only, which is also right for logs.)
     */
    public static ConsoleProgress stderr() {
        return new ConsoleProgress(System.err, System.console() != null, System::nanoTime);
    }

    @Override
    public synchronized void started(String file, long resumedFrom, long totalBytes) {
        this.file = file;
        this.resumedFrom = resumedFrom;
        this.startNanos = nanoClock.getAsLong();
        this.lastDrawNanos = Long.MIN_VALUE;
        this.lastLineLength = 0;
        if (interactive) {
            draw(resumedFrom, totalBytes, startNanos);
        }
    }

    @Override
    public synchronized void progress(String file, long bytesDone, long totalBytes) {
        if (!interactive) {
            return;
        }
        long now = nanoClock.getAsLong();
        if (!file.equals(this.file)) {
            started(file, bytesDone, totalBytes);
            return;
        }
        if (lastDrawNanos != Long.MIN_VALUE && now - lastDrawNanos < REDRAW_NANOS) {
            return;
        }
        draw(bytesDone, totalBytes, now);
    }

    @Override
    public synchronized void finished(
            String file, long totalBytes, long transferred, long elapsedNanos) {
        String line = String.format(
                Locale.ROOT,
                "%-24s %s in %.1f s (%s)%s",
                file,
                mb(totalBytes),
                elapsedNanos / 1e9,
                rate(transferred, elapsedNanos),
                transferred < totalBytes ? ", resumed after " + mb(totalBytes - transferred) : "");
        if (interactive) {
            out.print('\r' + pad(line) + '\n');
        } else {
            out.println(line);
        }
        out.flush();
        this.file = null;
        this.lastLineLength = 0;
    }

    /** Ends the bar's line, so that the error message that follows starts on its own. */
    @Override
    public synchronized void stopped(String file, long bytesDone, long totalBytes) {
        String line = String.format(Locale.ROOT, "%-24s stopped at %s of %s", file, mb(bytesDone),
                totalBytes >= 0 ? mb(totalBytes) : "?");
        if (interactive) {
            out.print('\r' + pad(line) + '\n');
        } else {
            out.println(line);
        }
        out.flush();
        this.file = null;
        this.lastLineLength = 0;
    }

    @Override
    public synchronized void snapshotReady(
            String repoId,
            String commit,
            int files,
            int downloadedFiles,
            long downloadedBytes,
            long elapsedNanos,
            Path folder,
            boolean fromCache) {
        String what;
        if (fromCache) {
            what = "from the cache";
        } else if (downloadedFiles == 0) {
            what = "all cached";
        } else {
            what = String.format(
                    Locale.ROOT,
                    "%d downloaded (%s in %.1f s, %s)",
                    downloadedFiles,
                    mb(downloadedBytes),
                    elapsedNanos / 1e9,
                    rate(downloadedBytes, elapsedNanos));
        }
        out.println(String.format(
                Locale.ROOT,
                "%s @ %s: %d files, %s -> %s",
                repoId,
                commit.length() > 7 ? commit.substring(0, 7) : commit,
                files,
                what,
                folder));
        out.flush();
    }

    private void draw(long done, long total, long now) {
        long elapsed = now - startNanos;
        StringBuilder line = new StringBuilder();
        line.append(String.format(Locale.ROOT, "%-24s ", file));
        if (total > 0) {
            int filled = (int) Math.min(BAR_WIDTH, done * BAR_WIDTH / total);
            line.append('[')
                    .append("#".repeat(filled))
                    .append(".".repeat(BAR_WIDTH - filled))
                    .append(String.format(Locale.ROOT, "] %3d%%  ", done * 100 / total))
                    .append(String.format(Locale.ROOT, "%.1f/%s", done / 1e6, mb(total)));
        } else {
            line.append(mb(done));
        }
        line.append("  ").append(rate(done - resumedFrom, elapsed));
        out.print('\r' + pad(line.toString()));
        out.flush();
        lastDrawNanos = now;
    }

    /** Pads with spaces so a shorter line wipes the tail of the longer one before it. */
    private String pad(String line) {
        int previous = lastLineLength;
        lastLineLength = line.length();
        return line.length() >= previous ? line : line + " ".repeat(previous - line.length());
    }

    static String mb(long bytes) {
        return String.format(Locale.ROOT, "%.1f MB", bytes / 1e6);
    }

    static String rate(long bytes, long nanos) {
        if (nanos <= 0) {
            return "-- MB/s";
        }
        return String.format(Locale.ROOT, "%.1f MB/s", bytes / 1e6 / (nanos / 1e9));
    }
}
