//! The listener: hyper serving the s3s service, with graceful shutdown that drains
//! requests in flight.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use s3s::service::S3ServiceBuilder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::admin::AdminState;
use crate::config::{Config, ConfigError, ServerConfig};
use crate::frontend::exchange::{Exchange, Reported};
use crate::frontend::request_id;
use crate::frontend::{
    Access, AccessHook, Auth, ClientAddr, Frontend, Live, SecureTransport, Snapshot, Users,
    request_timeout,
};
use crate::jobs::Jobs;
use crate::metrics::Metrics;
use crate::policy::set::PolicySet;
use crate::reload::{ConfigSource, Outcome, Reloader, Trigger};
use crate::router::Router;
use crate::tls::{Acceptor, CertFiles, ListenerTls, TlsError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server.domains: {0}")]
    Domain(String),
    #[error("plugins: {0}")]
    Policy(String),
    #[error("server.tls: {0}")]
    Tls(TlsError),
    #[error("config reload: {0}")]
    Reload(String),
}

/// Read buffers of client connections: each socket read of a streamed body becomes one
/// chunk, one wake-up of the backend's connection and one write to it, so bigger reads
/// cost less CPU per byte (CPU per 64 MiB PUT at concurrency 16: 40-43 ms with 128 KiB,
/// 38-39 ms with 256 KiB, 33-37 ms with 512 KiB; s3s-proxy, with hyper's default of about
/// 400 KiB, 32-37 ms). But a busy engine fills every buffer, and each upload keeps its
/// buffer and the chunks cut from earlier ones alive (see `s3direct::IN_FLIGHT_CHUNKS`):
/// with 256 uploads at once, 256 KiB buffers for all took the engine's RSS to 155-346 MiB.
/// So connections share a budget (`server.read_buffers`, 8 MiB unless configured): the
/// largest buffer while few are open, down to the smallest as they multiply. The count is
/// taken when a connection's first bytes arrive, not when it is accepted: sized at accept,
/// the first connections of a burst each took a buffer meant for few, and 256 uploads at
/// once peaked at 75-193 MiB with 512 KiB as the largest (75-102 MiB with 256 KiB). Sized
/// at the first bytes: 61-63 MiB with 512 KiB in three runs.
const READ_BUFFER_MIN: usize = 64 << 10;
const READ_BUFFER_MAX: usize = 512 << 10;

/// The largest file a browser-form upload (POST Object) may carry. s3s reads that file
/// whole into memory before anything decides whether the request may write (its own
/// default: 5 GiB), so this is what one unsigned request to any bucket can make the
/// engine hold; a larger one is refused (`EntityTooLarge`) after this much is read. Every
/// other upload streams, and is decided before its body is read.
const MAX_FORM_UPLOAD: u64 = 16 << 20;

/// The read buffer of a connection when `open` are open, itself included.
fn read_buffer(budget: usize, open: usize) -> usize {
    (budget / open.max(1)).clamp(READ_BUFFER_MIN, READ_BUFFER_MAX)
}

/// One open client connection, counted while it lives (also when its task is cancelled).
struct OpenConnection {
    count: Arc<AtomicUsize>,
}

impl OpenConnection {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self {
            count: count.clone(),
        }
    }

    /// Connections open now, this one included.
    fn now(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A running engine.
pub struct Server {
    addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    jobs: Arc<Jobs>,
    background: Vec<tokio::task::JoinHandle<()>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    router: Arc<ArcSwap<Router>>,
    reloader: Arc<Reloader>,
}

impl Server {
    /// The S3 listener's address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address that speaks HTTPS, with `[server.tls]`: `tls.listen`'s, or the S3
    /// listener's when it has none.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// The admin listener's address (metrics, health), when configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The engine's mover jobs (migrations and tiering passes).
    pub fn jobs(&self) -> Arc<Jobs> {
        self.jobs.clone()
    }

    /// The current configuration snapshot.
    pub fn router(&self) -> Arc<Router> {
        self.router.load_full()
    }

    /// Reloads the configuration file, as SIGHUP does. `None`: the engine was not started
    /// from a file ([`start_with`]).
    pub async fn reload(&self) -> Option<Outcome> {
        self.reloader.reload(Trigger::AdminApi).await
    }

    /// Stops accepting, lets requests in flight finish (up to the configured grace), and
    /// returns when the listener is closed.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        for t in self.background {
            t.abort();
        }
        self.reloader.stop();
    }

    /// Waits until the server stops on its own (it does not, unless its task panics).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Builds everything from `config` and starts serving.
