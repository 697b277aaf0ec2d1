#!/usr/bin/env bash
# make bench, log shipping: 1M journal-like lines (~100 bytes: timestamp, host, unit[pid]:
# message with a sequence number n=NNNNNNN) in a file, shipped to a real rsyslogd (Debian's)
# on 127.0.0.1, side by side in one run:
#   pyre logs ship --source file:F --sink syslog+tcp://…   vs  rsyslogd imfile -> omfwd (TCP)
#   pyre logs ship --source file:F --sink relp://…         vs  rsyslogd imfile -> omrelp
#
# Each measurement gets a fresh receiver (imtcp or imrelp -> omfile, raw messages) and a fresh
# shipper (empty state directory / work directory, so everything is read from the start). The
# clock runs from the shipper's start until the receiver's file holds the last line; then the
# shipper's CPU time (utime+stime of every thread, /proc/PID/stat) and peak RSS (VmHWM) are
# read before it is stopped, and the receiver's file is checked: every sequence number
# 1..1000000 must be there (duplicates are counted and shown, never accepted as loss).
#
# The rsyslog forwarder uses production defaults: imfile in inotify mode, the default main
# queue and action queue (direct), omfwd TCP with octet-counted framing / omrelp with its
# default window, both with the RFC 5424 template (RSYSLOG_SyslogProtocol23Format) so both
# shippers send the same kind of record. Rounds alternate the four shippers; the table shows
# the median of LOGS_RUNS rounds (default 3) by wall time, except for omrelp, which moves only
# 2-3k lines/s here and runs in the first LOGS_OMRELP_RUNS rounds (default 1).
# Receivers' files go to LOGS_TMP (default /dev/shm) and are removed once counted.
# For experiments: LOGS_LINES, LOGS_ONLY="pyre relp", LOGS_OMRELP_OPTS, LOGS_RSYSLOG_EXTRA.
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/../.."
OUT=${OUT:-$PWD/out}
B="$OUT/bench/logs"
LINES=${LOGS_LINES:-1000000}
RUNS=${LOGS_RUNS:-3}
PYRE=${PYRE_BIN:-$PWD/target/x86_64-unknown-linux-gnu/release/pyre}
RSYSLOGD=${PYRE_RSYSLOGD:-/usr/sbin/rsyslogd}
[ -x "$PYRE" ] || { echo "bench: no pyre at $PYRE (make static)" >&2; exit 1; }
[ -x "$RSYSLOGD" ] || { echo "bench: no rsyslogd at $RSYSLOGD (make deps)" >&2; exit 1; }
mkdir -p "$B"
INPUT="$B/input.log"
# What the receivers write (about 300 MB a run) goes to tmpfs and is removed once counted.
RX=$(mktemp -d "${LOGS_TMP:-/dev/shm}/pyre-bench-logs.XXXXXX")
trap 'rm -rf "$RX"' EXIT
TICK=$(getconf CLK_TCK)

if [ ! -s "$INPUT" ] || [ "$(wc -l < "$INPUT")" -ne "$LINES" ]; then
  echo "bench: writing $LINES lines to $INPUT" >&2
  awk -v n="$LINES" 'BEGIN {
    split("nginx sshd app-worker cron postgres containerd", unit, " ")
    for (i = 1; i <= n; i++) {
      s = int(i / 1000)
      printf "2026-11-23T10:%02d:%02d.%06d+00:00 web-1 %s[%d]: n=%07d GET /api/v1/items/%d 200 %d\n",
        int(s / 60) % 60, s % 60, (i * 7919) % 1000000, unit[i % 6 + 1], 800 + i % 97, i,
        (i * 31) % 100000, 100 + (i * 13) % 9000
    }
  }' > "$INPUT.tmp"
  mv "$INPUT.tmp" "$INPUT"
fi
avg=$(($(stat -c %s "$INPUT") / LINES))
last=$(printf 'n=%07d ' "$LINES")

free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 30000))
    [ -z "$(ss -Htln "sport = :$p")" ] && { echo "$p"; return; }
  done
}

wait_port() {
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench: nothing listens on 127.0.0.1:$1" >&2
  return 1
}

# start_rsyslogd DIR: sets PID (config in DIR/rsyslog.conf; foreground, own pid file)
start_rsyslogd() {
  "$RSYSLOGD" -n -f "$1/rsyslog.conf" -i "$1/rsyslogd.pid" > "$1/rsyslogd.out" 2>&1 &
  PID=$!
}

stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# receiver tcp|relp DIR PORT OUT (sets PID): imtcp or imrelp on 127.0.0.1:PORT -> OUT
receiver() {
  local kind=$1 d=$2 port=$3 out=$4
  rm -rf "$d" && mkdir -p "$d/work"
  {
    echo "global(workDirectory=\"$d/work\" maxMessageSize=\"64k\")"
    if [ "$kind" = tcp ]; then
      echo 'module(load="imtcp")'
      echo "input(type=\"imtcp\" port=\"$port\" address=\"127.0.0.1\")"
    else
      echo 'module(load="imrelp")'
      echo "input(type=\"imrelp\" port=\"$port\" address=\"127.0.0.1\")"
    fi
    printf '%s\n' 'template(name="raw" type="string" string="%rawmsg%\n")'
    echo "action(type=\"omfile\" file=\"$out\" template=\"raw\")"
  } > "$d/rsyslog.conf"
  start_rsyslogd "$d"
}

# forwarder tcp|relp DIR PORT (sets PID): rsyslogd imfile(INPUT) -> omfwd/omrelp 127.0.0.1:PORT
forwarder() {
  local kind=$1 d=$2 port=$3
  rm -rf "$d" && mkdir -p "$d/work"
  {
    echo "global(workDirectory=\"$d/work\" maxMessageSize=\"64k\")"
    echo 'module(load="imfile" mode="inotify")'
    echo "input(type=\"imfile\" file=\"$INPUT\" tag=\"app\" ruleset=\"fwd\")"
    [ -n "${LOGS_RSYSLOG_EXTRA:-}" ] && echo "$LOGS_RSYSLOG_EXTRA"
    [ "$kind" = relp ] && echo 'module(load="omrelp")'
    echo 'ruleset(name="fwd") {'
    if [ "$kind" = tcp ]; then
      echo "  action(type=\"omfwd\" target=\"127.0.0.1\" port=\"$port\" protocol=\"tcp\""
      echo '         tcp_framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")'
    else
      echo "  action(type=\"omrelp\" target=\"127.0.0.1\" port=\"$port\""
      echo "         template=\"RSYSLOG_SyslogProtocol23Format\" ${LOGS_OMRELP_OPTS:-})"
    fi
    echo '}'
  } > "$d/rsyslog.conf"
  start_rsyslogd "$d"
}

# pyre_shipper tcp|relp DIR PORT (sets PID)
pyre_shipper() {
  local kind=$1 d=$2 port=$3 sink
  rm -rf "$d" && mkdir -p "$d/state"
  if [ "$kind" = tcp ]; then sink="syslog+tcp://127.0.0.1:$port"; else sink="relp://127.0.0.1:$port"; fi
  "$PYRE" logs ship --source "file:$INPUT" --sink "$sink" --state-dir "$d/state" \
    --hostname web-1 --image bench --manifest sha256:bench > "$d/pyre.out" 2>&1 &
  PID=$!
}

# cpu_of PID: utime + stime of all its threads in seconds (fields 14, 15 of /proc/PID/stat;
# 12, 13 after the command name)
cpu_of() {
  sed 's/^.*) //' "/proc/$1/stat" | awk -v t="$TICK" '{ printf "%.2f", ($12 + $13) / t }'
}

# measure SHIPPER KIND → "wall_s cpu_s rss_kb dups", or fails when lines are missing
measure() {
  local shipper=$1 kind=$2 rd="$B/$1-$2.receiver" sd="$B/$1-$2.shipper" port rpid spid
  local t0 t1 cpu rss deadline got total out="$RX/$1-$2.log"
  port=$(free_port)
  receiver "$kind" "$rd" "$port" "$out"
  rpid=$PID
  wait_port "$port" || { cat "$rd/rsyslogd.out" >&2; stop "$rpid"; return 1; }
  t0=$EPOCHREALTIME
  "${shipper}_start" "$kind" "$sd" "$port"
  spid=$PID
  deadline=$((SECONDS + ${LOGS_DEADLINE:-1800}))
  until tail -c 400 "$out" 2>/dev/null | grep -q "$last"; do
    if [ "$SECONDS" -ge "$deadline" ] || ! kill -0 "$spid" 2>/dev/null; then
      echo "bench: $shipper over $kind did not deliver line $LINES (see $sd)" >&2
      stop "$spid"; stop "$rpid"
      return 1
    fi
    sleep 0.02
  done
  t1=$EPOCHREALTIME
  # VmHWM: peak resident set in kB.
  cpu=$(cpu_of "$spid")
  rss=$(awk '/^VmHWM:/ { print $2 }' "/proc/$spid/status")
  echo "bench: $shipper over $kind: receiver CPU s: $(cpu_of "$rpid")" >&2
  stop "$spid"
  stop "$rpid"
  got=$(LC_ALL=C grep -o ' n=[0-9]\{7\} ' "$out" | LC_ALL=C sort -u | wc -l)
  total=$(wc -l < "$out")
  rm -f "$out"
  if [ "$got" -ne "$LINES" ]; then
    echo "bench: $shipper over $kind: only $got of $LINES sequence numbers arrived" >&2
    return 1
  fi
  awk -v a="$t0" -v b="$t1" -v c="$cpu" -v r="$rss" -v d="$((total - got))" \
    'BEGIN { printf "%.2f %s %s %d\n", b - a, c, r, d }'
}
pyre_start() { pyre_shipper "$@"; }
rsyslog_start() { forwarder "$@"; }

