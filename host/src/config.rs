//! Strict, versioned TOML configuration.
//!
//! Every struct denies unknown fields so that a typo is an error at start-up rather than a
//! silently ignored setting. `validate()` runs before anything is built and names the bad
//! field in its error; it reports every error of the file, not only the first, so that one
//! run of `check-config` shows all there is to fix. Defaults are written in each field's
//! doc comment.

mod parse;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use parse::ParseError;

/// The only configuration format version this build understands.
pub const CONFIG_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not TOML, or a value that does not fit its field: reading stops at the first.
    #[error("{0}")]
    Parse(Box<ParseError>),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// More than one error of validation, in the order of the checks.
    #[error("{}", numbered(.0))]
    Several(Vec<ConfigError>),
}

impl ConfigError {
    /// The errors one by one (one, unless this is [`ConfigError::Several`]).
    pub fn errors(&self) -> Vec<&ConfigError> {
        match self {
            ConfigError::Several(all) => all.iter().collect(),
            one => vec![one],
        }
    }
}

fn numbered(errors: &[ConfigError]) -> String {
    let mut out = format!("{} errors in the configuration:", errors.len());
    for (i, e) in errors.iter().enumerate() {
        out.push_str(&format!("\n  {}. {e}", i + 1));
    }
    out
}

/// Whether validation reads the secrets given as `{ env = "VAR" }`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Secrets {
    /// Read them: an unset variable is an error, as for `serve`. The default.
    #[default]
    Resolve,
    /// Leave them unread (`check-config --no-env`): a CI job can check a production
    /// configuration without its secrets. Inline secrets are still checked.
    Skip,
}

/// The errors validation finds, gathered rather than returned at the first.
#[derive(Default)]
struct Problems(Vec<ConfigError>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(invalid(field, message));
    }

    /// `r`'s value, or none with its error noted.
    fn check<T>(&mut self, r: Result<T, ConfigError>) -> Option<T> {
        r.map_err(|e| self.0.push(e)).ok()
    }

    fn into_result(mut self) -> Result<(), ConfigError> {
        match self.0.len() {
            0 => Ok(()),
            1 => Err(self.0.remove(0)),
            _ => Err(ConfigError::Several(self.0)),
        }
    }
}

/// A policy's `headers`: few, valid lower-case names, no credentials.
fn check_policy_headers(field: &str, headers: &[String]) -> Result<(), ConfigError> {
    use crate::policy::{MAX_POLICY_HEADERS, WITHHELD_HEADERS};
    if headers.len() > MAX_POLICY_HEADERS {
        return Err(invalid(
            field,
            format!("at most {MAX_POLICY_HEADERS} headers"),
        ));
    }
    for h in headers {
        if h.is_empty()
            || h.to_ascii_lowercase() != *h
            || http::header::HeaderName::from_bytes(h.as_bytes()).is_err()
        {
            return Err(invalid(
                field,
                format!("{h:?} is not a lower-case header name"),
            ));
        }
        if WITHHELD_HEADERS.contains(&h.as_str()) {
            return Err(invalid(
                field,
                format!("{h:?} carries credentials, which policies are never given"),
            ));
        }
    }
    Ok(())
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// A secret given inline or taken from an environment variable at start-up, so that
/// configuration files can be committed without credentials in them.
#[derive(Clone)]
pub enum Secret {
    Inline(String),
    Env { env: String },
}

/// `{ env = "VAR" }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvRef {
    env: String,
}

/// `{ file = "PATH" }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRef {
    file: PathBuf,
}

/// A string, or a table of one key (`{ env = "VAR" }`, `{ file = "PATH" }`): what serde's
/// untagged enums do, but read straight from the document, so that an error keeps its
/// place and key, and says what is expected rather than "data did not match any variant".
struct StringOrTable<T, R> {
    expecting: &'static str,
    inline: fn(String) -> T,
    table: fn(R) -> T,
}

impl<'de, T, R: Deserialize<'de>> serde::de::Visitor<'de> for StringOrTable<T, R> {
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        Ok((self.inline)(v.to_owned()))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        R::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(self.table)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StringOrTable {
            expecting: "a string, or { env = \"VAR\" }",
            inline: Secret::Inline,
            table: |r: EnvRef| Secret::Env { env: r.env },
        })
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Inline(_) => f.write_str("Secret(<inline>)"),
            Secret::Env { env } => write!(f, "Secret(env:{env})"),
        }
    }
}

impl Secret {
    /// Resolves the secret; `field` names it in the error.
    pub fn resolve(&self, field: &str) -> Result<String, ConfigError> {
        match self {
            Secret::Inline(s) => Ok(s.clone()),
            Secret::Env { env } => std::env::var(env)
                .map_err(|_| invalid(field, format!("environment variable {env} is not set"))),
        }
    }

    /// The value to check, none when it is in the environment and `secrets` says to
    /// leave it there.
    fn checked(&self, field: &str, secrets: Secrets) -> Result<Option<String>, ConfigError> {
        match (self, secrets) {
            (Secret::Env { .. }, Secrets::Skip) => Ok(None),
            _ => self.resolve(field).map(Some),
        }
    }

    /// The environment variable it is read from.
    pub fn env_var(&self) -> Option<&str> {
        match self {
            Secret::Inline(_) => None,
            Secret::Env { env } => Some(env),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Format version; must be 1.
    pub version: u32,
    /// Front-end listener settings.
    #[serde(default)]
    pub server: ServerConfig,
    /// Users allowed to sign requests. With no users, every request is anonymous and
    /// only buckets with `anonymous` access can be used.
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// Named backends: one location in one object store each.
    #[serde(default)]
    pub backends: BTreeMap<String, BackendConfig>,
    /// Virtual buckets, by the name clients see.
    #[serde(default)]
    pub buckets: BTreeMap<String, BucketConfig>,
    /// Buckets created through the S3 API (CreateBucket). Unset: CreateBucket is refused.
    #[serde(default)]
    pub dynamic_buckets: Option<DynamicBuckets>,
    /// Where policy components are loaded from, and their default limits.
    #[serde(default)]
    pub plugins: PluginsConfig,
    /// Per-policy settings, by policy name (the component's file stem).
    #[serde(default)]
    pub policies: BTreeMap<String, PolicyConfig>,
    /// Groups of users, by name: each group's access policy applies to its members.
    #[serde(default)]
    pub groups: BTreeMap<String, GroupConfig>,
}

/// An access policy in AWS's JSON policy language (see docs/access-control-language.md):
/// the JSON itself, a built-in by name, or a file holding the JSON.
#[derive(Debug, Clone)]
pub enum AccessPolicySource {
    /// Inline JSON (starts with `{`), or a built-in: `full-access` (every S3 action on
    /// everything) or `read-only` (`s3:Get*`, `s3:List*` on everything).
    Text(String),
    /// `{ file = "policies/app.json" }`, relative to the working directory.
    File { file: PathBuf },
}

impl<'de> Deserialize<'de> for AccessPolicySource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StringOrTable {
            expecting: "policy JSON, a built-in policy's name, or { file = \"PATH\" }",
            inline: AccessPolicySource::Text,
            table: |r: FileRef| AccessPolicySource::File { file: r.file },
        })
    }
}

/// The built-in identity policies, as AWS's managed policies of the same intent.
pub const BUILTIN_POLICIES: [(&str, &str); 2] = [
    (
        "full-access",
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"FullAccess","Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#,
    ),
    (
        "read-only",
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"ReadOnly","Effect":"Allow","Action":["s3:Get*","s3:List*"],"Resource":"*"}]}"#,
    ),
];

impl AccessPolicySource {
    /// The policy's JSON; `field` names it in the error.
    pub fn json(&self, field: &str) -> Result<String, ConfigError> {
        match self {
            AccessPolicySource::Text(t) if t.trim_start().starts_with('{') => Ok(t.clone()),
            AccessPolicySource::Text(name) => BUILTIN_POLICIES
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, json)| (*json).to_owned())
                .ok_or_else(|| {
                    invalid(
                        field,
                        format!(
                            "{name:?} is neither policy JSON (it starts with '{{') nor a built-in policy (full-access, read-only); a file is {{ file = \"PATH\" }}"
                        ),
                    )
                }),
            AccessPolicySource::File { file } => std::fs::read_to_string(file)
                .map_err(|e| invalid(field, format!("cannot read {}: {e}", file.display()))),
        }
    }

    /// Whether this is the built-in `full-access`.
    pub fn is_full_access(&self) -> bool {
        matches!(self, AccessPolicySource::Text(t) if t == "full-access")
    }
}

/// `[groups.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// The group's access policy (JSON, a built-in name, or `{ file = ... }`).
    pub policy: AccessPolicySource,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// Directory of policy components: `NAME.wasm` is policy `NAME`. Watched: a new or
    /// changed file is loaded, checked and swapped in; a removed one is unloaded.
    /// Default: none (only the built-in `default` policy).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Deadline of one policy call. Default 50ms.
    #[serde(default = "default_policy_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Memory one policy instance may use, in bytes. Default 64 MiB.
    #[serde(default = "default_policy_memory")]
    pub memory_limit: u64,
    /// Quiet time after a change in the directory before it is reloaded. Default 250ms.
    #[serde(default = "default_debounce", with = "humantime_serde")]
    pub debounce: Duration,
    /// Writes a perf map (`/tmp/perf-PID.map`) naming the policies' compiled code, so
    /// `perf record` on the server attributes a policy's samples to its functions. For
    /// profiling: the file grows with every policy version compiled. Default false.
    #[serde(default)]
    pub perf_map: bool,
}

fn default_policy_timeout() -> Duration {
    Duration::from_millis(50)
}
fn default_policy_memory() -> u64 {
    64 * 1024 * 1024
}
fn default_debounce() -> Duration {
    Duration::from_millis(250)
}

