#!/usr/bin/env bash
# Build (or reuse) the base Debian root: mmdebstrap bookworm minbase + image/packages, as a
# tarball under $OUT/cache keyed on everything that decides its content except the mirror's
# state on the day. Prints the tarball's path. PYRE_REFRESH_BASE=1 forces a rebuild.
set -euo pipefail
# shellcheck source=image/lib.sh
. "$(dirname "$0")/lib.sh"
need mmdebstrap

SUITE=bookworm
MIRROR=${PYRE_MIRROR:-http://deb.debian.org/debian}
mapfile -t PKGS < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$REPO/image/packages")

# Keep the root small: no man pages, translations or docs (copyright files stay).
DPKG_OPTS=(
  'path-exclude=/usr/share/man/*'
  'path-exclude=/usr/share/info/*'
  'path-exclude=/usr/share/locale/*'
  'path-include=/usr/share/locale/locale.alias'
  'path-exclude=/usr/share/doc/*'
  'path-include=/usr/share/doc/*/copyright'
  'path-exclude=/usr/share/lintian/*'
  'path-exclude=/usr/share/bug/*'
)

args=(--variant=minbase --mode=root --format=tar --aptopt='Acquire::Languages "none"')
args+=(--include="$(IFS=,; echo "${PKGS[*]}")")
for o in "${DPKG_OPTS[@]}"; do args+=(--dpkgopt="$o"); done
# usrmerge comes with the essential set (init-system-helpers wants usrmerge | usr-is-merged)
# and drags in perl; with usr-is-merged installed it can go, and perl with it (perl-base,
# which is Essential, stays). They were installed by dpkg directly, so name them all.
# shellcheck disable=SC2016 # $1 is for the hook's shell
args+=(--customize-hook='chroot "$1" apt-get -y -qq purge usrmerge libfile-find-rule-perl libnumber-compare-perl libtext-glob-perl perl libperl5.36 perl-modules-5.36')

# The cache key: everything mmdebstrap is told. Bump RECIPE when changing anything else here
# that changes the result.
RECIPE=1
key=$(printf '%s\n' "recipe $RECIPE" "$SUITE" "$MIRROR" "INITRD=No" "${args[@]}" | sha256sum | cut -c1-16)
tarball=$CACHE/base-$key.tar
if [ -s "$tarball" ] && [ "${PYRE_REFRESH_BASE:-0}" != 1 ]; then
  log "base root: cached $tarball"
  echo "$tarball"
  exit 0
fi

mkdir -p "$CACHE"
log "base root: mmdebstrap $SUITE (${PKGS[*]}) -> $tarball"
# INITRD=No: the image boots with pyre's initramfs, so initramfs-tools' kernel hook skips
# building its own (it honours this variable).
INITRD=No mmdebstrap "${args[@]}" "$SUITE" "$tarball.tmp" "$MIRROR" >&2
mv "$tarball.tmp" "$tarball"
# Older base roots (other keys) are ~500 MB each: keep only this one.
find "$CACHE" -maxdepth 1 -name 'base-*.tar' ! -name "base-$key.tar" -delete
log "base root: built $(du -h "$tarball" | cut -f1)"
echo "$tarball"
