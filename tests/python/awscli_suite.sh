#!/usr/bin/env bash
# The AWS CLI (pip awscli, default settings) against a running S3 endpoint.
#
# Environment: S3_ENDPOINT (http://127.0.0.1:PORT), S3_BUCKET (an existing bucket),
# AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION (us-east-1).
# Optional: AWS (the aws command to run; default: aws on PATH), BIG_MIB (size of the
# large file, default 50).
#
# Works in a mktemp directory and under a fresh key prefix; removes both at the end.
# Exit status 0 when every step passed; otherwise the failing step is named.
set -euo pipefail

: "${S3_ENDPOINT:?S3_ENDPOINT is required}"
: "${S3_BUCKET:?S3_BUCKET is required}"
: "${AWS_ACCESS_KEY_ID:?AWS_ACCESS_KEY_ID is required}"
: "${AWS_SECRET_ACCESS_KEY:?AWS_SECRET_ACCESS_KEY is required}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export AWS_PAGER="" AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
AWS_BIN="${AWS:-aws}"
BIG_MIB="${BIG_MIB:-50}"

work="$(mktemp -d)"
prefix="awscli-suite-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
base="s3://$S3_BUCKET/$prefix"
step="setup"

# "command" so that a function can never shadow the binary
cli() { command "$AWS_BIN" --endpoint-url "$S3_ENDPOINT" "$@"; }
fail() { echo "FAIL [$step]: $*" >&2; exit 1; }
expect_eq() { [[ "$1" == "$2" ]] || fail "$3: expected '$2', got '$1'"; }
begin() { step="$1"; echo "--- $step"; }

