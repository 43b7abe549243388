//! The `switchyard` command: parse arguments, start telemetry, call the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use switchyard::Config;

/// jemalloc rather than the system allocator: glibc's hands the free top of a thread's heap
/// back to the kernel as soon as it passes 128 KiB, so every streamed body chunk landed in
/// freshly faulted pages (6,000 page faults and a quarter of the CPU of a 64 MiB PUT), and
/// its per-thread arenas held more memory under many concurrent uploads.
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// `--version`: the package's version and, when the build knew it, its commit.
fn version() -> &'static str {
    static LINE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    LINE.get_or_init(|| match switchyard::COMMIT {
        "" => switchyard::VERSION.to_owned(),
        commit => format!("{} (commit {commit})", switchyard::VERSION),
    })
}

#[derive(Parser)]
#[command(
    name = "switchyard",
    version = version(),
    about = "A programmable S3 gateway over S3, Azure Blob, GCS and local filesystems",
    after_help = TOP_EXAMPLES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const TOP_EXAMPLES: &str = "Examples:
  switchyard serve                          # the embedded default on 127.0.0.1:9000
  switchyard serve --config switchyard.toml
  switchyard check-config switchyard.toml
  switchyard help migrate                   # each command's options and examples";

#[derive(Subcommand)]
enum Command {
    /// Serve the S3 API. With no --config, runs the embedded default: fs-backed buckets
    /// under --data-dir, created with CreateBucket.
    #[command(after_help = SERVE_EXAMPLES)]
    Serve {
        /// Configuration file (TOML). Reloaded on SIGHUP, when it changes, and on the
        /// admin API's POST /config/reload.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Listen address; overrides the configuration.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Address of the admin listener (/healthz, /readyz, /metrics, /policies, /jobs);
        /// overrides [server] admin_listen, and gives the embedded default one.
        #[arg(long, value_name = "ADDR")]
        admin_listen: Option<SocketAddr>,
        /// Data directory of the embedded default.
        #[arg(long, default_value = "./switchyard-data")]
        data_dir: PathBuf,
        /// Log as JSON lines instead of text.
        #[arg(long)]
        log_json: bool,
    },
    /// Validate a configuration file, say who may do what under it, and exit. Every error
    /// is reported, one per line, each naming its key; the exit status is 1 when there is
    /// any.
    #[command(after_help = CHECK_CONFIG_EXAMPLES)]
    CheckConfig {
        /// Configuration file (TOML).
        file: PathBuf,
        /// Do not read the secrets given as { env = "VAR" } (nor fail when they are unset):
        /// check a production file where its secrets are not, in CI say. They are listed
        /// as not checked.
        #[arg(long)]
        no_env: bool,
    },
    /// Ask what the access policies decide.
    #[command(subcommand)]
    Access(AccessCommand),
    /// Work with policy components.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Copy or move a virtual bucket's objects from one member to another, while clients
    /// keep using the bucket (list the destination first in its members). Stateless:
    /// run it again after any stop and it finishes the job.
    #[command(after_help = MIGRATE_EXAMPLES)]
    Migrate {
        #[command(flatten)]
        job: JobArgs,
        /// The member to copy from.
        #[arg(long)]
        from: String,
        /// The member to copy to.
        #[arg(long)]
        to: String,
        /// `copy` keeps the source; `move` deletes it after a verified copy.
        #[arg(long, default_value = "copy", value_parser = ["copy", "move"])]
        mode: String,
    },
    /// Run one tiering pass over a virtual bucket: list every member and ask the bucket's
    /// policy, per object, to keep, move, copy or delete it. The policy is loaded from the
    /// configuration's [plugins] dir; with --dry-run it is still asked, and its answers
    /// reported. Stateless, like migrate.
    #[command(after_help = TIER_EXAMPLES)]
    Tier {
        #[command(flatten)]
        job: JobArgs,
    },
    /// Print a shell completion script.
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

const CHECK_CONFIG_EXAMPLES: &str = "Examples:
  switchyard check-config switchyard.toml
  switchyard.toml: ok (2 backends, 2 buckets)

