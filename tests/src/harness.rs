//! A Switchyard engine started in-process on 127.0.0.1, backend fixtures of every kind,
//! and S3 clients pointed at the engine.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use object_store::ObjectStore;

use crate::emulators::{Azurite, FakeGcs, Moto};

pub const ACCESS_KEY: &str = "sy-test-access";
pub const SECRET_KEY: &str = "sy-test-secret";

/// Logs from the engine under test, once per process (`RUST_LOG`-style `SWITCHYARD_LOG`).
pub fn init_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_env("SWITCHYARD_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("switchyard-test-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running engine.
pub struct Gateway {
    pub server: Option<switchyard::Server>,
    pub endpoint: String,
}

impl Gateway {
    /// Starts an engine from a TOML configuration. `[server] listen` is forced to an
    /// ephemeral port on 127.0.0.1 and the test user is added.
    pub async fn start(config_toml: &str) -> Result<Self> {
        init_logging();
        let mut config =
            switchyard::Config::from_toml(config_toml).context("test configuration")?;
        config.server.listen = "127.0.0.1:0".parse()?;
        config.users.push(switchyard::config::UserConfig {
            access_key: ACCESS_KEY.into(),
            secret_key: switchyard::config::Secret::Inline(SECRET_KEY.into()),
            name: None,
            groups: Vec::new(),
            // Whatever other users the configuration has, the tests' own may do everything.
            policy: Some(switchyard::config::AccessPolicySource::Text(
                "full-access".into(),
            )),
        });
        let server = switchyard::start(config).await?;
        let endpoint = format!("http://{}", server.local_addr());
        Ok(Self {
            server: Some(server),
            endpoint,
        })
    }

    pub fn client(&self) -> Client {
        s3_client(&self.endpoint, ACCESS_KEY, SECRET_KEY)
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

/// An aws-sdk-s3 client with path-style addressing and no retries, so each error reaches
/// the test as the server sent it.
pub fn s3_client(endpoint: &str, access_key: &str, secret_key: &str) -> Client {
    let creds = Credentials::new(access_key, secret_key, None, None, "switchyard-tests");
    let config = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(creds)
        .force_path_style(true)
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

/// An aws-sdk-s3 client that sends unsigned (anonymous) requests, as [`s3_client`]
/// otherwise.
pub fn anonymous_client(endpoint: &str) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .allow_no_auth()
        .force_path_style(true)
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

/// A request presigned in its query with aws-sigv4 (for requests the SDK does not
/// presign, and for expiries it refuses): the address to send it to, and the path and
/// query to send. The body is unsigned.
pub fn presign_query(
    endpoint: &str,
    (access_key, secret_key): (&str, &str),
    method: &str,
    path_and_query: &str,
    expires_in: std::time::Duration,
) -> (String, String) {
    use aws_sigv4::http_request::{
        SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
    };
    let addr = endpoint.trim_start_matches("http://").to_owned();
    let identity =
        aws_credential_types::Credentials::new(access_key, secret_key, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires_in);
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(std::time::SystemTime::now())
        .settings(settings)
        .build()
        .expect("signing parameters")
        .into();
    let req = SignableRequest::new(
        method,
        format!("http://{addr}{path_and_query}"),
        std::iter::once(("host", addr.as_str())),
        SignableBody::UnsignedPayload,
    )
    .expect("a signable request");
    let (instructions, _) = sign(req, &params).expect("signed").into_parts();
    let mut signed = path_and_query.to_owned();
    for (name, value) in instructions.params() {
        let value =
            percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC);
        signed.push_str(&format!("&{name}={value}"));
    }
    (addr, signed)
}

/// The headers that sign a request in its `Authorization` header with aws-sigv4, its body
/// unsigned (`x-amz-content-sha256: UNSIGNED-PAYLOAD`), as a client streaming a body of
/// unknown length signs it. `path_and_query` is sent as given (percent-encoded already).
pub fn sign_unsigned_payload(
    endpoint: &str,
    (access_key, secret_key): (&str, &str),
    method: &str,
    path_and_query: &str,
) -> Vec<(String, String)> {
    use aws_sigv4::http_request::{
        PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
        UriPathNormalizationMode, sign,
    };
    let addr = endpoint.trim_start_matches("http://");
    let identity =
        aws_credential_types::Credentials::new(access_key, secret_key, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(std::time::SystemTime::now())
        .settings(settings)
        .build()
        .expect("signing parameters")
        .into();
    let req = SignableRequest::new(
        method,
        format!("http://{addr}{path_and_query}"),
        std::iter::once(("host", addr)),
        SignableBody::UnsignedPayload,
    )
    .expect("a signable request");
    let (instructions, _) = sign(req, &params).expect("signed").into_parts();
    instructions
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// HTTP status and S3 error code of a failed SDK call.
pub fn err_of<E: ProvideErrorMetadata>(
    e: &SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> (u16, String) {
    let status = e.raw_response().map_or(0, |r| r.status().as_u16());
    let code = match e {
        SdkError::ServiceError(s) => s.err().code().unwrap_or("").to_owned(),
        _ => String::new(),
    };
    (status, code)
}

/// A PutBucketVersioning body: `Enabled` or `Suspended`.
pub fn versioning_config(
    status: aws_sdk_s3::types::BucketVersioningStatus,
) -> aws_sdk_s3::types::VersioningConfiguration {
    aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(status)
        .build()
}

/// The kinds of backend every conformance test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Fs,
    Memory,
    S3,
    Azure,
    Gcs,
}

/// One backend location, ready to be named in a configuration, plus a direct handle to
/// check what the gateway stored.
pub struct Fixture {
    pub kind: Kind,
    /// Body of the `[backends.NAME]` table.
    pub toml: String,
    /// The same location through object_store, bypassing the gateway (not for `fs`).
    pub direct: Option<Arc<dyn ObjectStore>>,
    /// The directory of an `fs` backend.
    pub dir: Option<PathBuf>,
    /// The backend's own endpoint and bucket/container, for native clients.
    pub endpoint: Option<String>,
    /// The emulator itself when `endpoint` is a translating layer in front of it (GCS).
    pub raw_endpoint: Option<String>,
    pub bucket: Option<String>,
    _keep: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

fn unique(name: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

impl Fixture {
    pub async fn new(kind: Kind) -> Result<Self> {
        match kind {
            Kind::Fs => {
                let dir = TempDir::new("fs");
                let toml = format!("kind = \"fs\"\nroot = {:?}\n", dir.0.display().to_string());
                let path = dir.0.clone();
                Ok(Self {
                    kind,
                    toml,
                    direct: None,
                    dir: Some(path),
                    endpoint: None,
                    raw_endpoint: None,
                    bucket: None,
                    _keep: vec![Box::new(dir)],
                })
            }
            Kind::Memory => Ok(Self {
                kind,
                toml: "kind = \"memory\"\n".into(),
                direct: None,
                dir: None,
                endpoint: None,
                raw_endpoint: None,
                bucket: None,
                _keep: vec![],
            }),
            Kind::S3 => {
                let moto = Moto::start().await?;
                let bucket = unique("sy").to_lowercase();
                moto.create_bucket(&bucket).await?;
                let toml = format!(
                    "kind = \"s3\"\nbucket = {bucket:?}\nendpoint = {:?}\nallow_http = true\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\nnetwork = {{ max_retries = 0 }}\n",
                    moto.endpoint
                );
                let direct: Arc<dyn ObjectStore> = Arc::new(moto.store(&bucket)?);
                let endpoint = moto.endpoint.clone();
                Ok(Self {
                    kind,
                    toml,
                    direct: Some(direct),
                    dir: None,
                    raw_endpoint: Some(endpoint.clone()),
                    endpoint: Some(endpoint),
                    bucket: Some(bucket),
                    _keep: vec![Box::new(moto)],
                })
            }
            Kind::Azure => {
                let az = Azurite::start().await?;
                let container = unique("sy").to_lowercase();
                az.create_container(&container).await?;
                let toml = format!(
                    "kind = \"azure\"\naccount = \"devstoreaccount1\"\ncontainer = {container:?}\nendpoint = {:?}\nuse_emulator = true\nallow_http = true\nnetwork = {{ max_retries = 0 }}\n",
                    az.endpoint
                );
                let direct: Arc<dyn ObjectStore> = Arc::new(az.store(&container)?);
                let endpoint = az.endpoint.clone();
                Ok(Self {
                    kind,
                    toml,
                    direct: Some(direct),
                    dir: None,
                    raw_endpoint: Some(endpoint.clone()),
                    endpoint: Some(endpoint),
                    bucket: Some(container),
                    _keep: vec![Box::new(az)],
                })
            }
            Kind::Gcs => {
                let gcs = FakeGcs::start().await?;
                let bucket = unique("sy").to_lowercase();
                gcs.create_bucket(&bucket).await?;
                let toml = format!(
                    "kind = \"gcs\"\nbucket = {bucket:?}\nendpoint = {:?}\nallow_http = true\nnetwork = {{ max_retries = 0 }}\n",
                    gcs.endpoint
                );
                let direct: Arc<dyn ObjectStore> = Arc::new(gcs.store(&bucket)?);
                let endpoint = gcs.endpoint.clone();
                let raw = gcs.raw_endpoint.clone();
                Ok(Self {
                    kind,
                    toml,
                    direct: Some(direct),
                    dir: None,
                    endpoint: Some(endpoint),
                    raw_endpoint: Some(raw),
                    bucket: Some(bucket),
                    _keep: vec![Box::new(gcs)],
                })
            }
        }
    }

    /// A configuration with one virtual bucket `bucket` over this backend.
    pub fn single_bucket_config(&self, bucket: &str) -> String {
        format!(
            "version = 1\n[backends.main]\n{}\n[buckets.{bucket}]\nmembers = [\"main\"]\n",
            self.toml
        )
    }
}

/// Temporary files under an fs backend's root: every file below `.switchyard/tmp` but the
/// engines' lock files (each engine keeps its temporary files in a directory of its own,
/// beside a lock file it holds while it runs).
pub fn tmp_files(root: &std::path::Path) -> Vec<PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_none_or(|x| x != "lock") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root.join(".switchyard/tmp"), &mut out);
    out
}

/// The repository root (for scripts under `tests/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// The `switchyard` binary that `cargo build -p switchyard` builds (scripts/test.sh builds
/// it before the tests run): `$SWITCHYARD_BIN` when set (as for plugins/build-all.sh), else
/// `switchyard` in the target directory this test executable was built into, so a
/// `CARGO_TARGET_DIR` elsewhere is followed.
pub fn switchyard_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("SWITCHYARD_BIN").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("locating the test executable")?;
    // <target>/<profile>/deps/<test>-<hash>
    let profile_dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .context("test executable outside a target directory")?;
    let bin = profile_dir.join(format!("switchyard{}", std::env::consts::EXE_SUFFIX));
    anyhow::ensure!(
        bin.is_file(),
        "{} not found: build it first with `cargo build -p switchyard` (scripts/test.sh does), or set SWITCHYARD_BIN",
        bin.display()
    );
    Ok(bin)
}

/// The counts on the closing line of `switchyard migrate`:
/// `migration B/FROM -> TO (shard I/N): listed N, copied N (B bytes), skipped N, …, failed N …`
/// (`would copy N (B bytes)` in a dry run). Counts this does not know are passed over, so
/// a line that grows more of them still parses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MigrateSummary {
    pub listed: u64,
    pub copied: u64,
    pub bytes: u64,
    pub skipped: u64,
    pub failed: u64,
}

impl MigrateSummary {
    /// Finds and parses the summary line in a run's stdout.
    pub fn parse(stdout: &str) -> Result<Self> {
        let line = stdout
            .lines()
            .find(|l| l.contains("): listed "))
            .with_context(|| format!("no summary line in the output:\n{stdout}"))?;
        let counts = line.split_once("): ").map(|(_, c)| c).unwrap_or_default();
        let mut s = Self::default();
        let mut seen = [false; 4];
        for part in counts.split(", ") {
            let words: Vec<&str> = part.split_whitespace().collect();
            let number = |i: usize| -> Result<u64> {
                let w = words.get(i).copied().unwrap_or_default();
                w.trim_start_matches('(')
                    .parse()
                    .with_context(|| format!("{w:?} in {line:?} is not a count"))
            };
            match words.as_slice() {
                ["listed", ..] => (s.listed, seen[0]) = (number(1)?, true),
                ["copied", ..] => (s.copied, s.bytes, seen[1]) = (number(1)?, number(2)?, true),
                ["would", "copy", ..] => {
                    (s.copied, s.bytes, seen[1]) = (number(2)?, number(3)?, true)
                }
                ["skipped", ..] => (s.skipped, seen[2]) = (number(1)?, true),
                ["failed", ..] => (s.failed, seen[3]) = (number(1)?, true),
                _ => {}
            }
        }
        anyhow::ensure!(
            seen.iter().all(|s| *s),
            "listed, copied, skipped or failed missing from {line:?}"
        );
        Ok(s)
    }
}

/// What one `switchyard` child process did.
pub struct CliRun {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    /// The `switchyard migrate` summary; fails with the process's output when absent.
    pub fn summary(&self) -> Result<MigrateSummary> {
        MigrateSummary::parse(&self.stdout).with_context(|| {
            format!(
                "switchyard exited with {}; stderr:\n{}",
                self.status, self.stderr
            )
        })
    }
}

/// Runs `switchyard ARGS` with `envs` added to the environment, killed after `limit`.
pub async fn run_switchyard(
    args: &[&str],
    envs: &[(&str, &str)],
    limit: std::time::Duration,
) -> Result<CliRun> {
    let bin = switchyard_bin()?;
    let mut cmd = tokio::process::Command::new(&bin);
    // Only what the test passes: no shard or log filter inherited from the caller.
    cmd.args(args)
        .env_remove("SWITCHYARD_SHARD")
        .env("SWITCHYARD_LOG", "warn")
        .envs(envs.iter().copied())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .with_context(|| format!("{} {args:?} still running after {limit:?}", bin.display()))?
        .with_context(|| format!("spawning {} {args:?}", bin.display()))?;
    Ok(CliRun {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// The versions listed under `prefix`, all pages of `page` rows: (key, version id, is a
/// delete marker, is latest), in the listing's order.
pub async fn list_all_versions(
    c: &Client,
    bucket: &str,
    prefix: &str,
    page: i32,
) -> Vec<(String, String, bool, bool)> {
    // The listing's one order, split by the SDK into two lists: this gateway's ids of one
    // member sort newest first, after the latest (`null` is its only other id).
    list_versions_in_order(c, bucket, prefix, page, |a, b| a.1.cmp(&b.1)).await
}

/// [`list_all_versions`] for version ids that do not sort by age (S3's own, passed
/// through): each page's rows by key, the latest first, then newest first by
/// Last-Modified; rows of one key written within the same second keep the order the
/// listing gave them (versions before delete markers, which the SDK lists apart).
pub async fn list_all_versions_by_time(
    c: &Client,
    bucket: &str,
    prefix: &str,
    page: i32,
) -> Vec<(String, String, bool, bool)> {
    list_versions_in_order(c, bucket, prefix, page, |a, b| b.4.cmp(&a.4)).await
}

/// A listed version: key, version id, is a delete marker, is latest, Last-Modified.
type VersionRow = (String, String, bool, bool, aws_sdk_s3::primitives::DateTime);

/// Every page of the versions under `prefix`, each page's rows put back into one order
/// (by key, the latest first, then `within_key`; a stable sort, so ties keep the
/// listing's order).
async fn list_versions_in_order(
    c: &Client,
    bucket: &str,
    prefix: &str,
    page: i32,
    within_key: fn(&VersionRow, &VersionRow) -> std::cmp::Ordering,
) -> Vec<(String, String, bool, bool)> {
    let mut out = Vec::new();
    let (mut km, mut vm): (Option<String>, Option<String>) = (None, None);
    loop {
        let got = c
            .list_object_versions()
            .bucket(bucket)
            .prefix(prefix)
            .max_keys(page)
            .set_key_marker(km.clone())
            .set_version_id_marker(vm.clone())
            .send()
            .await
            .unwrap();
        let mut rows: Vec<VersionRow> = got
            .versions()
            .iter()
            .map(|v| {
                (
                    v.key().unwrap().to_owned(),
                    v.version_id().unwrap().to_owned(),
                    false,
                    v.is_latest().unwrap(),
                    *v.last_modified().unwrap(),
                )
            })
            .chain(got.delete_markers().iter().map(|d| {
                (
                    d.key().unwrap().to_owned(),
                    d.version_id().unwrap().to_owned(),
                    true,
                    d.is_latest().unwrap(),
                    *d.last_modified().unwrap(),
                )
            }))
            .collect();
        assert!(rows.len() <= page as usize);
        rows.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| b.3.cmp(&a.3))
                .then_with(|| within_key(a, b))
        });
        out.extend(rows.into_iter().map(|(k, v, m, l, _)| (k, v, m, l)));
        if !got.is_truncated().unwrap() {
            break;
        }
        km = got.next_key_marker().map(str::to_owned);
        vm = got.next_version_id_marker().map(str::to_owned);
        assert!(km.is_some(), "a truncated page without NextKeyMarker");
    }
    out
}

/// An S3 server without versioning, lifecycle or tagging (s3s-fs, the s3s project's own
/// file-system server; Cloudflare R2 and others also answer `501` to parts of the API),
/// served in this process on 127.0.0.1 over `root` (a bucket is a directory there) with
/// the credentials `test`/`test`. Answers its endpoint; serves until the runtime ends.
pub async fn serve_s3s_fs(root: &std::path::Path) -> Result<String> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    let fs = s3s_fs::FileSystem::new(root).map_err(|e| anyhow::anyhow!("s3s-fs: {e:?}"))?;
    let mut service = s3s::service::S3ServiceBuilder::new(fs);
    service.set_auth(s3s::auth::SimpleAuth::from_single("test", "test"));
    let service = service.build();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let conn = Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(socket), service.clone())
                .into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
    Ok(endpoint)
}
