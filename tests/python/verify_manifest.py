#!/usr/bin/env python3
"""Checks a whole bucket against a manifest with the backend's OWN client library,
bypassing Switchyard: after a migration, every object must be in the destination as a
native object with its bytes, content type and metadata, and nothing else may be there.

  verify_manifest.py {s3|azure|gcs} --endpoint URL --bucket B --manifest FILE
                     [--workers N]

FILE is JSON: {"KEY": {"size": N, "md5": "HEX", "content_type": "T", "metadata": {"k": "v"}}}.
Every key of the bucket is listed and read; the check fails when a key is missing or extra,
or when an object's size, MD5 of its bytes as stored, content type or metadata (exactly:
no entry missing, none extra) differs. Metadata names are compared case-insensitively for
S3 and Azure, whose protocols do not keep their case.

Clients and credentials are those of eject.py (boto3 path-style; azure-storage-blob with
Azurite's development account unless --account/--account-key; google-cloud-storage with
anonymous credentials, --endpoint being fake-gcs-server itself).
Exit status: 0 when everything matches; 1 with the mismatches listed; 2 on bad usage.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import hashlib
import json
import os
import sys
import threading
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eject  # noqa: E402  (the clients, built the same way)

SHOWN = 40


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("backend", choices=["s3", "azure", "gcs"])
    p.add_argument("--endpoint", required=True)
    p.add_argument("--bucket", required=True, help="bucket (S3, GCS) or container (Azure)")
    p.add_argument("--manifest", required=True, help="JSON file: key -> expected object")
    p.add_argument("--workers", type=int, default=8, help="objects read at once (default 8)")
    p.add_argument("--access-key", default=os.environ.get("AWS_ACCESS_KEY_ID", "test"))
    p.add_argument("--secret-key", default=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"))
    p.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    p.add_argument("--account", default=eject.AZURITE_ACCOUNT)
    p.add_argument("--account-key", default=eject.AZURITE_KEY)
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error("--workers must be at least 1")
    return args


class Found:
    """One stored object as its backend describes it."""

    def __init__(self, body: bytes, content_type, metadata) -> None:
        self.size = len(body)
        self.body = body
        self.md5 = hashlib.md5(body).hexdigest()
        self.content_type = content_type
        self.metadata = dict(metadata or {})


# Each backend: list() -> every key; read(key) -> Found. Clients are per thread.

class S3:
    fold_case = True

    def __init__(self, args) -> None:
        self.args, self.local = args, threading.local()

    def client(self):
        if not hasattr(self.local, "c"):
            self.local.c = eject.s3_client(self.args)
        return self.local.c

    def list(self) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.args.bucket)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def read(self, key: str) -> Found:
        r = self.client().get_object(Bucket=self.args.bucket, Key=key)
        return Found(r["Body"].read(), r.get("ContentType"), r.get("Metadata"))


class Azure:
    fold_case = True

    def __init__(self, args) -> None:
        self.args = args
        self.container = eject.azure_service(args).get_container_client(args.bucket)

    def list(self) -> list[str]:
        return [b.name for b in self.container.list_blobs()]

    def read(self, key: str) -> Found:
        d = self.container.get_blob_client(key).download_blob(decompress=False)
        body = d.readall()
        return Found(body, d.properties.content_settings.content_type, d.properties.metadata)


class Gcs:
    fold_case = False

    def __init__(self, args) -> None:
        self.args, self.local = args, threading.local()

    def bucket(self):
        if not hasattr(self.local, "b"):
            self.local.b = eject.gcs_client(self.args).bucket(self.args.bucket)
        return self.local.b

    def list(self) -> list[str]:
        return [b.name for b in self.bucket().list_blobs()]

    def read(self, key: str) -> Found:
        blob = self.bucket().get_blob(key)
        if blob is None:
            raise LookupError("listed but gone")
        # raw_download: the bytes as stored, no decompressive transcoding
        return Found(blob.download_as_bytes(raw_download=True), blob.content_type, blob.metadata)


# `switchyard-checksum` as each kind stores it (Azure encodes `-` in metadata names).
CHECKSUM_NAMES = ("switchyard-checksum", "switchyard_2dchecksum")


def checksum_problem(kept: str, body: bytes) -> str:
    """What is wrong with a kept checksum `ALGORITHM:TYPE:VALUE` of `body`: a CRC32 or a
    SHA-256 of the whole object is recomputed, others only checked for their form."""
    parts = kept.split(":")
    if len(parts) != 3 or parts[0] not in ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256") \
            or parts[1] not in ("FULL_OBJECT", "COMPOSITE"):
        return f"malformed {kept!r}"
    alg, kind, value = parts
    if kind != "FULL_OBJECT":
        return ""
    if alg == "CRC32":
        want = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    elif alg == "SHA256":
        want = base64.b64encode(hashlib.sha256(body).digest()).decode()
    else:
        return ""
    return "" if value == want else f"{kept!r} is not the bytes' ({want})"


def compare(key: str, want: dict, got: Found, fold_case: bool) -> list[str]:
    out = []
    if got.size != want["size"] or got.md5 != want["md5"]:
        out.append(f"{key}: bytes: got {got.size} bytes md5 {got.md5}, "
                   f"expected {want['size']} bytes md5 {want['md5']}")
    if got.content_type != want.get("content_type"):
        out.append(f"{key}: content type: got {got.content_type!r}, expected {want.get('content_type')!r}")
    norm = (lambda k: k.lower()) if fold_case else (lambda k: k)
    have = {norm(k): v for k, v in got.metadata.items()}
    # Switchyard's own entry: the checksum a client sent with the object (the AWS SDKs
    # send a CRC32 by default), carried by the migration; it must still be the bytes'.
    for name in CHECKSUM_NAMES:
        kept = have.pop(name, None)
        if kept is not None:
            problem = checksum_problem(kept, got.body)
            if problem:
                out.append(f"{key}: {name}: {problem}")
    expected = {norm(k): v for k, v in (want.get("metadata") or {}).items()}
    if have != expected:
        out.append(f"{key}: metadata: got {have!r}, expected {expected!r}")
    return out


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        with open(args.manifest, encoding="utf-8") as f:
            manifest: dict[str, dict] = json.load(f)
    except (OSError, ValueError) as e:
        print(f"verify_manifest: cannot read --manifest: {e}", file=sys.stderr)
        return 2
    backend = {"s3": S3, "azure": Azure, "gcs": Gcs}[args.backend](args)
    where = f"{args.backend} {args.endpoint} {args.bucket}"
    try:
        listed = backend.list()
    except Exception as e:
        print(f"verify_manifest: listing {where} failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    problems: list[str] = []
    if len(listed) != len(set(listed)):
        problems.append(f"the listing has {len(listed) - len(set(listed))} duplicate keys")
    missing = sorted(set(manifest) - set(listed))
    extra = sorted(set(listed) - set(manifest))
    if missing:
        problems.append(f"{len(missing)} keys missing, e.g. {missing[:5]}")
    if extra:
        problems.append(f"{len(extra)} keys not in the manifest, e.g. {extra[:5]}")

    def check(key: str) -> list[str]:
        try:
            return compare(key, manifest[key], backend.read(key), backend.fold_case)
        except Exception as e:  # a refused or failed read: name it and go on
            return [f"{key}: read failed: {type(e).__name__}: {e}"]

    present = sorted(set(manifest) & set(listed))
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.workers) as pool:
        for found in pool.map(check, present):
            problems.extend(found)
    if problems:
        print(f"verify_manifest: {where}: {len(problems)} problems "
              f"({len(listed)} listed, {len(manifest)} expected):", file=sys.stderr)
        for p in problems[:SHOWN]:
            print(f"  {p}", file=sys.stderr)
        if len(problems) > SHOWN:
            print(f"  ... and {len(problems) - SHOWN} more", file=sys.stderr)
        return 1
    total = sum(m["size"] for m in manifest.values())
    print(f"verify_manifest: {where}: all {len(manifest)} objects match ({total} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
