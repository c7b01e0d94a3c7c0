/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.jobs.cli;

import io.flinkqwen.engine.model.KvFormat;

/** The {@code --kv-type} option of generate, score and bench. */
final class KvType {

    static final String USAGE =
            "  --kv-type         KV cache storage: f32 (default, or the system property flinkqwen.kv),\n"
                    + "                    f16, or q8 (int8 with a float scale per 32 values)";

    private KvType() {}

    /** {@code --kv-type}, else the system property {@value KvFormat#PROPERTY}, else F32. */
    static KvFormat of(Args a, String command) {
        if (!a.has("kv-type")) {
            return KvFormat.fromSystemProperty();
        }
        try {
            return KvFormat.parse(a.string("kv-type"));
        } catch (IllegalArgumentException e) {
            throw new Args.UsageException(command + ": --kv-type must be f32, f16 or q8, got '" + a.string("kv-type") + "'");
        }
    }
}