  switchyard check-config --no-env production.toml   # its secrets are not here

Secrets given as { env = \"VAR\" } must be set, as for `serve`, unless --no-env.";

const SERVE_EXAMPLES: &str = "Examples:
  switchyard serve                                   # embedded default, ./switchyard-data
  switchyard serve --data-dir /srv/s3 --listen 0.0.0.0:9000 --admin-listen 127.0.0.1:9090
  switchyard serve --config switchyard.toml --log-json

With --admin-listen, GET /healthz answers while the process runs and GET /readyz (200 or
503) says whether it is ready to serve: the configuration loaded, every configured
bucket's policy loaded and at least one of its members healthy.";

const MIGRATE_EXAMPLES: &str = "Examples:
  switchyard migrate --config switchyard.toml --bucket data --from old --to new --dry-run
  switchyard migrate --config switchyard.toml --bucket data --from old --to new
  switchyard migrate -c switchyard.toml --bucket data --from old --to new --mode move \\
      --shard 0/3 --concurrency 32 --bandwidth 50MiB/s

Exit status 0 when every object went through; run it again to finish after a failure.";

const TIER_EXAMPLES: &str = "Examples:
  switchyard tier --config switchyard.toml --bucket data --dry-run
  switchyard tier --config switchyard.toml --bucket data --bandwidth 20MiB/s";

const COMPLETIONS_EXAMPLES: &str = "Examples:
  switchyard completions bash > ~/.local/share/bash-completion/completions/switchyard
  switchyard completions zsh > \"${fpath[1]}/_switchyard\"
  switchyard completions fish > ~/.config/fish/completions/switchyard.fish";

/// What `migrate` and `tier` share: help that fits both (what is one's alone goes in
/// that command's own text).
#[derive(clap::Args)]
struct JobArgs {
    /// Configuration file (TOML).
    #[arg(long, short)]
    config: PathBuf,
    /// The virtual bucket.
    #[arg(long)]
    bucket: String,
    /// This engine's part of the key space, I/N (stable hash of the key).
    #[arg(long, default_value = "0/1", env = "SWITCHYARD_SHARD", value_parser = switchyard::mover::Shard::parse)]
    shard: switchyard::mover::Shard,
    /// Report what would be done, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Objects in flight at once, 1 to 1024.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: u16,
    /// Cap on the bytes copied per second, e.g. 50MiB/s (default: no cap).
    #[arg(long, value_parser = switchyard::mover::parse_rate)]
    bandwidth: Option<u64>,
}

#[derive(Subcommand)]
enum AccessCommand {
    /// Decide one request as the engine would, and print the decision with the statement
    /// that made it. Exit status: 0 allowed, 1 denied, 2 a bad question or configuration.
    #[command(after_help = ACCESS_CHECK_EXAMPLES)]
    Check {
        /// Configuration file (TOML). Its secrets must resolve, as for `serve`.
        #[arg(long, short)]
        config: PathBuf,
        /// The requester: a user's name or access key.
        #[arg(long, required_unless_present = "anonymous")]
        user: Option<String>,
        /// The requester: an unsigned request.
        #[arg(long, conflicts_with = "user")]
        anonymous: bool,
        /// The action, as S3 names it: s3:GetObject (also HeadObject), s3:PutObject (also
        /// CopyObject, multipart uploads), s3:ListBucket (also HeadBucket), ...; see the
        /// action table in docs/configuration.md.
        #[arg(long)]
        action: String,
        /// arn:aws:s3:::BUCKET/KEY for object actions, arn:aws:s3:::BUCKET for bucket
        /// actions, * for s3:ListAllMyBuckets.
        #[arg(long)]
        resource: String,
        /// The client's address (aws:SourceIp); unset, the key is absent.
        #[arg(long)]
        source_ip: Option<std::net::IpAddr>,
        /// The request came over TLS (aws:SecureTransport).
        #[arg(long)]
        secure: bool,
        /// A request condition key, NAME=VALUE (s3:prefix=home/); repeat for several.
        #[arg(long = "key", value_name = "NAME=VALUE")]
        keys: Vec<String>,
    },
}

const ACCESS_CHECK_EXAMPLES: &str = "Examples:
  switchyard access check --config switchyard.toml --user alice \\
      --action s3:GetObject --resource arn:aws:s3:::media/home/alice/notes.txt --secure
  allow by user alice statement 0 (Sid \"ReadHome\")

  switchyard access check --config switchyard.toml --user alice \\
      --action s3:ListBucket --resource arn:aws:s3:::media --key s3:prefix=home/alice/

  switchyard access check --config switchyard.toml --anonymous \\
      --action s3:GetObject --resource arn:aws:s3:::public-assets/logo.png --source-ip 203.0.113.7

The policy of a bucket made by CreateBucket is read from the bucket itself.";

#[derive(Subcommand)]
enum PolicyCommand {
    /// Check that a component implements the policy world and answers its probe, then
    /// ask it for decisions on sample inputs and judge each answer as the server would.
    /// Exit status 1 when it cannot be loaded, an answer would be refused (an unknown
    /// member, an empty list, a tier move to nowhere) or a call trapped or ran out of time
    /// or memory. A `policy-error` is an answer: it is shown, and passes.
    #[command(after_help = POLICY_CHECK_EXAMPLES)]
    Check {
        /// The policy component (.wasm).
        file: PathBuf,
        /// Configuration file (TOML): the policy runs with its [plugins] and
        /// [policies.NAME] settings (NAME: the policy of --bucket, else the file's name
        /// without .wasm). Its secrets must resolve, as for `serve`.
        #[arg(long, short)]
        config: Option<String>,
        /// A bucket of --config: ask with its members (all healthy, each down, all down)
        /// instead of made-up ones.
        #[arg(long, requires = "config")]
        bucket: Option<String>,
        /// The policy's configuration string (what its `config()` returns); overrides the
        /// one in --config.
        #[arg(long)]
        policy_config: Option<String>,
        /// Deadline of one call, e.g. 50ms or 2s; overrides --config (default 50ms).
        #[arg(long, value_parser = switchyard::config::parse_duration)]
        timeout: Option<std::time::Duration>,
        /// Memory one instance may use, e.g. 64MiB; overrides --config (default 64 MiB).
        #[arg(long, value_parser = switchyard::config::parse_size)]
        memory_limit: Option<u64>,
        /// A request header every sample request carries, NAME=VALUE (a 0.2 policy's
        /// `headers`, e.g. x-tenant=acme); repeat for several.
        #[arg(long = "header", value_name = "NAME=VALUE", value_parser = parse_header)]
        headers: Vec<(String, String)>,
    },
    /// Run a policy against the cases of a CASES.toml file and report each.
    #[command(
        after_help = "Example:\n  switchyard policy test residency.wasm CASES.toml\n\nExit status 0 when every case passes (and there is at least one)."
    )]
    Test {
        /// The policy component (.wasm).
        file: PathBuf,
        /// The cases (see docs/policies.md).
        cases: PathBuf,
    },
    /// Write a starter policy (WIT 0.2) that builds with its build.sh and passes its
    /// CASES.toml: admission, placement, routing and tiering, ready to change.
    #[command(
        after_help = "Example:\n  switchyard policy new residency --lang rust\n  cd residency && ./build.sh && switchyard policy test residency.wasm CASES.toml"
    )]
    New {
        /// The policy's name: its file is NAME.wasm, buckets name it in the configuration.
        name: String,
        /// The language.
        #[arg(long, value_enum)]
        lang: switchyard::policy::scaffold::Lang,
        /// The folder to write (default: ./NAME); it must not exist or be empty.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Turn a core module built with wit-bindgen into a component.
    #[command(
        after_help = "Example:\n  switchyard policy componentize target/wasm32-unknown-unknown/release/residency.wasm \\\n      --output residency.wasm"
    )]
    Componentize {
        /// The core module (.wasm) with an embedded component-type section.
        core: PathBuf,
        /// Where to write the component.
        #[arg(long, short)]
        output: PathBuf,
    },
}

