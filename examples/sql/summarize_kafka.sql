-- Log summarization over Kafka: one summary per log source and minute of event time, from the
-- log topic to the summary topic, exactly once.
--   ./flink-qwen sql --file examples/sql/summarize_kafka.sql --var bootstrap=HOST:PORT
--       [--var input_topic=logs] [--var output_topic=summaries] [--var bounded=latest-offset]
--       [--var checkpoint_interval=5s] [--model PATH|HF_ID] [--max-new-tokens N]
-- Records are JSON log events, as the summarize command reads: {"source", "ts", "level",
-- "message"}, ts in epoch milliseconds or ISO-8601 (UTC); a record that does not parse is skipped. Results are JSON objects keyed
-- by the source, written in transactions committed at checkpoints: read them with
-- isolation.level=read_committed. The job runs until stopped (Ctrl-C), or with
-- bounded=latest-offset until the end of the topic as of its start. Windows close when later
-- records come (the watermark trails the newest ts by 5 s), or at the end of a bounded run.

SET 'execution.checkpointing.interval' = '${checkpoint_interval:-5s}';

-- windows and their bounds in UTC, the time zone of the logs' ts
SET 'table.local-time-zone' = 'UTC';

CREATE TEMPORARY TABLE logs (
    source STRING,
    ts STRING,
    level STRING,
    message STRING,
    -- ts as the summarize command reads it: epoch milliseconds or ISO-8601 in UTC ("...Z");
    -- another value gives time 0, which the windows drop as late (a NULL time would stop the job)
    event_time AS COALESCE(TO_TIMESTAMP_LTZ(TRY_CAST(ts AS BIGINT), 3),
        TRY_CAST(REPLACE(REPLACE(ts, 'T', ' '), 'Z', '') AS TIMESTAMP_LTZ(3)), TO_TIMESTAMP_LTZ(0, 3)),
    WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH (
    'connector' = 'kafka',
    'topic' = '${input_topic:-logs}',
    'properties.bootstrap.servers' = '${bootstrap}',
    'properties.group.id' = 'flink-qwen-sql-summarize',
    'scan.startup.mode' = 'earliest-offset',
    'scan.bounded.mode' = '${bounded:-unbounded}',
    'format' = 'json',
    'json.ignore-parse-errors' = 'true'
);

CREATE TEMPORARY TABLE summaries (
    source STRING,
    window_start TIMESTAMP(3),
    window_end TIMESTAMP(3),
    `lines` BIGINT,
    summary STRING,
    model STRING
) WITH (
    'connector' = 'kafka',
    'topic' = '${output_topic:-summaries}',
    'properties.bootstrap.servers' = '${bootstrap}',
    'key.format' = 'raw',
    'key.fields' = 'source',
    'value.format' = 'json',
    'value.json.timestamp-format.standard' = 'ISO-8601',
    'sink.delivery-guarantee' = 'exactly-once',
    'sink.transactional-id-prefix' = 'flink-qwen-sql-summarize',
    'properties.transaction.timeout.ms' = '600000'
);

INSERT INTO summaries
SELECT source, window_start, window_end, `lines`, QWEN_SUMMARIZE(text) AS summary, '${model_name}' AS model
FROM (
    SELECT source, window_start, window_end, COUNT(*) AS `lines`,
           LISTAGG(CONCAT_WS(' ', level, message), U&'\000A') AS text
    FROM TABLE(TUMBLE(TABLE logs, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
    GROUP BY source, window_start, window_end
);