impl Default for PluginsConfig {
    fn default() -> Self {
        Self {
            dir: None,
            timeout: default_policy_timeout(),
            memory_limit: default_policy_memory(),
            debounce: default_debounce(),
            perf_map: false,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The string the policy reads with `host.config()`. Default: empty.
    #[serde(default)]
    pub config: Option<String>,
    /// Overrides `[plugins] timeout`.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Overrides `[plugins] memory_limit`.
    #[serde(default)]
    pub memory_limit: Option<u64>,
    /// Warm instances kept for reuse. Default 4; 0 gives every call a fresh instance
    /// (strict isolation between calls, at several times the cost per decision).
    #[serde(default)]
    pub warm_instances: Option<usize>,
    /// Calls of the policy running at once, each as blocking work the runtime moves other
    /// requests away from. Default: half the cores, at least one. A call waits at most `timeout`
    /// for a free slot.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Environment variables the policy may read. Default: none.
    #[serde(default)]
    pub allow_env: Vec<String>,
    /// Directories the policy may read (preopened read-only). Default: none.
    #[serde(default)]
    pub allow_dirs: Vec<PathBuf>,
    /// Give the policy the real clocks; otherwise they read zero. Default false.
    #[serde(default)]
    pub allow_clock: bool,
    /// Give the policy real random numbers (`wasi:random`); otherwise each instance's
    /// numbers come from one fixed seed, so that its decisions are reproducible.
    /// Default false.
    #[serde(default)]
    pub allow_random: bool,
    /// Request headers a 0.2 policy sees (`request.headers`), lower-case names, at most
    /// 16. Default: none. Credentials (`authorization`, `x-amz-security-token`, SSE-C
    /// keys, cookies) are refused here: a policy never needs them, and its logs would
    /// carry them.
    #[serde(default)]
    pub headers: Vec<String>,
}

/// What a bucket does when its policy cannot decide (trap, timeout, memory limit,
/// invalid answer, refusal, or not loaded).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureMode {
    /// Use the built-in default policy.
    FailOpen,
    /// Answer 503 ServiceUnavailable. The default: a policy usually exists for a reason
    /// (residency, cost), and a wrong placement is worse than a retry.
    #[default]
    FailClosed,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the S3 listener. Default `127.0.0.1:9000`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Region reported by GetBucketLocation and expected in signatures. Default `us-east-1`.
    #[serde(default = "default_region")]
    pub region: String,
    /// Domain names for virtual-host style requests (`bucket.DOMAIN`). Default: none
    /// (path style only).
    #[serde(default)]
    pub domains: Vec<String>,
    /// Objects larger than this are streamed to the backend as a multipart upload of parts
    /// this size; smaller ones are sent in one request. Default 8 MiB; at least 5 MiB.
    #[serde(default = "default_part_size")]
    pub part_size: u64,
    /// Largest object accepted by PutObject and UploadPart (S3's own limit). Default 5 GiB.
    #[serde(default = "default_max_object_size")]
    pub max_put_size: u64,
    /// Bytes of read buffer shared by the client connections: each gets this divided by
    /// the connections open (64 KiB to 512 KiB). Larger reads cost less CPU per byte of an
    /// upload; each upload keeps up to about three buffers alive. Default 8 MiB.
    #[serde(default = "default_read_buffers")]
    pub read_buffers: u64,
    /// Address of the admin listener (`/metrics`, `/healthz`, `/policies`). Default: off.
    #[serde(default)]
    pub admin_listen: Option<SocketAddr>,
    /// How long to wait for in-flight requests on shutdown. Default 30s.
    #[serde(default = "default_drain", with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// How long a client may keep a connection without progress before it is closed:
    /// from connecting (or from the end of the previous answer) to a complete request
    /// head, between two reads of any request body (the request then fails with
    /// `RequestTimeout`, and nothing is written), and while an answer waits for the client
    /// to read it. Without it, clients that stall hold sockets, tasks and backend
    /// connections for as long as they like. Default 60s.
    #[serde(default = "default_client_timeout", with = "humantime_serde")]
    pub client_timeout: Duration,
    /// Bearer token that allows starting migrations and tiering passes through the admin
    /// API (`POST /jobs/...`), inline or `{ env = "VAR" }`. Default: none, and the admin API
    /// is read-only.
    #[serde(default)]
    pub admin_token: Option<Secret>,
    /// Which admin requests must carry `admin_token`: `writes` (those that start jobs) or
    /// `all` (every request but the probes `GET /healthz` and `GET /readyz`). Default
    /// `writes`.
    #[serde(default)]
    pub admin_auth: AdminAuth,
    /// `[server.tls]`: HTTPS. Default: none (plain HTTP only).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// Which requests to the admin listener need the bearer token (`server.admin_auth`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdminAuth {
    /// Only those that start jobs (`POST /jobs/...`): metrics, health, policies and job
    /// progress stay readable by whoever reaches the listener. The default.
    #[default]
    Writes,
    /// Every request but the probes (`GET /healthz`, `GET /readyz`, which then withholds
    /// names): for a listener that others can reach, since `/jobs` and `/metrics` name
    /// buckets, members and policies.
    All,
}

/// `[server.tls]`: the certificate the listeners present. Without `listen`, the S3
/// listener (`server.listen`) speaks HTTPS only; with it, HTTPS is served there and plain
/// HTTP stays on `server.listen`. The files are watched: a renewed pair is served to new
/// connections once both files parse and the key matches the certificate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, the server's certificate first. Required.
    pub cert: PathBuf,
    /// PEM file with the private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC), unencrypted.
    /// Required.
    pub key: PathBuf,
    /// Address of a separate HTTPS listener, leaving `server.listen` plain HTTP. Default:
    /// none (`server.listen` is HTTPS).
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Whether the admin listener (`server.admin_listen`) speaks HTTPS too, with the same
    /// certificate. Default true.
    #[serde(default = "default_true")]
    pub admin: bool,
}

fn default_true() -> bool {
    true
}

fn default_listen() -> SocketAddr {
    "127.0.0.1:9000".parse().expect("literal address")
}
fn default_region() -> String {
    "us-east-1".to_owned()
}
fn default_part_size() -> u64 {
    8 * 1024 * 1024
}
fn default_max_object_size() -> u64 {
    5 * 1024 * 1024 * 1024
}
fn default_read_buffers() -> u64 {
    8 * 1024 * 1024
}
fn default_drain() -> Duration {
    Duration::from_secs(30)
}
fn default_client_timeout() -> Duration {
    Duration::from_secs(60)
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            region: default_region(),
            domains: Vec::new(),
            part_size: default_part_size(),
            max_put_size: default_max_object_size(),
            read_buffers: default_read_buffers(),
            admin_listen: None,
            shutdown_grace: default_drain(),
            client_timeout: default_client_timeout(),
            admin_token: None,
            admin_auth: AdminAuth::default(),
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Access key id the client signs with.
    pub access_key: String,
    /// Secret key, inline or `{ env = "VAR" }`.
    pub secret_key: Secret,
    /// The user's name: `aws:username` in policies and the name bucket policies give as
    /// `Principal` (`{"AWS": "NAME"}` or `arn:aws:iam::ACCOUNT:user/NAME`). Default: the
    /// access key.
    #[serde(default)]
    pub name: Option<String>,
    /// Groups whose policies apply to this user. Default: none.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The user's own access policy (JSON, a built-in name such as `full-access`, or
    /// `{ file = ... }`). Default: none. A user with neither policy nor group has every
    /// permission when it is the configuration's only user (and is logged as such at
    /// start); with several users it has only what bucket policies grant it.
    #[serde(default)]
    pub policy: Option<AccessPolicySource>,
}

impl UserConfig {
    /// The name policies know the user by.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.access_key)
    }
}

impl Anonymous {
    /// As the configuration spells it.
    pub fn name(self) -> &'static str {
        match self {
            Anonymous::None => "none",
            Anonymous::Read => "read",
            Anonymous::ReadWrite => "read-write",
        }
    }
}

/// Who may use a virtual bucket without signing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Anonymous {
    /// Default: every request must be signed.
    #[default]
    None,
    /// Unsigned GET, HEAD and List are allowed.
    Read,
    /// Every operation is allowed unsigned.
    ReadWrite,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketConfig {
    /// Member backends, highest priority first.
    pub members: Vec<String>,
    /// Policy deciding placement and routing. Default `default` (built-in: write to the
    /// first member, read members in order).
    #[serde(default = "default_policy")]
    pub policy: String,
    /// Unsigned access. Default `none`. `read` and `read-write` are shorthands for bucket
    /// policy statements allowing `"Principal": "*"` the reads (`s3:GetObject`,
    /// `s3:ListBucket`, `s3:GetBucketLocation`), or every action, on this bucket.
    #[serde(default)]
    pub anonymous: Anonymous,
    /// The bucket policy (JSON, or `{ file = ... }`), in AWS's language; its resources must
    /// lie inside this bucket. Default: none.
    #[serde(default)]
    pub bucket_policy: Option<AccessPolicySource>,
    /// S3's Block Public Access for this bucket (`{ block_public_policy = true, ... }`),
    /// as PutPublicAccessBlock sets it on a bucket made by CreateBucket. Default: none
    /// (every setting false).
    #[serde(default)]
    pub public_access_block: Option<PublicAccessBlock>,
    /// S3's object ownership: `BucketOwnerEnforced` (ACLs disabled, access is decided by
    /// policies alone), `BucketOwnerPreferred` or `ObjectWriter` (object ACLs enabled:
    /// PutObjectAcl and `x-amz-acl` on writes, kept with the objects on `fs` and `memory`
    /// members). Default `BucketOwnerEnforced`, as S3 gives new buckets.
    #[serde(default)]
    pub object_ownership: ObjectOwnership,
    /// When the policy cannot decide: `fail-open` (built-in default) or `fail-closed`
    /// (503). Default `fail-closed`.
    #[serde(default)]
    pub failure: FailureMode,
    /// Scheduled tiering passes inside `serve`. Default: none (`switchyard tier` runs a
    /// pass on demand).
    #[serde(default)]
    pub tiering: Option<TieringConfig>,
    /// Object versioning, `enabled` or `suspended` (S3's states). Default: none (the
    /// bucket keeps no versions, and PutBucketVersioning on it is refused: the file is
    /// the truth about the buckets it defines). Only for buckets whose members are all
    /// `fs`, `memory`, `azure` or `gcs`, where the gateway keeps the versions itself; an
    /// `s3` member's versioning is its backend bucket's own, read from there.
    #[serde(default)]
    pub versioning: Option<VersioningConfig>,
}

