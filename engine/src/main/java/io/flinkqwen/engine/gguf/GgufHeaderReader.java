/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.gguf;

import io.flinkqwen.engine.weights.ModelFormatException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.CharBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.function.Supplier;

/**
 * Sequential little-endian reads of a GGUF header through a 1 MiB buffer over a {@link
 * FileChannel}: the header of a real model is tens of MB (151k vocabulary strings and as many
 * merges), too much to map for a one-pass parse and too much to read a field at a time.
 *
 * <p>Every read checks the file size first, so a truncated file fails with the byte where the
 * file ends and what was being read (set by the parser through {@link #context(Supplier)}).
 */
final class GgufHeaderReader {

    private static final int BUFFER_BYTES = 1 << 20;

    private final FileChannel channel;
    private final Path path;
    private final long fileSize;
    private final ByteBuffer buf;
    /** File position of {@code buf}'s index 0. */
    private long bufStart;

    private final CharsetDecoder utf8 =
            StandardCharsets.UTF_8
                    .newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT);

    private Supplier<String> context = () -> "the header";

    GgufHeaderReader(FileChannel channel, Path path, long fileSize) {
        this.channel = channel;
        this.path = path;
        this.fileSize = fileSize;
        // A small file gets a small buffer: tests open thousands of truncated files.
        this.buf =
                ByteBuffer.allocate((int) Math.max(64, Math.min(BUFFER_BYTES, fileSize)))
                        .order(ByteOrder.LITTLE_ENDIAN);
        buf.limit(0);
    }

    /** What the next reads are for, named in errors ("the value of metadata key 'x'"). */
    void context(Supplier<String> what) {
        this.context = what;
    }

    long position() {
        return bufStart + buf.position();
    }

    long fileSize() {
        return fileSize;
    }

    long remaining() {
        return fileSize - position();
    }

    ModelFormatException error(String problem) {
        return new ModelFormatException(path + ": " + problem);
    }

    private ModelFormatException truncated(long at, long needed) {
        return error(
                String.format(
                        "truncated at byte %d while reading %s (needed %d bytes at byte %d)",
                        fileSize, context.get(), needed, at));
    }

    /** Makes {@code n <= 8} bytes (or a string that fits the buffer) available in {@code buf}. */
    private void ensure(int n) {
        if (buf.remaining() >= n) {
            return;
        }
        long pos = position();
        if (pos + n > fileSize) {
            throw truncated(pos, n);
        }
        buf.compact();
        bufStart = pos;
        try {
            while (buf.hasRemaining()) {
                int r = channel.read(buf, bufStart + buf.position());
                if (r <= 0) {
                    break;
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(path + ": cannot read " + context.get(), e);
        } finally {
            buf.flip();
        }
        if (buf.remaining() < n) {
            throw truncated(pos, n); // the file shrank under us
        }
    }

    int u8() {
        ensure(1);
        return buf.get() & 0xFF;
    }

    short i16() {
        ensure(2);
        return buf.getShort();
    }

    int i32() {
        ensure(4);
        return buf.getInt();
    }

    /** An unsigned 32-bit value. */
    long u32() {
        return i32() & 0xFFFFFFFFL;
    }

    /** A 64-bit value; callers that need it unsigned check for negatives. */
    long i64() {
        ensure(8);
        return buf.getLong();
    }

    float f32() {
        ensure(4);
        return buf.getFloat();
    }

    double f64() {
        ensure(8);
        return buf.getDouble();
    }

    /**
     * Checks that {@code count} items of at least {@code minBytes} each can still fit in the file,
     * so that a corrupt count fails here instead of allocating for it.
     */
    void checkCount(long count, long countAt, long minBytes, String what) {
        if (count < 0 || (minBytes > 0 && count > remaining() / minBytes)) {
            throw error(
                    String.format(
                            "%s %s at byte %d needs at least %d bytes per item, but only %d bytes are"
                                    + " left before the end of the file at byte %d: truncated file or"
                                    + " corrupt count",
                            what,
                            Long.toUnsignedString(count),
                            countAt,
                            minBytes,
                            remaining(),
                            fileSize));
        }
    }

    /** A GGUF string: u64 byte length, then that many bytes of UTF-8 (checked strictly). */
    String string() {
        long lengthAt = position();
        long length = i64();
        if (length < 0 || length > remaining()) {
            throw error(
                    String.format(
                            "string length %s at byte %d exceeds the %d bytes left before the end of"
                                    + " the file at byte %d, while reading %s: truncated file or corrupt"
                                    + " length",
                            Long.toUnsignedString(length),
                            lengthAt,
                            remaining(),
                            fileSize,
                            context.get()));
        }
        int n = (int) length;
        if (n <= buf.capacity()) {
            ensure(n);
            String s = decode(buf.array(), buf.arrayOffset() + buf.position(), n, position());
            buf.position(buf.position() + n);
            return s;
        }
        // Longer than the buffer (a whole chat template in one string, say): read it directly.
        long start = position();
        byte[] bytes = new byte[n];
        ByteBuffer dst = ByteBuffer.wrap(bytes);
        try {
            while (dst.hasRemaining()) {
                if (channel.read(dst, start + dst.position()) <= 0) {
                    throw truncated(start, n);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(path + ": cannot read " + context.get(), e);
        }
        bufStart = start + n;
        buf.clear().limit(0);
        return decode(bytes, 0, n, start);
    }

    private String decode(byte[] bytes, int off, int len, long at) {
        boolean ascii = true;
        for (int i = off; i < off + len; i++) {
            if (bytes[i] < 0) {
                ascii = false;
                break;
            }
        }
        if (ascii) {
            return new String(bytes, off, len, StandardCharsets.US_ASCII);
        }
        try {
            CharBuffer chars = utf8.reset().decode(ByteBuffer.wrap(bytes, off, len));
            return chars.toString();
        } catch (CharacterCodingException e) {
            throw error(
                    String.format(
                            "invalid UTF-8 in the string at byte %d, while reading %s",
                            at, context.get()));
        }
    }
}
