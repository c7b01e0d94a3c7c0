/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.jobs.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.flinkqwen.engine.LoadedModel;
import io.flinkqwen.engine.generate.SamplingParams;
import io.flinkqwen.engine.model.KvFormat;
import io.flinkqwen.engine.serve.ContinuousBatchingEngine;
import io.flinkqwen.engine.serve.GenerationRequest;
import io.flinkqwen.kernels.KernelPool;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;

/**
 * {@code kv-capacity}: how many keys one KV budget keeps, with and without prefix sharing, per
 * KV format. Keys {@code k0 .. kN-1} each send one request, one after another, on a
 * continuous-batching engine with that budget: a prompt of {@code --shared-tokens} ids common to
 * all keys (a system prompt or task template) and {@code --own-tokens} ids of its own, then
 * {@code --gen-tokens} greedy tokens. A key whose cache is still held at the end is one the
 * engine serves without prefill of its history on its next event.
 */
final class KvCapacityCommand implements Main.Command {

    @Override
    public String usage() {
        return String.join(
                "\n",
                "usage: flink-qwen kv-capacity --model PATH [--keys N] [--shared-tokens S] [--own-tokens O]",
                "         [--gen-tokens G] [--kv-budget-mib M] [--kv-type f32|f16|q8|all] [--threads N]",
                "",
                "  --keys           keys, one request each, in order (default 64)",
                "  --shared-tokens  prompt ids common to every key (default 256)",
                "  --own-tokens     prompt ids of each key after those (default 32)",
                "  --gen-tokens     tokens generated per request (default 4)",
                "  --kv-budget-mib  the engine's KV budget, running and idle caches (default 32)",
                "  --kv-type        one format, or all three (default all); each runs with prefix",
                "                   sharing off and on",
                "Prints one JSON object: per run, the keys whose cache the budget still holds at the",
                "end, evictions, KV bytes in use, prompt tokens prefilled and shared, and seconds.");
    }

    @Override
    public void run(List<String> argv, PrintStream out, PrintStream err) throws Exception {
        Args a = Args.parse(
                "kv-capacity", argv,
                Set.of("model", "keys", "shared-tokens", "own-tokens", "gen-tokens", "kv-budget-mib", "kv-type", "threads"),
                Set.of());
        int keys = a.integer("keys", 64);
        int shared = a.integer("shared-tokens", 256);
        int own = a.integer("own-tokens", 32);
        int gen = a.integer("gen-tokens", 4);
        int budgetMib = a.integer("kv-budget-mib", 32);
        int threads = a.integer("threads", Runtime.getRuntime().availableProcessors());
        if (keys < 1 || shared < 0 || own < 1 || gen < 1 || budgetMib < 0 || threads < 1) {
            throw new Args.UsageException("kv-capacity: --keys, --own-tokens, --gen-tokens, --threads must be >= 1;"
                    + " --shared-tokens, --kv-budget-mib >= 0");
        }
        List<KvFormat> formats = new ArrayList<>();
        if (a.string("kv-type", "all").equals("all")) {
            formats.addAll(List.of(KvFormat.values()));
        } else {
            formats.add(KvType.of(a, "kv-capacity"));
        }
        long budget = (long) budgetMib << 20;
        ObjectMapper json = new ObjectMapper();
        ObjectNode o = json.createObjectNode();
        o.put("keys", keys);
        o.put("shared_tokens", shared);
        o.put("own_tokens", own);
        o.put("gen_tokens", gen);
        o.put("kv_budget_bytes", budget);
        o.put("threads", threads);
        ArrayNode runs = o.putArray("runs");
        try (LoadedModel model = ModelArgs.load(a.string("model"), err);
                KernelPool pool = new KernelPool(threads)) {
            o.put("model", model.source().toString());
            int vocab = Math.min(model.config().vocabSize(), 151643);
            for (KvFormat f : formats) {
                for (boolean sharing : new boolean[] {false, true}) {
                    long t0 = System.nanoTime();
                    try (ContinuousBatchingEngine engine =
                            new ContinuousBatchingEngine(model.newForward(pool, model.defaultChunkTokens(), f), 1, 2, budget, sharing)) {
                        for (int k = 0; k < keys; k++) {
                            int[] p = new int[shared + own];
                            for (int i = 0; i < shared; i++) {
                                p[i] = (int) ((13 + 7919L * i) % vocab);
                            }
                            for (int i = 0; i < own; i++) {
                                p[shared + i] = (int) ((101 + 104729L * k + 31L * i) % vocab);
                            }
                            engine.submit(new GenerationRequest("k" + k, "k" + k, p, SamplingParams.greedy(gen)))
                                    .get(10, TimeUnit.MINUTES);
                        }
                        ObjectNode r = runs.addObject();
                        r.put("kv_type", f.id());
                        r.put("prefix_sharing", sharing);
                        r.put("block_bytes", engine.kvPool().blockBytes());
                        r.put("keys_held", engine.idleSessions());
                        r.put("evictions", engine.evictions());
                        r.put("kv_bytes_in_use", engine.stats().kvBytesInUse());
                        r.put("prefilled_tokens", engine.prefilledTokens());
                        r.put("shared_prefix_tokens", engine.sharedPrefixTokens());
                        r.put("seconds", Math.round((System.nanoTime() - t0) / 1e7) / 100.0);
                        err.println("kv-capacity: " + r);
                    }
                }
            }
        }
        out.println(json.writerWithDefaultPrettyPrinter().writeValueAsString(o));
    }
}
