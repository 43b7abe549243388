#!/usr/bin/env bash
# Builds latency-routing.wasm from policy.js with jco's QuickJS backend (npm package
# @bytecodealliance/jco, pinned in package.json/package-lock.json and installed into
# node_modules/ beside this script on first use). Idempotent; run from anywhere.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
wit="$here/../../wit/switchyard-policy@0.1.0"
cd "$here"

jco=node_modules/.bin/jco
want="$(node -p 'require("./package.json").devDependencies["@bytecodealliance/jco"]')"
if [[ ! -x "$jco" ]] || [[ "$("$jco" --version 2>/dev/null)" != "$want" ]]; then
    echo "installing @bytecodealliance/jco $want into $here/node_modules" >&2
    npm ci --no-audit --no-fund --loglevel=error
fi

# --backend quickjs: QuickJS (componentize-qjs) instead of StarlingMonkey: ~1.6 MB instead
#   of ~12 MB and much cheaper to instantiate, which matters since the host may create a
#   fresh instance per call.
# --backend-qjs-disable-async: plain synchronous exports (the WIT functions are sync).
# --backend-qjs-stub-wasi: the QuickJS runtime's WASI imports become trap stubs inside the
#   component, so it imports nothing but switchyard:policy/host (and the types-only
#   switchyard:policy/types instance). policy.js never touches WASI.
"$jco" componentize policy.js \
    --wit "$wit" --world-name policy \
    --backend quickjs --backend-qjs-disable-async --backend-qjs-stub-wasi \
    -o latency-routing.wasm
ls -l latency-routing.wasm
