#!/usr/bin/env python3
"""boto3 against a running S3 endpoint (the Switchyard gateway), with boto3's default
settings: only the endpoint is set (and SigV4 for presigned URLs).

Environment:
  S3_ENDPOINT            http://127.0.0.1:PORT (required)
  S3_BUCKET              an existing bucket (required)
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION (us-east-1)
  S3_ACL_BUCKET          a bucket whose object ownership enables ACLs (ObjectWriter), for
                         the ACL checks that need one (optional)
  SKIP_AUTH_CHECKS=1     skip the checks that need real signature checking (for servers
                         such as moto that accept any signature)
  SKIP_CHECKS=a,b        skip checks by name; ONLY_CHECKS=a,b runs only those

Every object is written under a fresh prefix and removed at the end. Exit status 0 when
every check passed, 1 otherwise (each failure is printed with what differed).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import os
import sys
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import boto3  # noqa: E402
import botocore  # noqa: E402
from boto3.s3.transfer import TransferConfig  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

from common import CheckFailed, Runner, check, env, env_flag, eq, same_bytes  # noqa: E402

MiB = 1024 * 1024

ENDPOINT = env("S3_ENDPOINT")
BUCKET = env("S3_BUCKET")
ACL_BUCKET = os.environ.get("S3_ACL_BUCKET")
env("AWS_ACCESS_KEY_ID")
env("AWS_SECRET_ACCESS_KEY")
REGION = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
PREFIX = f"boto3-suite-{uuid.uuid4().hex[:12]}/"

s3 = boto3.client("s3", endpoint_url=ENDPOINT, region_name=REGION)
s3_presign = boto3.client(
    "s3", endpoint_url=ENDPOINT, region_name=REGION, config=Config(signature_version="s3v4")
)


def key(name: str) -> str:
    return PREFIX + name


def md5_etag(data: bytes) -> str:
    """The ETag S3 gives an object written in one request: its quoted hex MD5."""
    return '"' + hashlib.md5(data).hexdigest() + '"'


def multipart_etag(parts) -> str:
    """The ETag S3 gives a multipart upload: the MD5 of the parts' MD5s, '-', their count
    (what SDKs that check ETags, and sync tools, compute)."""
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    return f'"{digest}-{len(parts)}"'


def body_of(resp) -> bytes:
    return resp["Body"].read()


def expect_error(fn, status: int, codes: str | tuple[str, ...], what: str) -> ClientError:
    """Run fn and require a ClientError with this HTTP status and one of these codes."""
    codes = (codes,) if isinstance(codes, str) else codes
    try:
        fn()
    except ClientError as e:
        got_status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        got_code = e.response.get("Error", {}).get("Code")
        if got_status != status or got_code not in codes:
            raise CheckFailed(
                f"{what}: expected HTTP {status} {'/'.join(codes)}, got HTTP {got_status} {got_code}"
                f" ({e.response.get('Error', {}).get('Message')})"
            )
        return e
    raise CheckFailed(f"{what}: expected HTTP {status} {'/'.join(codes)}, but the call succeeded")


def random_bytes(n: int) -> bytes:
    return os.urandom(n)


def http_request(method: str, url: str, body: bytes | None = None, headers=None):
    """One plain HTTP request (no SDK), returning (status, headers, body)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=60)
    try:
        path = u.path + ("?" + u.query if u.query else "")
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------
# object attributes and metadata

ATTRS = {
    "ContentType": "text/x-switchyard; charset=utf-8",
    "CacheControl": "max-age=3600, must-revalidate",
    "ContentDisposition": 'attachment; filename="report 1.txt"',
    "ContentLanguage": "de-CH",
}
META = {"color": "blue", "owner": "team-a", "note": "two words"}


def check_attrs(resp, expected: dict, what: str) -> None:
    for name, value in expected.items():
        eq(resp.get(name), value, f"{what} {name}")


def t_put_get_head_attributes():
    data = b"hello switchyard\n" * 100
    k = key("attrs/plain.txt")
    put = s3.put_object(Bucket=BUCKET, Key=k, Body=data, Metadata=META, **ATTRS)
    eq(put.get("ETag"), md5_etag(data), "put_object ETag (the content's MD5)")
    got = s3.get_object(Bucket=BUCKET, Key=k)
    same_bytes(body_of(got), data, "get_object")
    eq(got["ContentLength"], len(data), "get_object ContentLength")
    check_attrs(got, ATTRS, "get_object")
    eq(got["Metadata"], META, "get_object Metadata")
    eq(got["ETag"], put["ETag"], "get_object ETag vs put ETag")
    head = s3.head_object(Bucket=BUCKET, Key=k)
    eq(head["ContentLength"], len(data), "head_object ContentLength")
    check_attrs(head, ATTRS, "head_object")
    eq(head["Metadata"], META, "head_object Metadata")
    eq(head["ETag"], put["ETag"], "head_object ETag vs put ETag")
    check(head.get("LastModified") is not None, "head_object has no LastModified")


def t_content_encoding_gzip():
    # Stored bytes must come back as stored: botocore does not decode Content-Encoding,
    # so the raw gzip bytes are what get_object returns.
    plain = b"compress me please " * 500
    data = gzip.compress(plain, mtime=0)
    k = key("attrs/page.html.gz")
    s3.put_object(Bucket=BUCKET, Key=k, Body=data, ContentType="text/html", ContentEncoding="gzip")
    got = s3.get_object(Bucket=BUCKET, Key=k)
    raw = body_of(got)
    same_bytes(raw, data, "get_object of a gzip-encoded object (raw bytes)")
    eq(gzip.decompress(raw), plain, "decompressed body")
    eq(got.get("ContentEncoding"), "gzip", "get_object ContentEncoding")
    eq(got.get("ContentType"), "text/html", "get_object ContentType")
    head = s3.head_object(Bucket=BUCKET, Key=k)
    eq(head.get("ContentEncoding"), "gzip", "head_object ContentEncoding")


def t_empty_object():
    k = key("empty")
    s3.put_object(Bucket=BUCKET, Key=k, Body=b"")
    got = s3.get_object(Bucket=BUCKET, Key=k)
    eq(body_of(got), b"", "empty object body")
    eq(s3.head_object(Bucket=BUCKET, Key=k)["ContentLength"], 0, "empty object ContentLength")


