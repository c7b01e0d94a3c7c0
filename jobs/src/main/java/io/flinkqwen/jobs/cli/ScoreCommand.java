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
import io.flinkqwen.engine.generate.Sampler;
import io.flinkqwen.engine.generate.SamplingParams;
import io.flinkqwen.engine.model.Qwen2Model;
import io.flinkqwen.kernels.KernelPool;
import java.io.PrintStream;
import java.util.List;
import java.util.Set;

/** {@code score}: teacher-forced top-K logits after every token of a given id sequence. */
final class ScoreCommand implements Main.Command {

    @Override
    public String usage() {
        return String.join(
                "\n",
                "usage: flink-qwen score --model PATH|HF_ID --ids 1,2,3 [--top K] [--threads N] [--kv-type f32|f16|q8] [--output json]",
                "",
                "Prints one JSON object: for each position i, the top-K [id, logit] pairs of the",
                "next-token logits after ids[0..i], best first (raw logits, no softmax).");
    }

    @Override
    public void run(List<String> argv, PrintStream out, PrintStream err) throws Exception {
        Args a = Args.parse("score", argv, Set.of("model", "ids", "top", "threads", "output", "kv-type"), Set.of());
        if (!a.string("output", "json").equals("json")) {
            throw new Args.UsageException("score: --output json is the only format");
        }
        int[] ids = a.ids("ids");
        int top = a.integer("top", 5);
        if (top < 1) {
            throw new Args.UsageException("score: --top must be >= 1");
        }
        int threads = a.integer("threads", Runtime.getRuntime().availableProcessors());
        try (LoadedModel model = ModelArgs.load(a.string("model"), err);
                KernelPool pool = new KernelPool(threads)) {
            int vocab = model.config().vocabSize();
            int k = Math.min(top, vocab);
            Qwen2Model forward = model.newForward(pool, model.defaultChunkTokens(), KvType.of(a, "score"));
            float[][] logits = forward.forwardAllLogits(forward.newCache(ids.length), ids);
            ObjectMapper json = new ObjectMapper();
            ObjectNode o = json.createObjectNode();
            o.put("model", model.source().toString());
            o.putPOJO("ids", ids);
            ArrayNode positions = o.putArray("positions");
            Sampler topK = new Sampler(new SamplingParams(1f, k, 1f, 0, 1, null));
            for (int p = 0; p < ids.length; p++) {
                ObjectNode row = positions.addObject();
                row.put("position", p);
                ArrayNode best = row.putArray("top");
                for (int id : topK.topCandidates(logits[p], vocab)) {
                    best.addArray().add(id).add(logits[p][id]);
                }
            }
            out.println(json.writeValueAsString(o));
        }
    }
}
