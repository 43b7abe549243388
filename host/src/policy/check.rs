//! `switchyard policy check`: asks a policy for decisions on sample inputs and judges
//! every answer as the server would.
//!
//! Loading and the probe only show that a component implements the world and answers
//! without crashing: the probe takes any answer. A policy that names an unknown member,
//! or none, passes both and then fails every request it decides. So the check asks
//! place, route and tier about sample requests and objects, with made-up members (healthy
//! and not, labelled `tier`, `region`, of every kind) or with a configured bucket's own,
//! and validates each answer with the server's rules ([`validate_answer`],
//! [`validate_tier`]).

use std::fmt::Write as _;
use std::time::Duration;

pub use super::cases::Call;
use super::cases::show_verdict;
use super::wasm::{
    CallError, CallSettings, ComponentInfo, EngineSettings, LoadError, WasmEngine, WasmPolicy,
    describe_call_error,
};
use super::{
    ObjectView, Phase, PolicyError, RequestView, RouteAnswer, TierAction, validate_answer,
    validate_tier,
};
use crate::config::Config;
use crate::model::MemberView;

/// The members of one sample bucket, with the name the table shows for them.
#[derive(Debug, Clone)]
pub struct MemberSet {
    pub name: String,
    pub members: Vec<MemberView<'static>>,
}

/// How the server would take an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// An answer the server acts on.
    Valid,
    /// The policy declined to decide (`policy-error`): an answer, not a bug, but the
    /// request it stands for fails (fail-closed) or falls back to the built-in default.
    Refused,
    /// An answer the server refuses: every request like this one would fail.
    Invalid(String),
    /// A trap, the deadline or the memory limit: a bug in the policy.
    Failed(String),
}

/// One question and its answer.
#[derive(Debug, Clone)]
pub struct Line {
    pub call: Call,
    /// The [`MemberSet`]'s name.
    pub members: String,
    /// The request and object, in short.
    pub input: String,
    /// What the policy answered.
    pub answer: String,
    pub verdict: Verdict,
}

/// Every question asked, in order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub lines: Vec<Line>,
}

impl Report {
    /// No answer the server would refuse, no failed call.
    pub fn passed(&self) -> bool {
        self.lines
            .iter()
            .all(|l| matches!(l.verdict, Verdict::Valid | Verdict::Refused))
    }

    /// Answers by verdict: valid, refused, invalid, failed.
    pub fn counts(&self) -> [usize; 4] {
        let mut n = [0; 4];
        for l in &self.lines {
            n[match l.verdict {
                Verdict::Valid => 0,
                Verdict::Refused => 1,
                Verdict::Invalid(_) => 2,
                Verdict::Failed(_) => 3,
            }] += 1;
        }
        n
    }

    /// The calls every one of whose answers was a refusal: with these inputs, every such
    /// request would fail (or fall back).
    pub fn always_refused(&self) -> Vec<Call> {
        [Call::Admit, Call::Place, Call::Route, Call::Tier]
            .into_iter()
            .filter(|c| {
                let mut of_call = self.lines.iter().filter(|l| l.call == *c).peekable();
                of_call.peek().is_some() && of_call.all(|l| l.verdict == Verdict::Refused)
            })
            .collect()
    }
}

impl std::fmt::Display for Report {
    /// One line per question: verdict, call, members, input → answer.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let width = |g: fn(&Line) -> usize| self.lines.iter().map(g).max().unwrap_or(0);
        let (wm, wi) = (
            width(|l| l.members.chars().count()),
            width(|l| l.input.chars().count()),
        );
        for l in &self.lines {
            let (mark, why) = match &l.verdict {
                Verdict::Valid => ("ok", String::new()),
                Verdict::Refused => ("refused", String::new()),
                Verdict::Invalid(why) => ("INVALID", format!(": {why}")),
                Verdict::Failed(why) => ("FAILED", format!(": {why}")),
            };
            writeln!(
                f,
                "  {mark:<8} {:<5}  {:<wm$}  {:<wi$}  -> {}{why}",
                l.call.as_str(),
                l.members,
                l.input,
                l.answer,
            )?;
        }
        Ok(())
    }
}

