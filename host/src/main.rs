//! The `switchyard` command: parse arguments, start telemetry, call the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchyard::Config;

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "A programmable S3 gateway over S3, Azure Blob, GCS and local filesystems"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the S3 API. With no --config, runs the embedded default: fs-backed buckets
    /// under --data-dir, created with CreateBucket.
    Serve {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Listen address; overrides the configuration.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Data directory of the embedded default.
        #[arg(long, default_value = "./switchyard-data")]
        data_dir: PathBuf,
        /// Log as JSON lines instead of text.
        #[arg(long)]
        log_json: bool,
    },
    /// Validate a configuration file and exit.
    CheckConfig {
        /// Configuration file (TOML).
        file: PathBuf,
    },
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWITCHYARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,s3s=off"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn embedded_default(listen: Option<SocketAddr>, data_dir: PathBuf) -> Config {
    let access = std::env::var("SWITCHYARD_ACCESS_KEY").ok();
    let secret = std::env::var("SWITCHYARD_SECRET_KEY").ok();
    let (access, secret) = match (access, secret) {
        (Some(a), Some(s)) => (a, s),
        _ => {
            tracing::warn!(
                "SWITCHYARD_ACCESS_KEY / SWITCHYARD_SECRET_KEY are not set: using the well-known development credentials switchyard / switchyard-secret; do not expose this endpoint"
            );
            ("switchyard".to_owned(), "switchyard-secret".to_owned())
        }
    };
    let listen = listen.unwrap_or_else(|| "127.0.0.1:9000".parse().expect("literal address"));
    tracing::info!(data_dir = %data_dir.display(), "running the embedded default configuration");
    Config::embedded_default(listen, data_dir, access, secret)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => match Config::load(&file) {
            Ok(c) => {
                println!(
                    "{}: ok ({} backends, {} buckets)",
                    file.display(),
                    c.backends.len(),
                    c.buckets.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Serve {
            config,
            listen,
            data_dir,
            log_json,
        } => {
            init_tracing(log_json);
            let config = match config {
                Some(path) => match Config::load(&path) {
                    Ok(mut c) => {
                        if let Some(l) = listen {
                            c.server.listen = l;
                        }
                        c
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                },
                None => embedded_default(listen, data_dir),
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            match runtime.block_on(switchyard::run(config, shutdown_signal())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
