//! The admin listener, apart from the S3 one: Prometheus metrics, liveness and readiness,
//! the backends, buckets and loaded policies, mover jobs (migrations, tiering passes and
//! inventories), and the web console over all of these (`/`). Starting or cancelling a
//! job needs the configured bearer token; with `admin_auth = "all"` every request but the
//! probes (`/healthz`, `/readyz`) and the console's own files does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use sha2::{Digest, Sha256};

use crate::config::AdminAuth;
use crate::jobs::Jobs;
use crate::metrics::Metrics;
use crate::mover::{InventorySpec, MigrateSpec, Mode, Shard, TierSpec, parse_rate};
use crate::policy::set::PolicySet;
use crate::router::Router;
use crate::server::{StartError, WriteDeadline, first_byte, timed_http1};
use crate::tls::Acceptor;

type Response = http::Response<http_body_util::Full<bytes::Bytes>>;

fn respond(status: http::StatusCode, content_type: &'static str, body: String) -> Response {
    let mut r = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r
}

/// What the admin listener serves from.
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    pub policies: Option<Arc<PolicySet>>,
    pub jobs: Arc<Jobs>,
    /// The configuration snapshot in service: its buckets and their members' health.
    pub router: Arc<ArcSwap<Router>>,
    /// Needed (as a bearer token) to start jobs; none: the API is read-only.
    pub token: Option<String>,
    /// Which requests need `token`.
    pub auth: AdminAuth,
    /// Reloads the configuration file (`POST /config/reload`).
    pub reloader: Arc<crate::reload::Reloader>,
}

/// The console: one page with its script and style sheet, embedded in the binary, so it
/// needs no CDN, no build step and nothing fetched at run time. The files hold no data
/// (the page reads the API, with the token when it needs one), so they are served
/// without the token: a browser cannot send a bearer token on a page load.
const CONSOLE: [(&str, &str, &str); 3] = [
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("console/index.html"),
    ),
    (
        "/console.js",
        "text/javascript; charset=utf-8",
        include_str!("console/console.js"),
    ),
    (
        "/console.css",
        "text/css; charset=utf-8",
        include_str!("console/console.css"),
    ),
];

fn console_file(path: &str) -> Option<Response> {
    let (_, content_type, body) = CONSOLE.iter().find(|(p, _, _)| *p == path)?;
    let mut r = http::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(
        body.as_bytes(),
    )));
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    // Scripts and styles from this listener only (none inline), and no framing: the page
    // holds the admin token while it is open.
    h.insert(
        http::header::CONTENT_SECURITY_POLICY,
        http::HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    h.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    // A new engine version serves its own console at once.
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache"),
    );
    Some(r)
}

fn json(status: http::StatusCode, v: &serde_json::Value) -> Response {
    respond(status, "application/json", format!("{v}\n"))
}

fn error(status: http::StatusCode, message: impl std::fmt::Display) -> Response {
    json(status, &serde_json::json!({ "error": message.to_string() }))
}

/// Compares the SHA-256 digests of the two tokens, every byte of them whatever differs.
/// Comparing the tokens themselves would leak through timing: their length (a comparison
/// that stops at a length mismatch) and, byte by byte, their content. Digests always have
/// the same length, and a timing that still depended on where two digests differ would
/// tell nothing about the token, since a digest cannot be steered byte by byte.
fn token_matches(given: &[u8], want: &[u8]) -> bool {
    let (given, want) = (Sha256::digest(given), Sha256::digest(want));
    let diff = given
        .iter()
        .zip(want.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(diff) == 0
}

/// The bearer token of a request: the credentials of `Authorization: Bearer ...` (the
/// scheme's name is case-insensitive, RFC 9110).
fn bearer(headers: &http::HeaderMap) -> &str {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, token)| token.trim_start())
}

/// The refusal, when the request does not carry the configured token.
fn refusal(state: &AdminState, headers: &http::HeaderMap) -> Option<Response> {
    let Some(want) = &state.token else {
        return Some(error(
            http::StatusCode::FORBIDDEN,
            "starting jobs needs [server] admin_token in the configuration",
        ));
    };
    if token_matches(bearer(headers).as_bytes(), want.as_bytes()) {
        return None;
    }
    let mut r = error(
        http::StatusCode::UNAUTHORIZED,
        "missing or wrong bearer token",
    );
    r.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer"),
    );
    Some(r)
}

/// Whether the listener at `addr` can be reached from other hosts with no token to stop
/// anyone: then anyone there reads the metrics, the jobs and the policies.
pub fn exposed_without_token(addr: SocketAddr, token: bool) -> bool {
    !token && !addr.ip().to_canonical().is_loopback()
}

