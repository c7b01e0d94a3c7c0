/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.serve;

/** One request could not be served; the message names the request id and why. */
public final class RequestFailedException extends RuntimeException {

    private static final long serialVersionUID = 1L;

    public RequestFailedException(String message, Throwable cause) {
        super(message, cause);
    }
}