def t_odd_key_names():
    for name in ["dir with space/file (1).txt", "unicode/é-ß-日本.txt", "sym/a+b=c&d;e,f@g$h!.bin",
                 "tilde~/x*y'z"]:
        k = key(name)
        data = name.encode() * 3
        s3.put_object(Bucket=BUCKET, Key=k, Body=data)
        same_bytes(body_of(s3.get_object(Bucket=BUCKET, Key=k)), data, f"get_object {k!r}")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=k).get("Contents", [])]
        eq(keys, [k], f"list_objects_v2 Prefix={k!r}")


def t_checksum_sha256():
    data = random_bytes(100_000)
    k = key("checksum/sha256")
    s3.put_object(Bucket=BUCKET, Key=k, Body=data, ChecksumAlgorithm="SHA256")
    same_bytes(body_of(s3.get_object(Bucket=BUCKET, Key=k)), data, "get_object after SHA256 put")
    # Kept with the object: answered with checksum mode (boto3 then checks the body
    # against it), not for a range.
    import base64
    import hashlib
    want = base64.b64encode(hashlib.sha256(data).digest()).decode()
    head = s3.head_object(Bucket=BUCKET, Key=k, ChecksumMode="ENABLED")
    eq(head.get("ChecksumSHA256"), want, "head_object ChecksumSHA256")
    eq(head.get("ChecksumType"), "FULL_OBJECT", "head_object ChecksumType")
    got = s3.get_object(Bucket=BUCKET, Key=k, ChecksumMode="ENABLED")
    eq(got.get("ChecksumSHA256"), want, "get_object ChecksumSHA256")
    same_bytes(body_of(got), data, "get_object with checksum mode")
    got = s3.get_object(Bucket=BUCKET, Key=k, Range="bytes=0-99", ChecksumMode="ENABLED")
    eq(got.get("ChecksumSHA256"), None, "ranged get_object ChecksumSHA256")
    same_bytes(body_of(got), data[:100], "ranged get_object with checksum mode")


def t_range_get():
    data = bytes(range(256)) * 40  # 10240 bytes
    k = key("range/obj")
    s3.put_object(Bucket=BUCKET, Key=k, Body=data)
    got = s3.get_object(Bucket=BUCKET, Key=k, Range="bytes=100-199")
    eq(got["ResponseMetadata"]["HTTPStatusCode"], 206, "ranged get status")
    same_bytes(body_of(got), data[100:200], "bytes=100-199")
    eq(got["ContentLength"], 100, "ranged get ContentLength")
    eq(got.get("ContentRange"), f"bytes 100-199/{len(data)}", "ranged get ContentRange")
    got = s3.get_object(Bucket=BUCKET, Key=k, Range="bytes=-10")
    same_bytes(body_of(got), data[-10:], "bytes=-10 (suffix)")
    eq(got.get("ContentRange"), f"bytes {len(data) - 10}-{len(data) - 1}/{len(data)}", "suffix ContentRange")
    got = s3.get_object(Bucket=BUCKET, Key=k, Range=f"bytes={len(data) - 5}-")
    same_bytes(body_of(got), data[-5:], "open-ended range")
    got = s3.get_object(Bucket=BUCKET, Key=k, Range=f"bytes=10000-{len(data) + 1000}")
    same_bytes(body_of(got), data[10000:], "range past the end is clamped")
    expect_error(lambda: s3.get_object(Bucket=BUCKET, Key=k, Range=f"bytes={len(data) + 10}-"),
                 416, "InvalidRange", "range starting past the end")


# ---------------------------------------------------------------------------------------
# listings

LIST_KEYS = ["a/1", "a/2", "a/b/3", "b/1", "c", "d", "e/f"]


def t_list_objects_v2_prefix_delimiter():
    base = key("list/")
    for k in LIST_KEYS:
        s3.put_object(Bucket=BUCKET, Key=base + k, Body=k.encode())
    resp = s3.list_objects_v2(Bucket=BUCKET, Prefix=base)
    eq([o["Key"] for o in resp.get("Contents", [])], sorted(base + k for k in LIST_KEYS), "all keys")
    eq(resp.get("KeyCount"), len(LIST_KEYS), "KeyCount")
    eq(resp.get("IsTruncated"), False, "IsTruncated")
    sizes = {o["Key"]: o["Size"] for o in resp["Contents"]}
    eq(sizes[base + "a/b/3"], len(b"a/b/3"), "listed Size")

    resp = s3.list_objects_v2(Bucket=BUCKET, Prefix=base, Delimiter="/")
    eq([o["Key"] for o in resp.get("Contents", [])], [base + "c", base + "d"], "Contents with Delimiter=/")
    eq([p["Prefix"] for p in resp.get("CommonPrefixes", [])], [base + "a/", base + "b/", base + "e/"],
       "CommonPrefixes with Delimiter=/")
    eq(resp.get("Delimiter"), "/", "Delimiter echoed")

    resp = s3.list_objects_v2(Bucket=BUCKET, Prefix=base + "a/", Delimiter="/")
    eq([o["Key"] for o in resp.get("Contents", [])], [base + "a/1", base + "a/2"], "Contents under a/")
    eq([p["Prefix"] for p in resp.get("CommonPrefixes", [])], [base + "a/b/"], "CommonPrefixes under a/")

    resp = s3.list_objects_v2(Bucket=BUCKET, Prefix=base + "zzz")
    eq(resp.get("KeyCount"), 0, "KeyCount for a prefix with no keys")
    eq(resp.get("Contents", []), [], "Contents for a prefix with no keys")

    resp = s3.list_objects_v2(Bucket=BUCKET, Prefix=base, StartAfter=base + "b/1")
    eq([o["Key"] for o in resp.get("Contents", [])], [base + "c", base + "d", base + "e/f"], "StartAfter")