/// `[buckets.NAME] versioning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VersioningConfig {
    Enabled,
    Suspended,
}

/// S3's object ownership of a bucket, by S3's names; whether its ACLs count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum ObjectOwnership {
    /// ACLs are disabled: the bucket owner owns every object, policies alone decide.
    #[default]
    BucketOwnerEnforced,
    /// ACLs count; an object written with `bucket-owner-full-control` is the bucket
    /// owner's, any other its writer's.
    BucketOwnerPreferred,
    /// ACLs count; every object is its writer's.
    ObjectWriter,
}

impl ObjectOwnership {
    /// S3's name.
    pub fn name(self) -> &'static str {
        match self {
            ObjectOwnership::BucketOwnerEnforced => "BucketOwnerEnforced",
            ObjectOwnership::BucketOwnerPreferred => "BucketOwnerPreferred",
            ObjectOwnership::ObjectWriter => "ObjectWriter",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [
            ObjectOwnership::BucketOwnerEnforced,
            ObjectOwnership::BucketOwnerPreferred,
            ObjectOwnership::ObjectWriter,
        ]
        .into_iter()
        .find(|o| o.name() == name)
    }

    pub fn acls_enabled(self) -> bool {
        self != ObjectOwnership::BucketOwnerEnforced
    }
}

/// S3's Block Public Access settings of one bucket. The two ACL settings act on buckets
/// whose object ownership enables ACLs (see [`ObjectOwnership`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PublicAccessBlock {
    /// Refuse requests that set a public ACL. Default false.
    #[serde(default)]
    pub block_public_acls: bool,
    /// Public ACL grants stop counting. Default false.
    #[serde(default)]
    pub ignore_public_acls: bool,
    /// Refuse (403 AccessDenied) a PutBucketPolicy whose policy is public. Default false.
    #[serde(default)]
    pub block_public_policy: bool,
    /// While the bucket's policy is public, it allows nothing to anonymous requests (the
    /// gateway's users keep what it gives them). Default false.
    #[serde(default)]
    pub restrict_public_buckets: bool,
}

/// `[buckets.NAME.tiering]`: a tiering pass every `every`, asking the bucket's policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TieringConfig {
    /// Time between the starts of two passes, the first this long after the engine starts;
    /// a pass due while the previous one still runs is skipped.
    #[serde(with = "humantime_serde")]
    pub every: Duration,
    /// Objects in flight at once. Default 16.
    #[serde(default = "default_tier_concurrency")]
    pub concurrency: usize,
    /// Byte-rate cap for the copies, e.g. `"50MiB/s"`. Default: none.
    #[serde(default)]
    pub bandwidth: Option<String>,
    /// The part of the key space this engine tiers, `I/N`. Default `0/1`.
    #[serde(default)]
    pub shard: Option<String>,
}

fn default_tier_concurrency() -> usize {
    16
}

fn default_policy() -> String {
    "default".to_owned()
}

/// Buckets made by CreateBucket: each becomes a virtual bucket with one member, a
/// sub-location named after the bucket inside this template.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "kebab-case")]
pub enum DynamicBuckets {
    /// One directory per bucket under `root`.
    Fs {
        root: PathBuf,
        #[serde(default)]
        labels: BTreeMap<String, String>,
    },
    /// One in-memory store per bucket (lost at exit; for tests and demos).
    Memory {
        #[serde(default)]
        labels: BTreeMap<String, String>,
    },
    /// A prefix per bucket (`<prefix>/<bucket>/`) inside one S3 bucket: the table is an
    /// `s3` backend's, whose `prefix` is where the buckets' prefixes go.
    S3(S3Backend),
    /// A prefix per bucket inside one Azure container.
    Azure(AzureBackend),
    /// A prefix per bucket inside one GCS bucket.
    Gcs(GcsBackend),
}

impl DynamicBuckets {
    /// The backend holding every bucket of a remote template (its `prefix` the root of
    /// theirs); `None` for `fs` and memory, whose buckets are stores of their own.
    pub fn remote(&self) -> Option<BackendConfig> {
        match self {
            DynamicBuckets::S3(b) => Some(BackendConfig::S3(b.clone())),
            DynamicBuckets::Azure(b) => Some(BackendConfig::Azure(b.clone())),
            DynamicBuckets::Gcs(b) => Some(BackendConfig::Gcs(b.clone())),
            DynamicBuckets::Fs { .. } | DynamicBuckets::Memory { .. } => None,
        }
    }

    /// The `fs` template's root directory.
    pub fn fs_root(&self) -> Option<&Path> {
        match self {
            DynamicBuckets::Fs { root, .. } => Some(root),
            _ => None,
        }
    }
}

/// Network behaviour shared by the remote backend kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// Time allowed to open a connection. Default 5s.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest silence allowed while reading a response (not a cap on transfer time, so
    /// multi-GiB bodies still stream). Default 30s.
    #[serde(default = "default_read_timeout", with = "humantime_serde")]
    pub read_timeout: Duration,
    /// Retries of an idempotent request on a transient error. Default 2.
    #[serde(default = "default_retries")]
    pub max_retries: usize,
    /// Total time spent retrying one request. Default 10s.
    #[serde(default = "default_retry_timeout", with = "humantime_serde")]
    pub retry_timeout: Duration,
    /// How long a backend that failed is tried last. Default 10s.
    #[serde(default = "default_unhealthy_for", with = "humantime_serde")]
    pub unhealthy_for: Duration,
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_read_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_retries() -> usize {
    2
}
fn default_retry_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_unhealthy_for() -> Duration {
    Duration::from_secs(10)
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            connect_timeout: default_connect_timeout(),
            read_timeout: default_read_timeout(),
            max_retries: default_retries(),
            retry_timeout: default_retry_timeout(),
            unhealthy_for: default_unhealthy_for(),
        }
    }
}

/// Settings every backend kind has.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendCommon {
    /// Key prefix inside the bucket/container/directory, without leading or trailing `/`.
    /// Default: none.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Free-form labels handed to policies (`region = "eu"`, `tier = "cold"`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Timeouts, retries and health marking (remote kinds).
    #[serde(default)]
    pub network: NetworkConfig,
}

