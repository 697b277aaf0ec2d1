#!/usr/bin/env bash
# Build $OUT/image/initrd.img: a newc cpio (reproducible) holding
#   /init                      the static pyre binary (runs `pyre init` as PID 1)
#   /dev/console               char 5:1, the console PID 1 starts with
#   /proc /sys /dev /run /sysroot /tmp   empty mount points
#   /lib/modules/<kver>/...    the modules in initramfs/modules and their dependencies,
#                              taken from the image root (decompressed to plain .ko)
#   /etc/pyre/modules.load     their absolute paths, one a line, dependencies first
#   /etc/pyre/manifest, manifest.sig, keys/*.pub   what the root is verified against
# No shell, no busybox. Inputs, by default those left by image/build.sh:
#   PYRE_IMAGE_ROOT  the image root whose /usr/lib/modules/<kver> is used ($OUT/work/root)
#   PYRE_KEYS_DIR    directory of trusted public keys *.pub ($OUT/work/keys)
#   PYRE_MANIFEST    the manifest; its signature is PYRE_MANIFEST.sig ($OUT/image/manifest)
#   PYRE_INITRD      where to write the initramfs ($OUT/image/initrd.img)
#   PYRE_INITRD_MODULES  the list of module names (initramfs/modules)
#   PYRE_INITRD_STAGE    scratch directory for the tree ($OUT/work/initramfs)
#   PYRE_INITRD_COMPRESS=none|gzip|zstd (default: none)
set -euo pipefail
# shellcheck source=image/lib.sh
. "$(dirname "$0")/../image/lib.sh"
need cpio sha256sum
root=${PYRE_IMAGE_ROOT:-$WORK/root}
keys=${PYRE_KEYS_DIR:-$WORK/keys}
manifest=${PYRE_MANIFEST:-$IMAGE_OUT/manifest}
initrd=${PYRE_INITRD:-$IMAGE_OUT/initrd.img}
modlist=${PYRE_INITRD_MODULES:-$REPO/initramfs/modules}
[ -d "$root/usr/lib/modules" ] || die "no image root at $root: run \`make image\` first"
for f in "$manifest" "$manifest.sig"; do
  [ -f "$f" ] || die "no $f: run \`make image\` first"
done
compgen -G "$keys/*.pub" >/dev/null || die "no public keys (*.pub) in $keys"
[ -x "$PYRE_BIN" ] || die "pyre binary not found at $PYRE_BIN (run \`make static\`)"
compress=${PYRE_INITRD_COMPRESS:-none}
case $compress in
  none) ;;
  gzip | zstd) need "$compress" ;;
  *) die "PYRE_INITRD_COMPRESS=$compress: expected none, gzip or zstd" ;;
esac
[ "$(id -u)" -eq 0 ] || die "initramfs/build.sh runs as root (it creates /dev/console with mknod)"

