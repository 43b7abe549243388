//! The load generator: one HTTP/1.1 keep-alive connection per concurrent worker (hyper's
//! low-level client, no pool to contend on), requests signed with SigV4 by `aws-sigv4`
//! (`UNSIGNED-PAYLOAD`, so bodies are never hashed by the client), PUT bodies shared as one
//! `Bytes` (no copy per request), response bodies counted and dropped. The same client
//! drives every target, so its own cost is the same in every row.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::sync::Mutex;

pub type Body = BoxBody<Bytes, Infallible>;

/// Signs requests for one user. Region `us-east-1`, service `s3`.
#[derive(Clone)]
pub struct Signer {
    identity: Identity,
}

impl Signer {
    pub fn new(access_key: &str, secret_key: &str) -> Self {
        let creds = Credentials::new(access_key, secret_key, None, None, "bench");
        Self {
            identity: creds.into(),
        }
    }

    /// The headers that sign `method host path_and_query` with an unsigned payload.
    pub fn sign(
        &self,
        method: &str,
        host: &str,
        path_and_query: &str,
    ) -> Result<Vec<(&'static str, String)>> {
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region("us-east-1")
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()?
            .into();
        let uri = format!("http://{host}{path_and_query}");
        let req = SignableRequest::new(
            method,
            uri,
            std::iter::once(("host", host)),
            SignableBody::UnsignedPayload,
        )?;
        let (instructions, _) = sign(req, &params)?.into_parts();
        let (headers, _) = instructions.into_parts();
        Ok(headers
            .into_iter()
            .map(|h| (h.name(), h.value().to_owned()))
            .collect())
    }
}

/// Where requests go: an S3 endpoint and the bucket on it.
#[derive(Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub host: String,
    pub signer: Signer,
}

impl Endpoint {
    pub fn new(addr: SocketAddr, signer: Signer) -> Self {
        Self {
            addr,
            host: addr.to_string(),
            signer,
        }
    }
}

/// What one request brought back.
pub struct Reply {
    pub status: u16,
    /// Bytes of response body received.
    pub bytes: u64,
    /// The body, when kept (errors, listings being checked).
    pub text: Option<String>,
}

/// One keep-alive connection; reconnects when the server closed it.
pub struct Conn {
    endpoint: Endpoint,
    sender: Option<SendRequest<Body>>,
}

impl Conn {
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            sender: None,
        }
    }

    async fn sender(&mut self) -> Result<&mut SendRequest<Body>> {
        let usable = match &mut self.sender {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        if !usable {
            let stream = tokio::net::TcpStream::connect(self.endpoint.addr)
                .await
                .with_context(|| format!("connecting to {}", self.endpoint.addr))?;
            stream.set_nodelay(true)?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .context("HTTP handshake")?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("connected above"))
    }

    /// Opens the connection ahead of the first request (outside any timed section).
    pub async fn warm(&mut self) -> Result<()> {
        self.sender().await.map(|_| ())
    }

    /// Sends one signed request and reads the whole response. `keep_body` keeps the
    /// response text (always kept for errors, up to 2 KiB).
    pub async fn send(
        &mut self,
        method: &str,
        path_and_query: &str,
        body: Option<(Body, u64)>,
        keep_body: bool,
    ) -> Result<Reply> {
        let headers = self
            .endpoint
            .signer
            .sign(method, &self.endpoint.host, path_and_query)?;
        let mut req = http::Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(http::header::HOST, &self.endpoint.host);
        for (name, value) in headers {
            req = req.header(name, value);
        }
        let req = match body {
            Some((body, len)) => req.header(http::header::CONTENT_LENGTH, len).body(body)?,
            None => req.body(Empty::new().boxed())?,
        };
        let sender = self.sender().await?;
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                self.sender = None;
                return Err(anyhow!("request failed: {e}"));
            }
        };
        let status = resp.status().as_u16();
        let keep = keep_body || !(200..300).contains(&status);
        let mut body = resp.into_body();
        let mut bytes = 0u64;
        let mut text = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                self.sender = None;
                anyhow!("reading the response: {e}")
            })?;
            if let Some(data) = frame.data_ref() {
                bytes += data.len() as u64;
                if keep && (keep_body || text.len() < 2048) {
                    text.extend_from_slice(data);
                }
            }
        }
        Ok(Reply {
            status,
            bytes,
            text: keep.then(|| String::from_utf8_lossy(&text).into_owned()),
        })
    }
}

/// A body of `size` bytes sent from one shared buffer.
pub fn fixed_body(data: &Bytes) -> (Body, u64) {
    (Full::new(data.clone()).boxed(), data.len() as u64)
}

/// A body of `size` bytes made on the fly by repeating `chunk`: never held in memory.
pub fn streamed_body(chunk: &Bytes, size: u64) -> (Body, u64) {
    let chunk = chunk.clone();
    let step = chunk.len() as u64;
    let frames = futures::stream::iter((0..size.div_ceil(step)).map(move |i| {
        let n = step.min(size - i * step) as usize;
        Ok::<_, Infallible>(Frame::data(chunk.slice(..n)))
    }));
    (StreamBody::new(frames).boxed(), size)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Put,
    Get,
    List,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Put => "PUT",
            Op::Get => "GET",
            Op::List => "LIST",
        }
    }
}

/// Bounds of one timed phase: it stops at `duration` or `max_requests`, whichever comes
/// first, but every worker makes at least one request.
#[derive(Clone, Copy)]
pub struct Budget {
    pub duration: Duration,
    pub max_requests: u64,
}