/// Made-up members: two tiers, two regions, every kind, healthy and not, with and
/// without a measured latency, and a bucket of one.
pub fn sample_members() -> Vec<MemberSet> {
    let m = |name: &str, kind: &'static str, labels: &[(&str, &str)], latency: Option<u64>| {
        MemberView {
            name: name.to_owned().into(),
            kind,
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>()
                .into(),
            healthy: true,
            latency_us: latency,
        }
    };
    let hot = m(
        "local-hot",
        "fs",
        &[("region", "eu"), ("tier", "hot")],
        Some(800),
    );
    let cold = m(
        "s3-cold",
        "s3",
        &[("region", "us"), ("tier", "cold")],
        Some(25_000),
    );
    let down = |m: &MemberView<'static>| MemberView {
        healthy: false,
        ..m.clone()
    };
    vec![
        MemberSet {
            name: "hot+cold".into(),
            members: vec![hot.clone(), cold.clone()],
        },
        MemberSet {
            name: "regions".into(),
            members: vec![
                m(
                    "aws-eu",
                    "s3",
                    &[("region", "eu"), ("tier", "hot")],
                    Some(12_000),
                ),
                m(
                    "azure-us",
                    "azure",
                    &[("region", "us"), ("tier", "hot")],
                    Some(30_000),
                ),
                m("gcs-us", "gcs", &[("region", "us"), ("tier", "cold")], None),
            ],
        },
        MemberSet {
            name: "hot+cold, hot down".into(),
            members: vec![down(&hot), cold.clone()],
        },
        MemberSet {
            name: "hot+cold, all down".into(),
            members: vec![down(&hot), down(&cold)],
        },
        MemberSet {
            name: "one member".into(),
            members: vec![m("mem", "memory", &[], None)],
        },
    ]
}

/// Why a configured bucket cannot lend its members.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    #[error("no bucket {0:?} in the configuration (configured: {1})")]
    NoSuchBucket(String, String),
}

/// The members of configured bucket `bucket` as a policy sees them when the server
/// starts (names, kinds and labels from the configuration, latency not measured yet):
/// all healthy, then each one down, then all down.
pub fn bucket_members(config: &Config, bucket: &str) -> Result<Vec<MemberSet>, BucketError> {
    let Some(b) = config.buckets.get(bucket) else {
        let known: Vec<&str> = config.buckets.keys().map(String::as_str).collect();
        return Err(BucketError::NoSuchBucket(
            bucket.to_owned(),
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            },
        ));
    };
    // Validated configurations name only configured backends.
    let members: Vec<MemberView<'static>> = b
        .members
        .iter()
        .filter_map(|name| {
            let backend = config.backends.get(name)?;
            Some(MemberView {
                name: name.clone().into(),
                kind: backend.kind_name(),
                labels: backend
                    .common()
                    .labels
                    .into_iter()
                    .collect::<Vec<_>>()
                    .into(),
                healthy: true,
                latency_us: None,
            })
        })
        .collect();
    let mut sets = vec![MemberSet {
        name: bucket.to_owned(),
        members: members.clone(),
    }];
    if members.len() > 1 {
        for (i, m) in members.iter().enumerate() {
            let mut down = members.clone();
            down[i].healthy = false;
            sets.push(MemberSet {
                name: format!("{bucket}, {} down", m.name),
                members: down,
            });
        }
    }
    sets.push(MemberSet {
        name: format!("{bucket}, all down"),
        members: members
            .iter()
            .map(|m| MemberView {
                healthy: false,
                ..m.clone()
            })
            .collect(),
    });
    Ok(sets)
}

/// A member as the check's header shows it: `name (kind, label=value, ..., down)`.
pub fn describe_member(m: &MemberView) -> String {
    let mut s = format!("{} ({}", m.name, m.kind);
    for (k, v) in m.labels.iter() {
        let _ = write!(s, ", {k}={v}");
    }
    if let Some(us) = m.latency_us {
        let _ = write!(s, ", {us} µs");
    }
    if !m.healthy {
        s.push_str(", down");
    }
    s.push(')');
    s
}

