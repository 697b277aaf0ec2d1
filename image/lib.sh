# Shared helpers for image/build.sh and initramfs/build.sh (sourced, not executed).
# shellcheck shell=bash

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$REPO/out}
PYRE_BIN=${PYRE_BIN:-$REPO/target/x86_64-unknown-linux-gnu/release/pyre}
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || echo 1700000000)}
export OUT PYRE_BIN SOURCE_DATE_EPOCH

# Where intermediate trees live between the image and initramfs steps (used by the scripts
# that source this file).
# shellcheck disable=SC2034
WORK=$OUT/work IMAGE_OUT=$OUT/image CACHE=$OUT/cache

_t0=${PYRE_BUILD_T0:-${EPOCHREALTIME/./}}
export PYRE_BUILD_T0=$_t0
log() {
  local us=$((${EPOCHREALTIME/./} - _t0))
  printf '[%4d.%ds] %s\n' $((us / 1000000)) $((us / 100000 % 10)) "$*" >&2
}
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

need() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null || die "$c not found (run \`make deps\`)"
  done
}

# Set every mtime in a tree to SOURCE_DATE_EPOCH (symlinks themselves, not their targets).
clamp_mtimes() {
  find "$1" -depth -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +
}
