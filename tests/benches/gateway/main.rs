//! Gateway throughput, latency and memory, measured against a baseline in the same run
//! (not a timed test). One S3 workload (PUT, GET, ListObjectsV2 at each object size and
//! concurrency) is driven, with signed requests, against:
//!
//! * `direct`: s3s-fs, the s3s project's S3 server over a directory (the baseline);
//! * `switchyard`: Switchyard with one `s3` backend pointing at that s3s-fs;
//! * `s3s-proxy`: the s3s project's own S3 proxy in front of the same s3s-fs (the peer);
//! * `switchyard-fs`: Switchyard with its own `fs` backend on s3s-fs's bucket directory,
//!   compared with s3s-fs serving that directory (`direct`).
//!
//! Every server is a child process on 127.0.0.1, so the memory and CPU time of each
//! gateway are its own. The baseline and the peer are the s3s project's code served by
//! this binary with `TCP_NODELAY` (see `servers.rs`). Each cell runs the targets in turns
//! over a few rounds, so that drift on a shared machine hits them alike. Then 256
//! streaming uploads of 256 MiB each go through Switchyard (and through the peer) at once,
//! into an S3 server that discards them (`sink.rs`), and the gateway's peak RSS is
//! reported.
//!
//! Run: `cargo bench -p switchyard-tests --bench gateway`, options after `--`
//! (`--help` lists them): `--quick`, `--sizes 4k,1m,64m`, `--concurrency 1,16,64`,
//! `--ops put,get,list`, `--targets ...`, `--duration 4s` per cell, `--no-rss` or
//! `--rss-only`, `--rss-uploads 256 --rss-size 256m`, `--pin` (the gateways on CPUs of
//! their own), `--markdown FILE`. The benchmark builds `target/release/switchyard` itself
//! (`--switchyard-bin` to use another build). Results, the machine and how to read them
//! are in docs/benchmarks.md.

mod args;
mod load;
mod log_cost;
mod metrics_cost;
mod procs;
mod report;
mod rig;
mod servers;
mod sink;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;

use args::{Args, parse_args};
use load::{Budget, Endpoint, Op, Outcome, Signer, Work};
use procs::{Child, PeakRss};
use report::{Row, RssResult, humantime, machine, markdown, mib, print_row, print_rss};
use rig::{Rig, WorkDir, proxy_command, s3_backend, start_switchyard, switchyard_bin, tool};

pub const ACCESS_KEY: &str = "bench";
pub const SECRET_KEY: &str = "bench-secret-key";
/// Keys in the listed prefix (one ListObjectsV2 page).
pub const LIST_KEYS: u64 = 1000;
pub const MIB: u64 = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Direct,
    Switchyard,
    Proxy,
    SwitchyardFs,
    /// `switchyard` with its access log off: the difference is the log's cost.
    SwitchyardQuiet,
}

impl Target {
    const ALL: [Target; 5] = [
        Target::Direct,
        Target::Switchyard,
        Target::Proxy,
        Target::SwitchyardFs,
        Target::SwitchyardQuiet,
    ];

    fn name(self) -> &'static str {
        match self {
            Target::Direct => "direct",
            Target::Switchyard => "switchyard",
            Target::Proxy => "s3s-proxy",
            Target::SwitchyardFs => "switchyard-fs",
            Target::SwitchyardQuiet => "switchyard-quiet",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Target::ALL
            .into_iter()
            .find(|t| t.name() == s || (s == "proxy" && *t == Target::Proxy))
            .with_context(|| format!("unknown target {s:?}"))
    }
}