/// The sample requests: operations, principals (and none), keys, sizes (and none), a
/// content type and metadata, in `bucket`.
fn requests(bucket: &str, headers: &[(String, String)]) -> Vec<(Call, RequestView, ObjectView)> {
    let obj = |key: &str, size: Option<u64>| ObjectView {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        size,
        ..ObjectView::default()
    };
    let req = |operation: &'static str, principal: Option<&str>| RequestView {
        operation: operation.into(),
        principal: principal.map(str::to_owned),
        source_ip: Some("192.0.2.10".into()),
        phase: Phase::of(operation),
        headers: headers.to_vec(),
        ..RequestView::default()
    };
    vec![
        (
            Call::Place,
            req("PutObject", Some("alice")),
            ObjectView {
                content_type: Some("image/jpeg".into()),
                ..obj("photos/cat.jpg", Some(48 * 1024))
            },
        ),
        (
            Call::Place,
            RequestView {
                tags: vec![("project".into(), "atlas".into())],
                ..req("PutObject", None)
            },
            ObjectView {
                tags: vec![("project".into(), "atlas".into())],
                ..obj("eu/reports/2026.pdf", Some(5 * 1024 * 1024 * 1024))
            },
        ),
        (
            Call::Place,
            req("CreateMultipartUpload", Some("acme-us")),
            obj("us/backup.tar", None),
        ),
        (
            Call::Place,
            req("CopyObject", Some("bob")),
            ObjectView {
                metadata: vec![("team".into(), "ops".into())],
                ..obj("logs/app.log", Some(0))
            },
        ),
        (
            Call::Route,
            req("GetObject", Some("alice")),
            obj("photos/cat.jpg", None),
        ),
        (
            Call::Route,
            req("HeadObject", None),
            obj("eu/reports/2026.pdf", None),
        ),
    ]
}

/// The sample objects of a tiering pass: a new one and an old one.
fn stored_objects(bucket: &str) -> Vec<ObjectView> {
    vec![
        ObjectView {
            bucket: bucket.to_owned(),
            key: "photos/cat.jpg".into(),
            size: Some(48 * 1024),
            content_type: Some("image/jpeg".into()),
            age_seconds: Some(3600),
            ..ObjectView::default()
        },
        ObjectView {
            bucket: bucket.to_owned(),
            key: "logs/2024/app.log".into(),
            size: Some(10 * 1024 * 1024),
            age_seconds: Some(400 * 86_400),
            ..ObjectView::default()
        },
    ]
}

fn describe_request(req: &RequestView, obj: &ObjectView) -> String {
    format!(
        "{} by {} {} ({})",
        req.operation,
        req.principal.as_deref().unwrap_or("anonymous"),
        obj.key,
        obj.size.map_or("size unknown".to_owned(), show_bytes),
    )
}

fn describe_stored(obj: &ObjectView, current: &str) -> String {
    let age = obj.age_seconds.unwrap_or(0);
    let age = if age >= 86_400 {
        format!("{}d", age / 86_400)
    } else {
        format!("{}h", age / 3600)
    };
    format!(
        "{} ({}, {age} old) on {current}",
        obj.key,
        show_bytes(obj.size.unwrap_or(0))
    )
}

/// `48 KiB`, `5 GiB`, `1000 B`: the largest binary unit that divides the count.
pub fn show_bytes(n: u64) -> String {
    for (unit, size) in [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n >= size && n.is_multiple_of(size) {
            return format!("{} {unit}", n / size);
        }
    }
    format!("{n} B")
}

fn show_route(a: &RouteAnswer) -> String {
    if a.strict {
        format!("{:?} strict", a.members)
    } else {
        format!("{:?}", a.members)
    }
}

fn show_tier(a: &TierAction) -> String {
    match a {
        TierAction::Keep => "keep".into(),
        TierAction::Delete => "delete".into(),
        TierAction::MoveTo(m) => format!("move-to {m}"),
        TierAction::CopyTo(m) => format!("copy-to {m}"),
    }
}

