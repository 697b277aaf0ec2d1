#!/usr/bin/env bash
# make bench: pyre verify vs AIDE check vs a parallel sha256sum pipeline on a Debian 12 root,
# then config at boot (tests/bench/config.sh: pyre boot, pyre fetch vs afterburn), then log
# shipping (tests/bench/logs.sh: pyre logs ship vs rsyslog's forwarder, over TCP and RELP), then
# run-time enforcement (tests/bench/enforce.sh: detection to power-off in QEMU, one daemon
# verification cycle vs pyre verify). BENCH=verify, BENCH=config, BENCH=logs or BENCH=enforce
# runs one part only; BENCH=boot (tests/bench/boot.sh, not part of the default run: it boots
# QEMU guests of the baked image) measures the root check's cost in the boot.
#
# Builds (once, cached under $OUT/bench/root) a Debian 12 bookworm minbase + systemd tree with
# mmdebstrap, seals it with pyre, initialises an AIDE database with the same attributes (file
# type, permissions, owner, group, size, link count, link target, SHA-256, xattrs; no times,
# no inode numbers), warms the page cache, then runs each tool RUNS times and prints one table
# of the median wall time with its CPU time (user+sys) and peak RSS from /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/out}
B="$OUT/bench"
ROOT="$B/root"
RUNS=${RUNS:-5}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
PYRE=${PYRE_BIN:-$PWD/target/x86_64-unknown-linux-gnu/release/pyre}
mkdir -p "$B"
case "${BENCH:-all}" in
  config) exec bash tests/bench/config.sh ;;
  logs) exec bash tests/bench/logs.sh ;;
  enforce) exec bash tests/bench/enforce.sh ;;
  boot) exec bash tests/bench/boot.sh ;;
esac

if [ ! -x "$PYRE" ]; then
  echo "bench: building pyre ($PYRE)" >&2
  RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --target x86_64-unknown-linux-gnu -p pyre >&2
fi

if [ ! -d "$ROOT" ]; then
  echo "bench: building the reference root with mmdebstrap (once)" >&2
  rm -rf "$ROOT.tmp"
  mmdebstrap --quiet --variant=minbase --include=systemd --mode=root \
    bookworm "$ROOT.tmp" "$MIRROR" >&2
  mv "$ROOT.tmp" "$ROOT"
fi

entries=$(find "$ROOT" -xdev | wc -l)
size=$(du -sxm "$ROOT" | cut -f1)

"$PYRE" seal "$ROOT" -o "$B/manifest" >/dev/null

cat >"$B/aide.conf" <<CONF
database_in=file:$B/aide.db
database_out=file:$B/aide.db.new
root_prefix=$ROOT
report_url=stdout
PyreAttrs = ftype+p+u+g+s+n+l+sha256+xattrs
/ PyreAttrs
CONF
if [ ! -f "$B/aide.db" ] || [ "$B/aide.conf" -nt "$B/aide.db" ]; then
  aide --config="$B/aide.conf" --init >/dev/null
  mv "$B/aide.db.new" "$B/aide.db"
fi

sha_pipeline() { cd "$ROOT" && find . -xdev -type f -print0 | xargs -0 -P2 -n 64 sha256sum >/dev/null; }
export -f sha_pipeline
export ROOT

declare -A CMD=(
  [pyre]="\"$PYRE\" verify \"$ROOT\" -m \"$B/manifest\" >/dev/null"
  [aide]="aide --config=\"$B/aide.conf\" --check >/dev/null"
  [sha256sum]="sha_pipeline"
)
TOOLS=(pyre aide sha256sum)
LABEL=([0]="pyre verify" [1]="aide --check" [2]="find | xargs -P2 sha256sum")

# Warm the page cache (and check every tool passes on the untouched tree).
for t in "${TOOLS[@]}"; do
  bash -c "${CMD[$t]}" || { echo "bench: $t failed on the untouched tree" >&2; exit 1; }
done

# measure TOOL → "wall cpu rss_kb" of the median-wall run
measure() {
  local t=$1 i
  for ((i = 0; i < RUNS; i++)); do
    /usr/bin/time -f "%e %U %S %M" -o "$B/time.$t.$i" bash -c "${CMD[$t]}"
    awk '{printf "%s %.2f %s\n", $1, $2 + $3, $4}' "$B/time.$t.$i"
  done | sort -n | sed -n "$(((RUNS + 1) / 2))p"
}

declare -A WALL CPU RSS
for t in "${TOOLS[@]}"; do
  read -r "WALL[$t]" "CPU[$t]" "RSS[$t]" < <(measure "$t")
done

printf '\nReference root: Debian 12 minbase + systemd, %s entries, %s MB; %s cores; median of %s warm runs\n\n' \
  "$entries" "$size" "$(nproc)" "$RUNS"
printf '| %-28s | %7s | %10s | %13s | %13s |\n' tool "wall s" "CPU s" "peak RSS MB" "wall vs pyre"
printf '|%s|%s|%s|%s|%s|\n' "------------------------------" "---------" "------------" "---------------" "---------------"
for i in "${!TOOLS[@]}"; do
  t=${TOOLS[$i]}
  ratio=$(awk -v a="${WALL[$t]}" -v p="${WALL[pyre]}" 'BEGIN { if (p > 0) printf "%.1fx", a / p; else print "-" }')
  printf '| %-28s | %7s | %10s | %13.1f | %13s |\n' "${LABEL[$i]}" "${WALL[$t]}" "${CPU[$t]}" \
    "$(awk -v k="${RSS[$t]}" 'BEGIN { print k / 1024 }')" "$ratio"
done
echo
awk -v p="${WALL[pyre]}" -v a="${WALL[aide]}" -v s="${WALL[sha256sum]}" -v r="${RSS[pyre]}" 'BEGIN {
  printf "targets: pyre >= 10x faster than aide: %s; faster than sha256sum pipeline: %s; peak RSS <= 32 MB: %s\n",
    (a >= 10 * p ? "yes" : "NO"), (p < s ? "yes" : "NO"), (r <= 32768 ? "yes" : "NO") }'

# An adversarial tree (docs/drift-report.md, "What is read"): a 1 TiB sparse file added costs the
# check no more than the untouched tree does (its content is over the hash cap).
SPARSE="$ROOT/var/tmp/pyre-bench-sparse"
trap 'rm -f "$SPARSE"' EXIT
truncate -s 1T "$SPARSE"
CMD[pyre-sparse]="\"$PYRE\" verify \"$ROOT\" -m \"$B/manifest\" >/dev/null 2>&1; [ \$? -eq 1 ]"
read -r sparse_wall _ _ < <(measure pyre-sparse)
rm -f "$SPARSE"
printf 'pyre verify with a 1 TiB sparse file added: %s s wall (untouched: %s s)\n' "$sparse_wall" "${WALL[pyre]}"
if [ "${BENCH:-all}" != verify ]; then
  bash tests/bench/config.sh
  bash tests/bench/logs.sh
  bash tests/bench/enforce.sh
fi
