#!/usr/bin/env bash
# Builds {{name}}.wasm beside this script with jco's QuickJS backend (npm installs jco into
# node_modules the first time; JCO names another jco binary).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"
jco=${JCO:-node_modules/.bin/jco}
if [[ ! -x "$jco" ]]; then
    npm install --no-audit --no-fund --loglevel=error
fi
"$jco" componentize policy.js --wit wit --world-name policy \
    --backend quickjs --backend-qjs-disable-async --backend-qjs-stub-wasi \
    -o {{name}}.wasm
ls -l {{name}}.wasm