/// Parameters of `POST /jobs/migrate` and `POST /jobs/tier`, from the query string.
fn params(query: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

async fn start_job(
    kind: &str,
    query: Option<&str>,
    state: &AdminState,
) -> Result<Response, String> {
    let p = params(query);
    let known: &[&str] = match kind {
        "migrate" => &[
            "bucket",
            "from",
            "to",
            "mode",
            "shard",
            "dry_run",
            "concurrency",
            "bandwidth",
        ],
        "inventory" => &["bucket", "shard"],
        _ => &["bucket", "shard", "dry_run", "concurrency", "bandwidth"],
    };
    if let Some(unknown) = p.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!("unknown parameter {unknown:?}"));
    }
    let need = |k: &str| {
        p.get(k)
            .cloned()
            .ok_or_else(|| format!("missing parameter {k:?}"))
    };
    let bucket = need("bucket")?;
    let shard = p.get("shard").map_or(Ok(Shard::ALL), |s| Shard::parse(s))?;
    if kind == "inventory" {
        let job = state
            .jobs
            .inventory(InventorySpec { bucket, shard })
            .await
            .map_err(|e| e.to_string())?;
        return Ok(json(http::StatusCode::ACCEPTED, &job.to_json()));
    }
    let dry_run = match p.get("dry_run").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => return Err(format!("dry_run: {v:?} is not true or false")),
    };
    let concurrency = match p.get("concurrency") {
        None => 16,
        Some(c) => c
            .parse::<usize>()
            .ok()
            .filter(|c| (1..=1024).contains(c))
            .ok_or_else(|| format!("concurrency: {c:?} is not a number from 1 to 1024"))?,
    };
    let bandwidth = p.get("bandwidth").map(|b| parse_rate(b)).transpose()?;
    let job = if kind == "migrate" {
        let mode = match p.get("mode").map(String::as_str) {
            None | Some("copy") => Mode::Copy,
            Some("move") => Mode::Move,
            Some(m) => return Err(format!("mode: {m:?} is not copy or move")),
        };
        let spec = MigrateSpec {
            bucket,
            from: need("from")?,
            to: need("to")?,
            mode,
            shard,
            dry_run,
            concurrency,
            bandwidth,
        };
        if spec.from == spec.to {
            return Err("from and to name the same member".into());
        }
        state.jobs.migrate(spec).await
    } else {
        state
            .jobs
            .tier(TierSpec {
                bucket,
                shard,
                dry_run,
                concurrency,
                bandwidth,
            })
            .await
    }
    .map_err(|e| e.to_string())?;
    Ok(json(http::StatusCode::ACCEPTED, &job.to_json()))
}

/// `GET /policies`: the policies in service, each with its hash, size and imports and,
/// while the file on disk is a version that failed to load or to answer its probe, that
/// version under `rejected` (null otherwise): its hash, size, modification time, when it
/// was judged and why it was rejected. A policy with no version in service is not listed
/// (whoever waits for a policy to be listed before naming it in a bucket relies on
/// that); its rejections are in the log and in `switchyard_policy_reloads_total`.
fn policies(set: &PolicySet) -> Vec<serde_json::Value> {
    let time = |t: std::time::SystemTime| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339();
    let rejected = set.rejected();
    set.names()
        .into_iter()
        .filter_map(|name| set.get(&name))
        .map(|w| {
            let info = w.info();
            let rejected = rejected.get(w.name()).map(|r| {
                serde_json::json!({
                    "sha256": r.hash,
                    "size": r.size,
                    "modified": r.modified.map(time),
                    "seen": time(r.seen),
                    "reason": r.reason,
                })
            });
            serde_json::json!({
                "name": w.name(),
                "sha256": info.hash,
                "size": info.size,
                "imports": info.imports,
                "rejected": rejected,
            })
        })
        .collect()
}

/// `GET /backends`: every backend, configured or behind a bucket made by CreateBucket,
/// with what requests last saw of it: healthy or not (a failed call marks it unhealthy
/// for its `network.unhealthy_for`), and the moving average of its calls' latency.
fn backends(router: &Router, buckets: &[Arc<crate::router::VirtualBucket>]) -> serde_json::Value {
    let mut all: std::collections::BTreeMap<&str, &crate::backends::Backend> = router
        .backends()
        .map(|b| (b.name.as_str(), b.as_ref()))
        .collect();
    for m in buckets.iter().flat_map(|b| &b.members) {
        all.entry(m.name.as_str()).or_insert(m.as_ref());
    }
    all.values()
        .map(|b| {
            let v = b.view();
            serde_json::json!({
                "name": v.name,
                "kind": v.kind,
                "labels": v
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect::<serde_json::Map<_, _>>(),
                "healthy": v.healthy,
                "latency_us": v.latency_us,
            })
        })
        .collect()
}

