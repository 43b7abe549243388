//! Command-line options.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::load::Op;
use crate::{MIB, Target};

#[derive(Clone)]
pub struct Args {
    pub sizes: Vec<u64>,
    pub concurrency: Vec<usize>,
    pub ops: Vec<Op>,
    /// Always holds `direct`, the baseline of every ratio.
    pub targets: Vec<Target>,
    /// Time per cell and target, over all rounds.
    pub duration: Duration,
    /// Rounds each cell is split into, the targets taking turns.
    pub rounds: usize,
    /// Requests per cell and target, over all rounds.
    pub max_requests: u64,
    /// Bytes one PUT phase may write (bounds disk or tmpfs use); every worker still
    /// writes at least one object.
    pub max_put_bytes: u64,
    /// Run the throughput and latency matrix.
    pub matrix: bool,
    /// Run the many-uploads memory test.
    pub rss: bool,
    pub rss_uploads: usize,
    pub rss_size: u64,
    /// The memory test stops when the gateway's RSS passes this, before the machine runs
    /// out.
    pub rss_limit: u64,
    /// Also put the peer gateway through the memory test.
    pub rss_peer: bool,
    /// Where the servers keep data: default tmpfs (`/dev/shm`) when it has room.
    pub data_dir: Option<PathBuf>,
    /// Run the released s3s-fs and s3s-proxy binaries (from scripts/install-bench-tools.sh)
    /// instead of serving their code with `TCP_NODELAY`.
    pub stock_servers: bool,
    /// Give the gateways CPUs of their own (`--pin`): the upper half of those the bench
    /// may use, while the client and the origin share the lower half. Set by `main`.
    pub gateway_cpus: Option<Vec<usize>>,
    pub pin: bool,
    pub switchyard_bin: Option<PathBuf>,
    /// `SWITCHYARD_LOG` for the gateways (default: Switchyard's own, `info`).
    pub switchyard_log: Option<String>,
    /// Lines for the gateways' `[server]` table (`--switchyard-server read_buffers=67108864`).
    pub switchyard_server: Vec<String>,
    pub markdown: Option<PathBuf>,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            sizes: vec![4 << 10, MIB, 64 * MIB],
            concurrency: vec![1, 16, 64],
            ops: vec![Op::Put, Op::Get, Op::List],
            targets: Target::ALL.to_vec(),
            duration: Duration::from_secs(4),
            rounds: 3,
            max_requests: 200_000,
            max_put_bytes: 4 << 30,
            matrix: true,
            rss: true,
            rss_uploads: 256,
            rss_size: 256 * MIB,
            rss_limit: 8 << 30,
            rss_peer: true,
            data_dir: None,
            stock_servers: false,
            gateway_cpus: None,
            pin: false,
            switchyard_bin: None,
            switchyard_log: None,
            switchyard_server: Vec::new(),
            markdown: None,
        }
    }
}

pub fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mult) = match s.trim_end_matches(['b', 'i']).chars().last() {
        Some('k') => (&s[..s.find('k').unwrap_or(0)], 1u64 << 10),
        Some('m') => (&s[..s.find('m').unwrap_or(0)], 1 << 20),
        Some('g') => (&s[..s.find('g').unwrap_or(0)], 1 << 30),
        _ => (s.as_str(), 1),
    };
    Ok(num
        .parse::<u64>()
        .with_context(|| format!("bad size {s:?}"))?
        * mult)
}

pub fn parse_duration(s: &str) -> Result<Duration> {
    if let Some(ms) = s.strip_suffix("ms") {
        return Ok(Duration::from_millis(ms.parse()?));
    }
    let secs: f64 = s
        .strip_suffix('s')
        .unwrap_or(s)
        .parse()
        .with_context(|| format!("bad duration {s:?}"))?;
    Ok(Duration::from_secs_f64(secs))
}

pub fn list<T>(s: &str, f: impl Fn(&str) -> Result<T>) -> Result<Vec<T>> {
    s.split(',').filter(|p| !p.is_empty()).map(f).collect()
}

pub const USAGE: &str = "options: --quick --sizes 4k,1m,64m --concurrency 1,16,64 --ops put,get,list \
--targets direct,switchyard,s3s-proxy,switchyard-fs --duration 4s --rounds 3 --max-requests N \
--max-put-bytes 4g --no-rss --rss-only --rss-uploads 256 --rss-size 256m --rss-limit 8g \
--no-rss-peer --data-dir DIR --pin --stock-servers --switchyard-bin PATH --switchyard-log FILTER --switchyard-server KEY=VALUE --markdown FILE";

pub fn parse_args() -> Result<Args> {
    let mut a = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            // `cargo bench` passes this to every bench binary.
            "--bench" => {}
            "--quick" => {
                a.sizes = vec![4 << 10, MIB];
                a.concurrency = vec![1, 16];
                a.duration = Duration::from_secs(1);
                a.rss_uploads = 16;
                a.rss_size = 64 * MIB;
            }
            "--sizes" => a.sizes = list(&value()?, parse_size)?,
            "--concurrency" => a.concurrency = list(&value()?, |s| Ok(s.parse()?))?,
            "--ops" => {
                a.ops = list(&value()?, |s| match s {
                    "put" => Ok(Op::Put),
                    "get" => Ok(Op::Get),
                    "list" => Ok(Op::List),
                    _ => bail!("unknown op {s:?}"),
                })?
            }
            "--targets" => {
                let mut t = list(&value()?, Target::parse)?;
                if !t.contains(&Target::Direct) {
                    t.push(Target::Direct); // the baseline of every ratio
                }
                t.sort();
                a.targets = t;
            }
            "--duration" => a.duration = parse_duration(&value()?)?,
            "--rounds" => a.rounds = value()?.parse::<usize>()?.max(1),
            "--max-requests" => a.max_requests = value()?.parse()?,
            "--max-put-bytes" => a.max_put_bytes = parse_size(&value()?)?,
            "--no-rss" => a.rss = false,
            "--rss-only" => {
                a.matrix = false;
                a.rss = true;
            }
            "--rss-uploads" => a.rss_uploads = value()?.parse()?,
            "--rss-size" => a.rss_size = parse_size(&value()?)?,
            "--rss-limit" => a.rss_limit = parse_size(&value()?)?,
            "--no-rss-peer" => a.rss_peer = false,
            "--data-dir" => a.data_dir = Some(value()?.into()),
            "--stock-servers" => a.stock_servers = true,
            "--pin" => a.pin = true,
            "--switchyard-bin" => a.switchyard_bin = Some(value()?.into()),
            "--switchyard-log" => a.switchyard_log = Some(value()?),
            "--switchyard-server" => {
                let v = value()?;
                let (key, val) = v
                    .split_once('=')
                    .with_context(|| format!("--switchyard-server {v:?}: KEY=VALUE"))?;
                a.switchyard_server
                    .push(format!("{} = {}", key.trim(), val.trim()));
            }
            "--markdown" => a.markdown = Some(value()?.into()),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(a)
}
