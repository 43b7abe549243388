#!/usr/bin/env python3
"""Translating reverse proxy in front of fake-gcs-server, for integration tests.

fake-gcs-server (v1.5x) serves the GCS JSON API and XML-API reads, but not the XML-API writes
that `object_store`'s GoogleCloudStorage client sends (simple PUT, XML multipart upload, copy),
it ignores start-after/max-keys in XML listings, and it ignores conditional-read headers. This
proxy sits in front of it and makes the XML API behave like real GCS for those requests, by
translating them to JSON-API calls. Everything else passes through unchanged.

    python3 gcs_shim.py --listen-port P --upstream http://127.0.0.1:Q [--state-dir DIR] [--quiet]

fake-gcs-server must be started with `-public-host 127.0.0.1:Q` (XML-API requests are forwarded
with that Host header) and preferably `-external-url http://127.0.0.1:P` (so the upload
`Location` URLs it hands out point back at this proxy).

Translated (XML API, path-style URLs `/BUCKET/KEY`):
  * PUT object: body, Content-Type, Cache-Control, Content-Disposition, Content-Encoding,
    Content-Language, x-goog-storage-class and x-goog-meta-* become a JSON-API multipart upload
    with that object resource, so they are stored natively (visible to the JSON API and to
    google-cloud-storage clients). Answers 200 with ETag, x-goog-generation,
    x-goog-metageneration, x-goog-hash, x-goog-stored-content-length/-encoding.
  * Preconditions x-goog-if-generation-match (0 = must not exist), x-goog-if-generation-not-match,
    x-goog-if-metageneration-match/-not-match on PUT, copy, DELETE, GET/HEAD, multipart
    initiate/complete: 412 PreconditionFailed as GCS does. The check is made by this proxy
    (read current generation, then write) and is NOT atomic against writers that bypass it;
    writes that go through this proxy hold a per-object lock across check and write, so they
    are serialized against each other.
  * Conditional reads If-Match / If-None-Match / If-Modified-Since / If-Unmodified-Since on
    GET/HEAD object: 412 or 304 as RFC 7232 and GCS say (fake-gcs-server ignores them).
  * XML multipart upload: POST ?uploads (initiate, remembers the object resource from the
    headers), PUT ?partNumber&uploadId (parts staged in a temp dir), POST ?uploadId (complete:
    validates part list, part ETags and the 5 MiB minimum for all parts but the last, then
    uploads the concatenation with the remembered resource), DELETE ?uploadId (abort),
    GET ?uploadId (list parts). Upload state lives in this process only.
  * JSON-API PATCH (metadata update) with ifGenerationMatch, ifMetagenerationMatch (and
    their NotMatch forms) or generation=: checked here under the object's lock, 412 (or
    404) as GCS answers; fake-gcs-server ignores them and patches the current object.
  * Copy: PUT with x-goog-copy-source (optionally x-goog-copy-source-generation,
    x-goog-metadata-directive COPY|REPLACE and the preconditions above); answers
    CopyObjectResult XML.
  * DELETE object: 204 (fake-gcs-server says 200 with a JSON body).
  * Listing: GET /BUCKET?list-type=2 (prefix, delimiter, start-after, continuation-token,
    max-keys, encoding-type=url) and the V1 form (marker), computed here from the JSON API.
  * ETags: GCS's XML API gives the hex MD5 in quotes (`"5d41..."`); fake-gcs-server gives the
    base64 MD5. This proxy answers the hex form everywhere (GET/HEAD headers, PUT, listing,
    multipart) and accepts both in If-Match/If-None-Match.
  * Errors for XML-API requests come as GCS-style XML bodies (<Error><Code>NoSuchKey</Code>...).

Not supported: virtual-hosted-style URLs, signed URLs/auth (nothing is checked), ACL/CORS/
lifecycle subresources (passed through as they are), resumable XML uploads
(x-goog-resumable), listing of multipart uploads (GET /BUCKET?uploads answers 501),
XML-API object versions listing. Multipart parts are staged in this process's temp dir, so
bodies are spooled to disk rather than streamed: fine for objects of tens of MiB.

Exits when its parent process goes away, so a killed test run leaves no proxy behind.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import calendar
import email.utils
import hashlib
import http.client
import http.server
import json
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

CHUNK = 1 << 20
SPOOL_MAX = 8 << 20
MIN_PART_SIZE = 5 << 20
MAX_PARTS = 10000
XML_DECL = "<?xml version='1.0' encoding='UTF-8'?>"
S3_NS = "http://doc.s3.amazonaws.com/2006-03-01"
MP_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
JSON_PREFIXES = ("/storage/v1/", "/upload/", "/download/", "/batch/", "/_internal/")
# The query parameters of a JSON-API request that make it conditional on the object's
# current state (a PATCH with them is checked here: see `patch_object`).
JSON_PRECONDITIONS = {"generation", "ifGenerationMatch", "ifGenerationNotMatch",
                      "ifMetagenerationMatch", "ifMetagenerationNotMatch"}
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "trailers", "transfer-encoding", "upgrade", "proxy-connection",
}
# Object-resource fields that come from ordinary request headers.
HEADER_FIELDS = (
    ("cache-control", "cacheControl"),
    ("content-disposition", "contentDisposition"),
    ("content-encoding", "contentEncoding"),
    ("content-language", "contentLanguage"),
    ("x-goog-storage-class", "storageClass"),
    ("x-goog-custom-time", "customTime"),
)
ERROR_MESSAGES = {
    "NoSuchKey": "The specified key does not exist.",
    "NoSuchBucket": "The specified bucket does not exist.",
    "NoSuchUpload": "The requested upload was not found.",
    "PreconditionFailed": "At least one of the pre-conditions you specified did not hold.",
    "InvalidArgument": "Invalid argument.",
    "InvalidPart": "One or more of the specified parts could not be found.",
    "InvalidPartOrder": "The list of parts was not in ascending order.",
    "EntityTooSmall": "Your proposed upload is smaller than the minimum allowed object size.",
    "MalformedXML": "The XML you provided was not well-formed.",
    "NotImplemented": "A header or query you provided requested a function that is not implemented.",
    "InternalError": "We encountered an internal error. Please try again.",
    "Conflict": "Conflict.",
}
STATUS_CODES = {400: "InvalidArgument", 403: "AccessDenied", 404: "NoSuchKey", 409: "Conflict",
                412: "PreconditionFailed", 416: "InvalidRange", 501: "NotImplemented"}


class GcsError(Exception):
    """An error answered to the client as a GCS XML error body."""

    def __init__(self, status: int, code: str, details: str = "", headers=None):
        super().__init__(f"{status} {code}: {details}")
        self.status, self.code, self.details = status, code, details
        self.headers = headers or {}


def q(s: str) -> str:
    """Percent-encodes one path segment of a JSON-API URL (object names may contain '/')."""
    return urllib.parse.quote(s, safe="")


def hex_etag(res: dict) -> str:
    """The XML API's ETag for a JSON object resource: the quoted hex MD5."""
    md5 = res.get("md5Hash")
    if md5:
        try:
            return '"' + base64.b64decode(md5).hex() + '"'
        except (binascii.Error, ValueError):
            pass
    return '"' + str(res.get("etag", "")) + '"'


