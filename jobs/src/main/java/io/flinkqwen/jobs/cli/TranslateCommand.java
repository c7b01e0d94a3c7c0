/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.jobs.cli;

import io.flinkqwen.connectors.format.DeadLetter;
import io.flinkqwen.connectors.format.TranslationRequest;
import io.flinkqwen.connectors.format.TranslationRequestFormat;
import io.flinkqwen.connectors.format.TranslationResultFormat;
import io.flinkqwen.connectors.translate.Languages;
import io.flinkqwen.connectors.translate.TranslationPipeline;
import io.flinkqwen.operators.inference.QwenInference;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.types.Either;

/**
 * {@code translate}: a streaming translation job over JSON requests, from a file or stdin to
 * stdout, or from Kafka to Kafka. Runs on an embedded MiniCluster when started from the
 * launcher, on the cluster when started with {@code flink run}.
 */
final class TranslateCommand implements Main.Command {

    private final Map<String, String> env;
    private final ModelArgs.RandomWeights fallback;

    /** @param env the variables the hub client and the fallback cache read ({@code System.getenv()}) */
    TranslateCommand(Map<String, String> env) {
        this(env, ModelArgs.RandomWeights.qwen2_0_5b(env));
    }

    /** @param fallback the random-weight model that replaces Qwen2-0.5B offline; null: none */
    TranslateCommand(Map<String, String> env, ModelArgs.RandomWeights fallback) {
        this.env = env;
        this.fallback = fallback;
    }

    @Override
    public String usage() {
        List<String> lines = new ArrayList<>(List.of(
                "usage: flink-qwen translate --model PATH|HF_ID --to LANG[,LANG] --input FILE|-",
                "       flink-qwen translate --model PATH|HF_ID --to LANG[,LANG] --kafka-bootstrap HOST:PORT",
                "         --input-topic T --output-topic T [--dead-letter-topic T] [--group-id G]",
                "         [--delivery exactly-once|at-least-once] [--bounded]",
                "       common: [--checkpoint-dir DIR] [--checkpoint-interval 5s] [--max-new-tokens N]",
                "         [--context-tokens N] [--max-record-bytes N] [--parallelism N] [--threads N]",
                "         [--kv-budget-mib M] [--kv-type f32|f16|q8]",
                "",
                "Input: one JSON request per line or Kafka record,",
                "  {\"id\": \"r1\", \"key\": \"doc-7\", \"text\": \"...\", \"target_lang\": \"de\", \"source_lang\": \"en\"}",
                "  (target_lang may be left out when --to names one language; source_lang is optional).",
                "  Segments of one key share a context, per target language.",
                "Output: one JSON object per result on stdout (or the output topic):",
                "  key, id, output, model, prompt_tokens, generated_tokens, latency_ms, task, target_lang.",
                "Bad records (bad JSON or UTF-8, missing fields, oversize, unknown or unserved language,",
                "  text the model rejects) are reported on stderr (or the dead-letter topic) with the",
                "  reason and the line or offset; the job goes on.",
                "",
                "  --to               languages served, ISO 639-1 codes or English names (de, German, pt-BR);",
                "                     one operator, and one copy of the model, per language",
                "  --max-new-tokens   per segment (default 128); --context-tokens per key (default 4096)"));
        lines.addAll(StreamingJob.ENGINE_USAGE);
        lines.addAll(StreamingJob.USAGE);
        return String.join("\n", lines);
    }

    @Override
    public void run(List<String> argv, PrintStream out, PrintStream err) throws Exception {
        Args a = Args.parse("translate", argv,
                StreamingJob.with(StreamingJob.OPTIONS, "model", "to", "max-new-tokens", "context-tokens", "threads",
                        "kv-budget-mib",
                        "kv-type"),
                StreamingJob.FLAGS, StreamingJob.REPEATABLE);
        Set<String> languages = new LinkedHashSet<>();
        for (String lang : a.string("to").split(",")) {
            try {
                languages.add(Languages.require(lang, "--to"));
            } catch (IllegalArgumentException e) {
                throw new Args.UsageException("translate: " + e.getMessage());
            }
        }
        StreamingJob job = StreamingJob.parse("translate", a);

        QwenInference.Builder inference = QwenInference.builder()
                .model(a.string("model")) // checked here, resolved below
                .contextPolicy(a.integer("context-tokens", 4096), 4)
                .maxNewTokens(a.integer("max-new-tokens", 128));
        StreamingJob.engine("translate", a, inference);
        try {
            inference.build();
        } catch (IllegalArgumentException e) {
            throw new Args.UsageException("translate: " + e.getMessage());
        }
        job.checkInput();

        // after every usage check: resolving may download the model or write the fallback
        ModelArgs.JobModel model = ModelArgs.resolveForJob("translate", a.string("model"), env, fallback, err);
        inference.model(model.path()).modelName(model.name());

        StreamExecutionEnvironment env = job.environment();
        String defaultTarget = languages.size() == 1 ? languages.iterator().next() : null;
        DataStream<Either<DeadLetter, TranslationRequest>> requests =
                job.source(env, new TranslationRequestFormat(job.maxRecordBytes, defaultTarget), "requests");
        TranslationPipeline.Result result = TranslationPipeline.apply(requests, languages, inference);
        job.run(env, result.results(), new TranslationResultFormat(), r -> r.result().key(), result.deadLetters(),
                String.join(",", languages), "translated", out, err);
    }
}
