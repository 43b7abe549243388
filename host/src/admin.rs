//! The admin listener, apart from the S3 one: Prometheus metrics, health, and the loaded
//! policies.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::metrics::Metrics;
use crate::policy::set::PolicySet;
use crate::server::StartError;

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

fn route(path: &str, metrics: &Metrics, policies: Option<&PolicySet>) -> Response {
    match path {
        "/metrics" => respond(
            http::StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        "/healthz" => respond(http::StatusCode::OK, "text/plain", "ok\n".into()),
        "/policies" => {
            let list: Vec<serde_json::Value> = policies
                .map(|p| {
                    p.names()
                        .into_iter()
                        .filter_map(|n| p.get(&n))
                        .map(|w| {
                            let info = w.info();
                            serde_json::json!({
                                "name": w.name(),
                                "sha256": info.hash,
                                "size": info.size,
                                "imports": info.imports,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            respond(
                http::StatusCode::OK,
                "application/json",
                serde_json::Value::Array(list).to_string(),
            )
        }
        _ => respond(
            http::StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".into(),
        ),
    }
}

/// Starts the admin listener; returns its address and task.
pub async fn start(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    policies: Option<Arc<PolicySet>>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), StartError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })?;
    tracing::info!(listen = %local, "admin listener (metrics, health) is serving");
    let task = tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                // Out of file descriptors and the like: back off instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            let metrics = metrics.clone();
            let policies = policies.clone();
            let svc =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let resp = route(req.uri().path(), &metrics, policies.as_deref());
                    async move { Ok::<_, std::convert::Infallible>(resp) }
                });
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(socket), svc)
                    .await;
            });
        }
    });
    Ok((local, task))
}
