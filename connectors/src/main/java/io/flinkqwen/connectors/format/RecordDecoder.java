/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.connectors.format;

import java.io.Serializable;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.api.common.typeinfo.TypeInformation;

/**
 * Bytes to one event, or a {@link MalformedRecordException} saying why not. Serializable: it
 * travels with the source or the operator that decodes.
 */
@PublicEvolving
public interface RecordDecoder<T> extends Serializable {

    /**
     * @param bytes the record's value; null for a Kafka tombstone
     * @throws MalformedRecordException naming what is wrong (the field, the limit, the byte offset)
     */
    T decode(byte[] bytes) throws MalformedRecordException;

    /** The type of what {@link #decode} returns, for Flink's serializers. */
    TypeInformation<T> producedType();
}
