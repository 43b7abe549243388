//! The mover against `rclone copy`, measured in the same run (a benchmark, not a timed test).
//!
//! Both copy the same data sets between the same two buckets of one s3s-fs server (the
//! s3s project's S3 server over a directory, its code served by this binary with
//! `TCP_NODELAY` as in the gateway bench; `MOVER_BENCH_STOCK_SERVER=1` runs the released
//! binary, whose small responses wait about 40 ms for delayed ACKs) on 127.0.0.1:
//! `switchyard migrate` from an `s3` member `src` to an `s3` member `dst`, and `rclone
//! copy SRC:… DST:…` with two remotes, so that rclone streams every object through itself
//! as the mover does instead of asking the server for a same-remote CopyObject. The
//! destination is emptied before every run; the configurations alternate order from round
//! to round and each reports its median wall time, and the CPU seconds the tool and s3s-fs
//! spent (from `/proc`, Linux).
//!
//! Run: `cargo bench -p switchyard-tests --bench mover`, after
//! `scripts/install-bench-tools.sh` (Debian's rclone; s3s-fs in `.tools/bin` for the stock
//! server). The bench first runs `cargo build -p switchyard` for its own profile
//! (`--release` under `cargo bench`), so it measures the current
//! `target/release/switchyard`;
//! `SWITCHYARD_BIN=PATH` uses that binary instead and skips the build. Sizes and rounds:
//! `MOVER_BENCH_SMALL_OBJECTS` (5000 of 4 KiB), `MOVER_BENCH_LARGE_OBJECTS` (8) of
//! `MOVER_BENCH_LARGE_MIB` (64), `MOVER_BENCH_ROUNDS` (3). Space: the large set twice
//! (1 GiB by default), in `/dev/shm` (RAM) when there is one, so that a shared machine's
//! disk is not what the tools are compared on, else in the system's temporary directory;
//! `MOVER_BENCH_DIR=DIR` puts it in DIR.
//!
//! Targets (issue 4): at least 1.5x rclone's objects/s on small objects, at least its MB/s
//! on large ones. After the timed rounds, a short untimed pass with s3s-fs's request log on
//! counts the requests each tool makes per object, which is where the time goes.

#[path = "gateway/servers.rs"]
mod servers;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use base64::Engine;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use switchyard_tests::harness::{MigrateSummary, TempDir, repo_root, s3_client};

const ACCESS_KEY: &str = "mover-bench";
const SECRET_KEY: &str = "mover-bench-secret";
const CONTENT_TYPE: &str = "application/x-mover-bench";
/// Every seeded object carries this user-metadata entry; the copy should too.
const META: (&str, &str) = ("origin", "mover-bench");
/// rclone options in every run. `--metadata` makes rclone copy user metadata as the mover
/// does (it keeps the content type either way); `--s3-no-check-bucket` skips creating the
/// destination bucket, which exists.
const RCLONE_FLAGS: &[&str] = &["--metadata", "--s3-no-check-bucket"];
const MB: f64 = 1e6;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Clone)]
struct DataSet {
    name: &'static str,
    count: usize,
    size: usize,
    /// PUTs in flight while seeding.
    seed_concurrency: usize,
}

impl DataSet {
    fn bytes(&self) -> u64 {
        (self.count * self.size) as u64
    }
    fn src(&self) -> String {
        format!("{}-src", self.name)
    }
    fn dst(&self) -> String {
        format!("{}-dst", self.name)
    }
    fn describe(&self) -> String {
        if self.size >= 1 << 20 {
            format!("{} x {} MiB", self.count, self.size >> 20)
        } else {
            format!("{} x {} KiB", self.count, self.size >> 10)
        }
    }
}

/// The programs under test and the server.
struct Programs {
    switchyard: PathBuf,
    rclone: PathBuf,
    /// The released s3s-fs binary (`MOVER_BENCH_STOCK_SERVER=1`); else this binary serves
    /// s3s-fs's code with `TCP_NODELAY` (see `gateway/servers.rs`).
    stock_s3s_fs: Option<PathBuf>,
}

