#!/usr/bin/env bash
# Writes one tiny Llama per checkpoint form with transformers' save_pretrained (sharded, transformers
# 4 config, untied head, head_dim != hidden/heads, GQA 3 with an odd MLP width, bf16 and f16
# weights), runs every CPU engine on each (configs/checkpoint-forms.yaml), and fails if any engine
# ran a form and failed the gate: each must read it as transformers does or refuse it at load.
# Needs scripts/setup.sh first (runner, CPU engines, the Python environment). Part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/checkpoint-forms
rm -rf "$out"
mkdir -p "$out/runs"
python=${BENCH_PYTHON:-.venv/bin/python}
"$python" scripts/checkpoint_forms.py write "$out/models" 2> >(grep -v 'Writing model shards' >&2)
runs=()
for dir in "$out"/models/*/; do
  form=$(basename "$dir")
  ./target/release/benchmark-runner --config configs/checkpoint-forms.yaml --model "$dir" \
    --output "$out/runs/$form" --allow-dirty > "$out/runs/$form.log" 2>&1 || { tail -n 30 "$out/runs/$form.log"; exit 1; }
  runs+=("$out/runs/$form")
done
"$python" scripts/checkpoint_forms.py check "${runs[@]}"
