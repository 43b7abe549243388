//! The servers under test, started and wired together, and the directory they share.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::args::Args;
use crate::load::{Endpoint, Signer};
use crate::procs::{Child, command};
use crate::{ACCESS_KEY, SECRET_KEY, Target};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

pub fn tool(name: &str) -> Result<PathBuf> {
    let dir = std::env::var_os("SWITCHYARD_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools"));
    let path = dir.join("bin").join(name);
    if !path.exists() {
        bail!(
            "{} not found: run scripts/install-bench-tools.sh",
            path.display()
        );
    }
    Ok(path)
}

/// The release build of the `switchyard` binary: built here with `cargo build --release`
/// (cargo is done with the build directory while a bench runs), next to this bench's own
/// release build.
pub fn switchyard_bin(args: &Args) -> Result<PathBuf> {
    if let Some(p) = args
        .switchyard_bin
        .clone()
        .or_else(|| std::env::var_os("SWITCHYARD_BIN").map(PathBuf::from))
    {
        return Ok(p);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building the switchyard binary: cargo build --release -p switchyard");
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "switchyard",
            "--bin",
            "switchyard",
        ])
        .current_dir(repo_root())
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release -p switchyard failed");
    }
    // This bench runs from TARGET/release/deps/.
    let exe = std::env::current_exe()?;
    let release = exe
        .parent()
        .and_then(Path::parent)
        .context("locating the target directory")?;
    let bin = release.join("switchyard");
    if !bin.exists() {
        bail!("{} was not built", bin.display());
    }
    Ok(bin)
}

/// A working directory removed on drop: tmpfs when there is room (so that the disk does
/// not dominate what is measured), else the system's temporary directory.
pub struct WorkDir(pub PathBuf);

