//! AWS IAM policies and S3 bucket policies: parsing, validation and evaluation.
//!
//! A [`PolicyDocument`] is parsed once (JSON through `s3s-policy`'s model, then checked
//! against the subset described in `docs/access-control-language.md` and compiled), and
//! [`evaluate`] decides one request against a user's identity policies and the bucket's
//! policy. Evaluation does not allocate: it runs on every request.
//!
//! Evaluation follows AWS's logic for one account: a matching Deny anywhere wins; else a
//! matching Allow from an identity policy, or from a bucket-policy statement whose principal
//! matches, allows; else the request is implicitly denied.

use std::fmt;
use std::net::IpAddr;

mod acl;
mod condition;
mod parse;
mod pattern;
mod statement;
#[cfg(test)]
mod tests;

pub use acl::AclOn;
use statement::{Effect, Statement};

/// What a document is attached to, which decides what it may contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyKind {
    /// Attached to a user or group: no Principal; applies to that user.
    Identity,
    /// Attached to a bucket: every statement names its principals, and every resource lies
    /// inside this bucket.
    Bucket { bucket: String },
}

/// A parsed, validated, pre-compiled policy document.
#[derive(Debug, Clone)]
pub struct PolicyDocument {
    source: String,
    kind: PolicyKind,
    statements: Vec<Statement>,
}

/// Why a policy document was refused; the message names the element at fault, e.g.
/// `Statement[2].Condition: operator "DateGreaterThan" is not supported`.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct IamError(parse::ParseError);

impl PolicyDocument {
    pub fn parse(json: &str, kind: PolicyKind) -> Result<Self, IamError> {
        let statements = parse::parse(json, &kind).map_err(IamError)?;
        Ok(Self {
            source: json.to_owned(),
            kind,
            statements,
        })
    }

    /// The JSON exactly as given (GetBucketPolicy returns it).
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn kind(&self) -> &PolicyKind {
        &self.kind
    }

    /// For GetBucketPolicyStatus: whether some Allow statement applies to anonymous
    /// requests. AWS's rule, simplified to the keys supported here: a statement is not
    /// public when one of its conditions (without `IfExists`) limits it to `aws:SourceIp`
    /// blocks none of which is `/0`, or to signed-in users (a positive String condition on
    /// `aws:username` or `aws:userid`, which anonymous requests do not have). Actions are
    /// not considered: any allowed action counts. Identity policies are never public.
    pub fn is_public(&self) -> bool {
        self.statements.iter().any(|s| {
            s.effect == Effect::Allow
                && s.principal
                    .as_ref()
                    .is_some_and(|p| p.matches(Principal::Anonymous))
                && !s.conditions.iter().any(|c| c.excludes_the_public())
        })
    }

    /// Whether this document has a say on `resource` in the bucket-policy position: only
    /// the bucket it was parsed for, and never ListAllMyBuckets.
    fn governs(&self, resource: Resource<'_>) -> bool {
        match (&self.kind, resource) {
            (
                PolicyKind::Bucket { bucket },
                Resource::Bucket(b) | Resource::Object { bucket: b, .. },
            ) => bucket == b,
            _ => false,
        }
    }
}

/// Who sends the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal<'a> {
    Anonymous,
    User { name: &'a str, access_key: &'a str },
}

impl Principal<'_> {
    /// The value of `aws:PrincipalType`.
    fn type_name(&self) -> &'static str {
        match self {
            Principal::Anonymous => "Anonymous",
            Principal::User { .. } => "User",
        }
    }
}

/// What the request brings to condition evaluation.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub principal: Principal<'a>,
    /// `aws:SourceIp`; `None` makes the key absent.
    pub source_ip: Option<IpAddr>,
    /// `aws:SecureTransport`.
    pub secure_transport: bool,
    /// Request-specific keys, absent unless listed: `s3:prefix`, `s3:delimiter`,
    /// `s3:max-keys`, `s3:x-amz-acl`, `s3:signatureversion` (`AWS4-HMAC-SHA256`), and
    /// `s3:existingobjecttag/<tag-key>`, `s3:requestobjecttag/<tag-key>`. Names are
    /// lower-case except the tag key, which keeps its case (S3 tag keys are
    /// case-sensitive). A key listed twice: the first counts.
    pub keys: &'a [(&'a str, &'a str)],
}

/// The name under which a caller passes the condition key `name` in [`Context::keys`]
/// (`S3:Prefix` is `s3:prefix`; a tag key keeps its case), or `None` when it is not one
/// of those keys: the `aws:` keys come from the context's other fields, and others are
/// unknown.
pub fn request_key(name: &str) -> Option<String> {
    condition::request_key(name)
}

