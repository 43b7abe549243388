#!/usr/bin/env bash
# Builds size-placement.wasm from app.py with componentize-py (from PyPI, installed into
# .venv/ beside this script on first use). Idempotent; run from anywhere.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
wit="$here/../../wit/switchyard-policy@0.1.0"
version="0.25.1"
cd "$here"

python="${PYTHON:-python3}"
if [[ ! -x .venv/bin/componentize-py ]] \
    || [[ "$(.venv/bin/componentize-py --version 2>/dev/null)" != "componentize-py $version" ]]; then
    echo "installing componentize-py $version into $here/.venv" >&2
    if [[ ! -x .venv/bin/python ]]; then
        rm -rf .venv
        # Debian's python3 has no ensurepip without the python3-venv package: then make the
        # venv without pip and install into it with the system pip (`pip --python`, 22.3+).
        "$python" -m venv .venv 2>/dev/null || { rm -rf .venv; "$python" -m venv --without-pip .venv; }
    fi
    if .venv/bin/python -m pip --version >/dev/null 2>&1; then
        pip=(.venv/bin/python -m pip)
    else
        pip=("$python" -m pip --python .venv/bin/python)
    fi
    "${pip[@]}" install --quiet --disable-pip-version-check "componentize-py==$version"
fi

# The generated `wit_world` package (and its helpers) is what app.py imports; it is
# regenerated on every build so it always matches the WIT, and is git-ignored.
# `bindings` refuses to overwrite, so clear what it wrote last time.
rm -rf wit_world componentize_py_async_support componentize_py_types.py \
    componentize_py_runtime.pyi poll_loop.py
.venv/bin/componentize-py -d "$wit" -w policy bindings .
# --stub-wasi: the WASI imports the Python runtime would need become trap stubs inside the
# component (build-time pre-initialisation already ran what needs them), so it imports only
# switchyard:policy/host. app.py must then not use clocks, randomness, files or sockets at
# call time; drop the flag if a policy needs them (the host gives WASI guests an empty
# WasiCtx).
.venv/bin/componentize-py -d "$wit" -w policy componentize --stub-wasi app -o size-placement.wasm
ls -l size-placement.wasm
