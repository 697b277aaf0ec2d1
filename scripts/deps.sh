#!/usr/bin/env bash
# Install what building, testing and benchmarking pyre needs on a Debian 12 machine.
# Idempotent: installs only what is missing, so repeated `make` runs stay fast.
set -euo pipefail
pkgs=(
  mmdebstrap          # builds the image root and the bench reference root
  erofs-utils         # mkfs.erofs: the read-only root filesystem
  cryptsetup-bin      # veritysetup: the dm-verity hash tree
  cpio                # packs the initramfs
  qemu-system-x86     # boots images in the end-to-end tests and the demo
  aide                # the peer in `make bench`
  time                # /usr/bin/time for wall/CPU/peak RSS in `make bench`
  hyperfine           # millisecond wall times of pyre boot / fetch and afterburn in `make bench`
  libssl-dev          # `make bench` builds afterburn (openssl-sys) with cargo install
  pkg-config          # … which finds openssl through it
  iproute2            # `ip` gives lo 169.254.169.254 in the bench's private network namespace
  systemd             # systemd-analyze verify for the unit files
  shellcheck          # lints the shell recipes (make lint)
  # The volume tests put every signature the prober knows on loop devices with the real tool,
  # and format/grow blank ones:
  util-linux          # losetup, (mkswap)
  e2fsprogs           # mkfs.ext2/3/4, resize2fs
  xfsprogs            # mkfs.xfs, xfs_growfs
  btrfs-progs         # mkfs.btrfs
  lvm2                # pvcreate
  mdadm               # md RAID 0.90 / 1.2 members
  fdisk               # sfdisk: GPT and DOS tables
  squashfs-tools      # mksquashfs
  genisoimage         # iso9660
  dosfstools          # mkfs.vfat
  ntfs-3g             # mkfs.ntfs
  gcc                 # cc -static of the e2e tests' stand-in initramfs (tests/src/plain_init.c)
  libc6-dev           # its static libc.a
  rsyslog             # the real syslog receiver of the log-shipping tests and bench (imtcp, imfile)
  rsyslog-relp        # imrelp (plain and TLS) for the RELP tests, omrelp for the bench
  rsyslog-gnutls      # TLS listener for the syslog+tls tests
  gnutls-bin          # gnutls tools beside rsyslog-gnutls (certtool) for debugging TLS setups
  openssl             # makes the throwaway CA and certificates of the TLS tests
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  echo "deps: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "deps: cargo not found (install Rust with rustup)" >&2; exit 1; }
rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt
