//! Policies decide placement (where a write goes) and routing (the order reads try members).
//!
//! This module holds the seam the WebAssembly host plugs into, the built-in default policy,
//! and the validation every answer goes through before the router acts on it: an answer
//! that names an unknown member, or none, is invalid whatever produced it.

use std::collections::HashSet;

pub mod cases;
pub mod set;
pub mod wasm;

use crate::model::MemberView;

/// Who is asking, as a policy sees it.
#[derive(Debug, Clone, Default)]
pub struct RequestView {
    pub operation: &'static str,
    pub principal: Option<String>,
    pub source_ip: Option<String>,
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
            .map(|m| vec![m.name.clone()])
            .unwrap_or_default())
    }

    fn route(
        &self,
        _: &RequestView,
        _: &ObjectView,
        members: &[MemberView],
    ) -> Result<Vec<String>, PolicyError> {
        Ok(members.iter().map(|m| m.name.clone()).collect())
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
    let known: HashSet<&str> = members.iter().map(|m| m.name.as_str()).collect();
    let mut seen = HashSet::new();
    for name in &answer {
        if !known.contains(name.as_str()) {
            return Err(PolicyError::InvalidAnswer(format!(
                "unknown member {name:?}"
            )));
        }
        if !seen.insert(name.as_str()) {
            return Err(PolicyError::InvalidAnswer(format!(
                "member {name:?} named twice"
            )));
        }
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str) -> MemberView {
        MemberView {
            name: name.into(),
            kind: "memory",
            labels: vec![],
            healthy: true,
            latency_us: None,
        }
    }

    #[test]
    fn answers_are_validated() {
        let members = [member("a"), member("b")];
        assert!(validate_answer(vec![], &members).is_err());
        assert!(validate_answer(vec!["c".into()], &members).is_err());
        assert!(validate_answer(vec!["a".into(), "a".into()], &members).is_err());
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
}