pub async fn start(config: Config) -> Result<Server, StartError> {
    start_with(config, None).await
}

/// Says at start and at each reload which buckets name a policy that is not loaded.
pub(crate) fn log_unloaded_policies(config: &Config, policies: Option<&PolicySet>) {
    for (name, b) in &config.buckets {
        if b.policy != "default" && policies.and_then(|p| p.get(&b.policy)).is_none() {
            warn!(bucket = %name, policy = %b.policy, "the bucket's policy is not loaded (yet): its decisions fail {:?} until it is", b.failure);
        }
    }
}

/// [`start`], with `config` read from `source`: the engine reloads it on SIGHUP, when the
/// file changes, and on the admin API's `POST /config/reload` (see [`crate::reload`]).
pub async fn start_with(
    config: Config,
    source: Option<ConfigSource>,
) -> Result<Server, StartError> {
    config.validate()?;
    let tls = match &config.server.tls {
        Some(t) => Some(
            ListenerTls::load(CertFiles {
                cert: t.cert.clone(),
                key: t.key.clone(),
            })
            .map_err(StartError::Tls)?,
        ),
        None => None,
    };
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::default());
    let policies = if config.plugins.dir.is_some() {
        Some(PolicySet::new(&config, metrics.clone()).map_err(StartError::Policy)?)
    } else {
        None
    };
    log_unloaded_policies(&config, policies.as_deref());
    let watcher = match &policies {
        Some(p) => p.watch().map_err(StartError::Policy)?,
        None => None,
    };
    let router = Arc::new(ArcSwap::from_pointee(Router::new(
        config.clone(),
        policies.clone(),
        metrics.clone(),
    )?));
    // Weak: the router holds the metrics, which must not keep it alive.
    let health = Arc::downgrade(&router);
    metrics.set_health_source(Box::new(move || {
        health
            .upgrade()
            .map(|r| r.load().backend_health())
            .unwrap_or_default()
            .into_iter()
            .map(|(name, healthy)| (name, i64::from(healthy)))
            .collect()
    }));
    let jobs = Jobs::new(router.clone(), metrics.clone());
    let running = Arc::downgrade(&jobs);
    metrics.set_jobs_source(Box::new(move || {
        running.upgrade().map(|j| j.running()).unwrap_or_default()
    }));
    let users = Arc::new(Users::from_config(&config)?);
    let live = Live::new(Snapshot {
        router: router.load_full(),
        users,
    });
    let reloader = Reloader::new(
        source,
        config.clone(),
        live.clone(),
        router.clone(),
        policies.clone(),
        metrics.clone(),
        jobs.clone(),
    );
    let config_watch = reloader.watch().map_err(StartError::Reload)?;
    let admin = match config.server.admin_listen {
        Some(addr) => {
            let token = match &config.server.admin_token {
                Some(t) => Some(t.resolve("server.admin_token")?),
                None => None,
            };
            let state = AdminState {
                metrics: metrics.clone(),
                policies: policies.clone(),
                jobs: jobs.clone(),
                router: router.clone(),
                token,
                auth: config.server.admin_auth,
                reloader: reloader.clone(),
            };
            let admin_tls = tls
                .as_ref()
                .filter(|_| config.server.tls.as_ref().is_some_and(|t| t.admin))
                .map(ListenerTls::acceptor);
            Some(crate::admin::start(addr, state, config.server.client_timeout, admin_tls).await?)
        }
        None => None,
    };

    log_unrestricted(&config);
    let access = Arc::new(Access::new(live.clone()));
    let mut builder = S3ServiceBuilder::new(Frontend::new(live.clone(), access.clone()));
    builder.set_auth(Auth::new(live.clone()));
    builder.set_access(AccessHook(access));
    let mut s3s_config = s3s::config::S3Config::default();
    s3s_config.post_object_max_file_size = MAX_FORM_UPLOAD;
    builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
        s3s_config,
    ))));
    if !config.server.domains.is_empty() {
        let host = s3s::host::MultiDomain::new(config.server.domains.iter().map(String::as_str))
            .map_err(|e| StartError::Domain(e.to_string()))?;
        builder.set_host(host);
    }
    let service = builder.build();

    let addr = config.server.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })?;
    // With `tls.listen`, HTTPS is a second listener and `server.listen` stays plain.
    let (listener_tls, https) = match (&tls, config.server.tls.as_ref().and_then(|t| t.listen)) {
        (None, _) => (None, None),
        (Some(t), None) => (Some(t.acceptor()), None),
        (Some(t), Some(addr)) => {
            let https = TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })?;
            let local = https
                .local_addr()
                .map_err(|source| StartError::Bind { addr, source })?;
            (None, Some((https, t.acceptor(), local)))
        }
    };
    let tls_addr = match &https {
        Some((_, _, addr)) => Some(*addr),
        None => listener_tls.as_ref().map(|_| local),
    };
    info!(listen = %local, tls = ?tls_addr, buckets = config.buckets.len(), backends = config.backends.len(), host_id = request_id::host_id(), "switchyard is serving S3");

    let (stop, stopped) = watch::channel(false);
    let listeners = Listeners {
        listener,
        tls: listener_tls,
        https: https.map(|(l, t, _)| (l, t)),
    };
    let task = serve(
        listeners,
        service,
        Some(live),
        &config.server,
        metrics.clone(),
        stopped,
    );
    let admin_addr = admin.as_ref().map(|(a, _)| *a);
    let background = admin
        .map(|(_, t)| t)
        .into_iter()
        .chain(watcher)
        .chain(config_watch)
        .chain(tls.map(|t| t.watch()))
        .collect();
    Ok(Server {
        addr: local,
        tls_addr,
        admin_addr,
        jobs,
        background,
        stop,
        task,
        router,
        reloader,
    })
}

