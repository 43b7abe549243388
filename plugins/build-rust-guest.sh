#!/usr/bin/env bash
# Builds one Rust policy of this workspace into a component: build-rust-guest.sh NAME
#
# Writes plugins/NAME/NAME.wasm. Each Rust plugin's build.sh calls this; it is idempotent and
# needs nothing but Debian's packages and crates.io:
#   1. installs Debian's Rust 1.96 (`rustc-web`, which builds std for wasm32-unknown-unknown
#      from `rust-web-src`) and `lld-22` (wasm-ld) when missing;
#   2. builds the core module with `-Zbuild-std` into plugins/target;
#   3. turns it into a component with `switchyard policy componentize` ($SWITCHYARD_BIN, else
#      the repository's target/release/switchyard, target/debug/switchyard or `switchyard` on
#      PATH, whichever exists first and has the command; only when none does is one built,
#      with `cargo build -p switchyard`).
set -euo pipefail

name=${1:?usage: build-rust-guest.sh PLUGIN-NAME}
plugins=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$plugins/.." && pwd)
packages=(rustc-web cargo-web rust-web-src lld-22)

say() { echo "[$name] $*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        say "need root to run: $*"
        exit 1
    fi
}

install_toolchain() {
    local missing=() p
    for p in "${packages[@]}"; do
        if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != installed ]; then
            missing+=("$p")
        fi
    done
    [ ${#missing[@]} = 0 ] && return
    if ! apt-cache policy rustc-web 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        say "apt-get update (rustc-web is not in the package lists yet)"
        as_root apt-get update
    fi
    say "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}"
}

build_core() {
    say "building the core module"
    # A 64 KiB shadow stack instead of the default 1 MiB: a fresh instance per decision
    # then touches far less memory, which is most of a small policy's per-call cost.
    # /usr/bin explicitly: rustup's proxies usually come first in PATH, and rustup's
    # toolchains cannot build std from Debian's library source.
    (cd "$plugins" &&
        RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
        CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld-22 \
        CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C link-arg=-zstack-size=65536" \
        CARGO_TARGET_DIR="$plugins/target" \
        /usr/bin/cargo build --locked --release --target wasm32-unknown-unknown \
            -Zbuild-std=std,panic_abort -p "$name")
}

has_componentize() {
    "$1" policy componentize --help >/dev/null 2>&1
}

switchyard_bin() {
    if [ -n "${SWITCHYARD_BIN:-}" ]; then
        if ! has_componentize "$SWITCHYARD_BIN"; then
            say "SWITCHYARD_BIN=$SWITCHYARD_BIN does not run \`policy componentize\`"
            exit 1
        fi
        echo "$SWITCHYARD_BIN"
        return
    fi
    # An existing binary first (release, then debug, then PATH): only the in-process
    # componentizer is needed, and building the server for it takes minutes.
    local bin candidate
    for candidate in "$root/target/release/switchyard" "$root/target/debug/switchyard" \
        "$(command -v switchyard || true)"; do
        if [ -n "$candidate" ] && [ -x "$candidate" ] && has_componentize "$candidate"; then
            echo "$candidate"
            return
        fi
    done
    bin="$root/target/debug/switchyard"
    say "no switchyard binary with \`policy componentize\`: building one (cargo build -p switchyard)"
    # The host workspace builds with whichever cargo is first in PATH (Debian's or
    # rustup's), with none of the guest build's settings.
    if ! (cd "$root" && env -u RUSTC -u RUSTDOC -u RUSTC_BOOTSTRAP -u CARGO_TARGET_DIR \
        cargo build -p switchyard >&2); then
        say "cargo build -p switchyard failed in $root"
        exit 1
    fi
    if ! has_componentize "$bin"; then
        say "$bin has no \`policy componentize\` command"
        exit 1
    fi
    echo "$bin"
}

install_toolchain
build_core
core="$plugins/target/wasm32-unknown-unknown/release/${name//-/_}.wasm"
out="$plugins/$name/$name.wasm"
bin=$(switchyard_bin)
"$bin" policy componentize "$core" -o "$out"
say "wrote $out ($(stat -c %s "$out") bytes; core module $(stat -c %s "$core") bytes)"