def b64md5_to_hex(etag: str) -> str:
    """Turns fake-gcs-server's `"<base64 md5>"` ETag header into GCS's `"<hex md5>"`."""
    raw = etag.strip().strip('"')
    try:
        digest = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return etag
    return '"' + digest.hex() + '"' if len(digest) == 16 else etag


def parse_rfc3339(s: str) -> float:
    """Seconds since the epoch for a JSON-API timestamp like 2026-01-02T03:04:05.123456Z."""
    s = s.rstrip("Z")
    frac = 0.0
    if "." in s:
        s, f = s.split(".", 1)
        frac = float("0." + f)
    return calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%S")) + frac


def xml_time(res: dict) -> str:
    t = parse_rfc3339(res.get("updated") or res.get("timeCreated"))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


def latin1_to_utf8(v: str) -> str:
    """http.server decodes header values as latin-1; recover UTF-8 text sent by clients."""
    try:
        return v.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return v


def object_headers(res: dict) -> dict:
    """Response headers GCS's XML API sends after a write, for a JSON object resource."""
    h = {
        "ETag": hex_etag(res),
        "x-goog-generation": str(res.get("generation", "")),
        "x-goog-metageneration": str(res.get("metageneration", "1")),
        "x-goog-stored-content-length": str(res.get("size", "0")),
        "x-goog-stored-content-encoding": res.get("contentEncoding") or "identity",
    }
    hashes = []
    if res.get("crc32c"):
        hashes.append("crc32c=" + res["crc32c"])
    if res.get("md5Hash"):
        hashes.append("md5=" + res["md5Hash"])
    if hashes:
        h["x-goog-hash"] = ",".join(hashes)
    return h


class Upstream:
    """HTTP/1.1 connections to fake-gcs-server, one kept per handler thread."""

    def __init__(self, url: str):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "http" or not u.hostname:
            raise SystemExit(f"--upstream must be http://host:port, got {url!r}")
        self.host, self.port = u.hostname, u.port or 80
        self.netloc = f"{self.host}:{self.port}"
        self._local = threading.local()

    def _conn(self, fresh: bool = False) -> http.client.HTTPConnection:
        c = getattr(self._local, "conn", None)
        if c is None or fresh:
            if c is not None:
                c.close()
            c = http.client.HTTPConnection(self.host, self.port, timeout=120)
            self._local.conn = c
        return c

    def send(self, method, path, headers=None, body=None, body_len=None):
        """Sends a request; `body` is bytes, or an iterable of chunks with `body_len` (then it
        must be re-iterable for the one retry on a stale connection). Returns the response,
        whose body the caller must read fully before the next request on this thread."""
        headers = dict(headers or {})
        headers.setdefault("Host", self.netloc)
        if body is None:
            body = b""
        if isinstance(body, (bytes, bytearray)):
            body_len = len(body)
        if body_len or method in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(body_len or 0)
        for attempt in (0, 1):
            conn = self._conn(fresh=attempt > 0)
            try:
                conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
                for k, v in headers.items():
                    conn.putheader(k, v)
                conn.endheaders()
                if isinstance(body, (bytes, bytearray)):
                    if body:
                        conn.send(body)
                else:
                    for chunk in body:
                        conn.send(chunk)
                return conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest, http.client.ResponseNotReady):
                conn.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def call(self, method, path, headers=None, body=None, body_len=None):
        """Like `send`, but reads the body: returns (status, headers, bytes)."""
        resp = self.send(method, path, headers, body, body_len)
        data = resp.read()
        return resp.status, resp.headers, data

    def json(self, method, path, body=None, ok=(200,)):
        headers = {}
        if body is not None:
            body = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        status, _, data = self.call(method, path, headers, body)
        if status not in ok:
            raise upstream_error(status, data)
        return json.loads(data) if data.strip() else None

    def get_object(self, bucket, key, generation=None):
        """The object's JSON resource, or None if it (or the bucket) does not exist."""
        path = f"/storage/v1/b/{q(bucket)}/o/{q(key)}"
        if generation:
            path += "?generation=" + q(generation)
        status, _, data = self.call("GET", path)
        if status == 404:
            return None
        if status != 200:
            raise upstream_error(status, data)
        return json.loads(data)

    def upload(self, bucket, resource, body_file, size, if_generation_match=None):
        """JSON-API multipart upload of `size` bytes from `body_file` with `resource`."""
        boundary = "gcs_shim_" + secrets.token_hex(16)
        media_type = resource.get("contentType") or "application/octet-stream"
        head = (f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
                + json.dumps(resource)
                + f"\r\n--{boundary}\r\nContent-Type: {media_type}\r\n\r\n").encode()
        tail = f"\r\n--{boundary}--\r\n".encode()

        class Body:
            def __iter__(self):
                yield head
                yield from FileBody(body_file, size)
                yield tail

        path = f"/upload/storage/v1/b/{q(bucket)}/o?uploadType=multipart"
        if if_generation_match is not None:
            path += "&ifGenerationMatch=" + q(str(if_generation_match))
        status, _, data = self.call(
            "POST", path, {"Content-Type": f"multipart/related; boundary={boundary}"},
            Body(), len(head) + size + len(tail))
        if status != 200:
            raise upstream_error(status, data, bucket=bucket)
        return json.loads(data)


