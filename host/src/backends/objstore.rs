//! Backends reached through `object_store`: S3, Azure Blob, GCS and in-memory.
//!
//! Where object_store hides what an S3 client must be answered, requests bypass it:
//! `s3direct.rs` (S3 with static credentials), `azure.rs` and `gcs.rs` (object reads,
//! writes and listings, for the S3 ETag and folder markers). Memory members keep every
//! object's S3 ETag as the metadata [`ETAG_META`] (object_store's in-memory ETags are
//! counters), and folder markers in a second in-memory store.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicUsize, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, ClientOptions, GetOptions, GetRange, ObjectStore,
    ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, RetryConfig,
    UpdateVersion, WriteMultipart,
};

use super::azure::AzureDirect;
use super::gcs::GcsDirect;
use super::{PartRef, Store, is_marker};
use crate::config::{BackendConfig, ConfigError, NetworkConfig};
use crate::model::{
    Attrs, Body, ByteRange, ByteStream, Declared, ETAG_META, Error, GetOutcome, ObjectInfo,
    ObjectSummary, PutOutcome, RESERVED_PREFIX, ReadConditions, Result, TAGS_META, WriteCondition,
};

use super::s3direct::{MAX_SINGLE_PUT, S3Direct};

/// Read chunks smaller than this are gathered up to it before they go on.
const COALESCE_BYTES: usize = 64 * 1024;
/// When the backend has sent less than one such chunk by the time it is read while much
/// of the body is still to come, it writes in small pieces as it reads them (s3s-fs sends
/// 4 KiB at a time): the gateway then pauses this long before its next read, so that
/// the socket gathers the pieces and one wake-up and one system call take them all.
const TRICKLE_PAUSE: std::time::Duration = std::time::Duration::from_millis(1);
/// A backend that still has not sent a full chunk after a pause is slow, not only
/// trickling (16 GETs at once from s3s-fs get about 20 MB/s each: 20 KiB a millisecond),
/// so the pause doubles, up to this, until a read finds a full chunk. The socket's
/// receive buffer (megabytes, as the kernel sizes it) holds what arrives meanwhile, so the
/// backend is not slowed; a chunk waits at most this long.
const TRICKLE_PAUSE_MAX: std::time::Duration = std::time::Duration::from_millis(8);

/// Gathers the small chunks a backend's response arrives in into chunks of about
/// `target` bytes, taking only what is already there: a copy of a few KiB costs far less
/// than the write system call per chunk it saves on the way to the client, and a slow
/// backend's bytes are never held back waiting for more. `len` is the length the backend
/// announced: a pause starts only while more of the body is to come than the last pause
/// gathered (scaled to the next one's length) plus a chunk, so that no pause outlasts the
/// body and delays its end.
/// `may_pause` is asked, with the bytes still to come, before each pause.
fn coalesce(
    mut inner: ByteStream,
    target: usize,
    len: u64,
    mut may_pause: impl FnMut(u64) -> bool + Send + 'static,
) -> ByteStream {
    use std::task::Poll;
    let mut buf = bytes::BytesMut::new();
    let mut failed: Option<Error> = None;
    let mut done = false;
    // Bytes announced and not yet read from `inner`.
    let mut remaining = len;
    let mut pause: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    // The next pause, the last pause's length, and the bytes read since it ended.
    let mut pause_len = TRICKLE_PAUSE;
    let mut last_pause: Option<std::time::Duration> = None;
    let mut since_pause: u64 = 0;
    futures::stream::poll_fn(move |cx| {
        if let Some(e) = failed.take() {
            return Poll::Ready(Some(Err(e)));
        }
        // Whether this read follows a pause (a pending one stays until it has run out).
        let after_pause = match pause.as_mut() {
            Some(p) => {
                futures::ready!(p.as_mut().poll(cx));
                pause = None;
                true
            }
            None => false,
        };
        loop {
            if done {
                return Poll::Ready((!buf.is_empty()).then(|| Ok(buf.split().freeze())));
            }
            match inner.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    remaining = remaining.saturating_sub(chunk.len() as u64);
                    since_pause += chunk.len() as u64;
                    if buf.is_empty() && chunk.len() >= target {
                        pause_len = TRICKLE_PAUSE;
                        return Poll::Ready(Some(Ok(chunk)));
                    }
                    buf.extend_from_slice(&chunk);
                    if buf.len() >= target {
                        pause_len = TRICKLE_PAUSE;
                        return Poll::Ready(Some(Ok(buf.split().freeze())));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    if buf.is_empty() {
                        return Poll::Ready(Some(Err(e)));
                    }
                    failed = Some(e);
                    return Poll::Ready(Some(Ok(buf.split().freeze())));
                }
                Poll::Ready(None) => done = true,
                Poll::Pending if buf.is_empty() => return Poll::Pending,
                Poll::Pending => {
                    let out = buf.split().freeze();
                    if after_pause {
                        pause_len = (pause_len * 2).min(TRICKLE_PAUSE_MAX);
                    }
                    let expected = last_pause.map_or(target as u64, |last| {
                        let scaled = u128::from(since_pause) * pause_len.as_micros()
                            / last.as_micros().max(1);
                        u64::try_from(scaled).unwrap_or(u64::MAX)
                    });
                    if remaining >= expected.saturating_add(target as u64) && may_pause(remaining) {
                        pause = Some(Box::pin(tokio::time::sleep(pause_len)));
                        last_pause = Some(pause_len);
                        since_pause = 0;
                    }
                    return Poll::Ready(Some(Ok(out)));
                }
            }
        }
    })
    .boxed()
}

/// GET bodies being gathered at this moment, in the whole engine.
static GATHERING: AtomicUsize = AtomicUsize::new(0);

/// A body with more than this still to come pauses whatever the engine's load.
const PAUSE_ALWAYS_ABOVE: u64 = 4 << 20;

/// Whether a body with `remaining` bytes to come may pause, with `gathering` bodies in
/// the engine and `workers` runtime threads, `waits` telling whether this thread has been
/// kept waiting for a CPU (asked last: it may read a file). A pause trades time for CPU,
/// which is only worth it while the engine is short of CPU: with no more bodies streaming
/// than worker threads and no wait for a CPU, a trickling backend's pieces are read as
/// they come. Pinned to a core of its own, Switchyard took 5.7-6.3 ms for a 1 MiB GET at
/// concurrency 1 with pauses, 4.2-4.4 ms without (level with s3s-fs direct). Sharing two
/// CPUs with the client and s3s-fs, the same GET kept its pauses (1.8-2.3 ms of CPU,
/// against 3.2-3.7 ms when only the body count decided). Long bodies pause whatever the
/// load: pinned, a 64 MiB GET went at 354-360 MB/s with pauses against 269-272 MB/s
/// without, at half the CPU, because the backend's own writes cost less while nobody
/// waits on them.
fn may_pause(
    remaining: u64,
    gathering: usize,
    workers: usize,
    waits: impl FnOnce() -> bool,
) -> bool {
    remaining > PAUSE_ALWAYS_ABOVE || gathering > workers || waits()
}

/// Whether the calling thread spent more than a hundredth of the last stretch (10 ms at
/// least) waiting for a CPU, from the run-queue time Linux keeps per thread
/// (`/proc/thread-self/schedstat`): few bodies streaming does not mean CPU to spare when
/// other processes share the machine. False where the file is missing.
fn waits_for_cpu() -> bool {
    use std::cell::Cell;
    use std::time::{Duration, Instant};
    thread_local! {
        /// When the thread last looked, its run-queue time then, and what it concluded.
        static LAST: Cell<Option<(Instant, u64, bool)>> = const { Cell::new(None) };
    }
    let now = Instant::now();
    let last = LAST.get();
    if let Some((at, _, waits)) = last
        && now.duration_since(at) < Duration::from_millis(10)
    {
        return waits;
    }
    let Some(waited) = std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
    else {
        return false;
    };
    let waits = last.is_some_and(|(at, before, _)| {
        u128::from(waited.saturating_sub(before)) * 100 > now.duration_since(at).as_nanos()
    });
    LAST.set(Some((now, waited, waits)));
    waits
}

/// One body counted in [`GATHERING`] while it lives, and the runtime's worker threads.
struct Gathering {
    workers: usize,
}

impl Gathering {
    fn enter() -> Self {
        GATHERING.fetch_add(1, Ordering::Relaxed);
        let workers =
            tokio::runtime::Handle::try_current().map_or(1, |h| h.metrics().num_workers());
        Self { workers }
    }

    fn may_pause(&self, remaining: u64) -> bool {
        may_pause(
            remaining,
            GATHERING.load(Ordering::Relaxed),
            self.workers,
            waits_for_cpu,
        )
    }
}

