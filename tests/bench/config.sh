#!/usr/bin/env bash
# make bench, config at boot: `pyre boot` from start to config applied, and `pyre fetch
# --provider aws` side by side with afterburn (`afterburn multi --provider aws --attributes F`),
# all against the same fake IMDSv2 endpoint (pyre-metadata, from tests/).
#
# afterburn's AWS provider has http://169.254.169.254 built in (no flag, no environment
# override, no kernel-command-line word), so everything runs in private network, UTS, mount
# and PID namespaces (unshare): `lo` gets 169.254.169.254 and the fake server listens on
# 169.254.169.254:80 there; pyre is pointed at the same address with --metadata-url. Nothing is
# reachable from outside the namespaces, and `pyre boot`'s sethostname and files stay inside
# them (--run is a temp dir). afterburn is built once with `cargo install --locked` into
# $OUT/cache/afterburn (only here, never in `make test`).
#
# Wall times: hyperfine median of RUNS runs (after warm-up) with no shell in between; peak RSS:
# the largest of 5 runs under /usr/bin/time.
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/../.."
OUT=${OUT:-$PWD/out}
B="$OUT/bench/config"
RUNS=${RUNS:-40}
PYRE=${PYRE_BIN:-$PWD/target/x86_64-unknown-linux-gnu/release/pyre}
AFTERBURN_VERSION=${AFTERBURN_VERSION:-5.10.0}
AB_ROOT="$OUT/cache/afterburn-$AFTERBURN_VERSION"
AFTERBURN="$AB_ROOT/bin/afterburn"
mkdir -p "$B"

if [ "${1:-}" != --inside ]; then
  [ -x "$PYRE" ] || { echo "bench: no pyre at $PYRE (make static)" >&2; exit 1; }
  if [ ! -x "$AFTERBURN" ]; then
    echo "bench: cargo install afterburn $AFTERBURN_VERSION --locked (once, into $AB_ROOT)" >&2
    cargo install afterburn --version "$AFTERBURN_VERSION" --locked --root "$AB_ROOT" >&2
  fi
  cargo build --release -q -p pyre-tests --bin pyre-metadata >&2
  exec unshare --net --uts --mount --pid --fork --mount-proc bash "$self" --inside
fi

# --- inside the namespaces -------------------------------------------------------------------
ip link set lo up
ip addr add 169.254.169.254/32 dev lo
META=169.254.169.254
cat > "$B/config.json" <<'JSON'
{ "version": 1, "hostname": "bench-1",
  "files": [ { "path": "/run/app/app.env", "mode": "0600", "content": "DB_PASSWORD=bench\n" } ],
  "environment": { "APP_ENV": "bench" } }
JSON
server_out="$B/server.port"
"$PWD/target/release/pyre-metadata" --bind "$META" --port 80 --config "$B/config.json" --quiet \
  > "$server_out" &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$server_out" ] && break; sleep 0.05; done
[ -s "$server_out" ] || { echo "bench: pyre-metadata did not start" >&2; exit 1; }

empty="$B/empty" && rm -rf "$empty" && mkdir -p "$empty"
echo "ro pyre.provider=aws pyre.metadata.url=http://$META pyre.config.deadline=10" > "$B/cmdline"
echo '{"version":1,"on-failure":"debug"}' > "$B/image.json"
BOOT=("$PYRE" boot --cmdline "$B/cmdline" --policy "$B/image.json" --keys "$empty"
  --run "$B/run" --sys "$empty" --dev "$empty" --dmi "$empty" --ca "$empty" --modules "$empty")
FETCH=("$PYRE" fetch --provider aws --metadata-url "http://$META" --cmdline /dev/null
  --policy "$empty/none.json" --keys "$empty" --dmi-dir "$empty" --sysfs "$empty"
  --ca-dir "$empty")
AB=("$AFTERBURN" multi --provider aws --attributes "$B/attributes")

# Each must work before it is timed.
"${BOOT[@]}" 2> "$B/boot.log" || { cat "$B/boot.log" >&2; exit 1; }
if [ "$(hostname)" != bench-1 ] || [ ! -f "$B/run/pyre/config.json" ]; then
  echo "bench: pyre boot did not apply the config" >&2
  exit 1
fi
"${FETCH[@]}" > "$B/fetched.json" 2> "$B/fetch.log" || { cat "$B/fetch.log" >&2; exit 1; }
"${AB[@]}" > "$B/afterburn.log" 2>&1 || { cat "$B/afterburn.log" >&2; exit 1; }
grep -q AWS_INSTANCE_ID "$B/attributes" || { echo "bench: afterburn wrote no attributes" >&2; exit 1; }

q() { printf '%q ' "$@"; }
# median wall in ms
wall() {
  hyperfine -N --style none --warmup 3 --runs "$RUNS" --export-csv "$B/hf.csv" "$(q "$@")" \
    > /dev/null 2>&1
  awk -F, 'NR == 2 { printf "%.1f", $4 * 1000 }' "$B/hf.csv"
}
# peak RSS in MB (largest of 5 runs)
rss() {
  local max=0 kb
  for _ in 1 2 3 4 5; do
    /usr/bin/time -f %M -o "$B/rss" "$@" > /dev/null 2>&1
    kb=$(tail -1 "$B/rss")
    [ "$kb" -gt "$max" ] && max=$kb
  done
  awk -v k="$max" 'BEGIN { printf "%.1f", k / 1024 }'
}

boot_wall=$(wall "${BOOT[@]}") boot_rss=$(rss "${BOOT[@]}")
fetch_wall=$(wall "${FETCH[@]}") fetch_rss=$(rss "${FETCH[@]}")
ab_wall=$(wall "${AB[@]}") ab_rss=$(rss "${AB[@]}")

printf '\nConfig at boot against a local fake IMDSv2 endpoint (%s:80, private netns); %s cores; median of %s runs\n\n' \
  "$META" "$(nproc)" "$RUNS"
printf '| %-52s | %12s | %13s |\n' command "wall ms" "peak RSS MB"
printf '|%s|%s|%s|\n' "------------------------------------------------------" "--------------" "---------------"
printf '| %-52s | %12s | %13s |\n' "pyre boot (aws: fetch, verify, apply)" "$boot_wall" "$boot_rss"
printf '| %-52s | %12s | %13s |\n' "pyre fetch --provider aws" "$fetch_wall" "$fetch_rss"
printf '| %-52s | %12s | %13s |\n' "afterburn $AFTERBURN_VERSION multi --provider aws --attributes" "$ab_wall" "$ab_rss"
echo
awk -v bw="$boot_wall" -v br="$boot_rss" -v fw="$fetch_wall" -v fr="$fetch_rss" \
  -v aw="$ab_wall" -v ar="$ab_rss" 'BEGIN {
  printf "afterburn / pyre fetch: %.1fx wall, %.1fx peak RSS\n", aw / fw, ar / fr
  printf "targets: pyre boot <= 50 ms: %s, <= 12 MB: %s; pyre fetch >= 3x faster than afterburn: %s, <= half its RSS: %s\n",
    (bw <= 50 ? "yes" : "NO"), (br <= 12 ? "yes" : "NO"), (aw >= 3 * fw ? "yes" : "NO"), (fr <= ar / 2 ? "yes" : "NO") }'