def upstream_error(status, data, bucket=None) -> GcsError:
    try:
        message = json.loads(data)["error"]["message"]
    except Exception:  # noqa: BLE001 - any non-JSON body
        message = data[:500].decode("utf-8", "replace").strip()
    code = STATUS_CODES.get(status, "InternalError" if status >= 500 else "InvalidArgument")
    if status == 404 and bucket is not None:
        code = "NoSuchBucket"
    return GcsError(status, code, f"upstream: {message}")


class State:
    """Multipart uploads and per-object locks, shared by all handler threads."""

    def __init__(self, parent_dir=None):
        self.lock = threading.Lock()
        self.uploads: dict[str, dict] = {}
        self.object_locks: dict[tuple, threading.Lock] = {}
        self.tmp = tempfile.mkdtemp(prefix="gcs-shim-", dir=parent_dir)

    def object_lock(self, bucket, key) -> threading.Lock:
        with self.lock:
            return self.object_locks.setdefault((bucket, key), threading.Lock())


def check_generation_preconditions(headers, res, prefix="x-goog-if-"):
    """GCS's generation/metageneration preconditions against `res` (None: no object)."""
    gen = str(res["generation"]) if res else "0"
    mgen = str(res.get("metageneration", "1")) if res else None
    want = headers.get(prefix + "generation-match")
    if want is not None and want.strip() != gen:
        raise GcsError(412, "PreconditionFailed", f"{prefix}generation-match: {want}, have {gen}")
    want = headers.get(prefix + "generation-not-match")
    if want is not None and want.strip() == gen:
        raise GcsError(412, "PreconditionFailed", f"{prefix}generation-not-match: {want}")
    want = headers.get(prefix + "metageneration-match")
    if want is not None and (mgen is None or want.strip() != mgen):
        raise GcsError(412, "PreconditionFailed", f"{prefix}metageneration-match: {want}")
    want = headers.get(prefix + "metageneration-not-match")
    if want is not None and mgen is not None and want.strip() == mgen:
        raise GcsError(412, "PreconditionFailed", f"{prefix}metageneration-not-match: {want}")


def has_generation_preconditions(headers, prefix="x-goog-if-") -> bool:
    return any(headers.get(prefix + s) is not None for s in
               ("generation-match", "generation-not-match", "metageneration-match",
                "metageneration-not-match"))


def etag_matches(header_value: str, res: dict) -> bool:
    tags = [t.strip() for t in header_value.split(",") if t.strip()]
    if "*" in tags:
        return True
    mine = {hex_etag(res).strip('"'), str(res.get("md5Hash", "")), str(res.get("etag", ""))}
    mine.discard("")
    return any(t.removeprefix("W/").strip('"') in mine for t in tags)


def http_date(s: str):
    try:
        return email.utils.parsedate_to_datetime(s).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


