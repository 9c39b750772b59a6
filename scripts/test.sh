#!/usr/bin/env bash
# Sets the checkout up (scripts/setup.sh), then runs the tap suite (config in package.json).
# Extra arguments go to tap, e.g.: scripts/test.sh dist/test/unit/tree.test.js
# Ends with a plain "tap: N passed, N failed[, N skipped]" line taken from tap's summary.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh

# tap excludes folders named dist by default, so without test files among the arguments name them all.
# The real-programs test then runs on its own, after the others (which run two at a time, jobs in
# package.json): it holds each git step to a bound set for a machine running nothing else
# (test/integration/real-programs.test.ts).
LOG="$(mktemp "${TMPDIR:-/tmp}/girder-mount-tap.XXXXXX")"
trap 'rm -f "$LOG"' EXIT
code=0
tap_run() {
  set +e
  npx tap "$@" 2>&1 | tee -a "$LOG"
  local c=${PIPESTATUS[0]}
  set -e
  ((c == 0)) || code=$c
}

has_files=0
for a in "$@"; do [[ "$a" == *.js ]] && has_files=1; done
if ((has_files)); then
  tap_run "$@"
else
  mapfile -t files < <(find dist/test -name '*.test.js' | sort)
  ((${#files[@]})) || { echo "test.sh: no compiled tests under dist/test" >&2; exit 1; }
  together=()
  alone=()
  for f in "${files[@]}"; do
    if [[ "$f" == */real-programs.test.js ]]; then alone+=("$f"); else together+=("$f"); fi
  done
  tap_run "$@" "${together[@]}"
  ((${#alone[@]} == 0)) || tap_run --jobs 1 "$@" "${alone[@]}"
fi

# one "# { total: ... }" line per tap run: added up
summaries="$(grep -E '^# \{ total: [0-9]+' "$LOG" || true)"
if [[ -n "$summaries" ]]; then
  count() { { grep -oE "$1: [0-9]+" <<<"$summaries" || true; } | awk -F': ' '{ n += $2 } END { print n + 0 }'; }
  line="tap: $(count pass) passed, $(count fail) failed"
  skipped="$(count skip)"
  [[ "$skipped" != 0 ]] && line+=", $skipped skipped"
  echo "$line"
fi
exit "$code"
