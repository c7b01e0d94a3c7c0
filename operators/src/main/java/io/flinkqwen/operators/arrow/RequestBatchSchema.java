/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.arrow;

import java.util.List;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * The Arrow schema of a micro-batch of inference requests: one row per request.
 *
 * <pre>
 * key         utf8         the Flink key (log source, conversation, document)
 * request_id  utf8         the caller's id, echoed in the result
 * text        utf8         the event's text
 * event_time  int64        event time, epoch milliseconds (Long.MIN_VALUE when none)
 * token_ids   list(int32)  the text's token ids
 * </pre>
 */
public final class RequestBatchSchema {

    public static final String KEY = "key";
    public static final String REQUEST_ID = "request_id";
    public static final String TEXT = "text";
    public static final String EVENT_TIME = "event_time";
    public static final String TOKEN_IDS = "token_ids";

    public static final Schema SCHEMA =
            new Schema(
                    List.of(
                            Field.notNullable(KEY, ArrowType.Utf8.INSTANCE),
                            Field.notNullable(REQUEST_ID, ArrowType.Utf8.INSTANCE),
                            Field.notNullable(TEXT, ArrowType.Utf8.INSTANCE),
                            Field.notNullable(EVENT_TIME, new ArrowType.Int(64, true)),
                            new Field(
                                    TOKEN_IDS,
                                    FieldType.notNullable(ArrowType.List.INSTANCE),
                                    List.of(Field.notNullable("id", new ArrowType.Int(32, true))))));

    private RequestBatchSchema() {}
}
