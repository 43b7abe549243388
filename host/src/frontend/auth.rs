//! Who sends a request (SigV4 against the configured users) and what they may do: AWS's
//! policy language, evaluated for every bucket and key a request touches.
//!
//! s3s checks the signature with [`Auth`], then asks [`Access`] about the operation's own
//! bucket and key before anything is read or written (for a form upload, once the form
//! has named the key). The front end asks the same [`Access`] about what else a request
//! touches: the source of CopyObject and UploadPartCopy (`s3:GetObject`), each key of
//! DeleteObjects (`s3:DeleteObject`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use s3s::access::{S3Access, S3AccessContext};

use crate::policy::ObjectView;
use s3s::auth::{S3Auth, SecretKey};
use s3s::dto::PostObjectInput;
use s3s::path::S3Path;
use s3s::{S3Request, S3Result, s3_error};

use crate::config::{Config, ConfigError};
use crate::iam::{self, Decision, PolicyDocument, Resource};
use crate::router::Router;

use super::{ClientAddr, Live, SecureTransport};

/// AWS refuses presigned URLs that live longer than a week.
const MAX_PRESIGNED_EXPIRY_SECS: u64 = 7 * 24 * 3600;

/// One configured user.
pub struct User {
    pub name: String,
    pub access_key: String,
    secret: String,
    /// Identity policies (the user's own and its groups'), labelled for decisions.
    identity: Vec<(String, Arc<PolicyDocument>)>,
    /// Holds the built-in `full-access`: like AWS's account root it may always read,
    /// change and delete bucket policies, so that no bucket policy locks everyone out.
    pub unrestricted: bool,
}

/// The configured users by access key.
pub struct Users {
    by_key: HashMap<String, Arc<User>>,
}

impl Users {
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let access = config.access_policies()?;
        let mut by_key = HashMap::new();
        for (i, (u, a)) in config.users.iter().zip(access.users).enumerate() {
            by_key.insert(
                u.access_key.clone(),
                Arc::new(User {
                    name: u.name().to_owned(),
                    access_key: u.access_key.clone(),
                    secret: u.secret_key.resolve(&format!("users[{i}].secret_key"))?,
                    identity: a.identity,
                    unrestricted: a.unrestricted,
                }),
            );
        }
        Ok(Self { by_key })
    }

    /// Every user's name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_key.values().map(|u| u.name.as_str())
    }

    pub fn get(&self, access_key: &str) -> Option<&Arc<User>> {
        self.by_key.get(access_key)
    }

    /// The user with this access key, or else with this name (names and access keys are
    /// each unique, but one user's name may be another's access key: the key wins, as it
    /// does for a signed request).
    pub fn find(&self, name_or_key: &str) -> Option<&Arc<User>> {
        self.get(name_or_key)
            .or_else(|| self.by_key.values().find(|u| u.name == name_or_key))
    }
}

/// Secret keys by access key. s3s checks header and presigned signatures against them.
pub struct Auth {
    live: Live,
}

impl Auth {
    pub fn new(live: Live) -> Self {
        Self { live }
    }
}

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.live.current().users.get(access_key) {
            Some(u) => Ok(SecretKey::from(u.secret.as_str())),
            None => {
                tracing::info!(access_key, "request signed with an unknown access key");
                Err(s3_error!(
                    InvalidAccessKeyId,
                    "The AWS Access Key Id you provided does not exist in our records."
                ))
            }
        }
    }
}

/// Who sends a request, as policies see it.
#[derive(Clone, Copy)]
pub struct Requester<'a> {
    /// `None`: anonymous (unsigned).
    pub user: Option<&'a User>,
    pub source_ip: Option<IpAddr>,
    pub secure: bool,
}

impl Requester<'_> {
    fn principal(&self) -> iam::Principal<'_> {
        match self.user {
            Some(u) => iam::Principal::User {
                name: &u.name,
                access_key: &u.access_key,
            },
            None => iam::Principal::Anonymous,
        }
    }
}

/// Decides every request against the users' and buckets' policies, of the request's
/// configuration snapshot.
pub struct Access {
    live: Live,
}