/// One backend. serde cannot deny unknown fields through `flatten`, so each kind's table
/// is parsed by a strict struct of its own, and the settings all kinds share are collected
/// by [`BackendConfig::common`].
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum BackendConfig {
    S3(S3Backend),
    Azure(AzureBackend),
    Gcs(GcsBackend),
    Fs(FsBackend),
    Memory(MemoryBackend),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Backend {
    pub bucket: String,
    /// Endpoint URL; unset means AWS.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Default `us-east-1`.
    #[serde(default = "default_region")]
    pub region: String,
    #[serde(default)]
    pub access_key_id: Option<Secret>,
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
    #[serde(default)]
    pub session_token: Option<Secret>,
    /// Use `bucket.endpoint` URLs. Default false (path style).
    #[serde(default)]
    pub virtual_hosted_style: bool,
    /// Allow `http://` endpoints. Default false.
    #[serde(default)]
    pub allow_http: bool,
    /// PEM file of CA certificates trusted for the endpoint's TLS, in addition to the
    /// system's (a private CA). Default: none.
    #[serde(default)]
    pub ca_bundle: Option<PathBuf>,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub network: NetworkConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureBackend {
    /// Storage account name.
    pub account: String,
    pub container: String,
    #[serde(default)]
    pub access_key: Option<Secret>,
    /// Blob endpoint URL (e.g. Azurite's `http://127.0.0.1:10000/devstoreaccount1`);
    /// unset means the public cloud.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Talk to Azurite with its well-known development account. Default false.
    #[serde(default)]
    pub use_emulator: bool,
    /// Allow `http://` endpoints. Default false.
    #[serde(default)]
    pub allow_http: bool,
    /// PEM file of CA certificates trusted for the endpoint's TLS, in addition to the
    /// system's (a private CA). Default: none.
    #[serde(default)]
    pub ca_bundle: Option<PathBuf>,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub network: NetworkConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcsBackend {
    pub bucket: String,
    /// Path of a service-account key file. Unset: application default credentials.
    #[serde(default)]
    pub service_account_path: Option<PathBuf>,
    /// Service-account key JSON, inline or from the environment.
    #[serde(default)]
    pub service_account_key: Option<Secret>,
    /// Base URL of the JSON/XML API (for emulators). Unset: Google's.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Allow `http://` endpoints. Default false.
    #[serde(default)]
    pub allow_http: bool,
    /// PEM file of CA certificates trusted for the endpoint's TLS, in addition to the
    /// system's (a private CA). Default: none.
    #[serde(default)]
    pub ca_bundle: Option<PathBuf>,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub network: NetworkConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsBackend {
    /// Directory holding the objects; created if missing.
    pub root: PathBuf,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryBackend {
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl BackendConfig {
    /// The same backend one level down: `child` below its prefix (a bucket of a remote
    /// `[dynamic_buckets]` template).
    pub fn below(&self, child: &str) -> BackendConfig {
        let mut out = self.clone();
        let prefix = match &mut out {
            BackendConfig::S3(b) => &mut b.prefix,
            BackendConfig::Azure(b) => &mut b.prefix,
            BackendConfig::Gcs(b) => &mut b.prefix,
            BackendConfig::Fs(b) => &mut b.prefix,
            BackendConfig::Memory(b) => &mut b.prefix,
        };
        *prefix = Some(match prefix.as_deref().filter(|p| !p.is_empty()) {
            Some(p) => format!("{p}/{child}"),
            None => child.to_owned(),
        });
        out
    }

    pub fn kind_name(&self) -> &'static str {
        match self {
            BackendConfig::S3(_) => "s3",
            BackendConfig::Azure(_) => "azure",
            BackendConfig::Gcs(_) => "gcs",
            BackendConfig::Fs(_) => "fs",
            BackendConfig::Memory(_) => "memory",
        }
    }

    /// Every secret of this backend with its field name, so that validation can resolve
    /// them all (a missing environment variable is found by `check-config`).
    pub fn secrets(&self) -> Vec<(&'static str, &Secret)> {
        let fields: Vec<(&'static str, &Option<Secret>)> = match self {
            BackendConfig::S3(b) => vec![
                ("access_key_id", &b.access_key_id),
                ("secret_access_key", &b.secret_access_key),
                ("session_token", &b.session_token),
            ],
            BackendConfig::Azure(b) => vec![("access_key", &b.access_key)],
            BackendConfig::Gcs(b) => vec![("service_account_key", &b.service_account_key)],
            BackendConfig::Fs(_) | BackendConfig::Memory(_) => vec![],
        };
        let out: Vec<(&'static str, &Secret)> = fields
            .into_iter()
            .filter_map(|(n, s)| s.as_ref().map(|s| (n, s)))
            .collect();
        out
    }

    /// The CA bundle trusted for the backend's endpoint (remote kinds).
    pub fn ca_bundle(&self) -> Option<&Path> {
        match self {
            BackendConfig::S3(b) => b.ca_bundle.as_deref(),
            BackendConfig::Azure(b) => b.ca_bundle.as_deref(),
            BackendConfig::Gcs(b) => b.ca_bundle.as_deref(),
            BackendConfig::Fs(_) | BackendConfig::Memory(_) => None,
        }
    }

    pub fn common(&self) -> BackendCommon {
        let (prefix, labels, network) = match self {
            BackendConfig::S3(b) => (&b.prefix, &b.labels, b.network.clone()),
            BackendConfig::Azure(b) => (&b.prefix, &b.labels, b.network.clone()),
            BackendConfig::Gcs(b) => (&b.prefix, &b.labels, b.network.clone()),
            BackendConfig::Fs(b) => (&b.prefix, &b.labels, NetworkConfig::default()),
            BackendConfig::Memory(b) => (&b.prefix, &b.labels, NetworkConfig::default()),
        };
        BackendCommon {
            prefix: prefix.clone(),
            labels: labels.clone(),
            network,
        }
    }
}

impl Config {
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Self::from_toml_with(text, Secrets::Resolve)
    }

    /// Parses and validates `text`, reading its secrets as `secrets` says.
    pub fn from_toml_with(text: &str, secrets: Secrets) -> Result<Self, ConfigError> {
        let config = parse::parse(text).map_err(|e| ConfigError::Parse(Box::new(e)))?;
        config.validate_with(secrets)?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with(path, Secrets::Resolve)
    }

    /// Reads, parses and validates the file at `path`; a parse error names the file.
    pub fn load_with(path: &Path, secrets: Secrets) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_with(&text, secrets).map_err(|e| match e {
            ConfigError::Parse(mut p) => {
                p.file = Some(path.to_owned());
                ConfigError::Parse(p)
            }
            other => other,
        })
    }

    /// The configuration used when `serve` is given no file: one fs-backed bucket per
    /// directory under `data_dir`, created with CreateBucket.
    pub fn embedded_default(
        listen: SocketAddr,
        data_dir: PathBuf,
        access_key: String,
        secret_key: String,
    ) -> Self {
        Config {
            version: CONFIG_VERSION,
            server: ServerConfig {
                listen,
                ..ServerConfig::default()
            },
            users: vec![UserConfig {
                access_key,
                secret_key: Secret::Inline(secret_key),
                // Any access key works here, whatever characters it has.
                name: Some("default".to_owned()),
                groups: Vec::new(),
                policy: None,
            }],
            backends: BTreeMap::new(),
            buckets: BTreeMap::new(),
            dynamic_buckets: Some(DynamicBuckets::Fs {
                root: data_dir,
                labels: BTreeMap::new(),
            }),
            plugins: PluginsConfig::default(),
            policies: BTreeMap::new(),
            groups: BTreeMap::new(),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_with(Secrets::Resolve)
    }

    /// Every check of the configuration, all run: the error is the one found, or
    /// [`ConfigError::Several`] with each in turn. `secrets` says whether secrets from the
    /// environment are read (and so checked).
    pub fn validate_with(&self, secrets: Secrets) -> Result<(), ConfigError> {
        let mut p = Problems::default();
        self.check_server(secrets, &mut p);
        if self.plugins.memory_limit < 1024 * 1024 {
            p.add("plugins.memory_limit", "must be at least 1 MiB");
        }
        if self.plugins.timeout.is_zero() {
            p.add("plugins.timeout", "must be more than zero");
        }
        for (name, policy) in &self.policies {
            p.check(check_name(&format!("policies.{name}"), name));
            p.check(check_policy_headers(
                &format!("policies.{name}.headers"),
                &policy.headers,
            ));
        }
        self.check_users(secrets, &mut p);
        for name in self.groups.keys() {
            p.check(check_name(&format!("groups.{name}"), name));
        }
        for (name, backend) in &self.backends {
            let field = format!("backends.{name}");
            p.check(check_name(&field, name));
            validate_backend(&field, backend, secrets, &mut p);
        }
        if let Some(remote) = self
            .dynamic_buckets
            .as_ref()
            .and_then(DynamicBuckets::remote)
        {
            validate_backend("dynamic_buckets", &remote, secrets, &mut p);
        }
        self.check_buckets(&mut p);
        self.collect_access_policies(&mut p);
        self.check_overlaps(&mut p);
        p.into_result()
    }

    /// Every secret given as `{ env = "VAR" }`: its field and the variable.
    pub fn env_secrets(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut note = |field: String, secret: &Secret| {
            if let Some(var) = secret.env_var() {
                out.push((field, var.to_owned()));
            }
        };
        if let Some(token) = &self.server.admin_token {
            note("server.admin_token".to_owned(), token);
        }
        for (i, user) in self.users.iter().enumerate() {
            note(format!("users[{i}].secret_key"), &user.secret_key);
        }
        for (name, backend) in &self.backends {
            for (key, secret) in backend.secrets() {
                note(format!("backends.{name}.{key}"), secret);
            }
        }
        if let Some(remote) = self
            .dynamic_buckets
            .as_ref()
            .and_then(DynamicBuckets::remote)
        {
            for (key, secret) in remote.secrets() {
                note(format!("dynamic_buckets.{key}"), secret);
            }
        }
        out
    }

    fn check_server(&self, secrets: Secrets, p: &mut Problems) {
        if self.version != CONFIG_VERSION {
            p.add(
                "version",
                format!(
                    "unsupported version {} (this build reads version {CONFIG_VERSION})",
                    self.version
                ),
            );
        }
        let server = &self.server;
        if server.part_size < 5 * 1024 * 1024 {
            p.add("server.part_size", "must be at least 5 MiB (5242880)");
        } else if server.part_size > server.max_put_size {
            p.add("server.part_size", "must not exceed server.max_put_size");
        }
        if server.read_buffers < 1 << 20 {
            p.add("server.read_buffers", "must be at least 1 MiB (1048576)");
        }
        // A deadline is an Instant plus this: an unbounded one would overflow the clock.
        if server.client_timeout.is_zero() || server.client_timeout > Duration::from_secs(24 * 3600)
        {
            p.add(
                "server.client_timeout",
                "must be more than zero and at most 24h",
            );
        }
        if let Some(token) = &server.admin_token {
            if server.admin_listen.is_none() {
                p.add(
                    "server.admin_token",
                    "needs server.admin_listen (the admin API's address)",
                );
            }
            let value = p
                .check(token.checked("server.admin_token", secrets))
                .flatten();
            if value.is_some_and(|t| t.len() < 16) {
                p.add("server.admin_token", "must be at least 16 characters");
            }
        }
        if server.admin_auth == AdminAuth::All && server.admin_token.is_none() {
            p.add(
                "server.admin_auth",
                "\"all\" needs server.admin_token (the bearer token those requests must carry)",
            );
        }
        // Port 0 asks for any free port, so two of them never collide.
        if server
            .admin_listen
            .is_some_and(|a| a.port() != 0 && a == server.listen)
        {
            p.add(
                "server.admin_listen",
                "is server.listen's address; the admin listener needs one of its own",
            );
        }
        if let Some(tls) = &server.tls {
            validate_tls(server, tls, p);
        }
    }

    fn check_users(&self, secrets: Secrets, p: &mut Problems) {
        let mut keys = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        for (i, user) in self.users.iter().enumerate() {
            if user.access_key.is_empty() {
                p.add(format!("users[{i}].access_key"), "must not be empty");
            } else if !keys.insert(&user.access_key) {
                p.add(format!("users[{i}].access_key"), "duplicate access key");
            }
            let field = format!("users[{i}].secret_key");
            let secret = p.check(user.secret_key.checked(&field, secrets)).flatten();
            if secret.is_some_and(|s| s.is_empty()) {
                p.add(field, "must not be empty");
            }
            for (j, g) in user.groups.iter().enumerate() {
                if !self.groups.contains_key(g) {
                    p.add(
                        format!("users[{i}].groups[{j}]"),
                        format!("unknown group {g:?}"),
                    );
                }
            }
            let name = user.name();
            // Names appear in ARNs (`arn:aws:iam::ACCOUNT:user/NAME`) and policy variables.
            let ok = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
            if !ok {
                // An empty access key is reported above, and is the name too.
                if !(user.name.is_none() && user.access_key.is_empty()) {
                    p.add(
                        format!("users[{i}].name"),
                        "must be 1-64 characters of [A-Za-z0-9+=,.@_-] (as IAM user names); set `name` when the access key has others",
                    );
                }
            } else if !names.insert(name) {
                p.add(
                    format!("users[{i}].name"),
                    format!("duplicate user name {name:?}"),
                );
            }
        }
    }

    fn check_buckets(&self, p: &mut Problems) {
        for (name, bucket) in &self.buckets {
            let field = format!("buckets.{name}");
            if !s3s::path::check_bucket_name(name) {
                p.add(&field, "is not a valid S3 bucket name");
            }
            if bucket.members.is_empty() {
                p.add(format!("{field}.members"), "must name at least one backend");
            }
            let mut seen = std::collections::HashSet::new();
            for (i, member) in bucket.members.iter().enumerate() {
                if !self.backends.contains_key(member) {
                    p.add(
                        format!("{field}.members[{i}]"),
                        format!("unknown backend {member:?}"),
                    );
                } else if !seen.insert(member) {
                    p.add(
                        format!("{field}.members[{i}]"),
                        format!("{member:?} listed twice"),
                    );
                }
            }
            if bucket.versioning.is_some() {
                for (i, member) in bucket.members.iter().enumerate() {
                    if let Some(kind) = self.backends.get(member).map(BackendConfig::kind_name)
                        && !matches!(kind, "fs" | "memory" | "azure" | "gcs")
                    {
                        p.add(
                            format!("{field}.versioning"),
                            format!("member {i} ({member:?}) is of kind {kind}: an S3 member's versioning is its backend bucket's own (PutBucketVersioning through the gateway sets it there); the file sets it for fs, memory, azure and gcs members only"),
                        );
                    }
                }
            }
            if let Some(t) = &bucket.tiering {
                if t.every < Duration::from_secs(1) {
                    p.add(format!("{field}.tiering.every"), "must be at least 1s");
                }
                if t.concurrency == 0 {
                    p.add(format!("{field}.tiering.concurrency"), "must be at least 1");
                }
                if let Some(Err(e)) = t.bandwidth.as_deref().map(crate::mover::parse_rate) {
                    p.add(format!("{field}.tiering.bandwidth"), e);
                }
                if let Some(Err(e)) = t.shard.as_deref().map(crate::mover::Shard::parse) {
                    p.add(format!("{field}.tiering.shard"), e);
                }
            }
            if bucket.policy != "default" {
                let named = p.check(check_name(&format!("{field}.policy"), &bucket.policy));
                if named.is_some() && self.plugins.dir.is_none() {
                    p.add(
                        format!("{field}.policy"),
                        format!(
                            "policy {:?} needs [plugins] dir (only \"default\" is built in)",
                            bucket.policy
                        ),
                    );
                }
            }
        }
    }

    /// Parses every access policy of the configuration: users' and groups' identity
    /// policies, and buckets' policies with the `anonymous` shorthand folded in. The error
    /// names the field of each one refused.
    pub fn access_policies(&self) -> Result<AccessPolicies, ConfigError> {
        let mut p = Problems::default();
        let policies = self.collect_access_policies(&mut p);
        p.into_result().map(|()| policies)
    }

    /// The access policies that parse, with an error noted for each that does not.
    fn collect_access_policies(&self, p: &mut Problems) -> AccessPolicies {
        use crate::iam::{PolicyDocument, PolicyKind};
        let parse = |field: &str, source: &AccessPolicySource, kind: PolicyKind| {
            let json = source.json(field)?;
            PolicyDocument::parse(&json, kind)
                .map(std::sync::Arc::new)
                .map_err(|e| invalid(field, e.to_string()))
        };
        let mut groups = BTreeMap::new();
        for (name, g) in &self.groups {
            let field = format!("groups.{name}.policy");
            if let Some(doc) = p.check(parse(&field, &g.policy, PolicyKind::Identity)) {
                groups.insert(name.clone(), doc);
            }
        }
        let only_user = self.users.len() == 1;
        let mut users = Vec::with_capacity(self.users.len());
        for (i, u) in self.users.iter().enumerate() {
            let mut identity = Vec::new();
            let mut unrestricted = false;
            if let Some(policy) = &u.policy {
                let field = format!("users[{i}].policy");
                if let Some(doc) = p.check(parse(&field, policy, PolicyKind::Identity)) {
                    identity.push((format!("user {}", u.name()), doc));
                }
                unrestricted |= policy.is_full_access();
            }
            for g in &u.groups {
                if let Some(doc) = groups.get(g) {
                    identity.push((format!("group {g}"), doc.clone()));
                    unrestricted |= self.groups[g].policy.is_full_access();
                }
            }
            // Today's behaviour for the configuration with one user and no policies.
            let implicit = only_user && u.policy.is_none() && u.groups.is_empty();
            if implicit {
                let full = AccessPolicySource::Text("full-access".into());
                if let Some(doc) = p.check(parse("", &full, PolicyKind::Identity)) {
                    identity.push((format!("user {} (the only user)", u.name()), doc));
                }
                unrestricted = true;
            }
            users.push(UserAccess {
                identity,
                unrestricted,
                implicit,
            });
        }
        let mut buckets = BTreeMap::new();
        for (name, b) in &self.buckets {
            let field = format!("buckets.{name}.bucket_policy");
            let configured = match b.bucket_policy.as_ref().map(|s| s.json(&field)) {
                None => Some(None),
                Some(r) => p.check(r).map(Some),
            };
            let doc = configured.and_then(|configured| {
                let json = p.check(
                    with_anonymous(configured.as_deref(), name, b.anonymous)
                        .map_err(|e| invalid(&field, e)),
                )??;
                let kind = PolicyKind::Bucket {
                    bucket: name.clone(),
                };
                p.check(
                    PolicyDocument::parse(&json, kind)
                        .map(std::sync::Arc::new)
                        .map_err(|e| invalid(&field, e.to_string())),
                )
            });
            // As AWS refuses to store a public policy under BlockPublicPolicy.
            if let (Some(d), Some(block)) = (&doc, &b.public_access_block)
                && block.block_public_policy
                && d.is_public()
            {
                p.check::<()>(Err(invalid(
                    format!("buckets.{name}.public_access_block"),
                    "block_public_policy is set, but the bucket's policy (bucket_policy, or anonymous) is public",
                )));
            }
            buckets.insert(name.clone(), doc);
        }
        AccessPolicies { users, buckets }
    }

    /// Refuses two buckets with different access whose members can see each other's
    /// objects (the same location, or one's prefix inside the other's): otherwise the
    /// more open bucket serves the other's objects. A configured bucket that reaches into
    /// the `[dynamic_buckets]` root (or holds it) is refused whatever its access: the
    /// buckets there get their policies through the API, so nothing keeps them alike.
    fn check_overlaps(&self, p: &mut Problems) {
        let access = |b: &BucketConfig| {
            (
                b.anonymous,
                b.bucket_policy.as_ref().map(|p| format!("{p:?}")),
            )
        };
        // (what, bucket, access, where): access is the anonymous level and the policy.
        type Place<'a> = (String, &'a str, (Anonymous, Option<String>), Location);
        let mut places: Vec<Place<'_>> = Vec::new();
        for (name, b) in &self.buckets {
            for m in &b.members {
                if let Some(loc) = self.backends.get(m).and_then(location) {
                    places.push((
                        format!("bucket {name:?} (member {m:?})"),
                        name,
                        access(b),
                        loc,
                    ));
                }
            }
        }
        let dynamic = match &self.dynamic_buckets {
            Some(DynamicBuckets::Fs { root, .. }) => Some(Location {
                store: "fs".into(),
                path: dir_path(root),
            }),
            Some(t) => t.remote().as_ref().and_then(location),
            None => None,
        };
        if let Some(loc) = dynamic {
            places.push((
                "[dynamic_buckets]".to_owned(),
                "",
                (Anonymous::None, None),
                loc,
            ));
        }
        for (i, a) in places.iter().enumerate() {
            for b in &places[i + 1..] {
                if a.1 == b.1 || !a.3.overlaps(&b.3) {
                    continue;
                }
                // The dynamic root is pushed last: when it is one of the two, it is `b`.
                if b.1.is_empty() {
                    p.add(
                        format!("buckets.{}", a.1),
                        format!(
                            "{} and [dynamic_buckets] (root {}) reach the same objects ({} {}): each directory or prefix there is a bucket of the API's (CreateBucket, DeleteBucket) whose policy is set through the API, so nothing keeps its access like this one's. Give [dynamic_buckets] a root of its own.",
                            a.0, b.3.path, a.3.store, a.3.path,
                        ),
                    );
                } else if a.2 != b.2 {
                    p.add(
                        format!("buckets.{}", a.1),
                        format!(
                            "{} and {} reach the same objects ({} {}) but their access differs (anonymous {} / {}, bucket policy {} / {}): the more open one would serve the other's objects. Give them separate roots, buckets or prefixes.",
                            a.0,
                            b.0,
                            a.3.store,
                            a.3.path,
                            a.2.0.name(),
                            b.2.0.name(),
                            if a.2.1.is_some() { "set" } else { "none" },
                            if b.2.1.is_some() { "set" } else { "none" },
                        ),
                    );
                }
            }
        }
    }
}

/// One backend's table (`field` names it in errors): the checks that need no I/O but
/// reading its secrets (as `secrets` says) and CA bundle.
fn validate_backend(field: &str, backend: &BackendConfig, secrets: Secrets, p: &mut Problems) {
    let common = backend.common();
    if let Some(prefix) = &common.prefix {
        if prefix.starts_with('/') || prefix.ends_with('/') || prefix.contains("//") {
            p.add(
                format!("{field}.prefix"),
                "must not start or end with '/' nor contain '//'",
            );
        } else if let Err(e) = object_store::path::Path::parse(prefix) {
            p.add(format!("{field}.prefix"), e.to_string());
        }
    }
    for (name, secret) in backend.secrets() {
        p.check(secret.checked(&format!("{field}.{name}"), secrets));
    }
    if let Some(path) = backend.ca_bundle() {
        // Read now: a bundle that is missing or holds no certificate would
        // otherwise show only as a backend that fails every handshake.
        if let Err(e) = crate::tls::read_ca_bundle(path) {
            p.add(format!("{field}.ca_bundle"), e.to_string());
        }
    }
    let mut not_empty = |key: &str, value: &str| {
        if value.is_empty() {
            p.add(format!("{field}.{key}"), "must not be empty");
        }
    };
    let endpoint = match backend {
        BackendConfig::S3(S3Backend {
            bucket, endpoint, ..
        })
        | BackendConfig::Gcs(GcsBackend {
            bucket, endpoint, ..
        }) => {
            not_empty("bucket", bucket);
            endpoint.as_deref()
        }
        BackendConfig::Azure(AzureBackend {
            account,
            container,
            endpoint,
            ..
        }) => {
            not_empty("account", account);
            not_empty("container", container);
            endpoint.as_deref()
        }
        BackendConfig::Fs(FsBackend { root, .. }) => {
            if root.as_os_str().is_empty() {
                p.add(format!("{field}.root"), "must not be empty");
            }
            None
        }
        BackendConfig::Memory(_) => None,
    };
    p.check(check_url(&format!("{field}.endpoint"), endpoint));
}

/// `[server.tls]`. The certificate files themselves are read when the engine starts (they
/// are often provisioned next to the engine, not where the configuration is checked).
fn validate_tls(server: &ServerConfig, tls: &TlsConfig, p: &mut Problems) {
    for (name, path) in [("cert", &tls.cert), ("key", &tls.key)] {
        if path.as_os_str().is_empty() {
            p.add(format!("server.tls.{name}"), "must not be empty");
        }
    }
    // Port 0 asks for any free port, so two of them never collide.
    if let Some(listen) = tls.listen.filter(|l| l.port() != 0) {
        if listen == server.listen {
            p.add(
                "server.tls.listen",
                "is server.listen's address; leave it out to serve HTTPS on server.listen",
            );
        } else if Some(listen) == server.admin_listen {
            p.add("server.tls.listen", "is server.admin_listen's address");
        }
    }
}

/// Parses a duration as the configuration file writes them: `50ms`, `2s`, `1m 30s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime_serde::re::humantime::parse_duration(s.trim()).map_err(|e| format!("{s:?}: {e}"))
}

/// Parses a number of bytes such as `64MiB`, `200MB`, `1.5 GiB` or `4096`: binary units
/// `KiB`, `MiB`, `GiB`, decimal `k`/`KB`, `M`/`MB`, `G`/`GB`, any case. At least one byte.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a size such as 64MiB"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("{s:?}: unknown unit {other:?}")),
    };
    let bytes = n * mult;
    if !(bytes >= 1.0 && bytes.is_finite()) {
        return Err(format!("{s:?}: must be at least 1 byte"));
    }
    Ok(bytes as u64)
}

/// Backend names travel inside upload ids and continuation tokens, so they are kept to a
/// small alphabet.
fn check_name(field: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            "name must be 1-63 characters of [A-Za-z0-9_-]",
        ))
    }
}

