/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.jobs.cli;

import io.flinkqwen.connectors.format.DeadLetter;
import io.flinkqwen.connectors.format.LogEvent;
import io.flinkqwen.connectors.format.LogEventFormat;
import io.flinkqwen.connectors.format.ResultFormat;
import io.flinkqwen.connectors.summarize.SummarizationPipeline;
import io.flinkqwen.operators.inference.QwenInference;
import io.flinkqwen.operators.inference.Summaries;
import io.flinkqwen.operators.inference.Task;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.types.Either;
import org.apache.flink.util.TimeUtils;

/**
 * {@code summarize}: rolling summaries of log events per source, from a file or stdin to stdout,
 * or from Kafka to Kafka. The README's main command: without {@code --model} it runs the real
 * Qwen2-0.5B-Instruct, or, where that cannot be downloaded, a random-weight model of its shape
 * (DESIGN.md, "Models, online and offline").
 */
final class SummarizeCommand implements Main.Command {

    static final int DEFAULT_EVERY = 50;
    static final int DEFAULT_EVERY_SECONDS = 60;

    private final Map<String, String> env;
    private final ModelArgs.RandomWeights fallback;

    /** @param env the variables the hub client and the fallback cache read ({@code System.getenv()}) */
    SummarizeCommand(Map<String, String> env) {
        this(env, ModelArgs.RandomWeights.qwen2_0_5b(env));
    }

    /** @param fallback the random-weight model that replaces the default one offline; null: none */
    SummarizeCommand(Map<String, String> env, ModelArgs.RandomWeights fallback) {
        this.env = env;
        this.fallback = fallback;
    }

    @Override
    public String usage() {
        List<String> lines = new ArrayList<>(List.of(
                "usage: flink-qwen summarize [--model PATH|HF_ID] --input FILE|- [--every N] [--every-seconds T]",
                "         [--template TEXT|@FILE] [--system TEXT|@FILE] [--time event|processing]",
                "       flink-qwen summarize [--model PATH|HF_ID] --kafka-bootstrap HOST:PORT --input-topic T",
                "         --output-topic T [--dead-letter-topic T] [--group-id G] [--delivery exactly-once|at-least-once]",
                "         [--bounded] (and the triggers and prompt as above)",
                "       common: [--checkpoint-dir DIR] [--checkpoint-interval 5s] [--max-new-tokens N]",
                "         [--context-tokens N] [--out-of-orderness 5s] [--max-record-bytes N] [--parallelism N]",
                "         [--threads N] [--kv-budget-mib M] [--kv-type f32|f16|q8]",
                "",
                "Input: one JSON log event per line or Kafka record,",
                "  {\"source\": \"api-1\", \"ts\": \"2026-01-01T00:00:05Z\", \"level\": \"WARN\", \"message\": \"...\"}",
                "  (ts: epoch milliseconds or ISO-8601; level optional). Each source is summarized on its own.",
                "Output: one JSON object per summary on stdout (or the output topic):",
                "  key (the source), id (<source>/summary-<n>), output, model, prompt_tokens, generated_tokens,",
                "  latency_ms, task. Each summary is built on the source's previous summaries and its new lines.",
                "Bad records (bad JSON or UTF-8, missing fields, oversize, a line the context cannot hold) are",
                "  reported on stderr (or the dead-letter topic) with the reason and the line or offset; the job goes on.",
                "",
                "  --model            default " + ModelArgs.DEFAULT_MODEL + ", downloaded once into the Hugging Face",
                "                     cache; where it cannot be downloaded the job says so and runs on random",
                "                     weights of its shape (results say \"model\": \"random-weights-0.5b-shape\")",
                "  --every N          a summary after N new lines of a source (0: no count trigger)",
                "  --every-seconds T  a summary at the end of every T seconds that had lines (0: no time trigger);",
                "                     default without either: every " + DEFAULT_EVERY + " lines or " + DEFAULT_EVERY_SECONDS
                        + " seconds",
                "  --time             what --every-seconds measures: event (default: the lines' ts, with watermarks",
                "                     --out-of-orderness behind the newest; the end of a file ends every period) or",
                "                     processing (the wall clock)",
                "  --template         the user turn of each summary; " + Summaries.EVENTS + " is replaced by the new lines,",
                "                     " + Summaries.SUMMARY + " (optional) by the previous summary; @FILE reads it from a file",
                "  --system           the system prompt; @FILE reads it from a file",
                "  --max-new-tokens   per summary (default 128); --context-tokens per source (default 4096)"));
        lines.addAll(StreamingJob.ENGINE_USAGE);
        lines.addAll(StreamingJob.USAGE);
        return String.join("\n", lines);
    }