const POLICY_CHECK_EXAMPLES: &str = "Examples:
  switchyard policy check policy.wasm
  switchyard policy check policy.wasm --policy-config '{\"default\": \"eu\"}' --timeout 10ms
  switchyard policy check policy.wasm --config switchyard.toml --bucket data";

/// Whether `--config VALUE` is a policy's configuration string, as `--config` was before
/// it named the Switchyard configuration: it names no file and reads as JSON (or is empty).
fn is_old_policy_config(value: &str) -> bool {
    let t = value.trim_start();
    !std::path::Path::new(value).exists()
        && (t.is_empty() || t.starts_with('{') || t.starts_with('['))
}

/// `--header NAME=VALUE`: the name lower-cased, as policies see header names.
fn parse_header(v: &str) -> Result<(String, String), String> {
    let (name, value) = v
        .split_once('=')
        .ok_or_else(|| format!("{v:?} is not NAME=VALUE"))?;
    let name = name.trim().to_ascii_lowercase();
    // The rule the configuration's `headers` follow: any valid HTTP header name.
    if name.is_empty() || http::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("{name:?} is not a header name"));
    }
    Ok((name, value.to_owned()))
}

/// The report of `policy check`: what was loaded, how it ran, and every answer.
fn print_check(file: &std::path::Path, c: &switchyard::policy::check::Checked) {
    use switchyard::policy::check::{describe_member, describe_settings};
    let [valid, refused, invalid, failed] = c.report.counts();
    if c.report.passed() {
        println!("{}: ok", file.display());
    } else {
        println!(
            "{}: FAILED: {invalid} invalid answers, {failed} failed calls",
            file.display()
        );
    }
    println!("  implements: {} world policy", c.info.package);
    println!("  sha256:     {}", c.info.hash);
    println!("  size:       {} bytes", c.info.size);
    println!("  imports:    {}", c.info.imports.join(", "));
    println!("  exports:    {}", c.info.exports.join(", "));
    println!(
        "  probe:      {} µs (place, route and tier in fresh instances)",
        c.probe.as_micros()
    );
    println!(
        "  settings:   {} (from {})",
        describe_settings(&c.settings),
        c.settings_from
    );
    for (i, set) in c.members.iter().enumerate() {
        let members: Vec<String> = set.members.iter().map(describe_member).collect();
        println!(
            "  {:<11} {}: {}",
            if i == 0 { "members:" } else { "" },
            set.name,
            members.join(", ")
        );
    }
    println!(
        "  answers:    {valid} valid, {refused} refused (policy-error), {invalid} invalid, {failed} failed"
    );
    println!();
    print!("{}", c.report);
    for call in c.report.always_refused() {
        println!(
            "note: every {} call was refused: with these inputs, every such request would fail (or fall back to the built-in default)",
            call.as_str()
        );
    }
}

