#!/usr/bin/env bash
# Installs the programs the benchmarks measure Switchyard against, from the registries
# only. Idempotent: a second run skips what is there.
#
#   s3s-fs      the s3s project's S3 server over a directory (the baseline S3 server)
#   s3s-proxy   the s3s project's own S3 proxy (the peer gateway)
#   rclone      Debian's rclone (the baseline copier for the mover benchmark)
#
# Binaries go to <repo>/.tools/bin (override with SWITCHYARD_TOOLS_DIR); rclone to
# /usr/bin through apt.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${SWITCHYARD_TOOLS_DIR:-$repo/.tools}"
s3s_version="0.14.1"

log() { echo "[install-bench-tools] $*"; }

mkdir -p "$tools/bin"
install_crate() {
    local crate="$1"
    shift
    if [[ -x "$tools/bin/$crate" ]] && "$tools/bin/$crate" --version 2>/dev/null | grep -q "$s3s_version"; then
        log "$crate $s3s_version already in $tools/bin"
        return
    fi
    log "cargo install $crate --version $s3s_version $*"
    cargo install --locked --root "$tools" "$crate" --version "$s3s_version" "$@"
}
install_crate s3s-fs --features binary
install_crate s3s-proxy

if ! command -v rclone >/dev/null; then
    log "apt-get install rclone"
    sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends rclone
fi
log "done: $(ls "$tools/bin" | tr '\n' ' ')"