/// The IAM action of an S3 operation (AWS's table), and whether it acts on the object
/// named in the path or on the bucket. `None`: decided per key by the front end.
fn action_of(op: &str) -> Option<(Cow<'static, str>, bool)> {
    let (action, object) = match op {
        "ListBuckets" => ("s3:ListAllMyBuckets", false),
        "HeadBucket" | "ListObjects" | "ListObjectsV2" => ("s3:ListBucket", false),
        "ListObjectVersions" => ("s3:ListBucketVersions", false),
        "ListMultipartUploads" => ("s3:ListBucketMultipartUploads", false),
        "GetObject" | "HeadObject" => ("s3:GetObject", true),
        "PutObject"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload" => ("s3:PutObject", true),
        "DeleteObject" => ("s3:DeleteObject", true),
        "AbortMultipartUpload" => ("s3:AbortMultipartUpload", true),
        "ListParts" => ("s3:ListMultipartUploadParts", true),
        // The keys are in the body: each is an s3:DeleteObject of its own.
        "DeleteObjects" => return None,
        // A browser-form upload: the key is a form field, decided as s3:PutObject on it
        // once s3s has read the form (`AccessHook::post_object`).
        "PostObject" => return None,
        // The tags it sets (s3:RequestObjectTag) are in the body: decided by the front end
        // once s3s has read it.
        "PutObjectTagging" => return None,
        "GetBucketPolicyStatus" => ("s3:GetBucketPolicyStatus", false),
        // AWS's names: one permission for setting and deleting each.
        "DeleteBucketOwnershipControls" => ("s3:PutBucketOwnershipControls", false),
        "PutPublicAccessBlock" | "DeletePublicAccessBlock" => {
            ("s3:PutBucketPublicAccessBlock", false)
        }
        "GetPublicAccessBlock" => ("s3:GetBucketPublicAccessBlock", false),
        // Everything else is named as S3 names it: s3:GetBucketPolicy, s3:CreateBucket...
        other => {
            let object = other.contains("Object");
            return Some((Cow::Owned(format!("s3:{other}")), object));
        }
    };
    Some((Cow::Borrowed(action), object))
}

/// The action of an object operation that names a version (`?versionId=`), in AWS's
/// table.
pub(crate) fn version_action(op: &str) -> Option<&'static str> {
    match op {
        "GetObject" | "HeadObject" => Some("s3:GetObjectVersion"),
        "DeleteObject" => Some("s3:DeleteObjectVersion"),
        "GetObjectAttributes" => Some("s3:GetObjectVersionAttributes"),
        "GetObjectTagging" => Some("s3:GetObjectVersionTagging"),
        "PutObjectTagging" => Some("s3:PutObjectVersionTagging"),
        "DeleteObjectTagging" => Some("s3:DeleteObjectVersionTagging"),
        "GetObjectAcl" => Some("s3:GetObjectVersionAcl"),
        "PutObjectAcl" => Some("s3:PutObjectVersionAcl"),
        _ => None,
    }
}

/// The bucket-policy actions that a `full-access` user may always take (see [`User`]).
/// Without regard to case, as policies compare actions (`access check` takes them typed).
fn is_policy_admin(action: &str) -> bool {
    [
        "s3:GetBucketPolicy",
        "s3:PutBucketPolicy",
        "s3:DeleteBucketPolicy",
    ]
    .iter()
    .any(|a| a.eq_ignore_ascii_case(action))
}

/// Whether `who` may take `action` whatever the policies say: a `full-access` user
/// managing bucket policies (see [`User::unrestricted`]).
fn escapes_policies(who: &Requester<'_>, action: &str) -> bool {
    who.user.is_some_and(|u| u.unrestricted) && is_policy_admin(action)
}

/// What decides a request: the policies, or the escape hatch of `full-access` users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// A `full-access` user reading, changing or deleting a bucket policy.
    PolicyAdmin,
    Policies(Decision<'a>),
    /// What the bucket's public policy allowed an anonymous request, taken back by the
    /// bucket's RestrictPublicBuckets.
    Restricted(Decision<'a>),
}

impl Verdict<'_> {
    pub fn is_allowed(&self) -> bool {
        match self {
            Verdict::PolicyAdmin => true,
            Verdict::Policies(d) => d.is_allowed(),
            Verdict::Restricted(_) => false,
        }
    }
}

impl std::fmt::Display for Verdict<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::PolicyAdmin => f.write_str(
                "allow: a full-access user may always read, change and delete bucket policies",
            ),
            Verdict::Policies(d) => d.fmt(f),
            Verdict::Restricted(d) => write!(
                f,
                "implicit deny: the bucket's policy is public and its public access block sets RestrictPublicBuckets, so the policy allows nothing to anonymous requests (it would have: {d})"
            ),
        }
    }
}

