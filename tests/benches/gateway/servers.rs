//! The baseline S3 server and the peer gateway, served by this very binary in a child
//! process (`gateway --serve s3s-fs|s3s-proxy ...`; the mover bench serves s3s-fs the
//! same way).
//!
//! Each is the s3s project's own code, 0.14.1: s3s-fs's `FileSystem` and s3s-proxy's
//! `s3s_aws::Proxy` behind `S3ServiceBuilder` with `SimpleAuth`, served by hyper-util on a
//! multi-thread runtime exactly as their `main.rs` do, with one difference: the accepted
//! sockets get `TCP_NODELAY`, as Switchyard's do. The released binaries leave Nagle's
//! algorithm on; a response whose headers and body go out as two small segments then
//! waits for the client's delayed ACK, about 40 ms on Linux, on every small GET and
//! listing. Measured that way, the baseline and the peer would be timing the kernel's
//! ACK timer rather than their code (`--stock-servers` runs the released binaries, to
//! see it).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};

/// `--serve KIND --port PORT (--root DIR | --endpoint-url URL)`, with the credentials in
/// `BENCH_ACCESS_KEY` / `BENCH_SECRET_KEY`.
pub fn serve(args: &[String]) -> Result<()> {
    let mut kind = None;
    let mut port = None;
    let mut root = None;
    let mut upstream = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .with_context(|| format!("{a} needs a value"))
        };
        match a.as_str() {
            "--serve" => kind = Some(value()?),
            "--port" => port = Some(value()?.parse::<u16>()?),
            "--root" => root = Some(PathBuf::from(value()?)),
            "--endpoint-url" => upstream = Some(value()?),
            other => bail!("serve: unknown argument {other:?}"),
        }
    }
    let access = std::env::var("BENCH_ACCESS_KEY").context("BENCH_ACCESS_KEY")?;
    let secret = std::env::var("BENCH_SECRET_KEY").context("BENCH_SECRET_KEY")?;
    let port = port.context("--port")?;
    // As the released binaries: logs by `RUST_LOG` (the mover bench counts requests from
    // s3s's per-request line).
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let service = match kind.as_deref() {
            Some("s3s-fs") => {
                let fs = s3s_fs::FileSystem::new(root.context("--root")?)
                    .map_err(|e| anyhow::anyhow!("s3s-fs: {e:?}"))?;
                let mut b = S3ServiceBuilder::new(fs);
                b.set_auth(SimpleAuth::from_single(access, secret));
                b.build()
            }
            Some("s3s-proxy") => {
                let creds = Credentials::new(&access, &secret, None, None, "bench");
                // As s3s-proxy's `aws_config::from_env()` with these variables set, and
                // request checksums as `proxy_command` sets them for the released binary.
                let conf = aws_sdk_s3::Config::builder()
                    .behavior_version_latest()
                    .endpoint_url(upstream.context("--endpoint-url")?)
                    .region(Region::new("us-east-1"))
                    .credentials_provider(creds)
                    .force_path_style(true)
                    .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                    .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
                    .build();
                let proxy = s3s_aws::Proxy::from(aws_sdk_s3::Client::from_conf(conf));
                let mut b = S3ServiceBuilder::new(proxy);
                b.set_auth(SimpleAuth::from_single(access, secret));
                b.build()
            }
            other => bail!("serve: unknown server {other:?}"),
        };
        listen(service, port).await
    })
}

async fn listen(service: S3Service, port: u16) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    // The line s3s-fs prints, with the port when it was 0.
    println!("server is running at http://{}", listener.local_addr()?);
    std::io::Write::flush(&mut std::io::stdout())?;
    let http = ConnBuilder::new(TokioExecutor::new());
    loop {
        let (socket, _) = listener.accept().await?;
        socket.set_nodelay(true)?;
        let conn = http
            .serve_connection(TokioIo::new(socket), service.clone())
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}
