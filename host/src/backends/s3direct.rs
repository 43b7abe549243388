//! S3 requests with static credentials that bypass object_store: single-request streaming
//! PUTs for bodies whose length is known, GETs and HEADs, and listings.
//!
//! `object_store` takes a PUT body as one in-memory payload, or streams it as a multipart
//! upload of buffered parts (`part_size` each, several in flight). For a gateway that is
//! the wrong trade: every upload in flight holds megabytes, so memory grows with
//! concurrency times part size, and small objects wait until their whole body has arrived
//! before the backend sees a byte. When the client declared the length (S3 requires it
//! anyway, up to 5 GiB per PUT), the body can instead flow through as it arrives: one
//! signed request with `UNSIGNED-PAYLOAD`, the bytes passed on chunk by chunk, so memory
//! per upload is a few chunks whatever the object's size. A body that ends early, runs
//! long or fails its checksum aborts the request, and S3 commits nothing.
//!
//! GETs and HEADs go the same way: object_store's per-request cost (its signer parses the
//! URL and formats dates anew each time) was the largest user-space share of a small
//! GET, and its answer leaves out the encryption headers that say whether an ETag is the
//! content's MD5. So do listings: object_store reads a ListObjectsV2 page with a serde
//! deserializer that cost more than half of the gateway's CPU per LIST; an event reader
//! that picks the four fields a listing needs costs a fraction of that.

use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::sigv4::Signer;
use crate::config::{ConfigError, S3Backend};
use crate::model::{
    Attrs, Body, ByteRange, ByteStream, Error, GetOutcome, ObjectInfo, ObjectSummary, PutOutcome,
    Result, WriteCondition,
};

/// Everything but S3's unreserved characters is escaped in a query value.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A page of 1000 keys of 1 KiB each is about 1.3 MiB of XML.
const LIST_PAGE_MAX: usize = 16 << 20;

/// S3's largest single PUT.
pub const MAX_SINGLE_PUT: u64 = 5 * 1024 * 1024 * 1024;

/// A key's path is escaped as a query value, but for `/`.
const KEY: &AsciiSet = &QUERY_VALUE.remove(b'/');

pub struct S3Direct {
    backend: String,
    http: reqwest::Client,
    signer: Signer,
    /// `scheme://host[:port]`.
    origin: String,
    /// The host header value.
    host: String,
    /// Path before the key: `/bucket/` (path style) or `/` (virtual-hosted).
    base_path: String,
    /// A request fails when neither a body chunk went out nor the answer came in for
    /// this long (`network.read_timeout`).
    idle_timeout: std::time::Duration,
    /// GETs and HEADs that failed before an answer, or with a 5xx, are retried this many
    /// times with backoff, within `retry_timeout` (`network.*`), as object_store would.
    max_retries: usize,
    retry_timeout: std::time::Duration,
}

