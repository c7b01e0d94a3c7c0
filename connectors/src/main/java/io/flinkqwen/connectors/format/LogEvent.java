/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.connectors.format;

import org.apache.flink.annotation.PublicEvolving;

/**
 * One log line: {@code {"source": "api-1", "ts": 1767225600000, "level": "WARN", "message": "..."}}.
 *
 * @param source the log's source (host, service); the summarization key; non-empty
 * @param tsMillis event time, epoch milliseconds (JSON: a number of milliseconds or an ISO-8601 instant)
 * @param level the level as written, or {@code ""} when the event has none
 * @param message the line; data, never control
 */
@PublicEvolving
public record LogEvent(String source, long tsMillis, String level, String message) {}
