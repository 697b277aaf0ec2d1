#!/usr/bin/env bash
# make bench, part "enforce" (BENCH=enforce runs it alone): run-time drift enforcement.
#
# 1. Detection to power-off with a local collector: runs the run-time tamper scenario of
#    tests/tests/enforce.rs under QEMU TCG (ENFORCE_VM=0 skips it) and prints, from
#    $OUT/test-logs/timings.tsv, the latest figure of every enforce-* scenario that has run
#    (the others come from `cargo test -p pyre-tests --test enforce`).
# 2. One full verification cycle as `pyre daemon` runs it (reading past the page cache) vs
#    `pyre verify`, on the host over the bench root ($OUT/bench/root, built by run.sh): wall,
#    CPU and peak RSS, median of RUNS.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/out}
export OUT
B="$OUT/bench"
TIMINGS="$OUT/test-logs/timings.tsv"

if [ "${ENFORCE_VM:-1}" != 0 ]; then
  echo "bench: the run-time tamper scenario under QEMU (a few minutes)" >&2
  cargo test -p pyre-tests --test enforce a_root_changed_at_run_time -- --nocapture >&2
fi

printf '\nRun-time enforcement under QEMU TCG (latest run of each; %s)\n\n' "$TIMINGS"
printf '| %-26s | %-58s | %8s |\n' scenario measure seconds
printf '|%s|%s|%s|\n' "----------------------------" "------------------------------------------------------------" "----------"
if [ -f "$TIMINGS" ]; then
  # Keep the last row per (scenario, measure), in first-seen order.
  awk -F'\t' '$2 ~ /^enforce-/ {
      k = $2 "\t" $3
      if (!(k in v)) order[n++] = k
      v[k] = $4
    }
    END { for (i = 0; i < n; i++) { split(order[i], p, "\t"); printf "| %-26s | %-58s | %8s |\n", p[1], p[2], v[order[i]] } }' \
    "$TIMINGS"
fi
echo

ROOT="$B/root"
if [ ! -d "$ROOT" ] || [ ! -f "$B/manifest" ]; then
  echo "bench: no bench root in $ROOT: run BENCH=verify bash tests/bench/run.sh first" >&2
  exit 0
fi