impl S3Direct {
    /// Only for backends with static credentials: others (instance roles, web identity)
    /// keep going through `object_store`, which knows how to refresh them.
    pub fn from_config(name: &str, c: &S3Backend) -> Result<Option<Self>, ConfigError> {
        let field = |f: &str| format!("backends.{name}.{f}");
        let (Some(ak), Some(sk)) = (&c.access_key_id, &c.secret_access_key) else {
            return Ok(None);
        };
        let token = match &c.session_token {
            Some(t) => Some(t.resolve(&field("session_token"))?),
            None => None,
        };
        let signer = Signer::new(
            ak.resolve(&field("access_key_id"))?,
            sk.resolve(&field("secret_access_key"))?,
            token,
            c.region.clone(),
        );
        let (origin, base_path) = match (&c.endpoint, c.virtual_hosted_style) {
            (Some(e), false) => (
                e.trim_end_matches('/').to_owned(),
                format!("/{}/", c.bucket),
            ),
            // As object_store reads it: a virtual-hosted endpoint already names the bucket.
            (Some(e), true) => (e.trim_end_matches('/').to_owned(), "/".to_owned()),
            (None, _) => (
                format!("https://{}.s3.{}.amazonaws.com", c.bucket, c.region),
                "/".to_owned(),
            ),
        };
        let url = url::Url::parse(&origin).map_err(|e| ConfigError::Invalid {
            field: field("endpoint"),
            message: e.to_string(),
        })?;
        if !url.path().trim_matches('/').is_empty() {
            // An endpoint with a path of its own: leave it to object_store.
            return Ok(None);
        }
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Ok(None),
        };
        // No read timeout on the client: reqwest's would run while the body is still being
        // sent (nothing is read until the backend answers), cutting every upload that
        // takes longer. `send` applies an idle timeout instead.
        let mut http = reqwest::Client::builder()
            .connect_timeout(c.network.connect_timeout)
            .tcp_nodelay(true)
            .https_only(!c.allow_http);
        if let Some(path) = &c.ca_bundle {
            // In addition to the system's roots, as object_store's client has them.
            let invalid = |message: String| ConfigError::Invalid {
                field: field("ca_bundle"),
                message,
            };
            let certs = crate::tls::read_ca_bundle(path).map_err(|e| invalid(e.to_string()))?;
            let certs = certs
                .iter()
                .map(|der| reqwest::Certificate::from_der(der))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid(e.to_string()))?;
            http = http.tls_certs_merge(certs);
        }
        let http = http.build().map_err(|e| ConfigError::Invalid {
            field: field("endpoint"),
            message: e.to_string(),
        })?;
        Ok(Some(Self {
            backend: name.to_owned(),
            http,
            signer,
            origin,
            host,
            base_path,
            idle_timeout: c.network.read_timeout,
            max_retries: c.network.max_retries,
            retry_timeout: c.network.retry_timeout,
        }))
    }

    fn unavailable(&self, message: impl std::fmt::Display) -> Error {
        Error::Unavailable {
            backend: self.backend.clone(),
            message: message.to_string(),
        }
    }

    fn url(&self, full_key: &str, query: &str) -> String {
        let path = format!("{}{}", self.base_path, utf8_percent_encode(full_key, KEY));
        format!("{}{path}{query}", self.origin)
    }

    /// A request with `headers`, signed (SigV4, `UNSIGNED-PAYLOAD`).
    fn signed(
        &self,
        method: reqwest::Method,
        url: &str,
        mut headers: Vec<(String, String)>,
    ) -> Result<reqwest::RequestBuilder> {
        let path_and_query = url
            .strip_prefix(self.origin.as_str())
            .ok_or_else(|| Error::internal(format!("{url} is not under {}", self.origin)))?;
        headers.push(("host".into(), self.host.clone()));
        let signed = self
            .signer
            .sign(method.as_str(), path_and_query, &headers, SystemTime::now());
        let mut req = self.http.request(method, url);
        // reqwest sets host and content-length itself (from the URL and the body).
        for (k, v) in headers
            .iter()
            .filter(|(k, _)| k != "host" && k != "content-length")
        {
            req = req.header(k, v);
        }
        for (k, v) in signed {
            req = req.header(k, v);
        }
        Ok(req)
    }

    /// GETs (or HEADs) `full_key`, a byte range of it when asked. object_store would do
    /// as well, but at about twice the CPU per request (its signer parses the URL and
    /// formats the date anew every time), and without the encryption headers that tell
    /// whether the ETag is the content's MD5.
    pub async fn get(
        &self,
        full_key: &str,
        range: Option<ByteRange>,
        head: bool,
    ) -> Result<(GetOutcome, Option<ByteStream>)> {
        let url = self.url(full_key, "");
        let mut headers = Vec::new();
        if let (Some(r), false) = (range, head) {
            let spec = match r {
                ByteRange::Bounded { first, last } => format!("bytes={first}-{last}"),
                ByteRange::From(first) => format!("bytes={first}-"),
                ByteRange::Suffix(n) => format!("bytes=-{n}"),
            };
            headers.push(("range".into(), spec));
        }
        let method = if head {
            reqwest::Method::HEAD
        } else {
            reqwest::Method::GET
        };
        let resp = self.send_retrying(method, &url, &headers).await?;
        let status = resp.status().as_u16();
        match status {
            200 | 206 => {}
            404 => return Err(Error::NotFound),
            416 => return Err(Error::InvalidRange),
            s => {
                // A HEAD answer has no body to name the error.
                let code = if head {
                    String::new()
                } else {
                    self.error_code(resp).await
                };
                return Err(self.unavailable(format!("GET answered {s} {code}")));
            }
        }
        let h = resp.headers();
        let text = |name: &str| {
            h.get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        let length = text("content-length").and_then(|v| v.parse::<u64>().ok());
        let (size, served) = match (status, text("content-range")) {
            (206, Some(cr)) => parse_content_range(&cr)
                .ok_or_else(|| self.unavailable(format!("bad Content-Range {cr:?}")))?,
            (206, None) => return Err(self.unavailable("a partial answer without Content-Range")),
            _ => {
                let size =
                    length.ok_or_else(|| self.unavailable("an answer without Content-Length"))?;
                (size, 0..size)
            }
        };
        let last_modified = text("last-modified")
            .and_then(|v| chrono::DateTime::parse_from_rfc2822(&v).ok())
            .map(|d| d.with_timezone(&chrono::Utc))
            .ok_or_else(|| self.unavailable("an answer without Last-Modified"))?;
        let mut attrs = Attrs {
            content_type: text("content-type"),
            cache_control: text("cache-control"),
            content_disposition: text("content-disposition"),
            content_encoding: text("content-encoding"),
            content_language: text("content-language"),
            ..Attrs::default()
        };
        for (name, value) in h {
            if let Some(meta) = name.as_str().strip_prefix("x-amz-meta-") {
                attrs.metadata.insert(
                    meta.to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                );
            }
        }
        let etag = text("etag").map(super::objstore::unquote);
        // SSE-KMS and SSE-C objects have ETags that are not the MD5 of their content.
        let encrypted = text("x-amz-server-side-encryption").is_some_and(|v| v.contains("kms"))
            || h.contains_key("x-amz-server-side-encryption-customer-algorithm");
        let content_md5 = if encrypted {
            None
        } else {
            etag.as_deref().and_then(super::etag_md5)
        };
        let outcome = GetOutcome {
            info: ObjectInfo {
                size,
                etag,
                last_modified,
                attrs,
                content_md5,
                foreign: false,
            },
            range: served,
        };
        if head {
            return Ok((outcome, None));
        }
        let backend = self.backend.clone();
        let idle = self.idle_timeout;
        let stream = resp.bytes_stream();
        let body = futures::stream::unfold(Some(stream), move |stream| {
            let backend = backend.clone();
            async move {
                let mut stream = stream?;
                let unavailable = |message: String| Error::Unavailable { backend, message };
                match tokio::time::timeout(idle, stream.next()).await {
                    Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(stream))),
                    Ok(Some(Err(e))) => Some((Err(unavailable(e.to_string())), None)),
                    Ok(None) => None,
                    Err(_) => Some((Err(unavailable(format!("no data for {idle:?}"))), None)),
                }
            }
        })
        .boxed();
        Ok((outcome, Some(body)))
    }

    /// Sends a request without a body, retrying failures before an answer and 5xx
    /// answers with backoff (`network.max_retries` within `network.retry_timeout`), as
    /// object_store would.
    async fn send_retrying(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: &[(String, String)],
    ) -> Result<reqwest::Response> {
        let started = tokio::time::Instant::now();
        let mut backoff = std::time::Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            // Signed anew each time: the signature carries the time.
            let req = self.signed(method.clone(), url, headers.to_vec())?;
            let failure = match tokio::time::timeout(self.idle_timeout, req.send()).await {
                Ok(Ok(r)) if !r.status().is_server_error() => return Ok(r),
                Ok(Ok(r)) => format!("{method} answered {}", r.status()),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer for {:?}", self.idle_timeout),
            };
            attempt += 1;
            if attempt > self.max_retries || started.elapsed() + backoff > self.retry_timeout {
                return Err(self.unavailable(failure));
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }

    /// Keys under `full_prefix` (the backend's prefix included) after `start_after`, in
    /// S3's order, one ListObjectsV2 page (up to 1000 keys) fetched at a time as the
    /// stream is read.
    pub fn list(
        self: Arc<Self>,
        full_prefix: String,
        start_after: Option<String>,
    ) -> BoxStream<'static, Result<ObjectSummary>> {
        // `None` once the last page is in; the first page starts after `start_after`,
        // the others from the previous page's continuation token.
        let first = PageCursor::StartAfter(start_after);
        futures::stream::try_unfold(Some(first), move |cursor| {
            let this = self.clone();
            let prefix = full_prefix.clone();
            async move {
                let Some(cursor) = cursor else {
                    return Ok(None);
                };
                let page = this.list_page(&prefix, &cursor).await?;
                let next = match page.next {
                    Some(t) if matches!(&cursor, PageCursor::Token(prev) if *prev == t) => {
                        return Err(this.unavailable(
                            "ListObjectsV2 answered the same continuation token twice",
                        ));
                    }
                    Some(t) => Some(PageCursor::Token(t)),
                    None => None,
                };
                let rows = futures::stream::iter(page.objects.into_iter().map(Ok));
                Ok(Some((rows, next)))
            }
        })
        .try_flatten()
        .boxed()
    }

    async fn list_page(&self, full_prefix: &str, cursor: &PageCursor) -> Result<ListedPage> {
        let value = |v: &str| utf8_percent_encode(v, QUERY_VALUE).to_string();
        // Parameters in the order SigV4 sorts them.
        let mut query = String::from("?");
        if let PageCursor::Token(t) = cursor {
            query.push_str(&format!("continuation-token={}&", value(t)));
        }
        query.push_str("list-type=2");
        query.push_str(&format!("&prefix={}", value(full_prefix)));
        if let PageCursor::StartAfter(Some(after)) = cursor {
            query.push_str(&format!("&start-after={}", value(after)));
        }
        let bucket_path = match self.base_path.trim_end_matches('/') {
            "" => "/",
            p => p,
        };
        let url = format!("{}{bucket_path}{query}", self.origin);
        let mut resp = self.send_retrying(reqwest::Method::GET, &url, &[]).await?;
        let status = resp.status();
        if !status.is_success() {
            let code = self.error_code(resp).await;
            return Err(self.unavailable(format!("ListObjectsV2 answered {status} {code}")));
        }
        let mut xml = Vec::new();
        loop {
            let chunk = tokio::time::timeout(self.idle_timeout, resp.chunk())
                .await
                .map_err(|_| self.unavailable(format!("no data for {:?}", self.idle_timeout)))?
                .map_err(|e| self.unavailable(e))?;
            let Some(chunk) = chunk else { break };
            if xml.len() + chunk.len() > LIST_PAGE_MAX {
                return Err(self.unavailable("a ListObjectsV2 page larger than 16 MiB"));
            }
            xml.extend_from_slice(&chunk);
        }
        parse_list_page(&xml)
            .map_err(|e| self.unavailable(format!("unreadable ListObjectsV2 answer: {e}")))
    }

    /// The `<Code>` of an S3 error answer's body ("" when it has none, or takes longer
    /// than the idle timeout to arrive).
    async fn error_code(&self, resp: reqwest::Response) -> String {
        let text = tokio::time::timeout(self.idle_timeout, resp.text())
            .await
            .ok()
            .and_then(|t| t.ok())
            .unwrap_or_default();
        text.split_once("<Code>")
            .and_then(|(_, r)| r.split_once("</Code>"))
            .map_or("", |(c, _)| c)
            .to_owned()
    }

    /// Deletes `full_key`; a missing key is not an error. For folder markers, which
    /// object_store cannot name.
    pub async fn delete(&self, full_key: &str) -> Result<()> {
        let url = self.url(full_key, "");
        let resp = self
            .send_retrying(reqwest::Method::DELETE, &url, &[])
            .await?;
        match resp.status().as_u16() {
            200..=299 | 404 => Ok(()),
            s => {
                let code = self.error_code(resp).await;
                Err(self.unavailable(format!("DELETE answered {s} {code}")))
            }
        }
    }

    /// PUTs `len` bytes of `body` to `full_key` (the key with the backend's prefix).
    pub async fn put(
        &self,
        full_key: &str,
        body: Body,
        len: u64,
        md5: Option<[u8; 16]>,
        attrs: &Attrs,
        cond: &WriteCondition,
    ) -> Result<PutOutcome> {
        let mut headers: Vec<(String, String)> = Vec::new();
        if let Some(md5) = md5 {
            headers.push(("content-md5".into(), STANDARD.encode(md5)));
        }
        let mut add = |name: &str, v: &Option<String>| {
            if let Some(v) = v {
                headers.push((name.to_owned(), v.clone()));
            }
        };
        add("content-type", &attrs.content_type);
        add("cache-control", &attrs.cache_control);
        add("content-disposition", &attrs.content_disposition);
        add("content-encoding", &attrs.content_encoding);
        add("content-language", &attrs.content_language);
        for (k, v) in &attrs.metadata {
            headers.push((format!("x-amz-meta-{k}"), v.clone()));
        }
        match cond {
            WriteCondition::None => {}
            WriteCondition::IfAbsent => headers.push(("if-none-match".into(), "*".into())),
            WriteCondition::IfMatch(_) => {
                return Err(Error::internal("If-Match writes go through object_store"));
            }
        }
        let etag = self.send(full_key, "", headers, body, len).await?;
        Ok(PutOutcome {
            etag: etag.map(super::objstore::unquote),
        })
    }

    /// Uploads part `part_number` (from 1) of multipart upload `upload_id`; returns the
    /// part's ETag as S3 sent it (the form CompleteMultipartUpload takes back).
    pub async fn put_part(
        &self,
        full_key: &str,
        upload_id: &str,
        part_number: usize,
        body: Body,
        len: u64,
    ) -> Result<String> {
        let query = format!(
            "?partNumber={part_number}&uploadId={}",
            utf8_percent_encode(upload_id, NON_ALPHANUMERIC)
        );
        self.send(full_key, &query, Vec::new(), body, len)
            .await?
            .ok_or_else(|| self.unavailable("UploadPart answered without an ETag"))
    }

    /// One signed PUT with a streamed body of `len` bytes; the ETag header of the answer.
    async fn send(
        &self,
        full_key: &str,
        query: &str,
        mut headers: Vec<(String, String)>,
        body: Body,
        len: u64,
    ) -> Result<Option<String>> {
        let url = self.url(full_key, query);
        headers.push(("content-length".into(), len.to_string()));
        let req = self.signed(reqwest::Method::PUT, &url, headers)?;
        // Progress is a body chunk handed to the connection; the clock starts over at each.
        // Time spent waiting for the client's next bytes is not the backend's silence: it
        // counts as progress here, and the client's own timeout (`server.client_timeout`,
        // in the verifying body) bounds it.
        let clock = tokio::time::Instant::now();
        let elapsed_ms = move || u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX);
        let progress = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let reading_client = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let body = {
            let progress = progress.clone();
            let reading = reading_client.clone();
            let mut body = hold_last(body, len);
            let body = futures::stream::poll_fn(move |cx| {
                let r = body.poll_next_unpin(cx);
                reading.store(r.is_pending(), std::sync::atomic::Ordering::Relaxed);
                r
            })
            .boxed();
            windowed(body, IN_FLIGHT_CHUNKS)
                .inspect(move |_| {
                    progress.store(elapsed_ms(), std::sync::atomic::Ordering::Relaxed);
                })
                .boxed()
        };
        let body = reqwest::Body::wrap_stream(body);
        let req = req.header(reqwest::header::CONTENT_LENGTH, len).body(body);
        let send = req.send();
        tokio::pin!(send);
        let sent = loop {
            let last = std::time::Duration::from_millis(
                progress.load(std::sync::atomic::Ordering::Relaxed),
            );
            let deadline = clock + last + self.idle_timeout;
            tokio::select! {
                r = &mut send => break r,
                _ = tokio::time::sleep_until(deadline) => {
                    if reading_client.load(std::sync::atomic::Ordering::Relaxed) {
                        progress.store(elapsed_ms(), std::sync::atomic::Ordering::Relaxed);
                        continue;
                    }
                    let now = std::time::Duration::from_millis(
                        progress.load(std::sync::atomic::Ordering::Relaxed),
                    );
                    if now == last {
                        return Err(self.unavailable(format!(
                            "no progress for {:?}",
                            self.idle_timeout
                        )));
                    }
                }
            }
        };
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                // The body's own error (checksum mismatch, client gone, too long) is the
                // cause to report, not the transport's view of it.
                let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
                while let Some(s) = source {
                    if let Some(own) = s.downcast_ref::<Error>() {
                        return Err(own.clone());
                    }
                    source = s.source();
                }
                return Err(self.unavailable(e));
            }
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(resp
                .headers()
                .get(reqwest::header::ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned));
        }
        let code = self.error_code(resp).await;
        Err(match (status.as_u16(), code.as_str()) {
            (412, _) | (409, "ConditionalRequestConflict") => {
                Error::Precondition("the backend refused the write condition".into())
            }
            (404, "NoSuchKey") => Error::NotFound,
            (400, "BadDigest") => Error::BadDigest,
            (404, "NoSuchUpload") => Error::NoSuchUpload,
            (s, c) => self.unavailable(format!("PUT answered {s} {c}")),
        })
    }
}