class NotModified(Exception):
    def __init__(self, headers):
        super().__init__("not modified")
        self.headers = headers


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gcs-shim"

    def version_string(self):
        return self.server_version
    upstream: Upstream
    state: State

    # ---- plumbing ------------------------------------------------------------------------
    def log_message(self, fmt, *args):
        sys.stderr.write("gcs-shim: %s\n" % (fmt % args))

    def do_GET(self):
        self.dispatch()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def dispatch(self):
        self._body_read = False
        try:
            self.route()
        except NotModified as e:
            self.drain()
            self.respond(304, e.headers)
        except GcsError as e:
            self.drain()
            self.send_error_xml(e)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # noqa: BLE001 - answer 500 and keep serving
            traceback.print_exc(file=sys.stderr)
            self.drain()
            self.send_error_xml(GcsError(500, "InternalError", repr(e)))

    def header(self, name):
        return self.headers.get(name)

    def read_body(self):
        """Reads the request body (Content-Length or chunked) into a spooled temp file.
        Returns (file, size, md5 hex)."""
        self._body_read = True
        f = tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX, dir=self.state.tmp)
        md5 = hashlib.md5()
        size = 0
        if "chunked" in (self.header("Transfer-Encoding") or "").lower():
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    # A client that stops before the last chunk sent no whole body: GCS
                    # commits nothing (a cut body is not an empty last chunk).
                    raise ConnectionResetError("client closed mid-body")
                n = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                remaining = n
                while remaining:
                    chunk = self.rfile.read(min(CHUNK, remaining))
                    if not chunk:
                        raise ConnectionResetError("client closed mid-body")
                    f.write(chunk)
                    md5.update(chunk)
                    remaining -= len(chunk)
                size += n
                self.rfile.readline(3)
        else:
            remaining = int(self.header("Content-Length") or 0)
            while remaining:
                chunk = self.rfile.read(min(CHUNK, remaining))
                if not chunk:
                    raise ConnectionResetError("client closed mid-body")
                f.write(chunk)
                md5.update(chunk)
                size += len(chunk)
                remaining -= len(chunk)
        f.seek(0)
        return f, size, md5.hexdigest()

    def drain(self):
        if not self._body_read:
            try:
                self.read_body()[0].close()
            except Exception:  # noqa: BLE001
                self.close_connection = True

    def respond(self, status, headers=None, body=b"", content_type=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if content_type:
            self.send_header("Content-Type", content_type)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)

    def respond_xml(self, status, xml_text, headers=None):
        self.respond(status, headers, (XML_DECL + xml_text).encode(), "application/xml; charset=UTF-8")

    def send_error_xml(self, e: GcsError):
        message = ERROR_MESSAGES.get(e.code, e.code)
        details = f"<Details>{escape(e.details)}</Details>" if e.details else ""
        self.respond_xml(e.status, f"<Error><Code>{e.code}</Code><Message>{escape(message)}"
                                   f"</Message>{details}</Error>", e.headers)

    # ---- routing -------------------------------------------------------------------------
    def route(self):
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        self.query = {k: v[0] for k, v in query.items()}
        if path == "/_shim/health":
            return self.respond(200, body=b"ok\n", content_type="text/plain")
        if self.command == "PATCH" and path.startswith("/storage/v1/b/") and \
                set(self.query) & JSON_PRECONDITIONS:
            return self.patch_object(path)
        if path == "/" or path.startswith(JSON_PREFIXES):
            return self.passthrough(xml=False)
        bucket, _, raw_key = path[1:].partition("/")
        bucket = urllib.parse.unquote(bucket)
        key = urllib.parse.unquote(raw_key) if raw_key else None
        m, qs = self.command, self.query
        if key is None:
            if m == "GET" and "uploads" in qs:
                raise GcsError(501, "NotImplemented", "listing multipart uploads")
            if m == "GET" and not set(qs) & {"acl", "cors", "lifecycle", "logging", "versioning",
                                             "location", "storageClass", "billing",
                                             "websiteConfig", "encryptionConfig", "versions"}:
                return self.list_objects(bucket)
            if m == "HEAD" and not qs:
                return self.head_bucket(bucket)
            return self.passthrough(xml=True)
        if m == "PUT" and "uploadId" in qs:
            return self.upload_part(bucket, key)
        if m == "PUT" and self.header("x-goog-copy-source"):
            return self.copy_object(bucket, key)
        if m == "PUT" and not set(qs) - {"generation"} and not self.header("x-goog-resumable"):
            return self.put_object(bucket, key)
        if m == "POST" and "uploads" in qs:
            return self.initiate_multipart(bucket, key)
        if m == "POST" and "uploadId" in qs:
            return self.complete_multipart(bucket, key)
        if m == "DELETE" and "uploadId" in qs:
            return self.abort_multipart(bucket, key)
        if m == "GET" and "uploadId" in qs:
            return self.list_parts(bucket, key)
        if m == "DELETE" and not set(qs) - {"generation"}:
            return self.delete_object(bucket, key)
        if m in ("GET", "HEAD") and not set(qs) - {"generation"}:
            return self.get_object(bucket, key)
        return self.passthrough(xml=True)

    # ---- pass-through ----------------------------------------------------------------------
    def passthrough(self, xml: bool, extra_headers=None, rewrite_etag=False):
        """Forwards the request as it is; for XML-API requests the Host header is the
        upstream's (fake-gcs-server routes XML requests by its -public-host)."""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP
                   and k.lower() not in ("content-length", "host", "expect")}
        headers["Host"] = self.upstream.netloc if xml else (self.header("Host") or self.upstream.netloc)
        if xml and self.command in ("GET", "HEAD") and "Accept-Encoding" not in self.headers:
            # No decompressive transcoding: serve the stored bytes as they are. (fake-gcs-server
            # would try to gunzip Content-Encoding: gzip objects and cut the body off when they
            # are not really gzip.)
            headers["Accept-Encoding"] = "gzip"
        headers.update(extra_headers or {})
        if self.command in ("POST", "PUT", "PATCH") or self.header("Content-Length") or \
                self.header("Transfer-Encoding"):
            f, size, _ = self.read_body()
            with f:
                resp = self.upstream.send(self.command, self.path, headers, FileBody(f, size), size)
                return self.relay(resp, xml, rewrite_etag)
        resp = self.upstream.send(self.command, self.path, headers)
        return self.relay(resp, xml, rewrite_etag)

    def relay(self, resp, xml, rewrite_etag, extra=None):
        status = resp.status
        if xml and status >= 400:
            data = resp.read()
            raise upstream_error(status, data)
        self.send_response(status)
        length = resp.getheader("Content-Length")
        chunked = length is None and self.command != "HEAD" and status not in (204, 304)
        data = resp.read() if chunked else None
        for k, v in resp.getheaders():
            lk = k.lower()
            if lk in HOP_BY_HOP or lk in ("content-length", "date", "server"):
                continue
            if lk == "etag" and rewrite_etag:
                v = b64md5_to_hex(v)
            if extra and lk in {e.lower() for e in extra}:
                continue
            self.send_header(k, v)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        if data is not None:
            self.send_header("Content-Length", str(len(data)))
        elif length is not None:
            self.send_header("Content-Length", length)
        self.end_headers()
        if self.command == "HEAD" or status in (204, 304):
            resp.read()
            return
        if data is not None:
            self.wfile.write(data)
            return
        while True:
            chunk = resp.read(CHUNK)
            if not chunk:
                break
            self.wfile.write(chunk)

    def patch_object(self, path):
        """A JSON-API metadata PATCH with generation preconditions: fake-gcs-server ignores
        them (and `generation=`) and patches whatever object is current, which GCS never
        does. Checked here under the object's lock, so no write through this proxy comes
        between the check and the PATCH."""
        bucket, sep, key = path[len("/storage/v1/b/"):].partition("/o/")
        if not sep or not key:
            return self.passthrough(xml=False)
        bucket, key = urllib.parse.unquote(bucket), urllib.parse.unquote(key)
        qs = self.query
        with self.state.object_lock(bucket, key):
            current = self.upstream.get_object(bucket, key)
            failed = None
            if current is None or (qs.get("generation") and
                                   qs["generation"] != str(current["generation"])):
                failed = (404, "No such object: %s/%s" % (bucket, key))
            else:
                # A PATCH of a missing object is a 404 whatever its conditions say.
                conditions = {"x-goog-if-" + name: qs[param] for param, name in (
                    ("ifGenerationMatch", "generation-match"),
                    ("ifGenerationNotMatch", "generation-not-match"),
                    ("ifMetagenerationMatch", "metageneration-match"),
                    ("ifMetagenerationNotMatch", "metageneration-not-match"),
                ) if param in qs}
                try:
                    check_generation_preconditions(conditions, current)
                except GcsError:
                    failed = (412, "conditionNotMet")
            if failed is not None:
                self.drain()
                status, message = failed
                body = json.dumps({"error": {"code": status, "message": message,
                                             "errors": [{"message": message}]}}).encode()
                return self.respond(status, body=body, content_type="application/json")
            return self.passthrough(xml=False)

    # ---- reads -------------------------------------------------------------------------------
    def get_object(self, bucket, key):
        h = self.headers
        conditional = any(h.get(n) is not None for n in
                          ("If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since")) \
            or has_generation_preconditions(h)
        strip = {"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"}
        # Evaluate any conditions on the current metadata, then read that very generation
        # (if the object changed in between, evaluate again). Real GCS answers every XML
        # read with x-goog-generation, which fake-gcs-server leaves out: clients need it
        # for generation-conditional writes.
        _ = conditional
        for _ in range(5):
            res = self.upstream.get_object(bucket, key, self.query.get("generation"))
            if res is None:
                raise GcsError(404, "NoSuchKey", f"No such object: {bucket}/{key}")
            check_generation_preconditions(h, res)
            self.check_http_conditions(res)
            headers = {k: v for k, v in h.items() if k.lower() not in HOP_BY_HOP and
                       k.lower() not in ("content-length", "host", "expect") and
                       k not in strip and not k.lower().startswith("x-goog-if-")}
            headers["Host"] = self.upstream.netloc
            headers.setdefault("Accept-Encoding", "gzip")
            path = f"/{q(bucket)}/{q(key)}?generation={res['generation']}"
            resp = self.upstream.send(self.command, path, headers)
            if resp.status == 404:
                resp.read()
                continue  # replaced or deleted meanwhile
            return self.relay(resp, True, True, {"x-goog-generation": str(res["generation"]),
                                                 "x-goog-metageneration": str(res.get("metageneration", "1"))})
        raise GcsError(503, "InternalError", "object kept changing during a conditional read")

    def check_http_conditions(self, res):
        h = self.headers
        etag = hex_etag(res)
        updated = int(parse_rfc3339(res["updated"]))
        validators = {"ETag": etag, "Last-Modified": email.utils.formatdate(updated, usegmt=True)}
        if h.get("If-Match") is not None:
            if not etag_matches(h["If-Match"], res):
                raise GcsError(412, "PreconditionFailed", "If-Match")
        elif h.get("If-Unmodified-Since") is not None:
            t = http_date(h["If-Unmodified-Since"])
            if t is not None and updated > t:
                raise GcsError(412, "PreconditionFailed", "If-Unmodified-Since")
        if h.get("If-None-Match") is not None:
            if etag_matches(h["If-None-Match"], res):
                raise NotModified(validators)
        elif h.get("If-Modified-Since") is not None:
            t = http_date(h["If-Modified-Since"])
            if t is not None and updated <= t:
                raise NotModified(validators)

    def head_bucket(self, bucket):
        status, _, _ = self.upstream.call("GET", f"/storage/v1/b/{q(bucket)}")
        if status == 404:
            raise GcsError(404, "NoSuchBucket", bucket)
        self.respond(200 if status == 200 else status)

    def list_objects(self, bucket):
        qs = self.query
        v2 = qs.get("list-type") == "2"
        prefix = qs.get("prefix", "")
        delimiter = qs.get("delimiter", "")
        try:
            max_keys = max(0, min(1000, int(qs.get("max-keys", "1000"))))
        except ValueError:
            raise GcsError(400, "InvalidArgument", "max-keys")
        url_enc = qs.get("encoding-type") == "url"
        start_after = qs.get("start-after", "") if v2 else qs.get("marker", "")
        token = qs.get("continuation-token") if v2 else None
        after = start_after
        if token:
            try:
                after = base64.urlsafe_b64decode(token.encode()).decode()
            except (binascii.Error, ValueError, UnicodeDecodeError):
                raise GcsError(400, "InvalidArgument", "continuation-token")
        # Every object under the prefix and after the marker, from the JSON API.
        items, page = [], None
        while True:
            path = f"/storage/v1/b/{q(bucket)}/o?maxResults=1000&prefix={q(prefix)}"
            if after:
                path += "&startOffset=" + q(after)
            if page:
                path += "&pageToken=" + q(page)
            status, _, data = self.upstream.call("GET", path)
            if status == 404:
                raise GcsError(404, "NoSuchBucket", bucket)
            if status != 200:
                raise upstream_error(status, data, bucket)
            doc = json.loads(data)
            items.extend(doc.get("items", []))
            page = doc.get("nextPageToken")
            if not page:
                break
        items.sort(key=lambda r: r["name"])
        entries = []  # (name, resource or None for a common prefix)
        for res in items:
            name = res["name"]
            if not name.startswith(prefix) or (after and name <= after):
                continue
            if delimiter:
                i = name.find(delimiter, len(prefix))
                if i >= 0:
                    cp = name[: i + len(delimiter)]
                    if after and cp <= after:
                        continue  # a common prefix already returned
                    if entries and entries[-1][1] is None and entries[-1][0] == cp:
                        continue
                    entries.append((cp, None))
                    continue
            entries.append((name, res))
        truncated = len(entries) > max_keys
        entries = entries[:max_keys]
        enc = (lambda s: urllib.parse.quote(s, safe="/")) if url_enc else (lambda s: s)
        out = [f'<ListBucketResult xmlns="{S3_NS}"><Name>{escape(bucket)}</Name>'
               f"<Prefix>{escape(enc(prefix))}</Prefix>"]
        if v2 and start_after:
            out.append(f"<StartAfter>{escape(enc(start_after))}</StartAfter>")
        if v2 and token:
            out.append(f"<ContinuationToken>{escape(token)}</ContinuationToken>")
        if not v2 and start_after:
            out.append(f"<Marker>{escape(enc(start_after))}</Marker>")
        out.append(f"<MaxKeys>{max_keys}</MaxKeys>")
        if delimiter:
            out.append(f"<Delimiter>{escape(enc(delimiter))}</Delimiter>")
        if url_enc:
            out.append("<EncodingType>url</EncodingType>")
        out.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
        for name, res in entries:
            if res is None:
                out.append(f"<CommonPrefixes><Prefix>{escape(enc(name))}</Prefix></CommonPrefixes>")
            else:
                out.append(
                    f"<Contents><Key>{escape(enc(name))}</Key>"
                    f"<Generation>{res.get('generation', '')}</Generation>"
                    f"<MetaGeneration>{res.get('metageneration', '1')}</MetaGeneration>"
                    f"<LastModified>{xml_time(res)}</LastModified>"
                    f"<ETag>{escape(hex_etag(res))}</ETag><Size>{res.get('size', 0)}</Size>"
                    f"<StorageClass>{escape(res.get('storageClass', 'STANDARD'))}</StorageClass>"
                    f"</Contents>")
        if truncated:
            last = entries[-1][0]
            if v2:
                nxt = base64.urlsafe_b64encode(last.encode()).decode()
                out.append(f"<NextContinuationToken>{nxt}</NextContinuationToken>")
            else:
                out.append(f"<NextMarker>{escape(enc(last))}</NextMarker>")
        if v2:
            out.append(f"<KeyCount>{len(entries)}</KeyCount>")
        out.append("</ListBucketResult>")
        self.respond_xml(200, "".join(out))

    # ---- writes ------------------------------------------------------------------------------
    def resource_from_headers(self, key) -> dict:
        res = {"name": key,
               "contentType": self.header("Content-Type") or "application/octet-stream"}
        for header, field in HEADER_FIELDS:
            v = self.header(header)
            if v is not None:
                res[field] = latin1_to_utf8(v)
        meta = {}
        for k, v in self.headers.items():
            if k.lower().startswith("x-goog-meta-"):
                meta[k[len("x-goog-meta-"):].lower()] = latin1_to_utf8(v)
        if meta:
            res["metadata"] = meta
        return res

    def put_object(self, bucket, key):
        f, size, _ = self.read_body()
        try:
            resource = self.resource_from_headers(key)
            with self.state.object_lock(bucket, key):
                expected = self.check_write_preconditions(bucket, key)
                res = self.upstream.upload(bucket, resource, f, size, expected)
        finally:
            f.close()
        self.respond(200, object_headers(res))

    def check_write_preconditions(self, bucket, key, headers=None):
        """Checks x-goog-if-* against the current object; returns the generation to pass as
        ifGenerationMatch to the upload (a second, upstream-side check), or None."""
        headers = headers if headers is not None else self.headers
        if not has_generation_preconditions(headers):
            return None
        current = self.upstream.get_object(bucket, key)
        check_generation_preconditions(headers, current)
        return current["generation"] if current else 0

    def copy_object(self, bucket, key):
        self.drain()
        raw_src, _, src_query = self.header("x-goog-copy-source").lstrip("/").partition("?")
        src_bucket, _, src_key = raw_src.partition("/")
        src_bucket, src_key = urllib.parse.unquote(src_bucket), urllib.parse.unquote(src_key)
        src_gen = self.header("x-goog-copy-source-generation")
        if not src_gen and src_query.startswith("generation="):
            src_gen = src_query[len("generation="):]
        if not src_bucket or not src_key:
            raise GcsError(400, "InvalidArgument", "x-goog-copy-source")
        directive = (self.header("x-goog-metadata-directive") or "COPY").upper()
        source = self.upstream.get_object(src_bucket, src_key, src_gen)
        if source is None:
            raise GcsError(404, "NoSuchKey", f"No such object: {src_bucket}/{src_key}")
        check_generation_preconditions(self.headers, source, prefix="x-goog-copy-source-if-")
        cs = self.headers.get("x-goog-copy-source-if-match")
        if cs is not None and not etag_matches(cs, source):
            raise GcsError(412, "PreconditionFailed", "x-goog-copy-source-if-match")
        cs = self.headers.get("x-goog-copy-source-if-none-match")
        if cs is not None and etag_matches(cs, source):
            raise GcsError(412, "PreconditionFailed", "x-goog-copy-source-if-none-match")
        with self.state.object_lock(bucket, key):
            expected = self.check_write_preconditions(bucket, key)
            if directive == "REPLACE":
                path = f"/download/storage/v1/b/{q(src_bucket)}/o/{q(src_key)}?alt=media" \
                       f"&generation={source['generation']}"
                resp = self.upstream.send("GET", path)
                if resp.status != 200:
                    raise upstream_error(resp.status, resp.read())
                with tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX, dir=self.state.tmp) as f:
                    shutil.copyfileobj(resp, f, CHUNK)
                    size = f.tell()
                    res = self.upstream.upload(bucket, self.resource_from_headers(key), f, size,
                                               expected)
            else:
                path = (f"/storage/v1/b/{q(src_bucket)}/o/{q(src_key)}/copyTo/b/{q(bucket)}/o/"
                        f"{q(key)}?sourceGeneration={source['generation']}")
                if expected is not None:
                    path += f"&ifGenerationMatch={expected}"
                res = self.upstream.json("POST", path, {})
        body = (f"<CopyObjectResult><LastModified>{xml_time(res)}</LastModified>"
                f"<ETag>{escape(hex_etag(res))}</ETag></CopyObjectResult>")
        headers = object_headers(res)
        headers.pop("ETag")
        self.respond_xml(200, body, headers)

    def delete_object(self, bucket, key):
        self.drain()
        gen = self.query.get("generation")
        with self.state.object_lock(bucket, key):
            if has_generation_preconditions(self.headers):
                current = self.upstream.get_object(bucket, key, gen)
                if current is None:
                    raise GcsError(404, "NoSuchKey", f"No such object: {bucket}/{key}")
                check_generation_preconditions(self.headers, current)
            path = f"/storage/v1/b/{q(bucket)}/o/{q(key)}"
            if gen:
                path += "?generation=" + q(gen)
            status, _, data = self.upstream.call("DELETE", path)
        if status == 404:
            raise GcsError(404, "NoSuchKey", f"No such object: {bucket}/{key}")
        if status not in (200, 204):
            raise upstream_error(status, data)
        self.respond(204)

    # ---- multipart -------------------------------------------------------------------------
    def upload_for(self, bucket, key) -> dict:
        upload_id = self.query.get("uploadId", "")
        with self.state.lock:
            up = self.state.uploads.get(upload_id)
        if up is None or up["bucket"] != bucket or up["key"] != key:
            raise GcsError(404, "NoSuchUpload", f"upload {upload_id!r} for {bucket}/{key}")
        return up

    def initiate_multipart(self, bucket, key):
        self.drain()
        status, _, _ = self.upstream.call("GET", f"/storage/v1/b/{q(bucket)}")
        if status == 404:
            raise GcsError(404, "NoSuchBucket", bucket)
        upload_id = "ABPnzm" + secrets.token_urlsafe(48)
        directory = os.path.join(self.state.tmp, secrets.token_hex(12))
        os.mkdir(directory)
        preconditions = {k.lower(): v for k, v in self.headers.items()
                         if k.lower().startswith("x-goog-if-")}
        with self.state.lock:
            self.state.uploads[upload_id] = {
                "bucket": bucket, "key": key, "resource": self.resource_from_headers(key),
                "dir": directory, "parts": {}, "preconditions": preconditions,
                "lock": threading.Lock(),
            }
        self.respond_xml(200, f'<InitiateMultipartUploadResult xmlns="{MP_NS}">'
                              f"<Bucket>{escape(bucket)}</Bucket><Key>{escape(key)}</Key>"
                              f"<UploadId>{upload_id}</UploadId></InitiateMultipartUploadResult>")

    def upload_part(self, bucket, key):
        up = self.upload_for(bucket, key)
        try:
            number = int(self.query.get("partNumber", ""))
        except ValueError:
            number = 0
        if not 1 <= number <= MAX_PARTS:
            raise GcsError(400, "InvalidArgument", "partNumber must be 1..10000")
        f, size, md5 = self.read_body()
        path = os.path.join(up["dir"], f"part-{number:05d}")
        tmp = path + "." + secrets.token_hex(4)
        with f, open(tmp, "wb") as out:
            shutil.copyfileobj(f, out, CHUNK)
        with up["lock"]:
            if not os.path.isdir(up["dir"]):
                os.unlink(tmp)
                raise GcsError(404, "NoSuchUpload", "upload completed or aborted meanwhile")
            os.replace(tmp, path)
            up["parts"][number] = {"path": path, "size": size, "md5": md5}
        b64 = base64.b64encode(bytes.fromhex(md5)).decode()
        self.respond(200, {"ETag": f'"{md5}"', "x-goog-hash": f"md5={b64}"})

    def list_parts(self, bucket, key):
        up = self.upload_for(bucket, key)
        with up["lock"]:
            parts = sorted(up["parts"].items())
        out = [f'<ListPartsResult xmlns="{MP_NS}"><Bucket>{escape(bucket)}</Bucket>'
               f"<Key>{escape(key)}</Key><UploadId>{escape(self.query['uploadId'])}</UploadId>"
               f"<IsTruncated>false</IsTruncated>"]
        for n, p in parts:
            out.append(f"<Part><PartNumber>{n}</PartNumber><ETag>\"{p['md5']}\"</ETag>"
                       f"<Size>{p['size']}</Size></Part>")
        out.append("</ListPartsResult>")
        self.respond_xml(200, "".join(out))

    def complete_multipart(self, bucket, key):
        f, _, _ = self.read_body()
        with f:
            raw = f.read()
        up = self.upload_for(bucket, key)
        try:
            root = ET.fromstring(raw)
        except ET.ParseError as e:
            raise GcsError(400, "MalformedXML", str(e))
        wanted = []
        for part in root.iter():
            if part.tag.rsplit("}", 1)[-1] != "Part":
                continue
            fields = {c.tag.rsplit("}", 1)[-1]: (c.text or "").strip() for c in part}
            try:
                wanted.append((int(fields.get("PartNumber", "")), fields.get("ETag", "")))
            except ValueError:
                raise GcsError(400, "MalformedXML", "PartNumber")
        if not wanted:
            raise GcsError(400, "MalformedXML", "no parts")
        numbers = [n for n, _ in wanted]
        if numbers != sorted(set(numbers)):
            raise GcsError(400, "InvalidPartOrder", str(numbers))
        with up["lock"]:
            chosen = []
            for i, (n, etag) in enumerate(wanted):
                p = up["parts"].get(n)
                if p is None or etag.strip().strip('"') != p["md5"]:
                    raise GcsError(400, "InvalidPart", f"part {n}")
                if i < len(wanted) - 1 and p["size"] < MIN_PART_SIZE:
                    raise GcsError(400, "EntityTooSmall", f"part {n} is {p['size']} bytes")
                chosen.append(p)
            total = sum(p["size"] for p in chosen)
            headers = dict(up["preconditions"])
            headers.update({k.lower(): v for k, v in self.headers.items()
                            if k.lower().startswith("x-goog-if-")})
            with self.state.object_lock(bucket, key):
                expected = self.check_write_preconditions(bucket, key, headers)
                res = self.upstream.upload(bucket, up["resource"], Concat(chosen), total, expected)
            with self.state.lock:
                self.state.uploads.pop(self.query["uploadId"], None)
            shutil.rmtree(up["dir"], ignore_errors=True)
        location = f"http://{self.header('Host') or self.upstream.netloc}/{q(bucket)}/{q(key)}"
        self.respond_xml(200, f'<CompleteMultipartUploadResult xmlns="{MP_NS}">'
                              f"<Location>{escape(location)}</Location>"
                              f"<Bucket>{escape(bucket)}</Bucket><Key>{escape(key)}</Key>"
                              f"<ETag>{escape(hex_etag(res))}</ETag>"
                              f"</CompleteMultipartUploadResult>", object_headers(res))

    def abort_multipart(self, bucket, key):
        self.drain()
        up = self.upload_for(bucket, key)
        with up["lock"]:
            with self.state.lock:
                self.state.uploads.pop(self.query["uploadId"], None)
            shutil.rmtree(up["dir"], ignore_errors=True)
        self.respond(204)