/// Decides `action` on `resource` for `who`, given the bucket's policy and its label
/// (`bucket NAME`): what [`Access::authorize`] asks of every request, and what
/// `switchyard access check` shows. `keys` are the request's condition keys;
/// `restrict_public`: the bucket's public access block sets RestrictPublicBuckets;
/// `acls`: the bucket's and object's ACLs as statements, when they count.
pub fn decide<'a>(
    who: &Requester<'a>,
    action: &'a str,
    resource: Resource<'a>,
    bucket_policy: Option<(&'a str, &'a PolicyDocument)>,
    keys: &[(&str, &str)],
    restrict_public: bool,
    acls: &[(&'a str, &'a PolicyDocument)],
) -> Verdict<'a> {
    if escapes_policies(who, action) {
        return Verdict::PolicyAdmin;
    }
    let identity: Vec<(&str, &PolicyDocument)> = who
        .user
        .map(|u| {
            u.identity
                .iter()
                .map(|(l, d)| (l.as_str(), d.as_ref()))
                .collect()
        })
        .unwrap_or_default();
    let cx = iam::Context {
        principal: who.principal(),
        source_ip: who.source_ip,
        secure_transport: who.secure,
        keys,
    };
    let check = iam::Check { action, resource };
    let decision = iam::evaluate(&identity, bucket_policy, acls, &cx, &check);
    // An anonymous request has no identity policy: what allowed it is the bucket's
    // policy or an ACL. RestrictPublicBuckets silences the policy while it is public (a
    // Deny still denies: it was returned as one); an ACL's grant is not the policy's.
    let by_policy = match decision {
        Decision::Allow(cause) => bucket_policy.is_some_and(|(label, _)| cause.policy == label),
        _ => false,
    };
    if restrict_public
        && who.user.is_none()
        && by_policy
        && bucket_policy.is_some_and(|(_, p)| p.is_public())
    {
        return Verdict::Restricted(decision);
    }
    Verdict::Policies(decision)
}

/// The value of one query parameter (percent-decoded), if present.
fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<Cow<'a, str>> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

impl Access {
    pub fn new(live: Live) -> Self {
        Self { live }
    }

    /// The router of the request's snapshot.
    fn router(&self) -> Arc<Router> {
        self.live.current().router.clone()
    }

    /// Asks the policy of `bucket` whether it serves `operation` on `key` (empty: the
    /// bucket itself), once access control allowed it and before any backend is touched.
    /// Buckets whose policy has no admission (the built-in one, 0.1 components) answer
    /// without a call; see [`crate::router::Decider::admit`].
    pub async fn admit(
        &self,
        operation: &str,
        bucket: &str,
        key: &str,
        headers: &http::HeaderMap,
        source_ip: Option<std::net::IpAddr>,
        principal: Option<&str>,
    ) -> S3Result<()> {
        let router = self.router();
        let Some(vb) = router.with_policy(bucket) else {
            return Ok(());
        };
        // A copy's headers describe what it writes, not its source.
        let obj = if operation == "CopySource" {
            ObjectView {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                ..ObjectView::default()
            }
        } else {
            object_from_headers(bucket, key, headers)
        };
        let operation = Cow::Owned(operation.to_owned());
        let req = super::request_view(&router, bucket, headers, source_ip, principal, operation);
        router
            .decider
            .admit(&vb, &req, &obj)
            .await
            .map_err(super::errors::to_s3)
    }

