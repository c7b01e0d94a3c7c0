/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.jobs.cli;

import io.flinkqwen.connectors.format.DeadLetter;
import io.flinkqwen.connectors.format.DeadLetterFormat;
import io.flinkqwen.connectors.format.Decoding;
import io.flinkqwen.connectors.format.JsonRecords;
import io.flinkqwen.connectors.format.RecordDecoder;
import io.flinkqwen.connectors.kafka.KafkaIo;
import io.flinkqwen.connectors.lines.JsonLinesFormat;
import io.flinkqwen.jobs.translate.StdinJsonLinesSource;
import io.flinkqwen.operators.inference.InferenceSettings;
import io.flinkqwen.operators.inference.QwenInference;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.serialization.SerializationSchema;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.client.program.StreamContextEnvironment;
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
import org.apache.flink.util.function.SerializableFunction;

/**
 * What the streaming commands ({@code translate}, {@code summarize}) share: the input and output
 * options (a file or stdin to stdout, or Kafka to Kafka), checkpoints, the environment on an
 * embedded MiniCluster (or the cluster under {@code flink run}), the source of decoded JSON
 * records, and running the job with its results and dead letters.
 */
final class StreamingJob {

    /** The valued options every streaming command takes. */
    static final Set<String> OPTIONS = Set.of("input", "kafka-bootstrap", "input-topic", "output-topic",
            "dead-letter-topic", "group-id", "delivery", "checkpoint-dir", "checkpoint-interval", "max-record-bytes",
            "parallelism");

    /** The flags every streaming command takes. */
    static final Set<String> FLAGS = Set.of("bounded");

    /** The repeatable options every streaming command takes. */
    static final Set<String> REPEATABLE = Set.of("kafka-producer-property");

    /** The usage lines of {@link #OPTIONS} and {@link #FLAGS}, after the command's own. */
    static final List<String> USAGE = List.of(
            "  --input -          standard input (embedded MiniCluster only; not replayed after a failure)",
            "  --checkpoint-dir   enables checkpoints, stored there; with stdout output, results are",
            "                     printed as checkpoints complete. Kafka mode always checkpoints",
            "                     (exactly-once commits at checkpoints); without a dir they are in memory",
            "  --delivery         of results to Kafka; exactly-once (default) needs consumers with",
            "                     isolation.level=read_committed to hide uncommitted results",
            "  --bounded          Kafka: stop at the input topic's end as of the start",
            "  --max-record-bytes longer records are dead letters (default " + JsonRecords.DEFAULT_MAX_RECORD_BYTES + ")",
            "  --parallelism      of the job (default 1; under flink run: its -p, else the cluster's default)",
            "  --kafka-producer-property KEY=VALUE",
            "                     a Kafka producer setting of the result and dead-letter sinks (repeatable;",
            "                     e.g. compression.type=zstd, buffer.memory=...); it overrides the job's own");

    final String command;
    final Args args;
    final boolean kafka;
    /** The file, or {@code -} for stdin; null with Kafka. */
    final String input;
    final DeliveryGuarantee delivery;
    final Duration checkpointInterval;
    final int parallelism;
    final int maxRecordBytes;
    /** {@code --kafka-producer-property} settings, in command-line order. */
    final Map<String, String> producerProperties;

    private StreamingJob(String command, Args a) {
        this.command = command;
        this.args = a;
        this.kafka = a.has("kafka-bootstrap");
        if (kafka == a.has("input")) {
            throw new Args.UsageException(command + ": give exactly one of --input FILE|- and --kafka-bootstrap");
        }
        for (String k : List.of("input-topic", "output-topic", "dead-letter-topic", "group-id", "delivery")) {
            if (!kafka && a.has(k)) {
                throw new Args.UsageException(command + ": --" + k + " needs --kafka-bootstrap");
            }
        }
        if (!kafka && a.flag("bounded")) {
            throw new Args.UsageException(command + ": --bounded needs --kafka-bootstrap (files end by themselves)");
        }
        producerProperties = new LinkedHashMap<>();
        for (String kv : a.all("kafka-producer-property")) {
            int eq = kv.indexOf('=');
            if (eq <= 0) {
                throw new Args.UsageException(command + ": --kafka-producer-property takes KEY=VALUE, got '" + kv + "'");
            }
            if (!kafka) {
                throw new Args.UsageException(command + ": --kafka-producer-property needs --kafka-bootstrap");
            }
            producerProperties.put(kv.substring(0, eq).trim(), kv.substring(eq + 1).trim());
        }
        switch (a.string("delivery", "exactly-once")) {
            case "exactly-once":
                delivery = DeliveryGuarantee.EXACTLY_ONCE;
                break;
            case "at-least-once":
                delivery = DeliveryGuarantee.AT_LEAST_ONCE;
                break;
            default:
                throw new Args.UsageException(command + ": --delivery must be exactly-once or at-least-once, got '"
                        + a.string("delivery") + "'");
        }
        try {
            checkpointInterval = TimeUtils.parseDuration(a.string("checkpoint-interval", "5s"));
        } catch (IllegalArgumentException e) {
            throw new Args.UsageException(command + ": --checkpoint-interval: " + e.getMessage());
        }
        parallelism = positive(command, a, "parallelism", 1);
        maxRecordBytes = positive(command, a, "max-record-bytes", JsonRecords.DEFAULT_MAX_RECORD_BYTES);
        input = kafka ? null : a.string("input");
    }

