/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.safetensors;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.engine.weights.ModelFormatException;
import io.flinkqwen.kernels.DType;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.function.Executable;

/** Tensor bytes with known values, and file helpers, for the safetensors tests. */
final class SafetensorsTestData {

    private SafetensorsTestData() {}

    record Data(byte[] bytes, float[] values) {
        ByteBuffer buffer() {
            return ByteBuffer.wrap(bytes);
        }
    }

    /**
     * Random values of {@code dtype}: F32 as is; F16 as k/64 (bits computed by hand); BF16 as the
     * top halves of random floats. No conversion code of ours is involved.
     */
    static Data random(DType dtype, Random rnd, int n) {
        int width = dtype == DType.F32 ? 4 : 2;
        ByteBuffer b = ByteBuffer.allocate(width * n).order(ByteOrder.LITTLE_ENDIAN);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            switch (dtype) {
                case F32:
                    v[i] = (float) rnd.nextGaussian();
                    b.putFloat(v[i]);
                    break;
                case F16:
                    int k = rnd.nextInt(129) - 64;
                    v[i] = k / 64f;
                    b.putShort(halfOfSmallMultiple(k));
                    break;
                case BF16:
                    int bits = Float.floatToIntBits((float) rnd.nextGaussian()) & 0xFFFF0000;
                    v[i] = Float.intBitsToFloat(bits);
                    b.putShort((short) (bits >>> 16));
                    break;
                default:
                    throw new AssertionError(dtype);
            }
        }
        return new Data(b.array(), v);
    }

    /** binary16 bits of k/64 for |k| <= 64, from the IEEE layout. */
    static short halfOfSmallMultiple(int k) {
        if (k == 0) {
            return 0;
        }
        int sign = k < 0 ? 0x8000 : 0;
        int m = Math.abs(k);
        int e = 31 - Integer.numberOfLeadingZeros(m);
        return (short) (sign | ((e - 6 + 15) << 10) | ((m << (10 - e)) & 0x3FF));
    }

    /** A safetensors file assembled by hand: 8-byte length, the JSON as given, then data. */
    static Path handWritten(Path file, String json, byte[] data) throws IOException {
        byte[] header = json.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + header.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(header.length).put(header).put(data);
        return Files.write(file, b.array());
    }

    static ModelFormatException assertFails(Executable call, Path file, String... parts) {
        ModelFormatException e = assertThrows(ModelFormatException.class, call);
        assertTrue(e.getMessage().contains(file.toString()), () -> "names " + file + ": " + e.getMessage());
        for (String part : parts) {
            assertTrue(e.getMessage().contains(part), () -> "says '" + part + "': " + e.getMessage());
        }
        return e;
    }

    static ModelFormatException assertOpenFails(Path path, String... parts) {
        return assertFails(() -> SafetensorsStore.open(path).close(), path, parts);
    }

    static byte[] bytes(ByteBuffer b) {
        ByteBuffer d = b.duplicate();
        byte[] out = new byte[d.remaining()];
        d.get(out);
        return out;
    }
}