/// The S3 listeners.
struct Listeners {
    /// `server.listen`.
    listener: TcpListener,
    /// `server.listen` speaks HTTPS: `[server.tls]` without `listen`.
    tls: Option<Acceptor>,
    /// The HTTPS listener of `tls.listen`.
    https: Option<(TcpListener, Acceptor)>,
}

/// A connection to the `tls.listen` listener, if there is one (never, otherwise).
async fn accept_https(
    https: &Option<(TcpListener, Acceptor)>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match https {
        Some((listener, _)) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Serves the listeners' connections until `stopped` changes, then drains the requests
/// in flight. Each request is served with the configuration `live` has when it arrives.
fn serve(
    listeners: Listeners,
    service: s3s::service::S3Service,
    live: Option<Live>,
    settings: &ServerConfig,
    metrics: Arc<Metrics>,
    mut stopped: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let Listeners {
        listener,
        tls: listener_tls,
        https,
    } = listeners;
    let grace = settings.shutdown_grace;
    let client_timeout = settings.client_timeout;
    let read_budget = usize::try_from(settings.read_buffers).unwrap_or(usize::MAX);
    tokio::spawn(async move {
        // The header timer runs from the first read of a request head (here, after the
        // first byte, or after the TLS handshake; on a kept-alive connection, from the
        // end of the previous answer).
        let conn_builder = timed_http1(client_timeout);
        // Connections of both listeners: they share `server.read_buffers`.
        let open = Arc::new(AtomicUsize::new(0));
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        loop {
            let (accepted, tls) = tokio::select! {
                r = listener.accept() => (r, listener_tls.as_ref()),
                r = accept_https(&https) => (r, https.as_ref().map(|(_, t)| t)),
                _ = stopped.changed() => break,
            };
            let (socket, peer) = match accepted {
                Ok(v) => v,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let secure = tls.is_some();
            // The handshake must be done within the client timeout of connecting, or the
            // connection is closed, as one that never speaks is.
            let tls = tls
                .cloned()
                .map(|t| (t, tokio::time::Instant::now() + client_timeout));
            let _ = socket.set_nodelay(true);
            let svc = service.clone();
            let metrics = metrics.clone();
            let live = live.clone();
            let hs =
                hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ClientAddr(peer));
                    if secure {
                        req.extensions_mut().insert(SecureTransport);
                    }
                    let unread_body_possible = may_have_body(req.headers());
                    let head = req.method() == http::Method::HEAD;
                    let unsized_body = chunked_unsigned(req.headers());
                    let exchange = Exchange::new(peer, req.method().clone(), metrics.clone());
                    let req = with_body_deadline(req, client_timeout, unsized_body, &exchange);
                    let svc = svc.clone();
                    // The configuration is taken here, as the request arrives.
                    let snapshot = live.as_ref().map(Live::load);
                    async move {
                        let call = exchange.scope(svc.call(req));
                        let mut resp = match snapshot {
                            Some(snapshot) => Live::scope(snapshot, call).await?,
                            None => call.await?,
                        };
                        // s3s answers a stall inside an XML body with 500 (and logs it
                        // as an error), an upload's handler with its own error: either
                        // way it was the client's silence, and S3 says so.
                        if exchange.stalled() && !resp.status().is_success() {
                            exchange.set_error(
                                "RequestTimeout",
                                &format!(
                                    "the request body stalled (answered {} before)",
                                    resp.status().as_u16()
                                ),
                            );
                            resp = request_timeout(client_timeout)
                                .to_http_response()
                                .map_err(|e| s3s::HttpError::new(Box::new(e)))?;
                        }
                        // An error answered before the body was read (or before "100 Continue"
                        // was sent) leaves the connection's framing in doubt: close it, as S3
                        // does, rather than let the client's next request stall behind it.
                        if unread_body_possible && !resp.status().is_success() {
                            resp.headers_mut().insert(
                                http::header::CONNECTION,
                                http::HeaderValue::from_static("close"),
                            );
                        }
                        request_id::stamp(&exchange, &mut resp, head);
                        exchange.set_status(resp.status());
                        let length = resp
                            .headers()
                            .get(http::header::CONTENT_LENGTH)
                            .and_then(|v| v.to_str().ok()?.parse().ok());
                        Ok::<_, s3s::HttpError>(
                            resp.map(|b| Reported::new(b, exchange, head, length)),
                        )
                    }
                });
            let counted = OpenConnection::new(&open);
            let mut conn_builder = conn_builder.clone();
            let watcher = graceful.watcher();
            let mut stopping = stopped.clone();
            tokio::spawn(async move {
                // The buffer is sized when the first request's bytes arrive, not at accept:
                // connections that arrive together are then counted together, rather than
                // the first of a burst each taking a share meant for few. A connection
                // still silent when the engine stops is closed (the watcher would
                // otherwise hold the shutdown for the whole grace period).
                // A connection closed before it spoke, or silent for the client timeout,
                // ends here too.
                tokio::select! {
                    spoke = first_byte(&socket, client_timeout) => if !spoke {
                        return;
                    },
                    _ = stopping.changed() => return,
                }
                conn_builder.max_buf_size(read_buffer(read_budget, counted.now()));
                let socket = WriteDeadline::new(socket, client_timeout);
                let served = match tls {
                    None => {
                        let conn = conn_builder.serve_connection(TokioIo::new(socket), hs);
                        watcher.watch(conn).await
                    }
                    Some((tls, deadline)) => {
                        let stream = tokio::select! {
                            stream = tls.handshake(socket, deadline) => stream,
                            _ = stopping.changed() => None,
                        };
                        let Some(stream) = stream else { return };
                        let conn = conn_builder.serve_connection(TokioIo::new(stream), hs);
                        watcher.watch(conn).await
                    }
                };
                if let Err(e) = served {
                    debug!(error = %e, "connection closed with an error");
                }
            });
        }
        drop((listener, https));
        info!("draining requests in flight");
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            warn!(
                ?grace,
                "requests still in flight after the shutdown grace period"
            );
        }
    })
}

