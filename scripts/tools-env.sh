# Sourced, not run: puts the tools scripts/install-test-tools.sh installed first on PATH,
# so that every later step finds the same ones (scripts/test.sh and .ci/run source it):
#   $SWITCHYARD_TOOLS_DIR/bin                fake-gcs-server
#   $SWITCHYARD_TOOLS_DIR/node/node_modules/.bin
#                                            Node.js and npm from the npm registry, when the
#                                            system's Node is too old for jco (Debian 12's 18)
#   $SWITCHYARD_TOOLS_DIR/node_modules/.bin  azurite-blob
#   Python's scripts directory               aws, moto_server (pip's console scripts)
# SWITCHYARD_TOOLS_DIR defaults to <repo>/.tools, as in install-test-tools.sh; the Rust
# harness reads it to find azurite-blob.
# shellcheck shell=bash
export SWITCHYARD_TOOLS_DIR="${SWITCHYARD_TOOLS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools}"
PATH="$SWITCHYARD_TOOLS_DIR/bin:$SWITCHYARD_TOOLS_DIR/node_modules/.bin:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
if [[ -x "$SWITCHYARD_TOOLS_DIR/node/node_modules/.bin/node" ]]; then
    PATH="$SWITCHYARD_TOOLS_DIR/node/node_modules/.bin:$PATH"
fi
export PATH
