#!/usr/bin/env bash
# customize.sh ROOT [PUBKEY...]: turn the extracted base root into pyre's read-only server root.
# Installs pyre and the units from systemd/, configures networkd, and removes what a
# read-only server does not need or must not have (build logs, apt caches, /boot, the
# build host's hostname). Runs the image's own systemctl/depmod through chroot.
set -euo pipefail
# shellcheck source=image/lib.sh
. "$(dirname "$0")/lib.sh"
root=${1:?usage: customize.sh ROOT [PUBKEY...]}
shift
[ -x "$PYRE_BIN" ] || die "pyre binary not found at $PYRE_BIN (run \`make static\`)"
[ -x "$root/usr/bin/systemctl" ] || die "$root does not look like a systemd root"

# pyre itself, and the public key(s) it trusts (also baked into the initramfs).
install -D -m 0755 "$PYRE_BIN" "$root/usr/bin/pyre"
install -d -m 0755 "$root/etc/pyre/keys"
for pub in "$@"; do
  install -m 0644 "$pub" "$root/etc/pyre/keys/$(basename "$pub")"
done

# The image policy (/etc/pyre/image.json): $PYRE_IMAGE_POLICY, else image/image.json (config
# optional, unsigned accepted, 120 s deadline, power off on a boot-critical failure). Checked
# with pyre's own parser so a broken policy fails the build, not every boot.
policy=${PYRE_IMAGE_POLICY:-$REPO/image/image.json}
[ -f "$policy" ] || die "PYRE_IMAGE_POLICY=$policy: no such file"
printf '{"version":1}\n' > "$root/etc/pyre/.policy-check.json"
"$PYRE_BIN" config validate --keys "$root/etc/pyre/keys" --policy "$policy" \
  "$root/etc/pyre/.policy-check.json" >/dev/null || die "image policy $policy is invalid"
rm -f "$root/etc/pyre/.policy-check.json"
install -m 0644 "$policy" "$root/etc/pyre/image.json"

# pyre's documentation, which the units point to (Documentation=file:/usr/share/doc/pyre/...).
install -d -m 0755 "$root/usr/share/doc/pyre"
shopt -s nullglob
for d in "$REPO"/docs/*.md; do install -m 0644 "$d" "$root/usr/share/doc/pyre/"; done
shopt -u nullglob

# Units from systemd/: install all, enable those with an [Install] section.
units=()
shopt -s nullglob
for f in "$REPO"/systemd/*.service "$REPO"/systemd/*.target "$REPO"/systemd/*.timer \
  "$REPO"/systemd/*.socket "$REPO"/systemd/*.path "$REPO"/systemd/*.mount; do
  install -m 0644 "$f" "$root/usr/lib/systemd/system/$(basename "$f")"
  grep -q '^\[Install\]' "$f" && units+=("$(basename "$f")")
done
shopt -u nullglob

# DHCP on every physical Ethernet link (Kind=!* leaves out veth, bridges and the like).
install -d "$root/etc/systemd/network"
cat > "$root/etc/systemd/network/80-pyre-dhcp.network" <<'NET'
# pyre image: DHCP (v4 and v6) on every Ethernet link that is not a virtual device.
[Match]
Type=ether
Kind=!*

[Network]
DHCP=yes
NET
chroot "$root" systemctl enable --quiet systemd-networkd.service systemd-resolved.service \
  "${units[@]}"
chroot "$root" systemctl set-default --quiet multi-user.target
# A read-only root cannot update itself: no apt timers, no trying to fetch package lists.
chroot "$root" systemctl disable --quiet apt-daily.timer apt-daily-upgrade.timer 2>/dev/null || true

# Modules pyre init leaves to the booted system: systemd-modules-load.service loads them before
# sysinit.target, so before pyre-boot.service.
install -D -m 0644 "$REPO/image/modules-load.conf" "$root/etc/modules-load.d/pyre.conf"

# Logs go off-host; the journal stays in memory (/run/log/journal). A persistent journal under
# the /var overlay would hold /var busy at shutdown and only grow RAM use on the tmpfs upper.
install -d "$root/etc/systemd/journald.conf.d"
cat > "$root/etc/systemd/journald.conf.d/50-pyre-volatile.conf" <<'JOURNAL'
# pyre image: the journal lives in /run; pyre ships logs off-host.
[Journal]
Storage=volatile
JOURNAL

# Identity comes at boot: systemd makes a transient machine id when /etc/machine-id is empty,
# `pyre boot` (pyre-boot.service) sets the hostname from the instance config.
: > "$root/etc/machine-id"
echo localhost > "$root/etc/hostname"
[ "$(readlink "$root/etc/resolv.conf")" = ../run/systemd/resolve/stub-resolv.conf ] ||
  die "$root/etc/resolv.conf is not the link into /run that systemd-resolved installs"
echo "# The root is read-only; data volumes are mounted by pyre boot." > "$root/etc/fstab"

# The kernel boots from out/image/vmlinuz with pyre's initramfs: /boot stays empty.
find "$root/boot" -mindepth 1 -delete
# udev reads the compiled hwdb.bin; its sources only serve `systemd-hwdb update`, which a
# read-only root never runs.
find "$root/usr/lib/udev/hwdb.d" -name '*.hwdb' -delete
# Build-time leftovers: logs, caches, backups of the package database.
find "$root/var/log" "$root/var/cache/apt" "$root/var/lib/apt/lists" -type f -delete
rm -f "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old "$root/etc/.pwd.lock" \
  "$root/etc/passwd-" "$root/etc/group-" "$root/etc/shadow-" "$root/etc/gshadow-" \
  "$root/etc/subuid-" "$root/etc/subgid-"
# Mount points only: pyre init mounts /proc, /sys, /dev, /run, /tmp (and overlays /var).
for d in dev proc sys run tmp; do
  rm -rf "${root:?}/$d"
  mkdir -m 0755 "$root/$d"
done
chmod 1777 "$root/tmp"
log "customize: pyre, policy $policy, ${#units[@]} pyre unit(s) enabled (${units[*]:-none}), networkd DHCP"