fn policy_command(cmd: PolicyCommand) -> ExitCode {
    use switchyard::policy::wasm::{CallSettings, EngineSettings, WasmEngine};
    let read =
        |p: &PathBuf| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let result: Result<bool, String> = (|| match cmd {
        PolicyCommand::New { name, lang, dir } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            let files = switchyard::policy::scaffold::scaffold(&name, lang, &dir)?;
            for f in &files {
                println!("wrote {}", f.display());
            }
            println!(
                "next: cd {} && ./build.sh && switchyard policy test {name}.wasm CASES.toml",
                dir.display()
            );
            Ok(true)
        }
        PolicyCommand::Componentize { core, output } => {
            let component = switchyard::policy::wasm::componentize(&read(&core)?)?;
            std::fs::write(&output, &component)
                .map_err(|e| format!("cannot write {}: {e}", output.display()))?;
            println!(
                "{}: component of {} bytes",
                output.display(),
                component.len()
            );
            Ok(true)
        }
        PolicyCommand::Check {
            file,
            config,
            bucket,
            policy_config,
            timeout,
            memory_limit,
            headers,
        } => {
            let (config, policy_config) = match config {
                Some(c) if is_old_policy_config(&c) => {
                    if bucket.is_some() || policy_config.is_some() {
                        return Err(format!(
                            "--config {c:?} names no configuration file"
                        ));
                    }
                    eprintln!(
                        "warning: --config names the Switchyard configuration file; {c:?} names no file and is taken as the policy's configuration string, as before: pass it with --policy-config"
                    );
                    (None, Some(c))
                }
                Some(c) => (
                    Some(Config::load(std::path::Path::new(&c)).map_err(|e| match e {
                        switchyard::config::ConfigError::Read { .. } => format!(
                            "{e} (--config is the Switchyard configuration file; the policy's own configuration string is --policy-config)"
                        ),
                        e => e.to_string(),
                    })?),
                    policy_config,
                ),
                None => (None, policy_config),
            };
            let name = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let overrides = switchyard::policy::check::Overrides {
                policy_config,
                timeout,
                memory_limit,
                headers,
            };
            let checked = switchyard::policy::check::check(
                &read(&file)?,
                &name,
                config.as_ref(),
                bucket.as_deref(),
                &overrides,
            )
            .map_err(|e| format!("{}: {e}", file.display()))?;
            print_check(&file, &checked);
            Ok(checked.report.passed())
        }
        PolicyCommand::Test { file, cases } => {
            let engine = WasmEngine::new(&EngineSettings::default())?;
            let bytes = read(&file)?;
            let text = std::fs::read_to_string(&cases)
                .map_err(|e| format!("cannot read {}: {e}", cases.display()))?;
            let case_file: switchyard::policy::cases::CaseFile =
                toml::from_str(&text).map_err(|e| format!("{}: {e}", cases.display()))?;
            let results = switchyard::policy::cases::run(
                &engine,
                &bytes,
                &case_file,
                &CallSettings::default(),
            )?;
            let failed = results.iter().filter(|r| !r.passed).count();
            for r in &results {
                if r.passed {
                    println!("PASS  {}", r.name);
                } else {
                    println!("FAIL  {}: {}", r.name, r.detail);
                }
            }
            println!(
                "{}: {} passed, {} failed",
                file.display(),
                results.len() - failed,
                failed
            );
            Ok(failed == 0 && !results.is_empty())
        }
    })();
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr ([`switchyard::logging::init`]), in colour on a terminal.
fn init_tracing(
    json: bool,
) -> (
    Option<switchyard::frontend::access_log::Guard>,
    tracing_appender::non_blocking::WorkerGuard,
) {
    use std::io::IsTerminal as _;
    switchyard::logging::init(json, std::io::stderr().is_terminal(), std::io::stderr())
}

