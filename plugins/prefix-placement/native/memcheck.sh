#!/usr/bin/env bash
# Builds policy.c natively with memcheck.c (a stand-in for the host's side of the canonical
# ABI) and runs it under valgrind: fails on a leak, a double free or a use after free.
# Needs the bindings of a previous ../build.sh, a native C compiler and valgrind
# (`apt-get install valgrind`). Not part of the CI build.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
gen="$here/../../target/c/prefix-placement"
if [ ! -f "$gen/policy.h" ]; then
    echo "no bindings in $gen: run ../build.sh first" >&2
    exit 1
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cc=$(command -v gcc || command -v clang)
# The generated glue's wasm import/export attributes mean nothing natively: -w for it.
"$cc" -O1 -g -std=c11 -w -c "$gen/policy.c" -o "$out/glue.o"
"$cc" -O1 -g -std=c11 -Wall -Wextra -Werror -I "$gen" -o "$out/memcheck" \
    "$here/memcheck.c" "$here/../policy.c" "$out/glue.o"
valgrind -q --leak-check=full --errors-for-leak-kinds=all --error-exitcode=1 "$out/memcheck"
echo "memcheck: no leaks or memory errors" >&2
