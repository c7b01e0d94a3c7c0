-- QWEN_GENERATE and QWEN_TRANSLATE over a VALUES table.
--   ./flink-qwen sql --file examples/sql/functions.sql [--model PATH|HF_ID] [--max-new-tokens N]
-- The functions are registered by `sql`, with --model as their model.

CREATE TEMPORARY VIEW docs AS SELECT * FROM (VALUES
    (1, 'hello world'),
    (2, 'the lazy dog; the quick fox'),
    (3, 'ERROR disk full on node 7')) AS v(id, text);

-- one JSON object per row: {"id": 1, "answer": "...", "german": "..."}
SELECT id, QWEN_GENERATE(text) AS answer, QWEN_TRANSLATE(text, 'de') AS german FROM docs;
