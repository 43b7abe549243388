//! Rows as they are measured, the Markdown table, and the targets met or missed.

use std::fmt::Write as _;
use std::time::Duration;

use crate::args::Args;
use crate::load::{Op, Outcome};
use crate::{MIB, Target};

/// One measured row.
pub struct Row {
    pub op: Op,
    pub size: Option<u64>,
    pub concurrency: usize,
    pub target: Target,
    pub out: Outcome,
    pub rss: Option<u64>,
    /// CPU time the gateway used (none for the baseline itself).
    pub gateway_cpu: Option<Duration>,
    /// CPU time the baseline S3 server used.
    pub origin_cpu: Duration,
    /// CPU time the client (the bench process) used.
    pub client_cpu: Duration,
    /// Requests/s in each round, in round order: a row's rounds are measured next to
    /// the other targets' rounds of the same number.
    pub round_rates: Vec<f64>,
}

impl Row {
    pub fn key(&self) -> (Op, Option<u64>, usize) {
        (self.op, self.size, self.concurrency)
    }

    /// CPU time per successful request, in µs.
    pub fn per_request_us(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() * 1e6 / (self.out.requests - self.out.errors).max(1) as f64
    }

    /// CPU time per request of every process the request went through: client, gateway
    /// and origin. On a shared machine work moves between them (a gateway that leaves an
    /// upload's bytes waiting in its socket has the client's segments sent from its own
    /// receive calls, when it reads and opens the window), so a gateway's own column can
    /// differ where the whole does not.
    pub fn all_cpu_us(&self) -> f64 {
        self.per_request_us(
            self.client_cpu + self.origin_cpu + self.gateway_cpu.unwrap_or_default(),
        )
    }
}

pub fn human_size(b: u64) -> String {
    if b >= MIB && b.is_multiple_of(MIB) {
        format!("{} MiB", b / MIB)
    } else if b >= 1024 && b.is_multiple_of(1024) {
        format!("{} KiB", b / 1024)
    } else {
        format!("{b} B")
    }
}

pub fn mib(b: u64) -> String {
    format!("{:.0} MiB", b as f64 / MIB as f64)
}

pub fn us(v: f64) -> String {
    if v < 0.0 {
        return format!("-{}", us(-v));
    }
    if v.is_nan() {
        "-".into()
    } else if v >= 10_000.0 {
        format!("{:.0} ms", v / 1e3)
    } else if v >= 1_000.0 {
        format!("{:.2} ms", v / 1e3)
    } else {
        format!("{v:.0} µs")
    }
}

pub fn print_row(r: &Row, baseline: Option<&Row>) {
    let ratio = baseline
        .map(|b| format!("{:.3}", r.out.req_per_s() / b.out.req_per_s()))
        .unwrap_or_else(|| "-".into());
    let added_p99 = baseline
        .map(|b| us(r.out.percentile_us(0.99) - b.out.percentile_us(0.99)))
        .unwrap_or_else(|| "-".into());
    println!(
        "{:<4} {:>7} c={:<3} {:<14} {:>9.1} MB/s {:>9.1} req/s  p50 {:>9} p99 {:>9} p999 {:>9}  x{:<6} +p99 {:>9}  rss {:>8}  cpu/req gw {:>7} origin {:>7} client {:>7} all {:>7}  n={} err={}{}",
        r.op.name(),
        r.size.map(human_size).unwrap_or_else(|| "-".into()),
        r.concurrency,
        r.target.name(),
        r.out.mb_per_s(),
        r.out.req_per_s(),
        us(r.out.percentile_us(0.5)),
        us(r.out.percentile_us(0.99)),
        us(r.out.percentile_us(0.999)),
        ratio,
        added_p99,
        r.rss.map(mib).unwrap_or_else(|| "-".into()),
        r.gateway_cpu
            .map(|c| us(r.per_request_us(c)))
            .unwrap_or_else(|| "-".into()),
        us(r.per_request_us(r.origin_cpu)),
        us(r.per_request_us(r.client_cpu)),
        us(r.all_cpu_us()),
        r.out.requests,
        r.out.errors,
        r.out
            .first_error
            .as_ref()
            .map(|e| format!("  first error: {e}"))
            .unwrap_or_default(),
    );
}