/// Says at start who may do everything, and who may do only what bucket policies allow:
/// with several users, a user without a policy is not trusted with everything.
fn log_unrestricted(config: &Config) {
    let Ok(access) = config.access_policies() else {
        return;
    };
    let mut unrestricted = Vec::new();
    for (u, a) in config.users.iter().zip(&access.users) {
        if a.implicit {
            info!(user = %u.name(), "the only user, with no policy: it may do everything (give it a policy, or add users, to restrict it)");
        } else if a.unrestricted {
            unrestricted.push(u.name());
        } else if a.identity.is_empty() {
            warn!(user = %u.name(), "user has no policy and no group: it may do only what bucket policies allow it");
        }
    }
    if !unrestricted.is_empty() {
        info!(users = ?unrestricted, "users with unrestricted access (policy full-access)");
    }
}

/// An HTTP/1.1 connection builder whose header timer is the client timeout: a request
/// head must arrive whole within it, and on a kept-alive connection it is the idle limit
/// between requests. HTTP/1.1 only, as S3 speaks it (no S3 SDK sends HTTP/2; AWS endpoints
/// answer HTTP/1.1): HTTP/2 has no counterpart to the header timer, and an HTTP/2 client
/// that stops reading stalls on flow control rather than on a socket write, which is
/// what [`WriteDeadline`] catches.
pub(crate) fn timed_http1(client_timeout: Duration) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(client_timeout);
    builder
}

