//! One S3 request from arrival to its answer's last byte: what the access log line and
//! the request metrics say of it.
//!
//! The parts of the engine that learn something about a request (the access hook its
//! operation, bucket, key and principal; the router the backend that served it; the error
//! mapping what went wrong) write it here through the task-local [`Exchange::current`];
//! the listener writes the status and counts the bytes. When the answer's body ends (or
//! the client goes away), [`Exchange::finish`] writes one log line and updates the metrics
//! once: a failed request is one line, not one per layer that saw the failure.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Instant;

use tracing::Instrument as _;

use std::collections::HashMap;

use super::access_log;
use super::request_id::RequestId;
use crate::metrics::{Metrics, Name};

/// What is known of a request, filled in as it goes.
#[derive(Default)]
struct Fields {
    /// The S3 operation: its name (`PutObject`) and label (`put_object`).
    op: Option<(&'static str, &'static str)>,
    bucket: Option<Box<str>>,
    key: Option<Box<str>>,
    /// The access key that signed the request; none: anonymous.
    principal: Option<Box<str>>,
    /// The backend (or backends, comma separated) that served or stored it.
    backend: Option<Box<str>>,
    /// Set once the router found the bucket: only then is its name a metrics label.
    bucket_label: Option<Name>,
    /// The S3 error code answered, and what the engine knows of the cause.
    error: Option<(Box<str>, Box<str>)>,
}

pub struct Exchange {
    pub id: RequestId,
    started: Instant,
    client: SocketAddr,
    method: http::Method,
    metrics: Arc<Metrics>,
    fields: Mutex<Fields>,
    /// Request body bytes as they arrived (framing included).
    received: AtomicU64,
    /// Answer body bytes handed to the connection.
    sent: AtomicU64,
    status: AtomicU16,
    /// The client stopped sending its body for the client timeout.
    stalled: AtomicBool,
    finished: AtomicBool,
}

tokio::task_local! {
    static CURRENT: Arc<Exchange>;
}

impl Exchange {
    pub fn new(client: SocketAddr, method: http::Method, metrics: Arc<Metrics>) -> Arc<Self> {
        metrics.request_started();
        Arc::new(Self {
            id: RequestId::next(),
            started: Instant::now(),
            client,
            method,
            metrics,
            fields: Mutex::default(),
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            status: AtomicU16::new(0),
            stalled: AtomicBool::new(false),
            finished: AtomicBool::new(false),
        })
    }

    /// Runs a request's handling with `self` as the current exchange (a task-local:
    /// nothing is allocated to carry it), inside the request's span: whatever the engine
    /// logs while it handles the request (the access check included, which runs before
    /// the operation is known) names the request. The span is at error level so that a
    /// filter that keeps only warnings keeps it too; its `op` and `bucket` are filled in
    /// once the operation is known (`frontend::traced`).
    pub async fn scope<F: Future>(self: &Arc<Self>, f: F) -> F::Output {
        CURRENT
            .scope(self.clone(), f.instrument(request_span(&self.id)))
            .await
    }

    /// Applies `f` to the exchange of the request the current task handles, if any (the
    /// mover's and other background work's calls have none).
    pub fn with_current(f: impl FnOnce(&Exchange)) {
        let _ = CURRENT.try_with(|e| f(e));
    }

    fn fields(&self) -> std::sync::MutexGuard<'_, Fields> {
        self.fields.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the access hook learns: the operation and whom it is for.
    pub fn set_request(
        &self,
        op: &str,
        bucket: Option<&str>,
        key: Option<&str>,
        principal: Option<&str>,
    ) {
        let mut f = self.fields();
        f.op = Some(operation(op));
        f.bucket = bucket.map(Into::into);
        f.key = key.map(Into::into);
        f.principal = principal.map(Into::into);
    }