cleanup() {
    local rc=$?
    set +e
    cli s3 rm --recursive --quiet "$base/" >/dev/null 2>&1
    rm -rf "$work"
    if ((rc != 0)); then
        echo "awscli_suite: FAILED at step '$step' (exit $rc)" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT

echo "$(command "$AWS_BIN" --version 2>&1) against $S3_ENDPOINT bucket $S3_BUCKET prefix $prefix/"

begin "s3 cp upload ${BIG_MIB} MiB"
head -c "$((BIG_MIB * 1024 * 1024))" /dev/urandom >"$work/big.bin"
cli s3 cp --no-progress "$work/big.bin" "$base/big.bin"

begin "s3 ls"
listing="$(cli s3 ls "$base/")"
echo "$listing"
size="$(awk '$4 == "big.bin" { print $3 }' <<<"$listing")"
expect_eq "$size" "$((BIG_MIB * 1024 * 1024))" "size listed for big.bin"
cli s3 ls "s3://$S3_BUCKET/" | grep -q "PRE $prefix/" || fail "bucket listing lacks PRE $prefix/"

begin "s3 cp download ${BIG_MIB} MiB"
cli s3 cp --no-progress "$base/big.bin" "$work/big.down"
cmp "$work/big.bin" "$work/big.down" || fail "downloaded file differs from the uploaded one"

begin "s3 cp s3 -> s3 copy"
cli s3 cp --no-progress "$base/big.bin" "$base/copy/big-copy.bin"
cli s3 cp --no-progress "$base/copy/big-copy.bin" "$work/big.copy"
cmp "$work/big.bin" "$work/big.copy" || fail "server-side copy differs from the original"

begin "s3 cp small file with content type and metadata"
printf 'small file\n' >"$work/small.txt"
cli s3 cp --no-progress --content-type "text/x-small" --metadata "origin=awscli,n=1" \
    "$work/small.txt" "$base/small.txt"
head_json="$(cli s3api head-object --bucket "$S3_BUCKET" --key "$prefix/small.txt" \
    --query '[ContentType, Metadata.origin, Metadata.n, ContentLength]' --output text)"
expect_eq "$head_json" $'text/x-small\tawscli\t1\t11' "head-object after s3 cp --metadata"
cli s3 cp --no-progress "$base/small.txt" - >"$work/small.out"
cmp "$work/small.txt" "$work/small.out" || fail "s3 cp to stdout differs"
printf 'from stdin\n' | cli s3 cp --no-progress - "$base/stdin.txt"
expect_eq "$(cli s3 cp --no-progress "$base/stdin.txt" -)" "from stdin" "upload from stdin"

begin "s3 rm"
cli s3 rm "$base/copy/big-copy.bin"
if cli s3api head-object --bucket "$S3_BUCKET" --key "$prefix/copy/big-copy.bin" >/dev/null 2>&1; then
    fail "object still there after s3 rm"
fi

begin "s3api put-object / head-object / get-object with metadata"
printf 'api body %s\n' "$prefix" >"$work/api.txt"
cli s3api put-object --bucket "$S3_BUCKET" --key "$prefix/api/obj.txt" --body "$work/api.txt" \
    --content-type "text/plain; charset=utf-8" --cache-control "max-age=60" \
    --content-disposition 'inline; filename="obj.txt"' --content-language "fr" \
    --metadata "project=switchyard,stage=test" >/dev/null
got="$(cli s3api head-object --bucket "$S3_BUCKET" --key "$prefix/api/obj.txt" \
    --query '[ContentType, CacheControl, ContentDisposition, ContentLanguage, Metadata.project, Metadata.stage]' \
    --output text)"
expect_eq "$got" $'text/plain; charset=utf-8\tmax-age=60\tinline; filename="obj.txt"\tfr\tswitchyard\ttest' \
    "head-object attributes"
got="$(cli s3api get-object --bucket "$S3_BUCKET" --key "$prefix/api/obj.txt" "$work/api.out" \
    --query '[ContentType, Metadata.project, ContentLength]' --output text)"
expect_eq "$got" $'text/plain; charset=utf-8\tswitchyard\t'"$(stat -c %s "$work/api.txt")" "get-object attributes"
cmp "$work/api.txt" "$work/api.out" || fail "get-object body differs"
got="$(cli s3api get-object --bucket "$S3_BUCKET" --key "$prefix/api/obj.txt" --range bytes=0-2 \
    "$work/api.range" --query ContentRange --output text)"
expect_eq "$(cat "$work/api.range")" "api" "ranged get-object body"
expect_eq "$got" "bytes 0-2/$(stat -c %s "$work/api.txt")" "ranged get-object ContentRange"
if cli s3api get-object --bucket "$S3_BUCKET" --key "$prefix/api/missing" "$work/missing" 2>"$work/err"; then
    fail "get-object of a missing key succeeded"
fi
grep -q "NoSuchKey" "$work/err" || fail "get-object of a missing key: $(cat "$work/err")"

begin "s3 sync up"
mkdir -p "$work/tree/sub/deeper" "$work/tree/empty-dir"
for i in 1 2 3; do printf 'file %s\n' "$i" >"$work/tree/f$i.txt"; done
printf 'nested\n' >"$work/tree/sub/n.txt"
head -c 100000 /dev/urandom >"$work/tree/sub/deeper/blob.bin"
# Listings give LastModified to the second; files older than that make the re-sync
# below deterministic (sync uploads a file whose size differs or whose mtime is newer).
find "$work/tree" -type f -exec touch -d "2020-01-01 00:00:00" {} +
cli s3 sync --no-progress "$work/tree" "$base/tree"
listed="$(cli s3 ls --recursive "$base/tree/" | awk '{ print $4 }' | sed "s#^$prefix/tree/##" | sort | tr '\n' ' ')"
expect_eq "$listed" "f1.txt f2.txt f3.txt sub/deeper/blob.bin sub/n.txt " "keys after sync"

begin "s3 sync again uploads nothing"
out="$(cli s3 sync --no-progress "$work/tree" "$base/tree")"
expect_eq "$out" "" "second sync output"

begin "s3 sync changed file and --delete"
printf 'file 2, changed and longer\n' >"$work/tree/f2.txt"
rm "$work/tree/f3.txt"
out="$(cli s3 sync --no-progress --delete "$work/tree" "$base/tree")"
echo "$out"
grep -q "upload: .*f2.txt" <<<"$out" || fail "sync did not upload the changed f2.txt"
grep -q "delete: .*f3.txt" <<<"$out" || fail "sync --delete did not delete f3.txt"

begin "s3 sync down"
cli s3 sync --no-progress "$base/tree" "$work/tree-down"
diff -r "$work/tree" "$work/tree-down" --exclude empty-dir || fail "synced-down tree differs"

begin "s3 rm --recursive"
cli s3 rm --recursive "$base/"
left="$(cli s3 ls --recursive "$base/" || true)"
expect_eq "$left" "" "keys left after rm --recursive"

step="done"
echo "awscli_suite: all steps passed"
