//! Prometheus metrics. Labels are closed enums (written in snake_case, as Prometheus
//! users expect), names from the configuration (policies, backends), or bucket names
//! admitted by [`Metrics::bucket_label`]; never keys or other client input, so the series
//! count stays bounded whatever clients send.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label values of closed enums, in snake_case (`place`, `not_loaded`): the derive would
/// write the variants' names as they are.
macro_rules! label_values {
    ($($ty:ident { $($variant:ident => $text:literal),* $(,)? })*) => {$(
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),* }
            }
        }
        impl EncodeLabelValue for $ty {
            fn encode(&self, e: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                std::fmt::Write::write_str(e, self.as_str())
            }
        }
    )*};
}

label_values! {
    Outcome {
        Ok => "ok", Refused => "refused", Trap => "trap", Timeout => "timeout",
        MemoryLimit => "memory_limit", InvalidAnswer => "invalid_answer",
        NotLoaded => "not_loaded",
    }
    Call { Admit => "admit", Place => "place", Route => "route", Tier => "tier" }
    ReloadResult { Loaded => "loaded", Rejected => "rejected", Unloaded => "unloaded" }
    JobKind { Migrate => "migrate", Tier => "tier", Inventory => "inventory" }
    MoverOutcome {
        Copied => "copied", Skipped => "skipped", Kept => "kept", Deleted => "deleted",
        Failed => "failed",
    }
    StatusClass {
        Informational => "1xx", Success => "2xx", Redirect => "3xx", ClientError => "4xx",
        ServerError => "5xx",
    }
    BackendOp {
        Put => "put", Get => "get", Head => "head", Delete => "delete", List => "list",
        Copy => "copy", MpuCreate => "multipart_create", MpuPart => "multipart_part",
        MpuComplete => "multipart_complete", MpuAbort => "multipart_abort",
        Internal => "internal",
    }
    BackendOutcome {
        Ok => "ok", NotFound => "not_found", Precondition => "precondition_failed",
        Unavailable => "unavailable", Rejected => "rejected", Error => "error",
    }
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Outcome {
    /// The policy answered and the answer was used.
    Ok,
    /// The policy returned its own policy-error.
    Refused,
    Trap,
    Timeout,
    MemoryLimit,
    InvalidAnswer,
    /// The bucket names a policy that is not loaded.
    NotLoaded,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Call {
    Admit,
    Place,
    Route,
    Tier,
}

const CALLS: usize = 4;
const OUTCOMES: usize = 7;
const _: () =
    assert!(Call::Tier as usize + 1 == CALLS && Outcome::NotLoaded as usize + 1 == OUTCOMES);

/// One policy's decision metrics, looked up once and kept (by its bucket): a family
/// lookup takes owned labels, an allocation and a hash, and two of them cost a warm
/// decision about 0.3 µs. The handles share their series with the families, so
/// `/metrics` shows the same counts. A counter is made on its first use, so that series
/// that never counted stay out of the exposition, as before.
#[derive(Debug)]
pub struct DecisionHandles {
    policy: String,
    seconds: Histogram,
    counts: [std::sync::OnceLock<Counter>; CALLS * OUTCOMES],
}

impl DecisionHandles {
    /// How long one call took (`switchyard_policy_decision_seconds`).
    pub fn observe(&self, seconds: f64) {
        self.seconds.observe(seconds);
    }

    /// Counts a decision (`switchyard_policy_decisions_total`) in `metrics`, the
    /// registry these handles came from.
    pub fn count(&self, metrics: &Metrics, call: Call, outcome: Outcome) {
        self.counts[call as usize * OUTCOMES + outcome as usize]
            .get_or_init(|| {
                metrics
                    .decisions
                    .get_or_create(&DecisionLabels {
                        policy: self.policy.clone(),
                        call,
                        outcome,
                    })
                    .clone()
            })
            .inc();
    }
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum ReloadResult {
    Loaded,
    Rejected,
    Unloaded,
}

/// A mover job: a migration, a tiering pass, or an inventory (which only lists, and so
/// counts no objects in the mover metrics).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Migrate,
    Tier,
    Inventory,
}

/// What the mover did with one object.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum MoverOutcome {
    Copied,
    /// Already at the destination, or changed by a client meanwhile (theirs wins).
    Skipped,
    /// A tiering answer of `keep`.
    Kept,
    /// Removed from the source after a verified move, or by a `delete` answer.
    Deleted,
    Failed,
}

/// The class of an HTTP status, as dashboards group answers.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum StatusClass {
    Informational,
    Success,
    Redirect,
    ClientError,
    ServerError,
}

