// Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
// except in compliance with the License. You may obtain a copy of the License at
// http://www.apache.org/licenses/LICENSE-2.0
//
// The independent reference for flink-qwen's numerics: llama.cpp (through node-llama-cpp's
// prebuilt CPU binaries) evaluates a GGUF file and prints, as one JSON object on stdout,
//   greedy:  the ids llama.cpp generates greedily after the prompt,
//   logits:  the raw logits (every vocabulary entry, by token id) at every position of
//            prompt + greedy, teacher-forced,
//   provenance: what produced them.
// Flash attention is off and the KV cache is F32, so that llama.cpp's own rounding stays
// below 1e-5 on F32 models.
//
// usage: node llama-oracle.mjs MODEL.gguf STEPS THREADS ID,ID,... [--no-logits]
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

const [modelPath, stepsArg, threadsArg, idsArg, ...flags] = process.argv.slice(2);
if (!modelPath || !idsArg) {
    console.error("usage: node llama-oracle.mjs MODEL.gguf STEPS THREADS ID,ID,... [--no-logits]");
    process.exit(2);
}
const steps = Number(stepsArg);
const threads = Number(threadsArg);
const prompt = idsArg.split(",").map(Number);
const wantLogits = !flags.includes("--no-logits");

const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath, gpuLayers: 0, useMmap: true });
const contextOptions = {
    contextSize: Math.max(64, prompt.length + steps + 8),
    batchSize: 512,
    threads,
    flashAttention: false,
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
    sequences: 1,
};

// Greedy decoding one token at a time through llama.cpp's KV cache: the argmax of its raw
// logits (ties to the lower id), fed back. Done by hand rather than with sequence.evaluate(),
// which stops at end-of-generation tokens, so that every run yields exactly STEPS ids.
async function greedy() {
    const context = await model.createContext(contextOptions);
    const sequence = context.getSequence();
    const out = [];
    if (steps > 0) {
        const items = prompt.map((id, i) => (i === prompt.length - 1 ? [id, { generateNext: { logits: true } }] : id));
        let results = await sequence.controlledEvaluate(items);
        for (let s = 0; s < steps; s++) {
            const next = argmax(results[results.length - 1].next.logits);
            out.push(next);
            if (s + 1 < steps) {
                results = await sequence.controlledEvaluate([[next, { generateNext: { logits: true } }]]);
            }
        }
    }
    await context.dispose();
    return out;
}

function argmax(logits) {
    let best = -1;
    let bestValue = -Infinity;
    for (const [id, value] of logits) {
        if (value > bestValue || (value === bestValue && id < best)) {
            best = id;
            bestValue = value;
        }
    }
    return best;
}

async function teacherForcedLogits(ids) {
    const context = await model.createContext(contextOptions);
    const sequence = context.getSequence();
    const items = ids.map((id) => [id, { generateNext: { logits: true } }]);
    const results = await sequence.controlledEvaluate(items);
    const rows = results.map((r) => {
        const row = new Array(r.next.logits.size).fill(0);
        for (const [id, logit] of r.next.logits) row[id] = logit;
        return row;
    });
    await context.dispose();
    return rows;
}

function packageVersion(name) {
    const entry = createRequire(import.meta.url).resolve(name);
    const root = entry.slice(0, entry.lastIndexOf("/node_modules/" + name) + name.length + 14);
    return JSON.parse(readFileSync(root + "/package.json", "utf8")).version;
}

const greedyIds = await greedy();
const logits = wantLogits ? await teacherForcedLogits(prompt.concat(greedyIds)) : [];
const out = {
    provenance: {
        engine: "llama.cpp via node-llama-cpp",
        nodeLlamaCpp: packageVersion("node-llama-cpp"),
        llamaCppRelease: llama.llamaCppRelease?.release ?? null,
        flashAttention: false,
        kvCache: "F32",
        threads,
    },
    prompt,
    greedy: greedyIds,
    logits,
};
process.stdout.write(JSON.stringify(out));
await model.dispose();
await llama.dispose();