    /// The router found `bucket`: requests to it are counted under its name.
    /// Only the bucket the request names counts (a copy also looks up its source's).
    pub fn bucket_found(&self, bucket: &str) {
        let mut f = self.fields();
        if f.bucket_label.is_none() && f.bucket.as_deref() == Some(bucket) {
            f.bucket_label = Some(self.metrics.bucket_label(bucket));
        }
    }

    pub fn set_backend(&self, backend: &str) {
        self.fields().backend = Some(backend.into());
    }

    /// The S3 error answered and its cause (the engine's message, which for a server
    /// error says what failed inside).
    pub fn set_error(&self, code: &str, cause: &str) {
        let mut f = self.fields();
        let cause = match f.error.take() {
            Some((_, noted)) if &*noted != "-" => format!("{cause} (after: {noted})"),
            _ => cause.to_owned(),
        };
        f.error = Some((code.into(), cause.into()));
    }

    /// Something that went wrong inside a request that may still succeed (a member that
    /// failed a read another member then served, a policy that fell back to the default):
    /// it goes on the request's access log line (its `error` field, which a later error
    /// replaces) rather than on a line of its own. False outside a request (the mover's
    /// calls), where the caller logs it itself.
    pub fn note(text: &str) -> bool {
        CURRENT
            .try_with(|x| {
                let mut f = x.fields();
                match &mut f.error {
                    Some((_, cause)) if &**cause != "-" => {
                        *cause = format!("{cause}; {text}").into();
                    }
                    _ => f.error = Some(("-".into(), text.into())),
                }
            })
            .is_ok()
    }

    /// The code of an error answered by s3s itself, which no handler saw.
    pub fn error_code_if_unset(&self, code: &str) {
        let mut f = self.fields();
        match &mut f.error {
            None => f.error = Some((code.into(), "-".into())),
            Some((c, _)) if &**c == "-" => *c = code.into(),
            Some(_) => {}
        }
    }

    pub fn set_status(&self, status: http::StatusCode) {
        self.status.store(status.as_u16(), Ordering::Relaxed);
    }

    pub fn received(&self, n: usize) {
        self.received.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn sent(&self, n: usize) {
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn mark_stalled(&self) {
        self.stalled.store(true, Ordering::Relaxed);
    }

    pub fn stalled(&self) -> bool {
        self.stalled.load(Ordering::Relaxed)
    }

    /// Writes the access log line and counts the request, once. `complete`: the whole
    /// answer was handed to the connection (else the client left before its end).
    pub fn finish(&self, complete: bool) {
        if self.finished.swap(true, Ordering::Relaxed) {
            return;
        }
        let elapsed = self.started.elapsed();
        let status = self.status.load(Ordering::Relaxed);
        let (received, sent) = (
            self.received.load(Ordering::Relaxed),
            self.sent.load(Ordering::Relaxed),
        );
        let f = std::mem::take(&mut *self.fields());
        let label = f.op.map_or("unknown", |(_, label)| label);
        let bucket = f
            .bucket_label
            .unwrap_or_else(|| self.metrics.unfound_bucket_label(f.bucket.is_some()));
        self.metrics
            .request_done(label, bucket, status, elapsed.as_secs_f64(), received, sent);
        let (code, cause) = f.error.as_ref().map_or(("-", "-"), |(c, m)| (&**c, &**m));
        access_log::write(&access_log::Line {
            warn: status >= 500,
            message: if status >= 500 {
                "request failed"
            } else {
                "request"
            },
            request_id: &self.id,
            principal: f.principal.as_deref().unwrap_or("-"),
            client: &self.client,
            method: self.method.as_str(),
            operation: f.op.map_or("-", |(name, _)| name),
            bucket: f.bucket.as_deref().unwrap_or("-"),
            key: f.key.as_deref().unwrap_or("-"),
            status,
            error_code: code,
            bytes_in: received,
            bytes_out: sent,
            backend: f.backend.as_deref().unwrap_or("-"),
            latency_ms: elapsed.as_secs_f64() * 1e3,
            complete,
            error: cause,
        });
    }
}

impl Drop for Exchange {
    /// A request whose answer was never made (its connection closed while the handler
    /// ran) is still one request, answered to nobody.
    fn drop(&mut self) {
        self.finish(false);
    }
}

/// An S3 operation's name (s3s's, `PutObject`) and its label value (`put_object`), each
/// made once: the names are s3s's closed set.
fn operation(op: &str) -> (&'static str, &'static str) {
    type Names = HashMap<Box<str>, (&'static str, &'static str)>;
    static NAMES: OnceLock<RwLock<Names>> = OnceLock::new();
    let names = NAMES.get_or_init(Default::default);
    if let Some(n) = names.read().unwrap_or_else(|e| e.into_inner()).get(op) {
        return *n;
    }
    let mut snake = String::with_capacity(op.len() + 4);
    for (i, c) in op.char_indices() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                snake.push('_');
            }
            snake.push(c.to_ascii_lowercase());
        } else {
            snake.push(c);
        }
    }
    *names
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .entry(op.into())
        .or_insert_with(|| {
            (
                Box::leak(op.to_owned().into_boxed_str()),
                Box::leak(snake.into_boxed_str()),
            )
        })
}