/// The condition keys a caller passes in [`Context::keys`], as policies spell them.
pub fn request_key_names() -> impl Iterator<Item = &'static str> {
    condition::KEYS
        .iter()
        .copied()
        .filter(|k| k.starts_with("s3:"))
}

/// What a request acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    /// No bucket: s3:ListAllMyBuckets. Only the resources `*` and `arn:aws:s3:::*` match.
    All,
    /// `arn:aws:s3:::bucket`, for bucket-level actions.
    Bucket(&'a str),
    /// `arn:aws:s3:::bucket/key`.
    Object { bucket: &'a str, key: &'a str },
}

impl fmt::Display for Resource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::All => f.write_str("*"),
            Resource::Bucket(b) => write!(f, "arn:aws:s3:::{b}"),
            Resource::Object { bucket, key } => write!(f, "arn:aws:s3:::{bucket}/{key}"),
        }
    }
}

/// One request's action on one resource.
#[derive(Debug, Clone, Copy)]
pub struct Check<'a> {
    /// As S3 names it, e.g. `s3:GetObject`; compared without regard to case.
    pub action: &'a str,
    pub resource: Resource<'a>,
}

/// The statement that decided. It borrows the policy's label and Sid, so a decision costs
/// no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cause<'a> {
    /// The label the caller gave the policy, e.g. "user alice", "group readers",
    /// "bucket media".
    pub policy: &'a str,
    /// Index in the document's Statement list, from 0 (as in `Statement[2]` of a parse
    /// error).
    pub statement: usize,
    pub sid: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'a> {
    Allow(Cause<'a>),
    ExplicitDeny(Cause<'a>),
    /// No statement allows; carries the request so the decision explains itself.
    ImplicitDeny {
        action: &'a str,
        resource: Resource<'a>,
    },
}

impl Decision<'_> {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }
}

impl fmt::Display for Cause<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} statement {}", self.policy, self.statement)?;
        match self.sid {
            Some(sid) => write!(f, " (Sid {sid:?})"),
            None => Ok(()),
        }
    }
}

impl fmt::Display for Decision<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Allow(cause) => write!(f, "allow by {cause}"),
            Decision::ExplicitDeny(cause) => write!(f, "explicit deny by {cause}"),
            Decision::ImplicitDeny { action, resource } => {
                write!(
                    f,
                    "implicit deny: no statement allows {action} on {resource}"
                )
            }
        }
    }
}

/// Standard AWS evaluation for one account: any matching Deny (identity or bucket policy)
/// wins; else any matching Allow from an identity policy, or from a bucket-policy statement
/// whose Principal matches, allows; else implicit deny.
///
/// `identity` holds the policies of the user and their groups (empty for anonymous
/// requests), each with a label for the [`Cause`]. `bucket` is the policy of the bucket the
/// request addresses; a document parsed for another bucket, or an identity document, is
/// ignored there, and no bucket policy applies to [`Resource::All`]. `acls` are the
/// bucket's and object's ACLs as statements ([`PolicyDocument::from_acl`]), weighed as
/// bucket policies are. The first matching Deny, in order, is the cause; otherwise the
/// first matching Allow.
pub fn evaluate<'a>(
    identity: &[(&'a str, &'a PolicyDocument)],
    bucket: Option<(&'a str, &'a PolicyDocument)>,
    acls: &[(&'a str, &'a PolicyDocument)],
    cx: &Context<'_>,
    check: &Check<'a>,
) -> Decision<'a> {
    debug_assert!(
        identity.iter().all(|(_, d)| d.kind == PolicyKind::Identity),
        "a bucket policy passed as an identity policy"
    );
    let bucket = bucket.filter(|(_, doc)| doc.governs(check.resource));
    let acls = acls.iter().filter(|(_, doc)| doc.governs(check.resource));
    let mut allow = None;
    for &(label, doc) in identity.iter().chain(bucket.as_ref()).chain(acls) {
        for (index, s) in doc.statements.iter().enumerate() {
            // Once something allows, only a Deny can change the answer.
            if s.effect == Effect::Allow && allow.is_some() {
                continue;
            }
            if !s.applies(cx, check) {
                continue;
            }
            let cause = Cause {
                policy: label,
                statement: index,
                sid: s.sid.as_deref(),
            };
            match s.effect {
                Effect::Deny => return Decision::ExplicitDeny(cause),
                Effect::Allow => allow = Some(cause),
            }
        }
    }
    match allow {
        Some(cause) => Decision::Allow(cause),
        None => Decision::ImplicitDeny {
            action: check.action,
            resource: check.resource,
        },
    }
}
