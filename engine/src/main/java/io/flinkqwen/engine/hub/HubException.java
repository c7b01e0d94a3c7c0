/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.hub;

import java.util.Objects;

/**
 * A model that cannot be located or fetched. The message is one line that names the repo, file
 * or URL involved and the fix; {@link #reason()} lets a caller (the command line) decide what to
 * do next, e.g. fall back to a random-weight model when the hub cannot be reached.
 */
public class HubException extends RuntimeException {

    private static final long serialVersionUID = 1L;

    /** Why it failed, coarse enough for a caller to branch on. */
    public enum Reason {
        /** No connection to the endpoint (refused, DNS, TLS, timeout). */
        UNREACHABLE,
        /** A transfer stopped before the end and retries ran out; running again resumes it. */
        DOWNLOAD_INCOMPLETE,
        /** HTTP 401/403: gated or private repo, missing or refused token. */
        UNAUTHORIZED,
        /** HTTP 404 (or the hub's RepoNotFound): repo, revision or file does not exist. */
        NOT_FOUND,
        /** Any other HTTP status (5xx, 429, ...). */
        HTTP_ERROR,
        /** The bytes received do not match the digest the hub announced. */
        CHECKSUM_MISMATCH,
        /** The hub answered something this client cannot use (no ETag, a malformed commit). */
        PROTOCOL,
        /** HF_HUB_OFFLINE is set and the cache has no complete snapshot for the revision. */
        OFFLINE_NOT_CACHED,
        /** Reading or writing the local cache failed. */
        CACHE_IO,
        /** A {@code --model} argument that is no usable file, folder or hub id. */
        NOT_A_MODEL,
        /** The calling thread was interrupted; its interrupt flag is set again. */
        INTERRUPTED,
    }

    private final Reason reason;

    public HubException(Reason reason, String message) {
        super(message);
        this.reason = Objects.requireNonNull(reason, "reason");
    }

    public HubException(Reason reason, String message, Throwable cause) {
        super(message, cause);
        this.reason = Objects.requireNonNull(reason, "reason");
    }

    public Reason reason() {
        return reason;
    }
}