/// Result of the many-uploads memory test.
pub struct RssResult {
    pub gateway: Target,
    pub uploads: usize,
    pub size: u64,
    pub idle: u64,
    pub peak: u64,
    pub completed: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    pub aborted: bool,
    pub elapsed: Duration,
    pub received: u64,
    /// CPU time of the gateway, and of this process (the uploading client and the sink).
    pub gateway_cpu: Option<Duration>,
    pub bench_cpu: Option<Duration>,
}

impl RssResult {
    /// MB/s received by the sink.
    fn mb_per_s(&self) -> f64 {
        self.received as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// CPU ms per GB received by the sink.
    fn ms_per_gb(&self, cpu: Option<Duration>) -> String {
        cpu.map_or_else(
            || "-".into(),
            |c| {
                format!(
                    "{:.0}",
                    c.as_secs_f64() * 1e3 / (self.received as f64 / 1e9).max(1e-9)
                )
            },
        )
    }
}

pub fn print_rss(r: &RssResult, limit: u64) {
    println!(
        "{}: {} uploads x {} at once: peak RSS {} (idle {}), {} completed, {} failed, {:.1} GB received by the sink in {:.1}s ({:.0} MB/s), CPU ms per GB: gateway {}, client and sink {}{}{}",
        r.gateway.name(),
        r.uploads,
        human_size(r.size),
        mib(r.peak),
        mib(r.idle),
        r.completed,
        r.failed,
        r.received as f64 / 1e9,
        r.elapsed.as_secs_f64(),
        r.mb_per_s(),
        r.ms_per_gb(r.gateway_cpu),
        r.ms_per_gb(r.bench_cpu),
        if r.aborted {
            format!("; STOPPED when RSS passed the {} guard", mib(limit))
        } else {
            String::new()
        },
        r.first_error
            .as_ref()
            .map(|e| format!("; first error: {e}"))
            .unwrap_or_default()
    );
}

/// The commit the gateway was built from, and whether `host/` had uncommitted changes.
pub fn source_version() -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(&root)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_default();
    let dirty = git(&["status", "--porcelain", "--", "host"]).is_some_and(|s| !s.is_empty());
    format!(
        "at {commit}{}",
        if dirty {
            " with uncommitted changes in host/"
        } else {
            ""
        }
    )
}

/// The 1-minute load average: other work on the machine skews every row.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{} CPUs ({cpu}), {:.1} GiB RAM, Linux {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        mem as f64 / (1u64 << 20) as f64,
        kernel.trim()
    )
}

/// The results as a Markdown table, and which targets of the issue were met.
/// What logging and metrics cost one request, timed in this process (`log_cost.rs`,
/// `metrics_cost.rs`), in µs of CPU.
pub struct Costs {
    pub metrics_us: f64,
    pub span_us: f64,
    pub line_us: f64,
}