declare -A RES
SHIPPERS=("pyre tcp" "rsyslog tcp" "pyre relp" "rsyslog relp")
if [ -n "${LOGS_ONLY:-}" ]; then  # e.g. LOGS_ONLY="rsyslog relp" (for experiments)
  SHIPPERS=("$LOGS_ONLY")
fi
for ((round = 1; round <= RUNS; round++)); do
  for s in "${SHIPPERS[@]}"; do
    read -r who kind <<< "$s"
    # rsyslog's omrelp moves 2-3k lines/s here (latency-bound, whatever its queue): a round
    # takes minutes, so it runs in the first LOGS_OMRELP_RUNS rounds only.
    if [ "$s" = "rsyslog relp" ] && [ "$round" -gt "${LOGS_OMRELP_RUNS:-1}" ]; then
      continue
    fi
    r=$(measure "$who" "$kind")
    echo "bench: round $round: $who $kind: wall, CPU s, peak RSS kB, duplicates: $r" >&2
    RES[$who-$kind]+="$r"$'\n'
  done
done

# the median round (by wall time) of SHIPPER-KIND → "wall cpu rss dups"
median() {
  local n
  n=$(printf '%s' "${RES[$1]}" | wc -l)
  printf '%s' "${RES[$1]}" | sort -n | sed -n "$(((n + 1) / 2))p"
}

printf '\nLog shipping: %s lines (%s bytes average) from a file to rsyslogd on 127.0.0.1; %s cores; load %s; median of %s rounds (omrelp: %s)\n\n' \
  "$LINES" "$avg" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$RUNS" "$((RUNS < ${LOGS_OMRELP_RUNS:-1} ? RUNS : ${LOGS_OMRELP_RUNS:-1}))"
printf '| %-38s | %9s | %8s | %6s | %11s | %10s |\n' shipper "lines/s" "wall s" "CPU s" "peak RSS MB" duplicates
printf '|%s|%s|%s|%s|%s|%s|\n' "----------------------------------------" "-----------" "----------" "--------" "-------------" "------------"
declare -A RATE RSS
for s in "${SHIPPERS[@]}"; do
  read -r who kind <<< "$s"
  read -r wall cpu rss dups < <(median "$who-$kind")
  RATE[$who-$kind]=$(awk -v n="$LINES" -v w="$wall" 'BEGIN { printf "%d", n / w }')
  RSS[$who-$kind]=$rss
  case "$who-$kind" in
    pyre-tcp) label="pyre logs ship -> syslog+tcp" ;;
    rsyslog-tcp) label="rsyslogd imfile -> omfwd (tcp)" ;;
    pyre-relp) label="pyre logs ship -> relp" ;;
    rsyslog-relp) label="rsyslogd imfile -> omrelp" ;;
  esac
  printf '| %-38s | %9s | %8s | %6s | %11.1f | %10s |\n' "$label" "${RATE[$who-$kind]}" "$wall" "$cpu" \
    "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" "$dups"
done
echo
[ "${#SHIPPERS[@]}" -eq 4 ] || exit 0
awk -v pt="${RATE[pyre-tcp]}" -v rt="${RATE[rsyslog-tcp]}" -v pr="${RATE[pyre-relp]}" \
  -v rr="${RATE[rsyslog-relp]}" -v m1="${RSS[pyre-tcp]}" -v m2="${RSS[pyre-relp]}" 'BEGIN {
  printf "targets: pyre >= rsyslog over tcp: %s (%.2fx); over relp: %s (%.2fx); pyre peak RSS <= 16 MB: %s\n",
    (pt >= rt ? "yes" : "NO"), pt / rt, (pr >= rr ? "yes" : "NO"), pr / rr,
    (m1 <= 16384 && m2 <= 16384 ? "yes" : "NO") }'
