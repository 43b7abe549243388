//! Prometheus metrics. Labels are closed enums or names from the configuration (policy
//! names), never keys or client-chosen bucket names, so the series count stays bounded.

use std::sync::Mutex;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
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
    Admit,
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

/// A mover job: a migration, a tiering pass, or an inventory (which only lists, and so
/// counts no objects in the mover metrics).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Migrate,
    Tier,
    Inventory,
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
    /// What policies count (`host.counter-add`): labels `policy`, `counter`, then the
    /// policy's own, validated by [`Metrics::policy_counter_add`].
    policy_counters: Family<Vec<(String, String)>, Counter>,
    /// `counter-add` calls dropped for breaking the bounds, by policy.
    policy_counters_dropped: Family<PolicyLabels, Counter>,
    /// Distinct counters (label sets) each policy has made.
    policy_series: Mutex<std::collections::HashMap<String, usize>>,
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
        Self {
            registry: Mutex::new(registry),
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
