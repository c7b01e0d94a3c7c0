/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.jobs.cli;

import io.flinkqwen.connectors.format.DeadLetter;
import io.flinkqwen.connectors.format.DeadLetterFormat;
import io.flinkqwen.connectors.format.JsonRecords;
import io.flinkqwen.connectors.format.TranslationRequest;
import io.flinkqwen.connectors.format.TranslationRequestFormat;
import io.flinkqwen.connectors.format.TranslationResultFormat;
import io.flinkqwen.connectors.kafka.KafkaIo;
import io.flinkqwen.connectors.lines.JsonLinesFormat;
import io.flinkqwen.connectors.translate.Languages;
import io.flinkqwen.connectors.translate.TranslationPipeline;
import io.flinkqwen.connectors.translate.TranslationResult;
import io.flinkqwen.engine.hub.ModelLocator;
import io.flinkqwen.jobs.translate.StdinJsonLinesSource;
import io.flinkqwen.operators.inference.QwenInference;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.UUID;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.JobManagerOptions;
import org.apache.flink.configuration.RestOptions;
import org.apache.flink.configuration.TaskManagerOptions;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.connector.file.src.FileSource;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.types.Either;
import org.apache.flink.util.CloseableIterator;
import org.apache.flink.util.TimeUtils;

/**
 * {@code translate}: a streaming translation job over JSON requests, from a file or stdin to
 * stdout, or from Kafka to Kafka. Runs on an embedded MiniCluster when started from the
 * launcher, on the cluster when started with {@code flink run}.
 */
final class TranslateCommand implements Main.Command {

    @Override
    public String usage() {
        return String.join(
                "\n",
                "usage: flink-qwen translate --model PATH|HF_ID --to LANG[,LANG] --input FILE|-",
                "       flink-qwen translate --model PATH|HF_ID --to LANG[,LANG] --kafka-bootstrap HOST:PORT",
                "         --input-topic T --output-topic T [--dead-letter-topic T] [--group-id G]",
                "         [--delivery exactly-once|at-least-once] [--bounded]",
                "       common: [--checkpoint-dir DIR] [--checkpoint-interval 5s] [--max-new-tokens N]",
                "         [--context-tokens N] [--max-record-bytes N] [--parallelism N] [--threads N]",
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
                "  --input -          standard input (embedded MiniCluster only; not replayed after a failure)",
                "  --checkpoint-dir   enables checkpoints, stored there; with stdout output, results are",
                "                     printed as checkpoints complete. Kafka mode always checkpoints",
                "                     (exactly-once commits at checkpoints); without a dir they are in memory",
                "  --delivery         of results to Kafka; exactly-once (default) needs consumers with",
                "                     isolation.level=read_committed to hide uncommitted results",
                "  --bounded          Kafka: stop at the input topic's end as of the start",
                "  --max-new-tokens   per segment (default 128); --context-tokens per key (default 4096)",
                "  --max-record-bytes longer records are dead letters (default "
                        + JsonRecords.DEFAULT_MAX_RECORD_BYTES + ")",
                "  --parallelism      of the job (default 1); --threads kernel threads per operator (default 1)");
    }