fn in_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Builds `switchyard` for the profile this bench was built with (so `cargo bench` measures
/// a release binary of the current sources), unless `SWITCHYARD_BIN` names one.
fn switchyard_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("SWITCHYARD_BIN").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    // <target>/<profile>/deps/<bench>-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("the bench executable is not in a target directory")?;
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("release");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-p", "switchyard", "--bin", "switchyard"])
        .current_dir(repo_root());
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    eprintln!("building switchyard ({profile}) …");
    let status = cmd.status().context("running cargo build")?;
    ensure!(status.success(), "cargo build -p switchyard failed");
    let bin = profile_dir.join(format!("switchyard{}", std::env::consts::EXE_SUFFIX));
    ensure!(bin.is_file(), "{} was not built", bin.display());
    Ok(bin)
}

fn programs() -> Result<Programs> {
    let tools = std::env::var_os("SWITCHYARD_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools"));
    let stock = std::env::var("MOVER_BENCH_STOCK_SERVER").is_ok_and(|v| v == "1");
    let stock_s3s_fs = if stock {
        let bin = Some(tools.join("bin/s3s-fs"))
            .filter(|p| p.is_file())
            .or_else(|| in_path("s3s-fs"))
            .context("s3s-fs not found: run scripts/install-bench-tools.sh")?;
        Some(bin)
    } else {
        None
    };
    let rclone =
        in_path("rclone").context("rclone not found: run scripts/install-bench-tools.sh")?;
    Ok(Programs {
        switchyard: switchyard_binary()?,
        rclone,
        stock_s3s_fs,
    })
}