impl Drop for Gathering {
    fn drop(&mut self) {
        GATHERING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The body of a GET answered with `outcome`, gathered into chunks of [`COALESCE_BYTES`].
fn gathered(body: ByteStream, outcome: &GetOutcome) -> ByteStream {
    let gathering = Gathering::enter();
    coalesce(
        body,
        COALESCE_BYTES,
        outcome.range.end - outcome.range.start,
        move |remaining| gathering.may_pause(remaining),
    )
}

/// Parts uploaded at once per streaming PUT: bounds memory at `part_size * this`.
const UPLOAD_CONCURRENCY: usize = 4;
/// Memory for part bodies held whole (UploadPart to GCS, memory, and S3 without static
/// credentials), across every upload of the process. A part can be up to 5 GiB: without a
/// bound, a few concurrent large parts would exhaust the machine's memory; with it, they
/// wait their turn.
const PART_BUFFER_BUDGET_KIB: u32 = 1 << 20;

/// Waits until a part of `len` bytes fits in [`PART_BUFFER_BUDGET_KIB`]. A part of unknown
/// or larger size takes the whole budget, so it is held alone.
async fn part_buffer_room(len: Option<u64>) -> tokio::sync::SemaphorePermit<'static> {
    static BUDGET: tokio::sync::Semaphore =
        tokio::sync::Semaphore::const_new(PART_BUFFER_BUDGET_KIB as usize);
    let kib = len.map_or(PART_BUFFER_BUDGET_KIB, |l| {
        u32::try_from(l.div_ceil(1024)).map_or(PART_BUFFER_BUDGET_KIB, |k| {
            k.clamp(1, PART_BUFFER_BUDGET_KIB)
        })
    });
    BUDGET
        .acquire_many(kib)
        .await
        .expect("the part budget is never closed")
}

/// Block size of a staged multipart part (Azure) that is streamed rather than sent whole.
const STAGED_BLOCK: u64 = 4 << 20;
/// Block size of the write that assembles a staged multipart upload (Azure).
const STAGED_ASSEMBLY_BLOCK: u64 = 8 << 20;

/// Reads `body` until at least `limit` bytes have come or it ends: the chunks, and
/// whether the body ended (then they are all of it).
pub(crate) async fn read_up_to(body: &mut Body, limit: u64) -> Result<(Vec<Bytes>, bool)> {
    let mut chunks = Vec::new();
    let mut len = 0u64;
    while len < limit {
        match body.next().await {
            Some(chunk) => {
                let chunk = chunk?;
                len += chunk.len() as u64;
                chunks.push(chunk);
            }
            None => return Ok((chunks, true)),
        }
    }
    Ok((chunks, false))
}

/// A PutObject of up to this size to an S3 member, whose checksum comes in the body's
/// trailer (the SDKs' default), is held in memory until the trailer is read, so that the
/// checksum is kept with the object (as GCS members hold bodies of up to 1 MiB).
pub(crate) const HOLD_FOR_TRAILER: u64 = 1 << 20;

/// How multipart uploads reach the backend.
enum Multipart {
    /// The backend's own multipart API keeps attributes given at creation (S3, GCS).
    Native(Arc<dyn MultipartStore>),
    /// Parts are staged as reserved objects and assembled at completion, for stores whose
    /// multipart API cannot carry attributes (Azure's block lists in object_store 0.14),
    /// or the upload's ETag (memory): the completing write sets them.
    Staged,
}

pub struct ObjectStoreBackend {
    name: String,
    store: Arc<dyn ObjectStore>,
    multipart: Multipart,
    /// Key prefix inside the location, with a trailing `/` (empty for none).
    prefix: String,
    /// Metadata names must be C# identifiers (Azure): see [`encode_meta_name`].
    escape_meta: bool,
    /// S3 with static credentials: streaming single-request PUTs, GETs and listings
    /// without object_store (see [`S3Direct`]).
    direct: Option<Arc<S3Direct>>,
    /// Azure: object reads, writes and listings (see [`AzureDirect`]).
    azure: Option<Arc<AzureDirect>>,
    /// GCS: object reads, writes and listings (see [`GcsDirect`]).
    gcs: Option<Arc<GcsDirect>>,
    /// Memory: folder markers (keys ending in `/`, which object_store paths cannot
    /// name), in a store of their own under the key without its `/`. Its presence also
    /// says that every object's S3 ETag is kept as [`ETAG_META`].
    markers: Option<Arc<object_store::memory::InMemory>>,
    /// Whether the S3 server refuses a body that does not match its `Content-MD5`:
    /// [`MD5_UNKNOWN`] until a probe has told.
    checks_md5: AtomicU8,
    md5_probe_failures: AtomicU32,
    /// One probe at a time: the writes that start together wait for its answer.
    md5_probe: tokio::sync::Mutex<()>,
}

const MD5_UNKNOWN: u8 = 0;
const MD5_CHECKED: u8 = 1;
const MD5_IGNORED: u8 = 2;

fn config_error(field: String, e: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        field,
        message: e.to_string(),
    }
}

/// `ca_bundle` (with its field name for errors): CA certificates trusted in addition to
/// the system's.
fn client_options(
    network: &NetworkConfig,
    allow_http: bool,
    ca_bundle: (Option<&std::path::Path>, String),
) -> Result<ClientOptions, ConfigError> {
    let mut options = ClientOptions::new()
        .with_allow_http(allow_http)
        .with_connect_timeout(network.connect_timeout)
        .with_read_timeout(network.read_timeout)
        // A total timeout would cut multi-GiB transfers; the read timeout catches stalls.
        .with_timeout_disabled();
    let (bundle, field) = ca_bundle;
    if let Some(path) = bundle {
        for der in crate::tls::read_ca_bundle(path).map_err(|e| config_error(field.clone(), e))? {
            let cert = object_store::Certificate::from_der(&der)
                .map_err(|e| config_error(field.clone(), e))?;
            options = options.with_root_certificate(cert);
        }
    }
    Ok(options)
}

fn retry_config(network: &NetworkConfig) -> RetryConfig {
    RetryConfig {
        max_retries: network.max_retries,
        retry_timeout: network.retry_timeout,
        ..RetryConfig::default()
    }
}

impl ObjectStoreBackend {
    pub fn memory(name: &str, prefix: Option<String>) -> Self {
        let store = Arc::new(object_store::memory::InMemory::new());
        let mut backend = Self::new(name, store, Multipart::Staged, prefix);
        backend.markers = Some(Arc::new(object_store::memory::InMemory::new()));
        backend
    }