impl StatusClass {
    pub fn of(status: u16) -> Self {
        match status {
            ..200 => Self::Informational,
            200..300 => Self::Success,
            300..400 => Self::Redirect,
            400..500 => Self::ClientError,
            _ => Self::ServerError,
        }
    }
}

/// A call the gateway makes to a backend ([`crate::backends::Store`]'s methods, the
/// bookkeeping ones under `internal`).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum BackendOp {
    Put,
    Get,
    Head,
    Delete,
    List,
    Copy,
    MpuCreate,
    MpuPart,
    MpuComplete,
    MpuAbort,
    Internal,
}

/// How a backend call ended. `not_found` and `precondition_failed` are answers of the
/// backend (it is up); `unavailable` is what marks it unhealthy; `rejected` is an error
/// the request caused (a bad digest, a body too large); `error` is anything else.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum BackendOutcome {
    Ok,
    NotFound,
    Precondition,
    Unavailable,
    Rejected,
    Error,
}

impl BackendOutcome {
    pub fn of<T>(result: &crate::model::Result<T>) -> Self {
        match result {
            Ok(_) => Self::Ok,
            Err(e) => Self::of_error(e),
        }
    }

    pub fn of_error(e: &crate::model::Error) -> Self {
        use crate::model::Error as E;
        match e {
            E::NotFound | E::NoSuchUpload => Self::NotFound,
            E::Precondition(_) | E::NotModified => Self::Precondition,
            E::Unavailable { .. } => Self::Unavailable,
            E::BadDigest
            | E::InvalidDigest
            | E::ChecksumMismatch(_)
            | E::TooLarge(_)
            | E::IncompleteBody
            | E::ClientBody(_)
            | E::RequestTimeout(_)
            | E::InvalidRange
            | E::InvalidPart(_)
            | E::EntityTooSmall(_) => Self::Rejected,
            _ => Self::Error,
        }
    }
}

/// A name used as a label value (a backend's, an admitted bucket's), shared rather than
/// copied for each request.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct Name(Arc<str>);