/// Printable bytes, deterministic (a checked GET compares them as text).
fn payload(size: u64) -> Bytes {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'a' + (x % 26) as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

fn budget(args: &Args, op: Op, size: u64, concurrency: usize, rounds: usize) -> Budget {
    let rounds = rounds.max(1) as u64;
    let mut max = args.max_requests / rounds;
    if op == Op::Put {
        max = max.min(args.max_put_bytes / rounds / size.max(1));
    }
    Budget {
        duration: args.duration / rounds as u32,
        max_requests: max.max(concurrency as u64),
    }
}

/// Runs one phase against one target, watching the gateway's memory and the CPU time of
/// the gateway and the origin.
async fn measure(
    rig: &mut Rig,
    target: Target,
    work: &Work,
    concurrency: usize,
    budget: Budget,
) -> Result<Measured> {
    let endpoint = rig.endpoints[&target].clone();
    let gateway = rig.pids.get(&target).copied();
    let peak = gateway.map(|pid| PeakRss::start(pid, None));
    let cpu = |pid: Option<u32>| pid.and_then(procs::cpu_time);
    let client = Some(std::process::id());
    let (gw0, origin0, client0) = (cpu(gateway), cpu(Some(rig.origin_pid)), cpu(client));
    let out = load::run(&endpoint, work, concurrency, budget).await?;
    let (gw1, origin1, client1) = (cpu(gateway), cpu(Some(rig.origin_pid)), cpu(client));
    let rss = peak.map(PeakRss::finish);
    rig.check_alive()?;
    let used = |a: Option<Duration>, b: Option<Duration>| Some(b?.saturating_sub(a?));
    Ok(Measured {
        out,
        rss,
        gateway_cpu: used(gw0, gw1),
        origin_cpu: used(origin0, origin1).unwrap_or_default(),
        client_cpu: used(client0, client1).unwrap_or_default(),
    })
}

/// One phase against one target.
struct Measured {
    out: Outcome,
    /// The gateway's peak RSS.
    rss: Option<u64>,
    /// CPU time the gateway and the origin server used during the phase.
    gateway_cpu: Option<Duration>,
    origin_cpu: Duration,
    /// CPU time of this process (the client) during the phase.
    client_cpu: Duration,
}

/// Checks each target answers the workload correctly before anything is timed: a PUT
/// read back byte for byte, and a listing of exactly the seeded keys.
async fn check_targets(rig: &Rig) -> Result<()> {
    let data = payload(4096);
    for (target, endpoint) in &rig.endpoints {
        let mut c = load::Conn::new(endpoint.clone());
        let path = format!("/bench/{}/check", target.name());
        let r = c
            .send("PUT", &path, Some(load::fixed_body(&data)), false)
            .await?;
        if r.status != 200 {
            bail!(
                "{}: PUT {path}: HTTP {}: {:?}",
                target.name(),
                r.status,
                r.text
            );
        }
        let r = c.send("GET", &path, None, true).await?;
        if r.status != 200 || r.text.as_deref().map(str::as_bytes) != Some(&data[..]) {
            bail!(
                "{}: GET {path} did not return what was written",
                target.name()
            );
        }
        let r = c
            .send(
                "GET",
                "/list?list-type=2&max-keys=1000&prefix=list/",
                None,
                true,
            )
            .await?;
        let keys = r.text.as_deref().unwrap_or("").matches("<Key>").count() as u64;
        if r.status != 200 || keys != LIST_KEYS {
            bail!(
                "{}: ListObjectsV2 returned {keys} keys (HTTP {}), expected {LIST_KEYS}",
                target.name(),
                r.status
            );
        }
        rig.clean(target.name());
    }
    Ok(())
}

/// One cell of the matrix (an operation at one size and concurrency), measured on every
/// target in `rounds` rounds; each round runs the targets in a rotated order, so that
/// drift on a shared machine (other work, page cache, timers) hits them alike. Returns one
/// row per target, the rounds merged.
async fn cell(
    args: &Args,
    rig: &mut Rig,
    op: Op,
    size: Option<u64>,
    concurrency: usize,
    work: impl Fn(Target, usize) -> Work,
) -> Result<Vec<Row>> {
    let bytes_per_round = size.unwrap_or(0) * concurrency as u64;
    let rounds = if bytes_per_round > 256 * MIB {
        // Every worker makes at least one request per round, so a round of big objects
        // is long (seconds per target); two still put each target at two places in the
        // order, which one round did not, and a handful of requests decided the row.
        args.rounds.min(2)
    } else {
        args.rounds
    };
    let budget = budget(args, op, size.unwrap_or(0), concurrency, rounds);
    let mut acc: Vec<Row> = args
        .targets
        .iter()
        .map(|&target| Row {
            op,
            size,
            concurrency,
            target,
            out: Outcome::default(),
            rss: None,
            gateway_cpu: None,
            origin_cpu: Duration::ZERO,
            client_cpu: Duration::ZERO,
            round_rates: Vec::new(),
        })
        .collect();
    let n = acc.len();
    for round in 0..rounds {
        for k in 0..n {
            let row = &mut acc[(k + round) % n];
            let target = row.target;
            let m = measure(rig, target, &work(target, round), concurrency, budget).await?;
            if op == Op::Put {
                rig.clean(target.name());
                if m.out.written.is_empty() {
                    bail!(
                        "{}: no PUT succeeded: {:?}",
                        target.name(),
                        m.out.first_error
                    );
                }
            }
            row.round_rates.push(m.out.req_per_s());
            row.out.merge(m.out);
            row.rss = row.rss.max(m.rss);
            if let Some(c) = m.gateway_cpu {
                row.gateway_cpu = Some(row.gateway_cpu.unwrap_or_default() + c);
            }
            row.origin_cpu += m.origin_cpu;
            row.client_cpu += m.client_cpu;
        }
    }
    let rows = acc;
    let base = rows.iter().find(|r| r.target == Target::Direct);
    for r in &rows {
        print_row(r, base);
    }
    Ok(rows)
}

/// Objects every target reads in a GET cell: written once through the baseline, so each
/// target reads the same bytes from the same files.
async fn seed_reads(rig: &Rig, size: u64, data: &Bytes) -> Result<Arc<Vec<String>>> {
    let count = (512 * MIB / size).clamp(8, 1000);
    let seed = Work::Put {
        bucket: "bench".into(),
        prefix: format!("get/{size}"),
        data: data.clone(),
    };
    let out = load::run(
        &rig.endpoints[&Target::Direct],
        &seed,
        16,
        Budget {
            duration: Duration::from_secs(3600),
            max_requests: count,
        },
    )
    .await?;
    if out.errors > 0 {
        bail!("writing the objects to read failed: {:?}", out.first_error);
    }
    Ok(Arc::new(out.written))
}

async fn run_matrix(args: &Args, rig: &mut Rig) -> Result<Vec<Row>> {
    // The listed prefix, written once through the baseline.
    let seed = Work::Put {
        bucket: "list".into(),
        prefix: "list".into(),
        data: payload(1024),
    };
    let direct = rig.endpoints[&Target::Direct].clone();
    let seeded = load::run(
        &direct,
        &seed,
        16,
        Budget {
            duration: Duration::from_secs(600),
            max_requests: LIST_KEYS,
        },
    )
    .await?;
    if seeded.errors > 0 {
        bail!("seeding the listing failed: {:?}", seeded.first_error);
    }
    check_targets(rig).await?;

    let mut rows: Vec<Row> = Vec::new();
    let wants = |op| args.ops.contains(&op);
    for &size in &args.sizes {
        let data = payload(size);
        let reads = if wants(Op::Get) {
            Some(seed_reads(rig, size, &data).await?)
        } else {
            None
        };
        for &conc in &args.concurrency {
            if wants(Op::Put) {
                let put = |target: Target, round: usize| Work::Put {
                    bucket: "bench".into(),
                    prefix: format!("{}/{size}/c{conc}/r{round}", target.name()),
                    data: data.clone(),
                };
                rows.extend(cell(args, rig, Op::Put, Some(size), conc, put).await?);
            }
            if let Some(keys) = &reads {
                let get = |_: Target, _: usize| Work::Get {
                    bucket: "bench".into(),
                    keys: keys.clone(),
                    size,
                };
                rows.extend(cell(args, rig, Op::Get, Some(size), conc, get).await?);
            }
        }
        rig.clean("get");
    }
    if wants(Op::List) {
        for &conc in &args.concurrency {
            let list = |_: Target, _: usize| Work::List {
                bucket: "list".into(),
                prefix: "list/".into(),
            };
            rows.extend(cell(args, rig, Op::List, None, conc, list).await?);
        }
    }
    Ok(rows)
}

/// `uploads` concurrent streaming PUTs of `size` bytes each through a gateway in front of
/// the sink; the body is one 1 MiB chunk sent over and over, never materialised.
async fn rss_test(args: &Args, bin: &Path, gateway: Target) -> Result<RssResult> {
    let work = WorkDir::new(args.data_dir.as_deref())?;
    let (sink_addr, counters, sink_task) = sink::start(ACCESS_KEY, SECRET_KEY).await?;
    let child = match gateway {
        Target::Proxy => {
            let stock = if args.stock_servers {
                Some(tool("s3s-proxy")?)
            } else {
                None
            };
            let this = std::env::current_exe()?;
            Child::start("s3s-proxy", &work.0, |port| {
                proxy_command(
                    stock.as_deref(),
                    &this,
                    port,
                    &sink_addr,
                    args.gateway_cpus.as_deref(),
                )
            })
            .await?
        }
        _ => {
            start_switchyard(
                "switchyard-rss",
                bin,
                &work.0,
                args,
                &[("sink", s3_backend(&sink_addr, "sink"))],
            )
            .await?
        }
    };
    let endpoint = Endpoint::new(child.addr, Signer::new(ACCESS_KEY, SECRET_KEY));
    let idle = procs::rss_of(child.pid()).map_or(0, |(rss, _)| rss);
    let peak = PeakRss::start(child.pid(), Some(args.rss_limit));
    let chunk = payload(MIB);
    let cpu0 = (
        procs::cpu_time(child.pid()),
        procs::cpu_time(std::process::id()),
    );
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.rss_uploads {
        let mut conn = load::Conn::new(endpoint.clone());
        let (chunk, size) = (chunk.clone(), args.rss_size);
        tasks.spawn(async move {
            let body = load::streamed_body(&chunk, size);
            let r = conn
                .send("PUT", &format!("/sink/upload-{i}"), Some(body), false)
                .await?;
            if r.status != 200 {
                bail!("HTTP {}: {}", r.status, r.text.unwrap_or_default());
            }
            Ok(())
        });
    }
    let (mut completed, mut failed, mut first_error, mut aborted) = (0, 0, None, false);
    loop {
        tokio::select! {
            r = tasks.join_next() => match r {
                None => break,
                Some(Ok(Ok(()))) => completed += 1,
                Some(Ok(Err(e))) => {
                    failed += 1;
                    first_error.get_or_insert_with(|| format!("{e:#}"));
                }
                Some(Err(e)) => {
                    failed += 1;
                    first_error.get_or_insert_with(|| e.to_string());
                }
            },
            _ = tokio::time::sleep(Duration::from_millis(50)) => {
                if peak.over_limit() {
                    aborted = true;
                    tasks.abort_all();
                    break;
                }
            }
        }
    }
    let elapsed = started.elapsed();
    let cpu1 = (
        procs::cpu_time(child.pid()),
        procs::cpu_time(std::process::id()),
    );
    let used = |a: Option<Duration>, b: Option<Duration>| b?.checked_sub(a?);
    let (gateway_cpu, bench_cpu) = (used(cpu0.0, cpu1.0), used(cpu0.1, cpu1.1));
    let peak = peak.finish();
    drop(tasks);
    if failed > 0 {
        eprintln!("{} log, last lines:\n{}", child.name, child.log_tail());
    }
    drop(child);
    sink_task.abort();
    Ok(RssResult {
        gateway,
        uploads: args.rss_uploads,
        size: args.rss_size,
        idle,
        peak,
        completed,
        failed,
        first_error,
        aborted,
        elapsed,
        received: counters.bytes.load(std::sync::atomic::Ordering::Relaxed),
        gateway_cpu,
        bench_cpu,
    })
}

fn main() -> Result<()> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if raw.first().map(String::as_str) == Some("--serve") {
        return servers::serve(&raw);
    }
    let mut args = parse_args()?;
    let bin = switchyard_bin(&args)?;
    if args.pin {
        let cpus = procs::allowed_cpus()?;
        if cpus.len() < 2 {
            bail!("--pin needs two CPUs at least; this process may use {cpus:?}");
        }
        let (client, gateway) = cpus.split_at(cpus.len() / 2);
        // Before the runtime starts, so that its threads and the origin inherit it.
        procs::pin_self(client)?;
        println!("pinned: client and origin on CPUs {client:?}, gateways on {gateway:?}");
        args.gateway_cpus = Some(gateway.to_vec());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!("# Gateway benchmark");
    println!("machine: {}", machine());
    let load_before = report::load_average();
    let started = Instant::now();
    println!(
        "client: hyper HTTP/1.1, one connection per worker, aws-sigv4 signing {:.1} µs/request",
        load::signing_cost_us(&Signer::new(ACCESS_KEY, SECRET_KEY))
    );
    let metrics_us = metrics_cost::per_request_us();
    println!("request metrics: {metrics_us:.2} µs/request (measured in this process)");
    let log_dir = std::env::temp_dir().join(format!("switchyard-log-cost-{}", std::process::id()));
    std::fs::create_dir_all(&log_dir)?;
    let log = log_cost::per_request(&log_dir)?;
    let _ = std::fs::remove_dir_all(&log_dir);
    println!(
        "request span {:.2} µs/request, access log line {:.2} µs/request (measured in this process, CPU time)",
        log.span_us, log.line_us
    );
    let costs = report::Costs {
        metrics_us,
        span_us: log.span_us,
        line_us: log.line_us,
    };
    let mut rows = Vec::new();
    if args.matrix {
        let mut rig = rt.block_on(Rig::start(&args, &bin))?;
        println!(
            "data in {}, {} per phase (at most {} requests), switchyard: {}",
            rig.work.0.display(),
            humantime(args.duration),
            args.max_requests,
            bin.display()
        );
        for (t, pid) in &rig.pids {
            if let Some((rss, _)) = procs::rss_of(*pid) {
                println!("{} idle RSS {}", t.name(), mib(rss));
            }
        }
        rows = rt.block_on(run_matrix(&args, &mut rig))?;
    }
    let mut rss = Vec::new();
    if args.rss {
        let mut gateways = vec![Target::Switchyard];
        if args.rss_peer {
            gateways.push(Target::Proxy);
        }
        for g in gateways {
            let r = rt.block_on(rss_test(&args, &bin, g))?;
            print_rss(&r, args.rss_limit);
            rss.push(r);
        }
    }
    let mut md = markdown(&rows, &rss, &args, &costs);
    md.push_str(&format!(
        "\nSwitchyard {}. Run took {:.0}s; load average (1 min) {} at the start, {} at the end.\n",
        report::source_version(),
        started.elapsed().as_secs_f64(),
        load_before,
        report::load_average()
    ));
    println!("\n{md}");
    if let Some(path) = &args.markdown {
        std::fs::write(path, &md).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