def t_folder_markers():
    """Keys ending in '/' as the AWS console's "Create folder" writes them: keys like any
    other, listed as the common prefix they name, deleted without what is under them."""
    base = key("folders/")
    put = s3.put_object(Bucket=BUCKET, Key=base + "docs/", Body=b"", ContentType="application/x-directory")
    eq(put["ETag"], md5_etag(b""), "marker ETag")
    head = s3.head_object(Bucket=BUCKET, Key=base + "docs/")
    eq(head["ContentLength"], 0, "marker ContentLength")
    eq(head.get("ContentType"), "application/x-directory", "marker ContentType")
    resp = s3.list_objects_v2(Bucket=BUCKET, Prefix=base, Delimiter="/")
    eq([p["Prefix"] for p in resp.get("CommonPrefixes", [])], [base + "docs/"], "marker alone as CommonPrefix")
    eq(resp.get("Contents", []), [], "no Contents beside the marker's CommonPrefix")
    s3.put_object(Bucket=BUCKET, Key=base + "docs/a.txt", Body=b"a")
    resp = s3.list_objects_v2(Bucket=BUCKET, Prefix=base, Delimiter="/")
    eq([p["Prefix"] for p in resp.get("CommonPrefixes", [])], [base + "docs/"], "one CommonPrefix for marker and key")
    resp = s3.list_objects_v2(Bucket=BUCKET, Prefix=base + "docs/", Delimiter="/")
    eq([o["Key"] for o in resp.get("Contents", [])], [base + "docs/", base + "docs/a.txt"],
       "a listing of the folder starts with its marker")
    eq(resp["Contents"][0]["ETag"], md5_etag(b""), "listed marker ETag")
    s3.delete_object(Bucket=BUCKET, Key=base + "docs/")
    resp = s3.list_objects_v2(Bucket=BUCKET, Prefix=base)
    eq([o["Key"] for o in resp.get("Contents", [])], [base + "docs/a.txt"], "deleting the marker keeps the key under it")
    s3.put_object(Bucket=BUCKET, Key=base + "docs/", Body=b"")
    s3.delete_object(Bucket=BUCKET, Key=base + "docs/a.txt")
    resp = s3.list_objects_v2(Bucket=BUCKET, Prefix=base)
    eq([o["Key"] for o in resp.get("Contents", [])], [base + "docs/"], "deleting the last key keeps the marker")
    s3.delete_object(Bucket=BUCKET, Key=base + "docs/")


def t_etags_are_md5s():
    """ETags as S3 gives them: the MD5 for a single PUT (also one larger than the gateway's
    part size), MD5 of part MD5s and part count for a multipart upload; the same in
    HEAD, GET and listings."""
    for name, data in [("etag/small", random_bytes(1000)), ("etag/large", random_bytes(9 * MiB))]:
        k = key(name)
        put = s3.put_object(Bucket=BUCKET, Key=k, Body=data)
        eq(put["ETag"], md5_etag(data), f"{name}: put_object ETag")
        eq(s3.head_object(Bucket=BUCKET, Key=k)["ETag"], md5_etag(data), f"{name}: head_object ETag")
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=k)["Contents"]
        eq(listed[0]["ETag"], md5_etag(data), f"{name}: listed ETag")
    k = key("etag/multipart")
    parts = [random_bytes(5 * MiB), random_bytes(100)]
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key=k)["UploadId"]
    done_parts = []
    for n, p in enumerate(parts, start=1):
        r = s3.upload_part(Bucket=BUCKET, Key=k, UploadId=upload_id, PartNumber=n, Body=p)
        eq(r["ETag"], md5_etag(p), f"part {n} ETag")
        done_parts.append({"PartNumber": n, "ETag": r["ETag"]})
    done = s3.complete_multipart_upload(Bucket=BUCKET, Key=k, UploadId=upload_id,
                                        MultipartUpload={"Parts": done_parts})
    eq(done["ETag"], multipart_etag(parts), "complete_multipart_upload ETag")
    eq(s3.head_object(Bucket=BUCKET, Key=k)["ETag"], multipart_etag(parts), "multipart head_object ETag")
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=k)["Contents"]
    eq(listed[0]["ETag"], multipart_etag(parts), "multipart listed ETag")
    attrs = s3.get_object_attributes(Bucket=BUCKET, Key=k,
                                     ObjectAttributes=["ETag", "ObjectSize", "ObjectParts", "StorageClass"])
    eq(attrs.get("ETag", "").strip('"'), multipart_etag(parts).strip('"'), "get_object_attributes ETag")
    eq(attrs.get("ObjectSize"), sum(len(p) for p in parts), "get_object_attributes ObjectSize")
    eq(attrs.get("ObjectParts", {}).get("TotalPartsCount"), 2, "get_object_attributes TotalPartsCount")
    eq(attrs.get("StorageClass"), "STANDARD", "get_object_attributes StorageClass")
    expect_error(lambda: s3.get_object_attributes(Bucket=BUCKET, Key=key("etag/none"),
                                                   ObjectAttributes=["ETag"]),
                 404, "NoSuchKey", "get_object_attributes of a missing key")


def t_list_objects_v2_max_keys_and_paginator():
    base = key("page/")
    keys = [f"{base}k{i:03d}" for i in range(25)]
    for k in keys:
        s3.put_object(Bucket=BUCKET, Key=k, Body=b"x")
    resp = s3.list_objects_v2(Bucket=BUCKET, Prefix=base, MaxKeys=10)
    eq(resp.get("IsTruncated"), True, "IsTruncated with MaxKeys=10 over 25 keys")
    eq(resp.get("KeyCount"), 10, "KeyCount with MaxKeys=10")
    eq(resp.get("MaxKeys"), 10, "MaxKeys echoed")
    check(resp.get("NextContinuationToken"), "no NextContinuationToken on a truncated listing")
    eq([o["Key"] for o in resp["Contents"]], keys[:10], "first page")
    resp2 = s3.list_objects_v2(Bucket=BUCKET, Prefix=base, MaxKeys=10,
                               ContinuationToken=resp["NextContinuationToken"])
    eq([o["Key"] for o in resp2["Contents"]], keys[10:20], "second page via ContinuationToken")

    pages = list(s3.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix=base, PaginationConfig={"PageSize": 10}))
    eq([len(p.get("Contents", [])) for p in pages], [10, 10, 5], "paginator page sizes")
    eq([o["Key"] for p in pages for o in p.get("Contents", [])], keys, "paginator keys")
    eq(pages[-1].get("IsTruncated"), False, "last page IsTruncated")

    # paginating with a delimiter: common prefixes count toward MaxKeys, none repeated
    for d in range(3):
        for i in range(3):
            s3.put_object(Bucket=BUCKET, Key=f"{base}dir{d}/f{i}", Body=b"y")
    pages = list(s3.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix=base, Delimiter="/", PaginationConfig={"PageSize": 4}))
    got_keys = [o["Key"] for p in pages for o in p.get("Contents", [])]
    got_prefixes = [c["Prefix"] for p in pages for c in p.get("CommonPrefixes", [])]
    eq(got_keys, keys, "paginated keys with delimiter")
    eq(got_prefixes, [f"{base}dir{d}/" for d in range(3)], "paginated common prefixes")
    for p in pages:
        check(len(p.get("Contents", [])) + len(p.get("CommonPrefixes", [])) <= 4,
              "a page holds more than MaxKeys keys and prefixes")