    fn new(
        name: &str,
        store: Arc<dyn ObjectStore>,
        multipart: Multipart,
        prefix: Option<String>,
    ) -> Self {
        let prefix = prefix
            .filter(|p| !p.is_empty())
            .map(|p| format!("{p}/"))
            .unwrap_or_default();
        Self {
            name: name.to_owned(),
            store,
            multipart,
            prefix,
            escape_meta: false,
            direct: None,
            azure: None,
            gcs: None,
            markers: None,
            checks_md5: AtomicU8::new(MD5_UNKNOWN),
            md5_probe_failures: AtomicU32::new(0),
            md5_probe: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether the S3 server checks `Content-MD5` before it commits. Not every
    /// S3-compatible server does: moto 5 ignores it, s3s-fs 0.14 stores the object and
    /// then answers BadDigest. So the first write with a declared MD5 asks: it sends a
    /// small object under the reserved prefix with a wrong digest, which a checking server
    /// refuses and does not store. Until an answer is known, and for servers that fail
    /// the probe, the bytes are hashed here instead.
    async fn backend_checks_md5(&self, direct: &S3Direct) -> bool {
        let known = || match self.checks_md5.load(Ordering::Relaxed) {
            MD5_CHECKED => Some(true),
            MD5_IGNORED => Some(false),
            _ => None,
        };
        if let Some(checks) = known() {
            return checks;
        }
        let _probing = self.md5_probe.lock().await;
        if let Some(checks) = known() {
            return checks;
        }
        let probe = self.internal_path("probe/content-md5");
        let bytes = Bytes::from_static(b"does this server check Content-MD5?");
        let body = futures::stream::iter([Ok(bytes.clone())]).boxed();
        let wrong = Some([0u8; 16]);
        let none = Attrs::default();
        let answer = direct
            .put(
                probe.as_ref(),
                body,
                bytes.len() as u64,
                wrong,
                &none,
                &WriteCondition::None,
            )
            .await;
        let checks = match answer {
            Err(Error::BadDigest) | Ok(_) => {
                let stored = match self.store.head(&probe).await {
                    Ok(_) => true,
                    Err(object_store::Error::NotFound { .. }) => false,
                    Err(e) => return self.probe_failed(e),
                };
                if stored {
                    tracing::info!(backend = %self.name, "the S3 server stores bodies that fail their Content-MD5: Switchyard hashes what it copies there");
                    let _ = self.store.delete(&probe).await;
                } else {
                    tracing::debug!(backend = %self.name, "the S3 server checks Content-MD5");
                }
                !stored
            }
            Err(e) => return self.probe_failed(e),
        };
        let state = if checks { MD5_CHECKED } else { MD5_IGNORED };
        self.checks_md5.store(state, Ordering::Relaxed);
        checks
    }

    /// A probe that got no answer is asked again by a later write, a few times: a server
    /// that keeps refusing it (say, one that forbids the reserved prefix) is treated as
    /// not checking.
    fn probe_failed(&self, e: impl std::fmt::Display) -> bool {
        let failures = self.md5_probe_failures.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(backend = %self.name, error = %e, failures, "Content-MD5 probe failed");
        if failures >= 3 {
            self.checks_md5.store(MD5_IGNORED, Ordering::Relaxed);
        }
        false
    }

    pub fn from_config(name: &str, cfg: &BackendConfig) -> Result<Self, ConfigError> {
        let field = |f: &str| format!("backends.{name}.{f}");
        let common = cfg.common();
        match cfg {
            BackendConfig::S3(c) => {
                let mut b = object_store::aws::AmazonS3Builder::new()
                    .with_bucket_name(&c.bucket)
                    .with_region(&c.region)
                    .with_virtual_hosted_style_request(c.virtual_hosted_style)
                    .with_client_options(client_options(
                        &c.network,
                        c.allow_http,
                        (c.ca_bundle.as_deref(), field("ca_bundle")),
                    )?)
                    .with_retry(retry_config(&c.network));
                if let Some(endpoint) = &c.endpoint {
                    b = b.with_endpoint(endpoint).with_allow_http(c.allow_http);
                }
                if let Some(k) = &c.access_key_id {
                    b = b.with_access_key_id(k.resolve(&field("access_key_id"))?);
                }
                if let Some(k) = &c.secret_access_key {
                    b = b.with_secret_access_key(k.resolve(&field("secret_access_key"))?);
                }
                if let Some(k) = &c.session_token {
                    b = b.with_token(k.resolve(&field("session_token"))?);
                }
                let store = Arc::new(b.build().map_err(|e| config_error(field("kind"), e))?);
                let mut backend =
                    Self::new(name, store.clone(), Multipart::Native(store), common.prefix);
                backend.direct = S3Direct::from_config(name, c)?.map(Arc::new);
                Ok(backend)
            }
            BackendConfig::Azure(c) => {
                let mut b = object_store::azure::MicrosoftAzureBuilder::new()
                    .with_account(&c.account)
                    .with_container_name(&c.container)
                    .with_client_options(client_options(
                        &c.network,
                        c.allow_http || c.use_emulator,
                        (c.ca_bundle.as_deref(), field("ca_bundle")),
                    )?)
                    .with_retry(retry_config(&c.network));
                if let Some(endpoint) = &c.endpoint {
                    b = b
                        .with_endpoint(endpoint.clone())
                        .with_allow_http(c.allow_http || c.use_emulator);
                } else if c.use_emulator {
                    b = b.with_use_emulator(true);
                }
                let key = match &c.access_key {
                    Some(k) => Some(k.resolve(&field("access_key"))?),
                    None if c.use_emulator => Some(AZURITE_KEY.to_owned()),
                    None => None,
                };
                if let Some(k) = &key {
                    b = b.with_access_key(k);
                }
                let store = b.build().map_err(|e| config_error(field("kind"), e))?;
                let azure = AzureDirect::from_config(name, c, store.credentials().clone(), key)?;
                let mut backend =
                    Self::new(name, Arc::new(store), Multipart::Staged, common.prefix);
                backend.escape_meta = true;
                backend.azure = Some(Arc::new(azure));
                Ok(backend)
            }
            BackendConfig::Gcs(c) => {
                let mut b = object_store::gcp::GoogleCloudStorageBuilder::new()
                    .with_bucket_name(&c.bucket)
                    .with_client_options(client_options(
                        &c.network,
                        c.allow_http,
                        (c.ca_bundle.as_deref(), field("ca_bundle")),
                    )?)
                    .with_retry(retry_config(&c.network));
                if let Some(path) = &c.service_account_path {
                    b = b.with_service_account_path(path.to_string_lossy());
                }
                if let Some(key) = &c.service_account_key {
                    b = b.with_service_account_key(key.resolve(&field("service_account_key"))?);
                }
                if let Some(endpoint) = &c.endpoint {
                    b = b.with_base_url(endpoint);
                    if c.service_account_path.is_none() && c.service_account_key.is_none() {
                        // Emulators take no credentials; a key that disables OAuth says so.
                        let key = serde_json::json!({
                            "disable_oauth": true, "client_email": "", "private_key": "",
                            "private_key_id": "", "gcs_base_url": endpoint,
                        });
                        b = b.with_service_account_key(key.to_string());
                    }
                }
                let store = b.build().map_err(|e| config_error(field("kind"), e))?;
                let gcs = GcsDirect::from_config(name, c, store.credentials().clone())?;
                let store = Arc::new(store);
                let mut backend =
                    Self::new(name, store.clone(), Multipart::Native(store), common.prefix);
                backend.gcs = Some(Arc::new(gcs));
                Ok(backend)
            }
            BackendConfig::Memory(_) => Ok(Self::memory(name, common.prefix)),
            BackendConfig::Fs(_) => unreachable!("fs backends are built by FsStore"),
        }
    }

    fn path(&self, key: &str) -> Path {
        self.raw_path(&format!("{}{key}", self.prefix))
    }

    fn internal_path(&self, rel: &str) -> Path {
        self.raw_path(&format!("{}{RESERVED_PREFIX}{rel}", self.prefix))
    }

    /// object_store's listing, with full keys (the backend's prefix included) and rows
    /// outside `prefix` or not after `offset` possibly among them.
    fn list_through_object_store(
        &self,
        prefix: &str,
        offset: Option<&str>,
    ) -> BoxStream<'static, Result<ObjectSummary>> {
        // object_store lists whole path segments, so list the directory part of the prefix
        // (the caller filters the rest); start just before the prefix to skip what sorts
        // earlier.
        let dir = match prefix.rfind('/') {
            Some(i) => &prefix[..i],
            None => "",
        };
        let full_dir = format!("{}{dir}", self.prefix);
        let full_dir = full_dir.trim_end_matches('/');
        let list_prefix = (!full_dir.is_empty()).then(|| self.raw_path(full_dir));
        let mut start = String::new();
        if !prefix.is_empty() {
            let mut p = prefix.to_owned();
            p.pop();
            start = p;
        }
        if let Some(o) = offset
            && o > start.as_str()
        {
            start = o.to_owned();
        }
        let inner = if start.is_empty() {
            self.store.list(list_prefix.as_ref())
        } else {
            let off = self.raw_path(&format!("{}{start}", self.prefix));
            self.store.list_with_offset(list_prefix.as_ref(), &off)
        };
        let name = self.name.clone();
        inner
            .map_err(move |e| map_error(&name, e))
            .map_ok(|meta| ObjectSummary {
                key: meta.location.into(),
                size: meta.size,
                etag: meta.e_tag.map(unquote),
                last_modified: meta.last_modified,
            })
            .boxed()
    }

    /// Keys were checked by `check_key`, so every segment is valid as it is.
    fn raw_path(&self, full: &str) -> Path {
        Path::parse(full).unwrap_or_else(|_| Path::from(full))
    }

    fn err(&self, e: object_store::Error) -> Error {
        map_error(&self.name, e)
    }

    fn staged_part(nonce: &str, idx: usize) -> String {
        format!("uploads/{nonce}/data/{idx:05}")
    }

    async fn put_streaming(
        &self,
        path: &Path,
        first: Vec<Bytes>,
        mut body: Body,
        attrs: &Attrs,
        part_size: u64,
    ) -> Result<PutOutcome> {
        let opts = PutMultipartOptions {
            attributes: self.attributes(attrs),
            tags: tag_set(&attrs.tags),
            ..Default::default()
        };
        let upload = self
            .store
            .put_multipart_opts(path, opts)
            .await
            .map_err(|e| self.err(e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(
            upload,
            usize::try_from(part_size).unwrap_or(usize::MAX),
        );
        let result: Result<()> = async {
            for chunk in first {
                writer.put(chunk);
            }
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                writer
                    .wait_for_capacity(UPLOAD_CONCURRENCY)
                    .await
                    .map_err(|e| self.err(e))?;
                writer.put(chunk);
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                let r = writer.finish().await.map_err(|e| self.err(e))?;
                Ok(PutOutcome {
                    etag: r.e_tag.map(unquote),
                })
            }
            Err(e) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(backend = %self.name, error = %abort, "aborting a failed upload failed");
                }
                Err(e)
            }
        }
    }

    /// For conditions the backend cannot evaluate in the write itself (large streamed
    /// writes, or a store without conditional PUT): a check before writing. Not atomic; the
    /// docs say so.
    async fn precheck(&self, key: &str, cond: &WriteCondition) -> Result<()> {
        let current = match self.store.head(&self.path(key)).await {
            Ok(meta) => Some(meta.e_tag.map(unquote)),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => return Err(self.err(e)),
        };
        check_write_condition(cond, current.as_ref().map(|e| e.as_deref()))
    }
}

pub(crate) fn check_write_condition(
    cond: &WriteCondition,
    current: Option<Option<&str>>,
) -> Result<()> {
    match (cond, current) {
        (WriteCondition::None, _) => Ok(()),
        (WriteCondition::IfAbsent, None) => Ok(()),
        (WriteCondition::IfAbsent, Some(_)) => {
            Err(Error::Precondition("the object already exists".into()))
        }
        (WriteCondition::IfMatch(_), None) => Err(Error::NotFound),
        (WriteCondition::IfMatch(want), Some(have)) => {
            if want == "*" || have == Some(want.as_str()) {
                Ok(())
            } else {
                Err(Error::Precondition("the ETag does not match".into()))
            }
        }
    }
}

/// Azurite's published development account key.
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub(crate) fn unquote(s: String) -> String {
    let t = s.trim();
    let t = t.strip_prefix("W/").unwrap_or(t);
    t.trim_matches('"').to_owned()
}

pub(crate) fn map_error(backend: &str, e: object_store::Error) -> Error {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } => Error::NotFound,
        E::AlreadyExists { .. } => Error::Precondition("the object already exists".into()),
        E::Precondition { .. } => {
            Error::Precondition("the backend refused the write condition".into())
        }
        E::NotModified { .. } => Error::NotModified,
        E::NotSupported { source } => Error::NotImplemented(source.to_string()),
        E::NotImplemented {
            operation,
            implementer,
        } => Error::NotImplemented(format!("{operation} is not supported by {implementer}")),
        other => Error::Unavailable {
            backend: backend.to_owned(),
            message: other.to_string(),
        },
    }
}

/// Azure metadata names must be C# identifiers, S3's may hold `-` and other punctuation.
/// Names are stored with every character outside `[a-z0-9]` (and a leading digit) written
/// as `_` and two hex digits, so `content-owner` becomes `content_2downer`: reversible,
/// and readable by Azure's own tools.
pub(crate) fn encode_meta_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        if b.is_ascii_lowercase() || (b.is_ascii_digit() && i > 0) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

pub(crate) fn decode_meta_name(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'_'
            && i + 3 <= bytes.len()
            && let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i].to_ascii_lowercase());
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| name.to_ascii_lowercase())
}

pub(crate) fn to_attributes(a: &Attrs, escape_meta: bool) -> Attributes {
    let mut out = Attributes::new();
    let mut set = |k: Attribute, v: &Option<String>| {
        if let Some(v) = v {
            out.insert(k, AttributeValue::from(v.clone()));
        }
    };
    set(Attribute::ContentType, &a.content_type);
    set(Attribute::CacheControl, &a.cache_control);
    set(Attribute::ContentDisposition, &a.content_disposition);
    set(Attribute::ContentEncoding, &a.content_encoding);
    set(Attribute::ContentLanguage, &a.content_language);
    for (k, v) in &a.metadata {
        let k = if escape_meta {
            encode_meta_name(k)
        } else {
            k.clone()
        };
        out.insert(
            Attribute::Metadata(k.into()),
            AttributeValue::from(v.clone()),
        );
    }
    out
}

pub(crate) fn from_attributes(attrs: &Attributes, escape_meta: bool) -> Attrs {
    let mut a = Attrs::default();
    for (k, v) in attrs {
        let v = v.as_ref().to_owned();
        match k {
            Attribute::ContentType => a.content_type = Some(v),
            Attribute::CacheControl => a.cache_control = Some(v),
            Attribute::ContentDisposition => a.content_disposition = Some(v),
            Attribute::ContentEncoding => a.content_encoding = Some(v),
            Attribute::ContentLanguage => a.content_language = Some(v),
            Attribute::Metadata(name) => {
                let name = if escape_meta {
                    decode_meta_name(name)
                } else {
                    name.to_ascii_lowercase()
                };
                // Switchyard's own, not the client's.
                if name != ETAG_META && name != TAGS_META && name != MTIME_META && name != ACL_META
                {
                    a.metadata.insert(name, v);
                }
            }
            _ => {}
        }
    }
    a
}