fn check_url(field: &str, url: Option<&str>) -> Result<(), ConfigError> {
    if let Some(url) = url {
        let parsed = url::Url::parse(url).map_err(|e| invalid(field, format!("not a URL: {e}")))?;
        if parsed.scheme() != "http" && parsed.scheme() != "https" {
            return Err(invalid(field, "scheme must be http or https"));
        }
    }
    Ok(())
}

/// Every access policy of a configuration, parsed (see [`Config::access_policies`]).
#[derive(Debug, Clone)]
pub struct AccessPolicies {
    /// In the order of `users`.
    pub users: Vec<UserAccess>,
    /// Each configured bucket's policy, the `anonymous` shorthand folded in.
    pub buckets: BTreeMap<String, Option<std::sync::Arc<crate::iam::PolicyDocument>>>,
}

/// One user's identity policies, labelled for decisions (`user alice`, `group readers`).
#[derive(Debug, Clone)]
pub struct UserAccess {
    pub identity: Vec<(String, std::sync::Arc<crate::iam::PolicyDocument>)>,
    /// Holds the built-in `full-access` (as AWS's account root, it may always read, change
    /// and delete bucket policies, so a policy cannot lock everyone out).
    pub unrestricted: bool,
    /// Unrestricted only because it is the configuration's only user and has no policy.
    pub implicit: bool,
}