impl WorkDir {
    pub fn new(base: Option<&Path>) -> Result<Self> {
        let base = match base {
            Some(b) => b.to_owned(),
            None if free_bytes(Path::new("/dev/shm")).unwrap_or(0) > 16 << 30 => "/dev/shm".into(),
            None => std::env::temp_dir(),
        };
        let dir = base.join(format!("switchyard-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn free_bytes(path: &Path) -> Option<u64> {
    let out = Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(path)
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)?
        .trim()
        .parse()
        .ok()
}

/// Everything the benchmark started; dropped (killed) at the end or on panic.
pub struct Rig {
    pub work: WorkDir,
    s3_root: PathBuf,
    /// Killed on drop.
    pub procs: Vec<Child>,
    pub endpoints: BTreeMap<Target, Endpoint>,
    /// Gateway processes whose memory and CPU time are reported.
    pub pids: BTreeMap<Target, u32>,
    /// The baseline S3 server (every target but `switchyard-fs` ends there).
    pub origin_pid: u32,
}

/// A gateway's configuration; `server` lines (`key = value`) go into its `[server]` table.
pub fn switchyard_config(
    listen: std::net::SocketAddr,
    server: &[String],
    backends: &[(&str, String)],
) -> String {
    let mut c = format!("version = 1\n[server]\nlisten = \"{listen}\"\n");
    for line in server {
        let _ = writeln!(c, "{line}");
    }
    let _ = write!(
        c,
        "[[users]]\naccess_key = \"{ACCESS_KEY}\"\nsecret_key = \"{SECRET_KEY}\"\n"
    );
    for (bucket, backend) in backends {
        let _ = write!(
            c,
            "[backends.{bucket}-store]\n{backend}\n[buckets.{bucket}]\nmembers = [\"{bucket}-store\"]\n"
        );
    }
    c
}

pub fn s3_backend(endpoint: &std::net::SocketAddr, bucket: &str) -> String {
    format!(
        "kind = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"http://{endpoint}\"\nallow_http = true\naccess_key_id = \"{ACCESS_KEY}\"\nsecret_access_key = \"{SECRET_KEY}\""
    )
}

/// Starts a gateway with the bench's options for it (log filter, CPUs, `[server]` lines).
pub async fn start_switchyard(
    name: &str,
    bin: &Path,
    work: &Path,
    args: &Args,
    backends: &[(&str, String)],
) -> Result<Child> {
    Child::start(name, work, |port| {
        let config = work.join(format!("{name}.toml"));
        let listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let text = switchyard_config(listen, &args.switchyard_server, backends);
        std::fs::write(&config, text).expect("write config");
        let mut cmd = command(bin, args.gateway_cpus.as_deref());
        cmd.arg("serve").arg("--config").arg(&config);
        if let Some(f) = &args.switchyard_log {
            cmd.env("SWITCHYARD_LOG", f);
        }
        cmd
    })
    .await
}

impl Rig {
    pub async fn start(args: &Args, bin: &Path) -> Result<Self> {
        let work = WorkDir::new(args.data_dir.as_deref())?;
        let s3_root = work.0.join("s3");
        for b in ["bench", "list"] {
            std::fs::create_dir_all(s3_root.join(b))?;
        }
        let signer = Signer::new(ACCESS_KEY, SECRET_KEY);
        let mut procs = Vec::new();
        let mut endpoints = BTreeMap::new();
        let mut pids = BTreeMap::new();

        let stock = if args.stock_servers {
            Some((tool("s3s-fs")?, tool("s3s-proxy")?))
        } else {
            None
        };
        let this = std::env::current_exe()?;
        let direct = Child::start("s3s-fs", &work.0, |port| match &stock {
            Some((s3s_fs, _)) => {
                let mut cmd = Command::new(s3s_fs);
                cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
                    .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                    .arg(&s3_root);
                cmd
            }
            None => {
                let mut cmd = served("s3s-fs", &this, port, None);
                cmd.arg("--root").arg(&s3_root);
                cmd
            }
        })
        .await?;
        let s3_addr = direct.addr;
        endpoints.insert(Target::Direct, Endpoint::new(s3_addr, signer.clone()));
        let origin_pid = direct.pid();
        procs.push(direct);

        if args.targets.contains(&Target::Switchyard) {
            let c = start_switchyard(
                "switchyard",
                bin,
                &work.0,
                args,
                &[
                    ("bench", s3_backend(&s3_addr, "bench")),
                    ("list", s3_backend(&s3_addr, "list")),
                ],
            )
            .await?;
            endpoints.insert(Target::Switchyard, Endpoint::new(c.addr, signer.clone()));
            pids.insert(Target::Switchyard, c.pid());
            procs.push(c);
        }
        if args.targets.contains(&Target::SwitchyardQuiet) {
            let filter = format!(
                "{},switchyard::access=off",
                args.switchyard_log.as_deref().unwrap_or("info,s3s=off")
            );
            let quiet = Args {
                switchyard_log: Some(filter),
                ..args.clone()
            };
            let c = start_switchyard(
                "switchyard-quiet",
                bin,
                &work.0,
                &quiet,
                &[
                    ("bench", s3_backend(&s3_addr, "bench")),
                    ("list", s3_backend(&s3_addr, "list")),
                ],
            )
            .await?;
            endpoints.insert(
                Target::SwitchyardQuiet,
                Endpoint::new(c.addr, signer.clone()),
            );
            pids.insert(Target::SwitchyardQuiet, c.pid());
            procs.push(c);
        }
        if args.targets.contains(&Target::Proxy) {
            let stock = stock.as_ref().map(|(_, p)| p.as_path());
            let c = Child::start("s3s-proxy", &work.0, |port| {
                proxy_command(stock, &this, port, &s3_addr, args.gateway_cpus.as_deref())
            })
            .await?;
            endpoints.insert(Target::Proxy, Endpoint::new(c.addr, signer.clone()));
            pids.insert(Target::Proxy, c.pid());
            procs.push(c);
        }
        if args.targets.contains(&Target::SwitchyardFs) {
            let fs = |b: &str| {
                format!(
                    "kind = \"fs\"\nroot = {:?}",
                    s3_root.join(b).display().to_string()
                )
            };
            let c = start_switchyard(
                "switchyard-fs",
                bin,
                &work.0,
                args,
                &[("bench", fs("bench")), ("list", fs("list"))],
            )
            .await?;
            endpoints.insert(Target::SwitchyardFs, Endpoint::new(c.addr, signer.clone()));
            pids.insert(Target::SwitchyardFs, c.pid());
            procs.push(c);
        }
        Ok(Self {
            work,
            s3_root,
            procs,
            endpoints,
            pids,
            origin_pid,
        })
    }

    pub fn check_alive(&mut self) -> Result<()> {
        for p in &mut self.procs {
            p.check_alive()?;
        }
        Ok(())
    }

    /// Removes the objects under `prefix` (a directory) of the bench bucket, with
    /// Switchyard's fs sidecars and s3s-fs's metadata files for them (s3s-fs keeps those
    /// in its root directory, named `.bucket-B64(bucket).object-B64(key)....json`).
    pub fn clean(&self, prefix: &str) {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let bench = self.s3_root.join("bench");
        let _ = std::fs::remove_dir_all(bench.join(prefix));
        let _ = std::fs::remove_dir_all(bench.join(".switchyard/meta").join(prefix));
        let wanted = format!(".bucket-{}.object-", b64.encode("bench"));
        let Ok(entries) = std::fs::read_dir(&self.s3_root) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let key = name
                .strip_prefix(&wanted)
                .and_then(|rest| rest.split('.').next())
                .and_then(|k| b64.decode(k).ok());
            if key.is_some_and(|k| k.starts_with(format!("{prefix}/").as_bytes())) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// This binary serving `kind` (see `servers.rs`) on `port`.
pub fn served(kind: &str, this: &Path, port: u16, cpus: Option<&[usize]>) -> Command {
    let mut cmd = command(this, cpus);
    cmd.args(["--serve", kind, "--port", &port.to_string()])
        .env("BENCH_ACCESS_KEY", ACCESS_KEY)
        .env("BENCH_SECRET_KEY", SECRET_KEY);
    cmd
}

/// The peer gateway in front of `upstream`: served by this binary, or the released
/// `stock` one. s3s-proxy takes its upstream credentials the AWS SDK way, from the
/// environment, and accepts requests signed with the same ones. The SDK's default request
/// checksums (a CRC32 of every body, sent as an aws-chunked trailer) are turned off, as
/// Switchyard does not compute them either: the peer runs in its cheapest correct
/// configuration.
pub fn proxy_command(
    stock: Option<&Path>,
    this: &Path,
    port: u16,
    upstream: &std::net::SocketAddr,
    cpus: Option<&[usize]>,
) -> Command {
    let Some(bin) = stock else {
        let mut cmd = served("s3s-proxy", this, port, cpus);
        cmd.arg("--endpoint-url").arg(format!("http://{upstream}"));
        return cmd;
    };
    let mut cmd = command(bin, cpus);
    cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .arg("--endpoint-url")
        .arg(format!("http://{upstream}"))
        .env_clear()
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
        .env("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required");
    cmd
}
