#!/usr/bin/env bash
# Builds every plugin folder that has a build.sh, whatever its language.
#   build-all.sh          build them all; stop at the first failure
#   build-all.sh --test   then run `switchyard policy check` and `policy test` on each
#                         NAME/NAME.wasm that has a CASES.toml beside it, and on a
#                         `switchyard policy new` scaffold in each language, and fail if
#                         any of them fails
# SWITCHYARD_BIN overrides the gateway binary (default: the repository's target/debug/switchyard).
set -euo pipefail

plugins=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
test=false
case "${1:-}" in
    --test) test=true ;;
    "") ;;
    *) echo "usage: build-all.sh [--test]" >&2; exit 2 ;;
esac

built=()
for script in "$plugins"/*/build.sh; do
    [ -e "$script" ] || continue
    dir=$(dirname "$script")
    name=$(basename "$dir")
    echo "== building $name" >&2
    start=$SECONDS
    (cd "$dir" && bash ./build.sh)
    echo "== $name built in $((SECONDS - start)) s" >&2
    built+=("$name")
done

if $test; then
    bin=${SWITCHYARD_BIN:-$plugins/../target/debug/switchyard}
    failed=()
    for name in "${built[@]}"; do
        wasm=$plugins/$name/$name.wasm
        if [ ! -f "$plugins/$name/CASES.toml" ] || [ ! -f "$wasm" ]; then
            continue
        fi
        echo "== testing $name" >&2
        if ! "$bin" policy check "$wasm" ||
            ! "$bin" policy test "$wasm" "$plugins/$name/CASES.toml"; then
            failed+=("$name")
        fi
    done
    # `switchyard policy new` in every language must build and pass its own cases. The
    # scaffolds borrow the tools the examples just installed (jco, componentize-py, the C
    # bindgen, the Rust guests' target directory with its std), so this takes seconds.
    scaffolds=$(mktemp -d)
    for lang in rust c js python; do
        echo "== scaffold $lang" >&2
        if ! "$bin" policy new "starter-$lang" --lang "$lang" --dir "$scaffolds/$lang" >/dev/null ||
            ! (cd "$scaffolds/$lang" &&
                SWITCHYARD_BIN=$bin CARGO_TARGET_DIR=$plugins/target \
                C_BINDGEN=$plugins/target/debug/c-bindgen \
                JCO=$plugins/latency-routing/node_modules/.bin/jco \
                COMPONENTIZE_PY=$plugins/size-placement/.venv/bin/componentize-py \
                ./build.sh >&2) ||
            ! "$bin" policy check "$scaffolds/$lang/starter-$lang.wasm" >/dev/null ||
            ! "$bin" policy test "$scaffolds/$lang/starter-$lang.wasm" "$scaffolds/$lang/CASES.toml"; then
            failed+=("scaffold-$lang")
        fi
    done
    rm -rf "$scaffolds"
    if [ ${#failed[@]} != 0 ]; then
        echo "== failed: ${failed[*]}" >&2
        exit 1
    fi
fi