    /** The shared options of {@code a}, checked together; usage errors name the option. */
    static StreamingJob parse(String command, Args a) {
        return new StreamingJob(command, a);
    }

    /** Fails (exit 1) if {@code --input} names no file; call after the model is checked. */
    void checkInput() {
        if (input != null && !input.equals("-") && !Files.isRegularFile(Paths.get(input))) {
            throw new IllegalArgumentException(command + ": --input " + input + " is not a file");
        }
    }

    /** The environment: loopback-only on the embedded MiniCluster, checkpoints as the options say. */
    StreamExecutionEnvironment environment() {
        Configuration conf = new Configuration();
        // the embedded MiniCluster listens on loopback only; a cluster ignores these
        conf.set(RestOptions.BIND_ADDRESS, "127.0.0.1");
        conf.set(RestOptions.ADDRESS, "127.0.0.1");
        conf.set(JobManagerOptions.BIND_HOST, "127.0.0.1");
        conf.set(TaskManagerOptions.BIND_HOST, "127.0.0.1");
        conf.set(TaskManagerOptions.HOST, "127.0.0.1");
        if (args.has("checkpoint-dir")) {
            conf.set(CheckpointingOptions.CHECKPOINTS_DIRECTORY,
                    Paths.get(args.string("checkpoint-dir")).toAbsolutePath().toUri().toString());
        }
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        // under `flink run` (a context environment) flink run's -p, or the cluster's
        // parallelism.default, holds unless --parallelism is given; the embedded MiniCluster runs 1
        if (args.has("parallelism") || !(env instanceof StreamContextEnvironment)) {
            env.setParallelism(parallelism);
        }
        if (args.has("checkpoint-dir") || kafka) {
            env.enableCheckpointing(checkpointInterval.toMillis());
        }
        return env;
    }

    /**
     * The decoded records of the input: the Kafka topic, stdin or the file, one JSON object per
     * line or record; malformed ones are dead letters naming {@code file:line} or
     * {@code topic-partition@offset}.
     *
     * @param what names the source operators ({@code requests}, {@code logs})
     */
    // deprecation: stdin needs the legacy SourceFunction API (StdinJsonLinesSource)
    @SuppressWarnings("deprecation")
    <T> DataStream<Either<DeadLetter, T>> source(StreamExecutionEnvironment env, RecordDecoder<T> format, String what) {
        if (kafka) {
            return env.fromSource(KafkaIo.source(args.string("kafka-bootstrap"), args.string("input-topic"),
                            args.string("group-id", "flink-qwen-" + command), format, args.flag("bounded")),
                    WatermarkStrategy.noWatermarks(), "kafka-" + what);
        }
        if (input.equals("-")) {
            return env.addSource(new StdinJsonLinesSource<>(format, maxRecordBytes), "stdin-" + what,
                    Decoding.eitherType(format)).setParallelism(1);
        }
        Path file = Paths.get(input).toAbsolutePath();
        FileSource<Either<DeadLetter, T>> source = FileSource.forRecordStreamFormat(
                new JsonLinesFormat<>(format, file.getFileName().toString(), maxRecordBytes),
                new org.apache.flink.core.fs.Path(file.toUri())).build();
        return env.fromSource(source, WatermarkStrategy.noWatermarks(), "file-" + what);
    }