/// What `serve` logs about the embedded default once logging has started.
struct Embedded {
    data_dir: PathBuf,
    development_credentials: bool,
}

impl Embedded {
    fn log(&self) {
        if self.development_credentials {
            tracing::warn!(
                "SWITCHYARD_ACCESS_KEY / SWITCHYARD_SECRET_KEY are not set: using the well-known development credentials switchyard / switchyard-secret; do not expose this endpoint"
            );
        }
        tracing::info!(data_dir = %self.data_dir.display(), "running the embedded default configuration");
    }
}

fn embedded_default(listen: Option<SocketAddr>, data_dir: PathBuf) -> (Config, Embedded) {
    let access = std::env::var("SWITCHYARD_ACCESS_KEY").ok();
    let secret = std::env::var("SWITCHYARD_SECRET_KEY").ok();
    let (access, secret, development_credentials) = match (access, secret) {
        (Some(a), Some(s)) => (a, s, false),
        _ => (
            "switchyard".to_owned(),
            "switchyard-secret".to_owned(),
            true,
        ),
    };
    let listen = listen.unwrap_or_else(|| "127.0.0.1:9000".parse().expect("literal address"));
    let config = Config::embedded_default(listen, data_dir.clone(), access, secret);
    let embedded = Embedded {
        data_dir,
        development_credentials,
    };
    (config, embedded)
}