def t_list_objects_v1_marker():
    base = key("v1/")
    keys = [f"{base}k{i:02d}" for i in range(12)]
    for k in keys:
        s3.put_object(Bucket=BUCKET, Key=k, Body=b"z")
    resp = s3.list_objects(Bucket=BUCKET, Prefix=base)
    eq([o["Key"] for o in resp.get("Contents", [])], keys, "list_objects all keys")
    eq(resp.get("IsTruncated"), False, "list_objects IsTruncated")
    resp = s3.list_objects(Bucket=BUCKET, Prefix=base, Marker=keys[4])
    eq([o["Key"] for o in resp.get("Contents", [])], keys[5:], "list_objects with Marker")
    resp = s3.list_objects(Bucket=BUCKET, Prefix=base, MaxKeys=5)
    eq(resp.get("IsTruncated"), True, "list_objects IsTruncated with MaxKeys=5")
    eq([o["Key"] for o in resp["Contents"]], keys[:5], "list_objects first page")
    # Manual v1 pagination with the last key as the next marker.
    seen, marker = [], ""
    for _ in range(10):
        resp = s3.list_objects(Bucket=BUCKET, Prefix=base, MaxKeys=5, Marker=marker)
        page = [o["Key"] for o in resp.get("Contents", [])]
        seen += page
        if not resp.get("IsTruncated"):
            break
        marker = resp.get("NextMarker") or page[-1]
    eq(seen, keys, "list_objects paged by Marker")
    pages = list(s3.get_paginator("list_objects").paginate(
        Bucket=BUCKET, Prefix=base, PaginationConfig={"PageSize": 5}))
    eq([o["Key"] for p in pages for o in p.get("Contents", [])], keys, "list_objects paginator")
    resp = s3.list_objects(Bucket=BUCKET, Prefix=base, Delimiter="/", MaxKeys=100)
    eq([o["Key"] for o in resp.get("Contents", [])], keys, "list_objects with Delimiter")
    resp = s3.list_objects(Bucket=BUCKET, Prefix=base, Marker=keys[4])
    eq(resp.get("Marker"), keys[4], "Marker echoed in the response")


# ---------------------------------------------------------------------------------------
# copy and delete

def t_copy_object_copy_directive():
    src, dst = key("copy/src"), key("copy/dst-copy")
    data = random_bytes(4096)
    put = s3.put_object(Bucket=BUCKET, Key=src, Body=data, Metadata=META, **ATTRS)
    resp = s3.copy_object(Bucket=BUCKET, Key=dst, CopySource={"Bucket": BUCKET, "Key": src})
    check(resp.get("CopyObjectResult", {}).get("ETag"), "copy_object returned no ETag")
    got = s3.get_object(Bucket=BUCKET, Key=dst)
    same_bytes(body_of(got), data, "copied object")
    check_attrs(got, ATTRS, "copy (COPY directive)")
    eq(got["Metadata"], META, "copy (COPY directive) Metadata")
    same_bytes(body_of(s3.get_object(Bucket=BUCKET, Key=src)), data, "source after copy")
    eq(s3.head_object(Bucket=BUCKET, Key=src)["ETag"], put["ETag"], "source ETag after copy")


def t_copy_object_replace_directive():
    src, dst = key("copy/src2"), key("copy/dst-replace")
    data = random_bytes(2048)
    s3.put_object(Bucket=BUCKET, Key=src, Body=data, Metadata=META, **ATTRS)
    new_meta = {"color": "red", "fresh": "yes"}
    s3.copy_object(Bucket=BUCKET, Key=dst, CopySource={"Bucket": BUCKET, "Key": src},
                   MetadataDirective="REPLACE", Metadata=new_meta, ContentType="application/json",
                   CacheControl="no-cache")
    got = s3.get_object(Bucket=BUCKET, Key=dst)
    same_bytes(body_of(got), data, "copied object (REPLACE)")
    eq(got["Metadata"], new_meta, "copy (REPLACE) Metadata")
    eq(got.get("ContentType"), "application/json", "copy (REPLACE) ContentType")
    eq(got.get("CacheControl"), "no-cache", "copy (REPLACE) CacheControl")
    eq(got.get("ContentDisposition"), None, "copy (REPLACE) drops ContentDisposition")
    # in-place copy that only changes metadata
    s3.copy_object(Bucket=BUCKET, Key=src, CopySource={"Bucket": BUCKET, "Key": src},
                   MetadataDirective="REPLACE", Metadata={"v": "2"}, ContentType="text/plain")
    head = s3.head_object(Bucket=BUCKET, Key=src)
    eq(head["Metadata"], {"v": "2"}, "in-place copy Metadata")
    eq(head.get("ContentType"), "text/plain", "in-place copy ContentType")
    same_bytes(body_of(s3.get_object(Bucket=BUCKET, Key=src)), data, "in-place copy body")


def t_copy_missing_source():
    expect_error(lambda: s3.copy_object(Bucket=BUCKET, Key=key("copy/none-dst"),
                                        CopySource={"Bucket": BUCKET, "Key": key("copy/none")}),
                 404, "NoSuchKey", "copy_object from a missing source")


