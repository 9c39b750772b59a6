#!/usr/bin/env bash
# Sets the checkout up (scripts/setup.sh), then runs the tap suite (config in package.json).
# Extra arguments go to tap, e.g.: scripts/test.sh dist/test/unit/tree.test.js
# Ends with a plain "tap: N passed, N failed[, N skipped]" line taken from tap's summary.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh

# tap excludes folders named dist by default, so without test files among the arguments name them all
args=("$@")
has_files=0
for a in "$@"; do [[ "$a" == *.js ]] && has_files=1; done
if ((!has_files)); then
  mapfile -t files < <(find dist/test -name '*.test.js' | sort)
  ((${#files[@]})) || { echo "test.sh: no compiled tests under dist/test" >&2; exit 1; }
  args+=("${files[@]}")
fi

LOG="$(mktemp "${TMPDIR:-/tmp}/girder-mount-tap.XXXXXX")"
trap 'rm -f "$LOG"' EXIT
set +e
npx tap "${args[@]}" 2>&1 | tee "$LOG"
code=${PIPESTATUS[0]}
set -e

summary="$(grep -E '^# \{ total: [0-9]+' "$LOG" | tail -n 1 || true)"
if [[ -n "$summary" ]]; then
  count() { grep -oE "$1: [0-9]+" <<<"$summary" | grep -oE '[0-9]+' || echo 0; }
  line="tap: $(count pass) passed, $(count fail) failed"
  skipped="$(count skip)"
  [[ "$skipped" != 0 ]] && line+=", $skipped skipped"
  echo "$line"
fi
exit "$code"