impl Name {
    pub fn new(name: &str) -> Self {
        Self(Arc::from(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl EncodeLabelValue for Name {
    fn encode(&self, e: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(e, &self.0)
    }
}

/// Most distinct bucket names the request metrics label with: configured buckets always
/// fit, buckets made by clients are counted until the bound, later ones as [`OTHER_BUCKETS`].
pub const MAX_BUCKET_LABELS: usize = 1000;
/// The label of requests naming no bucket the gateway knows, or one past the bound.
pub const OTHER_BUCKETS: &str = "_other";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The S3 operation in snake_case (`put_object`); `unknown` when the request was
    /// refused before its operation was known (a bad signature, a malformed path).
    pub operation: &'static str,
    /// Empty for requests naming no bucket (ListBuckets).
    pub bucket: Name,
    pub status_class: StatusClass,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BucketLabels {
    pub bucket: Name,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    pub backend: Name,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendCallLabels {
    pub backend: Name,
    pub operation: BackendOp,
    pub outcome: BackendOutcome,
}

/// Where a gauge's values (by one label) are read at each scrape: the state they tell of
/// (the configuration snapshot in service, the jobs) lives elsewhere and changes, so the
/// metrics ask it rather than keep a copy.
pub type Source = Box<dyn Fn() -> Vec<(String, i64)> + Send + Sync>;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MoverLabels {
    /// Not `job`: Prometheus gives every scraped series a `job` label of its own.
    pub kind: JobKind,
    pub outcome: MoverOutcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub policy: String,
    pub call: Call,
    pub outcome: Outcome,
}

/// `switchyard_build_info`: one series, of value 1, naming this build. Both values come
/// from the build, not from requests.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: String,
    /// 12 hex digits (`-dirty` when built from changed files), or `unknown`.
    pub commit: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    pub policy: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub policy: String,
    pub result: ReloadResult,
}

/// How a reload of the configuration file ended (`switchyard_config_reloads_total`).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum ConfigReload {
    /// Put in service.
    Applied,
    /// Invalid: the configuration in service stays.
    Rejected,
}

impl EncodeLabelValue for ConfigReload {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder,
    ) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(
            encoder,
            match self {
                ConfigReload::Applied => "applied",
                ConfigReload::Rejected => "rejected",
            },
        )
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConfigReloadLabels {
    pub result: ConfigReload,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    /// Reloads of the configuration file, applied or rejected.
    pub config_reloads: Family<ConfigReloadLabels, Counter>,
    /// When the configuration in service was loaded (at start, or by the last applied
    /// reload), in seconds since the Unix epoch.
    pub config_loaded_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Policy decisions by outcome.
    pub decisions: Family<DecisionLabels, Counter>,
    /// Decisions that fell back to the built-in default (fail-open).
    pub fallbacks: Family<PolicyLabels, Counter>,
    /// Time one policy call took, in seconds.
    pub decision_seconds: Family<PolicyLabels, Histogram>,
    /// Policy loads, rejections and unloads.
    pub reloads: Family<ReloadLabels, Counter>,
    /// Objects the mover handled, by job kind and outcome.
    pub mover_objects: Family<MoverLabels, Counter>,
    /// Bytes the mover copied, by job kind (outcome `copied`).
    pub mover_bytes: Family<MoverLabels, Counter>,
    /// What policies count (`host.counter-add`): labels `policy`, `counter`, then the
    /// policy's own, validated by [`Metrics::policy_counter_add`].
    policy_counters: Family<Vec<(String, String)>, Counter>,
    /// `counter-add` calls dropped for breaking the bounds, by policy.
    policy_counters_dropped: Family<PolicyLabels, Counter>,
    /// Distinct counters (label sets) each policy has made.
    policy_series: Mutex<std::collections::HashMap<String, usize>>,
    /// S3 requests answered, by operation, bucket and status class.
    requests: Family<RequestLabels, Counter>,
    /// From a request's arrival to the last byte of its answer, by operation.
    request_seconds: Family<OperationLabels, Histogram>,
    /// Request bodies received from clients, by bucket (framing included).
    bucket_received: Family<BucketLabels, Counter>,
    /// Answer bodies sent to clients, by bucket.
    bucket_sent: Family<BucketLabels, Counter>,
    /// Requests being handled (from arrival to the answer's last byte).
    in_flight: Gauge,
    /// Calls to backends, by backend, call and outcome.
    backend_calls: Family<BackendCallLabels, Counter>,
    /// Time backend calls took until their answer (a read's body streams after it).
    backend_seconds: Family<BackendLabels, Histogram>,
    /// Object bytes read from backends: what a cloud bills as egress.
    backend_received: Family<BackendLabels, Counter>,
    /// Object bytes written to backends.
    backend_sent: Family<BackendLabels, Counter>,
    /// The bucket names admitted as label values.
    bucket_labels: RwLock<HashMap<Box<str>, Name>>,
    /// The labels of requests naming no bucket (`""`) and of buckets not admitted
    /// ([`OTHER_BUCKETS`]), made once rather than per request.
    no_bucket: Name,
    other_buckets: Name,
    /// Read at each scrape for `switchyard_backend_healthy`.
    health: Arc<Mutex<Option<Source>>>,
    /// Read at each scrape for `switchyard_jobs_running`.
    jobs: Arc<Mutex<Option<Source>>>,
}

/// Most distinct counters one policy may make, most labels on one, and the longest name,
/// label name or label value: a policy's labels are its own choice, so the series they
/// make are bounded here.
pub const MAX_POLICY_SERIES: usize = 1000;
pub const MAX_POLICY_LABELS: usize = 4;
pub const MAX_POLICY_LABEL_LEN: usize = 64;

/// A counter or label name a policy may use: `[a-z_][a-z0-9_]*`, not too long, and not
/// one of the names the host sets itself.
fn metric_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_POLICY_LABEL_LEN
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("switchyard");
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: crate::VERSION.to_owned(),
                commit: if crate::COMMIT.is_empty() {
                    "unknown".to_owned()
                } else {
                    crate::COMMIT.to_owned()
                },
            })
            .set(1);
        registry.register(
            "build_info",
            "The version and commit of this build (value 1)",
            build_info,
        );
        let decisions = Family::<DecisionLabels, Counter>::default();
        let fallbacks = Family::<PolicyLabels, Counter>::default();
        let decision_seconds = Family::<PolicyLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(1e-6, 4.0, 12))
        });
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "policy_decisions",
            "Policy decisions by call and outcome",
            decisions.clone(),
        );
        registry.register(
            "policy_fallbacks",
            "Decisions that fell back to the built-in default policy",
            fallbacks.clone(),
        );
        registry.register(
            "policy_decision_seconds",
            "Time one policy call took",
            decision_seconds.clone(),
        );
        registry.register(
            "policy_reloads",
            "Policy components loaded, rejected and unloaded",
            reloads.clone(),
        );
        let mover_objects = Family::<MoverLabels, Counter>::default();
        let mover_bytes = Family::<MoverLabels, Counter>::default();
        registry.register(
            "mover_objects",
            "Objects handled by migrations and tiering passes, by outcome",
            mover_objects.clone(),
        );
        registry.register(
            "mover_bytes",
            "Bytes copied by migrations and tiering passes",
            mover_bytes.clone(),
        );
        let policy_counters = Family::<Vec<(String, String)>, Counter>::default();
        let policy_counters_dropped = Family::<PolicyLabels, Counter>::default();
        registry.register(
            "policy_counter",
            "What policies count (host.counter-add)",
            policy_counters.clone(),
        );
        registry.register(
            "policy_counter_dropped",
            "counter-add calls dropped for a bad name, too many or too long labels, or too many counters",
            policy_counters_dropped.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds = Family::<OperationLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let bucket_received = Family::<BucketLabels, Counter>::default();
        let bucket_sent = Family::<BucketLabels, Counter>::default();
        let in_flight = Gauge::default();
        let backend_calls = Family::<BackendCallLabels, Counter>::default();
        let backend_seconds = Family::<BackendLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let backend_received = Family::<BackendLabels, Counter>::default();
        let backend_sent = Family::<BackendLabels, Counter>::default();
        registry.register(
            "requests",
            "S3 requests answered, by operation, bucket and status class",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from a request's arrival to its answer's last byte",
            request_seconds.clone(),
        );
        registry.register(
            "bucket_received_bytes",
            "Request body bytes received from clients, by bucket",
            bucket_received.clone(),
        );
        registry.register(
            "bucket_sent_bytes",
            "Answer body bytes sent to clients, by bucket",
            bucket_sent.clone(),
        );
        registry.register(
            "requests_in_flight",
            "S3 requests being handled",
            in_flight.clone(),
        );
        registry.register(
            "backend_requests",
            "Calls to backends, by backend, call and outcome",
            backend_calls.clone(),
        );
        registry.register(
            "backend_request_duration_seconds",
            "Time a backend call took until its answer",
            backend_seconds.clone(),
        );
        registry.register(
            "backend_received_bytes",
            "Object bytes read from backends (a cloud's egress)",
            backend_received.clone(),
        );
        registry.register(
            "backend_sent_bytes",
            "Object bytes written to backends",
            backend_sent.clone(),
        );
        let health = Arc::new(Mutex::new(None));
        registry.register_collector(Box::new(SourceCollector {
            name: "backend_healthy",
            help: "1 while the backend is usable, 0 while failed calls mark it unhealthy",
            label: "backend",
            source: health.clone(),
        }));
        let jobs = Arc::new(Mutex::new(None));
        registry.register_collector(Box::new(SourceCollector {
            name: "jobs_running",
            help: "Mover jobs (migrations, tiering passes) running in this engine",
            label: "kind",
            source: jobs.clone(),
        }));
        let config_reloads = Family::<ConfigReloadLabels, Counter>::default();
        let config_loaded_seconds = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "config_reloads",
            "Reloads of the configuration file, by result (applied or rejected)",
            config_reloads.clone(),
        );
        registry.register(
            "config_last_reload_success_timestamp_seconds",
            "When the configuration in service was loaded (at start or by a reload), in Unix time",
            config_loaded_seconds.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            requests,
            request_seconds,
            bucket_received,
            bucket_sent,
            in_flight,
            backend_calls,
            backend_seconds,
            backend_received,
            backend_sent,
            bucket_labels: RwLock::new(HashMap::new()),
            no_bucket: Name::new(""),
            other_buckets: Name::new(OTHER_BUCKETS),
            health,
            jobs,
            config_reloads,
            config_loaded_seconds,
            policy_counters,
            policy_counters_dropped,
            policy_series: Mutex::new(std::collections::HashMap::new()),
            decisions,
            fallbacks,
            decision_seconds,
            reloads,
            mover_objects,
            mover_bytes,
        }
    }
}

