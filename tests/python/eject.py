#!/usr/bin/env python3
"""Reads or writes one object directly in a backend with that backend's OWN client
library, bypassing Switchyard: the "eject" checks that objects are stored natively.

  eject.py {s3|azure|gcs} {read|write} --endpoint URL --bucket B --key K --body-file F
           [--content-type T] [--cache-control V] [--content-disposition V]
           [--content-encoding V] [--content-language V] [--meta k=v ...]
           [--exact-meta] [--tags [k=v ...]] [--create-bucket]

read   fetch K and require its bytes to equal F's, and each attribute and metadata entry
       given to equal what the backend holds (--exact-meta: no other metadata either);
       with --tags, its tags to be exactly those given (none for a bare --tags).
write  store K with F's bytes and the given attributes, metadata and tags.

Object tags are where each kind keeps them natively: S3's object tagging, Azure's blob
index tags, and on GCS (which has no tags) the metadata entry "switchyard-tags" holding
the tag set as one URL query (k1=v1&k2=v2); that entry is the tags' place, not metadata,
so --meta and --exact-meta leave it out.

Clients and credentials:
  s3     boto3, path-style, at --endpoint. Credentials from AWS_ACCESS_KEY_ID /
         AWS_SECRET_ACCESS_KEY (or --access-key / --secret-key; default test/test),
         region AWS_DEFAULT_REGION or us-east-1.
  azure  azure-storage-blob with a connection string (BlobEndpoint=--endpoint). Account
         --account (default devstoreaccount1) and --account-key (default: Azurite's
         well-known key). --endpoint may be http://host:port or http://host:port/account.
         The bucket is the container. Content settings map to ContentSettings, metadata
         to blob metadata (Azure compares metadata names case-insensitively).
  gcs    google-cloud-storage with anonymous credentials and api_endpoint=--endpoint
         (fake-gcs-server). Metadata is blob.metadata.

Bytes are compared as stored: no client decodes Content-Encoding here.
Exit status: 0 on success; 1 with every mismatch listed; 2 on bad usage.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.parse

AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

ATTRS = ["content_type", "cache_control", "content_disposition", "content_encoding", "content_language"]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("backend", choices=["s3", "azure", "gcs"])
    p.add_argument("action", choices=["read", "write"])
    p.add_argument("--endpoint", required=True, help="backend base URL, e.g. http://127.0.0.1:9000")
    p.add_argument("--bucket", required=True, help="bucket (S3, GCS) or container (Azure)")
    p.add_argument("--key", required=True)
    p.add_argument("--body-file", required=True, help="expected bytes (read) or bytes to store (write)")
    p.add_argument("--content-type")
    p.add_argument("--cache-control")
    p.add_argument("--content-disposition")
    p.add_argument("--content-encoding")
    p.add_argument("--content-language")
    p.add_argument("--meta", action="append", nargs="+", default=[], metavar="K=V",
                   help="user metadata; repeatable, several per flag")
    p.add_argument("--exact-meta", action="store_true",
                   help="read: the object must have no metadata besides --meta")
    p.add_argument("--tags", nargs="*", metavar="K=V",
                   help="object tags (read: exactly these; a bare --tags: none)")
    p.add_argument("--create-bucket", action="store_true",
                   help="write: create the bucket/container first if it does not exist")
    p.add_argument("--access-key", default=os.environ.get("AWS_ACCESS_KEY_ID", "test"))
    p.add_argument("--secret-key", default=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"))
    p.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    p.add_argument("--account", default=AZURITE_ACCOUNT)
    p.add_argument("--account-key", default=AZURITE_KEY)
    args = p.parse_args(argv)
    meta: dict[str, str] = {}
    for item in (i for group in args.meta for i in group):
        name, sep, value = item.partition("=")
        if not sep or not name:
            p.error(f"--meta expects K=V, got {item!r}")
        meta[name] = value
    args.meta = meta
    tags: dict[str, str] | None = None
    if args.tags is not None:
        tags = {}
        for item in args.tags:
            name, sep, value = item.partition("=")
            if not sep or not name:
                p.error(f"--tags expects K=V, got {item!r}")
            tags[name] = value
    args.tags = tags
    return args


class Mismatches:
    def __init__(self) -> None:
        self.items: list[str] = []

    def eq(self, what: str, actual, expected) -> None:
        if actual != expected:
            self.items.append(f"{what}: expected {expected!r}, got {actual!r}")

    def body(self, actual: bytes, expected: bytes) -> None:
        if actual != expected:
            first = next((i for i, (a, b) in enumerate(zip(actual, expected)) if a != b),
                         min(len(actual), len(expected)))
            self.items.append(f"body: got {len(actual)} bytes, expected {len(expected)}; "
                              f"first difference at offset {first}")

    def meta(self, actual: dict[str, str], expected: dict[str, str], exact: bool, fold_case: bool) -> None:
        norm = (lambda k: k.lower()) if fold_case else (lambda k: k)
        have = {norm(k): v for k, v in (actual or {}).items()}
        for k, v in expected.items():
            if norm(k) not in have:
                self.items.append(f"metadata {k!r}: missing (object has {sorted(actual or {})})")
            elif have[norm(k)] != v:
                self.items.append(f"metadata {k!r}: expected {v!r}, got {have[norm(k)]!r}")
        if exact:
            extra = sorted(set(have) - {norm(k) for k in expected})
            if extra:
                self.items.append(f"metadata: unexpected extra entries {extra}")

    def tags(self, actual: dict[str, str], expected: dict[str, str] | None) -> None:
        if expected is not None and actual != expected:
            self.items.append(f"tags: expected {sorted(expected.items())}, got {sorted(actual.items())}")


# GCS has no object tags: Switchyard keeps them in this metadata entry, as a URL query.
GCS_TAGS_META = "switchyard-tags"


def tags_query(tags: dict[str, str]) -> str:
    return urllib.parse.urlencode(tags, quote_via=urllib.parse.quote)


# -------------------------------------------------------------------------------- S3

def s3_client(args):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=args.endpoint, region_name=args.region,
        aws_access_key_id=args.access_key, aws_secret_access_key=args.secret_key,
        config=Config(s3={"addressing_style": "path"}),
    )


S3_NAMES = {"content_type": "ContentType", "cache_control": "CacheControl",
            "content_disposition": "ContentDisposition", "content_encoding": "ContentEncoding",
            "content_language": "ContentLanguage"}


def s3_write(args, body: bytes) -> None:
    from botocore.exceptions import ClientError

    c = s3_client(args)
    if args.create_bucket:
        try:
            c.head_bucket(Bucket=args.bucket)
        except ClientError:
            c.create_bucket(Bucket=args.bucket)
    extra = {S3_NAMES[a]: getattr(args, a) for a in ATTRS if getattr(args, a) is not None}
    if args.tags:
        extra["Tagging"] = tags_query(args.tags)
    c.put_object(Bucket=args.bucket, Key=args.key, Body=body, Metadata=args.meta, **extra)


def s3_read(args, m: Mismatches) -> bytes:
    c = s3_client(args)
    resp = c.get_object(Bucket=args.bucket, Key=args.key)
    data = resp["Body"].read()
    for a in ATTRS:
        if getattr(args, a) is not None:
            m.eq(a, resp.get(S3_NAMES[a]), getattr(args, a))
    m.meta(resp.get("Metadata", {}), args.meta, args.exact_meta, fold_case=True)
    if args.tags is not None:
        tag_set = c.get_object_tagging(Bucket=args.bucket, Key=args.key)["TagSet"]
        m.tags({t["Key"]: t["Value"] for t in tag_set}, args.tags)
    return data


# ----------------------------------------------------------------------------- Azure

def azure_service(args):
    from azure.storage.blob import BlobServiceClient

    endpoint = args.endpoint.rstrip("/")
    if not urllib.parse.urlsplit(endpoint).path.strip("/"):
        endpoint = f"{endpoint}/{args.account}"  # Azurite serves accounts under a path
    conn = (f"DefaultEndpointsProtocol=http;AccountName={args.account};"
            f"AccountKey={args.account_key};BlobEndpoint={endpoint};")
    return BlobServiceClient.from_connection_string(conn)


def azure_write(args, body: bytes) -> None:
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import ContentSettings

    svc = azure_service(args)
    if args.create_bucket:
        try:
            svc.create_container(args.bucket)
        except ResourceExistsError:
            pass
    settings = ContentSettings(**{a: getattr(args, a) for a in ATTRS if getattr(args, a) is not None})
    svc.get_blob_client(args.bucket, args.key).upload_blob(
        body, overwrite=True, content_settings=settings, metadata=args.meta or None,
        tags=args.tags or None)


def azure_read(args, m: Mismatches) -> bytes:
    blob = azure_service(args).get_blob_client(args.bucket, args.key)
    props = blob.get_blob_properties()
    data = blob.download_blob(decompress=False).readall()  # bytes as stored, even if gzip
    for a in ATTRS:
        if getattr(args, a) is not None:
            m.eq(a, getattr(props.content_settings, a), getattr(args, a))
    m.meta(props.metadata, args.meta, args.exact_meta, fold_case=True)
    if args.tags is not None:
        m.tags(blob.get_blob_tags(), args.tags)
    return data


# ------------------------------------------------------------------------------- GCS

def gcs_client(args):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="test", credentials=AnonymousCredentials(),
                          client_options={"api_endpoint": args.endpoint})


def gcs_write(args, body: bytes) -> None:
    from google.api_core.exceptions import Conflict

    c = gcs_client(args)
    if args.create_bucket:
        try:
            c.create_bucket(args.bucket)
        except Conflict:
            pass
    blob = c.bucket(args.bucket).blob(args.key)
    for a in ATTRS:
        if a != "content_type" and getattr(args, a) is not None:
            setattr(blob, a, getattr(args, a))
    metadata = dict(args.meta)
    if args.tags:
        metadata[GCS_TAGS_META] = tags_query(args.tags)
    if metadata:
        blob.metadata = metadata
    blob.upload_from_string(body, content_type=args.content_type or "application/octet-stream")


def gcs_read(args, m: Mismatches) -> bytes:
    c = gcs_client(args)
    blob = c.bucket(args.bucket).get_blob(args.key)
    if blob is None:
        raise LookupError(f"gs://{args.bucket}/{args.key} does not exist")
    # raw_download: no decompressive transcoding of gzip-encoded objects
    data = blob.download_as_bytes(raw_download=True)
    for a in ATTRS:
        if getattr(args, a) is not None:
            m.eq(a, getattr(blob, a), getattr(args, a))
    metadata = dict(blob.metadata or {})
    kept_tags = metadata.pop(GCS_TAGS_META, "")
    m.meta(metadata, args.meta, args.exact_meta, fold_case=False)
    m.tags(dict(urllib.parse.parse_qsl(kept_tags, keep_blank_values=True)), args.tags)
    return data


# ------------------------------------------------------------------------------------

def main(argv: list[str]) -> int:
    args = parse_args(argv)
    where = f"{args.backend} {args.endpoint} {args.bucket}/{args.key}"
    try:
        with open(args.body_file, "rb") as f:
            body = f.read()
    except OSError as e:
        print(f"eject: cannot read --body-file: {e}", file=sys.stderr)
        return 2
    write = {"s3": s3_write, "azure": azure_write, "gcs": gcs_write}[args.backend]
    read = {"s3": s3_read, "azure": azure_read, "gcs": gcs_read}[args.backend]
    try:
        if args.action == "write":
            write(args, body)
            print(f"eject: wrote {len(body)} bytes to {where}")
            return 0
        m = Mismatches()
        m.body(read(args, m), body)
    except Exception as e:  # a missing object, a refused request: say which and fail
        print(f"eject: {args.action} of {where} failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    if m.items:
        print(f"eject: {where} differs from what was expected:", file=sys.stderr)
        for item in m.items:
            print(f"  {item}", file=sys.stderr)
        return 1
    print(f"eject: {where} matches ({len(body)} bytes, "
          f"{sum(getattr(args, a) is not None for a in ATTRS)} attributes, {len(args.meta)} metadata entries)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
