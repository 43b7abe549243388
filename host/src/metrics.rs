//! Prometheus metrics. Labels are closed enums or names from the configuration (policy
//! names), never keys or client-chosen bucket names, so the series count stays bounded.

use std::sync::Mutex;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
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

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Call {
    Place,
    Route,
    Tier,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum ReloadResult {
    Loaded,
    Rejected,
    Unloaded,
}

/// A mover job: a migration or a tiering pass.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Migrate,
    Tier,
}

/// What the mover did with one object.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
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

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MoverLabels {
    pub job: JobKind,
    pub outcome: MoverOutcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub policy: String,
    pub call: Call,
    pub outcome: Outcome,
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

pub struct Metrics {
    registry: Mutex<Registry>,
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
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("switchyard");
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
        Self {
            registry: Mutex::new(registry),
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
    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Ok(r) = self.registry.lock() {
            let _ = prometheus_client::encoding::text::encode(&mut out, &r);
        }
        out
    }

    pub fn decision(&self, policy: &str, call: Call, outcome: Outcome) {
        self.decisions
            .get_or_create(&DecisionLabels {
                policy: policy.to_owned(),
                call,
                outcome,
            })
            .inc();
    }

    pub fn reload(&self, policy: &str, result: ReloadResult) {
        self.reloads
            .get_or_create(&ReloadLabels {
                policy: policy.to_owned(),
                result,
            })
            .inc();
    }
}
