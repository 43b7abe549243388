#!/usr/bin/env bash
# The one test command: installs the test tools (scripts/install-test-tools.sh), puts them
# on PATH, then runs every test of the workspace. Extra arguments go to `cargo test`:
#
#   scripts/test.sh                      # everything
#   scripts/test.sh -p switchyard-tests  # one package
#   scripts/test.sh -- eject             # tests whose name contains "eject"
#
# Without default features: the gateway's jemalloc (host/Cargo.toml) is for releases and
# benchmarks; its C build would be four CPU-minutes of every fresh test build.
#
# SWITCHYARD_SKIP_INSTALL=1 skips the install step (offline, tools already there).
set -euo pipefail

# Both builds below take the same selection, so the second finds the first's artifacts.
cargo_test=(cargo test --workspace --no-default-features --locked)

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

# The Rust harness looks for azurite-blob in $SWITCHYARD_TOOLS_DIR/node_modules/.bin.
export SWITCHYARD_TOOLS_DIR="${SWITCHYARD_TOOLS_DIR:-$repo/.tools}"
if [[ "${SWITCHYARD_SKIP_INSTALL:-}" != 1 ]]; then
    scripts/install-test-tools.sh
fi

# Azurite, fake-gcs-server, pip's console scripts (aws, moto_server), and the Node.js
# jco runs on when the system's is too old. After the install: it may have brought python3.
source scripts/tools-env.sh

# The example policies (Rust, C, JavaScript, Python) are built from the registries and
# checked with `switchyard policy check` / `policy test`; tests/tests/plugins.rs then runs
# them inside the gateway. SWITCHYARD_SKIP_PLUGINS=1 skips the build (those tests fail).
if [[ "${SWITCHYARD_SKIP_PLUGINS:-}" != 1 ]]; then
    # The server binary the policy tools run. Built as `cargo test` below builds it: a
    # narrower build (`-p switchyard`) unifies other features on the shared dependencies
    # (tokio, hyper, wasmtime...), and `cargo test` then compiled all of them again.
    echo "==> ${cargo_test[*]} --all-targets --no-run (for policy componentize/check/test)"
    "${cargo_test[@]}" --all-targets --no-run
    echo "==> plugins/build-all.sh --test"
    # The policies are workspaces of their own: a lint wrapper set for ours (.ci/run) is not theirs.
    env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS plugins/build-all.sh --test
fi

echo "==> ${cargo_test[*]} $*"
exec "${cargo_test[@]}" "$@"