fn range_unsatisfiable(r: ByteRange, size: u64) -> bool {
    match r {
        ByteRange::Bounded { first, .. } | ByteRange::From(first) => first >= size,
        ByteRange::Suffix(n) => n == 0,
    }
}

fn to_get_range(r: ByteRange) -> GetRange {
    match r {
        ByteRange::Bounded { first, last } => GetRange::Bounded(first..last.saturating_add(1)),
        ByteRange::From(first) => GetRange::Offset(first),
        ByteRange::Suffix(n) => GetRange::Suffix(n),
    }
}

/// Evaluates GET preconditions on the version actually served, in RFC 9110 order, so the
/// answer is the same whatever the backend kind does with conditional headers.
pub(crate) fn check_read_conditions(cond: &ReadConditions, info: &ObjectInfo) -> Result<()> {
    let etag = info.etag.as_deref();
    let matches = |list: &str| {
        list.split(',')
            .map(|t| unquote(t.to_owned()))
            .any(|t| t == "*" || Some(t.as_str()) == etag)
    };
    if let Some(m) = &cond.if_match {
        if !matches(m) {
            return Err(Error::Precondition("If-Match".into()));
        }
    } else if let Some(t) = cond.if_unmodified_since
        && info.last_modified.timestamp() > t.timestamp()
    {
        return Err(Error::Precondition("If-Unmodified-Since".into()));
    }
    if let Some(m) = &cond.if_none_match {
        if matches(m) {
            return Err(Error::NotModified);
        }
    } else if let Some(t) = cond.if_modified_since
        && info.last_modified.timestamp() <= t.timestamp()
    {
        return Err(Error::NotModified);
    }
    Ok(())
}

impl ObjectStoreBackend {
    /// The key's name in the backend: the backend's prefix and the key, as it is (a
    /// checked key is a valid object_store path, but for a folder marker's `/`).
    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Where a memory member keeps `key`: folder markers in their own store, under the
    /// key without its `/`.
    fn memory_location(&self, key: &str) -> (Arc<dyn ObjectStore>, Path) {
        match (&self.markers, key.strip_suffix('/')) {
            (Some(m), Some(dir)) => (m.clone(), self.path(dir)),
            _ => (self.store.clone(), self.path(key)),
        }
    }

    /// Object tags reach only the stores that keep them (see [`Store::keeps_tags`]):
    /// elsewhere a write that sets some is refused, not stripped. A tag set the backend
    /// would refuse (Azure takes fewer characters than S3) is refused before anything is
    /// written.
    fn check_tags(&self, attrs: &Attrs) -> Result<()> {
        if attrs.tags.is_empty() {
            return Ok(());
        }
        if !self.keeps_tags() {
            return Err(self.tags_refused());
        }
        if self.azure.is_some() {
            super::azure::check_tags(&attrs.tags)?;
        }
        Ok(())
    }

    /// Rewrites a memory entry with the same bytes, ETag and Last-Modified and `change`
    /// made to its attributes, only if it is still the version read (a write meanwhile
    /// wins).
    async fn rewrite_memory(
        &self,
        key: &str,
        change: impl FnOnce(&mut Attributes) -> Result<()> + Send,
    ) -> Result<()> {
        let (store, path) = self.memory_location(key);
        let current = match store.get(&path).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Err(Error::NotFound),
            Err(e) => return Err(self.err(e)),
        };
        let mut attributes = current.attributes.clone();
        let version = UpdateVersion {
            e_tag: current.meta.e_tag.clone(),
            version: current.meta.version.clone(),
        };
        let mtime = Attribute::Metadata(MTIME_META.into());
        if attributes.get(&mtime).is_none() {
            attributes.insert(
                mtime,
                AttributeValue::from(current.meta.last_modified.to_rfc3339()),
            );
        }
        change(&mut attributes)?;
        let data = current.bytes().await.map_err(|e| self.err(e))?;
        let opts = PutOptions {
            mode: PutMode::Update(version),
            attributes,
            ..Default::default()
        };
        match store.put_opts(&path, PutPayload::from(data), opts).await {
            Ok(_) => Ok(()),
            // Replaced or deleted meanwhile: the newer write stands, as if it came after.
            Err(
                object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. },
            ) => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }

    fn tags_refused(&self) -> Error {
        Error::NotImplemented(format!(
            "object tags need static credentials on S3 member {} (object_store, which other credentials go through, cannot read them)",
            self.name
        ))
    }

    /// The object_store attributes of an object written with `attrs`: a GCS object keeps
    /// its tags in its metadata, where the direct client reads them (see [`GcsDirect`]).
    fn attributes(&self, attrs: &Attrs) -> Attributes {
        let mut out = to_attributes(attrs, self.escape_meta);
        if self.gcs.is_some() && !attrs.tags.is_empty() {
            out.insert(
                Attribute::Metadata(TAGS_META.into()),
                AttributeValue::from(crate::tagging::encode(&attrs.tags)),
            );
        }
        out
    }

    fn marker_refused(&self) -> Error {
        Error::NotImplemented(format!(
            "keys ending in '/' (folder markers) need static credentials on S3 member {} (object_store cannot name them)",
            self.name
        ))
    }

    /// A memory member's write: the body is held whole (it is kept in memory anyway), so
    /// its MD5, the object's S3 ETag, is known before the object is, and goes with it.
    async fn put_memory(
        &self,
        key: &str,
        body: Body,
        declared: &Declared,
        attrs: &Attrs,
        cond: &WriteCondition,
    ) -> Result<PutOutcome> {
        use md5::{Digest, Md5};
        let data: Vec<Bytes> = body.try_collect().await?;
        let mut md5 = Md5::new();
        for chunk in &data {
            md5.update(chunk);
        }
        let md5: [u8; 16] = md5.finalize().into();
        if declared.md5.is_some_and(|want| want != md5) {
            return Err(Error::BadDigest);
        }
        let etag = super::etag_to_keep(declared, &md5);
        let (store, path) = self.memory_location(key);
        let mode = match cond {
            WriteCondition::None => PutMode::Overwrite,
            WriteCondition::IfAbsent => PutMode::Create,
            WriteCondition::IfMatch(_) => {
                let head = GetOptions {
                    head: true,
                    ..Default::default()
                };
                let current = match store.get_opts(&path, head).await {
                    Ok(r) => r,
                    Err(object_store::Error::NotFound { .. }) => return Err(Error::NotFound),
                    Err(e) => return Err(self.err(e)),
                };
                let s3 = kept_etag(&current.attributes).or_else(|| current.meta.e_tag.clone());
                check_write_condition(cond, Some(s3.as_deref()))?;
                PutMode::Update(UpdateVersion {
                    e_tag: current.meta.e_tag,
                    version: current.meta.version,
                })
            }
        };
        let mut attributes = to_attributes(&declared.checksum.attrs(attrs), false);
        attributes.insert(
            Attribute::Metadata(ETAG_META.into()),
            AttributeValue::from(etag.clone()),
        );
        set_memory_tags(&mut attributes, &attrs.tags);
        set_memory_acl(&mut attributes, attrs.acl.as_ref())?;
        let opts = PutOptions {
            mode,
            attributes,
            ..Default::default()
        };
        match store
            .put_opts(&path, PutPayload::from_iter(data), opts)
            .await
        {
            Ok(_) => Ok(PutOutcome { etag: Some(etag) }),
            Err(object_store::Error::NotFound { .. })
                if matches!(cond, WriteCondition::IfMatch(_)) =>
            {
                Err(Error::NotFound)
            }
            Err(e) => Err(self.err(e)),
        }
    }

    /// A folder marker to an S3 member with static credentials: held whole first (a
    /// marker is small), so that a body failing its checksum never reaches S3, then one
    /// request naming the key with its `/`.
    async fn put_s3_marker(
        &self,
        key: &str,
        mut body: Body,
        declared: &Declared,
        attrs: &Attrs,
        cond: &WriteCondition,
        part_size: u64,
    ) -> Result<PutOutcome> {
        let Some(direct) = &self.direct else {
            return Err(self.marker_refused());
        };
        let (data, whole) = read_up_to(&mut body, part_size).await?;
        if !whole {
            return Err(Error::NotImplemented(format!(
                "a folder marker (a key ending in '/') larger than part_size ({part_size} bytes) on S3 member {}",
                self.name
            )));
        }
        if matches!(cond, WriteCondition::IfMatch(_)) {
            let current = match direct.get(&self.full(key), None, true).await {
                Ok((found, _)) => Some(found.info.etag),
                Err(Error::NotFound) => None,
                Err(e) => return Err(e),
            };
            check_write_condition(cond, current.as_ref().map(|e| e.as_deref()))?;
        }
        let direct_cond = match cond {
            WriteCondition::IfAbsent => WriteCondition::IfAbsent,
            _ => WriteCondition::None,
        };
        let len: u64 = data.iter().map(|c| c.len() as u64).sum();
        let body = futures::stream::iter(data.into_iter().map(Ok)).boxed();
        let body = super::md5_checked(body, declared.md5);
        let attrs = declared.checksum.attrs(attrs);
        direct
            .put(&self.full(key), body, len, None, &attrs, &direct_cond)
            .await
    }

    /// A GET through object_store (memory members, and S3 members without static
    /// credentials).
    async fn get_via_object_store(
        &self,
        store: &Arc<dyn ObjectStore>,
        path: &Path,
        range: Option<ByteRange>,
        cond: &ReadConditions,
        head: bool,
    ) -> Result<(GetOutcome, Option<ByteStream>)> {
        let opts = GetOptions {
            range: if head { None } else { range.map(to_get_range) },
            head,
            ..Default::default()
        };
        let result = match store.get_opts(path, opts).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Err(Error::NotFound),
            Err(e) => {
                // Stores word an unsatisfiable range differently; the size settles it.
                if let (Some(r), false) = (range, head)
                    && let Ok(meta) = store.head(path).await
                    && range_unsatisfiable(r, meta.size)
                {
                    return Err(Error::InvalidRange);
                }
                return Err(self.err(e));
            }
        };
        // A memory member keeps the S3 ETag with the object; an S3 ETag is S3's own.
        let etag = match &self.markers {
            Some(_) => kept_etag(&result.attributes),
            None => None,
        }
        .or_else(|| result.meta.e_tag.clone().map(unquote));
        let mut info = ObjectInfo {
            size: result.meta.size,
            // An SSE-KMS object on S3 has an ETag of an MD5's form without being one,
            // which only the direct path (static credentials) can tell from the answer's
            // headers.
            content_md5: etag.as_deref().and_then(super::etag_md5),
            etag,
            last_modified: result.meta.last_modified,
            attrs: from_attributes(&result.attributes, self.escape_meta),
            foreign: false,
            untold_tags: 0,
        };
        if self.markers.is_some() {
            memory_extras(&result.attributes, &mut info);
        }
        check_read_conditions(cond, &info)?;
        let range_served = result.range.clone();
        let outcome = GetOutcome {
            info,
            range: range_served,
        };
        if head {
            return Ok((outcome, None));
        }
        let name = self.name.clone();
        let stream = result
            .into_stream()
            .map_err(move |e| map_error(&name, e))
            .boxed();
        let body = gathered(stream, &outcome);
        Ok((outcome, Some(body)))
    }

    /// A memory member's listing: the objects with the ETags kept with them, merged with
    /// the folder markers (full keys, the backend's prefix included).
    fn list_memory(
        &self,
        markers: &Arc<object_store::memory::InMemory>,
        prefix: &str,
        offset: Option<&str>,
    ) -> BoxStream<'static, Result<ObjectSummary>> {
        let store = self.store.clone();
        let name = self.name.clone();
        let objects = self
            .list_through_object_store(prefix, offset)
            .try_filter_map(move |mut row| {
                let store = store.clone();
                let name = name.clone();
                async move {
                    let head = GetOptions {
                        head: true,
                        ..Default::default()
                    };
                    // The listed name as it is (`Path::from` would escape it again).
                    let path = Path::parse(row.key.as_str())
                        .unwrap_or_else(|_| Path::from(row.key.as_str()));
                    match store.get_opts(&path, head).await {
                        Ok(r) => {
                            row.etag = kept_etag(&r.attributes).or(row.etag);
                            Ok(Some(row))
                        }
                        // Deleted since the listing saw it.
                        Err(object_store::Error::NotFound { .. }) => Ok(None),
                        Err(e) => Err(map_error(&name, e)),
                    }
                }
            })
            .boxed();
        let markers = markers.clone();
        let full_prefix = self.full(prefix);
        let full_offset = offset.map(|o| self.full(o));
        let name = self.name.clone();
        // Markers are few: all of those under the prefix, sorted by their key (with its
        // `/`, which sorts differently from the path without it).
        let marker_rows = async move {
            let store = markers.clone();
            let mut rows: Vec<ObjectSummary> = markers
                .list(None)
                .map_err(|e| map_error(&name, e))
                .try_filter_map(move |meta| {
                    let store = store.clone();
                    async move {
                        let key = format!("{}/", meta.location);
                        let head = GetOptions {
                            head: true,
                            ..Default::default()
                        };
                        let etag = match store.get_opts(&meta.location, head).await {
                            Ok(r) => kept_etag(&r.attributes),
                            // Deleted since the listing saw it.
                            Err(_) => return Ok(None),
                        };
                        Ok(Some(ObjectSummary {
                            key,
                            size: meta.size,
                            etag: etag.or(meta.e_tag),
                            last_modified: meta.last_modified,
                        }))
                    }
                })
                .try_filter(|row| {
                    futures::future::ready(
                        row.key.starts_with(&full_prefix)
                            && full_offset.as_deref().is_none_or(|o| row.key.as_str() > o),
                    )
                })
                .try_collect()
                .await?;
            rows.sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
            Ok::<_, Error>(rows)
        };
        futures::stream::once(async move {
            let rows = marker_rows.await?;
            Ok::<_, Error>(merge_sorted(objects, rows))
        })
        .try_flatten()
        .boxed()
    }
}

