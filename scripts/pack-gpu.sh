#!/usr/bin/env bash
# Builds (where needed) and packs what a GPU run needs into .gpu/ (git-ignored): the runner and every
# CUDA engine, each as .gpu/bin/<name>.xz, plus .gpu/unpack.sh and .gpu/MANIFEST.txt.
# For developers, on a build machine without a GPU; CI and the GPU machine never run it.
#
#   scripts/pack-gpu.sh            # then carry .gpu/ with the repository to the GPU machine
#   .gpu/unpack.sh                 # there: decompresses into .gpu/bin/ and prints BENCH_BIN_DIR
#   PACK_ENGINES="candle-bench mistral-rs-bench" scripts/pack-gpu.sh   # only these CUDA engines
#
# The CUDA toolkit (nvcc, cuBLAS headers, a link-only libcuda) comes from $BENCH_CUDA_TOOLKIT, a
# script printing its exports; by default the build machine's ../shared/cuda/toolkit.sh.
set -euo pipefail

root=$(git rev-parse --show-toplevel)
cache=${BENCH_CACHE:-$HOME/.cache/inference-bench}
out=$root/.gpu

# One line per CUDA engine: binary, crate folder, cargo features (comma-separated). Each builds into
# <crate>/target-cuda (linked into the cache, like the CPU builds' target/), so the CPU build is never
# rebuilt by this script, and is packed as <binary>-cuda, the name the runner's registry looks for.
#       binary           crate dir                  features
ENGINES=(
  "candle-bench        engines/candle-bench       cuda"
  "burn-bench          engines/burn-bench         cuda"
  "mistral-rs-bench    engines/mistral-rs-bench   cuda"
)

eval "$("${BENCH_CUDA_TOOLKIT:-$root/../shared/cuda/toolkit.sh}")"

log() { printf '== %s\n' "$*" >&2; }

# pack NAME BINARY: stripped (symbols and debug info are most of mistral.rs's 264 MB; the device
# tree is limited to 64 MiB) and xz -9 into .gpu/bin/NAME.xz, unless that is newer than the binary.
packed=()
pack() {
  local name=$1 bin=$2 dst=$out/bin/$1.xz
  [ -x "$bin" ] || { echo "pack-gpu: $bin was not built" >&2; exit 1; }
  if [ "$dst" -nt "$bin" ]; then
    log "$name: $dst is up to date"
  else
    log "$name: strip, xz -9 $bin"
    strip -o "$dst.stripped" "$bin"
    xz -9 -T2 -c "$dst.stripped" > "$dst.tmp"
    rm "$dst.stripped"
    mv "$dst.tmp" "$dst"
  fi
  packed+=("$name")
  printf '%-20s %12s raw %12s xz  sha256 %s\n' "$name" "$(stat -c %s "$bin")" "$(stat -c %s "$dst")" \
    "$(sha256sum "$bin" | cut -d' ' -f1)" >> "$out/MANIFEST.txt.tmp"
}

mkdir -p "$out/bin"
{
  echo "packed by scripts/pack-gpu.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "repository $(git -C "$root" rev-parse HEAD)$(git -C "$root" diff --quiet HEAD -- . ':!.gpu' || echo ' (with uncommitted changes)')"
  echo "$(rustc --version); $(nvcc --version | tail -n1); CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-}"
  echo
} > "$out/MANIFEST.txt.tmp"

log "benchmark-runner: cargo build --release -p benchmark-runner"
(cd "$root" && cargo build --release -p benchmark-runner)
pack benchmark-runner "${CARGO_TARGET_DIR:-$root/target}/release/benchmark-runner"

for row in "${ENGINES[@]}"; do
  read -r bin dir features <<< "$row"
  if [ -n "${PACK_ENGINES:-}" ] && [[ " $PACK_ENGINES " != *" $bin "* ]]; then
    log "$bin: not in PACK_ENGINES, not packed"
    continue
  fi
  target=$root/$dir/target-cuda
  if [ ! -e "$target" ]; then
    mkdir -p "$cache/target/$(basename "$dir")-cuda"
    ln -s "$cache/target/$(basename "$dir")-cuda" "$target"
  fi
  log "$bin: cargo build --release --features $features (in $dir)"
  (cd "$root/$dir" && CARGO_TARGET_DIR=$target cargo build --release --features "$features")
  pack "$bin-cuda" "$target/release/$bin"
done

# CPU engines that run on the GPU machine's CPU (their ordinary release build).
for bin in lm-rs-bench; do
  dir=$root/engines/$bin
  log "$bin: cargo build --release (in engines/$bin)"
  (cd "$dir" && cargo build --release)
  pack "$bin" "$dir/target/release/$bin"
done

# Only what was just packed travels: drop engines no longer in the table and unpacked binaries.
for f in "$out"/bin/*; do
  [ -e "$f" ] || continue
  base=$(basename "$f")
  [[ $base == *.xz && " ${packed[*]} " == *" ${base%.xz} "* ]] || { log "removing $f"; rm -f "$f"; }
done

cat > "$out/unpack.sh" <<'UNPACK'
#!/usr/bin/env bash
# Decompresses every bin/<name>.xz beside this script into bin/<name> (on the GPU machine).
# scripts/gpu-run.sh calls it, sets BENCH_BIN_DIR to that folder and finds the CUDA libraries.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
for f in "$here"/bin/*.xz; do
  bin=${f%.xz}
  xz -dc "$f" > "$bin.tmp"
  chmod +x "$bin.tmp"
  mv "$bin.tmp" "$bin"
  echo "unpacked $bin" >&2
done
echo "export BENCH_BIN_DIR=$here/bin"
UNPACK
chmod +x "$out/unpack.sh"
mv "$out/MANIFEST.txt.tmp" "$out/MANIFEST.txt"
# What a GPU run checks its files against: the commit, its tree and its files (re-run this script
# after a commit; it rebuilds nothing that is up to date).
echo "$(git -C "$root" rev-parse HEAD) $(git -C "$root" rev-parse 'HEAD^{tree}')" > "$out/SOURCE"
git -C "$root" ls-files > "$out/SOURCE.paths"

log "packed into $out ($(du -sh "$out" | cut -f1)):"
cat "$out/MANIFEST.txt"
