/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.jobs.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.flinkqwen.engine.LoadedModel;
import io.flinkqwen.engine.generate.Sampler;
import io.flinkqwen.engine.model.KvCache;
import io.flinkqwen.engine.model.Qwen2Model;
import io.flinkqwen.kernels.KernelPool;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.StringJoiner;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * {@code bench}: prefill and decode speed of one sequence on a model, optionally next to
 * llama.cpp (node-llama-cpp) on the same file with the same thread count.
 *
 * <p>A run prefills {@code --prompt-tokens} ids in one forward call (chunks of the model's
 * {@link LoadedModel#defaultChunkTokens()} unless {@code --chunk-tokens} says, as {@code
 * generate} does), then decodes {@code --gen-tokens} greedily: the token picked after the prompt
 * is the first, each further one costs a one-token forward, so decode speed is {@code
 * (gen - 1) / decode time}. Each run starts from a fresh KV cache; untimed warm-up runs come
 * first (JIT compilation, page faults on the mapped weights). Medians, minima and maxima over
 * {@code --runs}.
 *
 * <p>The prompt ids are deterministic ({@code (13 + 7919 i) mod V}, V the vocabulary without
 * Qwen's special tokens), so both engines see the same ids and the same sequence length.
 *
 * <p>Start-up is reported too: {@code load_ms} (opening the file until the weights are ready)
 * and {@code first_token_ms} (the first run's prefill and pick of the first token, on a cold
 * JVM). So is a roofline: a read-bandwidth probe ({@link ReadBandwidth}, same threads, about a
 * second) or {@code --bandwidth-gb-s}, and the share of it that decode's weight reads reach.
 */
final class BenchCommand implements Main.Command {

    /** Qwen's regular BPE tokens end here; ids from 151643 up are special tokens. */
    private static final int QWEN_REGULAR_TOKENS = 151643;


    @Override
    public String usage() {
        return String.join(
                "\n",
                "usage: flink-qwen bench --model PATH [--prompt-tokens N] [--gen-tokens N] [--batch B]",
                "         [--threads N] [--runs R] [--warmup W] [--chunk-tokens N] [--vs-llama-cpp] [--oracle-dir DIR]",
                "         [--bandwidth-gb-s X] [--kv-type f32|f16|q8] [--fill-context N] [--output json|text]",
                "",
                "  --prompt-tokens  prompt length (default 128); ids are (13 + 7919 i) mod vocabulary",
                "  --gen-tokens     tokens decoded greedily after the prompt (default 64)",
                "  --batch          sequences decoded together (one forward pass per step for all;",
                "                   default 1, at most --chunk-tokens if given); llama.cpp then decodes as many",
                "                   sequences of one context together",
                "  --chunk-tokens   prompt tokens per forward pass, and the most sequences a decode pass",
                "                   holds (default: the model's, 64 dense; MoE: 8 tokens per expert on",
                "                   average, e.g. 128 for 60 experts top-4)",
                "  --threads        kernel threads (default: available processors); llama.cpp gets the same",
                "  --runs           timed runs (default 3); medians, min and max are reported",
                "  --warmup         untimed runs first (default 1), for both engines",
                "  --vs-llama-cpp   also time llama.cpp on the same file (node + node-llama-cpp) and report",
                "                   the ratios ours / llama.cpp",
                "  --oracle-dir     folder with node_modules/node-llama-cpp (default: ./oracle if it has",
                "                   one, else oracle/ in the repository the launcher jar was built in);",
                "                   llama-bench.mjs is the repository's oracle/ one, else the one there",
                "  --bandwidth-gb-s the machine's memory read bandwidth for decode_roofline_share (default:",
                "                   measured in-process, about 1 s, with --threads threads)",
                "  --kv-type        KV cache storage, f32 (default), f16 or q8; llama.cpp keeps its defaults",
                "                   (F16 cache, flash attention)",
                "  --fill-context   decode after N positions of context (a multiple of 16): the prompt's",
                "                   keys and values copied block by block up to N, its prefill skipped;",
                "                   decode speed at long context only (the text means nothing), batch 1,",
                "                   not with --vs-llama-cpp",
                "  --output         json (one object, default) or text");
    }

    @Override
    public void run(List<String> argv, PrintStream out, PrintStream err) throws Exception {
        Args a =
                Args.parse(
                        "bench",
                        argv,
                        Set.of(
                                "model", "prompt-tokens", "gen-tokens", "batch", "threads", "runs", "warmup",
                                "oracle-dir", "output", "bandwidth-gb-s", "chunk-tokens", "kv-type", "fill-context"),
                        Set.of("vs-llama-cpp"));
        String output = a.string("output", "json");
        if (!output.equals("json") && !output.equals("text")) {
            throw new Args.UsageException("bench: --output must be json or text, got '" + output + "'");
        }
        int batch = positive(a, "batch", 1);
        int chunkArg = a.has("chunk-tokens") ? positive(a, "chunk-tokens", 1) : 0;
        if (chunkArg > 0 && batch > chunkArg) {
            throw new Args.UsageException("bench: --batch must be at most --chunk-tokens (" + chunkArg + "), got " + batch);
        }
        int promptTokens = positive(a, "prompt-tokens", 128);
        int genTokens = positive(a, "gen-tokens", 64);
        int threads = positive(a, "threads", Runtime.getRuntime().availableProcessors());
        int runs = positive(a, "runs", 3);
        int warmup = a.integer("warmup", 1);
        if (warmup < 0) {
            throw new Args.UsageException("bench: --warmup must be >= 0");
        }
        boolean vsLlama = a.flag("vs-llama-cpp");
        io.flinkqwen.engine.model.KvFormat kvType = KvType.of(a, "bench");
        int fillContext = a.integer("fill-context", 0);
        if (fillContext != 0 && (vsLlama || batch != 1 || fillContext % 16 != 0 || fillContext < promptTokens
                || promptTokens % 16 != 0)) {
            throw new Args.UsageException("bench: --fill-context needs batch 1, no --vs-llama-cpp, and a multiple of 16"
                    + " at least --prompt-tokens (itself a multiple of 16), got " + fillContext);
        }
        Path modelPath = Path.of(a.string("model"));
        double givenBandwidth = a.has("bandwidth-gb-s") ? a.number("bandwidth-gb-s", 0) : 0;
        if (a.has("bandwidth-gb-s") && !(givenBandwidth > 0)) {
            throw new Args.UsageException("bench: --bandwidth-gb-s must be > 0, got " + a.string("bandwidth-gb-s"));
        }

        ObjectMapper json = new ObjectMapper();
        ObjectNode o = json.createObjectNode();
        int[] prompt;
        double[] prefill = new double[runs];
        double[] decode = new double[runs];
        long weightBytes;
        double loadMs;
        double firstTokenMs = 0;
        double measuredBandwidth = 0;
        long kvBytes = 0;
        long t0 = System.nanoTime();
        try (LoadedModel model = ModelArgs.load(modelPath.toString(), err)) {
            loadMs = (System.nanoTime() - t0) / 1e6;
            prompt = promptIds(model.config().vocabSize(), promptTokens);
            // what a decode step reads: for MoE, the top-k experts of each layer, not all of them
            weightBytes = model.weights().activeMatrixBytes();
            o.put("model", model.source().toString());
            o.put("format", model.format());
            o.put("weight_format", model.weights().weightFormat());
            o.put("weights_bytes", weightBytes);
            o.put("weights_on_heap", model.weights().onHeap());
            int chunk = chunkArg > 0 ? chunkArg : Math.max(batch, model.defaultChunkTokens());
            o.put("chunk_tokens", chunk);
            try (KernelPool pool = new KernelPool(threads)) {
                Qwen2Model forward = model.newForward(pool, chunk, kvType);
                o.put("device", forward.backend().name());
                o.put("device_description", forward.backend().description());
                for (int r = 0; r < warmup + runs; r++) {
                    double[] tps = batch == 1 ? oneRun(forward, prompt, genTokens, fillContext) : batchRun(forward, prompt, genTokens, batch);
                    if (r == 0) {
                        firstTokenMs = tps[2];
                    }
                    if (!forward.backend().name().equals("cpu")) {
                        // one decode step's device launches (TornadoVM plan executions), last run
                        o.put("device_launches_per_decode_step", round(tps[4], 2));
                    }
                    if (r >= warmup) {
                        prefill[r - warmup] = tps[0];
                        decode[r - warmup] = tps[1];
                    }
                    kvBytes = (long) tps[3];
                }
                if (givenBandwidth == 0) {
                    // after the runs, so that the probe's 256 MiB are not in the way of the model
                    measuredBandwidth = ReadBandwidth.measure(pool, ReadBandwidth.DEFAULT_BYTES, 4, 1_000_000_000L);
                }
            }
        }
        o.put("batch", batch);
        o.put("threads", threads);
        o.put("runs", runs);
        o.put("warmup", warmup);
        o.put("prompt_tokens", promptTokens);
        o.put("gen_tokens", genTokens);
        o.put("kv_type", kvType.id());
        if (fillContext > 0) {
            o.put("fill_context", fillContext);
        }
        // the KV blocks of the last run (all sequences), and this process's resident memory
        o.put("kv_cache_bytes", kvBytes);
        putResident(o);
        o.put("java", Runtime.version().toString());
        o.put("load_ms", round(loadMs, 1));
        o.put("first_token_ms", round(firstTokenMs, 1));
        // weights are read once per step; a step of a batch yields `batch` tokens
        putSpeeds(o, prefill, decode, weightBytes / batch);
        double bandwidth = givenBandwidth > 0 ? givenBandwidth : measuredBandwidth;
        if (givenBandwidth == 0) {
            o.put("measured_read_gb_per_s", round(measuredBandwidth, 2));
        }
        o.put("bandwidth_gb_per_s", round(bandwidth, 2));
        o.put("bandwidth_source", givenBandwidth > 0 ? "--bandwidth-gb-s" : "measured");
        o.put("decode_roofline_share", round(o.get("decode_weight_gb_per_s").asDouble() / bandwidth, 3));
        if (vsLlama) {
            ObjectNode l = json.createObjectNode();
            JsonNode result = runLlamaBench(json, a, modelPath, threads, runs, warmup, genTokens, prompt, batch, err);
            double[] lp = new double[runs];
            double[] ld = new double[runs];
            for (int r = 0; r < runs; r++) {
                lp[r] = result.get("runs").get(r).get("prefill_tokens_per_s").asDouble();
                ld[r] = result.get("runs").get(r).get("decode_tokens_per_s").asDouble();
            }
            l.put("batch", result.path("batch").asInt(1));
            l.put("load_ms", round(result.path("load_ms").asDouble(), 1));
            l.put("first_token_ms", round(result.path("first_token_ms").asDouble(), 1));
            putSpeeds(l, lp, ld, weightBytes / batch);
            l.put("decode_roofline_share", round(l.get("decode_weight_gb_per_s").asDouble() / bandwidth, 3));
            if (result.has("rss_bytes")) {
                l.put("rss_bytes", result.get("rss_bytes").asLong());
                l.put("peak_rss_bytes", result.get("peak_rss_bytes").asLong());
            }
            l.set("provenance", result.get("provenance"));
            o.set("llama_cpp", l);
            o.put("prefill_ratio", round(median(prefill) / median(lp), 3));
            o.put("decode_ratio", round(median(decode) / median(ld), 3));
        }
        if (output.equals("json")) {
            out.println(json.writeValueAsString(o));
        } else {
            out.println(json.writerWithDefaultPrettyPrinter().writeValueAsString(o));
        }
    }

    /** Deterministic prompt ids, all regular tokens of a {@code vocab}-entry vocabulary. */
    static int[] promptIds(int vocab, int n) {
        int bound = Math.min(vocab, QWEN_REGULAR_TOKENS);
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) {
            ids[i] = (int) ((13 + 7919L * i) % bound);
        }
        return ids;
    }

    /** One timed run from a fresh cache: {prefill tok/s, decode tok/s, ms to the first token}. */
    private static double[] oneRun(Qwen2Model forward, int[] prompt, int genTokens, int fillContext) {
        KvCache cache = forward.newCache(Math.max(fillContext, prompt.length) + genTokens);
        long t0 = System.nanoTime();
        int next = Sampler.argmax(forward.forward(cache, prompt, 0, prompt.length), forward.config().vocabSize());
        long prefillNanos = System.nanoTime() - t0;
        if (fillContext > prompt.length) {
            cache.repeatTo(fillContext);
        }
        int[] one = new int[1];
        long launches = forward.backend().launches();
        t0 = System.nanoTime();
        for (int s = 1; s < genTokens; s++) {
            one[0] = next;
            next = Sampler.argmax(forward.forward(cache, one, 0, 1), forward.config().vocabSize());
        }
        long decodeNanos = System.nanoTime() - t0;
        launches = forward.backend().launches() - launches;
        long kvBytes = cache.sizeBytes();
        cache.release(); // its blocks go back to the model's pool for the next run
        return new double[] {
            prompt.length / (prefillNanos / 1e9), genTokens > 1 ? (genTokens - 1) / (decodeNanos / 1e9) : 0,
            prefillNanos / 1e6, kvBytes, genTokens > 1 ? launches / (double) (genTokens - 1) : 0
        };
    }

    /**
     * {@code batch} sequences (the prompt rotated per sequence, so they differ): each prefilled
     * alone, then decoded together with one {@link Qwen2Model#forwardBatch} per step. Returns
     * {total prompt tok/s, aggregate decode tok/s, ms to the first sequence's first token}.
     */
    private static double[] batchRun(Qwen2Model forward, int[] prompt, int genTokens, int batch) {
        int vocab = forward.config().vocabSize();
        KvCache[] caches = new KvCache[batch];
        int[] next = new int[batch];
        long t0 = System.nanoTime();
        long firstNanos = 0;
        for (int b = 0; b < batch; b++) {
            int[] p = new int[prompt.length];
            for (int i = 0; i < p.length; i++) {
                p[i] = prompt[(i + b) % prompt.length];
            }
            caches[b] = forward.newCache(prompt.length + genTokens);
            next[b] = Sampler.argmax(forward.forward(caches[b], p, 0, p.length), vocab);
            if (b == 0) {
                firstNanos = System.nanoTime() - t0;
            }
        }
        long prefillNanos = System.nanoTime() - t0;
        long launches = forward.backend().launches();
        t0 = System.nanoTime();
        for (int s = 1; s < genTokens; s++) {
            float[] logits = forward.forwardBatch(caches, next, batch);
            for (int b = 0; b < batch; b++) {
                next[b] = Sampler.argmax(logits, b * vocab, vocab);
            }
        }
        long decodeNanos = System.nanoTime() - t0;
        long kvBytes = 0;
        for (KvCache c : caches) {
            kvBytes += c.sizeBytes();
            c.release();
        }
        launches = forward.backend().launches() - launches;
        return new double[] {
            (double) batch * prompt.length / (prefillNanos / 1e9),
            genTokens > 1 ? (double) batch * (genTokens - 1) / (decodeNanos / 1e9) : 0,
            firstNanos / 1e6, kvBytes, genTokens > 1 ? launches / (double) (genTokens - 1) : 0
        };
    }

    /**
     * {@code rss_bytes} and {@code peak_rss_bytes} (VmRSS, VmHWM of /proc/self/status: the JVM's
     * heap as far as it was touched, the mapped weights' pages, the code), where Linux has them.
     */
    private static void putResident(ObjectNode o) {
        Path status = Path.of("/proc/self/status");
        if (!Files.isReadable(status)) {
            return;
        }
        try {
            for (String line : Files.readAllLines(status)) {
                if (line.startsWith("VmRSS:")) {
                    o.put("rss_bytes", kib(line));
                } else if (line.startsWith("VmHWM:")) {
                    o.put("peak_rss_bytes", kib(line));
                }
            }
        } catch (IOException e) {
            // no resident figures then
        }
    }

    private static long kib(String statusLine) {
        return 1024L * Long.parseLong(statusLine.replaceAll("[^0-9]", ""));
    }

    private static void putSpeeds(ObjectNode o, double[] prefill, double[] decode, long weightBytes) {
        o.put("prefill_tokens_per_s", round(median(prefill), 2));
        o.put("prefill_tokens_per_s_min", round(min(prefill), 2));
        o.put("prefill_tokens_per_s_max", round(max(prefill), 2));
        o.put("decode_tokens_per_s", round(median(decode), 2));
        o.put("decode_tokens_per_s_min", round(min(decode), 2));
        o.put("decode_tokens_per_s_max", round(max(decode), 2));
        // every matrix is read once per decoded token; the embedding row and the KV cache are not counted
        o.put("decode_weight_gb_per_s", round(weightBytes * median(decode) / 1e9, 2));
    }

    /** Runs oracle/llama-bench.mjs with node and returns its JSON. */
    private static JsonNode runLlamaBench(
            ObjectMapper json, Args a, Path model, int threads, int runs, int warmup, int gen, int[] prompt,
            int batch, PrintStream err) throws IOException, InterruptedException {
        Path oracle = oracleDir(a);
        Path packageDir = oracle.resolve("node_modules/node-llama-cpp");
        // the script of the repository this jar was built from speaks this class's protocol (its
        // arguments, its JSON); a copy beside another checkout's node_modules may be older
        Path repo = repositoryRoot();
        Path script = repo == null ? null : repo.resolve("oracle/llama-bench.mjs");
        if (script == null || !Files.isRegularFile(script)) {
            script = oracle.resolve("llama-bench.mjs");
        }
        if (!Files.isRegularFile(script)) {
            throw new IllegalStateException("bench: llama-bench.mjs not found in the repository's oracle/ nor in " + oracle);
        }
        StringJoiner ids = new StringJoiner(",");
        for (int id : prompt) {
            ids.add(Integer.toString(id));
        }
        List<String> cmd =
                new ArrayList<>(
                        Arrays.asList(
                                "node", script.toString(), model.toAbsolutePath().toString(), Integer.toString(threads),
                                Integer.toString(runs), Integer.toString(gen), ids.toString(), Integer.toString(warmup),
                                packageDir.toString(), Integer.toString(batch)));
        err.println("bench: timing llama.cpp: node " + script + " (node-llama-cpp from " + packageDir + ")");
        Process p = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.INHERIT).start();
        p.getOutputStream().close();
        CompletableFuture<byte[]> stdout = CompletableFuture.supplyAsync(() -> readAll(p.getInputStream()));
        if (!p.waitFor(30, TimeUnit.MINUTES)) {
            p.destroyForcibly();
            throw new IllegalStateException("bench: llama-bench.mjs did not finish in 30 minutes");
        }
        String text = new String(stdout.join(), StandardCharsets.UTF_8);
        if (p.exitValue() != 0) {
            throw new IllegalStateException("bench: llama-bench.mjs exited with " + p.exitValue() + ": " + text);
        }
        return json.readTree(text);
    }

    private static byte[] readAll(InputStream in) {
        try {
            return in.readAllBytes();
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    /**
     * {@code --oracle-dir}, else {@code ./oracle} when it has node-llama-cpp installed, else {@code
     * oracle/} of the repository this class was built in (the launcher runs {@code
     * jobs/target/flink-qwen-jobs.jar}; tests run {@code jobs/target/classes}).
     */
    static Path oracleDir(Args a) {
        if (a.has("oracle-dir")) {
            return requireNodeLlamaCpp(Path.of(a.string("oracle-dir")).toAbsolutePath());
        }
        Path cwd = Path.of("oracle").toAbsolutePath();
        if (Files.isRegularFile(cwd.resolve("node_modules/node-llama-cpp/package.json"))) {
            return cwd;
        }
        Path repo = repositoryRoot();
        return requireNodeLlamaCpp(repo != null ? repo.resolve("oracle") : cwd);
    }

    private static Path requireNodeLlamaCpp(Path dir) {
        if (!Files.isRegularFile(dir.resolve("node_modules/node-llama-cpp/package.json"))) {
            throw new IllegalStateException(
                    "bench: node-llama-cpp is not installed in " + dir + " (run `NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm"
                            + " install --omit=optional` there, or pass --oracle-dir DIR)");
        }
        return dir;
    }

    /** The repository root: three levels above jobs/target/(classes|flink-qwen-jobs.jar), or null. */
    private static Path repositoryRoot() {
        try {
            Path code = Path.of(BenchCommand.class.getProtectionDomain().getCodeSource().getLocation().toURI());
            Path root = code.getParent() == null ? null : code.getParent().getParent();
            return root == null ? null : root.getParent();
        } catch (URISyntaxException | SecurityException | NullPointerException e) {
            return null;
        }
    }

    private static int positive(Args a, String name, int def) {
        int v = a.integer(name, def);
        if (v < 1) {
            throw new Args.UsageException("bench: --" + name + " must be >= 1, got " + v);
        }
        return v;
    }

    static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        int n = s.length;
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    }

    private static double min(double[] v) {
        return Arrays.stream(v).min().orElse(0);
    }

    private static double max(double[] v) {
        return Arrays.stream(v).max().orElse(0);
    }

    private static double round(double v, int digits) {
        double f = Math.pow(10, digits);
        return Double.isFinite(v) ? Math.round(v * f) / f : 0;
    }
}