/// Metadata under which a memory member keeps an object's ACL (JSON), with the object.
const ACL_META: &str = "switchyard-acl";
/// Metadata under which a memory member keeps an object's Last-Modified across a change of
/// its tags, which rewrites the entry (S3 keeps Last-Modified then).
const MTIME_META: &str = "switchyard-last-modified";

/// A memory member's object keeps its tags with it, in the metadata [`TAGS_META`].
fn set_memory_tags(attributes: &mut Attributes, tags: &crate::model::Tags) {
    let key = Attribute::Metadata(TAGS_META.into());
    if tags.is_empty() {
        attributes.remove(&key);
    } else {
        attributes.insert(key, AttributeValue::from(crate::tagging::encode(tags)));
    }
}

fn set_memory_acl(
    attributes: &mut Attributes,
    acl: Option<&crate::model::ObjectAcl>,
) -> Result<()> {
    let key = Attribute::Metadata(ACL_META.into());
    match acl {
        None => {
            attributes.remove(&key);
        }
        Some(acl) => {
            let json = serde_json::to_string(acl).map_err(Error::internal)?;
            attributes.insert(key, AttributeValue::from(json));
        }
    }
    Ok(())
}

/// A memory member's object, as its attributes keep it: tags, ACL and the Last-Modified kept
/// across a change of them.
fn memory_extras(attributes: &Attributes, info: &mut ObjectInfo) {
    if let Some(v) = attributes.get(&Attribute::Metadata(TAGS_META.into())) {
        info.attrs.tags = crate::tagging::decode(v.as_ref());
    }
    if let Some(v) = attributes.get(&Attribute::Metadata(ACL_META.into())) {
        info.attrs.acl = serde_json::from_str(v.as_ref()).ok();
    }
    if let Some(t) = attributes
        .get(&Attribute::Metadata(MTIME_META.into()))
        .and_then(|v| chrono::DateTime::parse_from_rfc3339(v.as_ref()).ok())
    {
        info.last_modified = t.with_timezone(&chrono::Utc);
    }
}

/// The S3 ETag kept with an object as [`ETAG_META`].
fn kept_etag(attrs: &Attributes) -> Option<String> {
    attrs
        .get(&Attribute::Metadata(ETAG_META.into()))
        .map(|v| v.as_ref().to_owned())
}

/// A tag set as object_store passes it on (`x-amz-tagging` on S3; ignored by GCS).
fn tag_set(tags: &crate::model::Tags) -> object_store::TagSet {
    let mut set = object_store::TagSet::default();
    for (k, v) in tags {
        set.push(k, v);
    }
    set
}

/// Two listings in key order, as one.
fn merge_sorted(
    a: BoxStream<'static, Result<ObjectSummary>>,
    b: Vec<ObjectSummary>,
) -> BoxStream<'static, Result<ObjectSummary>> {
    let b = b.into_iter().peekable();
    futures::stream::unfold((a.peekable(), b), |(mut a, mut b)| async move {
        let next_a = std::pin::Pin::new(&mut a).peek().await;
        let take_b = match (next_a, b.peek()) {
            (None, None) => return None,
            (None, Some(_)) => true,
            (Some(Err(_)), _) => false,
            (Some(Ok(x)), Some(y)) => y.key.as_bytes() < x.key.as_bytes(),
            (Some(Ok(_)), None) => false,
        };
        let item = if take_b {
            Ok(b.next().expect("peeked"))
        } else {
            a.next().await.expect("peeked")
        };
        Some((item, (a, b)))
    })
    .boxed()
}

#[async_trait]
impl Store for ObjectStoreBackend {
    async fn put(
        &self,
        key: &str,
        body: Body,
        declared: Declared,
        attrs: &Attrs,
        cond: &WriteCondition,
        part_size: u64,
    ) -> Result<PutOutcome> {
        self.check_tags(attrs)?;
        if self.markers.is_some() {
            return self.put_memory(key, body, &declared, attrs, cond).await;
        }
        if let Some(azure) = &self.azure {
            return azure
                .put(&self.full(key), body, &declared, attrs, cond, part_size)
                .await;
        }
        if let Some(gcs) = &self.gcs {
            return gcs.put(&self.full(key), body, &declared, attrs, cond).await;
        }
        if is_marker(key) {
            return self
                .put_s3_marker(key, body, &declared, attrs, cond, part_size)
                .await;
        }
        let path = self.path(key);
        // If-Match stays on object_store's path, which checks the version itself: not
        // every S3-compatible server honours If-Match on PUT.
        if let (Some(direct), Some(len)) = (&self.direct, declared.len)
            && (1..=MAX_SINGLE_PUT).contains(&len)
            && !matches!(cond, WriteCondition::IfMatch(_))
        {
            // A checksum that comes in the body's trailer is known once the body has
            // passed, after the PUT's headers: a small body is held whole so that it goes
            // with them; a larger one streams, and keeps none (limitations.md).
            let body = if declared.checksum.is_pending() && len <= HOLD_FOR_TRAILER {
                let mut body = body;
                // One byte past the length: the end of the body, where the trailer is
                // checked, is read too.
                let (whole, _) = read_up_to(&mut body, len + 1).await?;
                futures::stream::iter(whole.into_iter().map(Ok)).boxed()
            } else {
                body
            };
            let attrs = declared.checksum.attrs(attrs);
            let body = if declared.md5.is_some() && !self.backend_checks_md5(direct).await {
                super::md5_checked(body, declared.md5)
            } else {
                body
            };
            return direct
                .put(path.as_ref(), body, len, declared.md5, &attrs, cond)
                .await;
        }
        // object_store sends no Content-MD5: check here.
        let mut body = super::md5_checked(body, declared.md5);
        // Buffer up to one part: a small object goes in one request, which keeps the
        // backend's own atomic conditional PUT.
        let (buffered, whole) = read_up_to(&mut body, part_size).await?;
        // Known by now when it came in a header, or in the trailer of a whole body.
        let attrs_now = declared.checksum.attrs(attrs);
        let attrs = &*attrs_now;
        if !whole {
            self.precheck(key, cond).await?;
            return self
                .put_streaming(&path, buffered, body, attrs, part_size)
                .await;
        }
        let mode = match cond {
            WriteCondition::None => PutMode::Overwrite,
            WriteCondition::IfAbsent => PutMode::Create,
            WriteCondition::IfMatch(_) => {
                // Look up the version the client names, then make the write
                // conditional on exactly that version, so a concurrent writer still
                // loses atomically.
                let meta = match self.store.head(&path).await {
                    Ok(m) => m,
                    Err(object_store::Error::NotFound { .. }) => {
                        return Err(Error::NotFound);
                    }
                    Err(e) => return Err(self.err(e)),
                };
                let current = meta.e_tag.clone().map(unquote);
                check_write_condition(cond, Some(current.as_deref()))?;
                PutMode::Update(UpdateVersion {
                    e_tag: meta.e_tag,
                    version: meta.version,
                })
            }
        };
        let opts = PutOptions {
            mode,
            attributes: self.attributes(attrs),
            tags: tag_set(&attrs.tags),
            ..Default::default()
        };
        let payload = PutPayload::from_iter(buffered.iter().cloned());
        match self.store.put_opts(&path, payload, opts).await {
            Ok(r) => Ok(PutOutcome {
                etag: r.e_tag.map(unquote),
            }),
            Err(
                object_store::Error::NotImplemented { .. }
                | object_store::Error::NotSupported { .. },
            ) if *cond != WriteCondition::None => {
                self.precheck(key, cond).await?;
                let opts = PutOptions {
                    attributes: self.attributes(attrs),
                    tags: tag_set(&attrs.tags),
                    ..Default::default()
                };
                let payload = PutPayload::from_iter(buffered);
                let r = self
                    .store
                    .put_opts(&path, payload, opts)
                    .await
                    .map_err(|e| self.err(e))?;
                Ok(PutOutcome {
                    etag: r.e_tag.map(unquote),
                })
            }
            Err(object_store::Error::NotFound { .. })
                if matches!(cond, WriteCondition::IfMatch(_)) =>
            {
                Err(Error::NotFound)
            }
            Err(e) => Err(self.err(e)),
        }
    }

