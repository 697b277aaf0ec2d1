#!/usr/bin/env bash
# pack.sh ROOT MANIFEST IMG CMDLINE: pack ROOT as erofs into IMG, append the dm-verity hash
# area to the same file, and write the kernel command line that pins both.
#
# IMG layout (4096-byte blocks):
#   [0, hash-offset)           erofs filesystem, data-blocks = hash-offset / 4096
#   [hash-offset, +4096)       verity superblock (veritysetup format 1, sha256, salt, uuid)
#   [hash-offset + 4096, ...)  the hash tree; its first block is the device-mapper table's
#                              <hash_start_block> = hash-offset / 4096 + 1
# Salt and UUIDs are derived from the content, so the same tree gives the same bytes. The
# verity superblock's UUID is pinned as pyre.verity.uuid: `pyre init` finds the root by it
# (with data-blocks and salt) among all block devices, never by the kernel's name for a disk.
# PYRE_ROOT_DEVICE: optional pyre.root= override (e.g. /dev/nvme0n1); default none. Even then
# the device must carry the matching verity superblock.
# PYRE_EROFS_COMPRESS: an mkfs.erofs compressor (lz4, lz4hc); default none (see docs/image.md).
set -euo pipefail
# shellcheck source=image/lib.sh
. "$(dirname "$0")/lib.sh"
[ $# -eq 4 ] || die "usage: pack.sh ROOT MANIFEST IMG CMDLINE"
root=$1 manifest=$2 img=$3 cmdline=$4
need mkfs.erofs veritysetup sha256sum

digest=$(sha256sum "$manifest" | cut -d' ' -f1)
as_uuid() { echo "${1:0:8}-${1:8:4}-${1:12:4}-${1:16:4}-${1:20:12}"; }

rm -f "$img"
compress=()
[ -n "${PYRE_EROFS_COMPRESS:-}" ] && compress=(-z "$PYRE_EROFS_COMPRESS")
mkfs.erofs --quiet -T "$SOURCE_DATE_EPOCH" -U "$(as_uuid "$digest")" "${compress[@]}" "$img" "$root"
size=$(stat -c %s "$img")
[ $((size % 4096)) -eq 0 ] || die "erofs image $img is $size bytes, not a multiple of 4096"
data_blocks=$((size / 4096))
log "erofs: $((size / 1048576)) MiB, $data_blocks blocks${compress[*]:+ (${compress[*]})}"

salt=$(sha256sum "$img" | cut -d' ' -f1)
uuid=$(as_uuid "$salt")
out=$(veritysetup format --hash=sha256 --data-block-size=4096 --hash-block-size=4096 \
  --data-blocks="$data_blocks" --hash-offset="$size" --salt="$salt" \
  --uuid="$uuid" "$img" "$img")
roothash=$(sed -n 's/^Root hash:[[:space:]]*//p' <<<"$out")
[[ $roothash =~ ^[0-9a-f]{64}$ ]] || die "no root hash in veritysetup output: $out"
veritysetup verify --hash-offset="$size" "$img" "$img" "$roothash"
log "verity: root hash $roothash, hash area $((($(stat -c %s "$img") - size) / 1024)) KiB, verified"

echo "${PYRE_ROOT_DEVICE:+pyre.root=$PYRE_ROOT_DEVICE }pyre.verity.uuid=$uuid" \
  "pyre.verity.roothash=$roothash pyre.verity.salt=$salt" \
  "pyre.verity.data-blocks=$data_blocks pyre.verity.hash-offset=$size" \
  "pyre.manifest.digest=sha256:$digest ro" > "$cmdline"
