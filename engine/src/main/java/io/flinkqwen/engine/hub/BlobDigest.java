/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.hub;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.regex.Pattern;

/**
 * What the hub's ETag promises about a file's bytes. LFS files (weights) carry {@code
 * X-Linked-Etag}: the SHA-256 of the content. Small files kept in git carry {@code ETag}: the git
 * blob id, the SHA-1 of {@code "blob " + size + "\0" + content}. Anything else cannot be checked.
 */
enum BlobDigest {
    SHA256("sha256"),
    GIT_SHA1("git-sha1"),
    /** An ETag of another shape (a mirror, a proxy): only the size is checked. */
    NONE("none");

    private static final Pattern HEX64 = Pattern.compile("[0-9a-f]{64}");
    private static final Pattern HEX40 = Pattern.compile("[0-9a-f]{40}");

    final String label;

    BlobDigest(String label) {
        this.label = label;
    }

    /** Decided by the ETag's shape: 64 hex digits are SHA-256, 40 are a git blob id. */
    static BlobDigest of(String etag) {
        if (HEX64.matcher(etag).matches()) {
            return SHA256;
        }
        if (HEX40.matcher(etag).matches()) {
            return GIT_SHA1;
        }
        return NONE;
    }

    /** Whether {@link #start} can run before the size is known. */
    boolean needsSize() {
        return this == GIT_SHA1;
    }

    /**
     * A digest ready for the content's bytes, or null for {@link #NONE}.
     *
     * @param size the content's length; needed for {@link #GIT_SHA1} only
     */
    MessageDigest start(long size) {
        try {
            switch (this) {
                case SHA256:
                    return MessageDigest.getInstance("SHA-256");
                case GIT_SHA1:
                    MessageDigest sha1 = MessageDigest.getInstance("SHA-1");
                    sha1.update(("blob " + size + "\0").getBytes(StandardCharsets.US_ASCII));
                    return sha1;
                default:
                    return null;
            }
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java runtime has SHA-1 and SHA-256", e);
        }
    }

    /** Feeds the first {@code length} bytes of a file into a digest (the part kept on resume). */
    static void update(MessageDigest digest, Path file, long length) throws IOException {
        byte[] buffer = new byte[1 << 16];
        long left = length;
        try (InputStream in = Files.newInputStream(file)) {
            while (left > 0) {
                int n = in.read(buffer, 0, (int) Math.min(buffer.length, left));
                if (n < 0) {
                    throw new IOException(file + " is shorter than " + length + " bytes");
                }
                digest.update(buffer, 0, n);
                left -= n;
            }
        }
    }

    /** The digest of a whole file, or null for {@link #NONE}. */
    String ofFile(Path file) throws IOException {
        long size = Files.size(file);
        MessageDigest digest = start(size);
        if (digest == null) {
            return null;
        }
        update(digest, file, size);
        return hex(digest.digest());
    }

    static String hex(byte[] bytes) {
        StringBuilder sb = new StringBuilder(bytes.length * 2);
        for (byte b : bytes) {
            sb.append(Character.forDigit((b >> 4) & 0xf, 16)).append(Character.forDigit(b & 0xf, 16));
        }
        return sb.toString();
    }
}