    /// The requester of a request whose signature s3s checked (`access_key`: `None` for an
    /// unsigned one), seen from its extensions, among the `users` of its snapshot.
    pub fn requester<'a>(
        users: &'a Users,
        access_key: Option<&str>,
        extensions: &http::Extensions,
    ) -> S3Result<Requester<'a>> {
        let user = match access_key {
            Some(k) => Some(
                users
                    .get(k)
                    .ok_or_else(|| s3_error!(InvalidAccessKeyId))?
                    .as_ref(),
            ),
            None => None,
        };
        Ok(Requester {
            user,
            source_ip: extensions.get::<ClientAddr>().map(|a| a.0.ip()),
            secure: extensions.get::<SecureTransport>().is_some(),
        })
    }

    /// The `s3:ExistingObjectTag/<key>` condition keys of `action` on `bucket`/`key`: the
    /// tags of the object a read would serve, for the actions AWS fills them in for, and
    /// only when a policy that may apply names such a key (reading them costs a HEAD).
    /// A missing object, or one on a kind that keeps no tags, has none. A member that
    /// cannot answer fails the request: deciding without the tags could let a Deny on one
    /// through.
    pub async fn existing_tag_keys(
        &self,
        who: &Requester<'_>,
        action: &str,
        (bucket, key): (&str, &str),
        version: Option<&str>,
        headers: &http::HeaderMap,
    ) -> S3Result<Vec<(String, String)>> {
        if !EXISTING_TAG_ACTIONS
            .iter()
            .any(|a| a.eq_ignore_ascii_case(action))
            || escapes_policies(who, action)
        {
            return Ok(Vec::new());
        }
        let names_tags = |d: &PolicyDocument| {
            d.source()
                .to_ascii_lowercase()
                .contains("s3:existingobjecttag/")
        };
        let router = self.router();
        let in_bucket_policy = match router.bucket_policy(bucket).await {
            Ok(p) => p.is_some_and(|p| names_tags(&p)),
            Err(_) => false,
        };
        let in_identity = who
            .user
            .is_some_and(|u| u.identity.iter().any(|(_, d)| names_tags(d)));
        if !in_bucket_policy && !in_identity {
            return Ok(Vec::new());
        }
        let principal = who.user.map(|u| u.access_key.as_str());
        let view = super::request_view(
            &router,
            bucket,
            headers,
            who.source_ip,
            principal,
            Cow::Borrowed("HeadObject"),
        );
        match router.get_tags(&view, bucket, key, version).await {
            Ok(tags) => Ok(tags
                .into_iter()
                .map(|(k, v)| (format!("s3:existingobjecttag/{k}"), v))
                .collect()),
            // The request itself answers these (a missing object or version, a marker).
            Err(
                crate::model::Error::NotFound
                | crate::model::Error::NoSuchVersion
                | crate::model::Error::DeleteMarker { .. }
                | crate::model::Error::NoSuchBucket
                | crate::model::Error::NotImplemented(_)
                | crate::model::Error::InvalidArgument(_)
                | crate::model::Error::KeyTooLong(_),
            ) => Ok(Vec::new()),
            Err(e) => Err(super::errors::to_s3(e)),
        }
    }

    /// Allows `action` on `resource` for `who`, or answers `403 AccessDenied`. `keys` are
    /// the request's condition keys (`s3:prefix`, ...).
    pub async fn authorize(
        &self,
        who: &Requester<'_>,
        action: &str,
        resource: Resource<'_>,
        keys: &[(&str, &str)],
    ) -> S3Result<()> {
        // Before the bucket policy is read: it need not be.
        if escapes_policies(who, action) {
            return Ok(());
        }
        let bucket_policy = match resource {
            Resource::Bucket(b) | Resource::Object { bucket: b, .. } => {
                let router = self.router();
                match router.bucket_policy(b).await {
                    Ok(p) => p,
                    // A missing bucket has no policy; the operation answers NoSuchBucket
                    // if the requester may know.
                    Err(crate::model::Error::NoSuchBucket) => None,
                    Err(e) => return Err(super::errors::to_s3(e)),
                }
            }
            Resource::All => None,
        };
        // The block matters only to an anonymous request under a public policy: only
        // then is it read.
        let restrict_public = match resource {
            Resource::Bucket(b) | Resource::Object { bucket: b, .. }
                if who.user.is_none() && bucket_policy.as_ref().is_some_and(|p| p.is_public()) =>
            {
                match self.router().public_access_block(b).await {
                    Ok(block) => block.is_some_and(|b| b.restrict_public_buckets),
                    Err(crate::model::Error::NoSuchBucket) => false,
                    Err(e) => return Err(super::errors::to_s3(e)),
                }
            }
            _ => false,
        };
        let label = match resource {
            Resource::Bucket(b) | Resource::Object { bucket: b, .. } => format!("bucket {b}"),
            Resource::All => String::new(),
        };
        let policy = bucket_policy.as_deref().map(|d| (label.as_str(), d));
        let first = decide(who, action, resource, policy, keys, restrict_public, &[]);
        if first.is_allowed() {
            return Ok(());
        }
        // ACLs only allow: they are read when the policies have not allowed, and only
        // where a bucket enables them, so other requests pay nothing for them.
        let acl_docs = match first {
            Verdict::Policies(Decision::ExplicitDeny(_)) => Vec::new(),
            // Boxed: every request's check carries its future, most never run it.
            // The version a request names is the one whose ACL counts.
            _ => Box::pin(acl_docs(
                &self.router(),
                who,
                action,
                resource,
                keys.iter()
                    .find(|(k, _)| *k == "s3:VersionId")
                    .map(|(_, v)| *v),
            ))
            .await
            .map_err(super::errors::to_s3)?,
        };
        let acls: Vec<(&str, &PolicyDocument)> =
            acl_docs.iter().map(|(l, d)| (l.as_str(), d)).collect();
        let decision = if acls.is_empty() {
            first
        } else {
            decide(who, action, resource, policy, keys, restrict_public, &acls)
        };
        if decision.is_allowed() {
            return Ok(());
        }
        // Why, for the request's access log line (the client hears only that it may not).
        super::exchange::Exchange::with_current(|x| {
            x.set_error(
                "AccessDenied",
                &format!(
                    "denied to {}: {decision}",
                    who.user.map_or("anonymous", |u| u.name.as_str())
                ),
            );
        });
        Err(s3_error!(AccessDenied, "Access Denied"))
    }
}