impl Metrics {
    /// The text exposition format: this engine's metrics, then the process's under their
    /// conventional unprefixed names (`process_cpu_seconds_total`, ...).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Ok(r) = self.registry.lock() {
            let _ = prometheus_client::encoding::text::encode_registry(&mut out, &r);
        }
        let mut process = Registry::default();
        process.register_collector(Box::new(ProcessCollector));
        let _ = prometheus_client::encoding::text::encode(&mut out, &process);
        out
    }

    /// Where `switchyard_backend_healthy` is read from (the serving engine's router):
    /// each backend's name and 1 (healthy) or 0.
    pub fn set_health_source(&self, source: Source) {
        *self.health.lock().unwrap_or_else(|e| e.into_inner()) = Some(source);
    }

    /// Where `switchyard_jobs_running` is read from: each job kind and how many run.
    pub fn set_jobs_source(&self, source: Source) {
        *self.jobs.lock().unwrap_or_else(|e| e.into_inner()) = Some(source);
    }

    /// The label for `bucket`, which the gateway knows (configured, or made by a client
    /// and found): its name while fewer than [`MAX_BUCKET_LABELS`] names are in use,
    /// else [`OTHER_BUCKETS`].
    pub fn bucket_label(&self, bucket: &str) -> Name {
        if let Some(n) = self
            .bucket_labels
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(bucket)
        {
            return n.clone();
        }
        let mut labels = self
            .bucket_labels
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if labels.len() >= MAX_BUCKET_LABELS {
            return self.other_buckets.clone();
        }
        labels
            .entry(bucket.into())
            .or_insert_with(|| Name::new(bucket))
            .clone()
    }

    /// The label of a request whose bucket the router did not find: `""` when it named
    /// none (ListBuckets, or refused before its path was read), else [`OTHER_BUCKETS`].
    pub fn unfound_bucket_label(&self, named: bool) -> Name {
        if named {
            self.other_buckets.clone()
        } else {
            self.no_bucket.clone()
        }
    }

    pub fn request_started(&self) {
        self.in_flight.inc();
    }

    /// One S3 request answered (its last byte sent, or the client gone).
    pub fn request_done(
        &self,
        operation: &'static str,
        bucket: Name,
        status: u16,
        seconds: f64,
        received: u64,
        sent: u64,
    ) {
        self.in_flight.dec();
        self.request_seconds
            .get_or_create(&OperationLabels { operation })
            .observe(seconds);
        let by_bucket = BucketLabels { bucket };
        if received > 0 {
            self.bucket_received
                .get_or_create(&by_bucket)
                .inc_by(received);
        }
        if sent > 0 {
            self.bucket_sent.get_or_create(&by_bucket).inc_by(sent);
        }
        self.requests
            .get_or_create(&RequestLabels {
                operation,
                bucket: by_bucket.bucket,
                status_class: StatusClass::of(status),
            })
            .inc();
    }

    /// One backend call answered.
    pub fn backend_call(
        &self,
        backend: &Name,
        operation: BackendOp,
        outcome: BackendOutcome,
        seconds: f64,
    ) {
        self.backend_seconds
            .get_or_create(&BackendLabels {
                backend: backend.clone(),
            })
            .observe(seconds);
        self.backend_calls
            .get_or_create(&BackendCallLabels {
                backend: backend.clone(),
                operation,
                outcome,
            })
            .inc();
    }

    /// Object bytes that went to (`sent`) or came from (`received`) a backend.
    pub fn backend_bytes(&self, backend: &Name, received: u64, sent: u64) {
        let labels = BackendLabels {
            backend: backend.clone(),
        };
        if received > 0 {
            self.backend_received
                .get_or_create(&labels)
                .inc_by(received);
        }
        if sent > 0 {
            self.backend_sent.get_or_create(&labels).inc_by(sent);
        }
    }

    /// Counts a reload of the configuration; an applied one (or the load at start, with
    /// `None`) also sets the time of the last success.
    pub fn config_loaded(&self, result: Option<ConfigReload>) {
        if let Some(result) = result {
            self.config_reloads
                .get_or_create(&ConfigReloadLabels { result })
                .inc();
        }
        if result != Some(ConfigReload::Rejected) {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            self.config_loaded_seconds.set(now);
        }
    }

    /// One policy's decision metrics, for a caller that keeps them
    /// ([`DecisionHandles`]).
    pub fn decision_handles(&self, policy: &str) -> DecisionHandles {
        DecisionHandles {
            policy: policy.to_owned(),
            seconds: self
                .decision_seconds
                .get_or_create(&PolicyLabels {
                    policy: policy.to_owned(),
                })
                .clone(),
            counts: std::array::from_fn(|_| std::sync::OnceLock::new()),
        }
    }

    pub fn reload(&self, policy: &str, result: ReloadResult) {
        self.reloads
            .get_or_create(&ReloadLabels {
                policy: policy.to_owned(),
                result,
            })
            .inc();
    }

    /// Adds `value` to a policy's counter, or drops the call (and counts the drop) when its
    /// name or labels break the bounds above.
    pub fn policy_counter_add(
        &self,
        policy: &str,
        name: &str,
        labels: &[(String, String)],
        value: u64,
    ) {
        let ok = metric_name_ok(name)
            && labels.len() <= MAX_POLICY_LABELS
            && labels.iter().enumerate().all(|(i, (k, v))| {
                metric_name_ok(k)
                    && k != "policy"
                    && k != "counter"
                    && v.len() <= MAX_POLICY_LABEL_LEN
                    && labels[..i].iter().all(|(other, _)| other != k)
            });
        let mut set = Vec::with_capacity(labels.len() + 2);
        set.push(("policy".to_owned(), policy.to_owned()));
        set.push(("counter".to_owned(), name.to_owned()));
        set.extend(labels.iter().cloned());
        let admitted = ok
            && (self.policy_counters.get(&set).is_some() || {
                let mut series = self
                    .policy_series
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let n = series.entry(policy.to_owned()).or_insert(0);
                if *n < MAX_POLICY_SERIES {
                    *n += 1;
                    true
                } else {
                    false
                }
            });
        if admitted {
            self.policy_counters.get_or_create(&set).inc_by(value);
        } else {
            self.policy_counters_dropped
                .get_or_create(&PolicyLabels {
                    policy: policy.to_owned(),
                })
                .inc();
        }
    }
}

