#!/usr/bin/env bash
# Everything the quick test and the test suite need, installed idempotently:
#   - a Python environment with the PyTorch baseline's pinned packages (.venv)
#   - the runner and every CPU engine, built in release mode
#   - the tiny synthetic checkpoint (models/tiny)
# Build outputs and the environment live in a cache outside the checkout ($BENCH_CACHE, default
# ~/.cache/inference-bench) and are linked in, so a fresh clone on the same machine starts warm.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${BENCH_CACHE:-$HOME/.cache/inference-bench}
mkdir -p "$cache/target"
step() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }

# Link a build folder into the cache unless the checkout already has a real one.
link_target() { # <folder in the checkout> <name in the cache>
  if [ ! -e "$1" ]; then
    mkdir -p "$cache/target/$2"
    ln -s "$cache/target/$2" "$1"
  fi
}

step "Python environment for the PyTorch baseline (.venv)"
req=engines/pytorch-baseline/requirements.txt
venv="$cache/venv-$(sha256sum "$req" | cut -c1-12)"
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --progress-bar on --disable-pip-version-check -r "$req"
  touch "$venv/.complete"
fi
ln -sfn "$venv" .venv
.venv/bin/python -c 'import torch, transformers; print(f"torch {torch.__version__}, transformers {transformers.__version__}")'

step "Runner (cargo build --release)"
link_target target harness
cargo build --release -p benchmark-runner

for manifest in engines/*/Cargo.toml; do
  dir=$(dirname "$manifest")
  step "Engine $(basename "$dir") (CPU build)"
  link_target "$dir/target" "$(basename "$dir")"
  (cd "$dir" && cargo build --release)
done

step "Tiny checkpoint (models/tiny)"
./target/release/benchmark-runner models synth --preset tiny --out models/tiny
