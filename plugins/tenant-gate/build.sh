#!/usr/bin/env bash
# Builds tenant-gate.wasm beside this script: installs Debian's Rust and wasm-ld when
# missing, builds the core module, then runs `switchyard policy componentize`.
# The steps are in ../build-rust-guest.sh, shared by the Rust plugins.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec "$here/../build-rust-guest.sh" tenant-gate