def t_delete_object():
    k = key("del/one")
    s3.put_object(Bucket=BUCKET, Key=k, Body=b"bye")
    resp = s3.delete_object(Bucket=BUCKET, Key=k)
    eq(resp["ResponseMetadata"]["HTTPStatusCode"], 204, "delete_object status")
    expect_error(lambda: s3.head_object(Bucket=BUCKET, Key=k), 404, ("404", "NoSuchKey"), "head after delete")
    # deleting a missing key is not an error
    resp = s3.delete_object(Bucket=BUCKET, Key=k)
    eq(resp["ResponseMetadata"]["HTTPStatusCode"], 204, "delete_object of a missing key status")


def t_delete_objects():
    keys = [key(f"del/many/{i}") for i in range(5)]
    for k in keys:
        s3.put_object(Bucket=BUCKET, Key=k, Body=b"x")
    missing = key("del/many/missing")
    resp = s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys + [missing]]})
    eq(resp.get("Errors", []), [], "delete_objects Errors")
    eq(sorted(d["Key"] for d in resp.get("Deleted", [])), sorted(keys + [missing]), "delete_objects Deleted")
    left = s3.list_objects_v2(Bucket=BUCKET, Prefix=key("del/many/")).get("Contents", [])
    eq(left, [], "keys left after delete_objects")
    # Quiet mode reports nothing on success
    s3.put_object(Bucket=BUCKET, Key=keys[0], Body=b"x")
    resp = s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": keys[0]}], "Quiet": True})
    eq(resp.get("Deleted", []), [], "delete_objects Quiet Deleted")
    eq(resp.get("Errors", []), [], "delete_objects Quiet Errors")


# ---------------------------------------------------------------------------------------
# multipart

def t_multipart_upload_fileobj():
    data = random_bytes(20 * MiB)
    k = key("mpu/transfer-20MiB")
    cfg = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB)
    s3.upload_fileobj(io.BytesIO(data), BUCKET, k, Config=cfg,
                      ExtraArgs={"ContentType": "application/x-test", "Metadata": {"kind": "mpu"}})
    head = s3.head_object(Bucket=BUCKET, Key=k)
    eq(head["ContentLength"], len(data), "multipart object ContentLength")
    eq(head.get("ContentType"), "application/x-test", "multipart object ContentType")
    eq(head["Metadata"], {"kind": "mpu"}, "multipart object Metadata")
    got = s3.get_object(Bucket=BUCKET, Key=k)
    body = body_of(got)
    eq(hashlib.sha256(body).hexdigest(), hashlib.sha256(data).hexdigest(), "multipart object sha256")
    # and back through the transfer manager (parallel ranged GETs)
    out = io.BytesIO()
    s3.download_fileobj(BUCKET, k, out, Config=cfg)
    eq(hashlib.sha256(out.getvalue()).hexdigest(), hashlib.sha256(data).hexdigest(),
       "download_fileobj sha256")


def t_multipart_explicit():
    k = key("mpu/explicit")
    parts_data = [random_bytes(5 * MiB), random_bytes(5 * MiB), random_bytes(1234)]
    create = s3.create_multipart_upload(Bucket=BUCKET, Key=k, ContentType="video/x-test",
                                        CacheControl="private", Metadata={"stage": "explicit"})
    upload_id = create["UploadId"]
    check(upload_id, "create_multipart_upload returned no UploadId")
    eq(create.get("Key"), k, "create_multipart_upload Key")
    try:
        etags = []
        for n, chunk in enumerate(parts_data, start=1):
            resp = s3.upload_part(Bucket=BUCKET, Key=k, UploadId=upload_id, PartNumber=n, Body=chunk)
            check(resp.get("ETag"), f"upload_part {n} returned no ETag")
            etags.append(resp["ETag"])

        listed = s3.list_parts(Bucket=BUCKET, Key=k, UploadId=upload_id)
        eq(listed.get("UploadId"), upload_id, "list_parts UploadId")
        eq([p["PartNumber"] for p in listed.get("Parts", [])], [1, 2, 3], "list_parts PartNumbers")
        eq([p["Size"] for p in listed["Parts"]], [len(c) for c in parts_data], "list_parts Sizes")
        eq([p["ETag"] for p in listed["Parts"]], etags, "list_parts ETags")

        uploads = s3.list_multipart_uploads(Bucket=BUCKET, Prefix=key("mpu/"))
        eq([(u["Key"], u["UploadId"]) for u in uploads.get("Uploads", []) if u["UploadId"] == upload_id],
           [(k, upload_id)], "list_multipart_uploads entry")

        done = s3.complete_multipart_upload(
            Bucket=BUCKET, Key=k, UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]})
        check(done.get("ETag"), "complete_multipart_upload returned no ETag")
    except Exception:
        try:
            s3.abort_multipart_upload(Bucket=BUCKET, Key=k, UploadId=upload_id)
        except ClientError:
            pass
        raise
    data = b"".join(parts_data)
    got = s3.get_object(Bucket=BUCKET, Key=k)
    same_bytes(body_of(got), data, "completed multipart object")
    eq(got.get("ContentType"), "video/x-test", "completed multipart ContentType")
    eq(got.get("CacheControl"), "private", "completed multipart CacheControl")
    eq(got["Metadata"], {"stage": "explicit"}, "completed multipart Metadata")
    eq(got["ETag"], done["ETag"], "get ETag vs complete ETag")
    got = s3.get_object(Bucket=BUCKET, Key=k, Range=f"bytes={5 * MiB - 10}-{5 * MiB + 9}")
    same_bytes(body_of(got), data[5 * MiB - 10:5 * MiB + 10], "range across a part boundary")
    uploads = s3.list_multipart_uploads(Bucket=BUCKET, Prefix=key("mpu/"))
    check(all(u["UploadId"] != upload_id for u in uploads.get("Uploads", [])),
          "completed upload still listed by list_multipart_uploads")


def t_multipart_abort():
    k = key("mpu/aborted")
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key=k)["UploadId"]
    s3.upload_part(Bucket=BUCKET, Key=k, UploadId=upload_id, PartNumber=1, Body=random_bytes(MiB))
    resp = s3.abort_multipart_upload(Bucket=BUCKET, Key=k, UploadId=upload_id)
    eq(resp["ResponseMetadata"]["HTTPStatusCode"], 204, "abort_multipart_upload status")
    uploads = s3.list_multipart_uploads(Bucket=BUCKET, Prefix=key("mpu/"))
    check(all(u["UploadId"] != upload_id for u in uploads.get("Uploads", [])),
          "aborted upload still listed by list_multipart_uploads")
    expect_error(lambda: s3.list_parts(Bucket=BUCKET, Key=k, UploadId=upload_id),
                 404, "NoSuchUpload", "list_parts after abort")
    expect_error(lambda: s3.head_object(Bucket=BUCKET, Key=k), 404, ("404", "NoSuchKey"),
                 "head of an aborted upload's key")


