#!/usr/bin/env bash
# make bench BENCH=boot: what pyre's root check costs the boot, in QEMU TCG guests of the baked
# image ($OUT/image, from `make image`): the image as shipped (metadata check in pyre init, the
# verity device read by pyre-content.service before pyre-ready.target) against the same image
# with the content check switched off (pyre.verify=metadata) and with the full check forced
# (pyre.verify=full), booted alternately RUNS times each, then the floor (dd of the verity device
# and of the disk under it, direct I/O, in the guest). SMP sets the vCPUs (default 1); on a
# loaded host compare the ratio, not the seconds. Prints a markdown table (docs/boot.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/out}
export OUT
RUNS=${RUNS:-3}
SMP=${SMP:-1}
[ -f "$OUT/image/rootfs.img" ] || { echo "bench: no image in $OUT/image (make image)" >&2; exit 1; }
cargo build --release -q -p pyre-tests --bin pyre-bootbench >&2
exec "$PWD/target/release/pyre-bootbench" "$RUNS" "$SMP"
