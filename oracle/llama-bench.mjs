// Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
// except in compliance with the License. You may obtain a copy of the License at
// http://www.apache.org/licenses/LICENSE-2.0
//
// llama.cpp's speed on a GGUF file, for `flink-qwen bench --vs-llama-cpp`: through
// node-llama-cpp's prebuilt CPU binaries, each run prefills the prompt ids in one
// controlledEvaluate call (batch 512) and then decodes GEN tokens greedily, one
// controlledEvaluate per token (llama.cpp picks the token: no logits cross into JavaScript).
// Prints one JSON object on stdout: per-run prefill and decode tokens per second, and provenance.
//
// Context settings are node-llama-cpp's defaults (its flash attention and KV cache types), i.e.
// llama.cpp as a user of that package runs it, not the F32-cache setup of llama-oracle.mjs.
// The model is loaded once; each run uses a fresh context, like each of our runs uses a fresh
// KV cache. Timings are wall clock around the evaluate calls, so they include node-llama-cpp's
// per-call overhead (small next to a 0.5B token, visible on tiny models).
//
// usage: node llama-bench.mjs MODEL.gguf THREADS RUNS GEN ID,ID,... [WARMUP [NODE_LLAMA_CPP_DIR]]
//   WARMUP: untimed runs first (default 1: the first run pays for page faults on the weights)
//   NODE_LLAMA_CPP_DIR: the installed package folder to import (default: resolve
//   "node-llama-cpp" from this script's folder)
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [modelPath, threadsArg, runsArg, genArg, idsArg, warmupArg, packageDir] = process.argv.slice(2);
if (!modelPath || !idsArg) {
    console.error("usage: node llama-bench.mjs MODEL.gguf THREADS RUNS GEN ID,ID,... [WARMUP [NODE_LLAMA_CPP_DIR]]");
    process.exit(2);
}
const threads = Number(threadsArg);
const runs = Number(runsArg);
const gen = Number(genArg);
const warmup = warmupArg === undefined ? 1 : Number(warmupArg);
const prompt = idsArg.split(",").map(Number);

const packageJson = packageDir ? JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8")) : null;
const { getLlama, LlamaLogLevel } = packageDir
    ? await import(pathToFileURL(join(packageDir, packageJson.exports["."].import)).href)
    : await import("node-llama-cpp");

const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath, gpuLayers: 0, useMmap: true });

async function oneRun() {
    const context = await model.createContext({
        contextSize: Math.max(64, prompt.length + gen + 8),
        batchSize: 512,
        threads,
        sequences: 1,
    });
    const sequence = context.getSequence();
    const greedy = { token: true, options: { temperature: 0 } };
    const items = prompt.map((id, i) => (i === prompt.length - 1 ? [id, { generateNext: greedy }] : id));
    let t0 = process.hrtime.bigint();
    let results = await sequence.controlledEvaluate(items);
    const prefillNanos = Number(process.hrtime.bigint() - t0);
    // Like our generator: the token chosen after the prompt is the first generated one; each
    // further token costs one decode step, so GEN tokens take GEN - 1 steps.
    let next = results[results.length - 1].next.token;
    t0 = process.hrtime.bigint();
    for (let s = 1; s < gen; s++) {
        results = await sequence.controlledEvaluate([[next, { generateNext: greedy }]]);
        next = results[0].next.token;
    }
    const decodeNanos = Number(process.hrtime.bigint() - t0);
    await context.dispose();
    return {
        prefill_tokens_per_s: prompt.length / (prefillNanos / 1e9),
        decode_tokens_per_s: gen > 1 ? (gen - 1) / (decodeNanos / 1e9) : 0,
    };
}

for (let r = 0; r < warmup; r++) {
    await oneRun();
}
const perRun = [];
for (let r = 0; r < runs; r++) {
    perRun.push(await oneRun());
}
process.stdout.write(
    JSON.stringify({
        provenance: {
            engine: "llama.cpp via node-llama-cpp",
            nodeLlamaCpp: packageJson?.version ?? null,
            llamaCppRelease: llama.llamaCppRelease?.release ?? null,
            threads,
        },
        runs: perRun,
    }),
);
await model.dispose();
await llama.dispose();