    @Override
    public void run(List<String> argv, PrintStream out, PrintStream err) throws Exception {
        Args a = Args.parse("summarize", argv,
                StreamingJob.with(StreamingJob.OPTIONS, "model", "every", "every-seconds", "time", "out-of-orderness",
                        "template", "system", "max-new-tokens", "context-tokens", "threads",
                        "kv-budget-mib",
                        "kv-type"),
                StreamingJob.FLAGS, StreamingJob.REPEATABLE);
        StreamingJob job = StreamingJob.parse("summarize", a);

        boolean triggerGiven = a.has("every") || a.has("every-seconds");
        int every = a.integer("every", triggerGiven ? 0 : DEFAULT_EVERY);
        int everySeconds = a.integer("every-seconds", triggerGiven ? 0 : DEFAULT_EVERY_SECONDS);
        if (every < 0 || everySeconds < 0) {
            throw new Args.UsageException("summarize: --" + (every < 0 ? "every" : "every-seconds") + " must be >= 0, got "
                    + Math.min(every, everySeconds));
        }
        if (every == 0 && everySeconds == 0) {
            throw new Args.UsageException("summarize: no summary trigger: give --every N or --every-seconds T above 0");
        }
        Summaries.TimeDomain time;
        switch (a.string("time", "event")) {
            case "event":
                time = Summaries.TimeDomain.EVENT_TIME;
                break;
            case "processing":
                time = Summaries.TimeDomain.PROCESSING_TIME;
                break;
            default:
                throw new Args.UsageException("summarize: --time must be event or processing, got '" + a.string("time") + "'");
        }
        Duration outOfOrderness;
        try {
            outOfOrderness = TimeUtils.parseDuration(a.string("out-of-orderness", "5s"));
        } catch (IllegalArgumentException e) {
            throw new Args.UsageException("summarize: --out-of-orderness: " + e.getMessage());
        }
        Task task;
        try {
            task = Task.summarize(every, Duration.ofSeconds(everySeconds), time);
            if (a.has("template")) {
                task = task.withPromptTemplate(text(a, "template"));
            }
            if (a.has("system")) {
                task = task.withSystemPrompt(text(a, "system"));
            }
        } catch (IllegalArgumentException e) {
            throw new Args.UsageException("summarize: " + e.getMessage());
        }
        QwenInference.Builder inference = QwenInference.builder()
                .model(a.string("model", ModelArgs.DEFAULT_MODEL)) // checked here, resolved below
                .task(task)
                .contextPolicy(a.integer("context-tokens", 4096), 4)
                .maxNewTokens(a.integer("max-new-tokens", 128));
        StreamingJob.engine("summarize", a, inference);
        try {
            inference.build();
        } catch (IllegalArgumentException e) {
            throw new Args.UsageException("summarize: " + e.getMessage());
        }
        job.checkInput();

        // after every usage check: resolving may download the model or write the fallback
        ModelArgs.JobModel model = ModelArgs.resolveForJob("summarize", a.string("model", ModelArgs.DEFAULT_MODEL), env,
                fallback, err);
        inference.model(model.path()).modelName(model.name());

        StreamExecutionEnvironment env = job.environment();
        DataStream<Either<DeadLetter, LogEvent>> logs = job.source(env, new LogEventFormat(job.maxRecordBytes), "logs");
        WatermarkStrategy<LogEvent> watermarks = everySeconds > 0 && time == Summaries.TimeDomain.EVENT_TIME
                ? WatermarkStrategy.<LogEvent>forBoundedOutOfOrderness(outOfOrderness)
                        .withTimestampAssigner((e, previous) -> e.tsMillis())
                : null;
        SummarizationPipeline.Result result = SummarizationPipeline.apply(logs, watermarks, inference);
        String triggers = (every > 0 ? "every " + every + " lines" : "")
                + (every > 0 && everySeconds > 0 ? " or " : "")
                + (everySeconds > 0 ? everySeconds + " s of " + (time == Summaries.TimeDomain.EVENT_TIME ? "event" : "processing")
                        + " time" : "");
        if (!job.kafka) {
            err.println("summarize: per source, " + triggers + ", model " + model.name());
        }
        job.run(env, result.results(), new ResultFormat(Map.of("task", "summarize")), r -> r.key(), result.deadLetters(),
                "summaries per source " + triggers + ", model " + model.name(), "summaries", out, err);
    }

    /** The option's text, or with {@code @FILE} the file's. */
    private static String text(Args a, String name) {
        String v = a.string(name);
        if (!v.startsWith("@")) {
            return v;
        }
        try {
            return Files.readString(Paths.get(v.substring(1)), StandardCharsets.UTF_8);
        } catch (IOException | RuntimeException e) {
            throw new Args.UsageException("summarize: --" + name + " " + v + ": cannot read " + v.substring(1) + " ("
                    + Main.describe(e) + ")");
        }
    }
}
