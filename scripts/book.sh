#!/usr/bin/env bash
# Builds the book and checks it: the notebook preprocessor (release), mdBook 0.5.4 (installed into
# the cache the first time, ~3 min), the site in target/book/, then every page in headless
# Chromium (scripts/check_book.py: broken links, missing anchors, images that do not render; a
# screenshot in target/book-check/).
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

if [[ "${1:-}" != "--no-check" ]]; then
  if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
    # A fresh machine has none: Debian's package (and the fonts the pages are checked with).
    # As root, or through sudo when it needs no password; otherwise say what to install.
    as_root=()
    [[ $(id -u) == 0 ]] || as_root=(sudo -n)
    if command -v apt-get >/dev/null && { [[ ${#as_root[@]} == 0 ]] || sudo -n true 2>/dev/null; }; then
      echo "book: installing Chromium from Debian's packages (apt-get install chromium fonts-dejavu-core)" >&2
      "${as_root[@]}" apt-get update -qq
      "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
    else
      echo "book: Chromium is missing; install it (Debian: sudo apt-get install -y chromium)" >&2
      exit 1
    fi
  fi
  python3 scripts/check_book.py target/book --src book --repo . --out target/book-check
fi