    // deprecation: stdin needs the legacy SourceFunction API (StdinJsonLinesSource); try: Flink's
    // CloseableIterator declares close() throws Exception
    @Override
    @SuppressWarnings({"deprecation", "try"})
    public void run(List<String> argv, PrintStream out, PrintStream err) throws Exception {
        Args a = Args.parse("translate", argv,
                Set.of("model", "to", "input", "kafka-bootstrap", "input-topic", "output-topic", "dead-letter-topic",
                        "group-id", "delivery", "checkpoint-dir", "checkpoint-interval", "max-new-tokens",
                        "context-tokens", "max-record-bytes", "parallelism", "threads"),
                Set.of("bounded"));
        Set<String> languages = new LinkedHashSet<>();
        for (String lang : a.string("to").split(",")) {
            try {
                languages.add(Languages.require(lang, "--to"));
            } catch (IllegalArgumentException e) {
                throw new Args.UsageException("translate: " + e.getMessage());
            }
        }
        boolean kafka = a.has("kafka-bootstrap");
        if (kafka == a.has("input")) {
            throw new Args.UsageException("translate: give exactly one of --input FILE|- and --kafka-bootstrap");
        }
        for (String k : List.of("input-topic", "output-topic", "dead-letter-topic", "group-id", "delivery")) {
            if (!kafka && a.has(k)) {
                throw new Args.UsageException("translate: --" + k + " needs --kafka-bootstrap");
            }
        }
        if (!kafka && a.flag("bounded")) {
            throw new Args.UsageException("translate: --bounded needs --kafka-bootstrap (files end by themselves)");
        }
        DeliveryGuarantee delivery;
        switch (a.string("delivery", "exactly-once")) {
            case "exactly-once":
                delivery = DeliveryGuarantee.EXACTLY_ONCE;
                break;
            case "at-least-once":
                delivery = DeliveryGuarantee.AT_LEAST_ONCE;
                break;
            default:
                throw new Args.UsageException("translate: --delivery must be exactly-once or at-least-once, got '"
                        + a.string("delivery") + "'");
        }
        Duration interval;
        try {
            interval = TimeUtils.parseDuration(a.string("checkpoint-interval", "5s"));
        } catch (IllegalArgumentException e) {
            throw new Args.UsageException("translate: --checkpoint-interval: " + e.getMessage());
        }
        int parallelism = positive(a, "parallelism", 1);
        int threads = positive(a, "threads", 1);
        int maxRecordBytes = positive(a, "max-record-bytes", JsonRecords.DEFAULT_MAX_RECORD_BYTES);
        String input = kafka ? null : a.string("input");

        Path model = ModelLocator.resolve(a.string("model"));
        QwenInference.Builder inference = QwenInference.builder()
                .model(model)
                .modelName(model.getFileName().toString())
                .contextPolicy(a.integer("context-tokens", 4096), 4)
                .maxNewTokens(a.integer("max-new-tokens", 128))
                .engine(4, 16, threads);
        try {
            inference.build();
        } catch (IllegalArgumentException e) {
            throw new Args.UsageException("translate: " + e.getMessage());
        }
        if (input != null && !input.equals("-") && !Files.isRegularFile(Paths.get(input))) {
            throw new IllegalArgumentException("translate: --input " + input + " is not a file");
        }

        Configuration conf = new Configuration();
        // the embedded MiniCluster listens on loopback only; a cluster ignores these
        conf.set(RestOptions.BIND_ADDRESS, "127.0.0.1");
        conf.set(RestOptions.ADDRESS, "127.0.0.1");
        conf.set(JobManagerOptions.BIND_HOST, "127.0.0.1");
        conf.set(TaskManagerOptions.BIND_HOST, "127.0.0.1");
        conf.set(TaskManagerOptions.HOST, "127.0.0.1");
        if (a.has("checkpoint-dir")) {
            conf.set(CheckpointingOptions.CHECKPOINTS_DIRECTORY, Paths.get(a.string("checkpoint-dir")).toAbsolutePath().toUri().toString());
        }
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(parallelism);
        if (a.has("checkpoint-dir") || kafka) {
            env.enableCheckpointing(interval.toMillis());
        }

        String defaultTarget = languages.size() == 1 ? languages.iterator().next() : null;
        TranslationRequestFormat format = new TranslationRequestFormat(maxRecordBytes, defaultTarget);
        DataStream<Either<DeadLetter, TranslationRequest>> requests;
        if (kafka) {
            String bootstrap = a.string("kafka-bootstrap");
            requests = env.fromSource(
                    KafkaIo.source(bootstrap, a.string("input-topic"), a.string("group-id", "flink-qwen-translate"), format,
                            a.flag("bounded")),
                    WatermarkStrategy.noWatermarks(), "kafka-requests");
        } else if (input.equals("-")) {
            requests = env.addSource(new StdinJsonLinesSource<>(format, maxRecordBytes), "stdin-requests",
                    io.flinkqwen.connectors.format.Decoding.eitherType(format)).setParallelism(1);
        } else {
            Path file = Paths.get(input).toAbsolutePath();
            FileSource<Either<DeadLetter, TranslationRequest>> source = FileSource.forRecordStreamFormat(
                    new JsonLinesFormat<>(format, file.getFileName().toString(), maxRecordBytes),
                    new org.apache.flink.core.fs.Path(file.toUri())).build();
            requests = env.fromSource(source, WatermarkStrategy.noWatermarks(), "file-requests");
        }
        TranslationPipeline.Result result = TranslationPipeline.apply(requests, languages, inference);

        if (kafka) {
            String bootstrap = a.string("kafka-bootstrap");
            String run = "flink-qwen-translate-" + UUID.randomUUID().toString().substring(0, 8);
            result.results().sinkTo(KafkaIo.sink(bootstrap, a.string("output-topic"), new TranslationResultFormat(),
                    r -> r.result().key(), delivery, run + "-results")).name("kafka-results");
            if (a.has("dead-letter-topic")) {
                result.deadLetters().sinkTo(KafkaIo.sink(bootstrap, a.string("dead-letter-topic"), new DeadLetterFormat(),
                        DeadLetter::origin, delivery, run + "-dead")).name("kafka-dead-letters");
            } else {
                result.deadLetters().map(TranslateCommand::describe).returns(Types.STRING).print("dead letter").name("dead-letters");
            }
            err.println("translate: " + String.join(",", languages) + " from " + a.string("input-topic") + " to "
                    + a.string("output-topic") + " (" + a.string("delivery", "exactly-once") + ")");
            try {
                env.execute("flink-qwen translate");
            } catch (Exception e) {
                throw jobFailed(e);
            }
            return;
        }

        // stdout: results as JSON lines, dead letters on stderr, through the client
        TranslationResultFormat results = new TranslationResultFormat();
        DataStream<String> lines = result.results()
                .map(r -> "R" + new String(results.serialize(r), StandardCharsets.UTF_8))
                .returns(Types.STRING)
                .union(result.deadLetters().map(d -> "D" + describe(d)).returns(Types.STRING));
        long translated = 0;
        long skipped = 0;
        try (CloseableIterator<String> it = lines.executeAndCollect("flink-qwen translate")) {
            while (hasNext(it)) {
                String line = it.next();
                if (line.charAt(0) == 'R') {
                    out.println(line.substring(1));
                    out.flush();
                    translated++;
                } else {
                    err.println(line.substring(1));
                    skipped++;
                }
            }
        }
        err.println("translate: " + translated + " translated, " + skipped + " skipped");
    }

    private static boolean hasNext(CloseableIterator<String> it) {
        try {
            return it.hasNext();
        } catch (RuntimeException e) {
            throw jobFailed(e);
        }
    }

    /** The job's own error (a bad setting, a missing model), not the client's wrappers around it. */
    static RuntimeException jobFailed(Exception e) {
        Throwable root = e;
        while (root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        return new IllegalStateException("translate: the job failed: " + (root.getMessage() == null
                ? root.getClass().getName() : root.getMessage()), e);
    }

    /** One line for a human: where, why, and the start of the record. */
    static String describe(DeadLetter d) {
        String payload = d.payload().length() > 120 ? d.payload().substring(0, 120) + "..." : d.payload();
        return "skipped " + d.origin() + ": " + d.reason() + (payload.isEmpty() ? "" : " | " + payload.replace('\n', ' '));
    }

    private static int positive(Args a, String name, int fallback) {
        int v = a.integer(name, fallback);
        if (v < 1) {
            throw new Args.UsageException("translate: --" + name + " must be >= 1, got " + v);
        }
        return v;
    }

}
