#!/usr/bin/env bash
# Builds {{name}}.wasm beside this script.
#
# With rustup's wasm32-wasip2 target installed (`rustup target add wasm32-wasip2`), cargo
# links a component directly. Otherwise Debian's Rust is used (packages rustc-web,
# cargo-web, rust-web-src and lld-22 on Debian 12): it builds std for
# wasm32-unknown-unknown, and `switchyard policy componentize` turns the core module into
# a component. SWITCHYARD_BIN names the gateway binary (default: `switchyard` on PATH).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"
crate={{crate}}
target_dir=${CARGO_TARGET_DIR:-$here/target}
if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    cargo build --release --target wasm32-wasip2 --target-dir "$target_dir"
    cp "$target_dir/wasm32-wasip2/release/$crate.wasm" {{name}}.wasm
else
    for tool in /usr/bin/rustc /usr/bin/cargo wasm-ld-22; do
        command -v "$tool" >/dev/null || {
            echo "missing $tool: apt-get install rustc-web cargo-web rust-web-src lld-22, or rustup target add wasm32-wasip2" >&2
            exit 1
        }
    done
    # A 64 KiB stack instead of 1 MiB: a fresh instance per decision touches less memory.
    RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
        CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld-22 \
        CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C link-arg=-zstack-size=65536" \
        /usr/bin/cargo build --release --target wasm32-unknown-unknown --target-dir "$target_dir" \
        -Zbuild-std=std,panic_abort
    "${SWITCHYARD_BIN:-switchyard}" policy componentize \
        "$target_dir/wasm32-unknown-unknown/release/$crate.wasm" -o {{name}}.wasm
fi
ls -l {{name}}.wasm
