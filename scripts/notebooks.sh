#!/usr/bin/env bash
# Executes the notebooks headless and saves them with their outputs, after installing what that
# needs (each step skipped when already done):
#   - evcxr's Jupyter kernel (evcxr_jupyter 0.22.0, ~17 min to build the first time on 2 cores),
#     registered as the `rust` kernel in a project-owned Jupyter folder;
#   - nbclient & co. (notebooks/requirements.txt) in the project's .venv;
# then runs the tests of the notebook helper crate and of the executor, and executes every
# notebooks/*.ipynb in turn (or the notebooks given as arguments) with scripts/execute_notebooks.py,
# which fails on any error, panic or `?` error in any cell, naming the notebook and the cell.
#
#   scripts/notebooks.sh                          # every notebook
#   scripts/notebooks.sh notebooks/latency.ipynb  # one
#   BENCH_RUN=results/<run> scripts/notebooks.sh notebooks/latency.ipynb   # on another run
#   BENCH_MEASURE=1 scripts/notebooks.sh          # measure afresh instead of reading committed runs
#
# The first execution compiles the analysis crate and polars inside evcxr (tens of minutes on 2
# cores); the build is kept in $BENCH_CACHE/evcxr (EVCXR_TMPDIR), so later ones take about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${BENCH_CACHE:-$HOME/.cache/inference-bench}
tools=$cache/tools
evcxr=$tools/bin/evcxr_jupyter
version=0.22.0
step() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }

# Where the kernel is registered (evcxr_jupyter --install and jupyter_client both read JUPYTER_PATH),
# where evcxr keeps its build (one kernel at a time per folder), and an evcxr config folder of the
# project's own, so that a personal ~/.config/evcxr (init.evcxr, prelude) does not change the outputs.
export JUPYTER_PATH=$cache/jupyter
export EVCXR_CONFIG_DIR=$cache/evcxr/config
notebooks_tmpdir=$cache/evcxr/notebooks
tests_tmpdir=$cache/evcxr/tests
mkdir -p "$JUPYTER_PATH" "$EVCXR_CONFIG_DIR" "$notebooks_tmpdir" "$tests_tmpdir"

if [ ! -x .venv/bin/python ] || [ ! -x target/release/benchmark-runner ]; then
  step "Project setup first (scripts/setup.sh: .venv, the runner, the CPU engines)"
  scripts/setup.sh
fi

step "evcxr Jupyter kernel (evcxr_jupyter $version)"
installed() { cargo install --list --root "$tools" 2>/dev/null | grep -q "^evcxr_jupyter v$version:"; }
if ! installed || [ ! -x "$evcxr" ]; then
  # --locked: without it the build fails (ra_ap_span vs salsa). The target folder is kept, so an
  # interrupted build resumes. Optimisation level 1 and no debug info: the kernel only drives
  # cargo and rustc, and the build is a good part of a CI run.
  CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_TARGET_DIR=$cache/target/evcxr-install \
    cargo install --locked "evcxr_jupyter@$version" --root "$tools"
fi
if ! grep -qs "\"$evcxr\"" "$JUPYTER_PATH/kernels/rust/kernel.json"; then
  "$evcxr" --install
fi
# evcxr links each cell against Rust's shared libstd through a RUNPATH relative to its build folder,
# computed one folder too deep: with EVCXR_TMPDIR under $HOME it points at /.rustup and every cell's
# library fails to load ("dlopen failed", the kernel dies at start). LD_LIBRARY_PATH is searched
# before RUNPATH, so the kernelspec names the toolchain's library folder (JupyterLab uses it too).
rustlib="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/lib"
.venv/bin/python - "$JUPYTER_PATH/kernels/rust/kernel.json" "$rustlib" <<'PY'
import json, sys
path, lib = sys.argv[1], sys.argv[2]
spec = json.load(open(path))
if spec.get("env", {}).get("LD_LIBRARY_PATH") != lib:
    spec.setdefault("env", {})["LD_LIBRARY_PATH"] = lib
    json.dump(spec, open(path, "w"), indent=2)
PY
echo "kernel: $JUPYTER_PATH/kernels/rust (evcxr_jupyter $version)" >&2

step "Python packages for headless execution (notebooks/requirements.txt)"
stamp=.venv/.notebooks-$(sha256sum notebooks/requirements.txt | cut -c1-12)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install --disable-pip-version-check -q -r notebooks/requirements.txt
  touch "$stamp"
fi

# evcxr resolves the notebooks' dependencies on its own; starting from the workspace's lockfile
# gives polars & co. the versions the analysis crate is tested with.
[ -f "$notebooks_tmpdir/Cargo.lock" ] || cp Cargo.lock "$notebooks_tmpdir/Cargo.lock"

step "Notebook helper crate (cargo test, notebooks/bench-notebook)"
cargo test -q --manifest-path notebooks/bench-notebook/Cargo.toml

step "Executor tests (pytest on tiny evcxr notebooks)"
EVCXR_TMPDIR=$tests_tmpdir BENCH_REQUIRE_KERNEL=1 .venv/bin/python -m pytest -q notebooks/tests

step "Notebooks (executed in place, saved with outputs)"
if [ $# -eq 0 ]; then
  set -- notebooks/*.ipynb
fi
start=$(date +%s)
EVCXR_TMPDIR=$notebooks_tmpdir .venv/bin/python scripts/execute_notebooks.py "$@"
echo "executed $# notebook(s) in $(( $(date +%s) - start )) s" >&2