def t_multipart_bad_part_etag():
    k = key("mpu/bad-etag")
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key=k)["UploadId"]
    try:
        s3.upload_part(Bucket=BUCKET, Key=k, UploadId=upload_id, PartNumber=1, Body=b"only part")
        expect_error(lambda: s3.complete_multipart_upload(
            Bucket=BUCKET, Key=k, UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"00000000000000000000000000000000"'}]}),
            400, "InvalidPart", "complete_multipart_upload with a wrong part ETag")
    finally:
        try:
            s3.abort_multipart_upload(Bucket=BUCKET, Key=k, UploadId=upload_id)
        except ClientError:
            pass


# ---------------------------------------------------------------------------------------
# conditional requests and errors

def t_conditional_put_if_none_match():
    k = key("cond/create-once")
    s3.put_object(Bucket=BUCKET, Key=k, Body=b"first", IfNoneMatch="*")
    expect_error(lambda: s3.put_object(Bucket=BUCKET, Key=k, Body=b"second", IfNoneMatch="*"),
                 412, "PreconditionFailed", "second put with IfNoneMatch='*'")
    same_bytes(body_of(s3.get_object(Bucket=BUCKET, Key=k)), b"first", "body after refused put")


def t_conditional_get():
    k = key("cond/get")
    s3.put_object(Bucket=BUCKET, Key=k, Body=b"conditional")
    etag = s3.head_object(Bucket=BUCKET, Key=k)["ETag"]
    expect_error(lambda: s3.get_object(Bucket=BUCKET, Key=k, IfNoneMatch=etag), 304, "304",
                 "get_object IfNoneMatch=<current etag>")
    got = s3.get_object(Bucket=BUCKET, Key=k, IfMatch=etag)
    same_bytes(body_of(got), b"conditional", "get_object IfMatch=<current etag>")
    got = s3.get_object(Bucket=BUCKET, Key=k, IfNoneMatch='"0123456789abcdef0123456789abcdef"')
    same_bytes(body_of(got), b"conditional", "get_object IfNoneMatch=<other etag>")
    expect_error(lambda: s3.get_object(Bucket=BUCKET, Key=k, IfMatch='"0123456789abcdef0123456789abcdef"'),
                 412, "PreconditionFailed", "get_object IfMatch=<other etag>")


def t_no_such_key():
    k = key("missing/nothing-here")
    e = expect_error(lambda: s3.get_object(Bucket=BUCKET, Key=k), 404, "NoSuchKey", "get_object of a missing key")
    check("NoSuchKey" in str(e), "error text does not name NoSuchKey")
    expect_error(lambda: s3.head_object(Bucket=BUCKET, Key=k), 404, ("404", "NoSuchKey"), "head_object of a missing key")


def t_no_such_bucket():
    bucket = f"no-such-bucket-{uuid.uuid4().hex[:10]}"
    expect_error(lambda: s3.list_objects_v2(Bucket=bucket), 404, "NoSuchBucket", "list of a missing bucket")
    expect_error(lambda: s3.get_object(Bucket=bucket, Key="x"), 404, "NoSuchBucket", "get from a missing bucket")


def t_head_bucket():
    resp = s3.head_bucket(Bucket=BUCKET)
    eq(resp["ResponseMetadata"]["HTTPStatusCode"], 200, "head_bucket status")


def request_id_of(meta: dict, what: str) -> str:
    """The request id boto3 read from an answer: 16 hex digits, in the x-amz-request-id
    header (and, for an error, in its body: botocore takes both), with an x-amz-id-2."""
    rid = meta.get("RequestId", "")
    check(len(rid) == 16 and all(c in "0123456789ABCDEFabcdef" for c in rid), f"{what}: request id {rid!r}")
    eq(meta.get("HTTPHeaders", {}).get("x-amz-request-id"), rid, f"{what}: x-amz-request-id")
    check(meta.get("HostId"), f"{what}: no x-amz-id-2 (HostId)")
    return rid


def t_request_ids():
    k = key("ids/obj")
    ids = [request_id_of(s3.put_object(Bucket=BUCKET, Key=k, Body=b"id")["ResponseMetadata"], "put_object")]
    ids.append(request_id_of(s3.head_object(Bucket=BUCKET, Key=k)["ResponseMetadata"], "head_object"))
    e = expect_error(lambda: s3.get_object(Bucket=BUCKET, Key=key("ids/missing")), 404, "NoSuchKey", "get_object")
    ids.append(request_id_of(e.response["ResponseMetadata"], "get_object of a missing key"))
    e = expect_error(lambda: s3.get_bucket_cors(Bucket=BUCKET), 501, "NotImplemented", "get_bucket_cors")
    ids.append(request_id_of(e.response["ResponseMetadata"], "get_bucket_cors"))
    eq(len(set(ids)), len(ids), f"request ids are not distinct: {ids}")


def t_create_existing_bucket():
    expect_error(lambda: s3.create_bucket(Bucket=BUCKET), 409, "BucketAlreadyOwnedByYou",
                 "create_bucket of the suite's own bucket")


def t_not_implemented_after_checks():
    bucket = f"no-such-bucket-{uuid.uuid4().hex[:10]}"
    expect_error(lambda: s3.get_bucket_acl(Bucket=bucket), 404, "NoSuchBucket", "get_bucket_acl of a missing bucket")
    expect_error(lambda: s3.get_bucket_cors(Bucket=BUCKET), 501, "NotImplemented", "get_bucket_cors")
    expect_error(lambda: s3.get_object_tagging(Bucket=bucket, Key="x"), 404, "NoSuchBucket",
                 "get_object_tagging in a missing bucket")
    expect_error(lambda: s3.get_object(Bucket=BUCKET, Key=key("ni/missing"), PartNumber=1), 404, "NoSuchKey",
                 "get_object PartNumber=1 of a missing key")


def t_acls():
    """ACLs disabled (BucketOwnerEnforced): the owner's FULL_CONTROL is read back, ACLs that
    grant more are refused and write nothing."""
    me = s3.list_buckets()["Owner"]["ID"]
    acl = s3.get_bucket_acl(Bucket=BUCKET)
    eq(acl["Owner"]["ID"], me, "get_bucket_acl owner")
    eq([(g["Grantee"]["ID"], g["Permission"]) for g in acl["Grants"]], [(me, "FULL_CONTROL")],
       "get_bucket_acl grants")
    k = key("acl/k")
    s3.put_object(Bucket=BUCKET, Key=k, Body=b"acl", ACL="bucket-owner-full-control")
    acl = s3.get_object_acl(Bucket=BUCKET, Key=k)
    eq([(g["Grantee"]["ID"], g["Permission"]) for g in acl["Grants"]], [(me, "FULL_CONTROL")],
       "get_object_acl grants")
    s3.put_object_acl(Bucket=BUCKET, Key=k, ACL="private")
    expect_error(lambda: s3.put_object_acl(Bucket=BUCKET, Key=k, ACL="public-read"), 400,
                 "AccessControlListNotSupported", "put_object_acl public-read")
    refused = key("acl/refused")
    expect_error(lambda: s3.put_object(Bucket=BUCKET, Key=refused, Body=b"no", ACL="public-read"), 400,
                 "AccessControlListNotSupported", "put_object public-read")
    expect_error(lambda: s3.head_object(Bucket=BUCKET, Key=refused), 404, ("404", "NoSuchKey"),
                 "head_object of a refused write")
    own = s3.get_bucket_ownership_controls(Bucket=BUCKET)["OwnershipControls"]["Rules"]
    eq(own, [{"ObjectOwnership": "BucketOwnerEnforced"}], "get_bucket_ownership_controls")
    s3.delete_object(Bucket=BUCKET, Key=k)
    if ACL_BUCKET:
        _acls_enabled(me)


ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def _acls_enabled(me: str) -> None:
    """ACLs enabled (ObjectWriter): x-amz-acl on a write and PutObjectAcl decide what an
    anonymous client may read, and GetObjectAcl shows the grants as S3 does."""
    anonymous = boto3.client("s3", endpoint_url=ENDPOINT, region_name=REGION,
                             config=Config(signature_version=botocore.UNSIGNED))
    own = s3.get_bucket_ownership_controls(Bucket=ACL_BUCKET)["OwnershipControls"]["Rules"]
    eq(own, [{"ObjectOwnership": "ObjectWriter"}], "ownership of the ACL bucket")
    k = key("acl/public")
    s3.put_object(Bucket=ACL_BUCKET, Key=k, Body=b"open", ACL="public-read")
    acl = s3.get_object_acl(Bucket=ACL_BUCKET, Key=k)
    eq(acl["Owner"]["ID"], me, "the writer owns the object")
    grants = sorted((g["Grantee"]["Type"], g["Grantee"].get("ID") or g["Grantee"].get("URI"), g["Permission"])
                    for g in acl["Grants"])
    eq(grants, [("CanonicalUser", me, "FULL_CONTROL"), ("Group", ALL_USERS, "READ")], "public-read grants")
    eq(body_of(anonymous.get_object(Bucket=ACL_BUCKET, Key=k)), b"open", "anonymous GET of a public-read object")
    s3.put_object_acl(Bucket=ACL_BUCKET, Key=k, ACL="private")
    expect_error(lambda: anonymous.get_object(Bucket=ACL_BUCKET, Key=k), 403, "AccessDenied",
                 "anonymous GET after put_object_acl private")
    s3.put_object_acl(Bucket=ACL_BUCKET, Key=k, GrantRead=f'uri="{ALL_USERS}"', GrantFullControl=f'id="{me}"')
    eq(body_of(anonymous.get_object(Bucket=ACL_BUCKET, Key=k)), b"open", "anonymous GET after a grant header")
    # The bucket's own ACL does not let anonymous requests list, and a grant naming no
    # known user is refused.
    expect_error(lambda: anonymous.list_objects_v2(Bucket=ACL_BUCKET), 403, "AccessDenied", "anonymous list")
    expect_error(lambda: s3.put_object_acl(Bucket=ACL_BUCKET, Key=k, GrantRead='id="' + "0" * 64 + '"'),
                 400, "InvalidArgument", "a grant to an unknown canonical id")
    s3.delete_object(Bucket=ACL_BUCKET, Key=k)


def t_upload_part_copy_range_past_the_end():
    src = key("upc/src")
    s3.put_object(Bucket=BUCKET, Key=src, Body=random_bytes(1000))
    dst = key("upc/dst")
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key=dst)["UploadId"]
    try:
        expect_error(lambda: s3.upload_part_copy(Bucket=BUCKET, Key=dst, UploadId=upload_id, PartNumber=1,
                                                 CopySource={"Bucket": BUCKET, "Key": src},
                                                 CopySourceRange="bytes=0-1000"),
                     400, "InvalidArgument", "upload_part_copy with a range past the end")
        part = s3.upload_part_copy(Bucket=BUCKET, Key=dst, UploadId=upload_id, PartNumber=1,
                                   CopySource={"Bucket": BUCKET, "Key": src}, CopySourceRange="bytes=0-999")
        check(part["CopyPartResult"].get("ETag"), "upload_part_copy of the whole source returned no ETag")
    finally:
        s3.abort_multipart_upload(Bucket=BUCKET, Key=dst, UploadId=upload_id)


