#!/usr/bin/env bash
# Every test: the harness workspace, each engine's own workspace, and the Python engines.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
step() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }

step "Harness crates (cargo test --release)"
cargo test --release --workspace

for manifest in engines/*/Cargo.toml; do
  dir=$(dirname "$manifest")
  step "Engine $(basename "$dir") (cargo test --release)"
  (cd "$dir" && cargo test --release)
done

step "End to end: every scenario on the CPU engines (configs/ci-scenarios.yaml)"
out=results/ci-scenarios-$(date -u +%Y%m%dT%H%M%SZ)
./target/release/benchmark-runner --config configs/ci-scenarios.yaml --output "$out" --allow-dirty
./target/release/benchmark-runner check "$out"

step "Checkpoint forms written by transformers: every CPU engine reads each as transformers does or refuses it at load"
scripts/checkpoint-forms.sh

step "Reports: the run's report.html and a compare.html, opened in headless Chromium (scripts/check_report.py)"
./target/release/benchmark-runner compare "$out" "$out" --out "$out/compare-self"
scripts/chromium.sh
python3 scripts/check_report.py --self-test "$out/report.html"
python3 scripts/check_report.py --out target/report-check "$out/report.html" "$out/compare-self/compare.html"

step "The book: build it and check every page in headless Chromium (scripts/book.sh)"
scripts/book.sh

step "Python tests (pytest)"
.venv/bin/python -m pytest -q engines/pytorch-baseline/tests crates/model-synth/tests/python