/// An answer's body, reporting its bytes to the exchange and finishing it at the end.
pub struct Reported<B: hyper::body::Body> {
    inner: B,
    exchange: Arc<Exchange>,
    /// Bytes still to send of a body of known length: hyper stops polling once it has
    /// sent as many as the `Content-Length` says, so the end is seen here.
    remaining: Option<u64>,
    /// The answer to a HEAD request: its body is never sent.
    head: bool,
}

impl<B: hyper::body::Body> Reported<B> {
    /// `length`: the answer's `Content-Length`, when it has one.
    pub fn new(inner: B, exchange: Arc<Exchange>, head: bool, length: Option<u64>) -> Self {
        let remaining = inner.size_hint().exact().or(length);
        Self {
            inner,
            exchange,
            remaining,
            head,
        }
    }

    fn complete(&self) -> bool {
        self.head || self.remaining == Some(0) || self.inner.is_end_stream()
    }
}

impl<B> hyper::body::Body for Reported<B>
where
    B: hyper::body::Body<Data = bytes::Bytes> + Unpin,
{
    type Data = bytes::Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, B::Error>>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        match &r {
            std::task::Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len();
                    self.exchange.sent(n);
                    if let Some(r) = &mut self.remaining {
                        *r = r.saturating_sub(n as u64);
                    }
                    if self.remaining == Some(0) {
                        self.exchange.finish(true);
                    }
                }
            }
            std::task::Poll::Ready(None) => self.exchange.finish(true),
            std::task::Poll::Ready(Some(Err(_))) => self.exchange.finish(false),
            std::task::Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl<B: hyper::body::Body> Drop for Reported<B> {
    /// hyper drops a body it knows to be empty (or a HEAD answer's) without polling it:
    /// that answer was complete. Any other body dropped before its end was cut short.
    fn drop(&mut self) {
        self.exchange.finish(self.complete());
    }
}

/// The span a request is handled in (its `op` and `bucket` recorded once known); public
/// for the gateway benchmark, which times what it costs.
pub fn request_span(id: &dyn std::fmt::Display) -> tracing::Span {
    tracing::error_span!(
        "s3",
        request_id = %id,
        op = tracing::field::Empty,
        bucket = tracing::field::Empty,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_labels_are_snake_case() {
        assert_eq!(operation("PutObject"), ("PutObject", "put_object"));
        assert_eq!(operation("ListObjectsV2").1, "list_objects_v2");
        assert_eq!(operation("GetObject").1, "get_object");
        assert_eq!(
            operation("CreateMultipartUpload").1,
            "create_multipart_upload"
        );
    }
}
