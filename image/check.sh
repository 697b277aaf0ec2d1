#!/usr/bin/env bash
# check.sh IMG MANIFEST PUBKEY: mount the erofs part of IMG read-only through a loop device
# of our own (limited to the data area named in the verity superblock) and check it against
# the signed manifest with `pyre verify`. Needs root and loop devices; the host kernel's
# device-mapper is not used (dm-verity is checked by `veritysetup verify` in pack.sh).
set -euo pipefail
# shellcheck source=image/lib.sh
. "$(dirname "$0")/lib.sh"
[ $# -eq 3 ] || die "usage: check.sh IMG MANIFEST PUBKEY"
img=$1 manifest=$2 pub=$3
need losetup mount umount

# The data area ends where the verity superblock starts: find it from the erofs size.
blocks=$(od -An -t u4 -j $((1024 + 36)) -N 4 "$img" | tr -d ' ')
[[ $blocks =~ ^[1-9][0-9]*$ ]] || die "$img: cannot read the erofs block count"
size=$((blocks * 4096))
[ "$(head -c $((size + 6)) "$img" | tail -c 6)" = verity ] ||
  die "$img: no verity superblock right after the erofs data ($size bytes)"

mnt=$(mktemp -d "${TMPDIR:-/tmp}/pyre-check.XXXXXX")
loop=
cleanup() {
  mountpoint -q "$mnt" && umount "$mnt"
  [ -n "$loop" ] && losetup -d "$loop"
  rmdir "$mnt"
}
trap cleanup EXIT
loop=$(losetup --find --show --read-only --sizelimit "$size" "$img")
mount -t erofs -o ro "$loop" "$mnt"
"$PYRE_BIN" verify "$mnt" -m "$manifest" --pubkey "$pub" >&2 ||
  die "the erofs in $img does not match $manifest"
log "check: erofs mounted from $loop matches the signed manifest"
