# pyre — see README.md. Targets: build static deps lint unit e2e test bench image initramfs demo clean
SHELL := /bin/bash
OUT ?= $(CURDIR)/out
export OUT
TARGET := x86_64-unknown-linux-gnu
STATIC_BIN := $(CURDIR)/target/$(TARGET)/release/pyre
export PYRE_BIN ?= $(STATIC_BIN)
export SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 1700000000)

.PHONY: all build static deps lint unit recipes e2e test bench image initramfs demo clean

all: build

build:
	cargo build --release

# Fully static pyre (glibc, crt-static): it runs as /init in the initramfs with no libraries.
static:
	RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --target $(TARGET) -p pyre

deps:
	bash scripts/deps.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	# The layering rule of agent/src/lib.rs: no module cycle, no import the rule forbids.
	cargo test -p pyre --test layering
	# The fuzz crate is its own workspace: check it too, so its targets cannot rot.
	cargo clippy --manifest-path fuzz/Cargo.toml -- -D warnings
	bash systemd/verify.sh
	shellcheck -x image/*.sh initramfs/*.sh scripts/*.sh systemd/*.sh tests/bench/*.sh .ci/run

unit:
	cargo test -p pyre

# The image and initramfs recipes' own checks (cmdline contract, verity layout, module order).
recipes: static
	bash image/test.sh
	bash initramfs/test.sh

image: static
	bash image/build.sh

initramfs: static
	bash initramfs/build.sh

e2e: image
	cargo test -p pyre-tests -- --test-threads=1

test: deps lint unit recipes e2e

bench: deps static
	bash tests/bench/run.sh

demo: deps image
	cargo run --release -p pyre-tests --bin pyre-demo

clean:
	cargo clean
	rm -rf $(OUT)