class FileBody:
    """Re-iterable chunks of the first `size` bytes of a file, for Upstream.send."""

    def __init__(self, f, size):
        self.f, self.size = f, size

    def __iter__(self):
        self.f.seek(0)
        remaining = self.size
        while remaining > 0:
            chunk = self.f.read(min(CHUNK, remaining))
            if not chunk:
                raise IOError("staged body shorter than expected")
            remaining -= len(chunk)
            yield chunk


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


class Concat:
    """A file-like reader over staged part files, for Upstream.upload."""

    def __init__(self, parts):
        self.parts = parts
        self.seek(0)

    def seek(self, _pos):
        self.index, self.current = 0, None

    def read(self, n):
        while self.index < len(self.parts):
            if self.current is None:
                self.current = open(self.parts[self.index]["path"], "rb")
            data = self.current.read(n)
            if data:
                return data
            self.current.close()
            self.current = None
            self.index += 1
        return b""


def watch_parent(original_ppid: int, tmp: str):
    """Exits when the process that started us is gone (we get re-parented)."""
    while True:
        time.sleep(0.5)
        if os.getppid() != original_ppid:
            shutil.rmtree(tmp, ignore_errors=True)
            os._exit(0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen-host", default="127.0.0.1")
    ap.add_argument("--listen-port", type=int, required=True)
    ap.add_argument("--upstream", required=True, help="fake-gcs-server base URL, http://host:port")
    ap.add_argument("--state-dir", help="where to stage multipart parts (default: $TMPDIR)")
    ap.add_argument("--quiet", action="store_true", help="do not log each request")
    args = ap.parse_args()

    Handler.upstream = Upstream(args.upstream)
    Handler.state = State(args.state_dir)
    if args.quiet:
        Handler.log_message = lambda *a: None
    server = Server((args.listen_host, args.listen_port), Handler)
    threading.Thread(target=watch_parent, args=(os.getppid(), Handler.state.tmp), daemon=True).start()
    sys.stderr.write(f"gcs-shim: listening on http://{args.listen_host}:{args.listen_port}, "
                     f"upstream {args.upstream}\n")
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        shutil.rmtree(Handler.state.tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
