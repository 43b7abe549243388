//! Policies decide placement (where a write goes) and routing (the order reads try members).
//!
//! This module holds the seam the WebAssembly host plugs into, the built-in default policy,
//! and the validation every answer goes through before the router acts on it: an answer
//! that names an unknown member, or none, is invalid whatever produced it.

pub mod cases;
pub mod check;
pub mod footprint;
pub mod scaffold;
pub mod set;
pub mod wasm;

use crate::model::MemberView;

/// Who is asking, as a policy sees it.
#[derive(Debug, Clone, Default)]
pub struct RequestView {
    pub operation: std::borrow::Cow<'static, str>,
    pub principal: Option<String>,
    pub source_ip: Option<String>,
    /// The headers the policy's `headers` setting names (0.2 policies only; see
    /// [`select_headers`]).
    pub headers: Vec<(String, String)>,
    pub phase: Phase,
    /// The tags the request sets (`x-amz-tagging`): the router gives them to the policy
    /// with the object it writes (`object.tags`).
    pub tags: Vec<(String, String)>,
}

/// Which step of a write a request is (`phase` in WIT 0.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Phase {
    #[default]
    Single,
    MultipartStart,
    MultipartPart,
    MultipartEnd,
}

impl Phase {
    /// The phase of an S3 operation, by its name.
    pub fn of(operation: &str) -> Self {
        match operation {
            "CreateMultipartUpload" => Phase::MultipartStart,
            "UploadPart" | "UploadPartCopy" => Phase::MultipartPart,
            "CompleteMultipartUpload" | "AbortMultipartUpload" => Phase::MultipartEnd,
            _ => Phase::Single,
        }
    }
}

/// Most header names a policy may ask for, and the longest value it is given: the
/// headers are copied into the guest on every call, so both stay small.
pub const MAX_POLICY_HEADERS: usize = 16;
pub const MAX_POLICY_HEADER_VALUE: usize = 1024;

/// Headers a policy never sees, whatever its setting: they carry credentials (a signature
/// replays, a token or an SSE-C key is a secret).
pub const WITHHELD_HEADERS: [&str; 6] = [
    "authorization",
    "cookie",
    "x-amz-security-token",
    "x-amz-server-side-encryption-customer-key",
    "x-amz-copy-source-server-side-encryption-customer-key",
    "proxy-authorization",
];

/// The headers of `headers` named in `wanted` (lower-case names), in the request's order:
/// values that are not text or longer than [`MAX_POLICY_HEADER_VALUE`] are left out, and so
/// are [`WITHHELD_HEADERS`].
pub fn select_headers(headers: &http::HeaderMap, wanted: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in wanted {
        if WITHHELD_HEADERS.contains(&name.as_str()) {
            continue;
        }
        for v in headers.get_all(name.as_str()) {
            if let Ok(v) = v.to_str()
                && v.len() <= MAX_POLICY_HEADER_VALUE
            {
                out.push((name.clone(), v.to_owned()));
            }
        }
    }
    out
}

/// The tags of an `x-amz-tagging` header (`k1=v1&k2=v2`, URL-encoded).
pub fn parse_tagging(header: Option<&str>) -> Vec<(String, String)> {
    header.map_or_else(Vec::new, |h| {
        url::form_urlencoded::parse(h.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
}

/// A route answer: the members to try, in order, and whether the others may be tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteAnswer {
    pub members: Vec<String>,
    /// The members left out must not be tried (WIT 0.2 `strict`).
    pub strict: bool,
}

/// The S3 errors an admission policy may refuse a request with (`deny-code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyCode {
    AccessDenied,
    InvalidRequest,
    InvalidArgument,
    EntityTooLarge,
    SlowDown,
    ServiceUnavailable,
}

/// An admission answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny { code: DenyCode, message: String },
}

