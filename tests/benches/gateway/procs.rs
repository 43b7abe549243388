//! The servers under test as child processes on 127.0.0.1, killed on drop (also when the
//! benchmark panics), and the resident memory of one of them.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How long a server may take to accept connections after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A child process serving on `addr`. Killed and reaped on drop.
pub struct Child {
    pub name: String,
    pub addr: SocketAddr,
    pub log: PathBuf,
    proc: std::process::Child,
}

impl Child {
    /// Starts `make(port)` on a free port, with its output in `log_dir/NAME.log`, and waits
    /// until it accepts TCP connections. Tries three ports: another process may take the
    /// free port between our probe and the child's bind.
    pub async fn start(name: &str, log_dir: &Path, make: impl Fn(u16) -> Command) -> Result<Self> {
        let mut last = None;
        for _ in 0..3 {
            let port = free_port()?;
            match Self::start_on(name, log_dir, port, make(port)).await {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("three attempts"))
    }

    async fn start_on(name: &str, log_dir: &Path, port: u16, mut cmd: Command) -> Result<Self> {
        let log = log_dir.join(format!("{name}.log"));
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let proc = cmd
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        let mut child = Child {
            name: name.to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
            proc,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = child.proc.try_wait()? {
                bail!(
                    "{name} exited during start-up ({status}); its log:\n{}",
                    child.log_tail()
                );
            }
            if tokio::net::TcpStream::connect(child.addr).await.is_ok() {
                return Ok(child);
            }
            if Instant::now() > deadline {
                bail!(
                    "{name} did not listen on {} within {START_TIMEOUT:?}; its log:\n{}",
                    child.addr,
                    child.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.proc.id()
    }

    /// The last lines of the child's output, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Fails if the child has exited (a crash would otherwise show up as a wall of
    /// connection errors).
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.proc.try_wait()? {
            bail!(
                "{} exited ({status}); its log:\n{}",
                self.name,
                self.log_tail()
            );
        }
        Ok(())
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}

/// The CPUs this process may run on (`Cpus_allowed_list`, e.g. `0-3,6`).
pub fn allowed_cpus() -> Result<Vec<usize>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .context("no Cpus_allowed_list in /proc/self/status")?;
    let mut cpus = Vec::new();
    for part in list.trim().split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        cpus.extend(lo.parse::<usize>()?..=hi.parse::<usize>()?);
    }
    Ok(cpus)
}

fn cpu_list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Confines this process's main thread, and the threads and processes it starts from now
/// on, to `cpus` (with util-linux's `taskset`: the workspace has no unsafe code).
pub fn pin_self(cpus: &[usize]) -> Result<()> {
    let status = Command::new("taskset")
        .args(["-p", "-c", &cpu_list(cpus), &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
        .context("running taskset (util-linux)")?;
    if !status.success() {
        bail!("taskset -p failed: {status}");
    }
    Ok(())
}

/// A command for `program`, run on `cpus` when given (through `taskset -c`, which
/// execs it: the pid is the program's).
pub fn command(program: impl AsRef<std::ffi::OsStr>, cpus: Option<&[usize]>) -> Command {
    match cpus {
        None => Command::new(program),
        Some(cpus) => {
            // By path: a command may clear its environment, PATH included.
            let mut cmd = Command::new("/usr/bin/taskset");
            cmd.args(["-c", &cpu_list(cpus)]).arg(program);
            cmd
        }
    }
}

pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("probing for a free port")?;
    Ok(l.local_addr()?.port())
}

/// (VmRSS, VmHWM) of a process, in bytes.
pub fn rss_of(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU time (user and system) a process has used so far, at the kernel's 10 ms
/// resolution (`USER_HZ` is 100 on Linux).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: count fields after it. The next
    // field is the state (field 3); utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// The peak resident memory of a process over a stretch of time: the kernel's high-water
/// mark (VmHWM), reset at the start through `/proc/PID/clear_refs`, and, in case that
/// reset is not permitted, the highest VmRSS seen by a sampler every 10 ms.
pub struct PeakRss {
    pid: u32,
    hwm_reset: bool,
    max_sampled: Arc<AtomicU64>,
    over_limit: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    sampler: Option<std::thread::JoinHandle<()>>,
}

impl PeakRss {
    /// Starts watching `pid`. Above `limit` bytes, [`PeakRss::over_limit`] turns true (a
    /// guard for tests that may exhaust the machine's memory).
    pub fn start(pid: u32, limit: Option<u64>) -> Self {
        let hwm_reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
        let max_sampled = Arc::new(AtomicU64::new(0));
        let over_limit = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (max, over, stop) = (max_sampled.clone(), over_limit.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some((rss, _)) = rss_of(pid) {
                        max.fetch_max(rss, Ordering::Relaxed);
                        if limit.is_some_and(|l| rss > l) {
                            over.store(true, Ordering::Relaxed);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        Self {
            pid,
            hwm_reset,
            max_sampled,
            over_limit,
            stop,
            sampler: Some(sampler),
        }
    }

    pub fn over_limit(&self) -> bool {
        self.over_limit.load(Ordering::Relaxed)
    }

    /// Stops watching; returns the peak in bytes.
    pub fn finish(mut self) -> u64 {
        self.stop_sampler();
        let sampled = self.max_sampled.load(Ordering::Relaxed);
        match (self.hwm_reset, rss_of(self.pid)) {
            (true, Some((_, hwm))) => hwm.max(sampled),
            _ => sampled,
        }
    }

    fn stop_sampler(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.sampler.take() {
            let _ = t.join();
        }
    }
}

impl Drop for PeakRss {
    fn drop(&mut self) {
        self.stop_sampler();
    }
}