/// `GET /buckets`: every bucket with its members (in priority order), policy, and
/// tiering schedule (`every`, as the configuration writes it; null without one).
fn buckets(router: &Router, buckets: &[Arc<crate::router::VirtualBucket>]) -> serde_json::Value {
    buckets
        .iter()
        .map(|b| {
            let tiering = router
                .config
                .buckets
                .get(&b.name)
                .and_then(|c| c.tiering.as_ref())
                .map(|t| humantime_serde::re::humantime::format_duration(t.every).to_string());
            serde_json::json!({
                "name": b.name,
                "members": b.members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
                "policy": b.policy,
                "failure": match b.failure {
                    crate::config::FailureMode::FailOpen => "fail-open",
                    crate::config::FailureMode::FailClosed => "fail-closed",
                },
                "tiering_every": tiering,
                "dynamic": b.dynamic,
                "created": b.created.to_rfc3339(),
            })
        })
        .collect()
}

/// `POST /jobs/ID/cancel`: stops a running job (200, the job as it stands), 409 when it
/// had already ended.
fn cancel(state: &AdminState, id: &str) -> Response {
    let Some(job) = id.parse::<u64>().ok().and_then(|id| state.jobs.get(id)) else {
        return error(http::StatusCode::NOT_FOUND, "no such job");
    };
    if !job.cancel() {
        return error(
            http::StatusCode::CONFLICT,
            format!("job {} is not running", job.id),
        );
    }
    json(http::StatusCode::OK, &job.to_json())
}

/// One check of `/readyz`: its name, and why it fails (none: it passes).
#[derive(Debug, PartialEq, Eq)]
struct Check {
    name: String,
    failure: Option<String>,
}

/// Longest reason `/readyz` gives for one check: a rejected policy's reason can be a
/// compiler's whole report, and a probe's body should stay a few lines.
const MAX_REASON: usize = 200;

fn short(reason: &str) -> String {
    let line = reason.lines().next().unwrap_or_default();
    match line.char_indices().nth(MAX_REASON) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_owned(),
    }
}

/// What makes this engine ready to serve, from what it already knows (no I/O: a probe
/// must answer within its timeout whatever the backends do). The configuration is loaded
/// (the listener runs on one); then, for every configured bucket (those made by
/// CreateBucket have the built-in policy and one member), its policy is loaded, and at
/// least one member is healthy. Health is what requests last saw: a member is marked
/// unhealthy by a failed call for its `network.unhealthy_for`, and counts as healthy again
/// when that ends or a call succeeds.
fn readiness(router: &Router, policies: Option<&PolicySet>) -> Vec<Check> {
    let mut checks = vec![Check {
        name: "config".into(),
        failure: None,
    }];
    let rejected = policies.map(PolicySet::rejected).unwrap_or_default();
    for (name, bucket) in &router.config.buckets {
        let loaded =
            bucket.policy == "default" || policies.is_some_and(|p| p.get(&bucket.policy).is_some());
        checks.push(Check {
            name: format!("bucket/{name}/policy"),
            failure: (!loaded).then(|| {
                let why = match rejected.get(&bucket.policy) {
                    Some(r) => format!("rejected: {}", short(&r.reason)),
                    None => match policies.and_then(PolicySet::dir) {
                        Some(dir) => format!("no {}.wasm in {}", bucket.policy, dir.display()),
                        None => "no [plugins] dir".into(),
                    },
                };
                format!("policy {:?} is not loaded ({why})", bucket.policy)
            }),
        });
        let healthy = bucket
            .members
            .iter()
            .any(|m| router.backend(m).is_some_and(|b| b.healthy()));
        checks.push(Check {
            name: format!("bucket/{name}/members"),
            failure: (!healthy).then(|| {
                format!(
                    "no healthy member ({} marked unhealthy by failed requests)",
                    bucket.members.join(", ")
                )
            }),
        });
    }
    checks
}

