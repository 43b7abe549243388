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
    /// requests that can be repeated: reads, and writes of a body held in memory.
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
                Ok(Ok(r)) if !r.status().is_server_error() => return Ok(r),
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

    /// An answer's body as a stream that fails when the backend sends nothing for the idle
    /// timeout.
    pub fn body_stream(&self, resp: reqwest::Response) -> ByteStream {
        let backend = self.backend.clone();
        let idle = self.idle_timeout;
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

    /// Sends `req` with `body` streamed as its body (chunked: nothing is buffered), and
    /// fails when neither a chunk went out nor an answer came for the idle timeout. Time
    /// spent waiting for the client's next bytes is not the backend's silence: the
    /// client's own timeout bounds it. An error item in `body` aborts the request (the
    /// backend sees a cut body and commits nothing) and is the error returned.
    pub async fn send_streaming(
        &self,
        req: reqwest::RequestBuilder,
        body: Body,
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
            let mut body = body;
            futures::stream::poll_fn(move |cx| {
                let r = body.poll_next_unpin(cx);
                reading.store(r.is_pending(), Ordering::Relaxed);
                if r.is_ready() {
                    progress.store(elapsed_ms(), Ordering::Relaxed);
                }
                r
            })
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
