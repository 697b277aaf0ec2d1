#!/usr/bin/env bash
# Build the pyre server image into $OUT/image (see docs/image.md):
#   base root (mmdebstrap, cached) → customize (pyre, units, networkd) → prune modules
#   → pyre seal (signed manifest) → erofs → dm-verity hash tree → cmdline.txt → initramfs.
# Environment: OUT, PYRE_BIN, SOURCE_DATE_EPOCH (set by the Makefile), PYRE_SIGNING_KEY
# (secret key; default: $OUT/keys/build.key, generated on first use), PYRE_TRUSTED_KEYS
# (extra public keys to trust, space-separated), PYRE_MIRROR, PYRE_REFRESH_BASE=1.
set -euo pipefail
# shellcheck source=image/lib.sh
. "$(dirname "$0")/lib.sh"
need mkfs.erofs veritysetup cpio tar sha256sum
[ "$(id -u)" -eq 0 ] || die "image/build.sh runs as root (mmdebstrap, chroot, device nodes)"
[ -x "$PYRE_BIN" ] || die "pyre binary not found at $PYRE_BIN (run \`make static\`)"
log "image: pyre $PYRE_BIN, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH, output $IMAGE_OUT"

# 1. Signing key.
if [ -n "${PYRE_SIGNING_KEY:-}" ]; then
  key=$PYRE_SIGNING_KEY
  [ -f "$key" ] || die "PYRE_SIGNING_KEY=$key: no such file"
else
  key=$OUT/keys/build.key
  if [ ! -f "$key" ]; then
    mkdir -p "$OUT/keys"
    "$PYRE_BIN" keygen -o "$key" >&2
    log "key: generated $key"
  fi
fi
pub=$key.pub
[ -f "$pub" ] || die "public key $pub (next to the signing key) not found"
pubdir=$WORK/keys
rm -rf "$pubdir" && mkdir -p "$pubdir"
cp "$pub" "$pubdir/build.pub"
for k in ${PYRE_TRUSTED_KEYS:-}; do
  [ -f "$k" ] || die "PYRE_TRUSTED_KEYS: $k: no such file"
  name=$(basename "$k" .pub).pub
  [ ! -e "$pubdir/$name" ] || die "PYRE_TRUSTED_KEYS: $k: a key named $name is already trusted"
  cp "$k" "$pubdir/$name"
done

# 2. The root tree.
tarball=$(bash "$REPO/image/base.sh")
root=$WORK/root
rm -rf "$root" && mkdir -p "$root"
tar -C "$root" --numeric-owner --xattrs --xattrs-include='*' -xpf "$tarball"
log "root: extracted $tarball"
mapfile -t kvers < <(ls "$root/usr/lib/modules")
[ ${#kvers[@]} -eq 1 ] || die "expected one kernel in the base root, found: ${kvers[*]:-none}"
kver=${kvers[0]}
[ -f "$root/boot/vmlinuz-$kver" ] || die "no kernel $root/boot/vmlinuz-$kver in the base root"
cp "$root/boot/vmlinuz-$kver" "$WORK/vmlinuz"
bash "$REPO/image/customize.sh" "$root" "$pubdir"/*.pub
bash "$REPO/image/prune-modules.sh" "$root"
clamp_mtimes "$root"

# 3. Seal: the signed manifest of everything but the runtime mounts, /var (state) and
# /etc/machine-id (systemd mounts a transient id over it). The manifest and its signature are
# baked into the root too (/etc/pyre/), for pyre-verified.service on a boot without pyre's
# initramfs: sealed as empty files and excluded (existence and type are checked, the content
# is vouched for by the signature), then filled in.
mkdir -p "$IMAGE_OUT"
for f in manifest manifest.sig; do install -m 0644 /dev/null "$root/etc/pyre/$f"; done
"$PYRE_BIN" seal "$root" -o "$WORK/manifest" --key "$key" \
  --exclude /proc --exclude /sys --exclude /dev --exclude /run --exclude /tmp --exclude /var \
  --exclude /etc/machine-id --exclude /etc/pyre/manifest --exclude /etc/pyre/manifest.sig >/dev/null
for f in manifest manifest.sig; do cat "$WORK/$f" > "$root/etc/pyre/$f"; done
clamp_mtimes "$root/etc/pyre"
digest=$(sha256sum "$WORK/manifest" | cut -d' ' -f1)
log "seal: $(wc -l < "$WORK/manifest") lines, sha256:$digest (also in /etc/pyre/ of the root)"

# 4. erofs + dm-verity in one file, and the kernel command line.
bash "$REPO/image/pack.sh" "$root" "$WORK/manifest" "$WORK/rootfs.img" "$WORK/cmdline.txt"

# 5. Check what the guest will see: the erofs inside rootfs.img, mounted read-only from a loop
# device limited to the data area, matches the signed manifest.
bash "$REPO/image/check.sh" "$WORK/rootfs.img" "$WORK/manifest" "$pubdir/build.pub"

# 6. The initramfs that pins this manifest, then publish all files together (each replaced
# whole, so a failed build leaves the previous image in place).
PYRE_MANIFEST=$WORK/manifest PYRE_INITRD=$WORK/initrd.img bash "$REPO/initramfs/build.sh"
for f in vmlinuz initrd.img manifest manifest.sig rootfs.img cmdline.txt; do
  mv -f "$WORK/$f" "$IMAGE_OUT/$f"
done
log "image: done: $(cd "$IMAGE_OUT" && du -sh -- * | tr '\t\n' ' ')"
