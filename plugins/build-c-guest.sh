#!/usr/bin/env bash
# Builds one C policy into a component: build-c-guest.sh NAME
#
# Compiles plugins/NAME/*.c and writes plugins/NAME/NAME.wasm. Each C plugin's build.sh calls
# this; it is idempotent and needs nothing but Debian's packages and crates.io:
#   1. installs Debian's clang, lld (wasm-ld), wasi-libc and libclang-rt-dev-wasm32 when
#      missing;
#   2. builds the bindings generator of this workspace (c-bindgen: the wit-bindgen C
#      generator as a library, seconds to build where `cargo install wit-bindgen-cli` takes
#      minutes) and writes the world's bindings into plugins/target/c/NAME/ (policy.h,
#      policy.c, policy_component_type.o), regenerated on every build so they always match
#      the WIT;
#   3. compiles and links the core module (plugins/target/c/NAME/NAME.core.wasm);
#   4. turns it into a component with `switchyard policy componentize` ($SWITCHYARD_BIN, else
#      the repository's target/debug/switchyard, built with `cargo build -p switchyard` when
#      missing or too old to have the command).
set -euo pipefail

name=${1:?usage: build-c-guest.sh PLUGIN-NAME}
plugins=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$plugins/.." && pwd)
wit="$root/wit/switchyard-policy@0.1.0"
world=policy
packages=(clang lld wasi-libc libclang-rt-dev-wasm32)

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
    if ! apt-cache policy wasi-libc 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        say "apt-get update (wasi-libc is not in the package lists yet)"
        as_root apt-get update
    fi
    say "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}"
}

bindings() {
    say "generating the C bindings of $world"
    # A native tool built with whichever cargo is first in PATH, none of the wasm guests'
    # settings, and no debug info (it runs once per build; linking it is most of its cost).
    (cd "$plugins" &&
        env -u RUSTC -u RUSTDOC -u RUSTC_BOOTSTRAP -u RUSTFLAGS \
            CARGO_TARGET_DIR="$plugins/target" CARGO_PROFILE_DEV_DEBUG=0 \
            cargo build --locked -p c-bindgen)
    "$plugins/target/debug/c-bindgen" "$wit" "$world" "$gen"
}

build_core() {
    say "compiling the core module"
    # --target=wasm32-wasi with -mexec-model=reactor: a library instance (exports called
    # many times, no main) on Debian's wasi-libc. No stdio in policies: it would import WASI
    # preview 1, which needs an adapter module. -Werror on the policy's own code only: the
    # generated glue is wit-bindgen's business.
    local flags=(--target=wasm32-wasi -O2 -std=c11 -Wall -Wextra)
    clang "${flags[@]}" -c "$gen/$world.c" -o "$gen/$world.o"
    # A 64 KiB shadow stack, as the Rust guests have: wasm-ld's default, stated so that it
    # stays small (the module's memory then starts at two 64 KiB pages).
    # --strip-all drops the name section and wasi-libc's debug info (~50 KB); the
    # component-type section, which `policy componentize` reads, is kept.
    clang "${flags[@]}" -Werror -mexec-model=reactor -I "$gen" -o "$core" \
        "$plugins/$name"/*.c "$gen/$world.o" "$gen/${world}_component_type.o" \
        -Wl,-z,stack-size=65536 -Wl,--strip-all
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
    local bin="$root/target/debug/switchyard"
    if ! has_componentize "$bin"; then
        say "building switchyard (cargo build -p switchyard) for \`policy componentize\`"
        if ! (cd "$root" && env -u RUSTC -u RUSTDOC -u RUSTC_BOOTSTRAP -u CARGO_TARGET_DIR \
            cargo build -p switchyard >&2); then
            say "cargo build -p switchyard failed in $root"
            exit 1
        fi
        if ! has_componentize "$bin"; then
            say "$bin has no \`policy componentize\` command"
            exit 1
        fi
    fi
    echo "$bin"
}

gen="$plugins/target/c/$name"
core="$gen/$name.core.wasm"
out="$plugins/$name/$name.wasm"
mkdir -p "$gen"
install_toolchain
bindings
build_core
bin=$(switchyard_bin)
"$bin" policy componentize "$core" -o "$out"
say "wrote $out ($(stat -c %s "$out") bytes; core module $(stat -c %s "$core") bytes)"