/// The answer and verdict of one call, judged by `validate`.
fn judge<T>(
    result: Result<Result<T, PolicyError>, CallError>,
    show: impl Fn(&T) -> String,
    validate: impl FnOnce(T) -> Result<T, PolicyError>,
) -> (String, Verdict) {
    match result {
        Err(e) => ("-".into(), Verdict::Failed(describe_call_error(&e))),
        Ok(Err(PolicyError::Refused { kind, message })) => (
            format!("policy-error {}: {message}", kind.as_str()),
            Verdict::Refused,
        ),
        Ok(Err(e)) => ("-".into(), Verdict::Failed(e.to_string())),
        Ok(Ok(answer)) => {
            let shown = show(&answer);
            match validate(answer) {
                Ok(_) => (shown, Verdict::Valid),
                Err(e) => (shown, Verdict::Invalid(e.to_string())),
            }
        }
    }
}

/// Asks `policy` every sample question with each set of members, objects in `bucket`.
/// Tiering is asked for an object on the first member and on the last.
/// `headers` go with every request (`--header`), as if the policy's `headers` setting
/// named them.
pub fn run(
    policy: &WasmPolicy,
    sets: &[MemberSet],
    bucket: &str,
    headers: &[(String, String)],
) -> Report {
    let mut lines = Vec::new();
    // Admission sees no members: asked once per request, for policies that admit (0.2).
    if policy.admits() {
        for (_, req, obj) in requests(bucket, headers) {
            let (answer, verdict) = judge(policy.admit(&req, &obj), show_verdict, Ok);
            lines.push(Line {
                call: Call::Admit,
                members: "-".into(),
                input: describe_request(&req, &obj),
                answer,
                verdict,
            });
        }
    }
    for set in sets {
        let members = &set.members;
        for (call, req, obj) in requests(bucket, headers) {
            let (answer, verdict) = match call {
                Call::Route => judge(policy.route(&req, &obj, members), show_route, |a| {
                    validate_answer(a.members, members).map(|m| RouteAnswer {
                        members: m,
                        strict: a.strict,
                    })
                }),
                _ => judge(
                    policy.place(&req, &obj, members),
                    |names| format!("{names:?}"),
                    |names| validate_answer(names, members),
                ),
            };
            lines.push(Line {
                call,
                members: set.name.clone(),
                input: describe_request(&req, &obj),
                answer,
                verdict,
            });
        }
        let mut currents: Vec<&str> = members.iter().map(|m| &*m.name).collect();
        if currents.len() > 2 {
            currents.drain(1..currents.len() - 1);
        }
        for obj in stored_objects(bucket) {
            for current in &currents {
                let (answer, verdict) =
                    judge(policy.tier(&obj, current, members), show_tier, |action| {
                        validate_tier(action, current, members)
                    });
                lines.push(Line {
                    call: Call::Tier,
                    members: set.name.clone(),
                    input: describe_stored(&obj, current),
                    answer,
                    verdict,
                });
            }
        }
    }
    Report { lines }
}

/// What the check's header says of the settings a policy ran with.
pub fn describe_settings(s: &CallSettings) -> String {
    format!(
        "timeout {}, memory limit {}, config {:?}",
        humantime_serde::re::humantime::format_duration(s.timeout),
        show_bytes(s.memory_bytes),
        &*s.config,
    )
}

/// The settings to check with: `[plugins]` and `[policies.NAME]` of `config` when given,
/// the built-in defaults otherwise, then `overrides` on top.
pub fn settings(config: Option<&Config>, name: &str, overrides: &Overrides) -> CallSettings {
    let mut s = match config {
        Some(c) => super::set::call_settings(&c.plugins, c.policies.get(name)),
        None => CallSettings::default(),
    };
    if let Some(c) = &overrides.policy_config {
        s.config = c.as_str().into();
    }
    if let Some(t) = overrides.timeout {
        s.timeout = t;
    }
    if let Some(m) = overrides.memory_limit {
        s.memory_bytes = m;
    }
    s
}

