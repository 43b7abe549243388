//! What operators ask about access control, answered from the configuration and, for
//! buckets made by CreateBucket, from the policies stored in them: who may do what
//! (`switchyard check-config`), and the decision on one request with the statement that
//! made it (`switchyard access check`). Both go through the code that serves requests
//! ([`Config::access_policies`], [`crate::frontend::decide`]), so what they say is what the
//! engine does.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use crate::config::{
    Anonymous, Config, ConfigError, DynamicBuckets, ObjectOwnership, PublicAccessBlock,
};
use crate::frontend::{Requester, Users, Verdict, acl_docs, decide};
use crate::iam::{self, Decision, PolicyDocument, Resource};

/// One request to decide, as `switchyard access check` takes it.
#[derive(Debug, Clone, Default)]
pub struct Question {
    /// A user's access key or name; `None`: an unsigned (anonymous) request.
    pub user: Option<String>,
    /// One action as S3 names it, e.g. `s3:GetObject` (no wildcards: a request has one).
    pub action: String,
    /// `arn:aws:s3:::BUCKET`, `arn:aws:s3:::BUCKET/KEY`, or `*` (no bucket, as
    /// s3:ListAllMyBuckets).
    pub resource: String,
    /// `aws:SourceIp`; `None`: the key is absent.
    pub source_ip: Option<IpAddr>,
    /// `aws:SecureTransport`: the request came over TLS.
    pub secure: bool,
    /// Request condition keys, `NAME=VALUE` (`s3:prefix=home/`).
    pub keys: Vec<String>,
}

/// The decision on a [`Question`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub allowed: bool,
    /// The decision and the statement that made it, e.g.
    /// `allow by user alice statement 2 (Sid "ReadHome")`.
    pub decision: String,
    /// Who asked, as policies see them.
    pub requester: String,
    /// Which bucket policy took part, and where it came from (or why none did).
    pub bucket_policy: String,
    /// Which ACLs took part (the bucket's, the object's), or why none did: they are read
    /// only when the policies neither allowed nor denied explicitly, as the engine does.
    pub acls: String,
    /// Why the engine refuses a request the policies allow, if it does: a configured
    /// bucket's policy is changed in the configuration, never through the API.
    pub refused: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The question itself is wrong (an unknown user, a malformed ARN, ...).
    #[error("{0}")]
    Question(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("reading the stored policy of bucket {bucket}: {source}")]
    Stored {
        bucket: String,
        source: crate::model::Error,
    },
}

fn question(message: impl Into<String>) -> CheckError {
    CheckError::Question(message.into())
}

/// `s3:GetObject`: one action of S3's, no wildcard.
fn parse_action(action: &str) -> Result<&str, CheckError> {
    let name = action
        .get(..3)
        .filter(|p| p.eq_ignore_ascii_case("s3:"))
        .map(|_| &action[3..])
        .ok_or_else(|| {
            question(format!(
                "--action {action:?}: an S3 action is s3:NAME, e.g. s3:GetObject"
            ))
        })?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(question(format!(
            "--action {action:?}: one action, letters and digits after s3: (a request has no wildcards)"
        )));
    }
    Ok(action)
}

fn parse_resource(resource: &str) -> Result<Resource<'_>, CheckError> {
    if resource == "*" {
        return Ok(Resource::All);
    }
    let bad = |why: &str| {
        question(format!(
            "--resource {resource:?}: {why}; give arn:aws:s3:::BUCKET, arn:aws:s3:::BUCKET/KEY, or * (no bucket, as s3:ListAllMyBuckets)"
        ))
    };
    let path = resource
        .strip_prefix("arn:aws:s3:::")
        .ok_or_else(|| bad("not an S3 ARN"))?;
    let resource = match path.split_once('/') {
        None => Resource::Bucket(path),
        Some((bucket, key)) => Resource::Object { bucket, key },
    };
    match resource {
        Resource::Bucket(b) | Resource::Object { bucket: b, .. }
            if !s3s::path::check_bucket_name(b) =>
        {
            Err(bad(&format!("{b:?} is not a bucket name")))
        }
        Resource::Object { key: "", .. } => Err(bad("the key is empty")),
        r => Ok(r),
    }
}