pub fn markdown(rows: &[Row], rss: &[RssResult], args: &Args, costs: &Costs) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| op | size | conc | target | MB/s | req/s | p50 | p99 | p999 | × direct | +p99 | gateway CPU/req | all CPU/req | gateway peak RSS |"
    );
    let _ = writeln!(
        md,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    let base = |r: &Row| {
        rows.iter()
            .find(|b| b.key() == r.key() && b.target == Target::Direct)
    };
    for r in rows {
        let b = base(r).filter(|_| r.target != Target::Direct);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.op.name(),
            r.size.map(human_size).unwrap_or_else(|| "-".into()),
            r.concurrency,
            r.target.name(),
            if r.op == Op::List {
                "-".into()
            } else {
                format!("{:.1}", r.out.mb_per_s())
            },
            r.out.req_per_s(),
            us(r.out.percentile_us(0.5)),
            us(r.out.percentile_us(0.99)),
            us(r.out.percentile_us(0.999)),
            b.map(|b| format!("{:.2}", r.out.req_per_s() / b.out.req_per_s()))
                .unwrap_or_else(|| "1".into()),
            b.map(|b| us(r.out.percentile_us(0.99) - b.out.percentile_us(0.99)))
                .unwrap_or_else(|| "-".into()),
            r.gateway_cpu
                .map(|c| us(r.per_request_us(c)))
                .unwrap_or_else(|| "-".into()),
            us(r.all_cpu_us()),
            r.rss.map(mib).unwrap_or_else(|| "-".into()),
        );
    }
    let errors: u64 = rows.iter().map(|r| r.out.errors).sum();
    if errors > 0 {
        let _ = writeln!(md, "\n{errors} requests failed; see the run's output.");
    }
    for r in rss {
        let _ = writeln!(
            md,
            "\n{} uploads of {} at once through {}: peak RSS **{}** (idle {}); {} completed, {} failed{}; {:.0} MB/s, CPU per GB: gateway {} ms, client and sink {} ms.",
            r.uploads,
            human_size(r.size),
            r.gateway.name(),
            mib(r.peak),
            mib(r.idle),
            r.completed,
            r.failed,
            if r.aborted {
                format!(
                    "; stopped after {:.0}s when RSS passed the {} guard",
                    r.elapsed.as_secs_f64(),
                    mib(args.rss_limit)
                )
            } else {
                String::new()
            },
            r.mb_per_s(),
            r.ms_per_gb(r.gateway_cpu),
            r.ms_per_gb(r.bench_cpu),
        );
    }
    let _ = writeln!(md, "\n{}", verdicts(rows, rss, costs).join("\n"));
    md
}

/// The targets, each with the rows that decide it.
/// The range of `a`'s rate over `b`'s across the rounds they shared, when there were
/// several: a row behind by less than its rounds disagree is inside the machine's noise.
fn round_spread(a: &Row, b: &Row) -> String {
    let ratios: Vec<f64> = a
        .round_rates
        .iter()
        .zip(&b.round_rates)
        .filter(|(_, y)| **y > 0.0)
        .map(|(x, y)| x / y)
        .collect();
    if ratios.len() < 2 {
        return String::new();
    }
    let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ratios.iter().copied().fold(0.0, f64::max);
    format!("; rounds {lo:.2}-{hi:.2}")
}

