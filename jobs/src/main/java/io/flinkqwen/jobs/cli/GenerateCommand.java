/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.jobs.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.flinkqwen.engine.LoadedModel;
import io.flinkqwen.engine.generate.Generator;
import io.flinkqwen.engine.generate.SamplingParams;
import io.flinkqwen.engine.model.Qwen2Model;
import io.flinkqwen.engine.tokenizer.ChatMl;
import io.flinkqwen.engine.tokenizer.StreamingDecoder;
import io.flinkqwen.kernels.KernelPool;
import java.io.PrintStream;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/** {@code generate}: text from a prompt, streamed token by token, or one JSON object. */
final class GenerateCommand implements Main.Command {

    @Override
    public String usage() {
        return String.join(
                "\n",
                "usage: flink-qwen generate --model PATH|HF_ID (--prompt TEXT | --prompt-ids 1,2,3)",
                "         [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S]",
                "         [--chat] [--system TEXT] [--threads N] [--kv-type f32|f16|q8] [--output text|json]",
                "",
                "  --model           a .gguf file, a Hugging Face folder, or a Hugging Face id",
                "  --prompt          raw prompt text; special tokens such as <|im_start|> in it are",
                "                    parsed, as Hugging Face's tokenizer(text) does",
                "  --chat            wrap --prompt as a user turn of a ChatML conversation (then the",
                "                    text is data: special tokens in it are not parsed)",
                "  --temperature     0 = greedy (default 0); --top-k (default 0 = off), --top-p",
                "                    (default 1 = off), --seed (default 0) apply when > 0",
                "  --max-new-tokens  default 128; generation also stops at <|im_end|>/<|endoftext|>",
                "  --threads         kernel threads (default: available processors)",
                KvType.USAGE,
                "  --output          text (streamed, default) or json: prompt_ids, ids, text");
    }

    @Override
    public void run(List<String> argv, PrintStream out, PrintStream err) throws Exception {
        Args a =
                Args.parse(
                        "generate",
                        argv,
                        Set.of(
                                "model", "prompt", "prompt-ids", "max-new-tokens", "temperature", "top-k",
                                "top-p", "seed", "system", "threads", "output", "kv-type"),
                        Set.of("chat"));
        String output = a.string("output", "text");
        if (!output.equals("text") && !output.equals("json")) {
            throw new Args.UsageException("generate: --output must be text or json, got '" + output + "'");
        }
        if (a.has("prompt") == a.has("prompt-ids")) {
            throw new Args.UsageException("generate: give exactly one of --prompt and --prompt-ids");
        }
        if (a.flag("chat") && !a.has("prompt")) {
            throw new Args.UsageException("generate: --chat needs --prompt");
        }
        int threads = a.integer("threads", Runtime.getRuntime().availableProcessors());
        if (threads < 1) {
            throw new Args.UsageException("generate: --threads must be >= 1");
        }
        int maxNew = a.integer("max-new-tokens", 128);
        SamplingParams params;
        try (LoadedModel model = ModelArgs.load(a.string("model"), err)) {
            params =
                    new SamplingParams(
                            a.number("temperature", 0f),
                            a.integer("top-k", 0),
                            a.number("top-p", 1f),
                            a.longValue("seed", 0),
                            maxNew,
                            model.stopTokens());
            int[] prompt;
            if (a.has("prompt-ids")) {
                prompt = a.ids("prompt-ids");
            } else if (a.flag("chat")) {
                prompt =
                        new ChatMl(model.tokenizer())
                                .encode(
                                        List.of(
                                                ChatMl.Message.system(a.string("system", ChatMl.DEFAULT_SYSTEM_MESSAGE)),
                                                ChatMl.Message.user(a.string("prompt"))),
                                        true);
            } else {
                prompt = model.tokenizer().encodeWithSpecialTokens(a.string("prompt"));
            }
            try (KernelPool pool = new KernelPool(threads)) {
                Qwen2Model forward = model.newForward(pool, model.defaultChunkTokens(), KvType.of(a, "generate"));
                StreamingDecoder decoder = new StreamingDecoder(model.tokenizer());
                boolean stream = output.equals("text");
                StringBuilder text = new StringBuilder();
                Generator.Result r =
                        new Generator(forward)
                                .generate(
                                        prompt,
                                        params,
                                        id -> {
                                            String piece = decoder.accept(id);
                                            text.append(piece);
                                            if (stream && !piece.isEmpty()) {
                                                out.print(piece);
                                                out.flush();
                                            }
                                        });
                String tail = decoder.flush();
                text.append(tail);
                double prefillTps = r.promptIds().length / (r.prefillNanos() / 1e9);
                double decodeTps = r.ids().length > 1 ? (r.ids().length - 1) / (r.decodeNanos() / 1e9) : 0;
                if (stream) {
                    out.println(tail);
                    err.printf(
                            Locale.ROOT,
                            "%d prompt tokens at %.1f tok/s, %d generated at %.1f tok/s (%s), %d threads%n",
                            r.promptIds().length, prefillTps, r.ids().length, decodeTps,
                            r.stopReason().name().toLowerCase(Locale.ROOT), threads);
                } else {
                    ObjectMapper json = new ObjectMapper();
                    ObjectNode o = json.createObjectNode();
                    o.put("model", model.source().toString());
                    o.putPOJO("prompt_ids", r.promptIds());
                    o.putPOJO("ids", r.ids());
                    o.put("text", text.toString());
                    o.put("stop_reason", r.stopReason().name().toLowerCase(Locale.ROOT));
                    o.put("prefill_tokens_per_s", round(prefillTps));
                    o.put("decode_tokens_per_s", round(decodeTps));
                    o.put("threads", threads);
                    out.println(json.writeValueAsString(o));
                }
            }
        }
    }

    static double round(double v) {
        return Double.isFinite(v) ? Math.round(v * 100) / 100.0 : 0;
    }
}
