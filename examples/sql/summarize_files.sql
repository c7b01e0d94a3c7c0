-- Log summarization over files: one summary per log source and minute of event time.
--   ./flink-qwen sql --file examples/sql/summarize_files.sql --var output=DIR
--       [--var input=examples/logs/sample.jsonl] [--model PATH|HF_ID] [--max-new-tokens N]
-- Reads JSON log events, one per line: {"source", "ts", "level", "message"}, ts in epoch
-- milliseconds or ISO-8601 (UTC); a line that does not parse is skipped. Each source's lines
-- are grouped into one-minute tumbling windows of their ts, QWEN_SUMMARIZE summarizes each window's lines, and one JSON object per
-- summary is written into files under DIR. The input is bounded: the job ends after the last
-- window (the end of the file closes every window).

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
    'connector' = 'filesystem',
    'path' = '${input:-examples/logs/sample.jsonl}',
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
    'connector' = 'filesystem',
    'path' = '${output}',
    'format' = 'json',
    'json.timestamp-format.standard' = 'ISO-8601'
);

-- the window's lines, "LEVEL message" each, one per line (U&'\000A' is a newline), in arrival order
INSERT INTO summaries
SELECT source, window_start, window_end, `lines`, QWEN_SUMMARIZE(text) AS summary, '${model_name}' AS model
FROM (
    SELECT source, window_start, window_end, COUNT(*) AS `lines`,
           LISTAGG(CONCAT_WS(' ', level, message), U&'\000A') AS text
    FROM TABLE(TUMBLE(TABLE logs, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
    GROUP BY source, window_start, window_end
);