/// A gauge by one label whose values are read from a [`Source`] at each scrape
/// (`switchyard_backend_healthy`, `switchyard_jobs_running`).
struct SourceCollector {
    name: &'static str,
    help: &'static str,
    label: &'static str,
    source: Arc<Mutex<Option<Source>>>,
}

impl std::fmt::Debug for SourceCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceCollector")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Collector for SourceCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let values = match &*self.source.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(source) => source(),
            None => return Ok(()),
        };
        let family = Family::<Vec<(String, String)>, Gauge>::default();
        for (value, n) in values {
            family
                .get_or_create(&vec![(self.label.to_owned(), value)])
                .set(n);
        }
        family.encode(encoder.encode_descriptor(self.name, self.help, None, MetricType::Gauge)?)
    }
}

/// The process's CPU time, memory, open files and start, from `/proc` at each scrape
/// (Linux; elsewhere nothing is reported), under the names every Prometheus client uses.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(p) = process_stats() else {
            return Ok(());
        };
        ConstCounter::new(p.cpu_seconds).encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time spent, in seconds",
            None,
            MetricType::Counter,
        )?)?;
        ConstGauge::new(p.resident_bytes).encode(encoder.encode_descriptor(
            "process_resident_memory_bytes",
            "Resident memory size, in bytes",
            None,
            MetricType::Gauge,
        )?)?;
        ConstGauge::new(p.virtual_bytes).encode(encoder.encode_descriptor(
            "process_virtual_memory_bytes",
            "Virtual memory size, in bytes",
            None,
            MetricType::Gauge,
        )?)?;
        if let Some(fds) = p.open_fds {
            ConstGauge::new(fds).encode(encoder.encode_descriptor(
                "process_open_fds",
                "Open file descriptors",
                None,
                MetricType::Gauge,
            )?)?;
        }
        if let Some(max) = p.max_fds {
            ConstGauge::new(max).encode(encoder.encode_descriptor(
                "process_max_fds",
                "The limit of open file descriptors",
                None,
                MetricType::Gauge,
            )?)?;
        }
        ConstGauge::new(p.start_time_seconds).encode(encoder.encode_descriptor(
            "process_start_time_seconds",
            "Start time of the process, in seconds since the Unix epoch",
            None,
            MetricType::Gauge,
        )?)?;
        ConstGauge::new(p.threads).encode(encoder.encode_descriptor(
            "process_threads",
            "Threads of the process",
            None,
            MetricType::Gauge,
        )?)
    }
}