/// Where a listing page starts: after a key (the first page), or from the previous
/// page's continuation token.
enum PageCursor {
    StartAfter(Option<String>),
    Token(String),
}

#[derive(Debug, Default)]
struct ListedPage {
    objects: Vec<ObjectSummary>,
    /// The continuation token, when the listing goes on.
    next: Option<String>,
}

/// The fields of a ListObjectsV2 answer that a listing uses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ListField {
    Key,
    LastModified,
    ETag,
    Size,
    IsTruncated,
    NextToken,
}

/// Reads a ListObjectsV2 answer with quick-xml's event reader: the fields a listing
/// needs are picked as they pass, and the rest (owners, storage classes, checksums) is
/// skipped unread. object_store's serde deserializer of the same answer was more than
/// half of the gateway's CPU per LIST of 1000 keys.
fn parse_list_page(xml: &[u8]) -> std::result::Result<ListedPage, String> {
    use quick_xml::events::Event;

    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut page = ListedPage::default();
    let mut truncated = false;
    // Depth of the element being read: 1 is the root, 2 its children.
    let mut depth = 0usize;
    let mut root_seen = false;
    let mut in_contents = false;
    let mut field: Option<ListField> = None;
    let mut text = String::new();
    let (mut key, mut etag, mut size, mut modified) = (None, None, None, None);
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => {
                depth += 1;
                let name = e.local_name();
                let name = name.as_ref();
                field = None;
                match (depth, in_contents, name) {
                    (1, _, b"ListBucketResult") => root_seen = true,
                    (1, _, other) => {
                        return Err(format!("root element {:?}", String::from_utf8_lossy(other)));
                    }
                    (2, _, b"Contents") => {
                        in_contents = true;
                        (key, etag, size, modified) = (None, None, None, None);
                    }
                    (2, _, b"IsTruncated") => field = Some(ListField::IsTruncated),
                    (2, _, b"NextContinuationToken") => field = Some(ListField::NextToken),
                    (3, true, b"Key") => field = Some(ListField::Key),
                    (3, true, b"LastModified") => field = Some(ListField::LastModified),
                    (3, true, b"ETag") => field = Some(ListField::ETag),
                    (3, true, b"Size") => field = Some(ListField::Size),
                    _ => {}
                }
                text.clear();
            }
            Event::Empty(e) if depth == 0 && e.local_name().as_ref() == b"ListBucketResult" => {
                root_seen = true;
            }
            Event::Text(t) if field.is_some() => {
                text.push_str(&t.decode().map_err(|e| e.to_string())?);
            }
            Event::GeneralRef(r) if field.is_some() => {
                match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => text.push(c),
                    None => {
                        let name = r.decode().map_err(|e| e.to_string())?;
                        text.push_str(
                            quick_xml::escape::resolve_predefined_entity(&name)
                                .ok_or_else(|| format!("unknown entity &{name};"))?,
                        );
                    }
                }
            }
            Event::End(_) => {
                match field.take() {
                    Some(ListField::Key) => key = Some(std::mem::take(&mut text)),
                    Some(ListField::ETag) => {
                        etag = Some(super::objstore::unquote(std::mem::take(&mut text)));
                    }
                    Some(ListField::Size) => {
                        size = Some(
                            text.trim()
                                .parse::<u64>()
                                .map_err(|_| format!("Size {text:?} is not a number"))?,
                        );
                    }
                    Some(ListField::LastModified) => {
                        let t = chrono::DateTime::parse_from_rfc3339(text.trim())
                            .map_err(|_| format!("LastModified {text:?} is not a date"))?;
                        modified = Some(t.with_timezone(&chrono::Utc));
                    }
                    Some(ListField::IsTruncated) => truncated = text.trim() == "true",
                    Some(ListField::NextToken) => page.next = Some(std::mem::take(&mut text)),
                    None => {}
                }
                if depth == 2 && in_contents {
                    in_contents = false;
                    let key = key.take().ok_or("an entry without a Key")?;
                    page.objects.push(ObjectSummary {
                        size: size.ok_or_else(|| format!("{key:?} without a Size"))?,
                        last_modified: modified
                            .ok_or_else(|| format!("{key:?} without a LastModified"))?,
                        etag: etag.take(),
                        key,
                    });
                }
                depth = depth.saturating_sub(1);
            }
            // A cut answer must not pass for a short page.
            Event::Eof if depth > 0 => return Err("the answer ends inside an element".into()),
            Event::Eof => break,
            _ => {}
        }
    }
    if !root_seen {
        return Err("no ListBucketResult".into());
    }
    if truncated && page.next.is_none() {
        return Err("IsTruncated without a NextContinuationToken".into());
    }
    if !truncated {
        page.next = None;
    }
    Ok(page)
}

