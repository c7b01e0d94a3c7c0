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
// With BATCH > 1, as `bench --batch B` does: one context holds B sequences (sequence b's prompt
// is the ids rotated left by b); each is prefilled alone, then all B decode together: their
// one-token evaluations are issued concurrently, and node-llama-cpp's batching (dispatch on the
// next event-loop cycle) hands them to llama.cpp as one batch of B tokens per step. Decode speed
// is then the aggregate B * (GEN - 1) / decode time.
//
// Start-up: load_ms (loadModel) and first_token_ms (the first run's prefill and first token,
// warm-up runs included, i.e. on a freshly loaded model).
//
// usage: node llama-bench.mjs MODEL.gguf THREADS RUNS GEN ID,ID,... [WARMUP [NODE_LLAMA_CPP_DIR [BATCH]]]
//   WARMUP: untimed runs first (default 1: the first run pays for page faults on the weights)
//   NODE_LLAMA_CPP_DIR: the installed package folder to import (default, or "": resolve
//   "node-llama-cpp" from this script's folder)
//   BATCH: sequences decoded together (default 1)
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [modelPath, threadsArg, runsArg, genArg, idsArg, warmupArg, packageDir, batchArg] = process.argv.slice(2);
if (!modelPath || !idsArg) {
    console.error("usage: node llama-bench.mjs MODEL.gguf THREADS RUNS GEN ID,ID,... [WARMUP [NODE_LLAMA_CPP_DIR [BATCH]]]");
    process.exit(2);
}
const threads = Number(threadsArg);
const runs = Number(runsArg);
const gen = Number(genArg);
const warmup = warmupArg === undefined ? 1 : Number(warmupArg);
const prompt = idsArg.split(",").map(Number);
const batch = batchArg === undefined ? 1 : Number(batchArg);
if (!(batch >= 1)) {
    console.error(`BATCH must be >= 1, got ${batchArg}`);
    process.exit(2);
}

const packageJson = packageDir ? JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8")) : null;
const { getLlama, LlamaLogLevel } = packageDir
    ? await import(pathToFileURL(join(packageDir, packageJson.exports["."].import)).href)
    : await import("node-llama-cpp");

const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const loadStart = process.hrtime.bigint();
const model = await llama.loadModel({ modelPath, gpuLayers: 0, useMmap: true });
const loadNanos = Number(process.hrtime.bigint() - loadStart);
let firstTokenNanos = null;

async function oneRun() {
    const perSequence = prompt.length + gen + 8;
    const context = await model.createContext({
        // room for every sequence, whether llama.cpp shares the cells or splits them per sequence
        contextSize: Math.max(64, batch * perSequence),
        batchSize: Math.max(512, batch),
        threads,
        sequences: batch,
    });
    const greedy = { token: true, options: { temperature: 0 } };
    const sequences = [];
    const next = [];
    // Like our bench: each sequence's prompt alone, one after another.
    let t0 = process.hrtime.bigint();
    for (let b = 0; b < batch; b++) {
        const sequence = context.getSequence();
        const ids = prompt.map((_, i) => prompt[(i + b) % prompt.length]);
        const items = ids.map((id, i) => (i === ids.length - 1 ? [id, { generateNext: greedy }] : id));
        const results = await sequence.controlledEvaluate(items);
        next.push(results[results.length - 1].next.token);
        sequences.push(sequence);
        if (firstTokenNanos === null) {
            firstTokenNanos = Number(process.hrtime.bigint() - t0);
        }
    }
    const prefillNanos = Number(process.hrtime.bigint() - t0);
    // Like our generator: the token chosen after the prompt is the first generated one; each
    // further token costs one decode step, so GEN tokens take GEN - 1 steps. All sequences step
    // concurrently, so each step is one llama.cpp batch of `batch` tokens.
    t0 = process.hrtime.bigint();
    await Promise.all(
        sequences.map(async (sequence, b) => {
            for (let s = 1; s < gen; s++) {
                const results = await sequence.controlledEvaluate([[next[b], { generateNext: greedy }]]);
                next[b] = results[0].next.token;
            }
        }),
    );
    const decodeNanos = Number(process.hrtime.bigint() - t0);
    await context.dispose();
    return {
        prefill_tokens_per_s: (batch * prompt.length) / (prefillNanos / 1e9),
        decode_tokens_per_s: gen > 1 ? (batch * (gen - 1)) / (decodeNanos / 1e9) : 0,
    };
}

function residentBytes() {
    try {
        const status = readFileSync("/proc/self/status", "utf8");
        const kib = (key) => 1024 * Number(status.match(new RegExp(`^${key}:\\s+(\\d+)`, "m"))[1]);
        return { rss_bytes: kib("VmRSS"), peak_rss_bytes: kib("VmHWM") };
    } catch {
        return {};
    }
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
        batch,
        load_ms: loadNanos / 1e6,
        // resident memory of this node process (llama.cpp runs in it): now, and its peak
        ...residentBytes(),
        first_token_ms: firstTokenNanos / 1e6,
        runs: perRun,
    }),
);
await model.dispose();
await llama.dispose();
