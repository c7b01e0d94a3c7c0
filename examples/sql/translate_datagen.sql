-- Streaming translation over generated rows: datagen as a load generator for QWEN_TRANSLATE.
--   ./flink-qwen sql --file examples/sql/translate_datagen.sql [--var rows=6] [--var rate=2]
--       [--var lang=de] [--model PATH|HF_ID] [--max-new-tokens N]
-- The datagen connector numbers rows 1..rows, rate rows per second; each row takes one of four
-- sentences, which QWEN_TRANSLATE translates into lang (an ISO 639-1 code or English name).
-- One JSON object per row on stdout; the job ends after the last row.

CREATE TEMPORARY TABLE ticks (
    id BIGINT
) WITH (
    'connector' = 'datagen',
    'fields.id.kind' = 'sequence',
    'fields.id.start' = '1',
    'fields.id.end' = '${rows:-6}',
    'rows-per-second' = '${rate:-2}'
);

CREATE TEMPORARY VIEW sentences AS
SELECT id, ARRAY[
        'The checkout service is back online.',
        'Disk usage on node 7 is above 90 percent.',
        'Please restart the payment gateway after the deployment.',
        'All systems are operating normally.'][CAST(MOD(id - 1, 4) + 1 AS INT)] AS text
FROM ticks;

SELECT id, text, QWEN_TRANSLATE(text, '${lang:-de}') AS translated, '${model_name}' AS model FROM sentences;
