//! `switchyard policy test`: runs a policy against sample inputs and expected decisions,
//! the way `opa test` does, so a policy can be checked before it is dropped in.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::wasm::{CallSettings, WasmEngine, WasmPolicy, describe_call_error};
use super::{DenyCode, ObjectView, Phase, PolicyError, RequestView, TierAction, Verdict};
use crate::model::MemberView;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// The policy configuration string for every case.
    #[serde(default)]
    pub config: Option<String>,
    /// Members for every case, in order.
    #[serde(default)]
    pub members: Vec<MemberSpec>,
    #[serde(default, rename = "case")]
    pub cases: Vec<Case>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberSpec {
    pub name: String,
    #[serde(default = "default_kind")]
    pub kind: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default = "yes")]
    pub healthy: bool,
    #[serde(default)]
    pub latency_us: Option<u64>,
}

fn default_kind() -> String {
    "memory".into()
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Call {
    Admit,
    Place,
    Route,
    Tier,
}

impl Call {
    /// As CASES.toml and `policy check` write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Call::Admit => "admit",
            Call::Place => "place",
            Call::Route => "route",
            Call::Tier => "tier",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    pub call: Call,
    #[serde(default)]
    pub config: Option<String>,
    #[serde(default)]
    pub members: Option<Vec<MemberSpec>>,
    #[serde(default)]
    pub request: Option<RequestSpec>,
    pub object: ObjectSpec,
    #[serde(default)]
    pub current: Option<String>,
    #[serde(default)]
    pub expect: Option<Expect>,
    /// For `route`: whether the answer must be strict (0.2); unchecked when absent.
    #[serde(default)]
    pub strict: Option<bool>,
    #[serde(default)]
    pub expect_error: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    pub operation: String,
    #[serde(default)]
    pub principal: Option<String>,
    #[serde(default)]
    pub source_ip: Option<String>,
    /// Request headers (0.2 policies see them); names lower-case.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectSpec {
    pub bucket: String,
    pub key: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub age_seconds: Option<u64>,
    /// Tags the request sets (0.2 policies see them).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// `["a", "b"]` for place/route; `"keep"`, `"delete"`, `{ move-to = "m" }` or
/// `{ copy-to = "m" }` for tier; `"allow"` or `{ deny = "access-denied" }` for admit.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Expect {
    Members(Vec<String>),
    Word(String),
    Target(BTreeMap<String, String>),
}

#[derive(Debug)]
pub struct CaseResult {
    pub name: String,
    pub passed: bool,
    /// What happened, when it differs from what was expected.
    pub detail: String,
}

fn members_of(specs: &[MemberSpec]) -> Vec<MemberView<'_>> {
    specs
        .iter()
        .map(|m| MemberView {
            name: m.name.as_str().into(),
            kind: leak_kind(&m.kind),
            labels: m
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Vec<_>>()
                .into(),
            healthy: m.healthy,
            latency_us: m.latency_us,
        })
        .collect()
}

/// Member kinds are a closed set; anything else reads as "memory".
fn leak_kind(kind: &str) -> &'static str {
    match kind {
        "s3" => "s3",
        "azure" => "azure",
        "gcs" => "gcs",
        "fs" => "fs",
        _ => "memory",
    }
}