mapfile -t kvers < <(ls "$root/usr/lib/modules")
[ ${#kvers[@]} -eq 1 ] || die "expected one kernel under $root/usr/lib/modules, found: ${kvers[*]:-none}"
kver=${kvers[0]}
mdir=$root/usr/lib/modules/$kver
stage=${PYRE_INITRD_STAGE:-$WORK/initramfs}
rm -rf "$stage"
mkdir -p "$stage"/{proc,sys,dev,run,sysroot,tmp,etc/pyre/keys,lib/modules/"$kver"}
chmod 1777 "$stage/tmp"
mknod -m 0600 "$stage/dev/console" c 5 1
install -m 0755 "$PYRE_BIN" "$stage/init"
install -m 0644 "$manifest" "$stage/etc/pyre/manifest"
install -m 0644 "$manifest.sig" "$stage/etc/pyre/manifest.sig"
install -m 0644 "$keys"/*.pub "$stage/etc/pyre/keys/"

# name (with - and _ the same) → path in modules.dep; dependencies per path.
norm() { local n=${1##*/}; n=${n%%.ko*}; echo "${n//-/_}"; }
declare -A path_of=() deps=() builtin=() done_=()
while IFS= read -r line; do
  mod=${line%%:*}
  path_of[$(norm "$mod")]=$mod
  deps[$mod]=${line#*:}
done < "$mdir/modules.dep"
while IFS= read -r mod; do builtin[$(norm "$mod")]=1; done < "$mdir/modules.builtin"
# Soft dependencies ("softdep ext4 pre: crypto-crc32c") name crypto algorithms that the
# kernel would otherwise ask /sbin/modprobe for, and there is none here. Resolve them through
# modules.alias, preferring the *_generic implementation, which loads on every CPU (udev
# loads the accelerated ones later, from the root).
declare -A alias_of=() softpre=()
while read -r _ a m; do
  [[ $a == *'*'* ]] && continue
  m=${m//-/_}
  if [ -z "${alias_of[$a]:-}" ] || [[ $m == *_generic ]]; then alias_of[$a]=$m; fi
done < "$mdir/modules.alias"
while read -r kw mod rest; do
  [ "$kw" = softdep ] || continue
  [[ $rest == pre:* ]] || continue
  softpre[${mod//-/_}]+=" ${rest#pre:}"
done < "$mdir/modules.softdep"

order=()
visit() { # post-order: dependencies first
  local m=$1
  [ -n "${done_[$m]:-}" ] && return 0
  done_[$m]=1
  # modules.dep lists the deepest dependency last; visit in reverse for modprobe's order.
  local -a ds
  read -ra ds <<<"${deps[$m]}"
  local i s t
  for s in ${softpre[$(norm "$m")]:-}; do
    t=${alias_of[$s]:-$(norm "$s")}
    [ -n "${path_of[$t]:-}" ] && visit "${path_of[$t]}"
  done
  for ((i = ${#ds[@]} - 1; i >= 0; i--)); do visit "${ds[i]}"; done
  order+=("$m")
}
while read -r name; do
  name=${name%%#*}
  name=${name//[[:space:]]/}
  [ -n "$name" ] || continue
  n=$(norm "$name")
  if [ -n "${path_of[$n]:-}" ]; then
    visit "${path_of[$n]}"
  elif [ -n "${builtin[$n]:-}" ]; then
    log "initramfs: $name is built into the kernel"
  else
    die "module $name ($modlist) not found in $mdir/modules.dep"
  fi
done < "$modlist"

: > "$stage/etc/pyre/modules.load"
for mod in "${order[@]}"; do
  src=$mdir/$mod
  dst=$stage/lib/modules/$kver/${mod%%.ko*}.ko
  mkdir -p "$(dirname "$dst")"
  case $mod in
    *.ko) cp "$src" "$dst" ;;
    *.ko.xz) need xz && xz -dc "$src" > "$dst" ;;
    *.ko.zst) need zstd && zstd -qdc "$src" > "$dst" ;;
    *.ko.gz) need gzip && gzip -dc "$src" > "$dst" ;;
    *) die "unknown module file type: $src" ;;
  esac
  echo "/lib/modules/$kver/${mod%%.ko*}.ko" >> "$stage/etc/pyre/modules.load"
done
cp "$mdir/modules.dep" "$mdir/modules.builtin" "$stage/lib/modules/$kver/"

clamp_mtimes "$stage"
mkdir -p "$(dirname "$initrd")"
tmp=$initrd.tmp
(cd "$stage" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
  cpio --null --create --format=newc --reproducible --owner=0:0 --quiet) |
  case $compress in
    none) cat ;;
    gzip) gzip -9 -n ;;
    zstd) zstd -q -19 ;;
  esac > "$tmp"
mv -f "$tmp" "$initrd"
log "initramfs: ${#order[@]} modules, $(du -h "$initrd" | cut -f1) ($compress), $initrd"