    async fn get(
        &self,
        key: &str,
        range: Option<ByteRange>,
        cond: &ReadConditions,
        head: bool,
    ) -> Result<(GetOutcome, Option<ByteStream>)> {
        let (outcome, body) = if let Some(azure) = &self.azure {
            let (outcome, body, _) = azure.get(&self.full(key), range, head).await?;
            (outcome, body)
        } else if let Some(gcs) = &self.gcs {
            let (outcome, body, _) = gcs.get(&self.full(key), range, head).await?;
            (outcome, body)
        } else if let Some(direct) = &self.direct {
            direct.get(&self.full(key), range, head).await?
        } else if self.markers.is_some() {
            let (store, path) = self.memory_location(key);
            return self
                .get_via_object_store(&store, &path, range, cond, head)
                .await;
        } else if is_marker(key) {
            // This member cannot hold one written through the gateway; another member of
            // the bucket may.
            return Err(Error::NotFound);
        } else {
            let store = self.store.clone();
            return self
                .get_via_object_store(&store, &self.path(key), range, cond, head)
                .await;
        };
        check_read_conditions(cond, &outcome.info)?;
        let body = body.map(|b| gathered(b, &outcome));
        Ok((outcome, body))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        if is_marker(key) {
            if let Some(azure) = &self.azure {
                return azure.delete(&self.full(key)).await;
            }
            if let Some(gcs) = &self.gcs {
                return gcs.delete(&self.full(key)).await;
            }
            if let Some(direct) = &self.direct {
                return direct.delete(&self.full(key)).await;
            }
            if self.markers.is_none() {
                // Nothing the gateway could have written here; deletes go to every member.
                return Ok(());
            }
        }
        let (store, path) = self.memory_location(key);
        match store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }

    fn list(
        &self,
        prefix: &str,
        offset: Option<&str>,
    ) -> BoxStream<'static, Result<ObjectSummary>> {
        // Every path but object_store's takes the exact prefix and offset (none of the
        // stores has a notion of directories).
        let exact = || (self.full(prefix), offset.map(|o| self.full(o)));
        let rows = if let Some(azure) = &self.azure {
            let (p, o) = exact();
            azure.clone().list(p, o)
        } else if let Some(gcs) = &self.gcs {
            let (p, o) = exact();
            gcs.clone().list(p, o)
        } else if let Some(direct) = &self.direct {
            let (p, o) = exact();
            direct.clone().list(p, o)
        } else if let Some(markers) = &self.markers {
            self.list_memory(markers, prefix, offset)
        } else {
            self.list_through_object_store(prefix, offset)
        };
        let strip = self.prefix.clone();
        let prefix_owned = prefix.to_owned();
        let offset_owned = offset.map(str::to_owned);
        rows.try_filter_map(move |mut row| {
            if row.key.starts_with(strip.as_str()) {
                row.key.drain(..strip.len());
            }
            let keep = row.key.starts_with(&prefix_owned)
                && !row.key.starts_with(RESERVED_PREFIX)
                && offset_owned.as_deref().is_none_or(|o| row.key.as_str() > o);
            futures::future::ready(Ok(keep.then_some(row)))
        })
        .boxed()
    }

    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        if is_marker(from) || is_marker(to) {
            // object_store cannot name it: the router streams the copy instead.
            return Err(Error::NotImplemented(
                "server-side copy of a folder marker".into(),
            ));
        }
        if let Some(azure) = &self.azure {
            // Copy Blob leaves the tags behind: the direct client carries them.
            return azure.copy(&self.full(from), &self.full(to)).await;
        }
        self.store
            .copy(&self.path(from), &self.path(to))
            .await
            .map_err(|e| self.err(e))
    }

    async fn mpu_create(&self, key: &str, attrs: &Attrs) -> Result<String> {
        self.check_tags(attrs)?;
        match &self.multipart {
            Multipart::Native(_) if is_marker(key) => Err(Error::NotImplemented(format!(
                "multipart uploads of a folder marker (a key ending in '/') on member {}",
                self.name
            ))),
            Multipart::Native(mp) => {
                // S3 takes the tags with the upload (x-amz-tagging), GCS in the metadata.
                let opts = PutMultipartOptions {
                    attributes: self.attributes(attrs),
                    tags: tag_set(&attrs.tags),
                    ..Default::default()
                };
                mp.create_multipart_opts(&self.path(key), opts)
                    .await
                    .map_err(|e| self.err(e))
            }
            Multipart::Staged => Ok(String::new()),
        }
    }

    async fn mpu_put_part(
        &self,
        key: &str,
        upload: &str,
        nonce: &str,
        part_idx: usize,
        body: Body,
        len: Option<u64>,
    ) -> Result<PartRef> {
        if let (Multipart::Native(_), Some(direct), Some(len)) =
            (&self.multipart, &self.direct, len)
            && (1..=MAX_SINGLE_PUT).contains(&len)
        {
            let path = self.path(key);
            let content_id = direct
                .put_part(path.as_ref(), upload, part_idx + 1, body, len)
                .await?;
            return Ok(PartRef { content_id });
        }
        match &self.multipart {
            Multipart::Native(mp) => {
                // object_store's part API takes the part whole: wait for room in the
                // process's budget for such parts before reading it.
                let _room = part_buffer_room(len).await;
                let data: Vec<Bytes> = body.try_collect().await?;
                let payload = PutPayload::from_iter(data);
                let id = upload.to_owned();
                let part = mp
                    .put_part(&self.path(key), &id, part_idx, payload)
                    .await
                    .map_err(|e| self.err(e))?;
                Ok(PartRef {
                    content_id: part.content_id,
                })
            }
            Multipart::Staged => {
                // A part may be up to 5 GiB: up to one block goes in one request, a longer
                // part streams as a block list, so memory stays bounded by the block size.
                let rel = Self::staged_part(nonce, part_idx);
                let path = self.internal_path(&rel);
                let mut body = body;
                let (first, whole) = read_up_to(&mut body, STAGED_BLOCK).await?;
                if whole {
                    self.store
                        .put(&path, PutPayload::from_iter(first))
                        .await
                        .map_err(|e| self.err(e))?;
                } else {
                    let none = Attrs::default();
                    self.put_streaming(&path, first, body, &none, STAGED_BLOCK)
                        .await?;
                }
                Ok(PartRef { content_id: rel })
            }
        }
    }

    async fn mpu_complete(
        &self,
        key: &str,
        upload: &str,
        nonce: &str,
        parts: Vec<PartRef>,
        attrs: &Attrs,
        etag: &str,
    ) -> Result<PutOutcome> {
        match &self.multipart {
            Multipart::Native(mp) => {
                let parts = parts
                    .into_iter()
                    .map(|p| PartId {
                        content_id: p.content_id,
                    })
                    .collect();
                let r = mp
                    .complete_multipart(&self.path(key), &upload.to_owned(), parts)
                    .await
                    .map_err(|e| self.err(e))?;
                let native = r.e_tag.map(unquote);
                // S3's own multipart ETag is the one; GCS's is not an MD5 of anything:
                // the upload's is kept with the object it made.
                if let (Some(gcs), Some(generation)) = (&self.gcs, &r.version) {
                    return match gcs
                        .keep_etag(&self.full(key), generation, etag, attrs)
                        .await
                    {
                        Ok(()) => Ok(PutOutcome {
                            etag: Some(etag.to_owned()),
                        }),
                        Err(e) => {
                            tracing::warn!(backend = %self.name, key, error = %e, "could not keep a multipart upload's ETag with its object: it answers GCS's own");
                            Ok(PutOutcome { etag: native })
                        }
                    };
                }
                Ok(PutOutcome { etag: native })
            }
            Multipart::Staged => {
                let store = self.store.clone();
                let paths: Vec<Path> = parts
                    .iter()
                    .map(|p| self.internal_path(&p.content_id))
                    .collect();
                let name = self.name.clone();
                let body: Body = futures::stream::iter(paths)
                    .then(move |p| {
                        let store = store.clone();
                        let name = name.clone();
                        async move {
                            let r = store.get(&p).await.map_err(|e| map_error(&name, e))?;
                            let name2 = name.clone();
                            Ok::<_, Error>(r.into_stream().map_err(move |e| map_error(&name2, e)))
                        }
                    })
                    .try_flatten()
                    .boxed();
                // The completing write sets the attributes and the upload's ETag.
                let declared = Declared {
                    etag: Some(etag.to_owned()),
                    ..Declared::default()
                };
                let out = self
                    .put(
                        key,
                        body,
                        declared,
                        attrs,
                        &WriteCondition::None,
                        STAGED_ASSEMBLY_BLOCK,
                    )
                    .await?;
                self.mpu_abort(key, upload, nonce).await?;
                Ok(out)
            }
        }
    }

    async fn mpu_abort(&self, key: &str, upload: &str, nonce: &str) -> Result<()> {
        match &self.multipart {
            Multipart::Native(mp) => match mp
                .abort_multipart(&self.path(key), &upload.to_owned())
                .await
            {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(self.err(e)),
            },
            Multipart::Staged => {
                for rel in self
                    .list_internal(&format!("uploads/{nonce}/data/"))
                    .await?
                {
                    self.delete_internal(&rel).await?;
                }
                Ok(())
            }
        }
    }

    /// Memory members, and the kinds whose direct clients read and write tags: S3 with
    /// static credentials (object tagging), Azure (blob index tags) and GCS (a metadata
    /// entry). object_store reads no tags, so S3 members with other credentials do not.
    fn keeps_tags(&self) -> bool {
        self.markers.is_some()
            || self.direct.is_some()
            || self.azure.is_some()
            || self.gcs.is_some()
    }

    fn native_versions(&self) -> Option<crate::backends::S3Native> {
        let direct = self.direct.clone()?;
        Some(super::S3Native::new(direct, self.prefix.clone()))
    }

    async fn get_tags(&self, key: &str) -> Result<crate::model::Tags> {
        if let Some(azure) = &self.azure {
            return azure.get_tags(&self.full(key)).await;
        }
        if let Some(direct) = &self.direct {
            return direct.get_tags(&self.full(key)).await;
        }
        let (found, _) = self
            .get(key, None, &ReadConditions::default(), true)
            .await?;
        Ok(found.info.attrs.tags)
    }

    /// S3 and Azure change the tags alone; GCS changes a metadata entry. Memory: the
    /// entry is rewritten with the same bytes, ETag and Last-Modified, only if it is still
    /// the version read (a write meanwhile wins).
    async fn put_tags(&self, key: &str, tags: &crate::model::Tags) -> Result<()> {
        if let Some(azure) = &self.azure {
            return azure.put_tags(&self.full(key), tags).await;
        }
        if let Some(gcs) = &self.gcs {
            return gcs.put_tags(&self.full(key), tags).await;
        }
        if let Some(direct) = &self.direct {
            return direct.put_tags(&self.full(key), tags).await;
        }
        if self.markers.is_none() {
            return Err(self.tags_refused());
        }
        self.rewrite_memory(key, |a| {
            set_memory_tags(a, tags);
            Ok(())
        })
        .await
    }

    fn keeps_acls(&self) -> bool {
        self.markers.is_some()
    }

    /// Memory: as [`Self::put_tags`].
    async fn put_acl(&self, key: &str, acl: Option<&crate::model::ObjectAcl>) -> Result<()> {
        if self.markers.is_none() {
            return Err(Error::NotImplemented(format!(
                "object ACLs are not supported on member {} (its kind does not keep them)",
                self.name
            )));
        }
        self.rewrite_memory(key, |a| set_memory_acl(a, acl)).await
    }

    async fn put_internal(&self, path: &str, data: Bytes) -> Result<()> {
        self.store
            .put(&self.internal_path(path), PutPayload::from(data))
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn get_internal(&self, path: &str) -> Result<Option<Bytes>> {
        match self.store.get(&self.internal_path(path)).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(|e| self.err(e))?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    async fn delete_internal(&self, path: &str) -> Result<()> {
        match self.store.delete(&self.internal_path(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Memory only: its entries are read in the process, so a look at each costs no
    /// request (the kept ETag and Last-Modified are in their attributes).
    async fn list_internal_rows(&self, prefix: &str) -> Result<Option<Vec<ObjectSummary>>> {
        if self.markers.is_none() {
            return Ok(None);
        }
        let mut out = Vec::new();
        for rel in self.list_internal(prefix).await? {
            let head = GetOptions {
                head: true,
                ..Default::default()
            };
            let r = match self.store.get_opts(&self.internal_path(&rel), head).await {
                Ok(r) => r,
                // Deleted since the listing saw it.
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(self.err(e)),
            };
            let last_modified = r
                .attributes
                .get(&Attribute::Metadata(MTIME_META.into()))
                .and_then(|v| chrono::DateTime::parse_from_rfc3339(v.as_ref()).ok())
                .map_or(r.meta.last_modified, |t| t.with_timezone(&chrono::Utc));
            out.push(ObjectSummary {
                key: rel,
                size: r.meta.size,
                etag: kept_etag(&r.attributes).or(r.meta.e_tag.map(unquote)),
                last_modified,
            });
        }
        Ok(Some(out))
    }

    async fn list_internal(&self, prefix: &str) -> Result<Vec<String>> {
        let base = format!("{}{RESERVED_PREFIX}", self.prefix);
        let dir = prefix.trim_end_matches('/');
        let listed = self.internal_path(dir);
        let mut out: Vec<String> = self
            .store
            .list(Some(&listed))
            .map_ok(|m| {
                m.location
                    .as_ref()
                    .strip_prefix(base.as_str())
                    .unwrap_or(m.location.as_ref())
                    .to_owned()
            })
            .try_collect()
            .await
            .map_err(|e| self.err(e))?;
        out.retain(|p| p.starts_with(prefix));
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn held_parts_share_one_memory_budget() {
        let half = u64::from(PART_BUFFER_BUDGET_KIB) * 1024 / 2;
        let a = part_buffer_room(Some(half)).await;
        let b = part_buffer_room(Some(half - 1)).await;
        // The budget is spent: a third part waits until one of the first two is sent.
        let third = tokio::spawn(part_buffer_room(Some(4096)));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!third.is_finished());
        drop(a);
        let c = tokio::time::timeout(Duration::from_secs(5), third)
            .await
            .expect("room once a part is gone")
            .unwrap();
        drop((b, c));
        // Larger than the budget, or of unknown size: held alone, but held.
        let huge = part_buffer_room(Some(10 << 30)).await;
        assert_eq!(huge.num_permits(), PART_BUFFER_BUDGET_KIB as usize);
        drop(huge);
        let unknown = part_buffer_room(None).await;
        assert_eq!(unknown.num_permits(), PART_BUFFER_BUDGET_KIB as usize);
    }

    #[tokio::test]
    async fn small_chunks_are_gathered_and_errors_kept_in_place() {
        let chunks = |v: Vec<Result<Vec<u8>>>| -> ByteStream {
            futures::stream::iter(v.into_iter().map(|r| r.map(Bytes::from))).boxed()
        };
        let out: Vec<Result<Bytes>> = coalesce(
            chunks(vec![
                Ok(vec![1; 3]),
                Ok(vec![2; 3]),
                Ok(vec![3; 3]),
                Ok(vec![4; 10]),
                Ok(vec![5; 1]),
            ]),
            8,
            26,
            |_| true,
        )
        .collect()
        .await;
        let sizes: Vec<usize> = out.iter().map(|r| r.as_ref().unwrap().len()).collect();
        assert_eq!(sizes, [9, 10, 1]);
        let out: Vec<Result<Bytes>> = coalesce(
            chunks(vec![
                Ok(vec![1; 3]),
                Err(Error::internal("cut")),
                Ok(vec![2; 3]),
            ]),
            8,
            6,
            |_| true,
        )
        .collect()
        .await;
        assert_eq!(out[0].as_ref().unwrap().len(), 3);
        assert!(out[1].is_err());
    }

    #[test]
    fn bodies_pause_when_the_engine_is_short_of_cpu_or_much_is_left() {
        let idle = || false;
        assert!(!may_pause(1 << 20, 1, 2, idle));
        assert!(!may_pause(1 << 20, 2, 2, idle));
        assert!(may_pause(1 << 20, 3, 2, idle));
        assert!(may_pause(1 << 20, 1, 2, || true));
        assert!(may_pause(PAUSE_ALWAYS_ABOVE + 1, 1, 2, idle));
        assert!(!may_pause(PAUSE_ALWAYS_ABOVE, 1, 2, idle));
        // Where Linux keeps run-queue times, a thread that is kept from every CPU for a
        // while is seen waiting.
        if std::path::Path::new("/proc/thread-self/schedstat").exists() {
            std::thread::spawn(|| {
                assert!(!waits_for_cpu(), "no history yet");
                let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
                let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                let hogs: Vec<_> = (0..cpus * 4)
                    .map(|_| {
                        let stop = stop.clone();
                        std::thread::spawn(move || {
                            while !stop.load(Ordering::Relaxed) {
                                std::hint::spin_loop();
                            }
                        })
                    })
                    .collect();
                let until = std::time::Instant::now() + std::time::Duration::from_millis(100);
                while std::time::Instant::now() < until {
                    std::hint::spin_loop();
                }
                let waits = waits_for_cpu();
                stop.store(true, Ordering::Relaxed);
                hogs.into_iter().for_each(|h| h.join().unwrap());
                assert!(waits, "a thread sharing its CPUs with four spinners each");
            })
            .join()
            .unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickling_backend_is_read_in_gulps_but_its_tail_is_not_delayed() {
        let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Bytes>>();
        let piece = || Ok(Bytes::from(vec![7u8; 4096]));
        let mut out = coalesce(rx.boxed(), 64 << 10, 1 << 20, |_| true);
        tx.unbounded_send(piece()).unwrap();
        // What is there goes out at once...
        assert_eq!(out.next().await.unwrap().unwrap().len(), 4096);
        // ...and the next read waits a moment for the backend's next pieces to gather.
        tx.unbounded_send(piece()).unwrap();
        tx.unbounded_send(piece()).unwrap();
        assert!(futures::poll!(out.next()).is_pending());
        tokio::time::advance(TRICKLE_PAUSE).await;
        assert_eq!(out.next().await.unwrap().unwrap().len(), 8192);
        // Still less than a chunk after a pause: the backend is slow, the pause doubles...
        tx.unbounded_send(piece()).unwrap();
        let mut next = out.next();
        assert!(futures::poll!(&mut next).is_pending());
        tokio::time::advance(TRICKLE_PAUSE).await;
        assert!(futures::poll!(&mut next).is_pending());
        tokio::time::advance(TRICKLE_PAUSE).await;
        assert_eq!(next.await.unwrap().unwrap().len(), 4096);
        // ...until a read finds a full chunk, which makes it short again.
        tx.unbounded_send(Ok(Bytes::from(vec![7u8; 64 << 10])))
            .unwrap();
        tokio::time::advance(2 * TRICKLE_PAUSE).await;
        assert_eq!(out.next().await.unwrap().unwrap().len(), 64 << 10);
        tx.unbounded_send(piece()).unwrap();
        assert_eq!(out.next().await.unwrap().unwrap().len(), 4096);
        tx.unbounded_send(piece()).unwrap();
        let mut next = out.next();
        assert!(futures::poll!(&mut next).is_pending());
        tokio::time::advance(TRICKLE_PAUSE).await;
        assert_eq!(next.await.unwrap().unwrap().len(), 4096);

        // A pause would gather about as much as the last one did: when that and a chunk
        // are more than is left, none starts, so that none outlasts the body.
        let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Bytes>>();
        let mut out = coalesce(rx.boxed(), 64 << 10, 200 << 10, |_| true);
        tx.unbounded_send(piece()).unwrap();
        assert_eq!(out.next().await.unwrap().unwrap().len(), 4096);
        for _ in 0..25 {
            tx.unbounded_send(piece()).unwrap();
        }
        tokio::time::advance(TRICKLE_PAUSE).await;
        assert_eq!(out.next().await.unwrap().unwrap().len(), 64 << 10);
        assert_eq!(out.next().await.unwrap().unwrap().len(), 36 << 10);
        // 96 KiB left, the last pause gathered 100 KiB: the next piece goes at once.
        tx.unbounded_send(piece()).unwrap();
        assert!(
            matches!(futures::poll!(out.next()), std::task::Poll::Ready(Some(Ok(b))) if b.len() == 4096)
        );

        // An engine with CPU to spare does not pause: pieces go on as they come.
        let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Bytes>>();
        let mut out = coalesce(rx.boxed(), 64 << 10, 1 << 20, |_| false);
        for _ in 0..2 {
            tx.unbounded_send(piece()).unwrap();
            assert!(
                matches!(futures::poll!(out.next()), std::task::Poll::Ready(Some(Ok(b))) if b.len() == 4096)
            );
        }

        // Near the end of the body (less than one target chunk left), no pause.
        let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Bytes>>();
        let mut out = coalesce(rx.boxed(), 64 << 10, 3 * 4096, |_| true);
        tx.unbounded_send(piece()).unwrap();
        assert_eq!(out.next().await.unwrap().unwrap().len(), 4096);
        tx.unbounded_send(piece()).unwrap();
        assert!(
            matches!(futures::poll!(out.next()), std::task::Poll::Ready(Some(Ok(b))) if b.len() == 4096)
        );
        drop(tx);
        assert!(out.next().await.is_none());
    }

    /// Memory members answer S3's ETags (their store's own are counters) and keep folder
    /// markers beside the objects.
    #[tokio::test]
    async fn memory_members_answer_s3_etags_and_keep_markers() {
        let m = ObjectStoreBackend::memory("m", Some("pre".into()));
        let body = |b: &'static [u8]| -> Body {
            futures::stream::iter(vec![Ok(Bytes::from_static(b))]).boxed()
        };
        let put = |k: &'static str, b: &'static [u8], cond: WriteCondition| {
            let m = &m;
            async move {
                m.put(
                    k,
                    body(b),
                    Declared::default(),
                    &Attrs::default(),
                    &cond,
                    1 << 23,
                )
                .await
            }
        };
        let keys = |p: &'static str, o: Option<&'static str>| {
            let m = &m;
            async move {
                let rows: Vec<ObjectSummary> = m.list(p, o).try_collect().await.unwrap();
                rows.into_iter()
                    .map(|r| (r.key, r.etag.unwrap_or_default()))
                    .collect::<Vec<_>>()
            }
        };
        let abc = "900150983cd24fb0d6963f7d28e17f72";
        let empty = "d41d8cd98f00b204e9800998ecf8427e";
        let out = put("a", b"abc", WriteCondition::None).await.unwrap();
        assert_eq!(out.etag.as_deref(), Some(abc));
        let none = ReadConditions::default();
        let (got, _) = m.get("a", None, &none, true).await.unwrap();
        assert_eq!(got.info.etag.as_deref(), Some(abc));
        assert_eq!(got.info.content_md5.map(hex::encode).as_deref(), Some(abc));
        assert!(got.info.attrs.metadata.is_empty(), "{:?}", got.info.attrs);
        for k in ["d/", "d/x/", "d-e"] {
            put(k, b"", WriteCondition::None).await.unwrap();
        }
        put("d/x/y", b"abc", WriteCondition::None).await.unwrap();
        let all = keys("", None).await;
        let names: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["a", "d-e", "d/", "d/x/", "d/x/y"]);
        assert!(
            all.iter()
                .all(|(k, e)| e == if k == "a" || k == "d/x/y" { abc } else { empty })
        );
        let names: Vec<String> = keys("d/", Some("d/"))
            .await
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(names, ["d/x/", "d/x/y"]);
        // Conditions compare against the S3 ETag.
        let e = put("d/", b"x", WriteCondition::IfAbsent).await.unwrap_err();
        assert!(matches!(e, Error::Precondition(_)), "{e:?}");
        let e = put("a", b"x", WriteCondition::IfMatch(empty.into()))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Precondition(_)), "{e:?}");
        put("a", b"abc", WriteCondition::IfMatch(abc.into()))
            .await
            .unwrap();
        let cond = ReadConditions {
            if_match: Some(format!("\"{abc}\"")),
            ..Default::default()
        };
        m.get("a", None, &cond, true).await.unwrap();
        // A marker goes alone.
        m.delete("d/").await.unwrap();
        let names: Vec<String> = keys("d", None).await.into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["d-e", "d/x/", "d/x/y"]);
        // A multipart upload answers the ETag the router gives it.
        let id = m.mpu_create("mp", &Attrs::default()).await.unwrap();
        let part = m
            .mpu_put_part("mp", &id, "n1", 0, body(b"abc"), Some(3))
            .await
            .unwrap();
        let etag = "96e024ba2074fe77e8e965ba43a704be-1";
        let out = m
            .mpu_complete("mp", &id, "n1", vec![part], &Attrs::default(), etag)
            .await
            .unwrap();
        assert_eq!(out.etag.as_deref(), Some(etag));
        let (got, _) = m.get("mp", None, &none, true).await.unwrap();
        assert_eq!(got.info.etag.as_deref(), Some(etag));
        assert_eq!(got.info.content_md5, None);
        assert_eq!(keys("mp", None).await, [("mp".to_owned(), etag.to_owned())]);
    }

    /// S3 members without static credentials go through object_store, which cannot name
    /// a folder marker: writing one is refused, and reads and deletes (which go to every
    /// member of a bucket) find nothing there, without a request.
    #[tokio::test]
    async fn folder_markers_on_s3_without_static_credentials() {
        let config = crate::Config::from_toml(
            "version = 1\n[backends.s]\nkind = \"s3\"\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:9\"\nallow_http = true\n[buckets.xyz]\nmembers = [\"s\"]\n",
        )
        .unwrap();
        let s = ObjectStoreBackend::from_config("s", &config.backends["s"]).unwrap();
        assert!(s.direct.is_none());
        let body: Body = futures::stream::iter(vec![Ok(Bytes::new())]).boxed();
        let e = s
            .put(
                "d/",
                body,
                Declared::default(),
                &Attrs::default(),
                &WriteCondition::None,
                1 << 23,
            )
            .await
            .unwrap_err();
        assert!(matches!(e, Error::NotImplemented(_)), "{e:?}");
        let none = ReadConditions::default();
        assert!(matches!(
            s.get("d/", None, &none, true).await,
            Err(Error::NotFound)
        ));
        s.delete("d/").await.unwrap();
        let e = s.mpu_create("d/", &Attrs::default()).await.unwrap_err();
        assert!(matches!(e, Error::NotImplemented(_)), "{e:?}");
    }

    /// S3 members without static credentials go through object_store, which reads no
    /// tags: they keep none, and a write that sets some is refused (not stripped) before
    /// a request; so is a tag change. The same member with static credentials keeps them.
    #[tokio::test]
    async fn tags_on_s3_need_static_credentials() {
        let toml = |keys: &str| {
            format!(
                "version = 1\n[backends.s]\nkind = \"s3\"\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:9\"\nallow_http = true\n{keys}[buckets.xyz]\nmembers = [\"s\"]\n"
            )
        };
        let config = crate::Config::from_toml(&toml("")).unwrap();
        let s = ObjectStoreBackend::from_config("s", &config.backends["s"]).unwrap();
        assert!(!s.keeps_tags());
        let tagged = Attrs {
            tags: [("k".to_owned(), "v".to_owned())].into(),
            ..Attrs::default()
        };
        let body: Body = futures::stream::iter(vec![Ok(Bytes::from_static(b"x"))]).boxed();
        let e = s
            .put(
                "k",
                body,
                Declared::default(),
                &tagged,
                &WriteCondition::None,
                1 << 23,
            )
            .await
            .unwrap_err();
        assert!(matches!(e, Error::NotImplemented(_)), "{e:?}");
        let e = s.mpu_create("k", &tagged).await.unwrap_err();
        assert!(matches!(e, Error::NotImplemented(_)), "{e:?}");
        let e = s.put_tags("k", &tagged.tags).await.unwrap_err();
        assert!(matches!(e, Error::NotImplemented(_)), "{e:?}");

        let keys = "access_key_id = \"a\"\nsecret_access_key = \"s\"\n";
        let config = crate::Config::from_toml(&toml(keys)).unwrap();
        let s = ObjectStoreBackend::from_config("s", &config.backends["s"]).unwrap();
        assert!(s.keeps_tags());
    }

    #[test]
    fn azure_metadata_names_round_trip() {
        for name in ["colour", "mixed-case", "a_b", "9lives", "x.y-z_", "_"] {
            let enc = encode_meta_name(name);
            assert!(
                enc.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "{enc}"
            );
            assert!(!enc.as_bytes()[0].is_ascii_digit());
            assert_eq!(decode_meta_name(&enc), name);
        }
        assert_eq!(encode_meta_name("content-owner"), "content_2downer");
    }
}