/// `GET /readyz`: 200 when every check passes, 503 otherwise. The body is plain text,
/// one line per check as Kubernetes' own `/readyz` writes them (`[+]NAME ok`,
/// `[-]NAME failed: REASON`), then `readyz check passed` or `readyz check failed`. With
/// `admin_auth = "all"`, a request without the token (a kubelet's probe) gets the status
/// and the number of failed checks, not their names: bucket, member and policy names are
/// what the token guards.
fn readyz(state: &AdminState, headers: &http::HeaderMap) -> Response {
    let checks = readiness(&state.router.load(), state.policies.as_deref());
    let failed = checks.iter().filter(|c| c.failure.is_some()).count();
    let status = if failed == 0 {
        http::StatusCode::OK
    } else {
        http::StatusCode::SERVICE_UNAVAILABLE
    };
    let withheld = state.auth == AdminAuth::All && refusal(state, headers).is_some();
    let mut body = String::new();
    if withheld {
        if failed > 0 {
            body.push_str(&format!(
                "{failed} of {} checks failed (reasons withheld: send the admin token)\n",
                checks.len()
            ));
        }
    } else {
        for c in &checks {
            match &c.failure {
                None => body.push_str(&format!("[+]{} ok\n", c.name)),
                Some(why) => body.push_str(&format!("[-]{} failed: {why}\n", c.name)),
            }
        }
    }
    body.push_str(if failed == 0 {
        "readyz check passed\n"
    } else {
        "readyz check failed\n"
    });
    let mut r = respond(status, "text/plain; charset=utf-8", body);
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}

/// `POST /config/reload`: reloads the configuration file as SIGHUP does, and answers
/// what came of it: 200 `{"result": "applied", "restart_needed": [KEY...]}` (the settings
/// that changed but keep their values until a restart), or 422 `{"result": "rejected",
/// "error": ...}` (the file is invalid; the configuration in service stays). 409 when the
/// engine was not started from a file.
async fn config_reload(state: &AdminState) -> Response {
    match state
        .reloader
        .reload(crate::reload::Trigger::AdminApi)
        .await
    {
        Some(o @ crate::reload::Outcome::Applied { .. }) => {
            json(http::StatusCode::OK, &o.to_json())
        }
        Some(o @ crate::reload::Outcome::Rejected { .. }) => {
            json(http::StatusCode::UNPROCESSABLE_ENTITY, &o.to_json())
        }
        None => error(
            http::StatusCode::CONFLICT,
            "the engine was not started from a configuration file (serve --config FILE)",
        ),
    }
}