/// `NAME=VALUE` pairs, each name as the evaluator looks it up.
fn parse_keys(keys: &[String]) -> Result<Vec<(String, String)>, CheckError> {
    keys.iter()
        .map(|kv| {
            let (name, value) = kv.split_once('=').ok_or_else(|| {
                question(format!("--key {kv:?}: NAME=VALUE, e.g. s3:prefix=home/"))
            })?;
            match iam::request_key(name) {
                Some(name) => Ok((name, value.to_owned())),
                None if name.to_ascii_lowercase().starts_with("aws:") => Err(question(format!(
                    "--key {kv:?}: {name} comes from the request itself: aws:SourceIp from --source-ip, aws:SecureTransport from --secure, aws:username, aws:userid and aws:PrincipalType from --user or --anonymous"
                ))),
                None => Err(question(format!(
                    "--key {kv:?}: unknown condition key {name:?} (request keys: {})",
                    iam::request_key_names().collect::<Vec<_>>().join(", ")
                ))),
            }
        })
        .collect()
}

/// Where a bucket's policy comes from, and the policy.
struct BucketPolicy {
    policy: Option<Arc<PolicyDocument>>,
    source: String,
    /// The bucket's public access block, if it has one.
    block: Option<PublicAccessBlock>,
}

/// The policy the engine would apply to `bucket`: the configuration's (the `anonymous`
/// shorthand folded in), or the one stored in a bucket made by CreateBucket.
async fn bucket_policy(config: &Config, bucket: &str) -> Result<BucketPolicy, CheckError> {
    if let Some(b) = config.buckets.get(bucket) {
        let policy = config.access_policies()?.buckets.remove(bucket).flatten();
        let source = match (&b.bucket_policy, b.anonymous) {
            (None, Anonymous::None) => {
                format!("none (buckets.{bucket} has no bucket_policy, and anonymous = \"none\")")
            }
            (Some(_), Anonymous::None) => format!("buckets.{bucket}.bucket_policy"),
            (None, a) => format!(
                "buckets.{bucket}.anonymous = \"{}\" (statement \"SwitchyardAnonymous\")",
                a.name()
            ),
            (Some(_), a) => format!(
                "buckets.{bucket}.bucket_policy, with anonymous = \"{}\" as its last statement (\"SwitchyardAnonymous\")",
                a.name()
            ),
        };
        return Ok(BucketPolicy {
            policy,
            source,
            block: b.public_access_block,
        });
    }
    if config.dynamic_buckets.is_none() {
        return Ok(BucketPolicy {
            policy: None,
            source: format!(
                "none: no bucket {bucket} in the configuration (a request would get NoSuchBucket if allowed)"
            ),
            block: None,
        });
    }
    let router = dynamic_router(config)?;
    let stored = |what: &str| {
        let place = match &config.dynamic_buckets {
            Some(DynamicBuckets::Fs { root, .. }) => {
                format!(
                    " ({})",
                    root.join(bucket)
                        .join(".switchyard/bucket-policy.json")
                        .display()
                )
            }
            _ => String::new(),
        };
        format!("{what} bucket {bucket}, made by CreateBucket{place}")
    };
    let block = match router.public_access_block(bucket).await {
        Ok(b) => b,
        Err(crate::model::Error::NoSuchBucket) => None,
        Err(source) => {
            return Err(CheckError::Stored {
                bucket: bucket.to_owned(),
                source,
            });
        }
    };
    match router.bucket_policy(bucket).await {
        Ok(Some(p)) => Ok(BucketPolicy {
            policy: Some(p),
            source: stored("stored in"),
            block,
        }),
        Ok(None) => Ok(BucketPolicy {
            policy: None,
            source: stored("none stored in"),
            block,
        }),
        Err(crate::model::Error::NoSuchBucket) => Ok(BucketPolicy {
            policy: None,
            source: format!(
                "none: no bucket {bucket}, neither configured nor made by CreateBucket (a request would get NoSuchBucket if allowed)"
            ),
            block: None,
        }),
        Err(source) => Err(CheckError::Stored {
            bucket: bucket.to_owned(),
            source,
        }),
    }
}