/// A fresh directory for one s3s-fs server, removed on drop: under `MOVER_BENCH_DIR`, else
/// in `/dev/shm` where there is one, so that the shared machine's disk (its latency moves
/// with everyone else's builds) is not what the tools are compared on; else in the
/// system's temporary directory.
fn work_dir() -> Result<TempDir> {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let base = std::env::var_os("MOVER_BENCH_DIR")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|p| p.is_dir()))
        .unwrap_or_else(std::env::temp_dir);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = base.join(format!("switchyard-mover-bench-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(TempDir(dir))
}

/// An s3s-fs server over a temporary directory, stopped on drop.
struct S3sFs {
    child: Child,
    endpoint: String,
    root: PathBuf,
    log: PathBuf,
    dir: TempDir,
}

impl S3sFs {
    /// Starts s3s-fs on an ephemeral port; `log_requests` logs every request's operation
    /// (slow: for counting, never for timing).
    fn start(stock: Option<&Path>, buckets: &[String], log_requests: bool) -> Result<Self> {
        let dir = work_dir()?;
        let root = dir.0.join("root");
        for b in buckets {
            // A bucket of s3s-fs is a directory under its root.
            std::fs::create_dir_all(root.join(b))?;
        }
        let log = dir.0.join("s3s-fs.log");
        let out = std::fs::File::create(&log)?;
        // Only the start-up line (it has the port), unless requests are counted: s3s also
        // logs the expected 404 of a HEAD as an error, which would tax the tool that asks.
        let filter = if log_requests {
            "off,s3s_fs=info,s3s::ops=debug"
        } else {
            "off,s3s_fs=info"
        };
        let mut cmd = match stock {
            Some(bin) => {
                let mut cmd = Command::new(bin);
                cmd.args(["--host", "127.0.0.1", "--port", "0"])
                    .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                    .arg(&root);
                cmd
            }
            None => {
                let mut cmd = Command::new(std::env::current_exe()?);
                cmd.args(["--serve", "s3s-fs", "--port", "0", "--root"])
                    .arg(&root)
                    .env("BENCH_ACCESS_KEY", ACCESS_KEY)
                    .env("BENCH_SECRET_KEY", SECRET_KEY);
                cmd
            }
        };
        let child = cmd
            .env("RUST_LOG", filter)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting s3s-fs")?;
        let mut server = Self {
            child,
            endpoint: String::new(),
            root,
            log,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&server.log).unwrap_or_default();
            if let Some(i) = text.find("server is running at http://") {
                let url = &text[i + "server is running at ".len()..];
                server.endpoint = url.split_whitespace().next().unwrap_or_default().into();
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                bail!("s3s-fs exited ({status}):\n{text}");
            }
            ensure!(Instant::now() < deadline, "s3s-fs did not start:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn client(&self) -> Client {
        s3_client(&self.endpoint, ACCESS_KEY, SECRET_KEY)
    }

    /// Deletes every object of `bucket` at the file level: its directory, and the files
    /// `.bucket-BASE64(bucket).object-…` beside it where s3s-fs keeps attributes and ETags.
    fn empty(&self, bucket: &str) -> Result<()> {
        let dir = self.root.join(bucket);
        std::fs::remove_dir_all(&dir)?;
        std::fs::create_dir(&dir)?;
        let sidecars = format!(
            ".bucket-{}.",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bucket)
        );
        for entry in std::fs::read_dir(&self.root)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(&sidecars) {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    }

    /// Requests served so far, by operation (with `log_requests`). The released binary
    /// writes s3s's line as `resolved route, op: GetObject`, tracing-subscriber's default
    /// format as `resolved route op=GetObject`.
    fn requests(&self) -> BTreeMap<String, u64> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut out = BTreeMap::new();
        for line in text.lines().filter(|l| l.contains("resolved route")) {
            let Some(rest) = ["op: ", "op="]
                .iter()
                .find_map(|m| line.split_once(m).map(|(_, r)| r))
            else {
                continue;
            };
            let op: String = rest
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect();
            *out.entry(op).or_default() += 1;
        }
        out
    }
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Distinct, incompressible bytes for object `i`.
fn body(i: usize, size: usize) -> Bytes {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (i as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(size);
    out.into()
}

fn key(i: usize) -> String {
    format!("obj-{i:06}")
}

async fn seed(client: &Client, set: &DataSet) -> Result<()> {
    let bucket = set.src();
    futures::stream::iter(0..set.count)
        .map(|i| {
            let req = client
                .put_object()
                .bucket(&bucket)
                .key(key(i))
                .content_type(CONTENT_TYPE)
                .metadata(META.0, META.1)
                .body(ByteStream::from(body(i, set.size)));
            async move {
                req.send()
                    .await
                    .with_context(|| format!("seeding {}", key(i)))?;
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(set.seed_concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// What a bucket holds: objects, bytes, and whether the first object has the seeded
/// content type and user metadata.
struct Contents {
    objects: u64,
    bytes: u64,
    attrs_kept: bool,
}

async fn contents(client: &Client, bucket: &str) -> Result<Contents> {
    let (mut objects, mut bytes) = (0, 0);
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for o in page?.contents() {
            objects += 1;
            bytes += u64::try_from(o.size().unwrap_or_default()).unwrap_or_default();
        }
    }
    let head = client.head_object().bucket(bucket).key(key(0)).send().await;
    let attrs_kept = head.is_ok_and(|h| {
        h.content_type() == Some(CONTENT_TYPE)
            && h.metadata().and_then(|m| m.get(META.0)).map(String::as_str) == Some(META.1)
    });
    Ok(Contents {
        objects,
        bytes,
        attrs_kept,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Mover { concurrency: usize },
    Rclone { transfers: usize, checkers: usize },
}

impl Tool {
    fn name(&self) -> &'static str {
        match self {
            Tool::Mover { .. } => "switchyard migrate",
            Tool::Rclone { .. } => "rclone copy",
        }
    }

    fn settings(&self) -> String {
        match self {
            Tool::Mover { concurrency: 16 } => "--concurrency 16 (default)".into(),
            Tool::Mover { concurrency } => format!("--concurrency {concurrency}"),
            Tool::Rclone {
                transfers: 4,
                checkers: 8,
            } => "--transfers 4 --checkers 8 (default)".into(),
            Tool::Rclone {
                transfers,
                checkers,
            } => format!("--transfers {transfers} --checkers {checkers}"),
        }
    }

    /// Objects in flight.
    fn concurrency(&self) -> usize {
        match self {
            Tool::Mover { concurrency } => *concurrency,
            Tool::Rclone { transfers, .. } => *transfers,
        }
    }
}

const MOVER_DEFAULT: Tool = Tool::Mover { concurrency: 16 };
const RCLONE_DEFAULT: Tool = Tool::Rclone {
    transfers: 4,
    checkers: 8,
};

fn output_text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// CPU seconds (user + system) from a `/proc/PID/stat` line: the process's own, or
/// with `children` those of its children that have been waited for. Linux only; zero
/// elsewhere.
fn cpu_secs(pid: &str, children: bool) -> f64 {
    // Clock ticks per second: 100 on every Linux configuration in use.
    const TICKS: f64 = 100.0;
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces): state is field 3, utime and
    // stime 14 and 15, cutime and cstime 16 and 17.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<f64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    let at = if children { 13 } else { 11 };
    fields
        .get(at..at + 2)
        .map_or(0.0, |f| (f[0] + f[1]) / TICKS)
}

/// One run: wall time, start-up of the tool included, and the CPU time of the tool and
/// of the server.
#[derive(Debug, Clone, Copy)]
struct Measure {
    secs: f64,
    tool_cpu: f64,
    server_cpu: f64,
}

/// Runs one copy of `set` from its source bucket to its (empty) destination bucket.
fn run(
    programs: &Programs,
    server: &S3sFs,
    set: &DataSet,
    tool: Tool,
    work: &Path,
) -> Result<Measure> {
    let mut cmd = match tool {
        Tool::Mover { concurrency } => {
            let config = work.join(format!("{}.toml", set.name));
            let backend = |bucket: String| {
                format!(
                    "kind = \"s3\"\nbucket = {bucket:?}\nendpoint = {:?}\nallow_http = true\naccess_key_id = {ACCESS_KEY:?}\nsecret_access_key = {SECRET_KEY:?}\n",
                    server.endpoint
                )
            };
            std::fs::write(
                &config,
                format!(
                    "version = 1\n\n[backends.src]\n{}\n[backends.dst]\n{}\n[buckets.bench]\nmembers = [\"dst\", \"src\"]\n",
                    backend(set.src()),
                    backend(set.dst())
                ),
            )?;
            let mut cmd = Command::new(&programs.switchyard);
            cmd.arg("migrate")
                .arg("--config")
                .arg(&config)
                .args(["--bucket", "bench", "--from", "src", "--to", "dst"])
                .args(["--concurrency", &concurrency.to_string()])
                .env("SWITCHYARD_LOG", "warn");
            cmd
        }
        Tool::Rclone {
            transfers,
            checkers,
        } => {
            let mut cmd = Command::new(&programs.rclone);
            cmd.arg("copy")
                .arg(format!("SRC:{}", set.src()))
                .arg(format!("DST:{}", set.dst()))
                .args(["--transfers", &transfers.to_string()])
                .args(["--checkers", &checkers.to_string()])
                .args(RCLONE_FLAGS)
                // No user configuration: two remotes defined by the environment alone.
                .env("RCLONE_CONFIG", work.join("rclone.conf"))
                // rclone's AWS SDK fails on a CA bundle it cannot add to its transport,
                // even for plain HTTP.
                .env_remove("AWS_CA_BUNDLE");
            for remote in ["SRC", "DST"] {
                let var = |name: &str| format!("RCLONE_CONFIG_{remote}_{name}");
                cmd.env(var("TYPE"), "s3")
                    .env(var("PROVIDER"), "Other")
                    .env(var("ENDPOINT"), &server.endpoint)
                    .env(var("ACCESS_KEY_ID"), ACCESS_KEY)
                    .env(var("SECRET_ACCESS_KEY"), SECRET_KEY)
                    .env(var("REGION"), "us-east-1")
                    .env(var("FORCE_PATH_STYLE"), "true");
            }
            cmd
        }
    };
    let server_pid = server.child.id().to_string();
    let (tool_cpu, server_cpu) = (cpu_secs("self", true), cpu_secs(&server_pid, false));
    let started = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", tool.name()))?;
    let measure = Measure {
        secs: started.elapsed().as_secs_f64(),
        tool_cpu: cpu_secs("self", true) - tool_cpu,
        server_cpu: cpu_secs(&server_pid, false) - server_cpu,
    };
    ensure!(
        out.status.success(),
        "{} {} failed ({}):\n{}",
        tool.name(),
        tool.settings(),
        out.status,
        output_text(&out)
    );
    if let Tool::Mover { .. } = tool {
        let summary = MigrateSummary::parse(&String::from_utf8_lossy(&out.stdout))?;
        ensure!(
            summary.copied == set.count as u64 && summary.failed == 0,
            "switchyard migrate copied {} of {} with {} failed:\n{}",
            summary.copied,
            set.count,
            summary.failed,
            output_text(&out)
        );
    }
    Ok(measure)
}

/// Empties the destination, runs `tool`, and checks that the destination holds the data set.
async fn copy_once(
    programs: &Programs,
    server: &S3sFs,
    set: &DataSet,
    tool: Tool,
) -> Result<(Measure, bool)> {
    server.empty(&set.dst())?;
    let measure = run(programs, server, set, tool, &server.dir.0)?;
    let got = contents(&server.client(), &set.dst()).await?;
    ensure!(
        got.objects == set.count as u64 && got.bytes == set.bytes(),
        "{} {}: the destination holds {} objects, {} bytes; expected {}, {}",
        tool.name(),
        tool.settings(),
        got.objects,
        got.bytes,
        set.count,
        set.bytes()
    );
    Ok((measure, got.attrs_kept))
}

struct Row {
    set: DataSet,
    tool: Tool,
    /// Medians of the rounds.
    secs: f64,
    tool_cpu: f64,
    server_cpu: f64,
    attrs_kept: bool,
}

impl Row {
    fn objects_per_sec(&self) -> f64 {
        self.set.count as f64 / self.secs
    }
    fn mb_per_sec(&self) -> f64 {
        self.set.bytes() as f64 / MB / self.secs
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

async fn bench_set(
    programs: &Programs,
    set: &DataSet,
    tools: &[Tool],
    rounds: usize,
) -> Result<Vec<Row>> {
    let server = S3sFs::start(
        programs.stock_s3s_fs.as_deref(),
        &[set.src(), set.dst()],
        false,
    )?;
    let seeding = Instant::now();
    seed(&server.client(), set).await?;
    println!(
        "{}: seeded {} ({:.0} MB) in {:.1} s",
        set.name,
        set.describe(),
        set.bytes() as f64 / MB,
        seeding.elapsed().as_secs_f64()
    );
    let mut runs: Vec<Vec<Measure>> = vec![Vec::new(); tools.len()];
    let mut attrs = vec![true; tools.len()];
    for round in 0..rounds {
        // Alternate the order so that drift on a shared machine hits every tool alike.
        let order: Vec<usize> = if round % 2 == 0 {
            (0..tools.len()).collect()
        } else {
            (0..tools.len()).rev().collect()
        };
        for i in order {
            let (m, kept) = copy_once(programs, &server, set, tools[i]).await?;
            println!(
                "  round {} {:<20} {:<38} {:>7.2} s  (CPU s: tool {:.2}, server {:.2})",
                round + 1,
                tools[i].name(),
                tools[i].settings(),
                m.secs,
                m.tool_cpu,
                m.server_cpu
            );
            runs[i].push(m);
            attrs[i] &= kept;
        }
    }
    server.empty(&set.dst())?;
    Ok(tools
        .iter()
        .zip(runs)
        .zip(attrs)
        .map(|((tool, runs), attrs_kept)| Row {
            set: set.clone(),
            tool: *tool,
            secs: median(runs.iter().map(|m| m.secs).collect()),
            tool_cpu: median(runs.iter().map(|m| m.tool_cpu).collect()),
            server_cpu: median(runs.iter().map(|m| m.server_cpu).collect()),
            attrs_kept,
        })
        .collect())
}

fn find<'a>(rows: &'a [Row], set: &str, tool: Tool) -> Option<&'a Row> {
    rows.iter().find(|r| r.set.name == set && r.tool == tool)
}

fn print_table(rows: &[Row]) {
    println!(
        "| data set | tool | settings | objects | MB | s | objects/s | MB/s | CPU s tool / server | attrs kept | mover/rclone |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        // A mover row is compared with rclone at the same number of objects in flight.
        let ratio = match r.tool {
            Tool::Mover { .. } => rows
                .iter()
                .find(|b| {
                    b.set.name == r.set.name
                        && matches!(b.tool, Tool::Rclone { .. })
                        && b.tool.concurrency() == r.tool.concurrency()
                })
                .map_or("".into(), |b| format!("{:.2}", b.secs / r.secs)),
            Tool::Rclone { .. } => "".into(),
        };
        println!(
            "| {} | {} | {} | {} | {:.0} | {:.2} | {:.0} | {:.1} | {:.1} / {:.1} | {} | {} |",
            r.set.describe(),
            r.tool.name(),
            r.tool.settings(),
            r.set.count,
            r.set.bytes() as f64 / MB,
            r.secs,
            r.objects_per_sec(),
            r.mb_per_sec(),
            r.tool_cpu,
            r.server_cpu,
            if r.attrs_kept { "yes" } else { "no" },
            ratio
        );
    }
}

fn print_verdicts(rows: &[Row]) {
    println!();
    for (set, unit, target) in [("small", "objects/s", 1.5), ("large", "MB/s", 1.0)] {
        for (label, mover, rclone) in [
            (
                "both at 16 in flight",
                MOVER_DEFAULT,
                Tool::Rclone {
                    transfers: 16,
                    checkers: 32,
                },
            ),
            (
                "both at 4 in flight",
                Tool::Mover { concurrency: 4 },
                RCLONE_DEFAULT,
            ),
            ("each at its defaults", MOVER_DEFAULT, RCLONE_DEFAULT),
        ] {
            let (Some(m), Some(r)) = (find(rows, set, mover), find(rows, set, rclone)) else {
                continue;
            };
            // Same objects and bytes on both sides: the rate ratio is the time ratio.
            let ratio = r.secs / m.secs;
            println!(
                "{set}: mover/rclone {unit} = {ratio:.2}, {label} (target >= {target}): {}",
                if ratio >= target { "met" } else { "NOT met" }
            );
        }
    }
}

/// Requests per object each tool makes, from s3s-fs's request log, on a few objects.
async fn count_requests(programs: &Programs, sets: &[DataSet]) -> Result<()> {
    println!();
    println!("## Requests per object (s3s-fs request log, untimed)");
    for set in sets {
        let server = S3sFs::start(
            programs.stock_s3s_fs.as_deref(),
            &[set.src(), set.dst()],
            true,
        )?;
        seed(&server.client(), set).await?;
        let tools = [MOVER_DEFAULT, RCLONE_DEFAULT];
        let mut counts = Vec::new();
        for tool in tools {
            server.empty(&set.dst())?;
            let before = server.requests();
            run(programs, &server, set, tool, &server.dir.0)?;
            let after = server.requests();
            let delta: BTreeMap<String, u64> = after
                .into_iter()
                .map(|(op, n)| {
                    let d = n - before.get(&op).copied().unwrap_or_default();
                    (op, d)
                })
                .filter(|(_, d)| *d > 0)
                .collect();
            counts.push(delta);
        }
        let mut ops: Vec<&String> = counts.iter().flat_map(|c| c.keys()).collect();
        ops.sort();
        ops.dedup();
        println!();
        println!("{} ({}):", set.name, set.describe());
        println!(
            "| operation | {} {} | {} {} |",
            tools[0].name(),
            tools[0].settings(),
            tools[1].name(),
            tools[1].settings()
        );
        println!("|---|---|---|");
        let per = |c: &BTreeMap<String, u64>, op: &str| {
            c.get(op).copied().unwrap_or_default() as f64 / set.count as f64
        };
        for op in &ops {
            println!(
                "| {op} | {:.2} | {:.2} |",
                per(&counts[0], op),
                per(&counts[1], op)
            );
        }
        let total = |c: &BTreeMap<String, u64>| c.values().sum::<u64>() as f64 / set.count as f64;
        println!(
            "| total | {:.2} | {:.2} |",
            total(&counts[0]),
            total(&counts[1])
        );
    }
    Ok(())
}

fn first_line(program: &Path, arg: &str) -> String {
    Command::new(program)
        .arg(arg)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

async fn bench() -> Result<()> {
    let programs = programs()?;
    let rounds = env_usize("MOVER_BENCH_ROUNDS", 3).max(1);
    let small = DataSet {
        name: "small",
        count: env_usize("MOVER_BENCH_SMALL_OBJECTS", 5000),
        size: 4 << 10,
        seed_concurrency: 32,
    };
    let large = DataSet {
        name: "large",
        count: env_usize("MOVER_BENCH_LARGE_OBJECTS", 8),
        size: env_usize("MOVER_BENCH_LARGE_MIB", 64) << 20,
        seed_concurrency: 4,
    };
    println!("# switchyard migrate vs rclone copy, s3s-fs to itself on 127.0.0.1");
    println!(
        "cpus {}, {} rounds (median), switchyard {}, {}, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        rounds,
        programs.switchyard.display(),
        first_line(&programs.rclone, "version"),
        match &programs.stock_s3s_fs {
            Some(bin) => first_line(bin, "--version"),
            None => "s3s-fs 0.14.1 served with TCP_NODELAY".into(),
        }
    );
    let tools = [
        MOVER_DEFAULT,
        Tool::Mover { concurrency: 4 },
        Tool::Rclone {
            transfers: 16,
            checkers: 32,
        },
        RCLONE_DEFAULT,
    ];
    let mut rows = Vec::new();
    for set in [&small, &large] {
        rows.extend(bench_set(&programs, set, &tools, rounds).await?);
    }
    println!();
    print_table(&rows);
    print_verdicts(&rows);
    let few = |set: &DataSet, n: usize| DataSet {
        count: set.count.min(n),
        ..set.clone()
    };
    count_requests(&programs, &[few(&small, 200), few(&large, 2)]).await
}

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if raw.first().map(String::as_str) == Some("--serve") {
        if let Err(e) = servers::serve(&raw) {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(bench()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