/// Results of one phase. Every latency is kept (in nanoseconds, sorted) and percentiles
/// are exact: a phase has at most `max_requests` samples (200,000 by default, 1.6 MB), so
/// a histogram would save nothing worth its approximation.
#[derive(Default)]
pub struct Outcome {
    pub requests: u64,
    pub errors: u64,
    pub payload_bytes: u64,
    pub elapsed: Duration,
    pub latencies: Vec<u64>,
    pub first_error: Option<String>,
    /// Keys written (PUT).
    pub written: Vec<String>,
}

impl Outcome {
    /// Adds another phase of the same workload (another round).
    pub fn merge(&mut self, other: Outcome) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.payload_bytes += other.payload_bytes;
        self.elapsed += other.elapsed;
        self.latencies.extend(other.latencies);
        self.latencies.sort_unstable();
        self.written.extend(other.written);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    pub fn req_per_s(&self) -> f64 {
        (self.requests - self.errors) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    pub fn mb_per_s(&self) -> f64 {
        self.payload_bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }
    /// Nearest-rank percentile, in microseconds.
    pub fn percentile_us(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((p * self.latencies.len() as f64).ceil() as usize).max(1);
        self.latencies[rank.min(self.latencies.len()) - 1] as f64 / 1e3
    }
}

/// What a phase does per request.
#[derive(Clone)]
pub enum Work {
    /// PUT `size` bytes from `data` to `{bucket}/{prefix}/w{worker}-{i}`.
    Put {
        bucket: String,
        prefix: String,
        data: Bytes,
    },
    /// GET these keys, round robin, each worker starting at its own offset.
    Get {
        bucket: String,
        keys: Arc<Vec<String>>,
        size: u64,
    },
    /// ListObjectsV2 of `prefix` (one page of up to 1000 keys).
    List { bucket: String, prefix: String },
}

/// Runs one phase with `concurrency` workers, each on its own connection (opened before
/// the clock starts).
pub async fn run(
    endpoint: &Endpoint,
    work: &Work,
    concurrency: usize,
    budget: Budget,
) -> Result<Outcome> {
    let mut conns = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let mut c = Conn::new(endpoint.clone());
        c.warm().await?;
        conns.push(c);
    }
    let issued = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (w, mut conn) in conns.into_iter().enumerate() {
        let (work, issued, first_error) = (work.clone(), issued.clone(), first_error.clone());
        let concurrency = concurrency as u64;
        tasks.spawn(async move {
            let mut out = Outcome::default();
            let mut i = 0usize;
            loop {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if n >= budget.max_requests
                    || (n >= concurrency && started.elapsed() >= budget.duration)
                {
                    break;
                }
                let t = Instant::now();
                let (result, payload, key) = match &work {
                    Work::Put {
                        bucket,
                        prefix,
                        data,
                    } => {
                        let key = format!("{prefix}/w{w}-{i}");
                        let path = format!("/{bucket}/{key}");
                        let r = conn.send("PUT", &path, Some(fixed_body(data)), false).await;
                        (r, data.len() as u64, Some(key))
                    }
                    Work::Get { bucket, keys, size } => {
                        let key = &keys[(w * 7919 + i) % keys.len()];
                        let r = conn
                            .send("GET", &format!("/{bucket}/{key}"), None, false)
                            .await;
                        let r = r.and_then(|r| {
                            if r.status == 200 && r.bytes != *size {
                                bail!("GET {key}: {} bytes, expected {size}", r.bytes)
                            }
                            Ok(r)
                        });
                        (r, *size, None)
                    }
                    Work::List { bucket, prefix } => {
                        let path = format!("/{bucket}?list-type=2&max-keys=1000&prefix={prefix}");
                        let r = conn.send("GET", &path, None, false).await;
                        (r, 0, None)
                    }
                };
                let elapsed = t.elapsed();
                i += 1;
                out.requests += 1;
                let failure = match result {
                    Ok(r) if (200..300).contains(&r.status) => None,
                    Ok(r) => Some(format!(
                        "HTTP {}: {}",
                        r.status,
                        r.text
                            .unwrap_or_default()
                            .chars()
                            .take(300)
                            .collect::<String>()
                    )),
                    Err(e) => Some(format!("{e:#}")),
                };
                match failure {
                    None => {
                        out.latencies.push(elapsed.as_nanos() as u64);
                        out.payload_bytes += payload;
                        out.written.extend(key);
                    }
                    Some(msg) => {
                        out.errors += 1;
                        let mut first = first_error.lock().await;
                        if first.is_none() {
                            *first = Some(msg);
                        }
                    }
                }
            }
            out
        });
    }
    let mut total = Outcome::default();
    while let Some(r) = tasks.join_next().await {
        let o = r.context("load worker panicked")?;
        total.requests += o.requests;
        total.errors += o.errors;
        total.payload_bytes += o.payload_bytes;
        total.latencies.extend(o.latencies);
        total.written.extend(o.written);
    }
    total.elapsed = started.elapsed();
    total.latencies.sort_unstable();
    total.first_error = first_error.lock().await.take();
    Ok(total)
}

/// Time one signature takes (the client's own cost per request), in microseconds.
pub fn signing_cost_us(signer: &Signer) -> f64 {
    let n = 20_000;
    let t = Instant::now();
    for i in 0..n {
        let path = format!("/bench/key-{i}");
        std::hint::black_box(signer.sign("GET", "127.0.0.1:9000", &path).ok());
    }
    t.elapsed().as_secs_f64() * 1e6 / n as f64
}