/// A router over the buckets made by CreateBucket only: the configured backends are not
/// built, so nothing is created in their roots and no client is made for them.
fn dynamic_router(config: &Config) -> Result<crate::router::Router, CheckError> {
    let dynamic_only = Config {
        backends: Default::default(),
        buckets: Default::default(),
        ..config.clone()
    };
    let metrics = Arc::new(crate::metrics::Metrics::default());
    Ok(crate::router::Router::new(
        Arc::new(dynamic_only),
        None,
        metrics,
    )?)
}

/// The ACLs the engine would consult on `action` on `resource` (see
/// [`crate::frontend::acl_docs`]), and a line saying which, or why none. A configured
/// bucket with ACLs enabled has its members built (alone), to read the object's ACL.
async fn acls(
    config: &Config,
    who: &Requester<'_>,
    action: &str,
    resource: Resource<'_>,
) -> Result<(Vec<(String, PolicyDocument)>, String), CheckError> {
    let bucket = match resource {
        Resource::Bucket(b) | Resource::Object { bucket: b, .. } => b,
        Resource::All => return Ok((Vec::new(), "none: the request names no bucket".into())),
    };
    let router = match config.buckets.get(bucket) {
        Some(b) if b.object_ownership == ObjectOwnership::BucketOwnerEnforced => {
            return Ok((
                Vec::new(),
                format!(
                    "none: bucket {bucket} has ACLs disabled (object_ownership = \"BucketOwnerEnforced\")"
                ),
            ));
        }
        Some(b) => {
            let only = Config {
                backends: config
                    .backends
                    .iter()
                    .filter(|(name, _)| b.members.contains(name))
                    .map(|(n, c)| (n.clone(), c.clone()))
                    .collect(),
                buckets: [(bucket.to_owned(), b.clone())].into_iter().collect(),
                dynamic_buckets: None,
                ..config.clone()
            };
            let metrics = Arc::new(crate::metrics::Metrics::default());
            crate::router::Router::new(Arc::new(only), None, metrics)?
        }
        None if config.dynamic_buckets.is_some() => dynamic_router(config)?,
        None => return Ok((Vec::new(), format!("none: no bucket {bucket}"))),
    };
    let stored = |source| CheckError::Stored {
        bucket: bucket.to_owned(),
        source,
    };
    match router.bucket_acl(bucket).await {
        Ok(state) if !state.acls_enabled() => {
            return Ok((
                Vec::new(),
                format!("none: bucket {bucket} has ACLs disabled (BucketOwnerEnforced)"),
            ));
        }
        Ok(_) => {}
        Err(crate::model::Error::NoSuchBucket) => {
            return Ok((Vec::new(), format!("none: no bucket {bucket}")));
        }
        Err(e) => return Err(stored(e)),
    }
    let docs = acl_docs(&router, who, action, resource, None)
        .await
        .map_err(stored)?;
    let line = if docs.is_empty() {
        format!("none grants {action} here (ACLs enabled on bucket {bucket})")
    } else {
        let labels: Vec<&str> = docs.iter().map(|(l, _)| l.as_str()).collect();
        format!("consulted: {}", labels.join(", "))
    };
    Ok((docs, line))
}