/// Whether a new connection sends its first byte within `limit`: false when it closes
/// first (a TCP health check) or stays silent. hyper's header timer starts with the first
/// read of a head, so this wait is what bounds a connection that never speaks. `peek`,
/// not `readable`: readiness may be reported before any byte is there.
pub(crate) async fn first_byte(socket: &tokio::net::TcpStream, limit: Duration) -> bool {
    let mut first = [0u8; 1];
    matches!(tokio::time::timeout(limit, socket.peek(&mut first)).await, Ok(Ok(n)) if n > 0)
}

/// Serves until `shutdown` resolves, then drains.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    run_with(config, None, shutdown).await
}

/// [`run`], reloading `source` (see [`start_with`]).
pub async fn run_with(
    config: Config,
    source: Option<ConfigSource>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let server = start_with(config, source).await?;
    shutdown.await;
    server.shutdown().await;
    Ok(())
}

/// How long the client has kept a request waiting. A wait starts at the first poll that
/// finds nothing after one that made progress, so the clock is read once per wait, not
/// once per poll; the timer is made once and moved for each later wait (moving a tokio
/// timer later takes no lock).
struct Patience {
    limit: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Whether the timer runs for the current wait.
    waiting: bool,
}

impl Patience {
    fn new(limit: Duration) -> Self {
        Self {
            limit,
            timer: None,
            waiting: false,
        }
    }

    /// Told whether the last poll made progress; true once the current wait has lasted
    /// `limit` (the waker is registered with the timer otherwise).
    fn run_out(&mut self, progressed: bool, cx: &mut Context<'_>) -> bool {
        if progressed {
            self.waiting = false;
            return false;
        }
        if !self.waiting {
            self.waiting = true;
            let deadline = tokio::time::Instant::now() + self.limit;
            match &mut self.timer {
                Some(t) => t.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        self.timer
            .as_mut()
            .is_some_and(|t| t.as_mut().poll(cx).is_ready())
    }
}

/// A client socket whose writes fail once one has waited `limit` for the client to make
/// room (to read). hyper has no such timeout; without it a client that stops reading an
/// answer holds its connection, the request's task and the backend stream behind it
/// until it hangs up. The error closes the connection, which drops all three.
///
/// Only writes are timed: a connection legitimately reads nothing for long stretches
/// (between requests, which hyper's header timer bounds, and while a slow backend
/// prepares an answer), but a write that cannot proceed always means the client is not
/// reading. Request bodies have their own deadline ([`BodyDeadline`]).
pub(crate) struct WriteDeadline<S> {
    inner: S,
    patience: Patience,
}

impl<S> WriteDeadline<S> {
    pub(crate) fn new(inner: S, limit: Duration) -> Self {
        Self {
            inner,
            patience: Patience::new(limit),
        }
    }

    /// Passes a write's result on, or fails it once the client has made it wait too long.
    fn timed<T>(
        &mut self,
        r: Poll<std::io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<T>> {
        if self.patience.run_out(r.is_ready(), cx) {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the client read nothing for {:?}", self.patience.limit),
            )));
        }
        r
    }
}

