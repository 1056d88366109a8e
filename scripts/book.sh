#!/usr/bin/env bash
# Builds the book and checks it: the notebook preprocessor (release), mdBook 0.5.4 (installed into
# the cache the first time, ~3 min), the site in target/book/, then every page in headless
# Chromium (scripts/check_book.py: broken links, missing anchors, images that do not render; a
# screenshot in target/book-check/), and every committed run's report.html (scripts/check_report.py).
#   scripts/book.sh              build and check
#   scripts/book.sh --no-check   build only
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${BENCH_CACHE:-$HOME/.cache/inference-bench}"
TOOLS="$CACHE/tools"
MDBOOK="$TOOLS/bin/mdbook"
MDBOOK_VERSION=0.5.4

if [[ ! -x "$MDBOOK" ]] || [[ "$("$MDBOOK" --version)" != "mdbook v$MDBOOK_VERSION" ]]; then
  echo "book: installing mdBook $MDBOOK_VERSION into $TOOLS" >&2
  cargo install --locked "mdbook@$MDBOOK_VERSION" --root "$TOOLS"
fi

cargo build --release -p mdbook-notebooks
# book.toml names target/release/mdbook-notebooks; follow CARGO_TARGET_DIR when it is set.
export MDBOOK_PREPROCESSOR__NOTEBOOKS__COMMAND="$(realpath "${CARGO_TARGET_DIR:-target}")/release/mdbook-notebooks"

"$MDBOOK" build
echo "book: site in target/book/ (mdbook serve with $MDBOOK to browse it)"

# Every committed run's report, beside the files it links (the run's tracked files), in the site:
# results/<run>/report.html, linked from the book (a run the book does not link fails the build).
runs=$(git ls-files 'results/*/raw_data/*' | cut -d/ -f1-2 | sort -u)
cargo build --release -p benchmark-runner
RUNNER="$(realpath "${CARGO_TARGET_DIR:-target}")/release/benchmark-runner"
for run in $runs; do
  git ls-files "$run" | while read -r f; do install -D -m 644 "$f" "target/book/$f"; done
  grep -rq "$run/report.html" book/ || { echo "book: no chapter links $run/report.html (book/results.md lists every run)" >&2; exit 1; }
done
# shellcheck disable=SC2086
(cd target/book && "$RUNNER" report --methodology ../../methodology.html $runs)
echo "book: $(wc -w <<<"$runs") run reports in target/book/results/" >&2

if [[ "${1:-}" != "--no-check" ]]; then
  scripts/chromium.sh
  python3 scripts/check_book.py target/book --src book --repo . --out target/book-check
  python3 scripts/check_report.py --out target/report-check $(for r in $runs; do echo "target/book/$r/report.html"; done)
fi