/// Decides `q` as the engine would decide the request, against `config` (whose secrets
/// must resolve, as for `serve`).
pub async fn check(config: &Config, q: &Question) -> Result<Answer, CheckError> {
    let action = parse_action(&q.action)?;
    let resource = parse_resource(&q.resource)?;
    let keys = parse_keys(&q.keys)?;
    let users = Users::from_config(config)?;
    let user = match &q.user {
        None => None,
        Some(who) => Some(users.find(who).ok_or_else(|| {
            let known: Vec<String> = config
                .users
                .iter()
                .map(|u| match &u.name {
                    Some(n) => format!("{n} ({})", u.access_key),
                    None => u.access_key.clone(),
                })
                .collect();
            question(format!(
                "--user {who:?}: no user has this access key or name (users: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ))
        })?),
    };
    let policy = match resource {
        Resource::Bucket(b) | Resource::Object { bucket: b, .. } => {
            bucket_policy(config, b).await?
        }
        Resource::All => BucketPolicy {
            policy: None,
            source: "none: bucket policies have no say on a request without a bucket".into(),
            block: None,
        },
    };
    let label = match resource {
        Resource::Bucket(b) | Resource::Object { bucket: b, .. } => format!("bucket {b}"),
        Resource::All => String::new(),
    };
    let who = Requester {
        user: user.map(|u| u.as_ref()),
        source_ip: q.source_ip,
        secure: q.secure,
    };
    let keys: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let bucket_policy = policy.policy.as_deref().map(|p| (label.as_str(), p));
    let restrict = policy.block.is_some_and(|b| b.restrict_public_buckets);
    let first = decide(&who, action, resource, bucket_policy, &keys, restrict, &[]);
    // As the engine: ACLs only allow, so they are read when the policies did not.
    let (acl_docs, acls_line) = match first {
        Verdict::Policies(Decision::ExplicitDeny(_)) => {
            (Vec::new(), "not read: a policy denies explicitly".into())
        }
        v if v.is_allowed() => (Vec::new(), "not read: the policies allow".into()),
        _ => acls(config, &who, action, resource).await?,
    };
    let with_acls: Vec<(&str, &PolicyDocument)> =
        acl_docs.iter().map(|(l, d)| (l.as_str(), d)).collect();
    let verdict = if with_acls.is_empty() {
        first
    } else {
        decide(
            &who,
            action,
            resource,
            bucket_policy,
            &keys,
            restrict,
            &with_acls,
        )
    };
    let requester = match user {
        Some(u) => format!("user {} (access key {})", u.name, u.access_key),
        None => "anonymous (an unsigned request)".to_owned(),
    };
    let ip = q.source_ip.map_or("none".to_owned(), |ip| ip.to_string());
    let transport = if q.secure { "TLS" } else { "plain HTTP" };
    let refused = match resource {
        Resource::Bucket(b) if config.buckets.contains_key(b) => {
            configured_only(action).map(|(what, key)| {
                format!(
                    "400 InvalidRequest: bucket {b} is configured, its {what} is changed in the configuration file (buckets.{b}{key}), not through the API"
                )
            })
        }
        _ => None,
    };
    Ok(Answer {
        allowed: verdict.is_allowed() && refused.is_none(),
        decision: verdict.to_string(),
        requester: format!("{requester}, source IP {ip}, over {transport}"),
        bucket_policy: policy.source,
        acls: acls_line,
        refused,
    })
}

/// What an action changes that a configured bucket takes from the configuration file
/// alone (the engine refuses it through the API), and the key there (after
/// `buckets.NAME`): `None` for other actions.
fn configured_only(action: &str) -> Option<(&'static str, &'static str)> {
    [
        ("s3:PutBucketPolicy", "policy", ".bucket_policy"),
        ("s3:DeleteBucketPolicy", "policy", ".bucket_policy"),
        (
            "s3:PutBucketPublicAccessBlock",
            "public access block",
            ".public_access_block",
        ),
        (
            "s3:PutBucketOwnershipControls",
            "object ownership",
            ".object_ownership",
        ),
    ]
    .into_iter()
    .find(|(a, ..)| a.eq_ignore_ascii_case(action))
    .map(|(_, what, key)| (what, key))
}

/// Who may do what under a configuration, for `check-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub users: Vec<UserSummary>,
    /// Configured buckets whose policy (with `anonymous` folded in) lets anonymous
    /// requests in ([`PolicyDocument::is_public`]), and no RestrictPublicBuckets stops it.
    pub public_buckets: Vec<String>,
    /// Buckets can be made by CreateBucket: their policies are set through the API.
    pub dynamic_buckets: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    pub name: String,
    pub access_key: String,
    pub standing: Standing,
}

/// What a user's identity policies give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Everything (the built-in `full-access`, own or through a group, or being the only
    /// user with no policy); bucket policies' Deny statements still apply to it.
    Unrestricted {
        only_user: bool,
        /// The policies' labels (`user alice`, `group admins`).
        policies: Vec<String>,
    },
    /// What these policies allow (labels), and bucket policies.
    Policies(Vec<String>),
    /// Only what bucket policies allow it.
    None,
}