/// `bytes FIRST-LAST/SIZE` as the total size and the served range (end exclusive).
fn parse_content_range(v: &str) -> Option<(u64, std::ops::Range<u64>)> {
    let (range, size) = v.strip_prefix("bytes ")?.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let (first, last, size) = (
        first.parse::<u64>().ok()?,
        last.parse::<u64>().ok()?,
        size.parse().ok()?,
    );
    (first <= last && last < size).then_some((size, first..last + 1))
}

/// Chunks of an upload handed to the HTTP client and not yet written to its socket.
///
/// hyper queues up to 16 chunks (or about 400 KiB) per connection while the backend reads
/// slower than the client sends, and a chunk keeps alive the whole read buffer it was cut
/// from, however few bytes it holds: an upload could pin 16 of its connection's read
/// buffers. With the window, its live memory is the read buffer and two chunks (and, at
/// the end, the last one `hold_last` keeps back). The socket's own buffer, which the kernel
/// sizes to megabytes, keeps the stream flowing; two chunks beside it are enough.
const IN_FLIGHT_CHUNKS: usize = 2;

/// Passes `body` on with at most `window` chunks alive downstream: each chunk holds a
/// permit until the consumer drops it (hyper does once the bytes are on the socket), and
/// the next chunk is not even read from the client before a permit is free, so the
/// backpressure reaches the client's socket.
fn windowed(body: Body, window: usize) -> Body {
    /// A chunk and its permit, as the owner of the `Bytes` handed on.
    struct Held {
        chunk: Bytes,
        _permit: tokio::sync::OwnedSemaphorePermit,
    }
    impl AsRef<[u8]> for Held {
        fn as_ref(&self) -> &[u8] {
            &self.chunk
        }
    }
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(window));
    futures::stream::unfold((body, permits), |(mut body, permits)| async move {
        // The semaphore is never closed.
        let permit = permits.clone().acquire_owned().await.ok()?;
        let item = body.next().await?.map(|chunk| {
            Bytes::from_owner(Held {
                chunk,
                _permit: permit,
            })
        });
        Some((item, (body, permits)))
    })
    .boxed()
}

