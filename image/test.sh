#!/usr/bin/env bash
# shellcheck disable=SC2015 # "check && ok || fail": ok() cannot fail
# Tests of image/pack.sh and image/check.sh on a small tree: the cmdline.txt contract, the
# rootfs.img layout (erofs, then the verity superblock and tree), reproducibility, that
# veritysetup rejects a changed data block, and that check.sh passes the packed tree and
# fails a tree that differs from the manifest. Needs root (loop mount), erofs-utils,
# cryptsetup-bin and the pyre binary ($PYRE_BIN, `make static`).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=image/lib.sh
. "$here/lib.sh"
[ -x "$PYRE_BIN" ] || die "pyre binary not found at $PYRE_BIN (run \`make static\`)"
t=$(mktemp -d "${TMPDIR:-/tmp}/pyre-image-test.XXXXXX")
trap 'rm -rf "$t"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
export SOURCE_DATE_EPOCH=1700000000

root=$t/root
mkdir -p "$root"/{etc,usr/bin,var/lib,proc,tmp}
echo hello > "$root/etc/hostname"
head -c 300000 /dev/urandom > "$root/usr/bin/blob"
ln -s ../usr/bin/blob "$root/etc/link"
echo state > "$root/var/lib/state"
"$PYRE_BIN" keygen -o "$t/k.key" > /dev/null 2>&1
"$PYRE_BIN" seal "$root" -o "$t/manifest" --key "$t/k.key" --exclude /proc --exclude /tmp \
  --exclude /var > /dev/null 2>&1

bash "$here/pack.sh" "$root" "$t/manifest" "$t/rootfs.img" "$t/cmdline.txt" 2> "$t/log" ||
  { cat "$t/log" >&2; die "pack.sh failed"; }
cmdline=$(cat "$t/cmdline.txt")
param() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$cmdline"; }
digest=$(sha256sum "$t/manifest" | cut -d' ' -f1)
[ "$(wc -l < "$t/cmdline.txt")" -eq 1 ] && ok "cmdline.txt is one line" || fail "cmdline.txt lines"
[[ $cmdline =~ ^pyre\.verity\.uuid=[0-9a-f-]{36}\ .*\ ro$ ]] && ok "verity uuid first, ro last" ||
  fail "cmdline: $cmdline"
[[ $cmdline != *pyre.root=* ]] && ok "no pyre.root: the root is found by its uuid, not its name" ||
  fail "cmdline names a root device: $cmdline"
[ "$(param pyre.manifest.digest)" = "sha256:$digest" ] && ok "manifest digest pinned" ||
  fail "digest $(param pyre.manifest.digest) != sha256:$digest"
roothash=$(param pyre.verity.roothash) salt=$(param pyre.verity.salt)
blocks=$(param pyre.verity.data-blocks) off=$(param pyre.verity.hash-offset)
[[ $roothash =~ ^[0-9a-f]{64}$ && $salt =~ ^[0-9a-f]{64}$ ]] && ok "root hash and salt are hex" ||
  fail "root hash $roothash, salt $salt"
[ "$((blocks * 4096))" = "$off" ] && ok "hash-offset = data-blocks * 4096" ||
  fail "data-blocks $blocks, hash-offset $off"
[ "$(head -c "$off" "$t/rootfs.img" | sha256sum | cut -d' ' -f1)" = "$salt" ] &&
  ok "salt is the sha256 of the erofs data" || fail "salt does not match the data"
[ "$(od -An -c -j "$off" -N 6 "$t/rootfs.img" | tr -d ' ')" = verity ] &&
  ok "verity superblock at hash-offset" || fail "no verity superblock at $off"
dump=$(veritysetup dump --hash-offset="$off" "$t/rootfs.img")
uuid=$(param pyre.verity.uuid)
grep -Eq "^UUID:[[:space:]]+$uuid$" <<<"$dump" && [ "${uuid//-/}" = "${salt:0:32}" ] &&
  ok "superblock uuid $uuid pinned (derived from the salt)" || fail "uuid $uuid; superblock: $dump"
grep -Eq "Data blocks:[[:space:]]+$blocks$" <<<"$dump" && grep -Eq "Hash algorithm:[[:space:]]+sha256$" <<<"$dump" &&
  grep -Eq "Data block size:[[:space:]]+4096$" <<<"$dump" && grep -Eq "Hash block size:[[:space:]]+4096$" <<<"$dump" &&
  ok "superblock: sha256, 4096-byte blocks, $blocks data blocks" || fail "superblock: $dump"
