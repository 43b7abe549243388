#!/usr/bin/env bash
# Builds {{name}}.wasm beside this script with componentize-py (installed into .venv the
# first time; COMPONENTIZE_PY names another componentize-py binary).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"
cpy=${COMPONENTIZE_PY:-.venv/bin/componentize-py}
if [[ ! -x "$cpy" ]]; then
    python3 -m venv .venv
    .venv/bin/python -m pip install --quiet --disable-pip-version-check componentize-py==0.25.1
fi
rm -rf wit_world componentize_py_async_support componentize_py_types.py componentize_py_runtime.pyi poll_loop.py
"$cpy" -d wit -w policy bindings .
"$cpy" -d wit -w policy componentize --stub-wasi app -o {{name}}.wasm
ls -l {{name}}.wasm
