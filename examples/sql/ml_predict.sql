/* CREATE MODEL with the qwen2 provider, and ML_PREDICT.
   ./flink-qwen sql --file examples/sql/ml_predict.sql [--model PATH|HF_ID]
   `sql` writes the --model path where the script says ${model}. */

CREATE TEMPORARY VIEW prompts AS SELECT * FROM (VALUES
    (1, 'Name a prime number.'),
    (2, 'What is Flink?')) AS v(id, prompt);

CREATE MODEL qwen INPUT (prompt STRING) OUTPUT (response STRING)
  WITH ('provider' = 'qwen2', 'model' = '${model}', 'max-tokens' = '8');

SELECT id, response FROM ML_PREDICT(TABLE prompts, MODEL qwen, DESCRIPTOR(prompt));

CREATE MODEL qwen_fr INPUT (prompt STRING) OUTPUT (french STRING)
  WITH ('provider' = 'qwen2', 'model' = '${model}', 'task' = 'translate', 'target-lang' = 'French',
        'max-tokens' = '8');

SELECT id, french FROM ML_PREDICT(TABLE prompts, MODEL qwen_fr, DESCRIPTOR(prompt));