fn tier_expectation(e: &Expect) -> Option<TierAction> {
    match e {
        Expect::Word(w) if w == "keep" => Some(TierAction::Keep),
        Expect::Word(w) if w == "delete" => Some(TierAction::Delete),
        Expect::Target(m) if m.len() == 1 => {
            let (k, v) = m.iter().next()?;
            match k.as_str() {
                "move-to" => Some(TierAction::MoveTo(v.clone())),
                "copy-to" => Some(TierAction::CopyTo(v.clone())),
                _ => None,
            }
        }
        _ => None,
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

/// Runs every case of `file` against the component in `bytes`.
pub fn run(
    engine: &WasmEngine,
    bytes: &[u8],
    file: &CaseFile,
    base: &CallSettings,
) -> Result<Vec<CaseResult>, String> {
    let mut results = Vec::new();
    // Compiled once; each configuration string gets its own settings on the same code.
    let compiled =
        WasmPolicy::load(engine, "under-test", bytes, base.clone()).map_err(|e| e.to_string())?;
    let mut loaded: BTreeMap<String, WasmPolicy> = BTreeMap::new();
    for case in &file.cases {
        let config = case
            .config
            .clone()
            .or_else(|| file.config.clone())
            .unwrap_or_default();
        if !loaded.contains_key(&config) {
            let settings = CallSettings {
                config: config.clone().into(),
                ..base.clone()
            };
            loaded.insert(config.clone(), compiled.reconfigured(settings));
        }
        let policy = &loaded[&config];
        let members = members_of(case.members.as_deref().unwrap_or(&file.members));
        let req = case
            .request
            .as_ref()
            .map(|r| {
                let operation = leak_operation(&r.operation);
                RequestView {
                    operation: operation.into(),
                    principal: r.principal.clone(),
                    source_ip: r.source_ip.clone(),
                    headers: pairs(&r.headers),
                    phase: Phase::of(operation),
                    tags: Vec::new(),
                }
            })
            .unwrap_or(RequestView {
                operation: "GetObject".into(),
                ..RequestView::default()
            });
        let o = &case.object;
        let obj = ObjectView {
            bucket: o.bucket.clone(),
            key: o.key.clone(),
            size: o.size,
            content_type: o.content_type.clone(),
            metadata: pairs(&o.metadata),
            age_seconds: o.age_seconds,
            tags: pairs(&o.tags),
        };
        let failed = |e: super::wasm::CallError| {
            (
                Err(PolicyError::Failed(describe_call_error(&e))),
                String::new(),
            )
        };
        let (outcome, shown): (Result<Option<Expectable>, PolicyError>, String) = match case.call {
            Call::Admit => match policy.admit(&req, &obj) {
                Err(e) => failed(e),
                Ok(Ok(v)) => (Ok(Some(Expectable::Verdict(v.clone()))), show_verdict(&v)),
                Ok(Err(e)) => (Err(e), String::new()),
            },
            Call::Place => match policy.place(&req, &obj, &members) {
                Err(e) => failed(e),
                Ok(Ok(v)) => {
                    let shown = format!("{v:?}");
                    (Ok(Some(Expectable::Members(v, None))), shown)
                }
                Ok(Err(e)) => (Err(e), String::new()),
            },
            Call::Route => match policy.route(&req, &obj, &members) {
                Err(e) => failed(e),
                Ok(Ok(v)) => {
                    let shown =
                        format!("{:?}{}", v.members, if v.strict { " (strict)" } else { "" });
                    (
                        Ok(Some(Expectable::Members(v.members, Some(v.strict)))),
                        shown,
                    )
                }
                Ok(Err(e)) => (Err(e), String::new()),
            },
            Call::Tier => {
                let current = case.current.clone().unwrap_or_default();
                match policy.tier(&obj, &current, &members) {
                    Err(e) => failed(e),
                    Ok(Ok(a)) => {
                        let shown = show_tier(&a);
                        (Ok(Some(Expectable::Tier(a))), shown)
                    }
                    Ok(Err(e)) => (Err(e), String::new()),
                }
            }
        };
        let (passed, detail) = judge(case, outcome, &shown);
        results.push(CaseResult {
            name: case.name.clone(),
            passed,
            detail,
        });
    }
    Ok(results)
}

enum Expectable {
    /// Members, and for a route whether the answer was strict.
    Members(Vec<String>, Option<bool>),
    Tier(TierAction),
    Verdict(Verdict),
}

fn pairs(m: &BTreeMap<String, String>) -> Vec<(String, String)> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The WIT name of a deny code, as cases write it.
fn deny_code_name(c: DenyCode) -> &'static str {
    match c {
        DenyCode::AccessDenied => "access-denied",
        DenyCode::InvalidRequest => "invalid-request",
        DenyCode::InvalidArgument => "invalid-argument",
        DenyCode::EntityTooLarge => "entity-too-large",
        DenyCode::SlowDown => "slow-down",
        DenyCode::ServiceUnavailable => "service-unavailable",
    }
}

pub(crate) fn show_verdict(v: &Verdict) -> String {
    match v {
        Verdict::Allow => "allow".into(),
        Verdict::Deny { code, message } => format!("deny {} ({message})", deny_code_name(*code)),
    }
}

/// Whether an admission answer is the one `e` expects; none when `e` is not a verdict.
fn verdict_matches(e: &Expect, got: &Verdict) -> Option<bool> {
    match (e, got) {
        (Expect::Word(w), v) if w == "allow" => Some(*v == Verdict::Allow),
        (Expect::Target(m), v) if m.len() == 1 && m.contains_key("deny") => Some(match v {
            Verdict::Deny { code, .. } => m["deny"] == deny_code_name(*code),
            Verdict::Allow => false,
        }),
        _ => None,
    }
}

fn judge(
    case: &Case,
    outcome: Result<Option<Expectable>, PolicyError>,
    shown: &str,
) -> (bool, String) {
    match (&case.expect_error, outcome) {
        (Some(want), Err(PolicyError::Refused { kind, message })) => {
            if kind.as_str() == want {
                (true, String::new())
            } else {
                (
                    false,
                    format!(
                        "expected policy-error {want}, got {}: {message}",
                        kind.as_str()
                    ),
                )
            }
        }
        (Some(want), Err(e)) => (false, format!("expected policy-error {want}, got {e}")),
        (Some(want), Ok(_)) => (
            false,
            format!("expected policy-error {want}, got the answer {shown}"),
        ),
        (None, Err(e)) => (false, e.to_string()),
        (None, Ok(got)) => match (&case.expect, got) {
            (None, _) => (false, "the case has neither expect nor expect_error".into()),
            (Some(Expect::Members(want)), Some(Expectable::Members(got, strict))) => {
                if *want != got {
                    (false, format!("expected {want:?}, got {shown}"))
                } else if let (Some(w), Some(g)) = (case.strict, strict)
                    && w != g
                {
                    (false, format!("expected strict = {w}, got {shown}"))
                } else {
                    (true, String::new())
                }
            }
            (Some(e), Some(Expectable::Verdict(got))) => match verdict_matches(e, &got) {
                Some(true) => (true, String::new()),
                Some(false) => (false, format!("expected {e:?}, got {shown}")),
                None => (
                    false,
                    format!("expect = {e:?} is not a verdict (\"allow\" or {{ deny = \"code\" }})"),
                ),
            },
            (Some(e), Some(Expectable::Tier(got))) => match tier_expectation(e) {
                Some(want) if want == got => (true, String::new()),
                Some(want) => (
                    false,
                    format!("expected {}, got {}", show_tier(&want), show_tier(&got)),
                ),
                None => (
                    false,
                    format!(
                        "expect = {e:?} is not a tier action (keep, delete, {{ move-to = .. }}, {{ copy-to = .. }})"
                    ),
                ),
            },
            (Some(e), _) => (
                false,
                format!(
                    "expect = {e:?} does not fit a {:?} call; got {shown}",
                    case.call
                ),
            ),
        },
    }
}

/// Operations are a closed set in the host's own types.
fn leak_operation(op: &str) -> &'static str {
    const OPS: [&str; 20] = [
        "PutObject",
        "GetObject",
        "HeadObject",
        "CopyObject",
        "CopySource",
        "DeleteObject",
        "DeleteObjects",
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPartCopy",
        "CompleteMultipartUpload",
        "AbortMultipartUpload",
        "ListParts",
        "ListMultipartUploads",
        "ListObjectsV2",
        "ListObjects",
        "HeadBucket",
        "PostObject",
        "Tier",
        "Migrate",
    ];
    OPS.iter().find(|o| **o == op).copied().unwrap_or("Other")
}
