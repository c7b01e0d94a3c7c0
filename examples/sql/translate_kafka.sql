-- Streaming translation over Kafka: each request translated into its target_lang (default
-- lang), from the request topic to the translation topic, exactly once.
--   ./flink-qwen sql --file examples/sql/translate_kafka.sql --var bootstrap=HOST:PORT
--       [--var input_topic=requests] [--var output_topic=translations] [--var lang=de]
--       [--var bounded=latest-offset] [--var checkpoint_interval=5s] [--model PATH|HF_ID]
-- Records are the translate command's requests: {"id", "key", "text", "target_lang"?}; one
-- that does not parse, or has no id or text, is skipped. Results are JSON objects keyed by
-- the request's key, written in transactions committed at checkpoints: read them with
-- isolation.level=read_committed. An unknown target_lang fails the query (a SQL function has
-- no side output; the translate command sends such requests to a dead-letter topic instead).
-- The job runs until stopped, or with bounded=latest-offset until the end of the topic as of
-- its start.

SET 'execution.checkpointing.interval' = '${checkpoint_interval:-5s}';

CREATE TEMPORARY TABLE requests (
    id STRING,
    `key` STRING,
    text STRING,
    target_lang STRING
) WITH (
    'connector' = 'kafka',
    'topic' = '${input_topic:-requests}',
    'properties.bootstrap.servers' = '${bootstrap}',
    'properties.group.id' = 'flink-qwen-sql-translate',
    'scan.startup.mode' = 'earliest-offset',
    'scan.bounded.mode' = '${bounded:-unbounded}',
    'format' = 'json',
    'json.ignore-parse-errors' = 'true'
);

CREATE TEMPORARY TABLE translations (
    id STRING,
    `key` STRING,
    target_lang STRING,
    translated STRING,
    model STRING
) WITH (
    'connector' = 'kafka',
    'topic' = '${output_topic:-translations}',
    'properties.bootstrap.servers' = '${bootstrap}',
    'key.format' = 'raw',
    'key.fields' = 'key',
    'value.format' = 'json',
    'sink.delivery-guarantee' = 'exactly-once',
    'sink.transactional-id-prefix' = 'flink-qwen-sql-translate',
    'properties.transaction.timeout.ms' = '600000'
);

-- NULLIF: a missing or empty target_lang means lang. (Flink 2.2.1 passes a NULL string column
-- of this source through the async QWEN_TRANSLATE as '', so the output column needs it too.)
INSERT INTO translations
SELECT id, `key`, COALESCE(NULLIF(target_lang, ''), '${lang:-de}') AS target_lang,
       QWEN_TRANSLATE(text, COALESCE(NULLIF(target_lang, ''), '${lang:-de}')) AS translated,
       '${model_name}' AS model
FROM requests
WHERE id IS NOT NULL AND text IS NOT NULL;