/// The configuration `serve` runs: the file's, or the embedded default, with the
/// addresses given on the command line, validated as the file would be. An error about
/// an address the command line gave names its flag.
fn serve_config(
    file: Option<PathBuf>,
    listen: Option<SocketAddr>,
    admin_listen: Option<SocketAddr>,
    data_dir: PathBuf,
) -> Result<(Config, Option<Embedded>), String> {
    let (mut config, embedded) = match file {
        Some(path) => {
            let mut c = Config::load(&path).map_err(|e| e.to_string())?;
            if let Some(l) = listen {
                c.server.listen = l;
            }
            (c, None)
        }
        None => {
            let (c, e) = embedded_default(listen, data_dir);
            (c, Some(e))
        }
    };
    if let Some(a) = admin_listen {
        config.server.admin_listen = Some(a);
    }
    config.validate().map_err(|e| {
        let flag = match &e {
            switchyard::config::ConfigError::Invalid { field, .. } => match field.as_str() {
                "server.admin_listen" if admin_listen.is_some() => Some("--admin-listen"),
                "server.listen" if listen.is_some() => Some("--listen"),
                _ => None,
            },
            _ => None,
        };
        match flag {
            Some(flag) => format!("{e} (set by {flag})"),
            None => e.to_string(),
        }
    })?;
    Ok((config, embedded))
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

/// A mover job for the CLI.
enum Job {
    Migrate(switchyard::mover::MigrateSpec),
    Tier(switchyard::mover::TierSpec),
}

/// Runs one migration or tiering pass with a progress bar (objects, bytes, rate, ETA once
/// the listing has its totals) and prints a summary; true when nothing failed.
async fn run_job(config: Config, job: Job) -> Result<bool, String> {
    use std::sync::Arc;
    use switchyard::metrics::JobKind;
    use switchyard::mover::Progress;
    let config = Arc::new(config);
    let metrics = Arc::new(switchyard::metrics::Metrics::default());
    // Tiering asks the bucket's policy, so it loads the plugins; a migration needs none.
    let policies = match &job {
        Job::Tier(_) if config.plugins.dir.is_some() => Some(
            switchyard::policy::set::PolicySet::new(&config, metrics.clone())?,
        ),
        _ => None,
    };
    let router = switchyard::router::Router::new(config, policies, metrics.clone())
        .map_err(|e| e.to_string())?;
    let kind = match job {
        Job::Migrate(_) => JobKind::Migrate,
        Job::Tier(_) => JobKind::Tier,
    };
    let progress = Arc::new(Progress::with_metrics(metrics, kind));
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} | {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let ticker = {
        let (bar, progress) = (bar.clone(), progress.clone());
        tokio::spawn(async move {
            loop {
                let p = progress.snapshot();
                bar.set_length(p.listed_bytes.max(p.bytes_copied));
                bar.set_position(p.bytes_copied);
                let listing = if p.listing_done { "" } else { " (listing…)" };
                bar.set_message(format!(
                    "objects: listed {}{listing}, copied {}, skipped {}, kept {}, deleted {}, failed {}",
                    p.listed, p.copied, p.skipped, p.kept, p.deleted, p.failed
                ));
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        })
    };
    let started = std::time::Instant::now();
    let (result, header, dry_run) = match &job {
        Job::Migrate(spec) => (
            switchyard::mover::migrate(&router, spec, &progress).await,
            format!(
                "{} {}/{} -> {} (shard {}/{})",
                if spec.dry_run { "dry run" } else { "migration" },
                spec.bucket,
                spec.from,
                spec.to,
                spec.shard.index,
                spec.shard.count
            ),
            spec.dry_run,
        ),
        Job::Tier(spec) => (
            switchyard::mover::tier(&router, spec, &progress).await,
            format!(
                "{} {} (shard {}/{})",
                if spec.dry_run {
                    "tiering dry run"
                } else {
                    "tiering pass"
                },
                spec.bucket,
                spec.shard.index,
                spec.shard.count
            ),
            spec.dry_run,
        ),
    };
    ticker.abort();
    bar.finish_and_clear();
    let p = progress.snapshot();
    let secs = started.elapsed().as_secs_f64().max(1e-3);
    let verb = if dry_run { "would copy" } else { "copied" };
    println!(
        "{header}: listed {}, {verb} {} ({} bytes), skipped {}, kept {}, deleted {}, failed {} in {secs:.1}s ({:.1} objects/s, {:.1} MB/s)",
        p.listed,
        p.copied,
        p.bytes_copied,
        p.skipped,
        p.kept,
        p.deleted,
        p.failed,
        p.finished as f64 / secs,
        p.bytes_copied as f64 / secs / 1e6,
    );
    result.map_err(|e| e.to_string())?;
    Ok(p.failed == 0)
}

/// Loads the configuration and runs `job` on a fresh runtime; the exit code says whether
/// every object went through.
fn job_command(config: &std::path::Path, job: Job) -> ExitCode {
    let _logs = init_tracing(false);
    let result = (|| {
        let config = Config::load(config).map_err(|e| e.to_string())?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(run_job(config, job))
    })();
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `switchyard check-config`: every error on a line of its own (a parse error stops the
/// reading, so it comes alone), or the summary of who may do what.
fn check_config(file: &std::path::Path, no_env: bool) -> ExitCode {
    use switchyard::config::Secrets;
    let secrets = if no_env {
        Secrets::Skip
    } else {
        Secrets::Resolve
    };
    let checked =
        Config::load_with(file, secrets).and_then(|c| Ok((switchyard::access::summary(&c)?, c)));
    match checked {
        Ok((access, c)) => {
            println!(
                "{}: ok ({} backends, {} buckets)",
                file.display(),
                c.backends.len(),
                c.buckets.len()
            );
            if no_env {
                let unchecked: Vec<String> = c
                    .env_secrets()
                    .into_iter()
                    .map(|(field, var)| format!("{field} ({var})"))
                    .collect();
                if unchecked.is_empty() {
                    println!("secrets from the environment: none (--no-env)");
                } else {
                    println!(
                        "secrets from the environment, not checked (--no-env): {}",
                        unchecked.join(", ")
                    );
                }
            }
            print!("{access}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let errors = e.errors();
            for e in &errors {
                eprintln!("error: {e}");
            }
            if errors.len() > 1 {
                eprintln!("{}: {} errors", file.display(), errors.len());
            }
            if no_env {
                eprintln!("(secrets from the environment were not checked: --no-env)");
            }
            ExitCode::FAILURE
        }
    }
}

/// `switchyard access check`: 0 allowed, 1 denied, 2 when there is no decision to give
/// (as clap's own exit status for bad arguments).
fn access_check(config: &std::path::Path, question: &switchyard::access::Question) -> ExitCode {
    let answer = Config::load(config)
        .map_err(|e| e.to_string())
        .and_then(|c| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime
                .block_on(switchyard::access::check(&c, question))
                .map_err(|e| e.to_string())
        });
    match answer {
        Ok(a) => {
            match &a.refused {
                Some(_) => println!("refused (the policies alone: {})", a.decision),
                None => println!("{}", a.decision),
            }
            println!("  requester:     {}", a.requester);
            println!("  bucket policy: {}", a.bucket_policy);
            println!("  ACLs:          {}", a.acls);
            if let Some(why) = &a.refused {
                println!("  refused:       {why}");
            }
            if a.allowed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    // Crash points for the torture test, from FAILPOINTS (only in builds with the
    // `failpoints` feature; a no-op otherwise).
    let _failpoints = fail::FailScenario::setup();
    let cli = Cli::parse();
    match cli.command {
        Command::Migrate {
            job,
            from,
            to,
            mode,
        } => {
            if from == to {
                // A usage error like the parser's own, with the usage of `migrate`.
                let mut cli = Cli::command();
                cli.build();
                cli.find_subcommand_mut("migrate")
                    .expect("the migrate command")
                    .error(
                        clap::error::ErrorKind::ArgumentConflict,
                        "--from and --to name the same member",
                    )
                    .exit();
            }
            job_command(
                &job.config,
                Job::Migrate(switchyard::mover::MigrateSpec {
                    bucket: job.bucket,
                    from,
                    to,
                    mode: if mode == "move" {
                        switchyard::mover::Mode::Move
                    } else {
                        switchyard::mover::Mode::Copy
                    },
                    shard: job.shard,
                    dry_run: job.dry_run,
                    concurrency: usize::from(job.concurrency),
                    bandwidth: job.bandwidth,
                }),
            )
        }
        Command::Tier { job } => job_command(
            &job.config,
            Job::Tier(switchyard::mover::TierSpec {
                bucket: job.bucket,
                shard: job.shard,
                dry_run: job.dry_run,
                concurrency: usize::from(job.concurrency),
                bandwidth: job.bandwidth,
            }),
        ),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "switchyard",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
        Command::Policy(cmd) => {
            let _logs = init_tracing(false);
            policy_command(cmd)
        }
        Command::CheckConfig { file, no_env } => check_config(&file, no_env),
        Command::Access(AccessCommand::Check {
            config,
            user,
            anonymous: _,
            action,
            resource,
            source_ip,
            secure,
            keys,
        }) => {
            let _logs = init_tracing(false);
            let question = switchyard::access::Question {
                user,
                action,
                resource,
                source_ip,
                secure,
                keys,
            };
            access_check(&config, &question)
        }
        Command::Serve {
            config,
            listen,
            admin_listen,
            data_dir,
            log_json,
        } => {
            // A reload reads the file again, with the same flags over it.
            let source = config.clone().map(|path| {
                let file = path.clone();
                let data_dir = data_dir.clone();
                switchyard::reload::ConfigSource {
                    path,
                    load: Box::new(move || {
                        serve_config(Some(file.clone()), listen, admin_listen, data_dir.clone())
                            .map(|(c, _)| c)
                    }),
                }
            });
            // The whole configuration is checked, flags included, before anything is
            // printed or logged.
            let (config, embedded) = match serve_config(config, listen, admin_listen, data_dir) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let _logs = init_tracing(log_json);
            if let Some(e) = embedded {
                e.log();
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            match runtime.block_on(switchyard::run_with(config, source, shutdown_signal())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