# ---------------------------------------------------------------------------------------
# presigned URLs and authentication

def t_presigned_get_put():
    k = key("presigned/obj.bin")
    data = random_bytes(3000)
    s3.put_object(Bucket=BUCKET, Key=k, Body=data)
    url = s3_presign.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": k}, ExpiresIn=300)
    check("X-Amz-Signature=" in url, f"not a SigV4 presigned URL: {url}")
    status, _, body = http_request("GET", url)
    eq(status, 200, "presigned GET status")
    same_bytes(body, data, "presigned GET body")

    k2 = key("presigned/uploaded.bin")
    data2 = random_bytes(5000)
    url = s3_presign.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": k2}, ExpiresIn=300)
    status, _, body = http_request("PUT", url, body=data2)
    eq(status, 200, f"presigned PUT status (body: {body[:300]!r})")
    same_bytes(body_of(s3.get_object(Bucket=BUCKET, Key=k2)), data2, "object written by presigned PUT")


def _tamper(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    out = []
    for name, value in query:
        if name == "X-Amz-Signature":
            value = value[:-1] + ("0" if value[-1] != "0" else "1")
        out.append((name, value))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(out)))


def t_presigned_tampered():
    k = key("presigned/tamper.bin")
    s3.put_object(Bucket=BUCKET, Key=k, Body=b"secret")
    url = s3_presign.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": k}, ExpiresIn=300)
    status, _, body = http_request("GET", _tamper(url))
    eq(status, 403, "tampered signature status")
    check(b"SignatureDoesNotMatch" in body, f"tampered signature: no SignatureDoesNotMatch in {body[:300]!r}")
    # a valid signature used for another key
    other = url.replace(urllib.parse.quote(k), urllib.parse.quote(key("presigned/other.bin")), 1)
    check(other != url, "could not rewrite the presigned URL's key")
    status, _, body = http_request("GET", other)
    eq(status, 403, "presigned URL with a changed key")
    # a presigned PUT URL used for GET
    url = s3_presign.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": k}, ExpiresIn=300)
    status, _, _ = http_request("GET", url)
    eq(status, 403, "presigned PUT URL used with GET")
    # an unsigned request
    status, _, _ = http_request("GET", f"{ENDPOINT.rstrip('/')}/{BUCKET}/{urllib.parse.quote(k)}")
    eq(status, 403, "anonymous GET")


