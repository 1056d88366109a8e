#!/usr/bin/env bash
# Sets up what is needed, then runs the quick test (every CPU engine on the tiny checkpoint) and
# prints the ranked table. Each run gets its own directory under results/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
out=results/quick-test-$(date -u +%Y%m%dT%H%M%SZ)
printf '\n\033[1m==> Quick test -> %s\033[0m\n' "$out" >&2
./target/release/benchmark-runner --config configs/quick-test.yaml --output "$out" --allow-dirty