/// A bucket policy's JSON with the statement the `anonymous` shorthand stands for added.
fn with_anonymous(
    configured: Option<&str>,
    bucket: &str,
    anonymous: Anonymous,
) -> Result<Option<String>, String> {
    let actions = match anonymous {
        Anonymous::None => return Ok(configured.map(str::to_owned)),
        Anonymous::Read => {
            serde_json::json!(["s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"])
        }
        Anonymous::ReadWrite => serde_json::json!("s3:*"),
    };
    let statement = serde_json::json!({
        "Sid": "SwitchyardAnonymous",
        "Effect": "Allow",
        "Principal": "*",
        "Action": actions,
        "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")],
    });
    let mut doc = match configured {
        Some(json) => {
            serde_json::from_str::<serde_json::Value>(json).map_err(|e| format!("not JSON: {e}"))?
        }
        None => serde_json::json!({"Version": "2012-10-17", "Statement": []}),
    };
    let Some(obj) = doc.as_object_mut() else {
        return Err("a policy is a JSON object".into());
    };
    let statements = match obj.remove("Statement") {
        Some(serde_json::Value::Array(a)) => a,
        Some(one) => vec![one],
        None => Vec::new(),
    };
    let mut statements = statements;
    statements.push(statement);
    obj.insert("Statement".into(), serde_json::Value::Array(statements));
    Ok(Some(doc.to_string()))
}

/// Where a backend keeps objects, for the overlap check: a store (kind and container) and
/// a path inside it, ending in `/` when not empty.
#[derive(Debug)]
struct Location {
    store: String,
    path: String,
}

impl Location {
    fn overlaps(&self, other: &Location) -> bool {
        self.store == other.store
            && (self.path.starts_with(&other.path) || other.path.starts_with(&self.path))
    }
}

fn dir_path(p: &Path) -> String {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
    // Resolve what exists (symlinks), keep the rest as written.
    let abs = abs.canonicalize().unwrap_or(abs);
    let mut s = abs.display().to_string();
    if !s.ends_with('/') {
        s.push('/');
    }
    s
}

fn key_path(prefix: &Option<String>) -> String {
    match prefix.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => format!("{p}/"),
        None => String::new(),
    }
}