pub fn verdicts(rows: &[Row], rss: &[RssResult], costs: &Costs) -> Vec<String> {
    let mut out = Vec::new();
    let find = |r: &Row, t: Target| rows.iter().find(|b| b.key() == r.key() && b.target == t);
    for gw in [Target::Switchyard, Target::SwitchyardFs] {
        let mut tp = (0, 0, Vec::new());
        let mut small = (0, 0, Vec::new());
        let mut lat = (0, 0, Vec::new());
        let mut peer = (0, 0, Vec::new());
        for r in rows.iter().filter(|r| r.target == gw) {
            let Some(d) = find(r, Target::Direct) else {
                continue;
            };
            let ratio = r.out.req_per_s() / d.out.req_per_s();
            let label = format!(
                "{} {} c={}",
                r.op.name(),
                r.size.map(human_size).unwrap_or_else(|| "-".into()),
                r.concurrency
            );
            let tally = |t: &mut (u32, u32, Vec<String>), ok: bool, what: String| {
                t.0 += 1;
                if ok {
                    t.1 += 1;
                } else {
                    t.2.push(what);
                }
            };
            if r.op != Op::List && r.size.is_some_and(|s| s >= MIB) {
                tally(&mut tp, ratio >= 0.95, format!("{label} ({ratio:.2})"));
            }
            if r.op != Op::List && r.size == Some(4 << 10) && r.concurrency >= 16 {
                tally(&mut small, ratio >= 0.85, format!("{label} ({ratio:.2})"));
            }
            if r.op == Op::Get && r.size == Some(4 << 10) {
                let added = r.out.percentile_us(0.99) - d.out.percentile_us(0.99);
                tally(
                    &mut lat,
                    added < 1000.0,
                    format!("{label} (+{})", us(added)),
                );
            }
            if gw == Target::Switchyard
                && let Some(p) = find(r, Target::Proxy)
            {
                let vs = r.out.req_per_s() / p.out.req_per_s();
                tally(
                    &mut peer,
                    vs > 1.0,
                    format!(
                        "{label} ({vs:.2}× the peer{}; CPU per request of all processes {} against {})",
                        round_spread(r, p),
                        us(r.all_cpu_us()),
                        us(p.all_cpu_us())
                    ),
                );
            }
        }
        let line = |name: &str, t: &(u32, u32, Vec<String>)| {
            if t.0 == 0 {
                return None;
            }
            let verdict = if t.1 == t.0 { "met" } else { "missed" };
            let misses = if t.2.is_empty() {
                String::new()
            } else {
                format!(": {}", t.2.join(", "))
            };
            Some(format!(
                "- {}: {name}: **{verdict}** ({}/{} rows){misses}",
                gw.name(),
                t.1,
                t.0
            ))
        };
        out.extend(line("throughput ≥ 0.95 × direct on 1 MiB and 64 MiB", &tp));
        out.extend(line(
            "req/s ≥ 0.85 × direct on 4 KiB at concurrency ≥ 16",
            &small,
        ));
        out.extend(line("added p99 < 1 ms on 4 KiB GETs", &lat));
        out.extend(line("ahead of s3s-proxy on every row", &peer));
    }
    // Logging and metrics: their work for one request, timed in this process, over the
    // gateway's CPU per request. The same gateway with the access log off, measured in
    // turns, is shown beside it: that difference is the log's cost plus the run's noise,
    // which on a shared machine is larger than the cost (docs/benchmarks.md).
    let mut cost_rows = Vec::new();
    let mut within = true;
    let spent = costs.metrics_us + costs.span_us + costs.line_us;
    for r in rows
        .iter()
        .filter(|r| r.target == Target::Switchyard && r.size == Some(4 << 10))
    {
        let Some(on) = r.gateway_cpu else { continue };
        let on = r.per_request_us(on);
        let share = spent / on * 100.0;
        within &= share < 3.0;
        let quiet = find(r, Target::SwitchyardQuiet)
            .and_then(|q| Some(q.per_request_us(q.gateway_cpu?)))
            .map(|off| format!(", log on/off {:+.1}%", (on - off) / off * 100.0))
            .unwrap_or_default();
        cost_rows.push(format!(
            "{} 4 KiB c={} {share:.1}% of {}{quiet}",
            r.op.name(),
            r.concurrency,
            us(on),
        ));
    }
    if !cost_rows.is_empty() {
        out.push(format!(
            "- switchyard: access log, request span and metrics under 3% of gateway CPU per request: **{}** ({:.2} + {:.2} + {:.2} µs per request): {}",
            if within { "met" } else { "missed" },
            costs.line_us,
            costs.span_us,
            costs.metrics_us,
            cost_rows.join(", ")
        ));
    }
    for r in rss.iter().filter(|r| r.gateway != Target::Proxy) {
        let ok = !r.aborted && r.failed == 0 && r.peak < 256 * MIB;
        out.push(format!(
            "- switchyard: RSS < 256 MiB during {} uploads of {} at once: **{}** (peak {}{})",
            r.uploads,
            human_size(r.size),
            if ok { "met" } else { "missed" },
            mib(r.peak),
            if r.aborted {
                ", stopped by the guard"
            } else {
                ""
            }
        ));
    }
    out
}

pub fn humantime(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}