struct ProcessStats {
    cpu_seconds: f64,
    resident_bytes: i64,
    virtual_bytes: i64,
    open_fds: Option<i64>,
    max_fds: Option<i64>,
    start_time_seconds: f64,
    threads: i64,
}

/// `/proc/self/stat`'s fields (after the command name, which may hold spaces and
/// parentheses: it ends at the last `)`), in clock ticks and pages.
fn process_stats() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    // Numbered as in proc(5), whose field 3 (state) is fields[0] here.
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let ticks = rustix::param::clock_ticks_per_second().max(1) as f64;
    let page = rustix::param::page_size() as u64;
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok())?;
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| i64::try_from(d.count()).unwrap_or(i64::MAX));
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))?
                .split_whitespace()
                .nth(3)?
                .parse()
                .ok()
        });
    Some(ProcessStats {
        cpu_seconds: (field(14)? + field(15)?) as f64 / ticks,
        virtual_bytes: i64::try_from(field(23)?).unwrap_or(i64::MAX),
        resident_bytes: i64::try_from(field(24)?.saturating_mul(page)).unwrap_or(i64::MAX),
        start_time_seconds: boot as f64 + field(22)? as f64 / ticks,
        threads: i64::try_from(field(20)?).unwrap_or(i64::MAX),
        open_fds,
        max_fds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_info_names_the_version_and_commit() {
        let text = Metrics::default().encode();
        let commit = if crate::COMMIT.is_empty() {
            "unknown"
        } else {
            crate::COMMIT
        };
        let want = format!(
            "switchyard_build_info{{version=\"{}\",commit=\"{commit}\"}} 1\n",
            crate::VERSION
        );
        assert!(text.contains(&want), "{text}");
        assert!(
            text.contains("# TYPE switchyard_build_info gauge"),
            "{text}"
        );
    }

    /// Configuration reloads are counted by a snake_case result, and an applied one
    /// moves the time of the last success.
    #[test]
    fn config_reloads_are_counted() {
        let m = Metrics::default();
        m.config_loaded(None);
        let at_start = m.config_loaded_seconds.get();
        assert!(at_start > 1.6e9, "{at_start}");
        m.config_loaded(Some(ConfigReload::Rejected));
        assert_eq!(m.config_loaded_seconds.get(), at_start);
        m.config_loaded(Some(ConfigReload::Applied));
        m.config_loaded(Some(ConfigReload::Applied));
        assert!(m.config_loaded_seconds.get() >= at_start);
        let text = m.encode();
        for want in [
            r#"switchyard_config_reloads_total{result="applied"} 2"#,
            r#"switchyard_config_reloads_total{result="rejected"} 1"#,
            "# TYPE switchyard_config_last_reload_success_timestamp_seconds gauge",
        ] {
            assert!(text.contains(want), "{want} in\n{text}");
        }
    }

    /// A policy's counters appear with its labels; a bad name, a reserved or repeated
    /// label, too many labels or a long value is dropped and counted; the series a
    /// policy makes stop at the bound.
    #[test]
    fn policy_counters_are_bounded() {
        let m = Metrics::default();
        let l = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        m.policy_counter_add("p", "hits", &l(&[("tenant", "a")]), 2);
        m.policy_counter_add("p", "hits", &l(&[("tenant", "a")]), 3);
        let text = m.encode();
        assert!(
            text.contains(
                r#"switchyard_policy_counter_total{policy="p",counter="hits",tenant="a"} 5"#
            ),
            "{text}"
        );
        let long = "x".repeat(MAX_POLICY_LABEL_LEN + 1);
        for (name, labels) in [
            ("Hits", l(&[])),
            ("9hits", l(&[])),
            ("hits-x", l(&[])),
            ("hits", l(&[("policy", "q")])),
            ("hits", l(&[("counter", "q")])),
            ("hits", l(&[("a", "1"), ("a", "2")])),
            (
                "hits",
                l(&[("a", "1"), ("b", "1"), ("c", "1"), ("d", "1"), ("e", "1")]),
            ),
            ("hits", l(&[("a", long.as_str())])),
            (long.as_str(), l(&[])),
        ] {
            m.policy_counter_add("p", name, &labels, 1);
        }
        let text = m.encode();
        assert!(
            text.contains(r#"switchyard_policy_counter_dropped_total{policy="p"} 9"#),
            "{text}"
        );
        for i in 0..MAX_POLICY_SERIES + 10 {
            m.policy_counter_add("q", "n", &l(&[("i", &i.to_string())]), 1);
        }
        let text = m.encode();
        let series = text
            .lines()
            .filter(|l| l.starts_with(r#"switchyard_policy_counter_total{policy="q""#))
            .count();
        assert_eq!(series, MAX_POLICY_SERIES);
        assert!(text.contains(r#"switchyard_policy_counter_dropped_total{policy="q"} 10"#));
        // An existing counter still counts once the bound is reached.
        m.policy_counter_add("q", "n", &l(&[("i", "0")]), 1);
        assert!(
            m.encode()
                .contains(r#"switchyard_policy_counter_total{policy="q",counter="n",i="0"} 2"#)
        );
    }
}