/// Why a check could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Bucket(#[from] BucketError),
    #[error("{0}")]
    Engine(String),
    #[error(transparent)]
    Load(#[from] LoadError),
}

/// What `policy check` found.
#[derive(Debug)]
pub struct Checked {
    pub info: ComponentInfo,
    /// How long the probe took (the server's check before it swaps a policy in).
    pub probe: Duration,
    pub settings: CallSettings,
    /// Where `settings` come from, in words.
    pub settings_from: String,
    /// The members the questions were asked with.
    pub members: Vec<MemberSet>,
    pub report: Report,
}

/// Loads the component in `bytes`, probes it as the server does, and asks it the sample
/// questions: with the members of `bucket` of `config` when given, made-up ones
/// otherwise. It runs with the settings of `[policies.NAME]` (NAME: the bucket's policy,
/// else `name`) and `[plugins]` of `config`, under `overrides`.
pub fn check(
    bytes: &[u8],
    name: &str,
    config: Option<&Config>,
    bucket: Option<&str>,
    overrides: &Overrides,
) -> Result<Checked, CheckError> {
    let (members, bucket_name) = match (config, bucket) {
        (Some(c), Some(b)) => (bucket_members(c, b)?, b),
        _ => (sample_members(), "data"),
    };
    let policy_name = config
        .zip(bucket)
        .and_then(|(c, b)| c.buckets.get(b))
        .map(|b| b.policy.as_str())
        .filter(|p| *p != "default")
        .unwrap_or(name);
    let settings = settings(config, policy_name, overrides);
    let mut settings_from = match config {
        Some(c) if c.policies.contains_key(policy_name) => {
            format!("[policies.{policy_name}] and [plugins] of the configuration")
        }
        Some(_) => format!("[plugins] of the configuration (no [policies.{policy_name}])"),
        None => "built-in defaults".to_owned(),
    };
    let flags: Vec<&str> = [
        overrides
            .policy_config
            .is_some()
            .then_some("--policy-config"),
        overrides.timeout.is_some().then_some("--timeout"),
        overrides.memory_limit.is_some().then_some("--memory-limit"),
        (!overrides.headers.is_empty()).then_some("--header"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !flags.is_empty() {
        let _ = write!(settings_from, ", {}", flags.join(", "));
    }
    // The engine's memory slots are sized for this policy's limit, as the server sizes
    // them for the largest limit it runs with.
    let engine = WasmEngine::new(&EngineSettings {
        max_memory_bytes: settings.memory_bytes,
        ..EngineSettings::default()
    })
    .map_err(CheckError::Engine)?;
    let policy = WasmPolicy::load(&engine, policy_name, bytes, settings.clone())?;
    let probe = policy.probe()?;
    let report = run(&policy, &members, bucket_name, &overrides.headers);
    Ok(Checked {
        info: policy.info().clone(),
        probe,
        settings,
        settings_from,
        members,
        report,
    })
}

/// Settings given on the command line, over those of the configuration.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// The policy's configuration string.
    pub policy_config: Option<String>,
    pub timeout: Option<Duration>,
    pub memory_limit: Option<u64>,
    /// Request headers every sample request carries (lower-case names).
    pub headers: Vec<(String, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::from_toml(text).unwrap()
    }

    const BUCKET: &str = r#"version = 1
[plugins]
dir = "/nonexistent/plugins"
timeout = "80ms"
[policies.pick]
config = "x=1"
memory_limit = 1048576
allow_env = ["REGION"]
[backends.eu]
kind = "fs"
root = "/nonexistent/eu"
labels = { tier = "hot", region = "eu" }
[backends.us]
kind = "memory"
[backends.other]
kind = "memory"
[buckets.data]
members = ["us", "eu"]
policy = "pick"
"#;

    /// The members come in the bucket's order with their kinds and labels (sorted by
    /// key, as the server gives them), then with each one down and all down.
    #[test]
    fn a_bucket_lends_its_members() {
        let c = config(BUCKET);
        let sets = bucket_members(&c, "data").unwrap();
        let names: Vec<&str> = sets.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["data", "data, us down", "data, eu down", "data, all down"]
        );
        let shown: Vec<String> = sets[0].members.iter().map(describe_member).collect();
        assert_eq!(shown, ["us (memory)", "eu (fs, region=eu, tier=hot)"]);
        assert!(sets[0].members.iter().all(|m| m.healthy));
        let health =
            |i: usize| -> Vec<bool> { sets[i].members.iter().map(|m| m.healthy).collect() };
        assert_eq!(health(1), [false, true]);
        assert_eq!(health(2), [true, false]);
        assert_eq!(health(3), [false, false]);
        let e = bucket_members(&c, "nope").unwrap_err().to_string();
        assert_eq!(
            e,
            "no bucket \"nope\" in the configuration (configured: data)"
        );
    }

    #[test]
    fn settings_come_from_the_configuration_then_the_flags() {
        let c = config(BUCKET);
        let s = settings(Some(&c), "pick", &Overrides::default());
        assert_eq!(s.timeout, Duration::from_millis(80));
        assert_eq!(s.memory_bytes, 1 << 20);
        assert_eq!(&*s.config, "x=1");
        assert_eq!(s.grants.env, ["REGION"]);
        let s = settings(
            Some(&c),
            "pick",
            &Overrides {
                policy_config: Some("y=2".into()),
                timeout: Some(Duration::from_secs(2)),
                memory_limit: Some(64 << 20),
                ..Overrides::default()
            },
        );
        assert_eq!(
            describe_settings(&s),
            "timeout 2s, memory limit 64 MiB, config \"y=2\""
        );
        // Another policy: [plugins] only.
        let s = settings(Some(&c), "other", &Overrides::default());
        assert_eq!(
            describe_settings(&s),
            "timeout 80ms, memory limit 64 MiB, config \"\""
        );
        let s = settings(None, "pick", &Overrides::default());
        assert_eq!(
            describe_settings(&s),
            "timeout 50ms, memory limit 64 MiB, config \"\""
        );
    }

    /// Every sample set is one a bucket can have (members, unique names), and the samples
    /// cover what the issue asked for: unhealthy members, tier and region labels, every
    /// kind.
    #[test]
    fn the_samples_cover_health_labels_and_kinds() {
        let sets = sample_members();
        let all: Vec<&MemberView> = sets.iter().flat_map(|s| &s.members).collect();
        for set in &sets {
            assert!(!set.members.is_empty());
            let mut names: Vec<&str> = set.members.iter().map(|m| &*m.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), set.members.len(), "{}", set.name);
        }
        assert!(all.iter().any(|m| !m.healthy));
        assert!(sets.iter().any(|s| s.members.iter().all(|m| !m.healthy)));
        for kind in ["s3", "azure", "gcs", "fs", "memory"] {
            assert!(all.iter().any(|m| m.kind == kind), "{kind}");
        }
        for label in [
            ("tier", "hot"),
            ("tier", "cold"),
            ("region", "eu"),
            ("region", "us"),
        ] {
            assert!(
                all.iter()
                    .any(|m| m.labels.contains(&(label.0.into(), label.1.into()))),
                "{label:?}"
            );
        }
    }

    #[test]
    fn reports_pass_on_valid_answers_and_refusals_only() {
        let line = |call, verdict| Line {
            call,
            members: "m".into(),
            input: "i".into(),
            answer: "a".into(),
            verdict,
        };
        let mut r = Report {
            lines: vec![
                line(Call::Place, Verdict::Valid),
                line(Call::Route, Verdict::Refused),
            ],
        };
        assert!(r.passed());
        assert_eq!(r.always_refused(), [Call::Route]);
        r.lines.push(line(Call::Tier, Verdict::Invalid("x".into())));
        assert!(!r.passed());
        r.lines.pop();
        r.lines.push(line(Call::Tier, Verdict::Failed("x".into())));
        assert!(!r.passed());
        assert_eq!(r.counts(), [1, 1, 0, 1]);
        assert_eq!(show_bytes(48 * 1024), "48 KiB");
        assert_eq!(show_bytes(5 << 30), "5 GiB");
        assert_eq!(show_bytes(1000), "1000 B");
    }
}
