#!/usr/bin/env bash
# Runs a config on the GPU machine with the packed binaries (scripts/pack-gpu.sh made .gpu/), and
# leaves the run directories packed in $OUT (or ./out) to bring back.
#   scripts/gpu-run.sh configs/h200-latency.yaml [run-name]
#   GPU_SPLIT='a,b;c,d' scripts/gpu-run.sh configs/h200.yaml h200-1
#   PLAIN_PATHS="--prompts 128,1024 --new-tokens 64" scripts/gpu-run.sh configs/h200-harness-tax.yaml t1
#   MODEL=Llama-3.1-8B-Instruct scripts/gpu-run.sh configs/h200-model-size.yaml h200-8b-1
# MODEL replaces the config's benchmark.model_path (`--model`); a model name with no checkpoint
# under models/ is written there by the runner as a synthetic checkpoint of its shapes. ENGINES
# runs only those of the config's engines (`--engines`).
# When results/<run-name> already holds a run (carried back from an earlier call), it is resumed
# (`benchmark-runner --resume`): a run longer than one call spans several. The runner refuses a
# checkout with uncommitted changes (ALLOW_DIRTY=1 passes --allow-dirty).
# With GPU_SPLIT, the config's engines are spread over the machine's GPUs, one runner per group
# (`--engines a,b --gpu 0`, `--engines c,d --gpu 1`, …), all at once, each writing
# results/<run-name>-gpu<i>: a config too long for one call on one GPU fits on several.
# burn's CubeCL caches (autotune results, compiled kernels) are kept in target/ here: when
# .gpu/cubecl-cache.tar.xz exists it is unpacked first, and the caches are packed back into $OUT.
# The GPU machine has python3 with torch and transformers and no Rust: everything Rust comes packed.
set -euo pipefail
cd "$(dirname "$0")/.."
config=$1
name=${2:-$(basename "$config" .yaml)-$(date -u +%Y%m%dT%H%M%SZ)}
out=${OUT:-$PWD/out}
mkdir -p "$out" results target
bash .gpu/unpack.sh
export BENCH_BIN_DIR=$PWD/.gpu/bin BENCH_PYTHON=$(command -v python3)
# CUDA numbers GPUs like NVML (the monitor's numbering) only in PCI bus order.
export CUDA_DEVICE_ORDER=PCI_BUS_ID
# cuBLAS/NVRTC for the Rust CUDA engines come from the torch wheel's CUDA 13 libraries.
nv=$(python3 -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13", "lib"))' 2>/dev/null || true)
[ -n "$nv" ] && export LD_LIBRARY_PATH=$nv${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# CubeCL reads cubecl.toml from the working directory up: keep compiled kernels as well as autotune
# results in target/ (by default it keeps only the autotune results).
[ -f cubecl.toml ] || printf '[compilation]\ncache = "target"\n\n[autotune]\ncache = "target"\n' > cubecl.toml
[ -f .gpu/cubecl-cache.tar.xz ] && tar -C target -xJf .gpu/cubecl-cache.tar.xz
runner=.gpu/bin/benchmark-runner
nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader || true
lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Hypervisor)' || true
# The copy of the checkout here may come with an older .git: .gpu/SOURCE names the commit whose
# files were sent and its tree, and the runner checks the files against that tree.
if [ -f .gpu/SOURCE ]; then
  read -r BENCH_SOURCE_COMMIT BENCH_SOURCE_TREE < .gpu/SOURCE
  export BENCH_SOURCE_COMMIT BENCH_SOURCE_TREE BENCH_SOURCE_PATHS=$PWD/.gpu/SOURCE.paths
fi
dirty=(); [ -n "${ALLOW_DIRTY:-}" ] && dirty=(--allow-dirty)
model_arg=(); [ -n "${MODEL:-}" ] && model_arg=(--model "$MODEL")
engines_arg=(); [ -n "${ENGINES:-}" ] && engines_arg=(--engines "$ENGINES")
status=0
# Stop the runners well before the device call limit, so whatever was measured still gets packed.
# SIGTERM at the limit: the runner stops at its next request boundary and writes what it has. A
# load or a long request does not reach one (an 8B engine's load takes minutes), so a second SIGTERM
# 20 s later ends it at once (every raw-data line is already written whole), and SIGKILL 10 s after
# that. Allow the device call RUN_TIMEOUT_S + 30 s, plus packing, or nothing comes back.
limit=${RUN_TIMEOUT_S:-520}
limited() { # <command...>: run it under that schedule; its exit status
  "$@" &
  local pid=$! rc=0
  # Holding no pipe of this script's, so that a sleep left behind delays nothing.
  (sleep "$limit"; kill -TERM "$pid" || exit; sleep 20; kill -TERM "$pid" || exit; sleep 10; kill -KILL "$pid") </dev/null >/dev/null 2>&1 &
  local watchdog=$!
  wait "$pid" || rc=$?
  pkill -P "$watchdog" 2>/dev/null || true
  kill "$watchdog" 2>/dev/null || true
  return "$rc"
}
if [ -n "${GPU_SPLIT:-}" ]; then
  IFS=';' read -ra groups <<<"$GPU_SPLIT"
  pids=()
  for i in "${!groups[@]}"; do
    limited "$runner" --config "$config" --output "results/$name-gpu$i" --engines "${groups[$i]}" --gpu "$i" "${model_arg[@]}" "${dirty[@]}" \
      >"results/$name-gpu$i.log" 2>&1 &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || status=$?
    tail -n 20 "results/$name-gpu$i.log"
    mv "results/$name-gpu$i.log" "results/$name-gpu$i/runner.log" 2>/dev/null || true
  done
  dirs=()
  for i in "${!groups[@]}"; do dirs+=("$name-gpu$i"); done
else
  if [ -d "results/$name/raw_data" ]; then
    limited "$runner" --resume "results/$name" "${dirty[@]}" || status=$?
  else
    limited "$runner" --config "$config" --output "results/$name" "${model_arg[@]}" "${engines_arg[@]}" "${dirty[@]}" || status=$?
  fi
  dirs=("$name")
fi
# The PyTorch engines' plain path (generate() called directly) on the same GPU, same session:
# PLAIN_PATHS holds its arguments (prompts, new tokens, reps); `benchmark-runner harness-tax` reads it.
if [ -n "${PLAIN_PATHS:-}" ]; then
  # On the CPUs the config gives the engines.
  cpus=$(sed -n 's/^ *cpus: *"\{0,1\}\([0-9,-]*\)"\{0,1\}.*/\1/p' "$config" | head -n1)
  # shellcheck disable=SC2086 # PLAIN_PATHS is a list of arguments
  # The checkpoint the runner used (it resolves a model name and writes a synthetic one on demand).
  model=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["checkpoint"]["path"])' "results/${dirs[0]}/environment.json")
  timeout "${PLAIN_TIMEOUT_S:-170}" taskset -c "${cpus:-0-$(($(nproc) - 1))}" python3 engines/pytorch-baseline/plain_path.py --model "$model" --device cuda:0 --dtype bf16 $PLAIN_PATHS \
    --out "results/${dirs[0]}/plain_paths.jsonl" || status=$?
fi
tar -C results -cJf "$out/$name.tar.xz" "${dirs[@]}"
tar -C target -cJf "$out/cubecl-cache.tar.xz" . 2>/dev/null || true
echo "packed ${dirs[*]} into $out/$name.tar.xz (runner exit $status)"
exit $status