/// The ACLs that may allow `action` on `resource`, as statements with their labels:
/// none unless the bucket's object ownership enables ACLs. The bucket's ACL (its
/// owner's FULL_CONTROL unless PutBucketAcl stored another) and, for an object's
/// actions, the ACL kept with the object a read would serve, or with the version named
/// (a missing object has none). Block Public Access's IgnorePublicAcls drops the grants
/// to groups.
pub async fn acl_docs(
    router: &Router,
    who: &Requester<'_>,
    action: &str,
    resource: Resource<'_>,
    version: Option<&str>,
) -> crate::model::Result<Vec<(String, PolicyDocument)>> {
    let (bucket, key) = match resource {
        Resource::Bucket(b) => (b, None),
        Resource::Object { bucket, key } => (bucket, Some(key)),
        Resource::All => return Ok(Vec::new()),
    };
    let is = |list: &[&str]| list.iter().any(|a| a.eq_ignore_ascii_case(action));
    let on_object = key.is_some() && is(&OBJECT_ACL_ACTIONS);
    if !is(&BUCKET_ACL_ACTIONS) && !on_object {
        return Ok(Vec::new());
    }
    let state = match router.bucket_acl(bucket).await {
        Ok(s) => s,
        Err(crate::model::Error::NoSuchBucket) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    if !state.acls_enabled() {
        return Ok(Vec::new());
    }
    let ignore_public = router
        .public_access_block(bucket)
        .await?
        .is_some_and(|b| b.ignore_public_acls);
    // A configured bucket is every user's: it has no owner to grant to.
    let owner = router.bucket_owner(bucket).await?;
    let mut docs = Vec::new();
    let bucket_grants = match (&state.grants, &owner) {
        (Some(g), _) => Some(g.clone()),
        (None, Some(o)) => Some(crate::model::ObjectAcl::private(o).grants),
        (None, None) => None,
    };
    if let Some(grants) = bucket_grants {
        docs.push((
            format!("bucket {bucket} ACL"),
            PolicyDocument::from_acl(iam::AclOn::Bucket(bucket), &grants, ignore_public),
        ));
    }
    if let Some(key) = key.filter(|_| on_object) {
        let principal = who.user.map(|u| u.access_key.as_str());
        let view = super::request_view(
            router,
            bucket,
            &http::HeaderMap::new(),
            who.source_ip,
            principal,
            Cow::Borrowed("HeadObject"),
        );
        let acl = match router.object_acl(&view, bucket, key, version).await {
            Ok(Some(acl)) => Some(acl),
            Ok(None) => owner.map(|o| crate::model::ObjectAcl::private(&o)),
            // The request itself answers these.
            Err(
                crate::model::Error::NotFound
                | crate::model::Error::NoSuchVersion
                | crate::model::Error::DeleteMarker { .. }
                | crate::model::Error::KeyTooLong(_)
                | crate::model::Error::InvalidArgument(_),
            ) => None,
            Err(e) => return Err(e),
        };
        if let Some(acl) = acl {
            docs.push((
                format!("object {key} ACL"),
                PolicyDocument::from_acl(
                    iam::AclOn::Object { bucket, key },
                    &acl.grants,
                    ignore_public,
                ),
            ));
        }
    }
    Ok(docs)
}

/// The actions some ACL permission allows (see [`crate::iam::AclOn`]), on the bucket and
/// on an object.
const BUCKET_ACL_ACTIONS: [&str; 7] = [
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "s3:ListBucketMultipartUploads",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:GetBucketAcl",
    "s3:PutBucketAcl",
];
const OBJECT_ACL_ACTIONS: [&str; 6] = [
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:GetObjectAcl",
    "s3:GetObjectVersionAcl",
    "s3:PutObjectAcl",
    "s3:PutObjectVersionAcl",
];

/// The actions for which AWS fills in `s3:ExistingObjectTag/<key>`.
const EXISTING_TAG_ACTIONS: [&str; 12] = [
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:GetObjectAttributes",
    "s3:GetObjectVersionAttributes",
    "s3:GetObjectTagging",
    "s3:GetObjectVersionTagging",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionTagging",
    "s3:DeleteObjectTagging",
    "s3:DeleteObjectVersionTagging",
    "s3:GetObjectAcl",
    "s3:PutObjectAcl",
];

/// The `s3:RequestObjectTag/<key>` condition keys of the tags a request sets.
pub fn request_tag_keys<'a>(
    tags: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Vec<(String, String)> {
    tags.into_iter()
        .map(|(k, v)| (format!("s3:requestobjecttag/{k}"), v.clone()))
        .collect()
}

/// What a request tells of the object it writes, from its headers alone: admission is
/// decided before the body is read.
fn object_from_headers(bucket: &str, key: &str, headers: &http::HeaderMap) -> ObjectView {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let size = text("x-amz-decoded-content-length")
        .or_else(|| text("content-length"))
        .and_then(|v| v.parse().ok());
    let metadata = headers
        .iter()
        .filter_map(|(name, v)| {
            let short = name.as_str().strip_prefix("x-amz-meta-")?;
            Some((short.to_owned(), v.to_str().ok()?.to_owned()))
        })
        .collect();
    ObjectView {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        size,
        content_type: text("content-type").map(str::to_owned),
        metadata,
        age_seconds: None,
        tags: crate::policy::parse_tagging(text("x-amz-tagging")),
    }
}

/// Refuses presigned URLs valid for more than a week, as AWS does
/// (`AuthorizationQueryParametersError`); s3s checks only that they have not expired.
fn check_presigned_expiry(query: Option<&str>) -> S3Result<()> {
    let Some(expires) = query_param(query, "X-Amz-Expires") else {
        return Ok(());
    };
    match expires.parse::<u64>() {
        Ok(secs) if secs <= MAX_PRESIGNED_EXPIRY_SECS => Ok(()),
        Ok(_) => Err(s3_error!(
            AuthorizationQueryParametersError,
            "X-Amz-Expires must be less than a week (in seconds) that is 604800"
        )),
        Err(_) => Err(s3_error!(
            AuthorizationQueryParametersError,
            "X-Amz-Expires should be a number"
        )),
    }
}

/// `s3:signatureversion` as AWS sets it: `AWS4-HMAC-SHA256` on every signed request
/// (SigV2 is refused before this is asked, see [`refuse_signature_v2`]); absent for
/// anonymous requests.
fn signature_version(signed: bool) -> Option<&'static str> {
    signed.then_some("AWS4-HMAC-SHA256")
}

