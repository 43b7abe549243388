#!/usr/bin/env bash
# Builds prefix-placement.wasm beside this script: installs Debian's clang, wasm-ld and
# wasi-libc when missing, generates the C bindings with ../c-bindgen, compiles policy.c, then
# runs `switchyard policy componentize`. The steps are in ../build-c-guest.sh, shared by the
# C plugins.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec "$here/../build-c-guest.sh" prefix-placement