/// The object a decision is about. A policy never sees the body.
#[derive(Debug, Clone, Default)]
pub struct ObjectView {
    pub bucket: String,
    pub key: String,
    pub size: Option<u64>,
    pub content_type: Option<String>,
    pub metadata: Vec<(String, String)>,
    pub age_seconds: Option<u64>,
    /// Tags the request sets (`x-amz-tagging`), for 0.2 policies.
    pub tags: Vec<(String, String)>,
}

/// The kinds of `policy-error` a policy can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    InvalidInput,
    Unavailable,
    Other,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::InvalidInput => "invalid-input",
            Refusal::Unavailable => "unavailable",
            Refusal::Other => "other",
        }
    }
}

/// What to do with one object in a tiering pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TierAction {
    Keep,
    MoveTo(String),
    CopyTo(String),
    Delete,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum PolicyError {
    /// The policy declined to decide (its own `policy-error` result): not a crash.
    #[error("policy refused ({}): {message}", kind.as_str())]
    Refused { kind: Refusal, message: String },
    /// The answer cannot be acted on.
    #[error("invalid answer: {0}")]
    InvalidAnswer(String),
    /// The policy crashed, ran out of time or memory.
    #[error("policy failed: {0}")]
    Failed(String),
}

pub trait Policy: Send + Sync + 'static {
    fn name(&self) -> &str;
    /// Members to write to; more than one is a mirrored write.
    fn place(
        &self,
        req: &RequestView,
        obj: &ObjectView,
        members: &[MemberView],
    ) -> Result<Vec<String>, PolicyError>;
    /// Members to read from, in order.
    fn route(
        &self,
        req: &RequestView,
        obj: &ObjectView,
        members: &[MemberView],
    ) -> Result<Vec<String>, PolicyError>;
}

/// Write to the first member; read members in configured order.
#[derive(Debug, Default)]
pub struct DefaultPolicy;

impl Policy for DefaultPolicy {
    fn name(&self) -> &str {
        "default"
    }

    fn place(
        &self,
        _: &RequestView,
        _: &ObjectView,
        members: &[MemberView],
    ) -> Result<Vec<String>, PolicyError> {
        Ok(members
            .first()
            .map(|m| vec![m.name.to_string()])
            .unwrap_or_default())
    }

    fn route(
        &self,
        _: &RequestView,
        _: &ObjectView,
        members: &[MemberView],
    ) -> Result<Vec<String>, PolicyError> {
        Ok(members.iter().map(|m| m.name.to_string()).collect())
    }
}

/// Checks an answer against the bucket's members: non-empty, known names, no repeats.
pub fn validate_answer(
    answer: Vec<String>,
    members: &[MemberView],
) -> Result<Vec<String>, PolicyError> {
    if answer.is_empty() {
        return Err(PolicyError::InvalidAnswer(
            "the answer names no member".into(),
        ));
    }
    // By scanning: buckets have a few members, and two hash sets (allocated, with SipHash)
    // were a quarter µs of every decision. An answer longer than the bucket fails at its
    // first repeat, so this is at most members² comparisons.
    let mut seen = vec![false; members.len()];
    for name in &answer {
        let Some(i) = members.iter().position(|m| *m.name == **name) else {
            return Err(PolicyError::InvalidAnswer(format!(
                "unknown member {name:?}"
            )));
        };
        if std::mem::replace(&mut seen[i], true) {
            return Err(PolicyError::InvalidAnswer(format!(
                "member {name:?} named twice"
            )));
        }
    }
    Ok(answer)
}