async fn route(
    method: &http::Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    state: &AdminState,
) -> Response {
    let path = uri.path();
    // Probes (the kubelet's, a load balancer's) carry no token; health tells nothing, and
    // readiness without the token tells no names.
    let console = console_file(path);
    if state.auth == AdminAuth::All
        && path != "/healthz"
        && path != "/readyz"
        && console.is_none()
        && let Some(r) = refusal(state, headers)
    {
        return r;
    }
    if let Some(file) = console
        && method == http::Method::GET
    {
        return file;
    }
    if let Some(id) = path
        .strip_prefix("/jobs/")
        .and_then(|p| p.strip_suffix("/cancel"))
    {
        if method != http::Method::POST {
            return error(http::StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        if let Some(r) = refusal(state, headers) {
            return r;
        }
        return cancel(state, id);
    }
    match (method.as_str(), path) {
        ("GET", "/backends" | "/buckets") => {
            let router = state.router.load();
            match router.buckets().await {
                Ok(list) if path == "/backends" => {
                    json(http::StatusCode::OK, &backends(&router, &list))
                }
                Ok(list) => json(http::StatusCode::OK, &buckets(&router, &list)),
                Err(e) => error(http::StatusCode::BAD_GATEWAY, e),
            }
        }
        ("GET", "/metrics") => respond(
            http::StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            state.metrics.encode(),
        ),
        ("GET", "/healthz") => respond(http::StatusCode::OK, "text/plain", "ok\n".into()),
        ("GET", "/readyz") => readyz(state, headers),
        ("GET", "/policies") => {
            let list = state.policies.as_deref().map(policies).unwrap_or_default();
            json(http::StatusCode::OK, &serde_json::Value::Array(list))
        }
        ("GET", "/jobs") => {
            let list = state.jobs.list().iter().map(|j| j.to_json()).collect();
            json(http::StatusCode::OK, &serde_json::Value::Array(list))
        }
        ("POST", "/jobs/migrate" | "/jobs/tier" | "/jobs/inventory") => {
            if let Some(r) = refusal(state, headers) {
                return r;
            }
            let kind = path.trim_start_matches("/jobs/");
            start_job(kind, uri.query(), state)
                .await
                .unwrap_or_else(|e| error(http::StatusCode::BAD_REQUEST, e))
        }
        ("POST", "/config/reload") => {
            if let Some(r) = refusal(state, headers) {
                return r;
            }
            config_reload(state).await
        }
        ("GET", p) if p.starts_with("/jobs/") => {
            match p["/jobs/".len()..]
                .parse::<u64>()
                .ok()
                .and_then(|id| state.jobs.get(id))
            {
                Some(j) => json(http::StatusCode::OK, &j.to_json()),
                None => error(http::StatusCode::NOT_FOUND, "no such job"),
            }
        }
        (
            _,
            "/" | "/console.js" | "/console.css" | "/metrics" | "/healthz" | "/readyz"
            | "/policies" | "/backends" | "/buckets" | "/jobs" | "/jobs/migrate" | "/jobs/tier"
            | "/jobs/inventory" | "/config/reload",
        ) => error(http::StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        _ => error(http::StatusCode::NOT_FOUND, "not found"),
    }
}

/// Starts the admin listener; returns its address and task. Its connections are held to
/// the S3 listener's client timeout (`server.client_timeout`): a scraper or probe that
/// connects and stays silent, stops inside a request head, or stops reading an answer
/// would otherwise keep its connection and task for ever. With `tls` it speaks HTTPS, and
/// the handshake is held to the same timeout.
pub async fn start(
    addr: SocketAddr,
    state: AdminState,
    client_timeout: std::time::Duration,
    tls: Option<Acceptor>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), StartError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })?;
    tracing::info!(listen = %local, tls = tls.is_some(), "admin listener (metrics, health, jobs) is serving");
    if exposed_without_token(local, state.token.is_some()) {
        tracing::warn!(
            listen = %local,
            "the admin listener is not on a loopback address and has no admin_token: whoever reaches it reads /metrics, /jobs and /policies (set [server] admin_token and admin_auth = \"all\", or listen on 127.0.0.1)"
        );
    }
    let state = Arc::new(state);
    let task = tokio::spawn(async move {
        let conn_builder = timed_http1(client_timeout);
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                // Out of file descriptors and the like: back off instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            let state = state.clone();
            let svc =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let state = state.clone();
                    async move {
                        let resp = route(req.method(), req.uri(), req.headers(), &state).await;
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
            let conn_builder = conn_builder.clone();
            let tls = tls
                .clone()
                .map(|t| (t, tokio::time::Instant::now() + client_timeout));
            tokio::spawn(async move {
                if !first_byte(&socket, client_timeout).await {
                    return;
                }
                let socket = WriteDeadline::new(socket, client_timeout);
                let _ = match tls {
                    None => {
                        conn_builder
                            .serve_connection(TokioIo::new(socket), svc)
                            .await
                    }
                    Some((tls, deadline)) => {
                        let Some(stream) = tls.handshake(socket, deadline).await else {
                            return;
                        };
                        conn_builder
                            .serve_connection(TokioIo::new(stream), svc)
                            .await
                    }
                };
            });
        }
    });
    Ok((local, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_whole() {
        let want = b"0123456789abcdef-secret";
        assert!(token_matches(want, want));
        for given in [
            &b""[..],
            b"0123456789abcdef",
            b"0123456789abcdef-secreT",
            b"0123456789abcdef-secret ",
            b"0123456789abcdef-secret-and-more",
        ] {
            assert!(!token_matches(given, want), "{given:?}");
        }
    }

    #[test]
    fn readiness_reasons_are_one_short_line() {
        assert_eq!(short("cannot compile\n  at offset 12"), "cannot compile");
        let long = "é".repeat(MAX_REASON + 5);
        assert_eq!(short(&long), format!("{}…", "é".repeat(MAX_REASON)));
        assert_eq!(short(""), "");
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let headers = |v: &'static str| {
            let mut h = http::HeaderMap::new();
            h.insert(
                http::header::AUTHORIZATION,
                http::HeaderValue::from_static(v),
            );
            h
        };
        assert_eq!(bearer(&headers("Bearer t0ken")), "t0ken");
        assert_eq!(bearer(&headers("bearer t0ken")), "t0ken");
        assert_eq!(bearer(&headers("Basic dTpw")), "");
        assert_eq!(bearer(&headers("Bearer")), "");
        assert_eq!(bearer(&http::HeaderMap::new()), "");
    }

    #[test]
    fn only_loopback_listeners_go_without_a_token_unwarned() {
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(!exposed_without_token(at("127.0.0.1:9090"), false));
        assert!(!exposed_without_token(at("[::1]:9090"), false));
        assert!(!exposed_without_token(at("[::ffff:127.0.0.1]:9090"), false));
        assert!(exposed_without_token(at("0.0.0.0:9090"), false));
        assert!(exposed_without_token(at("[::]:9090"), false));
        assert!(exposed_without_token(at("10.1.2.3:9090"), false));
        assert!(!exposed_without_token(at("0.0.0.0:9090"), true));
    }
}
