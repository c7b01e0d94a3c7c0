#!/usr/bin/env bash
# Decode speed of the 0.5B-shape models (random weights, F16 and Q8_0) on a GPU through the
# TornadoVM backend, as a share of the GPU's memory roofline (default: H200, 4.8 TB/s): the
# device-resident decode step (the default: residual stream and KV cache on the device, one launch
# per token per group of up to 16 layers, 2 for the 0.5B shape), the per-op path
# (-Dflinkqwen.resident=false: each op its own launch, activations copied per op), and the CPU.
#
# Needs, installed by the user beforehand (this script builds nothing of TornadoVM):
#   - TornadoVM 5.2.0 (jdk25) with the PTX or OpenCL backend, e.g. from its own installer
#     (`./bin/tornadovm-installer --jdk jdk25 --backend ptx`), and `source setvars.sh`, which sets
#     TORNADOVM_HOME (with tornado-argfile) and JAVA_HOME (JDK 25);
#   - Maven and the NVIDIA driver.
# Then, from the repository root:  benchmarks/gpu/run-h200.sh [OUT_DIR]
#
# Environment: ROOFLINE_GB_S (default 4800), GEN_TOKENS (default 128), PROMPT_TOKENS (default 16),
# RUNS (default 3), TORNADO_DEVICE_MEMORY (default 16GB, TornadoVM's device heap; the resident
# plans hold their own copy of the weights beside the per-op plans').
# Writes OUT_DIR/bench-{f16,q8_0}-{resident,per-op,cpu}.json and prints one summary line per run.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="${1:-$here/benchmarks/gpu/results-$(date -u +%Y%m%dT%H%M%SZ)}"
roofline="${ROOFLINE_GB_S:-4800}"
gen="${GEN_TOKENS:-128}"
prompt="${PROMPT_TOKENS:-16}"
runs="${RUNS:-3}"

[ -n "${TORNADOVM_HOME:-}" ] && [ -f "$TORNADOVM_HOME/tornado-argfile" ] || {
    echo "run-h200: TORNADOVM_HOME must name a TornadoVM SDK with its tornado-argfile (source its setvars.sh)" >&2
    exit 1
}
"${JAVA_HOME:?run-h200: JAVA_HOME must be a JDK 25}/bin/java" -version 2>&1 | grep -q 'version "25' || {
    echo "run-h200: JAVA_HOME ($JAVA_HOME) is not JDK 25, which TornadoVM 5.2.0-jdk25 needs" >&2
    exit 1
}
mkdir -p "$out"
{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
    "$JAVA_HOME/bin/java" -version 2>&1
    cat "$TORNADOVM_HOME/etc/tornado.backend" 2>/dev/null || true
    git -C "$here" rev-parse HEAD 2>/dev/null || true
} >"$out/environment.txt"

# the backend's own device list: fails here, clearly, if TornadoVM sees no GPU
"$TORNADOVM_HOME/bin/tornado" --devices | tee "$out/devices.txt"

export FLINK_QWEN_JAVA_OPTS="${FLINK_QWEN_JAVA_OPTS:-} -Dtornado.device.memory=${TORNADO_DEVICE_MEMORY:-16GB} -Xmx8g"
models="$out/models"
mkdir -p "$models"
for dtype in f16 q8_0; do
    model="$models/random-0.5b-$dtype.gguf"
    [ -f "$model" ] || "$here/flink-qwen" make-test-model --arch qwen2 --preset 0.5b --dtype "$dtype" \
        --format gguf --seed 1 --out "$model" >&2
    for path in resident per-op cpu; do
        json="$out/bench-$dtype-$path.json"
        device=tornado
        opts=""
        case "$path" in
            per-op) opts="-Dflinkqwen.resident=false" ;;
            cpu) device=cpu ;;
        esac
        # one failed path (say, device memory) is reported and the others still run
        FLINK_QWEN_JAVA_OPTS="$FLINK_QWEN_JAVA_OPTS $opts" "$here/flink-qwen" bench --device "$device" --model "$model" \
            --prompt-tokens "$prompt" --gen-tokens "$gen" --runs "$runs" --warmup 1 --bandwidth-gb-s "$roofline" \
            --output json >"$json" 2>"$out/bench-$dtype-$path.log" || {
            echo "$dtype $path: bench failed (exit $?), see $out/bench-$dtype-$path.log"
            tail -n 5 "$out/bench-$dtype-$path.log"
            continue
        }
        python3 - "$json" "$dtype" "$path" "$roofline" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:5s} {sys.argv[3]:8s} decode {r['decode_tokens_per_s']:8.2f} tok/s "
      f"({r['decode_tokens_per_s_min']}-{r['decode_tokens_per_s_max']}), "
      f"{r['decode_weight_gb_per_s']:8.2f} GB/s of weights = {100 * r['decode_roofline_share']:.2f}% "
      f"of {sys.argv[4]} GB/s; launches/step {r.get('device_launches_per_decode_step', '-')}; "
      f"prefill {r['prefill_tokens_per_s']} tok/s; {r.get('device_description', '')}")
PY
    done
done | tee "$out/summary.txt"
