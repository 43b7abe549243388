#!/usr/bin/env bash
# Builds {{name}}.wasm beside this script with clang for wasm32-wasi (Debian packages
# clang, lld, wasi-libc, libclang-rt-dev-wasm32), then `switchyard policy componentize`.
#
# The C bindings of wit/policy.wit are written into bindings/ by a wit-bindgen C
# generator: C_BINDGEN names one that takes WIT-DIR WORLD OUT-DIR (Switchyard's
# plugins/c-bindgen), else `wit-bindgen c` (cargo install wit-bindgen-cli) is used.
# SWITCHYARD_BIN names the gateway binary (default: `switchyard` on PATH).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"
rm -rf bindings
mkdir -p bindings
if [[ -n "${C_BINDGEN:-}" ]]; then
    "$C_BINDGEN" wit policy bindings
elif command -v wit-bindgen >/dev/null; then
    wit-bindgen c wit --world policy --out-dir bindings
else
    echo "no C bindings generator: set C_BINDGEN, or cargo install wit-bindgen-cli" >&2
    exit 1
fi
flags=(--target=wasm32-wasi -O2 -std=c11 -Wall -Wextra)
clang "${flags[@]}" -c bindings/policy.c -o bindings/policy.o
clang "${flags[@]}" -Werror -mexec-model=reactor -I bindings -o bindings/core.wasm \
    {{crate}}.c bindings/policy.o bindings/policy_component_type.o -Wl,--strip-all
"${SWITCHYARD_BIN:-switchyard}" policy componentize bindings/core.wasm -o {{name}}.wasm
ls -l {{name}}.wasm
