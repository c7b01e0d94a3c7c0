/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.connectors.lines;

import io.flinkqwen.connectors.format.DeadLetter;
import io.flinkqwen.connectors.format.Decoding;
import io.flinkqwen.connectors.format.RecordDecoder;
import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.file.src.reader.SimpleStreamFormat;
import org.apache.flink.core.fs.FSDataInputStream;
import org.apache.flink.types.Either;

/**
 * One JSON object per line, for Flink's {@code FileSource}: each line is decoded to an event or a
 * dead letter with origin {@code name:line}. Lines are read as bytes, so invalid UTF-8 is
 * reported, not replaced; blank lines are skipped; a line longer than the limit is not held in
 * memory past the limit and becomes a dead letter. {@code \n} and {@code \r\n} both end lines.
 *
 * <p>A restored reader skips the records already read (Flink's {@code SimpleStreamFormat}
 * contract), so line numbers stay right after a restore.
 */
@PublicEvolving
public final class JsonLinesFormat<T> extends SimpleStreamFormat<Either<DeadLetter, T>> {

    private static final long serialVersionUID = 1L;

    private final RecordDecoder<T> decoder;
    private final String name;
    private final int maxLineBytes;

    /**
     * @param name what origins start with (the file's name)
     * @param maxLineBytes longer lines become dead letters
     */
    public JsonLinesFormat(RecordDecoder<T> decoder, String name, int maxLineBytes) {
        this.decoder = decoder;
        this.name = name;
        this.maxLineBytes = maxLineBytes;
    }

    @Override
    public Reader<Either<DeadLetter, T>> createReader(Configuration config, FSDataInputStream stream) {
        return new LineReader<>(stream, decoder, name, maxLineBytes);
    }

    @Override
    public TypeInformation<Either<DeadLetter, T>> getProducedType() {
        return Decoding.eitherType(decoder);
    }

    /** The reader over any stream; also used for standard input. */
    public static final class LineReader<T> implements Reader<Either<DeadLetter, T>> {
        private final InputStream in;
        private final RecordDecoder<T> decoder;
        private final String name;
        private final int maxLineBytes;
        private final ByteArrayOutputStream line = new ByteArrayOutputStream();
        private long lineNumber;

        public LineReader(InputStream in, RecordDecoder<T> decoder, String name, int maxLineBytes) {
            this.in = new BufferedInputStream(in, 1 << 16);
            this.decoder = decoder;
            this.name = name;
            this.maxLineBytes = maxLineBytes;
        }

        /** The next non-blank line, decoded; null at the end of the stream. */
        @Override
        public Either<DeadLetter, T> read() throws IOException {
            while (true) {
                line.reset();
                long size = 0;
                int b;
                while ((b = in.read()) != -1 && b != '\n') {
                    if (size++ < maxLineBytes + 1L) {
                        line.write(b);
                    }
                }
                if (b == -1 && size == 0) {
                    return null;
                }
                lineNumber++;
                byte[] bytes = line.toByteArray();
                int len = bytes.length;
                if (size <= maxLineBytes + 1L && len > 0 && bytes[len - 1] == '\r') {
                    size--;
                    bytes = java.util.Arrays.copyOf(bytes, len - 1);
                }
                String origin = name + ":" + lineNumber;
                if (size > maxLineBytes) {
                    return Either.Left(new DeadLetter(origin, "the line is " + size
                            + " bytes, over the limit of " + maxLineBytes + " bytes",
                            DeadLetter.of(origin, "", bytes).payload(), (int) Math.min(size, Integer.MAX_VALUE)));
                }
                if (isBlank(bytes)) {
                    continue;
                }
                return Decoding.decode(decoder, origin, bytes);
            }
        }

        private static boolean isBlank(byte[] bytes) {
            for (byte x : bytes) {
                if (x != ' ' && x != '\t' && x != '\r') {
                    return false;
                }
            }
            return true;
        }

        @Override
        public void close() throws IOException {
            in.close();
        }
    }
}