/// Passes chunks on as they come, except the one that completes the declared `len`
/// bytes, which leaves only when the body has ended well. The HTTP client ends the request
/// as soon as `content-length` bytes are out and never looks at the stream again: a
/// checksum failure reported after the last byte (as the verifying bodies do) would be too
/// late, and the object would be committed. Held back, the last bytes are replaced by the
/// error and the request is cut short. Only that chunk waits: holding every chunk until
/// the next arrives kept one more read buffer alive per upload for the whole transfer.
/// Bytes past `len` (a body longer than declared) are held the same way, one behind.
pub(super) fn hold_last(body: Body, len: u64) -> Body {
    struct State {
        body: Body,
        seen: u64,
        held: Option<Bytes>,
        done: bool,
    }
    let state = State {
        body,
        seen: 0,
        held: None,
        done: false,
    };
    futures::stream::unfold(state, move |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            match st.body.next().await {
                Some(Ok(chunk)) if chunk.is_empty() => {}
                Some(Ok(chunk)) => {
                    st.seen = st.seen.saturating_add(chunk.len() as u64);
                    if st.seen < len {
                        return Some((Ok(chunk), st));
                    }
                    if let Some(prev) = st.held.replace(chunk) {
                        return Some((Ok(prev), st));
                    }
                }
                Some(Err(e)) => {
                    st.done = true;
                    st.held = None;
                    return Some((Err(e), st));
                }
                None => {
                    st.done = true;
                    return st.held.take().map(|h| (Ok(h), st));
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer as AWS writes it: namespaced, with owners, checksums and common
    /// prefixes around the fields a listing reads, and keys that need escaping.
    const LIST_PAGE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bucket</Name><Prefix>p/</Prefix><KeyCount>3</KeyCount><MaxKeys>3</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <Contents>
    <Key>p/a &amp; b &lt;c&gt; &#x65E5;&#26412; </Key>
    <LastModified>2026-11-29T09:50:22.123Z</LastModified>
    <ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag>
    <ChecksumAlgorithm>CRC32</ChecksumAlgorithm>
    <Size>4096</Size>
    <Owner><ID>Key</ID><DisplayName>Size</DisplayName></Owner>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <Contents><Key>p/b</Key><LastModified>2026-01-01T00:00:00Z</LastModified>
    <Size>0</Size></Contents>
  <CommonPrefixes><Prefix>p/dir/</Prefix></CommonPrefixes>
  <Contents>
    <Key>p/c</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>
    <ETag>"multi-3"</ETag><Size>18446744073709551615</Size>
  </Contents>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
</ListBucketResult>"#;

    #[test]
    fn a_listing_page_reads_as_s3_wrote_it() {
        let page = parse_list_page(LIST_PAGE.as_bytes()).unwrap();
        let keys: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
        // Whitespace inside a key is part of it; the owner's ID named Key is not one.
        assert_eq!(keys, ["p/a & b <c> 日本 ", "p/b", "p/c"]);
        let a = &page.objects[0];
        assert_eq!(a.size, 4096);
        assert_eq!(a.etag.as_deref(), Some("9b2cf535f27731c974343645a3985328"));
        assert_eq!(
            a.last_modified.to_rfc3339(),
            "2026-11-29T09:50:22.123+00:00"
        );
        assert_eq!(page.objects[1].etag, None);
        assert_eq!(page.objects[2].etag.as_deref(), Some("multi-3"));
        assert_eq!(page.objects[2].size, u64::MAX);
        assert_eq!(
            page.next.as_deref(),
            Some("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")
        );

        let last = LIST_PAGE
            .replace("<IsTruncated>true", "<IsTruncated>false")
            .replace("<NextContinuationToken>", "<NextContinuationToken>x");
        let page = parse_list_page(last.as_bytes()).unwrap();
        assert_eq!(page.next, None, "a token on a last page is not followed");
        let empty = r#"<ListBucketResult><Name>b</Name><IsTruncated>false</IsTruncated></ListBucketResult>"#;
        let page = parse_list_page(empty.as_bytes()).unwrap();
        assert!(page.objects.is_empty() && page.next.is_none());
    }

    #[test]
    fn a_listing_page_that_is_not_one_is_an_error_not_an_empty_page() {
        let cases = [
            ("", "no ListBucketResult"),
            ("<Error><Code>AccessDenied</Code></Error>", "root element"),
            ("<ListBucketResult><Contents><Key>a</Key>", "ends inside"),
            (
                "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
                "without a NextContinuationToken",
            ),
            (
                "<ListBucketResult><Contents><Key>a</Key><Size>-1</Size></Contents></ListBucketResult>",
                "not a number",
            ),
            (
                "<ListBucketResult><Contents><Key>a</Key><Size>1</Size></Contents></ListBucketResult>",
                "without a LastModified",
            ),
            (
                "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
                "without a Key",
            ),
            (
                "<ListBucketResult><Contents><Key>&bogus;</Key></Contents></ListBucketResult>",
                "unknown entity",
            ),
            ("<ListBucketResult><Contents></ListBucketResult>", ""),
        ];
        for (xml, want) in cases {
            let err = parse_list_page(xml.as_bytes()).expect_err(xml);
            assert!(err.contains(want), "{xml}: {err}");
        }
    }

    #[test]
    fn content_ranges_parse_and_nonsense_does_not() {
        assert_eq!(parse_content_range("bytes 0-0/1"), Some((1, 0..1)));
        assert_eq!(parse_content_range("bytes 10-19/100"), Some((100, 10..20)));
        for bad in [
            "bytes 5-4/10",
            "bytes 0-10/10",
            "bytes */10",
            "bytes 0-9/*",
            "items 0-9/10",
            "bytes 0-9",
            "",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn no_more_than_the_window_is_alive_downstream() {
        let read = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let source = {
            let read = read.clone();
            futures::stream::iter(0..5u8).map(move |i| {
                read.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(Bytes::from(vec![i; 3]))
            })
        };
        let mut body = windowed(source.boxed(), 2);
        let a = body.next().await.unwrap().unwrap();
        let b = body.next().await.unwrap().unwrap();
        // Both permits are out: the third chunk is not even read from the source.
        let blocked = tokio::time::timeout(std::time::Duration::from_millis(50), body.next()).await;
        assert!(blocked.is_err());
        assert_eq!(read.load(std::sync::atomic::Ordering::SeqCst), 2);
        // A slice keeps its chunk alive; dropping all of it frees the permit.
        let tail = a.slice(1..);
        drop(a);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), body.next())
                .await
                .is_err()
        );
        drop(tail);
        let c = body.next().await.unwrap().unwrap();
        assert_eq!((b.as_ref(), c.as_ref()), (&[1u8; 3][..], &[2u8; 3][..]));
        drop((b, c));
        // A consumer that drops what it took reads to the end (the end, too, waits for a
        // permit: a consumer keeping the whole window would wait forever, as hyper never
        // does, since it drops each chunk once written).
        let mut rest = 0;
        while let Some(chunk) = body.next().await {
            chunk.unwrap();
            rest += 1;
        }
        assert_eq!(rest, 2);
    }

    #[tokio::test]
    async fn the_last_chunk_waits_for_the_end_of_the_body() {
        let chunks = |v: Vec<Result<&'static [u8]>>| -> Body {
            futures::stream::iter(v.into_iter().map(|r| r.map(Bytes::from_static))).boxed()
        };
        let ok: Vec<_> = hold_last(chunks(vec![Ok(b"ab"), Ok(b""), Ok(b"cd")]), 4)
            .collect()
            .await;
        assert_eq!(ok.len(), 2);
        assert!(ok.iter().all(|r| r.is_ok()));
        // The error replaces the held-back last chunk: the request never gets all its
        // bytes. Bytes past the declared length are held one behind too.
        for (len, error) in [(4, "bad digest"), (1, "longer than declared")] {
            let failed: Vec<_> = hold_last(
                chunks(vec![Ok(b"ab"), Ok(b"cd"), Err(Error::internal(error))]),
                len,
            )
            .collect()
            .await;
            assert_eq!(failed.len(), 2, "{error}");
            assert_eq!(failed[0].as_ref().unwrap().as_ref(), b"ab", "{error}");
            assert!(failed[1].is_err(), "{error}");
        }
    }

    #[tokio::test]
    async fn chunks_before_the_last_are_not_held() {
        let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Bytes>>();
        let mut body = hold_last(rx.boxed(), 6);
        let wait = || std::time::Duration::from_millis(50);
        tx.unbounded_send(Ok(Bytes::from_static(b"ab"))).unwrap();
        // Handed on before the source has anything more: the upload keeps no chunk back.
        let first = tokio::time::timeout(wait(), body.next()).await;
        assert_eq!(first.unwrap().unwrap().unwrap().as_ref(), b"ab");
        tx.unbounded_send(Ok(Bytes::from_static(b"cdef"))).unwrap();
        // This one completes the body: it waits for the source to end.
        assert!(tokio::time::timeout(wait(), body.next()).await.is_err());
        drop(tx);
        let last = body.next().await.unwrap().unwrap();
        assert_eq!(last.as_ref(), b"cdef");
        assert!(body.next().await.is_none());
    }
}
