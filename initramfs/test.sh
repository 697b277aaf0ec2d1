#!/usr/bin/env bash
# shellcheck disable=SC2015 # "check && ok || fail": ok() cannot fail
# Tests of initramfs/build.sh on a synthetic kernel module tree: dependency and softdep
# resolution and order, builtins, decompression, the cpio's fixed entries, reproducibility,
# compression, and the errors for bad input. Needs root (mknod) and cpio, xz, gzip.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
t=$(mktemp -d "${TMPDIR:-/tmp}/pyre-initramfs-test.XXXXXX")
trap 'rm -rf "$t"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

kver=9.9.9-test
m=$t/root/usr/lib/modules/$kver
mkdir -p "$m"
mod() { # path [content]: a fake module file
  mkdir -p "$(dirname "$m/$1")"
  printf '%s' "${2:-fake $1}" > "$m/$1"
}
for p in kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko \
  kernel/drivers/block/virtio_blk.ko kernel/drivers/md/dm-mod.ko kernel/drivers/md/dm-bufio.ko \
  kernel/lib/reed_solomon/reed_solomon.ko kernel/lib/libcrc32c.ko kernel/crypto/crc32c_generic.ko \
  kernel/arch/x86/crypto/crc32c-intel.ko kernel/fs/erofs/erofs.ko kernel/unused.ko; do
  mod "$p"
done
printf 'plain dm-verity' | xz -c > "$m/kernel/drivers/md/dm-verity.ko.xz"
cat > "$m/modules.dep" <<'DEP'
kernel/fs/erofs/erofs.ko: kernel/lib/libcrc32c.ko
kernel/lib/libcrc32c.ko:
kernel/crypto/crc32c_generic.ko:
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/drivers/md/dm-verity.ko.xz: kernel/drivers/md/dm-bufio.ko kernel/lib/reed_solomon/reed_solomon.ko kernel/drivers/md/dm-mod.ko
kernel/drivers/md/dm-bufio.ko: kernel/drivers/md/dm-mod.ko
kernel/drivers/md/dm-mod.ko:
kernel/lib/reed_solomon/reed_solomon.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_ring.ko: kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio.ko:
kernel/unused.ko:
DEP
echo kernel/fs/overlayfs/overlay.ko > "$m/modules.builtin"
cat > "$m/modules.alias" <<'ALIAS'
alias crypto-crc32c crc32c_intel
alias crc32c crc32c_intel
alias crc32c crc32c_generic
alias pci:v00001AF4d00001001sv*sd*bc*sc*i* virtio_blk
ALIAS
echo 'softdep libcrc32c pre: crc32c' > "$m/modules.softdep"
printf '# test list\nvirtio_blk\ndm_verity   # - and _ are the same\nerofs\noverlay\n' > "$t/modules"
mkdir -p "$t/keys"
echo pub > "$t/keys/build.pub"
echo manifest > "$t/manifest"
echo sig > "$t/manifest.sig"
printf '#!/bin/sh\n' > "$t/pyre" && chmod +x "$t/pyre"

build() { # extra env...; builds $t/initrd.img
  env OUT="$t/out" PYRE_BIN="$t/pyre" SOURCE_DATE_EPOCH=1700000000 PYRE_IMAGE_ROOT="$t/root" \
    PYRE_KEYS_DIR="$t/keys" PYRE_MANIFEST="$t/manifest" PYRE_INITRD="$t/initrd.img" \
    PYRE_INITRD_MODULES="$t/modules" PYRE_INITRD_STAGE="$t/stage" "$@" \
    bash "$here/build.sh" 2> "$t/log"
}

