#!/usr/bin/env bash
# Check the unit files with `systemd-analyze verify` as they will sit in the image.
# verify resolves ExecStart= binaries on the machine it runs on, where /usr/bin/pyre does not
# exist; so the units are checked inside a scratch root that has them in
# /usr/lib/systemd/system and pyre at /usr/bin/pyre (the built binary when there is one).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/lib/systemd/system" "$root/usr/bin"
# systemd's own units (sysinit.target, basic.target, …), which units with default dependencies
# order against; pyre's units below replace any of the same name.
for d in /usr/lib/systemd/system /lib/systemd/system; do
  [ -d "$d" ] && cp -a "$d"/. "$root/usr/lib/systemd/system/" 2>/dev/null && break
done
units=()
for u in "$here"/*.service "$here"/*.target; do
  [ -e "$u" ] || continue
  cp "$u" "$root/usr/lib/systemd/system/"
  units+=("$(basename "$u")")
done
bin="${PYRE_BIN:-}"
if [ -n "$bin" ] && [ -x "$bin" ]; then
  cp "$bin" "$root/usr/bin/pyre"
else
  printf '#!/bin/sh\nexit 0\n' > "$root/usr/bin/pyre"
  chmod +x "$root/usr/bin/pyre"
fi
# verify only warns about unknown keys and bad values; any output at all fails the check.
out="$(systemd-analyze verify --man=no --root="$root" "${units[@]}" 2>&1)" || { echo "$out" >&2; exit 1; }
if [ -n "$out" ]; then
  unitdir="$root/usr/lib/systemd/system/"
  echo "${out//"$unitdir"/systemd/}" >&2
  exit 1
fi
echo "systemd: ${#units[@]} units verified: ${units[*]}"

# The exposure ceiling of the network-facing daemon (issue 11: <= 2.5; STYLE.md: hardened like
# systemd-journal-upload). `systemd-analyze security --offline=yes` reads the unit file only.
declare -A max_exposure=([pyre.service]=2.5)
for u in "${!max_exposure[@]}"; do
  [ -e "$here/$u" ] || { echo "systemd: $u is missing" >&2; exit 1; }
  line="$(systemd-analyze security --offline=yes --no-pager "$here/$u" 2>&1 |
    grep 'Overall exposure level')" || { echo "systemd: no exposure score for $u" >&2; exit 1; }
  score="$(sed -E 's/.*: ([0-9]+\.[0-9]+).*/\1/' <<<"$line")"
  if awk -v s="$score" -v m="${max_exposure[$u]}" 'BEGIN { exit !(s > m) }'; then
    echo "systemd: $u exposure $score is above ${max_exposure[$u]}" >&2
    exit 1
  fi
  echo "systemd: $u exposure $score (at most ${max_exposure[$u]})"
done
