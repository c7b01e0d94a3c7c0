-- QWEN_SUMMARIZE over log lines, and QWEN_GENERATE with its max_tokens argument.
--   ./flink-qwen sql --file examples/sql/summarize.sql [--model PATH|HF_ID]

CREATE TEMPORARY VIEW logs AS SELECT * FROM (VALUES
    ('api-1', 'WARN latency above 2 s on /checkout'),
    ('api-1', 'ERROR upstream payment service timed out'),
    ('db-1', 'INFO checkpoint completed in 120 ms')) AS v(source, message);

SELECT source, message, QWEN_SUMMARIZE(message) AS summary, QWEN_GENERATE(message, 4) AS short_answer FROM logs;