def t_wrong_secret():
    bad = boto3.client("s3", endpoint_url=ENDPOINT, region_name=REGION,
                       aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
                       aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"] + "wrong")
    expect_error(lambda: bad.list_objects_v2(Bucket=BUCKET), 403, "SignatureDoesNotMatch", "list with a wrong secret")
    expect_error(lambda: bad.put_object(Bucket=BUCKET, Key=key("auth/x"), Body=b"x"), 403,
                 "SignatureDoesNotMatch", "put with a wrong secret")
    expect_error(lambda: s3.head_object(Bucket=BUCKET, Key=key("auth/x")), 404, ("404", "NoSuchKey"),
                 "object written with a wrong secret")


def t_unknown_access_key():
    bad = boto3.client("s3", endpoint_url=ENDPOINT, region_name=REGION,
                       aws_access_key_id="AKIDUNKNOWN" + uuid.uuid4().hex[:8].upper(),
                       aws_secret_access_key="whatever")
    expect_error(lambda: bad.list_objects_v2(Bucket=BUCKET), 403, "InvalidAccessKeyId",
                 "list with an unknown access key")
    expect_error(lambda: bad.get_object(Bucket=BUCKET, Key=key("auth/y")), 403, "InvalidAccessKeyId",
                 "get with an unknown access key")


# ---------------------------------------------------------------------------------------

def cleanup() -> None:
    try:
        for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=BUCKET, Prefix=PREFIX):
            for u in page.get("Uploads", []):
                s3.abort_multipart_upload(Bucket=BUCKET, Key=u["Key"], UploadId=u["UploadId"])
    except ClientError as e:
        print(f"note: could not list multipart uploads during cleanup: {e}", flush=True)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=PREFIX):
        objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if objects:
            s3.delete_objects(Bucket=BUCKET, Delete={"Objects": objects, "Quiet": True})
    left = s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX).get("KeyCount", 0)
    check(left == 0, f"{left} objects left under {PREFIX} after cleanup")


def main() -> None:
    print(f"boto3 {boto3.__version__} against {ENDPOINT} bucket {BUCKET} prefix {PREFIX}", flush=True)
    r = Runner("boto3_suite")
    no_auth = "SKIP_AUTH_CHECKS=1" if env_flag("SKIP_AUTH_CHECKS") else None
    try:
        r.run("head_bucket", t_head_bucket)
        r.run("request_ids", t_request_ids)
        r.run("create_existing_bucket", t_create_existing_bucket)
        r.run("not_implemented_after_checks", t_not_implemented_after_checks)
        r.run("upload_part_copy_range_past_the_end", t_upload_part_copy_range_past_the_end)
        r.run("put_get_head_attributes", t_put_get_head_attributes)
        r.run("content_encoding_gzip", t_content_encoding_gzip)
        r.run("empty_object", t_empty_object)
        r.run("odd_key_names", t_odd_key_names)
        r.run("checksum_sha256", t_checksum_sha256)
        r.run("range_get", t_range_get)
        r.run("list_objects_v2_prefix_delimiter", t_list_objects_v2_prefix_delimiter)
        r.run("folder_markers", t_folder_markers)
        r.run("etags_are_md5s", t_etags_are_md5s)
        r.run("list_objects_v2_max_keys_and_paginator", t_list_objects_v2_max_keys_and_paginator)
        r.run("list_objects_v1_marker", t_list_objects_v1_marker)
        r.run("copy_object_copy_directive", t_copy_object_copy_directive)
        r.run("copy_object_replace_directive", t_copy_object_replace_directive)
        r.run("copy_missing_source", t_copy_missing_source)
        r.run("delete_object", t_delete_object)
        r.run("delete_objects", t_delete_objects)
        r.run("multipart_upload_fileobj", t_multipart_upload_fileobj)
        r.run("multipart_explicit", t_multipart_explicit)
        r.run("multipart_abort", t_multipart_abort)
        r.run("multipart_bad_part_etag", t_multipart_bad_part_etag)
        r.run("conditional_put_if_none_match", t_conditional_put_if_none_match)
        r.run("conditional_get", t_conditional_get)
        r.run("acls", t_acls)
        r.run("no_such_key", t_no_such_key)
        r.run("no_such_bucket", t_no_such_bucket)
        r.run("presigned_get_put", t_presigned_get_put)
        r.run("presigned_tampered", t_presigned_tampered, skip_reason=no_auth)
        r.run("wrong_secret", t_wrong_secret, skip_reason=no_auth)
        r.run("unknown_access_key", t_unknown_access_key, skip_reason=no_auth)
    finally:
        r.run("cleanup", cleanup)
    r.finish()


if __name__ == "__main__":
    main()