    /**
     * Runs the job. With Kafka: results to the output topic (keyed by {@code key}), dead letters
     * to the dead-letter topic or the task managers' stdout, until the job ends. Otherwise through
     * the client: one JSON object per result on {@code out}, one line per dead letter on {@code
     * err}, then a count ({@code "<command>: 4 <done>, 5 skipped"}).
     *
     * @param describe what the start line on {@code err} says about the job (Kafka only)
     * @param done the past participle the count uses ({@code translated}, {@code summaries})
     */
    // try: Flink's CloseableIterator declares close() throws Exception
    @SuppressWarnings("try")
    <R> void run(StreamExecutionEnvironment env, DataStream<R> results, SerializationSchema<R> format,
            SerializableFunction<R, String> key, DataStream<DeadLetter> deadLetters, String describe, String done,
            PrintStream out, PrintStream err) throws Exception {
        String jobName = "flink-qwen " + command;
        if (kafka) {
            String bootstrap = args.string("kafka-bootstrap");
            String run = "flink-qwen-" + command + "-" + UUID.randomUUID().toString().substring(0, 8);
            results.sinkTo(KafkaIo.sink(bootstrap, args.string("output-topic"), format, key, delivery,
                    run + "-results", producerProperties)).name("kafka-results");
            if (args.has("dead-letter-topic")) {
                deadLetters.sinkTo(KafkaIo.sink(bootstrap, args.string("dead-letter-topic"), new DeadLetterFormat(),
                        DeadLetter::origin, delivery, run + "-dead", producerProperties)).name("kafka-dead-letters");
            } else {
                deadLetters.map(StreamingJob::describe).returns(Types.STRING).print("dead letter").name("dead-letters");
            }
            err.println(command + ": " + describe + " from " + args.string("input-topic") + " to "
                    + args.string("output-topic") + " (" + args.string("delivery", "exactly-once") + ")");
            try {
                env.execute(jobName);
            } catch (Exception e) {
                throw jobFailed(command, e);
            }
            return;
        }

        // stdout: results as JSON lines, dead letters on stderr, through the client
        DataStream<String> lines = results
                .map(r -> "R" + new String(format.serialize(r), StandardCharsets.UTF_8))
                .returns(Types.STRING)
                .union(deadLetters.map(d -> "D" + describe(d)).returns(Types.STRING));
        long written = 0;
        long skipped = 0;
        try (CloseableIterator<String> it = lines.executeAndCollect(jobName)) {
            while (hasNext(command, it)) {
                String line = it.next();
                if (line.charAt(0) == 'R') {
                    out.println(line.substring(1));
                    out.flush();
                    written++;
                } else {
                    err.println(line.substring(1));
                    skipped++;
                }
            }
        }
        err.println(command + ": " + written + " " + done + ", " + skipped + " skipped");
    }

    private static boolean hasNext(String command, CloseableIterator<String> it) {
        try {
            return it.hasNext();
        } catch (RuntimeException e) {
            throw jobFailed(command, e);
        }
    }

    /** The job's own error (a bad setting, a missing model), not the client's wrappers around it. */
    static RuntimeException jobFailed(String command, Exception e) {
        Throwable root = e;
        while (root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        return new IllegalStateException(command + ": the job failed: " + (root.getMessage() == null
                ? root.getClass().getName() : root.getMessage()), e);
    }

    /** One line for a human: where, why, and the start of the record. */
    static String describe(DeadLetter d) {
        String payload = d.payload().length() > 120 ? d.payload().substring(0, 120) + "..." : d.payload();
        return "skipped " + d.origin() + ": " + d.reason() + (payload.isEmpty() ? "" : " | " + payload.replace('\n', ' '));
    }

    /** The inference options both commands take besides the model's: {@code --threads}, {@code --kv-budget-mib}. */
    static final Set<String> ENGINE_OPTIONS = Set.of("threads", "kv-budget-mib", "kv-type");

    /** The usage lines of {@link #ENGINE_OPTIONS}. */
    static final List<String> ENGINE_USAGE = List.of(
            "  --threads          kernel threads per operator (default 1)",
            "  --kv-budget-mib    KV caches per operator instance, running and idle keys together (default "
                    + (InferenceSettings.DEFAULT_KV_BUDGET_BYTES >> 20) + "); idle keys beyond it are evicted",
            "                     (rebuilt by prefill at their next event), a request it cannot hold waits",
            "  --kv-type          KV cache storage of each operator: f32, f16 or q8 (default: the JVM's",
            "                     system property flinkqwen.kv, else f32)");

    /** {@code --threads}, {@code --kv-budget-mib} and {@code --kv-type} applied to {@code inference}'s engine. */
    static void engine(String command, Args a, QwenInference.Builder inference) {
        int threads = positive(command, a, "threads", 1);
        int kvMib = a.integer("kv-budget-mib", (int) (InferenceSettings.DEFAULT_KV_BUDGET_BYTES >> 20));
        if (kvMib < 0) {
            throw new Args.UsageException(command + ": --kv-budget-mib must be >= 0, got " + kvMib);
        }
        inference.engine(4, 16, threads).kvBudgetBytes((long) kvMib << 20);
        if (a.has("kv-type")) {
            inference.kvType(KvType.of(a, command)); // unset: the task managers' flinkqwen.kv, else f32
        }
    }

    static int positive(String command, Args a, String name, int fallback) {
        int v = a.integer(name, fallback);
        if (v < 1) {
            throw new Args.UsageException(command + ": --" + name + " must be >= 1, got " + v);
        }
        return v;
    }

    /** {@code shared} and {@code own} option names together. */
    static Set<String> with(Set<String> shared, String... own) {
        Set<String> all = new HashSet<>(shared);
        all.addAll(List.of(own));
        return all;
    }
}