/// Who may do what under `config`: each user's standing, and which buckets are public.
pub fn summary(config: &Config) -> Result<Summary, ConfigError> {
    let access = config.access_policies()?;
    let users = config
        .users
        .iter()
        .zip(access.users)
        .map(|(u, a)| {
            let labels = a.identity.into_iter().map(|(label, _)| label).collect();
            let standing = if a.implicit {
                Standing::Unrestricted {
                    only_user: true,
                    policies: Vec::new(),
                }
            } else if a.unrestricted {
                Standing::Unrestricted {
                    only_user: false,
                    policies: labels,
                }
            } else if labels.is_empty() {
                Standing::None
            } else {
                Standing::Policies(labels)
            };
            UserSummary {
                name: u.name().to_owned(),
                access_key: u.access_key.clone(),
                standing,
            }
        })
        .collect();
    let public_buckets = access
        .buckets
        .into_iter()
        .filter(|(_, p)| p.as_ref().is_some_and(|p| p.is_public()))
        // RestrictPublicBuckets takes from a public policy what it gives anonymous requests.
        .filter(|(name, _)| {
            !config
                .buckets
                .get(name)
                .and_then(|b| b.public_access_block)
                .is_some_and(|b| b.restrict_public_buckets)
        })
        .map(|(name, _)| name)
        .collect();
    Ok(Summary {
        users,
        public_buckets,
        dynamic_buckets: config.dynamic_buckets.is_some(),
    })
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.users.is_empty() {
            writeln!(
                f,
                "users: none (every request is anonymous: only bucket policies and `anonymous` allow anything)"
            )?;
        } else {
            writeln!(f, "users:")?;
        }
        for u in &self.users {
            write!(f, "  {} (access key {}): ", u.name, u.access_key)?;
            match &u.standing {
                Standing::Unrestricted {
                    only_user: true, ..
                } => writeln!(
                    f,
                    "unrestricted: the only user, with no policy (bucket policies' Deny statements still apply)"
                )?,
                Standing::Unrestricted { policies, .. } => writeln!(
                    f,
                    "unrestricted: full-access through {} (bucket policies' Deny statements still apply)",
                    policies.join(", ")
                )?,
                Standing::Policies(p) => writeln!(f, "policies: {}", p.join(", "))?,
                Standing::None => writeln!(f, "no policy: only what bucket policies allow it")?,
            }
        }
        if self.public_buckets.is_empty() {
            writeln!(f, "public buckets: none")?;
        } else {
            writeln!(
                f,
                "public buckets (their policy allows anonymous requests): {}",
                self.public_buckets.join(", ")
            )?;
        }
        if self.dynamic_buckets {
            writeln!(
                f,
                "buckets made by CreateBucket: their policies are set through the API (switchyard access check reads them)"
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_are_checked() {
        assert!(parse_action("s3:GetObject").is_ok());
        assert!(parse_action("S3:getobject").is_ok());
        for bad in [
            "GetObject",
            "s3:",
            "s3:Get*",
            "iam:GetUser",
            "s3:Get Object",
        ] {
            assert!(parse_action(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_resource("*").unwrap(), Resource::All);
        assert_eq!(
            parse_resource("arn:aws:s3:::media").unwrap(),
            Resource::Bucket("media")
        );
        assert_eq!(
            parse_resource("arn:aws:s3:::media/a/b.txt").unwrap(),
            Resource::Object {
                bucket: "media",
                key: "a/b.txt"
            }
        );
        for bad in [
            "media/k",
            "arn:aws:s3:::",
            "arn:aws:s3:::Media/k",
            "arn:aws:s3:::media/",
            "arn:aws:iam::1:user/x",
        ] {
            assert!(parse_resource(bad).is_err(), "{bad}");
        }
        let keys = parse_keys(&[
            "S3:Prefix=home/".into(),
            "s3:max-keys=10".into(),
            "s3:ExistingObjectTag/Team=a=b".into(),
        ])
        .unwrap();
        assert_eq!(
            keys,
            [
                ("s3:prefix".to_owned(), "home/".to_owned()),
                ("s3:max-keys".to_owned(), "10".to_owned()),
                ("s3:existingobjecttag/Team".to_owned(), "a=b".to_owned()),
            ]
        );
        let e = parse_keys(&["aws:SourceIp=10.0.0.1".into()]).unwrap_err();
        assert!(e.to_string().contains("--source-ip"), "{e}");
        let e = parse_keys(&["s3:object-lock-mode=GOVERNANCE".into()]).unwrap_err();
        assert!(e.to_string().contains("s3:prefix"), "{e}");
        // A version's id is a request key since versioning exists.
        assert_eq!(
            parse_keys(&["s3:VersionId=1".into()]).unwrap(),
            [("s3:versionid".to_owned(), "1".to_owned())]
        );
        assert!(parse_keys(&["s3:prefix".into()]).is_err());
    }

    fn config(text: &str) -> Config {
        Config::from_toml(text).unwrap()
    }

    const USERS: &str = r#"
version = 1
[[users]]
access_key = "AKALICE"
secret_key = "s"
name = "alice"
policy = '{"Version":"2012-10-17","Statement":[{"Sid":"ReadHome","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::media/home/${aws:username}/*"}]}'
[[users]]
access_key = "AKBOB"
secret_key = "s"
name = "bob"
groups = ["admins"]
[[users]]
access_key = "AKCAROL"
secret_key = "s"
[groups.admins]
policy = "full-access"
[backends.m]
kind = "memory"
[backends.p]
kind = "memory"
[buckets.media]
members = ["m"]
bucket_policy = '{"Version":"2012-10-17","Statement":[{"Sid":"TlsOnly","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::media/*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}'
[buckets.public]
members = ["p"]
anonymous = "read"
"#;

    fn ask(c: &Config, user: Option<&str>, action: &str, resource: &str, secure: bool) -> Answer {
        let q = Question {
            user: user.map(str::to_owned),
            action: action.into(),
            resource: resource.into(),
            secure,
            ..Question::default()
        };
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(check(c, &q))
            .unwrap()
    }

    #[test]
    fn configured_bucket_policies_are_not_changed_through_the_api() {
        let c = config(USERS);
        for action in ["s3:PutBucketPolicy", "s3:deletebucketpolicy"] {
            let a = ask(&c, Some("bob"), action, "arn:aws:s3:::media", true);
            assert!(!a.allowed, "{action}: {a:?}");
            assert!(
                a.refused.as_deref().unwrap().contains("buckets.media"),
                "{a:?}"
            );
        }
        let a = ask(
            &c,
            Some("bob"),
            "s3:GetBucketPolicy",
            "arn:aws:s3:::media",
            true,
        );
        assert!(a.allowed && a.refused.is_none(), "{a:?}");
    }

    #[test]
    fn restrict_public_buckets_silences_a_public_policy_for_anonymous_requests() {
        let restricted = format!(
            "{USERS}[backends.q]\nkind = \"memory\"\n[buckets.restricted]\nmembers = [\"q\"]\nanonymous = \"read\"\npublic_access_block = {{ restrict_public_buckets = true }}\n"
        );
        let c = config(&restricted);
        let a = ask(&c, None, "s3:GetObject", "arn:aws:s3:::restricted/k", false);
        assert!(!a.allowed, "{a:?}");
        assert!(
            a.decision.contains("RestrictPublicBuckets")
                && a.decision.contains("SwitchyardAnonymous"),
            "{a:?}"
        );
        // The gateway's users keep what the policy gives them.
        let a = ask(
            &c,
            Some("AKCAROL"),
            "s3:GetObject",
            "arn:aws:s3:::restricted/k",
            false,
        );
        assert!(a.allowed, "{a:?}");
        // The same policy without the block is public.
        let a = ask(&c, None, "s3:GetObject", "arn:aws:s3:::public/k", false);
        assert!(a.allowed, "{a:?}");
        let text = summary(&c).unwrap().to_string();
        assert!(
            text.contains("allows anonymous requests): public\n"),
            "{text}"
        );
        // Its block, like its policy, is the configuration file's.
        for action in [
            "s3:PutBucketPublicAccessBlock",
            "s3:PutBucketOwnershipControls",
        ] {
            let a = ask(&c, Some("bob"), action, "arn:aws:s3:::restricted", true);
            assert!(!a.allowed, "{action}: {a:?}");
            assert!(
                a.refused.as_deref().unwrap().contains("configuration file"),
                "{a:?}"
            );
        }
        let a = ask(
            &c,
            Some("bob"),
            "s3:GetBucketPublicAccessBlock",
            "arn:aws:s3:::restricted",
            true,
        );
        assert!(a.allowed && a.refused.is_none(), "{a:?}");
    }

    #[test]
    fn block_public_policy_refuses_a_public_configured_policy() {
        for open in [
            "anonymous = \"read\"",
            r#"bucket_policy = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::bkt/*"}]}'"#,
        ] {
            let text = format!(
                "version = 1\n[backends.m]\nkind = \"memory\"\n[buckets.bkt]\nmembers = [\"m\"]\n{open}\npublic_access_block = {{ block_public_policy = true }}\n"
            );
            let e = Config::from_toml(&text).unwrap_err().to_string();
            assert!(e.contains("buckets.bkt.public_access_block"), "{e}");
        }
        let private = "version = 1\n[backends.m]\nkind = \"memory\"\n[buckets.bkt]\nmembers = [\"m\"]\npublic_access_block = { block_public_policy = true, block_public_acls = true }\n";
        Config::from_toml(private).unwrap();
        let e = Config::from_toml(&private.replace("block_public_acls", "block_everything"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("block_everything"), "{e}");
    }

    #[test]
    fn decisions_name_their_statement() {
        let c = config(USERS);
        let a = ask(
            &c,
            Some("alice"),
            "s3:GetObject",
            "arn:aws:s3:::media/home/alice/k",
            true,
        );
        assert_eq!(
            (a.allowed, a.decision.as_str()),
            (true, "allow by user alice statement 0 (Sid \"ReadHome\")")
        );
        assert_eq!(a.bucket_policy, "buckets.media.bucket_policy");
        // By access key too; over plain HTTP the bucket policy denies.
        let a = ask(
            &c,
            Some("AKALICE"),
            "s3:GetObject",
            "arn:aws:s3:::media/home/alice/k",
            false,
        );
        assert_eq!(
            (a.allowed, a.decision.as_str()),
            (
                false,
                "explicit deny by bucket media statement 0 (Sid \"TlsOnly\")"
            )
        );
        let a = ask(
            &c,
            Some("alice"),
            "s3:GetObject",
            "arn:aws:s3:::media/home/bob/k",
            true,
        );
        assert!(
            !a.allowed && a.decision.starts_with("implicit deny"),
            "{a:?}"
        );
        // full-access may always manage bucket policies (and read a configured one).
        let a = ask(
            &c,
            Some("bob"),
            "s3:GetBucketPolicy",
            "arn:aws:s3:::media",
            false,
        );
        assert!(
            a.allowed && a.decision.starts_with("allow: a full-access user"),
            "{a:?}"
        );
        let a = ask(&c, None, "s3:GetObject", "arn:aws:s3:::public/k", false);
        assert_eq!(
            a.decision,
            "allow by bucket public statement 0 (Sid \"SwitchyardAnonymous\")"
        );
        let q = Question {
            user: Some("mallory".into()),
            action: "s3:GetObject".into(),
            resource: "*".into(),
            ..Question::default()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let e = rt.block_on(check(&c, &q)).unwrap_err();
        assert!(
            e.to_string()
                .contains("alice (AKALICE), bob (AKBOB), AKCAROL"),
            "{e}"
        );
    }

    #[test]
    fn the_summary_says_who_may_do_what() {
        let s = summary(&config(USERS)).unwrap();
        let text = s.to_string();
        assert_eq!(
            text,
            "users:
  alice (access key AKALICE): policies: user alice
  bob (access key AKBOB): unrestricted: full-access through group admins (bucket policies' Deny statements still apply)
  AKCAROL (access key AKCAROL): no policy: only what bucket policies allow it
public buckets (their policy allows anonymous requests): public
"
        );
        let only = config(
            "version = 1\n[[users]]\naccess_key = \"dev\"\nsecret_key = \"s\"\n[dynamic_buckets]\nkind = \"memory\"\n",
        );
        let text = summary(&only).unwrap().to_string();
        assert!(
            text.contains("dev (access key dev): unrestricted: the only user"),
            "{text}"
        );
        assert!(text.contains("public buckets: none"), "{text}");
        assert!(text.contains("buckets made by CreateBucket"), "{text}");
    }
}
