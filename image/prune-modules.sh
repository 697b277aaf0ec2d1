#!/usr/bin/env bash
# prune-modules.sh ROOT: keep only the kernel modules matched by image/modules.keep plus
# their dependencies (from the image's own modules.dep), then rerun the image's depmod.
set -euo pipefail
# shellcheck source=image/lib.sh
. "$(dirname "$0")/lib.sh"
root=${1:?usage: prune-modules.sh ROOT}

mapfile -t kvers < <(ls "$root/usr/lib/modules")
[ ${#kvers[@]} -eq 1 ] || die "expected one kernel under $root/usr/lib/modules, found: ${kvers[*]:-none}"
kver=${kvers[0]}
mdir=$root/usr/lib/modules/$kver
[ -s "$mdir/modules.dep" ] || die "no modules.dep in $mdir"

keep=() drop=()
while read -r line; do
  line=${line%%#*}
  line=${line//[[:space:]]/}
  [ -n "$line" ] || continue
  if [ "${line:0:1}" = '!' ]; then drop+=("kernel/${line:1}"); else keep+=("kernel/$line"); fi
done < "$REPO/image/modules.keep"

matches() { # path, patterns...
  local p=$1 pat
  shift
  for pat in "$@"; do
    # shellcheck disable=SC2053 # the pattern is meant to glob
    [[ $p == $pat ]] && return 0
  done
  return 1
}

# modules.dep lines: "kernel/a.ko: kernel/b.ko kernel/c.ko"
declare -A deps=() want=()
while IFS= read -r line; do
  mod=${line%%:*}
  deps[$mod]=${line#*:}
done < "$mdir/modules.dep"

add() { # add a module and, recursively, its dependencies
  local m=$1 d
  [ -n "${want[$m]:-}" ] && return 0
  want[$m]=1
  for d in ${deps[$m]}; do add "$d"; done
}

total=0
for mod in "${!deps[@]}"; do
  total=$((total + 1))
  if matches "$mod" "${keep[@]}" && ! matches "$mod" "${drop[@]}"; then add "$mod"; fi
done

removed=0
for mod in "${!deps[@]}"; do
  if [ -z "${want[$mod]:-}" ]; then
    rm -f "$mdir/$mod"
    removed=$((removed + 1))
  fi
done
find "$mdir/kernel" -depth -type d -empty -delete
chroot "$root" /sbin/depmod "$kver"
log "modules: kept ${#want[@]} of $total ($(du -sh "$mdir" | cut -f1) in $mdir)"