/// The error a request body ends with when its client sent nothing for the client
/// timeout while the body was being read.
#[derive(Debug, thiserror::Error)]
#[error("the client sent nothing for {0:?}")]
pub struct ClientStalled(pub Duration);

/// A request body that fails with [`ClientStalled`] once whoever reads it (a handler
/// streaming it to a backend, or s3s collecting an XML body) has waited `limit` for the
/// client's next bytes. Only time spent waiting counts: while the reader is busy (a
/// backend slow to accept bytes) the body is not polled and the clock does not run.
/// `stalled` tells the connection's service, which answers `RequestTimeout` whatever
/// the reader made of the error.
struct BodyDeadline {
    inner: hyper::body::Incoming,
    patience: Patience,
    /// Told of the bytes that arrive, and of a stall.
    exchange: Arc<Exchange>,
    done: bool,
    /// Claims a length for a body of unknown length (see [`chunked_unsigned`]).
    claims_length: bool,
}

impl hyper::body::Body for BodyDeadline {
    type Data = bytes::Bytes;
    type Error = s3s::StdError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, s3s::StdError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if self.patience.run_out(r.is_ready(), cx) {
            self.done = true;
            self.exchange.mark_stalled();
            return Poll::Ready(Some(Err(Box::new(ClientStalled(self.patience.limit)))));
        }
        if let Poll::Ready(Some(Ok(frame))) = &r
            && let Some(data) = frame.data_ref()
        {
            self.exchange.received(data.len());
        }
        r.map(|frame| frame.map(|f| f.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        if self.claims_length {
            return hyper::body::SizeHint::with_exact(UNSIZED_BODY_CLAIM);
        }
        self.inner.size_hint()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.timed(r, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.timed(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.timed(r, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.timed(r, cx)
    }
}

/// The length a body of unknown length claims when [`chunked_unsigned`] (no body is
/// this long: the front end takes lengths from Content-Length, never from this claim).
const UNSIZED_BODY_CLAIM: u64 = u64::MAX;

/// Whether a request streams a body of unknown length: `Transfer-Encoding: chunked`
/// (plain HTTP chunking, not aws-chunked) with no Content-Length, signed with
/// `x-amz-content-sha256: UNSIGNED-PAYLOAD`, as clients piping a stream send a PutObject
/// or UploadPart. s3s refuses such a request (`411 MissingContentLength`) unless its body
/// states a length, so the body claims one ([`UNSIZED_BODY_CLAIM`]); the front end
/// stores it as any body of unknown length (PutObject in parts, `max_put_size` counted as
/// it streams). A signed payload hash needs the length to be checked, so only unsigned
/// payloads are let through; an XML body without Content-Length is still refused.
fn chunked_unsigned(headers: &http::HeaderMap) -> bool {
    let chunked = headers
        .get(http::header::TRANSFER_ENCODING)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
    chunked
        && !headers.contains_key(http::header::CONTENT_LENGTH)
        && headers
            .get("x-amz-content-sha256")
            .is_some_and(|v| v.as_bytes() == b"UNSIGNED-PAYLOAD")
}

/// Puts a deadline on the request's body, if it has one; the flag says whether it ran out.
/// `claims_length`: see [`chunked_unsigned`].
fn with_body_deadline(
    req: http::Request<hyper::body::Incoming>,
    limit: Duration,
    claims_length: bool,
    exchange: &Arc<Exchange>,
) -> http::Request<s3s::Body> {
    use hyper::body::Body as _;
    if req.body().is_end_stream() {
        return req.map(s3s::Body::from);
    }
    req.map(|inner| {
        s3s::Body::http_body(BodyDeadline {
            inner,
            patience: Patience::new(limit),
            exchange: exchange.clone(),
            done: false,
            claims_length,
        })
    })
}

fn may_have_body(headers: &http::HeaderMap) -> bool {
    headers.contains_key(http::header::EXPECT)
        || headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_buffers_shrink_as_connections_multiply() {
        let default = 8 << 20;
        assert_eq!(read_buffer(default, 1), READ_BUFFER_MAX);
        assert_eq!(read_buffer(default, 16), READ_BUFFER_MAX);
        assert_eq!(read_buffer(default, 32), 256 << 10);
        assert_eq!(read_buffer(default, 64), 128 << 10);
        assert_eq!(read_buffer(default, 128), READ_BUFFER_MIN);
        assert_eq!(read_buffer(default, 100_000), READ_BUFFER_MIN);
        // A larger budget keeps reads large for more connections, within the same bounds.
        assert_eq!(read_buffer(64 << 20, 256), 256 << 10);
        assert_eq!(read_buffer(64 << 20, 16), READ_BUFFER_MAX);
        assert_eq!(read_buffer(1 << 20, 1), READ_BUFFER_MAX);
        let count = Arc::new(AtomicUsize::new(0));
        let a = OpenConnection::new(&count);
        assert_eq!(a.now(), 1);
        // A connection that arrives later counts for the earlier one too, as long as the
        // earlier one has not sized its buffer yet.
        let b = OpenConnection::new(&count);
        assert_eq!((a.now(), b.now()), (2, 2));
        drop(a);
        assert_eq!(b.now(), 1);
        drop(b);
        assert_eq!(count.load(Ordering::Relaxed), 0);
    }

    /// Answers ListBuckets with what the request's `SecureTransport` says, as its prefix.
    struct Probe;

    #[async_trait::async_trait]
    impl s3s::S3 for Probe {
        async fn list_buckets(
            &self,
            req: s3s::S3Request<s3s::dto::ListBucketsInput>,
        ) -> s3s::S3Result<s3s::S3Response<s3s::dto::ListBucketsOutput>> {
            let secure = req.extensions.get::<SecureTransport>().is_some();
            Ok(s3s::S3Response::new(s3s::dto::ListBucketsOutput {
                prefix: Some(format!("secure={secure:?}")),
                ..Default::default()
            }))
        }
    }

    async fn list_buckets<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        // A TLS peer may close without close_notify once the answer is out.
        let _ = stream.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[tokio::test]
    async fn requests_say_whether_they_came_over_tls() {
        let dir = std::env::temp_dir().join(format!("switchyard-secure-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["gw.test".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let files = CertFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        let tls = ListenerTls::load(files).unwrap();
        let _ = std::fs::remove_dir_all(&dir);

        let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let secure = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (plain_addr, secure_addr) = (plain.local_addr().unwrap(), secure.local_addr().unwrap());
        let (stop, stopped) = watch::channel(false);
        let listeners = Listeners {
            listener: plain,
            tls: None,
            https: Some((secure, tls.acceptor())),
        };
        let service = S3ServiceBuilder::new(Probe).build();
        let serving = serve(
            listeners,
            service,
            None,
            &ServerConfig::default(),
            Arc::new(Metrics::default()),
            stopped,
        );

        let answer = list_buckets(tokio::net::TcpStream::connect(plain_addr).await.unwrap()).await;
        assert!(answer.contains("<Prefix>secure=false</Prefix>"), "{answer}");

        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let over_tls = |addr| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                let stream = connector
                    .connect("gw.test".try_into().unwrap(), tcp)
                    .await
                    .unwrap();
                list_buckets(stream).await
            }
        };
        let answer = over_tls(secure_addr).await;
        assert!(answer.contains("<Prefix>secure=true</Prefix>"), "{answer}");
        stop.send(true).unwrap();
        serving.await.unwrap();

        // `server.listen` itself over TLS (no `tls.listen`).
        let only = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let only_addr = only.local_addr().unwrap();
        let (stop, stopped) = watch::channel(false);
        let listeners = Listeners {
            listener: only,
            tls: Some(tls.acceptor()),
            https: None,
        };
        let service = S3ServiceBuilder::new(Probe).build();
        let serving = serve(
            listeners,
            service,
            None,
            &ServerConfig::default(),
            Arc::new(Metrics::default()),
            stopped,
        );
        let answer = over_tls(only_addr).await;
        assert!(answer.contains("<Prefix>secure=true</Prefix>"), "{answer}");
        stop.send(true).unwrap();
        serving.await.unwrap();
    }
}
