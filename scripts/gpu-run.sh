#!/usr/bin/env bash
# Runs a config on the GPU machine with the packed binaries (scripts/pack-gpu.sh made .gpu/), and
# leaves the run directory packed in $OUT (or ./out) to bring back.
#   scripts/gpu-run.sh configs/h200-latency.yaml [run-name]
# The GPU machine has python3 with torch and transformers and no Rust: everything Rust comes packed.
set -euo pipefail
cd "$(dirname "$0")/.."
config=$1
name=${2:-$(basename "$config" .yaml)-$(date -u +%Y%m%dT%H%M%SZ)}
out=${OUT:-$PWD/out}
mkdir -p "$out"
bash .gpu/unpack.sh
export BENCH_BIN_DIR=$PWD/.gpu/bin BENCH_PYTHON=$(command -v python3)
# cuBLAS/NVRTC for the Rust CUDA engines come from the torch wheel's CUDA 13 libraries.
nv=$(python3 -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13", "lib"))' 2>/dev/null || true)
[ -n "$nv" ] && export LD_LIBRARY_PATH=$nv${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
runner=.gpu/bin/benchmark-runner
model=$(sed -n 's/^ *model_path: *"\{0,1\}\([^"]*\)"\{0,1\}.*/\1/p' "$config" | head -n1)
if [ ! -f "$model/model.safetensors" ]; then
  case "$model" in
    *llama-3.2-1b-synthetic) "$runner" models synth --preset llama-3.2-1b --out "$model" ;;
    *tiny) "$runner" models synth --preset tiny --out "$model" ;;
  esac
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
status=0
# Stop the runner well before the device call limit, so whatever was measured still gets packed.
timeout "${RUN_TIMEOUT_S:-520}" "$runner" --config "$config" --output "results/$name" || status=$?
tar -C results -cJf "$out/$name.tar.xz" "$name"
echo "packed results/$name into $out/$name.tar.xz (runner exit $status)"
exit $status