/// Refuses a request s3s accepted under AWS's signature version 2 (an `Authorization:
/// AWS key:signature` header, or a `Signature` query parameter). The gateway speaks SigV4
/// only, and SigV2 as s3s checks it has no time limit: a header-signed request carries no
/// clock-skew check (a captured one replays for ever), a presigned URL lives until its
/// `Expires`, however far ahead. AWS answers the same where SigV2 is retired.
fn refuse_signature_v2(headers: &http::HeaderMap, query: Option<&str>) -> S3Result<()> {
    let v2_header = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.starts_with("AWS "));
    if v2_header || query_param(query, "Signature").is_some() {
        return Err(s3_error!(
            InvalidRequest,
            "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
        ));
    }
    Ok(())
}

/// A form upload's `success_action_redirect` must be a URL: s3s builds the redirect only
/// after the object is written, and answers `400 InvalidArgument` for one that is not,
/// which would tell the client a write that happened had failed. This is the hook s3s
/// calls last before the write, so the same check is made here, first.
fn check_redirect(redirect: Option<&str>) -> S3Result<()> {
    match redirect {
        Some(r) if r.chars().any(char::is_control) || url::Url::parse(r).is_err() => {
            Err(s3_error!(
                InvalidArgument,
                "success_action_redirect must be an absolute URL"
            ))
        }
        _ => Ok(()),
    }
}

