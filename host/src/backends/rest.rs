//! What the direct Azure and GCS clients (`azure.rs`, `gcs.rs`) share: an HTTP client
//! built from a backend's network settings, retries of requests that can be repeated,
//! response bodies read under an idle timeout, and streamed uploads under a progress
//! timeout.
//!
//! Those clients exist because object_store hides what an S3 gateway must answer: it
//! cannot name a key ending in `/` (its paths drop the slash), and it reads neither
//! Azure's `Content-MD5` nor a listing's metadata, so the ETag S3 clients expect (the MD5
//! of the content, or a multipart upload's) could not be answered without a request per
//! key.

use futures::StreamExt;

use crate::config::{ConfigError, NetworkConfig};
use bytes::Bytes;

use crate::model::{Body, ByteStream, Error, Result};

pub struct Rest {
    pub backend: String,
    pub http: reqwest::Client,
    /// A request fails when neither a body chunk went out nor the answer came in for
    /// this long (`network.read_timeout`).
    pub idle_timeout: std::time::Duration,
    max_retries: usize,
    retry_timeout: std::time::Duration,
}

impl Rest {
    /// `field` names the backend's `ca_bundle` for errors.
    pub fn new(
        name: &str,
        network: &NetworkConfig,
        allow_http: bool,
        ca_bundle: Option<&std::path::Path>,
        field: &str,
    ) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            field: field.to_owned(),
            message,
        };
        // No read timeout on the client: reqwest's would run while a body is still being
        // sent; requests apply an idle timeout of their own instead.
        let mut http = reqwest::Client::builder()
            .connect_timeout(network.connect_timeout)
            .tcp_nodelay(true)
            .https_only(!allow_http);
        if let Some(path) = ca_bundle {
            let certs = crate::tls::read_ca_bundle(path).map_err(|e| invalid(e.to_string()))?;
            let certs = certs
                .iter()
                .map(|der| reqwest::Certificate::from_der(der))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid(e.to_string()))?;
            http = http.tls_certs_merge(certs);
        }
        let http = http.build().map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            backend: name.to_owned(),
            http,
            idle_timeout: network.read_timeout,
            max_retries: network.max_retries,
            retry_timeout: network.retry_timeout,
        })
    }

    pub fn unavailable(&self, message: impl std::fmt::Display) -> Error {
        Error::Unavailable {
            backend: self.backend.clone(),
            message: message.to_string(),
        }
    }

    /// Sends the request `build` makes (anew for each attempt: authorization may carry
    /// the time), retrying failures before an answer and 5xx answers with backoff
    /// (`network.max_retries` within `network.retry_timeout`), as object_store would. For
    /// requests that can be repeated: reads, and writes of a body held in memory. A `501
    /// Not Implemented` is an answer, not a failure: the server lacks the feature (R2 and
    /// s3s-fs have no versioning), asking again changes nothing, and the caller decides.
    pub async fn send_retrying<F, Fut>(&self, what: &str, build: F) -> Result<reqwest::Response>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<reqwest::RequestBuilder>>,
    {
        let started = tokio::time::Instant::now();
        let mut backoff = std::time::Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            let req = build().await?;
            let failure = match tokio::time::timeout(self.idle_timeout, req.send()).await {
                Ok(Ok(r))
                    if !r.status().is_server_error()
                        || r.status() == reqwest::StatusCode::NOT_IMPLEMENTED =>
                {
                    return Ok(r);
                }
                Ok(Ok(r)) => {
                    let status = r.status();
                    format!("{what} answered {status} {}", self.error_text(r).await)
                }
                Ok(Err(e)) => format!("{what}: {e}"),
                Err(_) => format!("{what}: no answer for {:?}", self.idle_timeout),
            };
            attempt += 1;
            if attempt > self.max_retries || started.elapsed() + backoff > self.retry_timeout {
                return Err(self.unavailable(failure));
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }

    /// The start of an error answer's body, for messages ("" when it takes longer than the
    /// idle timeout to arrive).
    pub async fn error_text(&self, resp: reqwest::Response) -> String {
        let text = tokio::time::timeout(self.idle_timeout, resp.text())
            .await
            .ok()
            .and_then(|t| t.ok())
            .unwrap_or_default();
        text.chars().take(300).collect()
    }

    /// A whole (small) answer body, up to `max` bytes.
    pub async fn read_all(&self, mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let chunk = tokio::time::timeout(self.idle_timeout, resp.chunk())
                .await
                .map_err(|_| self.unavailable(format!("no data for {:?}", self.idle_timeout)))?
                .map_err(|e| self.unavailable(e))?;
            let Some(chunk) = chunk else {
                return Ok(out);
            };
            if out.len() + chunk.len() > max {
                return Err(self.unavailable(format!("an answer larger than {max} bytes")));
            }
            out.extend_from_slice(&chunk);
        }
    }

    /// The body of a 2xx answer to `what`, up to `max` bytes; any other answer is the
    /// backend's failure.
    pub async fn read_ok(
        &self,
        what: &str,
        resp: reqwest::Response,
        max: usize,
    ) -> Result<Vec<u8>> {
        if !resp.status().is_success() {
            let status = resp.status();
            let text = self.error_text(resp).await;
            return Err(self.unavailable(format!("{what} answered {status} {text}")));
        }
        self.read_all(resp, max).await
    }

    /// An answer's body as a stream that fails when the backend sends nothing for the idle
    /// timeout.
    pub fn body_stream(&self, resp: reqwest::Response) -> ByteStream {
        idle_limited(resp, self.backend.clone(), self.idle_timeout)
    }

    /// Sends `req` with `body` streamed as its body, of `len` bytes when known (else
    /// chunked), and fails when neither a chunk went out nor an answer came for the idle
    /// timeout. Progress is a body chunk handed to the connection; the clock starts over
    /// at each. Time spent waiting for the client's next bytes is not the backend's
    /// silence: it counts as progress here, and the client's own timeout
    /// (`server.client_timeout`, in the verifying body) bounds it. An error item in
    /// `body` aborts the request (the backend sees a cut body and commits nothing, see
    /// [`hold_last`]) and is the error returned.
    pub async fn send_streaming(
        &self,
        mut req: reqwest::RequestBuilder,
        body: Body,
        len: Option<u64>,
    ) -> Result<reqwest::Response> {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let clock = tokio::time::Instant::now();
        let elapsed_ms = move || u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX);
        let progress = Arc::new(AtomicU64::new(0));
        let reading_client = Arc::new(AtomicBool::new(false));
        let body = {
            let progress = progress.clone();
            let reading = reading_client.clone();
            let mut body = match len {
                Some(len) => {
                    req = req.header(reqwest::header::CONTENT_LENGTH, len);
                    hold_last(body, len)
                }
                None => body,
            };
            let body = futures::stream::poll_fn(move |cx| {
                let r = body.poll_next_unpin(cx);
                reading.store(r.is_pending(), Ordering::Relaxed);
                r
            })
            .boxed();
            windowed(body, IN_FLIGHT_CHUNKS)
                .inspect(move |_| progress.store(elapsed_ms(), Ordering::Relaxed))
                .boxed()
        };
        let send = req.body(reqwest::Body::wrap_stream(body)).send();
        tokio::pin!(send);
        let sent = loop {
            let last = std::time::Duration::from_millis(progress.load(Ordering::Relaxed));
            let deadline = clock + last + self.idle_timeout;
            tokio::select! {
                r = &mut send => break r,
                _ = tokio::time::sleep_until(deadline) => {
                    if reading_client.load(Ordering::Relaxed) {
                        progress.store(elapsed_ms(), Ordering::Relaxed);
                        continue;
                    }
                    let now = std::time::Duration::from_millis(progress.load(Ordering::Relaxed));
                    if now == last {
                        return Err(self.unavailable(format!(
                            "no progress for {:?}",
                            self.idle_timeout
                        )));
                    }
                }
            }
        };
        sent.map_err(|e| {
            // The body's own error (checksum mismatch, client gone, too long) is the cause
            // to report, not the transport's view of it.
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(s) = source {
                if let Some(own) = s.downcast_ref::<Error>() {
                    return own.clone();
                }
                source = s.source();
            }
            self.unavailable(e)
        })
    }
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
pub(super) fn windowed(body: Body, window: usize) -> Body {
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

/// The backend's own version token (Azure ETag, GCS generation) of the object whose S3
/// ETag an `If-Match: want` names, given the object's `current` (S3 ETag, token): the
/// write is then made conditional on that token, so a concurrent writer still loses
/// atomically.
pub fn if_match_token(want: &str, current: Option<(String, String)>) -> Result<String> {
    let Some((s3, token)) = current else {
        return Err(Error::NotFound);
    };
    if want != "*" && want != s3 {
        return Err(Error::Precondition("the ETag does not match".into()));
    }
    Ok(token)
}

/// What a GET or HEAD answer's headers say of the object, read alike from Azure and GCS.
pub struct Answered {
    pub size: u64,
    /// The bytes of the object the body holds.
    pub served: std::ops::Range<u64>,
    pub last_modified: chrono::DateTime<chrono::Utc>,
    /// The standard attributes, and the user metadata but the kept ETag.
    pub attrs: crate::model::Attrs,
    /// [`ETAG_META`](crate::model::ETAG_META), when the object carries it.
    pub kept_etag: Option<String>,
}

impl Rest {
    /// A GET's or HEAD's answer when it is 200 or 206; 404, 412 and 416 are their errors,
    /// anything else the backend's failure.
    pub async fn got(&self, resp: reqwest::Response, head: bool) -> Result<reqwest::Response> {
        match resp.status().as_u16() {
            200 | 206 => Ok(resp),
            404 => Err(Error::NotFound),
            412 => Err(Error::Precondition("the object changed".into())),
            416 => Err(Error::InvalidRange),
            s => {
                // A HEAD's answer has no body to explain it.
                let text = if head {
                    String::new()
                } else {
                    self.error_text(resp).await
                };
                Err(self.unavailable(format!("GET answered {s} {text}")))
            }
        }
    }

    /// Reads a 200 or 206 answer's headers. `length` is the body's length when whole;
    /// user metadata is under `meta_prefix`, its names as `meta_name` decodes them.
    pub fn answered(
        &self,
        status: u16,
        h: &reqwest::header::HeaderMap,
        length: Option<u64>,
        meta_prefix: &str,
        meta_name: impl Fn(&str) -> String,
    ) -> Result<Answered> {
        let text = |name: &str| header(h, name);
        let (size, served) = match (status, text("content-range")) {
            (206, Some(cr)) => match content_range(&cr) {
                Some(found) => found,
                None if past_end(&cr) => return Err(Error::InvalidRange),
                None => return Err(self.unavailable(format!("bad Content-Range {cr:?}"))),
            },
            (206, None) => return Err(self.unavailable("a partial answer without Content-Range")),
            _ => {
                let size =
                    length.ok_or_else(|| self.unavailable("an answer without Content-Length"))?;
                (size, 0..size)
            }
        };
        let last_modified = text("last-modified")
            .and_then(|v| http_date(&v))
            .ok_or_else(|| self.unavailable("an answer without Last-Modified"))?;
        let mut attrs = crate::model::Attrs {
            content_type: text("content-type"),
            cache_control: text("cache-control"),
            content_disposition: text("content-disposition"),
            content_encoding: text("content-encoding"),
            content_language: text("content-language"),
            ..Default::default()
        };
        let mut kept_etag = None;
        for (name, value) in h {
            if let Some(meta) = name.as_str().strip_prefix(meta_prefix) {
                let name = meta_name(meta);
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                if name == crate::model::ETAG_META {
                    kept_etag = Some(value);
                } else {
                    attrs.metadata.insert(name, value);
                }
            }
        }
        Ok(Answered {
            size,
            served,
            last_modified,
            attrs,
            kept_etag,
        })
    }
}

/// `resp`'s body as a stream that fails (the backend unavailable) when `backend` sends
/// nothing for `idle`.
pub fn idle_limited(
    resp: reqwest::Response,
    backend: String,
    idle: std::time::Duration,
) -> ByteStream {
    futures::stream::unfold(Some(resp.bytes_stream()), move |stream| {
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
    .boxed()
}

/// Appends the text an XML character or entity reference (`&#233;`, `&amp;`) stands
/// for: quick-xml hands references apart from the text around them.
pub fn push_xml_ref(text: &mut String, r: &quick_xml::events::BytesRef<'_>) -> Result<(), String> {
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
    Ok(())
}

/// The text of header `name`, if present.
pub fn header(h: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// An HTTP date (`Last-Modified`).
pub fn http_date(v: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc2822(v)
        .ok()
        .map(|d| d.with_timezone(&chrono::Utc))
}

/// The `Range` header value for a byte range.
pub fn range_header(r: crate::model::ByteRange) -> String {
    use crate::model::ByteRange;
    match r {
        ByteRange::Bounded { first, last } => format!("bytes={first}-{last}"),
        ByteRange::From(first) => format!("bytes={first}-"),
        ByteRange::Suffix(n) => format!("bytes=-{n}"),
    }
}

/// `Content-Range: bytes a-b/size` as (size, a..b+1).
pub fn content_range(v: &str) -> Option<(u64, std::ops::Range<u64>)> {
    let rest = v.strip_prefix("bytes ")?;
    let (span, size) = rest.split_once('/')?;
    let size: u64 = size.parse().ok()?;
    let (a, b) = span.split_once('-')?;
    let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
    (a <= b && b < size).then_some((size, a..b + 1))
}

/// Whether a `Content-Range` answer starts at or past the end of the object: a range
/// that could not be satisfied (Azurite answers `206` with `bytes 1000-999/1000` where
/// Azure answers `416`).
pub fn past_end(v: &str) -> bool {
    let Some((span, size)) = v.strip_prefix("bytes ").and_then(|r| r.split_once('/')) else {
        return false;
    };
    let first = span
        .split_once('-')
        .and_then(|(a, _)| a.parse::<u64>().ok());
    matches!((first, size.parse::<u64>()), (Some(a), Ok(size)) if a >= size)
}

/// A tag set as S3 (PutObjectTagging) and Azure (Set Blob Tags) take it:
/// `<root><TagSet><Tag><Key>k</Key><Value>v</Value></Tag>...</TagSet></root>`; `root`
/// is the root element's opening, namespace included where one is wanted.
pub fn tag_set_xml(root: &str, tags: &crate::model::Tags) -> String {
    use quick_xml::escape::escape;
    let name = root.split_whitespace().next().unwrap_or(root);
    let mut xml = format!(r#"<?xml version="1.0" encoding="UTF-8"?><{root}><TagSet>"#);
    for (k, v) in tags {
        xml.push_str(&format!(
            "<Tag><Key>{}</Key><Value>{}</Value></Tag>",
            escape(k.as_str()),
            escape(v.as_str())
        ));
    }
    xml.push_str(&format!("</TagSet></{name}>"));
    xml
}

/// Reads a tag set as S3 (GetObjectTagging, root `Tagging`) and Azure (Get Blob Tags,
/// root `Tags`) answer it: the `Key` and `Value` of each `Tag` of its `TagSet`.
pub fn parse_tag_set(xml: &[u8], root: &str) -> Result<crate::model::Tags, String> {
    use quick_xml::events::Event;
    let root = root.as_bytes();
    let mut reader = quick_xml::Reader::from_reader(xml);
    // Depth 1 is the root, 2 the TagSet, 3 a Tag, 4 its Key or Value.
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut text = String::new();
    let mut tags = crate::model::Tags::new();
    let (mut key, mut value) = (None, None);
    let mut root_seen = false;
    let within_tag = |path: &[Vec<u8>]| {
        path.len() == 3 && path[1].as_slice() == b"TagSet" && path[2].as_slice() == b"Tag"
    };
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_vec();
                if path.is_empty() {
                    if name != root {
                        return Err(format!("root element {:?}", String::from_utf8_lossy(&name)));
                    }
                    root_seen = true;
                }
                path.push(name);
                text.clear();
            }
            Event::Empty(e) if path.is_empty() && e.local_name().as_ref() == root => {
                root_seen = true;
            }
            // `<Value/>`: an empty value.
            Event::Empty(e) if within_tag(&path) && e.local_name().as_ref() == b"Value" => {
                value = Some(String::new());
            }
            Event::Text(t) => text.push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::GeneralRef(r) => push_xml_ref(&mut text, &r)?,
            Event::CData(t) => text.push_str(&String::from_utf8_lossy(&t)),
            Event::End(_) => {
                let name = path.last().cloned().unwrap_or_default();
                let parent = &path[..path.len().saturating_sub(1)];
                if within_tag(parent) && name == b"Key" {
                    key = Some(std::mem::take(&mut text));
                } else if within_tag(parent) && name == b"Value" {
                    value = Some(std::mem::take(&mut text));
                } else if within_tag(&path) {
                    let k = key.take().ok_or("a Tag without a Key")?;
                    tags.insert(k, value.take().unwrap_or_default());
                }
                path.pop();
            }
            Event::Eof if !path.is_empty() => {
                return Err("the answer ends inside an element".into());
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !root_seen {
        return Err(format!("no {}", String::from_utf8_lossy(root)));
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_sets_go_to_s3_and_azure_and_back_as_xml() {
        let tags: crate::model::Tags = [("a&b <c>", "été \"q\""), ("empty", ""), ("k", "v")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let s3 = tag_set_xml(
            r#"Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/""#,
            &tags,
        );
        assert!(s3.ends_with("</TagSet></Tagging>"), "{s3}");
        assert_eq!(parse_tag_set(s3.as_bytes(), "Tagging").unwrap(), tags);
        assert_eq!(
            parse_tag_set(tag_set_xml("Tags", &tags).as_bytes(), "Tags").unwrap(),
            tags
        );
        // As S3 answers: namespaced, an empty value as an empty element.
        let answer = r#"<?xml version="1.0" encoding="UTF-8"?>
<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet>
  <Tag><Key>team</Key><Value>blue</Value></Tag>
  <Tag><Key>k</Key><Value/></Tag>
</TagSet></Tagging>"#;
        let got = parse_tag_set(answer.as_bytes(), "Tagging").unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got["team"], "blue");
        assert_eq!(got["k"], "");
        let none = parse_tag_set(b"<Tags><TagSet/></Tags>", "Tags").unwrap();
        assert!(none.is_empty());
        for bad in [
            &b""[..],
            b"<Error><Code>NoSuchKey</Code></Error>",
            b"<Tagging><TagSet><Tag><Value>v</Value></Tag></TagSet></Tagging>",
            b"<Tagging><TagSet><Tag>",
        ] {
            assert!(
                parse_tag_set(bad, "Tagging").is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn content_ranges_parse_and_nonsense_does_not() {
        assert_eq!(content_range("bytes 0-0/1"), Some((1, 0..1)));
        assert_eq!(content_range("bytes 10-19/100"), Some((100, 10..20)));
        for bad in [
            "bytes 5-4/10",
            "bytes 0-10/10",
            "bytes */10",
            "bytes 0-9/*",
            "items 0-9/10",
            "bytes 0-9",
            "",
        ] {
            assert_eq!(content_range(bad), None, "{bad:?}");
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