fn location(b: &BackendConfig) -> Option<Location> {
    let (store, path) = match b {
        BackendConfig::Fs(f) => {
            let root = match f.prefix.as_deref().filter(|p| !p.is_empty()) {
                Some(p) => f.root.join(p),
                None => f.root.clone(),
            };
            ("fs".to_owned(), dir_path(&root))
        }
        BackendConfig::S3(s) => (
            format!(
                "s3 {} bucket {}",
                s.endpoint.as_deref().unwrap_or("aws"),
                s.bucket
            ),
            key_path(&s.prefix),
        ),
        BackendConfig::Azure(a) => (
            format!(
                "azure {} container {}",
                a.endpoint.as_deref().unwrap_or(&a.account),
                a.container
            ),
            key_path(&a.prefix),
        ),
        BackendConfig::Gcs(g) => (
            format!(
                "gcs {} bucket {}",
                g.endpoint.as_deref().unwrap_or("google"),
                g.bucket
            ),
            key_path(&g.prefix),
        ),
        // Each memory backend is a store of its own.
        BackendConfig::Memory(_) => return None,
    };
    Some(Location { store, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::from_toml(text).unwrap_err().to_string()
    }

    #[test]
    fn minimal_config_parses() {
        let c = Config::from_toml(
            r#"
version = 1
[backends.a]
kind = "memory"
[buckets.bkt]
members = ["a"]
"#,
        )
        .unwrap();
        assert_eq!(c.server.listen.port(), 9000);
        assert_eq!(c.buckets["bkt"].policy, "default");
    }

    /// A policy sees the headers it names, never credentials, and only a few.
    #[test]
    fn policy_headers_are_checked() {
        let with = |h: &str| {
            Config::from_toml(&format!(
                "version = 1\n[plugins]\ndir = \"/tmp\"\n[policies.p]\nheaders = {h}\n[backends.a]\nkind = \"memory\"\n[buckets.bkt]\nmembers = [\"a\"]\npolicy = \"p\"\n"
            ))
        };
        assert_eq!(
            with(r#"["x-tenant", "user-agent"]"#).unwrap().policies["p"].headers,
            ["x-tenant", "user-agent"]
        );
        for (bad, says) in [
            (r#"["authorization"]"#, "credentials"),
            (r#"["x-amz-security-token"]"#, "credentials"),
            (r#"["X-Tenant"]"#, "lower-case"),
            (r#"["bad header"]"#, "lower-case"),
            (r#"[""]"#, "lower-case"),
        ] {
            let e = with(bad).unwrap_err().to_string();
            assert!(
                e.starts_with("policies.p.headers: ") && e.contains(says),
                "{bad}: {e}"
            );
        }
        let many: Vec<String> = (0..17).map(|i| format!("\"x-h{i}\"")).collect();
        let e = with(&format!("[{}]", many.join(",")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("at most 16"), "{e}");
    }

    #[test]
    fn unknown_fields_are_named() {
        let e = err("version = 1\n[server]\nlisten = \"127.0.0.1:1\"\nlistne = 3\n");
        assert!(e.contains("listne"), "{e}");
        let e = err("version = 1\n[backends.a]\nkind = \"fs\"\nroot = \"x\"\nrooot = 1\n");
        assert!(e.contains("rooot"), "{e}");
    }

    #[test]
    fn bad_references_name_the_field() {
        let e = err("version = 1\n[buckets.bkt]\nmembers = [\"nope\"]\n");
        assert_eq!(e, "buckets.bkt.members[0]: unknown backend \"nope\"");
        let e = err("version = 2\n");
        assert!(e.starts_with("version: unsupported version 2"), "{e}");
        for bad in ["0s", "25h"] {
            let e = err(&format!(
                "version = 1\n[server]\nclient_timeout = {bad:?}\n"
            ));
            assert!(e.starts_with("server.client_timeout: must be"), "{e}");
        }
        let e = err("version = 1\n[server]\nread_buffers = 65536\n");
        assert_eq!(e, "server.read_buffers: must be at least 1 MiB (1048576)");
        let e = err(
            "version = 1\n[backends.a]\nkind = \"memory\"\n[buckets.B_ad]\nmembers = [\"a\"]\n",
        );
        assert!(e.starts_with("buckets.B_ad:"), "{e}");
    }

    #[test]
    fn the_admin_listener_has_an_address_of_its_own() {
        let e = err(
            "version = 1\n[server]\nlisten = \"127.0.0.1:9000\"\nadmin_listen = \"127.0.0.1:9000\"\n",
        );
        assert_eq!(
            e,
            "server.admin_listen: is server.listen's address; the admin listener needs one of its own"
        );
        for ok in [
            "version = 1\n[server]\nlisten = \"127.0.0.1:9000\"\nadmin_listen = \"127.0.0.1:9090\"\n",
            "version = 1\n[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n",
        ] {
            Config::from_toml(ok).unwrap();
        }
    }

    #[test]
    fn admin_auth_all_needs_a_token() {
        let c =
            Config::from_toml("version = 1\n[server]\nadmin_listen = \"127.0.0.1:0\"\n").unwrap();
        assert_eq!(c.server.admin_auth, AdminAuth::Writes);
        let e =
            err("version = 1\n[server]\nadmin_listen = \"127.0.0.1:0\"\nadmin_auth = \"all\"\n");
        assert_eq!(
            e,
            "server.admin_auth: \"all\" needs server.admin_token (the bearer token those requests must carry)"
        );
        let e = err("version = 1\n[server]\nadmin_auth = \"reads\"\n");
        assert!(e.contains("unknown variant `reads`"), "{e}");
        let c = Config::from_toml(
            "version = 1\n[server]\nadmin_listen = \"127.0.0.1:0\"\nadmin_auth = \"all\"\nadmin_token = \"0123456789abcdef\"\n",
        )
        .unwrap();
        assert_eq!(c.server.admin_auth, AdminAuth::All);
    }

    #[test]
    fn tls_settings_are_checked() {
        let c = Config::from_toml("version = 1\n[server.tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n")
            .unwrap();
        let tls = c.server.tls.unwrap();
        assert!(tls.admin && tls.listen.is_none());
        let e =
            err("version = 1\n[server.tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\nlisten_on = 1\n");
        assert!(e.contains("listen_on"), "{e}");
        let e = err("version = 1\n[server.tls]\ncert = \"c.pem\"\n");
        assert!(e.contains("missing field `key`"), "{e}");
        let e = err("version = 1\n[server.tls]\ncert = \"\"\nkey = \"k.pem\"\n");
        assert_eq!(e, "server.tls.cert: must not be empty");
        let e = err(
            "version = 1\n[server]\nlisten = \"127.0.0.1:9443\"\n[server.tls]\ncert = \"c\"\nkey = \"k\"\nlisten = \"127.0.0.1:9443\"\n",
        );
        assert!(
            e.starts_with("server.tls.listen: is server.listen's address"),
            "{e}"
        );
        // Port 0 is any free port: two of them are two listeners.
        Config::from_toml(
            "version = 1\n[server]\nlisten = \"127.0.0.1:0\"\n[server.tls]\ncert = \"c\"\nkey = \"k\"\nlisten = \"127.0.0.1:0\"\n",
        )
        .unwrap();
    }

    #[test]
    fn ca_bundles_are_read_at_load() {
        let path = std::env::temp_dir().join(format!("switchyard-ca-{}.pem", std::process::id()));
        let with = |kind: &str| {
            let extra = match kind {
                "s3" => "bucket = \"b\"",
                "azure" => "account = \"a\"\ncontainer = \"c\"",
                _ => "bucket = \"b\"",
            };
            err(&format!(
                "version = 1\n[backends.x]\nkind = \"{kind}\"\n{extra}\nca_bundle = {:?}\n",
                path.display().to_string()
            ))
        };
        for kind in ["s3", "azure", "gcs"] {
            let e = with(kind);
            assert!(
                e.starts_with(&format!(
                    "backends.x.ca_bundle: cannot read {}",
                    path.display()
                )),
                "{e}"
            );
        }
        std::fs::write(&path, "no certificates here\n").unwrap();
        let e = with("gcs");
        assert_eq!(
            e,
            format!(
                "backends.x.ca_bundle: {}: holds no certificate (no -----BEGIN CERTIFICATE----- block)",
                path.display()
            )
        );
        let _ = std::fs::remove_file(&path);
        let e = err("version = 1\n[backends.x]\nkind = \"fs\"\nroot = \"r\"\nca_bundle = \"x\"\n");
        assert!(e.contains("unknown field `ca_bundle`"), "{e}");
    }

    /// A configuration of `private` (no anonymous access) over backend `p` and `open`
    /// (`open_access`) over backend `o`; `extra` adds top-level tables.
    fn pair(p: &str, o: &str, open_access: &str, extra: &str) -> String {
        format!(
            "version = 1\n{extra}\n[backends.p]\n{p}\n[backends.o]\n{o}\n[buckets.private]\nmembers = [\"p\"]\n[buckets.open]\nmembers = [\"o\"]\n{open_access}\n"
        )
    }

    fn fs(root: &str, prefix: Option<&str>) -> String {
        let prefix = prefix
            .map(|p| format!("prefix = {p:?}\n"))
            .unwrap_or_default();
        format!("kind = \"fs\"\nroot = {root:?}\n{prefix}")
    }

    fn s3(endpoint: &str, bucket: &str, prefix: Option<&str>) -> String {
        let prefix = prefix
            .map(|p| format!("prefix = {p:?}\n"))
            .unwrap_or_default();
        format!(
            "kind = \"s3\"\nbucket = {bucket:?}\nendpoint = {endpoint:?}\nallow_http = true\n{prefix}"
        )
    }

    #[test]
    fn buckets_with_different_access_may_not_share_objects() {
        const READ: &str = "anonymous = \"read\"";
        const POLICY: &str = r#"bucket_policy = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::open/*"}]}'"#;
        const MINIO: &str = "http://minio.internal:9000";
        let refused = [
            (
                "the same root",
                fs("/srv/sy/data", None),
                fs("/srv/sy/data", None),
                READ,
                "",
            ),
            (
                "the same directory spelt two ways",
                fs("/srv/sy", Some("data")),
                fs("/srv/sy/data", None),
                READ,
                "",
            ),
            (
                "a prefix inside the other's",
                fs("/srv/sy/data", Some("a")),
                fs("/srv/sy/data", Some("a/b")),
                READ,
                "",
            ),
            (
                "a root around the other's",
                fs("/srv/sy/data/a/b", None),
                fs("/srv/sy/data", None),
                READ,
                "",
            ),
            (
                "one S3 bucket, one prefix inside the other",
                s3(MINIO, "shared", Some("a")),
                s3(MINIO, "shared", Some("a/b")),
                READ,
                "",
            ),
            (
                "one S3 bucket, one member without a prefix",
                s3(MINIO, "shared", Some("a")),
                s3(MINIO, "shared", None),
                READ,
                "",
            ),
            (
                "a bucket policy where the other has none",
                fs("/srv/sy/data", None),
                fs("/srv/sy/data", None),
                POLICY,
                "",
            ),
        ];
        for (what, p, o, access, extra) in refused {
            let e = err(&pair(&p, &o, access, extra));
            assert!(
                e.starts_with("buckets.")
                    && e.contains("bucket \"private\" (member \"p\")")
                    && e.contains("bucket \"open\" (member \"o\")")
                    && e.contains("reach the same objects"),
                "{what}: {e}"
            );
        }
        // A configured bucket inside the directory of buckets made by CreateBucket: its
        // directory there is a bucket of the API's too.
        let e = err(&format!(
            "version = 1\n[dynamic_buckets]\nkind = \"fs\"\nroot = \"/srv/sy/dyn\"\n[backends.o]\n{}\n[buckets.open]\nmembers = [\"o\"]\n{READ}\n",
            fs("/srv/sy/dyn/open", None)
        ));
        assert!(
            e.starts_with("buckets.open: bucket \"open\" (member \"o\") and [dynamic_buckets] (root /srv/sy/dyn/) reach the same objects"),
            "{e}"
        );
        // Whatever the configured bucket's access: the buckets there get theirs through
        // the API. Also when the dynamic root lies inside the configured bucket's.
        for root in ["/srv/sy/dyn/open", "/srv/sy"] {
            let e = err(&format!(
                "version = 1\n[dynamic_buckets]\nkind = \"fs\"\nroot = \"/srv/sy/dyn\"\n[backends.o]\n{}\n[buckets.open]\nmembers = [\"o\"]\n",
                fs(root, None)
            ));
            assert!(
                e.starts_with("buckets.open: bucket \"open\" (member \"o\") and [dynamic_buckets]"),
                "{root}: {e}"
            );
        }
        // A remote template reaches the objects below its prefix, in its S3 bucket.
        for (prefix, clash) in [(Some("buckets/open"), true), (Some("other"), false)] {
            let text = format!(
                "version = 1\n[dynamic_buckets]\n{}[backends.o]\n{}\n[buckets.open]\nmembers = [\"o\"]\n",
                s3(MINIO, "shared", Some("buckets")),
                s3(MINIO, "shared", prefix)
            );
            match Config::from_toml(&text) {
                Err(e) if clash => assert!(
                    e.to_string().starts_with(
                        "buckets.open: bucket \"open\" (member \"o\") and [dynamic_buckets]"
                    ),
                    "{prefix:?}: {e}"
                ),
                Ok(_) if !clash => {}
                other => panic!("{prefix:?}: {other:?}"),
            }
        }

        let accepted = [
            (
                "equal access",
                fs("/srv/sy/data", None),
                fs("/srv/sy/data", None),
                "",
                "",
            ),
            (
                "prefixes ab and a/b",
                fs("/srv/sy/data", Some("ab")),
                fs("/srv/sy/data", Some("a/b")),
                READ,
                "",
            ),
            (
                "roots that only start alike",
                fs("/srv/sy/a", None),
                fs("/srv/sy/ab", None),
                READ,
                "",
            ),
            (
                "S3 prefixes ab and a/b",
                s3(MINIO, "shared", Some("ab")),
                s3(MINIO, "shared", Some("a/b")),
                READ,
                "",
            ),
            (
                "one bucket name at two endpoints",
                s3(MINIO, "shared", None),
                s3("http://other.internal:9000", "shared", None),
                READ,
                "",
            ),
            (
                "two S3 buckets",
                s3(MINIO, "one", None),
                s3(MINIO, "two", None),
                READ,
                "",
            ),
            (
                "configured buckets beside the dynamic ones",
                fs("/srv/sy/private", None),
                fs("/srv/sy/open", None),
                READ,
                "[dynamic_buckets]\nkind = \"fs\"\nroot = \"/srv/sy/dyn\"",
            ),
        ];
        for (what, p, o, access, extra) in accepted {
            if let Err(e) = Config::from_toml(&pair(&p, &o, access, extra)) {
                panic!("{what}: {e}");
            }
        }
    }

    /// A remote `[dynamic_buckets]` template is checked as a backend of its kind is, its
    /// errors named after the section.
    #[test]
    fn remote_dynamic_templates_are_checked_as_backends() {
        let e = err("version = 1\n[dynamic_buckets]\nkind = \"s3\"\nbucket = \"\"\n");
        assert_eq!(e, "dynamic_buckets.bucket: must not be empty");
        let e = err(
            "version = 1\n[dynamic_buckets]\nkind = \"gcs\"\nbucket = \"b\"\nprefix = \"a//b\"\n",
        );
        assert!(e.starts_with("dynamic_buckets.prefix: "), "{e}");
        let e = err(
            "version = 1\n[dynamic_buckets]\nkind = \"azure\"\naccount = \"a\"\ncontainer = \"c\"\naccess_key = { env = \"SWITCHYARD_TEST_UNSET_KEY\" }\n",
        );
        assert!(e.contains("dynamic_buckets.access_key"), "{e}");
        let e =
            err("version = 1\n[dynamic_buckets]\nkind = \"s3\"\nbucket = \"b\"\nroot = \"/x\"\n");
        assert!(e.contains("unknown field `root`"), "{e}");
    }

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size(" 1.5 GiB "), Ok(1_610_612_736));
        assert_eq!(parse_size("200MB"), Ok(200_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(
            parse_size("lots").unwrap_err(),
            "\"lots\": expected a size such as 64MiB"
        );
        assert_eq!(
            parse_size("3 parsecs").unwrap_err(),
            "\"3 parsecs\": unknown unit \"parsecs\""
        );
        assert_eq!(
            parse_size("0").unwrap_err(),
            "\"0\": must be at least 1 byte"
        );
        assert_eq!(parse_duration("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .starts_with("\"soon\": ")
        );
    }

    /// A file with several mistakes gets them all, each naming its key, not only the first.
    #[test]
    fn every_error_is_reported() {
        let e = err(
            "version = 1\n[server]\npart_size = 1024\nread_buffers = 1024\n[[users]]\naccess_key = \"\"\nsecret_key = \"s\"\n[backends.a]\nkind = \"memory\"\nprefix = \"/a\"\n[buckets.b]\nmembers = [\"a\", \"nope\"]\npolicy = \"custom\"\n",
        );
        for field in [
            "server.part_size",
            "server.read_buffers",
            "users[0].access_key",
            "backends.a.prefix",
            "buckets.b.members[1]",
            "buckets.b.policy",
        ] {
            assert!(
                e.contains(&format!("{field}: ")),
                "{field} missing from {e}"
            );
        }
    }

    /// Each unset environment variable is an error of its own.
    #[test]
    fn every_missing_environment_variable_is_reported() {
        let e = err(
            "version = 1\n[server]\nadmin_listen = \"127.0.0.1:0\"\nadmin_token = { env = \"SWITCHYARD_TEST_UNSET_TOKEN\" }\n[[users]]\naccess_key = \"a\"\nsecret_key = { env = \"SWITCHYARD_TEST_UNSET_SECRET\" }\n[backends.s]\nkind = \"s3\"\nbucket = \"b\"\naccess_key_id = { env = \"SWITCHYARD_TEST_UNSET_KEY\" }\n",
        );
        for (field, var) in [
            ("server.admin_token", "SWITCHYARD_TEST_UNSET_TOKEN"),
            ("users[0].secret_key", "SWITCHYARD_TEST_UNSET_SECRET"),
            ("backends.s.access_key_id", "SWITCHYARD_TEST_UNSET_KEY"),
        ] {
            assert!(
                e.contains(&format!("{field}: environment variable {var} is not set")),
                "{field} missing from {e}"
            );
        }
    }

    /// A value that does not fit its field, deep in a table, is named by its key path and
    /// place, not by the table's header: serde reads a backend's table whole before it
    /// knows its kind, which lost both.
    #[test]
    fn errors_inside_tables_name_the_key() {
        for (text, expected) in [
            (
                "version = 1\n[backends.hot]\nkind = \"s3\"\nbucket = \"b\"\nendpoint = 5\n",
                "line 5, column 12: backends.hot.endpoint: invalid type: integer `5`, expected a string",
            ),
            (
                "version = 1\n[backends.hot]\nkind = \"s3\"\nbucket = \"b\"\nnetwork = { read_timeout = true }\n",
                "line 5, column 28: backends.hot.network.read_timeout: invalid type: boolean `true`, expected a duration",
            ),
            (
                "version = 1\n[backends.a]\nkind = \"fs\"\nroot = \"x\"\nrooot = 1\n",
                "line 5, column 1: backends.a.rooot: unknown field `rooot`, expected one of `root`, `prefix`, `labels`",
            ),
            (
                "version = 1\n[backends.a]\nkind = \"fs3\"\n",
                "line 3, column 8: backends.a.kind: unknown variant `fs3`, expected one of `s3`, `azure`, `gcs`, `fs`, `memory`",
            ),
            (
                "version = 1\n[dynamic_buckets]\nkind = \"gcs\"\nbucket = [\"b\"]\n",
                "line 4, column 10: dynamic_buckets.bucket: invalid type: sequence, expected a string",
            ),
            (
                "version = 1\n[buckets.photos]\nmembers = [\"hot\", \"warm\", 7]\n",
                "line 3, column 27: buckets.photos.members[2]: invalid type: integer `7`, expected a string",
            ),
            (
                "version = 1\n[[users]]\naccess_key = \"a\"\nsecret_key = 5\n",
                "line 4, column 14: users[0].secret_key: invalid type: integer `5`, expected a string, or { env = \"VAR\" }",
            ),
            (
                "version = 1\n[backends.s]\nkind = \"s3\"\nbucket = \"b\"\nsecret_access_key = { env = 5 }\n",
                "line 5, column 29: backends.s.secret_access_key.env: invalid type: integer `5`, expected a string",
            ),
        ] {
            let e = err(text);
            assert_eq!(e.lines().next().unwrap(), expected, "{text}");
        }
    }

    /// With `Secrets::Skip` (`check-config --no-env`) secrets from the environment are
    /// not read, and listed instead; inline ones are still checked. Each error is one entry.
    #[test]
    fn skipped_secrets_are_listed_not_read() {
        let text = "version = 1\n[server]\nadmin_listen = \"127.0.0.1:0\"\nadmin_token = { env = \"SWITCHYARD_TEST_UNSET_TOKEN\" }\n[[users]]\naccess_key = \"a\"\nsecret_key = { env = \"SWITCHYARD_TEST_UNSET_SECRET\" }\n[backends.s]\nkind = \"s3\"\nbucket = \"b\"\naccess_key_id = { env = \"SWITCHYARD_TEST_UNSET_KEY\" }\n[dynamic_buckets]\nkind = \"azure\"\naccount = \"a\"\ncontainer = \"c\"\naccess_key = { env = \"SWITCHYARD_TEST_UNSET_AZURE\" }\n";
        let c = Config::from_toml_with(text, Secrets::Skip).unwrap();
        let expected = [
            ("server.admin_token", "SWITCHYARD_TEST_UNSET_TOKEN"),
            ("users[0].secret_key", "SWITCHYARD_TEST_UNSET_SECRET"),
            ("backends.s.access_key_id", "SWITCHYARD_TEST_UNSET_KEY"),
            ("dynamic_buckets.access_key", "SWITCHYARD_TEST_UNSET_AZURE"),
        ]
        .map(|(f, v)| (f.to_owned(), v.to_owned()));
        assert_eq!(c.env_secrets(), expected);
        let e = Config::from_toml_with(text, Secrets::Resolve).unwrap_err();
        assert_eq!(e.errors().len(), 4, "{e}");
        assert!(
            e.to_string().starts_with(
                "4 errors in the configuration:\n  1. server.admin_token: environment variable"
            ),
            "{e}"
        );
        let e = Config::from_toml_with(
            "version = 1\n[server]\nadmin_listen = \"127.0.0.1:0\"\nadmin_token = \"short\"\n[[users]]\naccess_key = \"a\"\nsecret_key = \"\"\n",
            Secrets::Skip,
        )
        .unwrap_err();
        let each: Vec<String> = e.errors().iter().map(|e| e.to_string()).collect();
        assert_eq!(
            each,
            [
                "server.admin_token: must be at least 16 characters",
                "users[0].secret_key: must not be empty"
            ]
        );
    }

    #[test]
    fn secrets_from_env() {
        let e = err(
            "version = 1\n[[users]]\naccess_key = \"a\"\nsecret_key = { env = \"SWITCHYARD_TEST_UNSET_VAR\" }\n",
        );
        assert_eq!(
            e,
            "users[0].secret_key: environment variable SWITCHYARD_TEST_UNSET_VAR is not set"
        );
    }

    #[test]
    fn object_ownership_takes_s3s_names() {
        let text = |o: &str| {
            format!(
                "version = 1\n[backends.m]\nkind = \"memory\"\n[buckets.bkt]\nmembers = [\"m\"]\n{o}"
            )
        };
        let c = Config::from_toml(&text("")).unwrap();
        assert_eq!(
            c.buckets["bkt"].object_ownership,
            ObjectOwnership::BucketOwnerEnforced
        );
        for o in [
            "ObjectWriter",
            "BucketOwnerPreferred",
            "BucketOwnerEnforced",
        ] {
            let c = Config::from_toml(&text(&format!("object_ownership = \"{o}\"\n"))).unwrap();
            assert_eq!(c.buckets["bkt"].object_ownership.name(), o);
        }
        let e = Config::from_toml(&text("object_ownership = \"object-writer\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("object_ownership") || e.contains("ObjectWriter"),
            "{e}"
        );
    }
}