/// The `response-*` parameters that rewrite a GET's answer headers.
const RESPONSE_OVERRIDES: [&str; 6] = [
    "response-content-type",
    "response-content-language",
    "response-expires",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
];

/// The [`Access`] s3s asks before each operation (shared with the front end).
pub struct AccessHook(pub Arc<Access>);

#[async_trait::async_trait]
impl S3Access for AccessHook {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let signed = cx.credentials().map(|c| c.access_key.clone());
        super::exchange::Exchange::with_current(|x| {
            let (bucket, key) = match cx.s3_path() {
                S3Path::Root => (None, None),
                S3Path::Bucket { bucket } => (Some(&**bucket), None),
                S3Path::Object { bucket, key } => (Some(&**bucket), Some(&**key)),
            };
            x.set_request(cx.s3_op().name(), bucket, key, signed.as_deref());
        });
        let snapshot = self.0.live.current();
        let who = Access::requester(&snapshot.users, signed.as_deref(), cx.extensions_mut())?;
        let query = cx.uri().query();
        if signed.is_some() {
            refuse_signature_v2(cx.headers(), query)?;
        }
        check_presigned_expiry(query)?;
        let op = cx.s3_op().name();
        // An anonymous bucket must not be made to serve, say, HTML with the gateway's
        // origin: AWS refuses these for anonymous requests.
        if signed.is_none()
            && op == "GetObject"
            && RESPONSE_OVERRIDES
                .iter()
                .any(|p| query_param(query, p).is_some())
        {
            return Err(s3_error!(
                InvalidRequest,
                "Request specific response headers cannot be used for anonymous GET requests."
            ));
        }
        let Some((mut action, object)) = action_of(op) else {
            return Ok(());
        };
        // A request naming a version is authorized as AWS does: its own action, and the
        // `s3:VersionId` key.
        let version_id = query_param(query, "versionId");
        if version_id.is_some()
            && let Some(versioned) = version_action(op)
        {
            action = Cow::Borrowed(versioned);
        }
        let resource = match cx.s3_path() {
            S3Path::Root => Resource::All,
            S3Path::Bucket { bucket } => Resource::Bucket(bucket),
            S3Path::Object { bucket, key } if object => Resource::Object { bucket, key },
            S3Path::Object { bucket, .. } => Resource::Bucket(bucket),
        };
        let list_keys: Vec<(&str, Cow<'_, str>)> = if action == "s3:ListBucket" {
            [
                ("s3:prefix", "prefix"),
                ("s3:delimiter", "delimiter"),
                ("s3:max-keys", "max-keys"),
            ]
            .into_iter()
            .filter_map(|(k, p)| query_param(query, p).map(|v| (k, v)))
            .collect()
        } else {
            Vec::new()
        };
        let mut keys: Vec<(&str, &str)> = list_keys.iter().map(|(k, v)| (*k, v.as_ref())).collect();
        if let Some(v) = signature_version(signed.is_some()) {
            keys.push(("s3:signatureversion", v));
        }
        if let Some(acl) = cx.headers().get("x-amz-acl").and_then(|v| v.to_str().ok()) {
            keys.push(("s3:x-amz-acl", acl));
        }
        let mut tag_keys = Vec::new();
        if let Resource::Object { bucket, key } = resource {
            if action == "s3:PutObject" {
                let header = cx.headers().get("x-amz-tagging");
                let tags = crate::policy::parse_tagging(header.and_then(|v| v.to_str().ok()));
                tag_keys = request_tag_keys(tags.iter().map(|(k, v)| (k, v)));
            }
            let existing = self
                .0
                .existing_tag_keys(
                    &who,
                    &action,
                    (bucket, key),
                    version_id.as_deref(),
                    cx.headers(),
                )
                .await?;
            tag_keys.extend(existing);
        }
        keys.extend(tag_keys.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if let Some(v) = &version_id {
            keys.push(("s3:VersionId", v.as_ref()));
        }
        self.0.authorize(&who, &action, resource, &keys).await?;
        // s3s answers the operations the front end does not implement with 501 without
        // looking further; S3 would first say that the bucket does not exist.
        if !super::implements(op)
            && let S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } = cx.s3_path()
        {
            let router = self.0.router();
            router.bucket(bucket).await.map_err(super::errors::to_s3)?;
        }
        let (bucket, key) = match cx.s3_path() {
            S3Path::Root => return Ok(()),
            S3Path::Bucket { bucket } => (bucket.as_ref(), ""),
            S3Path::Object { bucket, key } => (bucket.as_ref(), key.as_ref()),
        };
        let source_ip = who.source_ip;
        self.0
            .admit(op, bucket, key, cx.headers(), source_ip, signed.as_deref())
            .await
    }

    /// A form upload, as AWS decides it: `s3:PutObject` on the object the form names
    /// (`check` sees only the bucket in the path; decided there as the bucket, no Deny on
    /// keys would ever apply to it).
    async fn post_object(&self, req: &mut S3Request<PostObjectInput>) -> S3Result<()> {
        let signed = req.credentials.as_ref().map(|c| c.access_key.as_str());
        let snapshot = self.0.live.current();
        let who = Access::requester(&snapshot.users, signed, &req.extensions)?;
        let resource = Resource::Object {
            bucket: &req.input.bucket,
            key: &req.input.key,
        };
        self.0
            .authorize(&who, "s3:PutObject", resource, &[])
            .await?;
        check_redirect(req.input.success_action_redirect.as_deref())?;
        self.0
            .admit(
                "PostObject",
                &req.input.bucket,
                &req.input.key,
                &req.headers,
                who.source_ip,
                signed,
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presigned_urls_live_a_week_at_most() {
        assert!(check_presigned_expiry(None).is_ok());
        assert!(check_presigned_expiry(Some("X-Amz-Expires=604800&a=b")).is_ok());
        for bad in [
            "604801",
            "2592000",
            "4294967295",
            "-1",
            "1e3",
            "99999999999999999999",
        ] {
            let e = check_presigned_expiry(Some(&format!("X-Amz-Expires={bad}"))).unwrap_err();
            assert_eq!(
                e.code().as_str(),
                "AuthorizationQueryParametersError",
                "{bad}"
            );
        }
    }

    #[test]
    fn signature_v2_is_refused_and_v4_is_not() {
        let auth = |v: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(http::header::AUTHORIZATION, v.parse().unwrap());
            h
        };
        let none = http::HeaderMap::new();
        assert!(refuse_signature_v2(&auth("AWS key:c2ln"), None).is_err());
        assert!(
            refuse_signature_v2(&none, Some("AWSAccessKeyId=k&Expires=9&Signature=s")).is_err()
        );
        let v4 = "AWS4-HMAC-SHA256 Credential=k/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=ab";
        assert!(refuse_signature_v2(&auth(v4), None).is_ok());
        assert!(refuse_signature_v2(&none, Some("X-Amz-Signature=ab&X-Amz-Expires=60")).is_ok());
        assert!(refuse_signature_v2(&none, None).is_ok());
    }

    #[test]
    fn form_upload_redirects_are_urls() {
        assert!(check_redirect(None).is_ok());
        assert!(check_redirect(Some("https://example.com/done?x=1")).is_ok());
        for bad in [
            "true",
            "",
            "/relative",
            "https://exa mple.com",
            "https://a\nb",
        ] {
            assert!(check_redirect(Some(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn actions_follow_aws_table() {
        let a = |op: &str| action_of(op).map(|(a, o)| (a.into_owned(), o));
        assert_eq!(a("HeadObject"), Some(("s3:GetObject".into(), true)));
        assert_eq!(a("HeadBucket"), Some(("s3:ListBucket".into(), false)));
        assert_eq!(a("UploadPartCopy"), Some(("s3:PutObject".into(), true)));
        assert_eq!(
            a("PutBucketPolicy"),
            Some(("s3:PutBucketPolicy".into(), false))
        );
        assert_eq!(
            a("GetObjectTagging"),
            Some(("s3:GetObjectTagging".into(), true))
        );
        assert_eq!(a("DeleteObjects"), None);
        assert_eq!(a("PostObject"), None);
    }
}