build || { cat "$t/log" >&2; fail "build failed"; exit 1; }
expected="/lib/modules/$kver/kernel/drivers/virtio/virtio.ko
/lib/modules/$kver/kernel/drivers/virtio/virtio_ring.ko
/lib/modules/$kver/kernel/drivers/block/virtio_blk.ko
/lib/modules/$kver/kernel/drivers/md/dm-mod.ko
/lib/modules/$kver/kernel/lib/reed_solomon/reed_solomon.ko
/lib/modules/$kver/kernel/drivers/md/dm-bufio.ko
/lib/modules/$kver/kernel/drivers/md/dm-verity.ko
/lib/modules/$kver/kernel/crypto/crc32c_generic.ko
/lib/modules/$kver/kernel/lib/libcrc32c.ko
/lib/modules/$kver/kernel/fs/erofs/erofs.ko"
if [ "$(cat "$t/stage/etc/pyre/modules.load")" = "$expected" ]; then
  ok "modules.load: dependencies first, softdep via the generic alias, builtin and unused left out"
else
  fail "modules.load:"$'\n'"$(cat "$t/stage/etc/pyre/modules.load")"$'\n'"expected:"$'\n'"$expected"
fi
grep -q 'overlay is built into the kernel' "$t/log" && ok "builtin module reported" ||
  fail "builtin overlay not reported"

mkdir "$t/x"
(cd "$t/x" && cpio -idm --quiet < "$t/initrd.img")
[ "$(cat "$t/x/lib/modules/$kver/kernel/drivers/md/dm-verity.ko")" = "plain dm-verity" ] &&
  ok "compressed module unpacked to plain .ko" || fail "dm-verity.ko not decompressed"
listing=$(cpio -itv --quiet < "$t/initrd.img")
for want in '^-rwxr-xr-x .* init$' '^crw------- .* 5, *1 .* dev/console$' \
  '^drwxr-xr-x .* sysroot$' '^drwxrwxrwt .* tmp$' ' etc/pyre/keys/build.pub$' \
  ' etc/pyre/manifest$' ' etc/pyre/manifest.sig$'; do
  grep -Eq "$want" <<<"$listing" && ok "cpio has ${want}" || fail "cpio lacks $want"
done
for d in proc sys dev run; do
  grep -Eq "^d.* $d\$" <<<"$listing" || fail "cpio lacks /$d"
done
grep -Eq ' root +root ' <<<"$listing" && ! grep -Evq ' root +root ' <<<"$listing" &&
  ok "all entries owned by root" || fail "entries not all owned by root"

cp "$t/initrd.img" "$t/first.img"
build && cmp -s "$t/initrd.img" "$t/first.img" && ok "reproducible" || fail "two builds differ"
build PYRE_INITRD_COMPRESS=gzip && gzip -dc "$t/initrd.img" | cmp -s - "$t/first.img" &&
  ok "gzip holds the same cpio" || fail "gzip initrd differs"

echo no_such_mod >> "$t/modules"
if build; then fail "unknown module accepted"; else
  grep -q "module no_such_mod ($t/modules) not found" "$t/log" && ok "unknown module named" ||
    fail "unknown module error: $(cat "$t/log")"
fi
sed -i '$d' "$t/modules"
rm "$t/manifest.sig"
if build; then fail "missing signature accepted"; else
  grep -q "no $t/manifest.sig" "$t/log" && ok "missing signature named" ||
    fail "missing signature error: $(cat "$t/log")"
fi
echo sig > "$t/manifest.sig"
if build PYRE_INITRD_COMPRESS=lzma; then fail "bad compressor accepted"; else
  grep -q "PYRE_INITRD_COMPRESS=lzma" "$t/log" && ok "bad compressor named" ||
    fail "bad compressor error: $(cat "$t/log")"
fi

# The shipped list: pyre init scans every block device for the root's verity superblock, so
# every disk driver a root (or an attached volume) may sit behind is loaded before the scan.
for want in virtio_blk virtio_scsi nvme; do
  grep -Eq "^$want([[:space:]]|$)" "$here/modules" && ok "initramfs/modules lists $want" ||
    fail "initramfs/modules lacks $want"
done

[ "$fails" -eq 0 ] || { echo "$fails failure(s)" >&2; exit 1; }
echo "initramfs tests: all passed"
