/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.weights;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.function.Supplier;

/**
 * What the model-file writers (GGUF, safetensors) do the same way: write a file so that a reader
 * never sees it half-written, and take each tensor's bytes from its supplier, checked.
 */
public final class ModelFileWriting {

    private ModelFileWriting() {}

    /** Writes the content of a file. */
    @FunctionalInterface
    public interface Body {
        void write(FileChannel ch) throws IOException;
    }

    /**
     * Writes {@code target} through a temporary file in the same folder (created if missing),
     * forced to disk and then moved into place, atomically where the file system can. The
     * temporary file is deleted if anything fails, and what failed is rethrown.
     */
    public static void writeAtomically(Path target, Body body) throws IOException {
        Path absolute = target.toAbsolutePath();
        Path dir = absolute.getParent();
        Files.createDirectories(dir);
        Path tmp = Files.createTempFile(dir, "." + absolute.getFileName() + ".", ".tmp");
        try {
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
                body.write(ch);
                ch.force(true);
            }
            try {
                Files.move(tmp, absolute, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, absolute, StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (IOException | RuntimeException | Error e) {
            Files.deleteIfExists(tmp);
            throw e;
        }
    }

    /** Writes all of {@code b}'s remaining bytes. */
    public static void writeFully(FileChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            ch.write(b);
        }
    }

    /**
     * Calls a tensor's data supplier once and checks that it gave exactly {@code sizeBytes}.
     *
     * @param type the tensor's type in the file format's words, for the message
     * @return a duplicate of the supplied buffer, so writing it leaves the supplier's untouched
     * @throws IllegalStateException naming the tensor, its type and shape, the bytes needed and
     *     given
     */
    public static ByteBuffer suppliedData(
            String name, Object type, long[] shape, long sizeBytes, Supplier<ByteBuffer> data) {
        ByteBuffer b = data.get();
        if (b == null || b.remaining() != sizeBytes) {
            throw new IllegalStateException(
                    String.format(
                            "tensor '%s' (%s %s) needs %d bytes, its data supplier gave %s",
                            name,
                            type,
                            Arrays.toString(shape),
                            sizeBytes,
                            b == null ? "null" : b.remaining() + " bytes"));
        }
        return b.duplicate();
    }
}
