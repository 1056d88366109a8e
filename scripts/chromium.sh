#!/usr/bin/env bash
# Makes sure headless Chromium is there for the page checks (scripts/check_book.py,
# scripts/check_report.py). A fresh machine has none: Debian's `chromium` package and the fonts the
# pages are checked with (`fonts-dejavu-core`), installed as root or through sudo when it needs no
# password; otherwise it says what to install and fails.
set -euo pipefail
# A browser on the PATH counts only if it starts: Ubuntu's `chromium-browser` can be a stub that
# asks for snap. The names, in order, are scripts/check_book.py's (`chromium()`).
for name in chromium chromium-browser google-chrome; do
  if command -v "$name" >/dev/null && "$name" --version >/dev/null 2>&1; then
    exit 0
  fi
done
as_root=()
[[ $(id -u) == 0 ]] || as_root=(sudo -n)
if command -v apt-get >/dev/null && { [[ ${#as_root[@]} == 0 ]] || sudo -n true 2>/dev/null; }; then
  echo "installing Chromium from Debian's packages (apt-get install chromium fonts-dejavu-core)" >&2
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
else
  echo "Chromium is missing; install it (Debian: sudo apt-get install -y chromium fonts-dejavu-core)" >&2
  exit 1
fi