/// Checks a tiering answer for an object held by `current`: a move or a copy must name
/// another member of the bucket.
pub fn validate_tier(
    action: TierAction,
    current: &str,
    members: &[MemberView],
) -> Result<TierAction, PolicyError> {
    if let TierAction::MoveTo(to) | TierAction::CopyTo(to) = &action {
        let why = if to == current {
            "it already holds the object"
        } else if !members.iter().any(|m| m.name == *to) {
            "no such member"
        } else {
            return Ok(action);
        };
        return Err(PolicyError::InvalidAnswer(format!(
            "cannot tier {current:?} to {to:?}: {why}"
        )));
    }
    Ok(action)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str) -> MemberView<'_> {
        MemberView {
            name: name.into(),
            kind: "memory",
            labels: Vec::new().into(),
            healthy: true,
            latency_us: None,
        }
    }

    /// A policy gets the headers it named, in order, repeated ones twice; never a
    /// credential, a long value or one that is not text; and the tags of x-amz-tagging.
    #[test]
    fn headers_and_tags_reach_policies_within_bounds() {
        let mut h = http::HeaderMap::new();
        h.append("x-tenant", "acme".parse().unwrap());
        h.append("x-tenant", "second".parse().unwrap());
        h.append("user-agent", "sdk/1".parse().unwrap());
        h.append(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=k".parse().unwrap(),
        );
        h.append(
            "x-long",
            "a".repeat(MAX_POLICY_HEADER_VALUE + 1).parse().unwrap(),
        );
        h.append("x-bin", http::HeaderValue::from_bytes(b"\xff\xfe").unwrap());
        let wanted: Vec<String> = [
            "user-agent",
            "x-tenant",
            "authorization",
            "x-long",
            "x-bin",
            "absent",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let got = select_headers(&h, &wanted);
        let pairs: Vec<(&str, &str)> = got.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("user-agent", "sdk/1"),
                ("x-tenant", "acme"),
                ("x-tenant", "second")
            ]
        );
        assert_eq!(
            parse_tagging(Some("project=blue%20sky&empty=&a%26b=c")),
            [
                ("project".to_owned(), "blue sky".to_owned()),
                ("empty".to_owned(), String::new()),
                ("a&b".to_owned(), "c".to_owned()),
            ]
        );
        assert!(parse_tagging(None).is_empty());
        assert_eq!(Phase::of("CreateMultipartUpload"), Phase::MultipartStart);
        assert_eq!(Phase::of("UploadPartCopy"), Phase::MultipartPart);
        assert_eq!(Phase::of("AbortMultipartUpload"), Phase::MultipartEnd);
        assert_eq!(Phase::of("PutObject"), Phase::Single);
    }

    #[test]
    fn answers_are_validated() {
        let members = [member("a"), member("b")];
        assert!(validate_answer(vec![], &members).is_err());
        let refused = |answer: &[&str]| {
            let answer = answer.iter().map(|n| (*n).to_owned()).collect();
            validate_answer(answer, &members).unwrap_err().to_string()
        };
        assert!(refused(&["c"]).contains(r#"unknown member "c""#));
        assert!(refused(&["b", "c"]).contains(r#"unknown member "c""#));
        assert!(refused(&["a", "a"]).contains(r#"member "a" named twice"#));
        assert!(refused(&["b", "a", "b", "a"]).contains(r#"member "b" named twice"#));
        assert_eq!(
            validate_answer(vec!["b".into(), "a".into()], &members).unwrap(),
            ["b", "a"]
        );
        let p = DefaultPolicy;
        let r = RequestView::default();
        let o = ObjectView::default();
        assert_eq!(p.place(&r, &o, &members).unwrap(), ["a"]);
        assert_eq!(p.route(&r, &o, &members).unwrap(), ["a", "b"]);
    }

    #[test]
    fn tier_answers_name_another_member() {
        let members = [member("a"), member("b")];
        for ok in [
            TierAction::Keep,
            TierAction::Delete,
            TierAction::MoveTo("b".into()),
            TierAction::CopyTo("b".into()),
        ] {
            assert_eq!(validate_tier(ok.clone(), "a", &members).unwrap(), ok);
        }
        let e = validate_tier(TierAction::MoveTo("a".into()), "a", &members).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid answer: cannot tier \"a\" to \"a\": it already holds the object"
        );
        let e = validate_tier(TierAction::CopyTo("c".into()), "a", &members).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid answer: cannot tier \"a\" to \"c\": no such member"
        );
    }
}