veritysetup verify --hash-offset="$off" "$t/rootfs.img" "$t/rootfs.img" "$roothash" &&
  ok "veritysetup verify accepts the cmdline's values" || fail "veritysetup verify failed"

bash "$here/pack.sh" "$root" "$t/manifest" "$t/again.img" "$t/again.txt" 2> /dev/null
cmp -s "$t/rootfs.img" "$t/again.img" && cmp -s "$t/cmdline.txt" "$t/again.txt" &&
  ok "reproducible" || fail "two packs differ"
PYRE_ROOT_DEVICE=/dev/nvme0n1 bash "$here/pack.sh" "$root" "$t/manifest" "$t/ovr.img" "$t/ovr.txt" 2> /dev/null
[ "$(cat "$t/ovr.txt")" = "pyre.root=/dev/nvme0n1 $cmdline" ] &&
  ok "PYRE_ROOT_DEVICE adds a pyre.root override" || fail "override: $(cat "$t/ovr.txt")"

bash "$here/check.sh" "$t/rootfs.img" "$t/manifest" "$t/k.key.pub" > /dev/null 2>&1 &&
  ok "check.sh: the mounted erofs matches the manifest" || fail "check.sh rejected a good image"
echo changed > "$root/etc/hostname"
bash "$here/pack.sh" "$root" "$t/manifest" "$t/drift.img" "$t/drift.txt" 2> /dev/null
if bash "$here/check.sh" "$t/drift.img" "$t/manifest" "$t/k.key.pub" > "$t/log" 2>&1; then
  fail "check.sh accepted a tree that differs from the manifest"
else
  grep -q "does not match" "$t/log" && ok "check.sh: drift refused" || fail "check.sh: $(cat "$t/log")"
fi

# One changed byte inside the data area: the hash tree no longer matches.
printf '\xff' | dd of="$t/rootfs.img" bs=1 seek=$((off - 4096 * 2 + 100)) conv=notrunc status=none
if veritysetup verify --hash-offset="$off" "$t/rootfs.img" "$t/rootfs.img" "$roothash" 2> /dev/null; then
  fail "veritysetup accepted a changed data block"
else
  ok "veritysetup rejects a changed data block"
fi

# What pyre boot needs from the image: a valid default policy, mkfs/grow tools, the fw_cfg
# module kept by the pruning, and pyre-ready.target requiring pyre-boot.service.
printf '{"version":1}\n' > "$t/min.json"
"$PYRE_BIN" config validate --keys "$t" --policy "$REPO/image/image.json" "$t/min.json" > /dev/null 2>&1 &&
  ok "image/image.json is a valid image policy" || fail "image/image.json is refused"
printf '{"version":1,"on-failure":"explode"}\n' > "$t/bad-policy.json"
if "$PYRE_BIN" config validate --keys "$t" --policy "$t/bad-policy.json" "$t/min.json" > /dev/null 2>&1; then
  fail "a bad policy passes the check customize.sh makes"
else
  ok "a bad policy fails the check customize.sh makes before baking it"
fi
grep -qx e2fsprogs "$here/packages" && grep -qx xfsprogs "$here/packages" &&
  ok "packages: e2fsprogs and xfsprogs for data volumes" || fail "packages lack e2fsprogs/xfsprogs"
fwcfg=no
while read -r pat; do
  pat=${pat%%#*}
  pat=${pat//[[:space:]]/}
  # shellcheck disable=SC2053 # the pattern is meant to glob
  [ -n "$pat" ] && [ "${pat:0:1}" != '!' ] && [[ drivers/firmware/qemu_fw_cfg.ko.xz == $pat ]] && fwcfg=yes
done < "$here/modules.keep"
[ "$fwcfg" = yes ] && ok "modules.keep keeps qemu_fw_cfg" || fail "modules.keep drops qemu_fw_cfg"
grep -q '^Requires=.*pyre-boot.service' "$REPO/systemd/pyre-ready.target" &&
  grep -q '^After=.*pyre-boot.service' "$REPO/systemd/pyre-ready.target" &&
  ok "pyre-ready.target requires and follows pyre-boot.service" || fail "pyre-ready.target misses pyre-boot"

[ "$fails" -eq 0 ] || { echo "$fails failure(s)" >&2; exit 1; }
echo "image tests: all passed"
