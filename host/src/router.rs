//! Virtual-bucket semantics: the one place where a policy decision becomes backend
//! operations. Writes go where placement says (all targets, for a mirror), reads try
//! members in routing order and fall through on not-found or failure, deletes apply to
//! every member, listings merge every member.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use md5::{Digest, Md5};
use tracing::{debug, warn};

use crate::backends::{self, Backend, PartRef, Registry, check_attrs, check_key};
use crate::checksum::{self, Algorithm, Stored};
use crate::config::{
    Config, ConfigError, DynamicBuckets, FailureMode, ObjectOwnership, PublicAccessBlock,
};
use crate::frontend::exchange::Exchange;
use crate::iam::{PolicyDocument, PolicyKind};
use crate::listing::{self, ListPage, ListRequest};
use crate::metrics::{self, Metrics, Outcome};
use crate::model::{
    Attrs, Body, ByteRange, ByteStream, Declared, Error, GetOutcome, MemberView, PutOutcome,
    RESERVED_PREFIX, ReadConditions, Result, WriteCondition,
};
use crate::policy::set::PolicySet;
use crate::policy::wasm::{CallError, WasmPolicy};
use crate::policy::{
    DefaultPolicy, ObjectView, Policy, RequestView, RouteAnswer, TierAction, Verdict,
    validate_answer, validate_tier,
};
use crate::versions;

#[path = "versions_native.rs"]
mod versions_native;

/// S3's smallest allowed part, except the last.
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
const MAX_PART_NUMBER: i32 = 10_000;

pub struct VirtualBucket {
    pub name: String,
    pub members: Vec<Arc<Backend>>,
    /// `default` (built in) or the name of a loaded policy component.
    pub policy: String,
    pub failure: FailureMode,
    /// Where the bucket policy comes from.
    pub access: BucketAccess,
    pub created: DateTime<Utc>,
    /// Made by CreateBucket (and so removable by DeleteBucket).
    pub dynamic: bool,
    /// Writes in flight hold it shared; DeleteBucket takes it alone, so that it sees every
    /// write this engine acknowledged, and no write starts after it.
    writes: tokio::sync::RwLock<bool>,
    /// When this engine last found the bucket's record (buckets of a remote
    /// `[dynamic_buckets]` template, which another engine may delete).
    checked: std::sync::Mutex<Instant>,
    /// The ETag of that record: each `CreateBucket` writes one of its own, so a bucket
    /// deleted and made again under the name (through another engine) is told from the
    /// one this engine knew.
    record: Option<String>,
    /// The stored public access block of a bucket made by CreateBucket, as last read
    /// (see [`Router::public_access_block`]); like the stored policy, read again once
    /// [`POLICY_CACHE`] old.
    block: std::sync::Mutex<Option<(Instant, Option<PublicAccessBlock>)>>,
    /// The stored object ownership and ACL of a bucket made by CreateBucket, as last read
    /// (see [`Router::bucket_acl`]); read again once [`POLICY_CACHE`] old.
    acl: std::sync::Mutex<Option<(Instant, BucketAcl)>>,
    /// The stored versioning state of a bucket made by CreateBucket, as last read (see
    /// [`Router::versioning`]); read again once [`POLICY_CACHE`] old.
    versioning: std::sync::Mutex<Option<(Instant, versions::State)>>,
    /// Its policy's decision metrics, from the first decision on (see
    /// [`metrics::DecisionHandles`]).
    decisions: std::sync::OnceLock<metrics::DecisionHandles>,
}

impl VirtualBucket {
    pub fn new(
        name: String,
        members: Vec<Arc<Backend>>,
        policy: String,
        failure: FailureMode,
        access: BucketAccess,
        created: DateTime<Utc>,
        dynamic: bool,
    ) -> Self {
        Self {
            name,
            members,
            policy,
            failure,
            access,
            created,
            dynamic,
            writes: tokio::sync::RwLock::new(false),
            checked: std::sync::Mutex::new(Instant::now()),
            record: None,
            block: std::sync::Mutex::new(None),
            acl: std::sync::Mutex::new(None),
            versioning: std::sync::Mutex::new(None),
            decisions: std::sync::OnceLock::new(),
        }
    }

    /// Its policy's decision metrics in `metrics`, the registry of the router that holds
    /// it.
    fn decision_metrics(&self, metrics: &Metrics) -> &metrics::DecisionHandles {
        self.decisions
            .get_or_init(|| metrics.decision_handles(&self.policy))
    }

    /// Whether the bucket's record is to be looked up again, [`DYNAMIC_RECHECK`] after
    /// the last look. The first request to find it due takes the look on itself; the
    /// others meanwhile go on as before.
    fn recheck_due(&self) -> bool {
        let mut checked = self.checked.lock().expect("bucket check lock");
        if checked.elapsed() < DYNAMIC_RECHECK {
            return false;
        }
        *checked = Instant::now();
        true
    }

    fn checked_now(&self) {
        *self.checked.lock().expect("bucket check lock") = Instant::now();
    }

    /// Admits one write, for as long as the guard lives; `NoSuchBucket` once the bucket
    /// is deleted.
    async fn admit_write(&self) -> Result<tokio::sync::RwLockReadGuard<'_, bool>> {
        let guard = self.writes.read().await;
        if *guard {
            return Err(Error::NoSuchBucket);
        }
        Ok(guard)
    }

    pub fn views(&self) -> Vec<MemberView<'_>> {
        self.members.iter().map(|m| m.view()).collect()
    }

    pub fn member(&self, name: &str) -> Option<&Arc<Backend>> {
        self.members.iter().find(|m| m.name == name)
    }
}

/// Where a bucket's access policy (AWS's language) comes from.
pub enum BucketAccess {
    /// The configuration file, with the `anonymous` shorthand folded in.
    Configured(Option<Arc<PolicyDocument>>),
    /// The bucket's own member (`.switchyard/bucket-policy.json`, set by PutBucketPolicy),
    /// so that every engine sees it; read again once [`POLICY_CACHE`] old.
    Stored(std::sync::Mutex<Option<(Instant, Option<Arc<PolicyDocument>>)>>),
}

/// How long an engine keeps a stored bucket policy before reading it again: a change made
/// through another engine takes effect here within this time (at once through this one).
pub const POLICY_CACHE: std::time::Duration = std::time::Duration::from_secs(2);

/// Where PutBucketPolicy keeps a bucket's policy, under the reserved prefix of its member.
const POLICY_PATH: &str = "bucket-policy.json";

/// Where PutPublicAccessBlock keeps a bucket's settings, beside its policy.
const BLOCK_PATH: &str = "public-access-block.json";

/// Where PutBucketOwnershipControls and PutBucketAcl keep a bucket's object ownership
/// and ACL, beside its policy.
const ACL_PATH: &str = "bucket-acl.json";

/// A bucket's object ownership and ACL.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BucketAcl {
    /// `None`: no ownership controls (DeleteBucketOwnershipControls), which S3 treats as
    /// `ObjectWriter`.
    pub ownership: Option<ObjectOwnership>,
    /// Set by PutBucketAcl; `None`: the owner's FULL_CONTROL alone. Kept, not counted,
    /// while the ownership is `BucketOwnerEnforced`, as S3 keeps it.
    #[serde(default)]
    pub grants: Option<Vec<crate::model::AclGrant>>,
}

impl Default for BucketAcl {
    /// What S3 gives a new bucket: ACLs disabled.
    fn default() -> Self {
        Self {
            ownership: Some(ObjectOwnership::BucketOwnerEnforced),
            grants: None,
        }
    }
}

impl BucketAcl {
    /// The ownership in force.
    pub fn ownership(&self) -> ObjectOwnership {
        self.ownership.unwrap_or(ObjectOwnership::ObjectWriter)
    }

    pub fn acls_enabled(&self) -> bool {
        self.ownership().acls_enabled()
    }
}

/// Where CreateBucket records who made a bucket (the user's name), under the reserved
/// prefix of its member. On a remote `[dynamic_buckets]` template this record is what
/// makes a prefix a bucket.
const OWNER_PATH: &str = "bucket-creator";

/// How long an engine serves a bucket of a remote `[dynamic_buckets]` template before it
/// looks again for the bucket's record: a DeleteBucket through another engine takes
/// effect here within this time (at once through this one). An `fs` bucket is looked up
/// on every request instead (a `stat`), a remote one would cost a request to the cloud.
const DYNAMIC_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// A point where a test stops an operation on `bucket` as a crash there would (the
/// steps after it never run): set in-process with `fail::cfg(name, "return(BUCKET)")`,
/// it stops that bucket's operation only, so tests running beside it go on.
pub(crate) fn crash_point(name: &str, bucket: &str) -> Result<()> {
    #[cfg(feature = "failpoints")]
    if fail::eval(name, |arg| arg).flatten().as_deref() == Some(bucket) {
        return Err(Error::internal(format!("stopped at {name}")));
    }
    let _ = (name, bucket);
    Ok(())
}

/// What an engine reads of a bucket's record on a remote template.
struct Record {
    made: DateTime<Utc>,
    etag: Option<String>,
}

/// The record of bucket `name` in the store of a remote template (its prefix below).
fn record_key(name: &str) -> String {
    format!("{name}/{RESERVED_PREFIX}{OWNER_PATH}")
}

/// The outcome of one policy call, with the answer `check` accepted or the reason it
/// cannot be used.
fn classify<T>(
    r: std::result::Result<std::result::Result<T, crate::policy::PolicyError>, CallError>,
    check: impl FnOnce(T) -> std::result::Result<T, String>,
) -> (Outcome, std::result::Result<T, String>) {
    match r {
        Err(CallError::Trap(m)) => (Outcome::Trap, Err(format!("trapped: {m}"))),
        Err(CallError::Timeout) => (Outcome::Timeout, Err("ran past its deadline".to_owned())),
        Err(CallError::Busy) => (
            Outcome::Timeout,
            Err(
                "found no free slot within its deadline (its running calls use them all)"
                    .to_owned(),
            ),
        ),
        Err(CallError::Memory(m)) => (
            Outcome::MemoryLimit,
            Err(format!("hit its memory limit: {m}")),
        ),
        Ok(Err(e)) => (Outcome::Refused, Err(e.to_string())),
        Ok(Ok(answer)) => match check(answer) {
            Ok(a) => (Outcome::Ok, Ok(a)),
            Err(e) => (Outcome::InvalidAnswer, Err(e)),
        },
    }
}

/// Turns policy calls into decisions: validates answers, applies the bucket's failure
/// mode, logs one line per decision and counts outcomes.
///
/// The decision's line is at `debug` (target `switchyard::decisions`): at `info` it was
/// formatted and written on every request of a policy bucket, beside the request's access
/// log line, and cost about as much as a warm Rust decision itself (policy bench, "under
/// the engine's logging"). A decision that fails is still logged (or noted on the access
/// log line) by [`Decider::fail`].
pub struct Decider {
    pub policies: Option<Arc<PolicySet>>,
    pub metrics: Arc<Metrics>,
}

impl Decider {
    async fn call(
        &self,
        vb: &VirtualBucket,
        call: metrics::Call,
        req: &RequestView,
        obj: &ObjectView,
    ) -> Result<RouteAnswer> {
        let views = vb.views();
        let builtin = || {
            match call {
                metrics::Call::Route => DefaultPolicy.route(req, obj, &views),
                _ => DefaultPolicy.place(req, obj, &views),
            }
            .map(|members| RouteAnswer {
                members,
                strict: false,
            })
        };
        if vb.policy == "default" {
            return builtin().map_err(|e| Error::internal(e.to_string()));
        }
        let started = Instant::now();
        let loaded = self.policies.as_ref().and_then(|s| s.get(&vb.policy));
        let hash = loaded.as_ref().map_or("-", |p| p.short_hash());
        let (outcome, result): (Outcome, Result<RouteAnswer, String>) = match &loaded {
            None => (
                Outcome::NotLoaded,
                Err("the policy is not loaded".to_owned()),
            ),
            Some(p) => {
                let run = move |p: &WasmPolicy,
                                req: &RequestView,
                                obj: &ObjectView,
                                members: &[MemberView]| match call {
                    metrics::Call::Route => p.route(req, obj, members),
                    _ => p.place(req, obj, members).map(|r| {
                        r.map(|members| RouteAnswer {
                            members,
                            strict: false,
                        })
                    }),
                };
                let r = p
                    .call(
                        (req, obj, &views),
                        |(req, obj, members), p| run(p, req, obj, members),
                        |(req, obj, members)| {
                            let (req, obj) = (req.clone(), obj.clone());
                            let members: Vec<MemberView<'static>> =
                                members.iter().map(MemberView::owned).collect();
                            Box::new(move |p| run(p, &req, &obj, &members))
                        },
                    )
                    .await;
                self.observe_call(vb, started);
                classify(r, |answer| {
                    Ok(RouteAnswer {
                        members: validate_answer(answer.members, &views)
                            .map_err(|e| e.to_string())?,
                        strict: answer.strict,
                    })
                })
            }
        };
        vb.decision_metrics(&self.metrics)
            .count(&self.metrics, call, outcome);
        tracing::debug!(
            target: "switchyard::decisions",
            policy = %vb.policy,
            hash = %hash,
            call = ?call,
            bucket = %obj.bucket,
            key = %obj.key,
            size = ?obj.size,
            principal = ?req.principal,
            members = views.len(),
            answer = ?result,
            outcome = ?outcome,
            duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "decision"
        );
        match result {
            Ok(a) => Ok(a),
            Err(reason) => {
                self.fail(vb, hash, "decide", "using the built-in default", reason)?;
                builtin().map_err(|e| Error::internal(e.to_string()))
            }
        }
    }

    /// A policy that could not answer (`reason`): under fail-open, counted as a fallback
    /// and `Ok` (the caller does `fallback` instead); under fail-closed, the request's
    /// error.
    fn fail(
        &self,
        vb: &VirtualBucket,
        hash: &str,
        what: &str,
        fallback: &str,
        reason: String,
    ) -> Result<()> {
        match vb.failure {
            FailureMode::FailOpen => {
                self.metrics
                    .fallbacks
                    .get_or_create(&metrics::PolicyLabels {
                        policy: vb.policy.clone(),
                    })
                    .inc();
                let text = format!(
                    "policy {} ({hash}) could not {what} ({reason}); fail-open: {fallback}",
                    vb.policy
                );
                if !Exchange::note(&text) {
                    warn!(bucket = %vb.name, "{text}");
                }
                Ok(())
            }
            FailureMode::FailClosed => {
                let text = format!(
                    "policy {} ({hash}) could not {what}; fail-closed: refusing the request",
                    vb.policy
                );
                if !Exchange::note(&text) {
                    warn!(bucket = %vb.name, "{text} ({reason})");
                }
                Err(Error::PolicyFailed {
                    policy: vb.policy.clone(),
                    message: reason,
                })
            }
        }
    }

    /// Records how long one policy call took (the guest's time, not the answer's checks).
    fn observe_call(&self, vb: &VirtualBucket, started: Instant) {
        vb.decision_metrics(&self.metrics)
            .observe(started.elapsed().as_secs_f64());
    }

    /// What a tiering pass does with one object held by `current`. The built-in default
    /// keeps everything. An answer naming the current member, or one outside the bucket,
    /// is invalid; any failure is an error the pass counts, and the object stays put: a
    /// tiering pass never acts on a policy that could not decide.
    pub async fn tier(
        &self,
        vb: &VirtualBucket,
        obj: &ObjectView,
        current: &str,
    ) -> Result<TierAction> {
        if vb.policy == "default" {
            return Ok(TierAction::Keep);
        }
        let views = vb.views();
        let started = Instant::now();
        let loaded = self.policies.as_ref().and_then(|s| s.get(&vb.policy));
        let (outcome, result) = match &loaded {
            None => (
                Outcome::NotLoaded,
                Err("the policy is not loaded".to_owned()),
            ),
            Some(p) => {
                let (o, c) = (obj.clone(), current.to_owned());
                let members: Vec<MemberView<'static>> =
                    views.iter().map(MemberView::owned).collect();
                let r = p
                    .clone()
                    .call_off_thread(move |p| p.tier(&o, &c, &members))
                    .await;
                self.observe_call(vb, started);
                classify(r, |action| {
                    validate_tier(action, current, &views).map_err(|e| e.to_string())
                })
            }
        };
        vb.decision_metrics(&self.metrics)
            .count(&self.metrics, metrics::Call::Tier, outcome);
        tracing::debug!(
            target: "switchyard::decisions",
            policy = %vb.policy,
            hash = %loaded.as_ref().map_or("-", |p| p.short_hash()),
            call = ?metrics::Call::Tier,
            bucket = %obj.bucket,
            key = %obj.key,
            current = %current,
            answer = ?result,
            outcome = ?outcome,
            duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "decision"
        );
        result.map_err(|message| Error::PolicyFailed {
            policy: vb.policy.clone(),
            message,
        })
    }

    /// Whether the bucket's policy serves this request: `Ok` to go on, or the S3 error
    /// it answers. Without a call unless the policy is a loaded 0.2 component (0.1 and the
    /// built-in policy have no admission); a policy that cannot decide gets the bucket's
    /// failure mode: fail-open admits, fail-closed answers 503.
    pub async fn admit(
        &self,
        vb: &VirtualBucket,
        req: &RequestView,
        obj: &ObjectView,
    ) -> Result<()> {
        if vb.policy == "default" {
            return Ok(());
        }
        let started = Instant::now();
        let loaded = self.policies.as_ref().and_then(|s| s.get(&vb.policy));
        let hash = loaded.as_ref().map_or("-", |p| p.short_hash());
        let (outcome, result) = match &loaded {
            // 0.1 components have no say.
            Some(p) if !p.admits() => return Ok(()),
            // Not knowing whether the missing policy admits, a fail-closed bucket refuses
            // (an access rule must not lapse because its policy failed to load).
            None => (
                Outcome::NotLoaded,
                Err("the policy is not loaded".to_owned()),
            ),
            Some(p) => {
                let r = p
                    .call(
                        (req, obj),
                        |(req, obj), p| p.admit(req, obj),
                        |(req, obj)| {
                            let (req, obj) = (req.clone(), obj.clone());
                            Box::new(move |p| p.admit(&req, &obj))
                        },
                    )
                    .await;
                self.observe_call(vb, started);
                classify(r, Ok)
            }
        };
        vb.decision_metrics(&self.metrics)
            .count(&self.metrics, metrics::Call::Admit, outcome);
        tracing::debug!(
            target: "switchyard::decisions",
            policy = %vb.policy,
            hash = %hash,
            call = ?metrics::Call::Admit,
            operation = %req.operation,
            bucket = %obj.bucket,
            key = %obj.key,
            principal = ?req.principal,
            answer = ?result,
            outcome = ?outcome,
            duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "decision"
        );
        match result {
            Ok(Verdict::Allow) => Ok(()),
            Ok(Verdict::Deny { code, message }) => Err(Error::Denied { code, message }),
            Err(reason) => self.fail(vb, hash, "admit", "admitting the request", reason),
        }
    }

    /// Write targets for one object.
    pub async fn place(
        &self,
        vb: &VirtualBucket,
        req: &RequestView,
        obj: &ObjectView,
    ) -> Result<Vec<Arc<Backend>>> {
        let answer = self.call(vb, metrics::Call::Place, req, obj).await?;
        Ok(answer
            .members
            .iter()
            .filter_map(|n| vb.member(n).cloned())
            .collect())
    }

    /// Read order: the policy's order, then the members it left out unless its answer is
    /// strict. Health does not reorder it: the order is also freshness (writes go to the
    /// first member, migrations copy toward it), and reading a later member first could
    /// serve an older copy.
    pub async fn route(
        &self,
        vb: &VirtualBucket,
        req: &RequestView,
        obj: &ObjectView,
    ) -> Result<Vec<Arc<Backend>>> {
        let answer = self.call(vb, metrics::Call::Route, req, obj).await?;
        let mut order: Vec<Arc<Backend>> = answer
            .members
            .iter()
            .filter_map(|n| vb.member(n).cloned())
            .collect();
        if answer.strict {
            return Ok(order);
        }
        // A key may live in a member the policy left out (written before a policy change):
        // those are tried last so that no object becomes unreadable.
        for m in &vb.members {
            if !order.iter().any(|o| o.name == m.name) {
                order.push(m.clone());
            }
        }
        Ok(order)
    }
}

/// A multipart upload as recorded in its member (`.switchyard/mpu/<nonce>.json`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct UploadRecord {
    pub key: String,
    pub upload_id: String,
    pub initiated: DateTime<Utc>,
    pub attrs: Attrs,
    /// The other members placement named when the upload began (a mirror): the parts
    /// go to the first member only, and the completed object is copied to these before
    /// the completion is acknowledged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<String>,
    /// The checksum CreateMultipartUpload asked for: each part's is computed as it
    /// streams, and the completed object keeps theirs combined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<(Algorithm, checksum::Kind)>,
}

/// One uploaded part as recorded in its member.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PartRecord {
    pub part_number: i32,
    pub etag: String,
    pub size: u64,
    pub last_modified: DateTime<Utc>,
    pub content_id: String,
    /// The part's checksum (base64) in the upload's algorithm, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

/// The parts of a decoded upload id.
struct UploadId {
    member: String,
    nonce: String,
    backend_id: String,
}

impl UploadId {
    fn encode(member: &str, nonce: &str, backend_id: &str) -> String {
        format!("{member}.{nonce}.{}", URL_SAFE_NO_PAD.encode(backend_id))
    }

    fn decode(id: &str) -> Result<Self> {
        let mut it = id.splitn(3, '.');
        let (Some(member), Some(nonce), Some(b)) = (it.next(), it.next(), it.next()) else {
            return Err(Error::NoSuchUpload);
        };
        let backend_id = URL_SAFE_NO_PAD
            .decode(b)
            .ok()
            .and_then(|v| String::from_utf8(v).ok())
            .ok_or(Error::NoSuchUpload)?;
        if nonce.len() != 32 || !nonce.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::NoSuchUpload);
        }
        Ok(Self {
            member: member.to_owned(),
            nonce: nonce.to_owned(),
            backend_id,
        })
    }
}

/// What UploadPart answers: the part's ETag, and its checksum in the upload's algorithm.
pub struct UploadedPart {
    pub etag: String,
    pub checksum: Option<(Algorithm, String)>,
}

pub struct CompletedPart {
    pub part_number: i32,
    pub etag: String,
    /// The part's checksum as the client names it, if it does.
    pub checksum: Option<(Algorithm, String)>,
}

pub struct UploadSummary {
    pub key: String,
    pub upload_id: String,
    pub initiated: DateTime<Utc>,
}

/// Virtual buckets and backends of one configuration snapshot.
pub struct Router {
    pub config: Arc<Config>,
    registry: Registry,
    buckets: RwLock<BTreeMap<String, Arc<VirtualBucket>>>,
    /// The store under a remote `[dynamic_buckets]` template, where the buckets' records
    /// are looked up.
    dynamic_root: Option<Backend>,
    pub decider: Decider,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router").finish_non_exhaustive()
    }
}

/// The metrics label of every bucket made by CreateBucket (one backend each): their
/// number is the clients' choice, the label's values are not.
const DYNAMIC_LABEL: &str = "dynamic_buckets";

fn bucket_name_ok(name: &str) -> bool {
    s3s::path::check_bucket_name(name)
}

impl Router {
    /// Builds every backend and bucket. `policies` is the loaded policy set (shared
    /// across configuration snapshots so that hot reload outlives them).
    pub fn new(
        config: Arc<Config>,
        policies: Option<Arc<PolicySet>>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ConfigError> {
        Self::build(config, policies, metrics, None)
    }

    /// The router of `config` replacing `previous` in service (a configuration reload):
    /// backends configured as before are `previous`'s own (see [`Registry::rebuild`]), and
    /// so are the buckets made by CreateBucket while `[dynamic_buckets]` is unchanged
    /// (those of a `memory` template exist nowhere else).
    pub fn reload(
        config: Arc<Config>,
        policies: Option<Arc<PolicySet>>,
        metrics: Arc<Metrics>,
        previous: &Router,
    ) -> Result<Self, ConfigError> {
        Self::build(config, policies, metrics, Some(previous))
    }

    fn build(
        config: Arc<Config>,
        policies: Option<Arc<PolicySet>>,
        metrics: Arc<Metrics>,
        previous: Option<&Router>,
    ) -> Result<Self, ConfigError> {
        let registry = Registry::rebuild(&config, &metrics, previous.map(|p| &p.registry))?;
        let mut access = config.access_policies()?.buckets;
        let mut buckets = BTreeMap::new();
        let now = Utc::now();
        for (name, b) in &config.buckets {
            let members = b
                .members
                .iter()
                .map(|m| registry.get(m).expect("validated").clone())
                .collect();
            buckets.insert(
                name.clone(),
                Arc::new(VirtualBucket::new(
                    name.clone(),
                    members,
                    b.policy.clone(),
                    b.failure,
                    BucketAccess::Configured(access.remove(name).flatten()),
                    now,
                    false,
                )),
            );
        }
        let dynamic_root = match &config.dynamic_buckets {
            Some(t) => backends::dynamic_root(t)?.map(|b| b.metered(&metrics, DYNAMIC_LABEL)),
            None => None,
        };
        // Buckets made by CreateBucket on a `memory` template exist nowhere but here: they
        // stay while the template is unchanged (its Debug form is all of its settings).
        // Those of the other templates are found again in their stores.
        let kept_made = previous.filter(|p| {
            matches!(config.dynamic_buckets, Some(DynamicBuckets::Memory { .. }))
                && format!("{:?}", p.config.dynamic_buckets)
                    == format!("{:?}", config.dynamic_buckets)
        });
        if let Some(p) = kept_made {
            let made = p.buckets.read().expect("bucket map lock");
            for (name, vb) in made.iter().filter(|(_, vb)| vb.dynamic) {
                buckets.entry(name.clone()).or_insert_with(|| vb.clone());
            }
        }
        let router = Self {
            config,
            registry,
            buckets: RwLock::new(buckets),
            dynamic_root,
            decider: Decider { policies, metrics },
        };
        router.discover_dynamic(previous.is_none());
        Ok(router)
    }

    /// Buckets made by CreateBucket in an earlier run (or by another engine) are
    /// directories of the template root: no catalog is needed to find them.
    fn discover_dynamic(&self, starting: bool) {
        let Some(DynamicBuckets::Fs { root, .. }) = &self.config.dynamic_buckets else {
            return;
        };
        // Not on a reload: a DeleteBucket of this engine may be under way.
        if starting && self.buckets.read().expect("bucket map lock").is_empty() {
            // At start: finish what a DeleteBucket cut short by a crash left behind.
            backends::recover_retired(root);
        }
        let Ok(dir) = std::fs::read_dir(root) else {
            return;
        };
        for entry in dir.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir())
                && let Ok(name) = entry.file_name().into_string()
                && bucket_name_ok(&name)
            {
                let created = entry.metadata().ok().and_then(|m| m.created().ok());
                let _ = self.attach_dynamic(&name, created.map(DateTime::<Utc>::from), None);
            }
        }
    }

    fn attach_dynamic(
        &self,
        name: &str,
        created: Option<DateTime<Utc>>,
        record: Option<String>,
    ) -> Result<Arc<VirtualBucket>> {
        let vb = self.dynamic_bucket(name, created, record)?;
        self.buckets
            .write()
            .expect("bucket map lock")
            .insert(name.to_owned(), vb.clone());
        Ok(vb)
    }

    /// A bucket of the `[dynamic_buckets]` template, not yet known to the router.
    fn dynamic_bucket(
        &self,
        name: &str,
        created: Option<DateTime<Utc>>,
        record: Option<String>,
    ) -> Result<Arc<VirtualBucket>> {
        let template = self
            .config
            .dynamic_buckets
            .as_ref()
            .ok_or(Error::NoSuchBucket)?;
        let backend = Arc::new(
            backends::dynamic_backend(template, name)?
                .metered(&self.decider.metrics, DYNAMIC_LABEL),
        );
        let mut vb = VirtualBucket::new(
            name.to_owned(),
            vec![backend],
            "default".to_owned(),
            FailureMode::FailOpen,
            BucketAccess::Stored(std::sync::Mutex::new(None)),
            created.unwrap_or_else(Utc::now),
            true,
        );
        vb.record = record;
        Ok(Arc::new(vb))
    }

    pub async fn bucket(&self, name: &str) -> Result<Arc<VirtualBucket>> {
        let found = self.find_bucket(name).await;
        if found.is_ok() {
            Exchange::with_current(|x| x.bucket_found(name));
        }
        found
    }

    /// Each configured backend's health (and the `[dynamic_buckets]` store's, when remote),
    /// for `switchyard_backend_healthy`.
    pub fn backend_health(&self) -> Vec<(String, bool)> {
        self.registry
            .all()
            .map(|b| (b.name.clone(), b.healthy()))
            .chain(
                self.dynamic_root
                    .iter()
                    .map(|b| (DYNAMIC_LABEL.to_owned(), b.healthy())),
            )
            .collect()
    }

    async fn find_bucket(&self, name: &str) -> Result<Arc<VirtualBucket>> {
        let known = self
            .buckets
            .read()
            .expect("bucket map lock")
            .get(name)
            .cloned();
        if let Some(root) = &self.dynamic_root {
            return self.remote_bucket(root, name, known).await;
        }
        let fs_root = self
            .config
            .dynamic_buckets
            .as_ref()
            .and_then(DynamicBuckets::fs_root);
        match (known, fs_root) {
            // A bucket made by CreateBucket is its directory: another engine may have
            // deleted it since (one `stat`).
            (Some(b), Some(root)) if b.dynamic => {
                if root.join(name).is_dir() {
                    return Ok(b);
                }
                self.forget(&b);
                Err(Error::NoSuchBucket)
            }
            (Some(b), _) => Ok(b),
            // Another engine may have created it since we looked.
            (None, Some(root)) if bucket_name_ok(name) && root.join(name).is_dir() => {
                self.attach_dynamic(name, None, None)
            }
            (None, _) => Err(Error::NoSuchBucket),
        }
    }

    /// [`Router::bucket`] over a remote template: a bucket is its record, looked up when
    /// this engine does not know the name (another engine may have made it) and again
    /// every [`DYNAMIC_RECHECK`] while it serves it (another engine may have deleted it).
    async fn remote_bucket(
        &self,
        root: &Backend,
        name: &str,
        known: Option<Arc<VirtualBucket>>,
    ) -> Result<Arc<VirtualBucket>> {
        match known {
            Some(b) if b.dynamic && b.recheck_due() => match Self::find_record(root, name).await {
                Ok(Some(r)) if r.etag == b.record => Ok(b),
                // Deleted and made again through another engine: a bucket of its own.
                Ok(Some(r)) => {
                    self.forget(&b);
                    self.attach_dynamic(name, Some(r.made), r.etag)
                }
                Ok(None) => {
                    self.forget(&b);
                    Err(Error::NoSuchBucket)
                }
                // A store that does not answer now fails the request that reaches it,
                // not every request to a bucket known to exist.
                Err(e) => {
                    debug!(bucket = name, error = %e, "could not look up a bucket's record");
                    Ok(b)
                }
            },
            Some(b) => Ok(b),
            None if bucket_name_ok(name) => match Self::find_record(root, name).await? {
                Some(r) => self.attach_dynamic(name, Some(r.made), r.etag),
                None => Err(Error::NoSuchBucket),
            },
            None => Err(Error::NoSuchBucket),
        }
    }

    /// The record of bucket `name` of a remote template; `None` if it has none.
    async fn find_record(root: &Backend, name: &str) -> Result<Option<Record>> {
        let head = root
            .store
            .get(&record_key(name), None, &ReadConditions::default(), true)
            .await;
        match head {
            Ok((out, _)) => Ok(Some(Record {
                made: out.info.last_modified,
                etag: out.info.etag,
            })),
            Err(Error::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Drops a bucket found deleted, unless it was made again meanwhile.
    fn forget(&self, vb: &Arc<VirtualBucket>) {
        let mut map = self.buckets.write().expect("bucket map lock");
        if map.get(&vb.name).is_some_and(|b| Arc::ptr_eq(b, vb)) {
            map.remove(&vb.name);
        }
    }

    /// The bucket, if its policy is not the built-in one (only those may admit requests);
    /// read without I/O, for every request. Buckets made by CreateBucket have the
    /// built-in policy.
    pub fn with_policy(&self, bucket: &str) -> Option<Arc<VirtualBucket>> {
        self.buckets
            .read()
            .expect("bucket map lock")
            .get(bucket)
            .filter(|vb| vb.policy != "default")
            .cloned()
    }

    /// The request headers the policy of `bucket` asks for (`[policies.NAME] headers`):
    /// empty for most buckets, and read without I/O, for every request.
    pub fn policy_headers(&self, bucket: &str) -> &[String] {
        let map = self.buckets.read().expect("bucket map lock");
        match map.get(bucket) {
            Some(vb) if vb.policy != "default" => self
                .config
                .policies
                .get(&vb.policy)
                .map_or(&[], |p| p.headers.as_slice()),
            _ => &[],
        }
    }

    pub async fn buckets(&self) -> Result<Vec<Arc<VirtualBucket>>> {
        if let Some(root) = &self.dynamic_root {
            self.discover_remote(root).await?;
            return Ok(self
                .buckets
                .read()
                .expect("bucket map lock")
                .values()
                .cloned()
                .collect());
        }
        self.discover_dynamic(true);
        let known: Vec<String> = self
            .buckets
            .read()
            .expect("bucket map lock")
            .keys()
            .cloned()
            .collect();
        // `bucket` also forgets dynamic buckets that another engine deleted.
        let mut out = Vec::with_capacity(known.len());
        for name in &known {
            if let Ok(b) = self.bucket(name).await {
                out.push(b);
            }
        }
        Ok(out)
    }

    /// Brings the map of buckets of a remote template up to date: the names are the
    /// first path segments under the template's prefix (one listing request each, as
    /// the listing skips past every key of a name it saw), and a name is a bucket when
    /// it has its record: objects left below a deleted bucket's prefix do not make one.
    async fn discover_remote(&self, root: &Backend) -> Result<()> {
        let mut names = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut rows = root.store.list("", after.as_deref());
            let Some(row) = rows.next().await else {
                break;
            };
            let key = row?.key;
            match key.split_once('/') {
                Some((name, _)) => {
                    if bucket_name_ok(name) {
                        names.push(name.to_owned());
                    }
                    // '0' follows '/': the first key past every `name/...`.
                    after = Some(format!("{name}0"));
                }
                None => after = Some(key),
            }
        }
        let found: Vec<(String, Option<Record>)> =
            futures::stream::iter(names.into_iter().map(|name| async move {
                let record = Self::find_record(root, &name).await;
                record.map(|r| (name, r))
            }))
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_>>()?;
        let mut gone: Vec<Arc<VirtualBucket>> = self
            .buckets
            .read()
            .expect("bucket map lock")
            .values()
            .filter(|b| {
                b.dynamic
                    && !found.iter().any(|(n, r)| {
                        n == &b.name && r.as_ref().is_some_and(|r| r.etag == b.record)
                    })
            })
            .cloned()
            .collect();
        for b in gone.drain(..) {
            self.forget(&b);
        }
        for (name, record) in found {
            let Some(r) = record else { continue };
            let known = self
                .buckets
                .read()
                .expect("bucket map lock")
                .get(&name)
                .cloned();
            match known {
                Some(b) => b.checked_now(),
                None => {
                    self.attach_dynamic(&name, Some(r.made), r.etag)?;
                }
            }
        }
        Ok(())
    }

    pub fn backend(&self, name: &str) -> Option<&Arc<Backend>> {
        self.registry.get(name)
    }

    /// Every configured backend (not those behind buckets made by CreateBucket), by name.
    pub fn backends(&self) -> impl Iterator<Item = &Arc<Backend>> {
        self.registry.all()
    }

    /// CreateBucket: a bucket of the `[dynamic_buckets]` template, made by `creator` (a
    /// user's name; `None` for an anonymous request), who is recorded in it. Of two
    /// requests making one name at once, through one engine or several, exactly one
    /// succeeds; the other, like any request for a bucket that exists, gets
    /// [`Error::BucketExists`], owned when its requester made the bucket.
    pub async fn create_bucket(&self, name: &str, creator: Option<&str>) -> Result<()> {
        if let Ok(vb) = self.bucket(name).await {
            return Err(Self::exists(&vb, creator).await);
        }
        let record = creator.unwrap_or_default().as_bytes();
        match &self.config.dynamic_buckets {
            None => Err(Error::NotImplemented(
                "buckets are defined in the configuration file; this gateway has no [dynamic_buckets]".into(),
            )),
            Some(DynamicBuckets::Fs { root, .. }) => {
                let (root, bucket, record) = (root.clone(), name.to_owned(), record.to_vec());
                let made = tokio::task::spawn_blocking(move || {
                    backends::create_bucket_dir(&root, &bucket, OWNER_PATH, &record)
                })
                .await
                .map_err(Error::internal)??;
                if !made {
                    let existing = self.bucket(name).await?;
                    return Err(Self::exists(&existing, creator).await);
                }
                self.attach_dynamic(name, None, None).map(|_| ())
            }
            // The record is written only if absent: of two engines making one name at
            // once, exactly one does.
            Some(DynamicBuckets::S3(_) | DynamicBuckets::Azure(_) | DynamicBuckets::Gcs(_)) => {
                let root = self.dynamic_root.as_ref().ok_or(Error::NoSuchBucket)?;
                // Objects below the prefix of a name that is no bucket are what a write
                // through another engine racing a DeleteBucket left: they are neither
                // given to the bucket's new owner nor deleted (they were acknowledged).
                if root
                    .store
                    .list(&format!("{name}/"), None)
                    .next()
                    .await
                    .transpose()?
                    .is_some()
                {
                    if let Ok(vb) = self.bucket(name).await {
                        return Err(Self::exists(&vb, creator).await);
                    }
                    warn!(bucket = name, "CreateBucket refused: objects of a deleted bucket of this name remain below its prefix");
                    return Err(Error::OperationAborted(format!(
                        "objects of an earlier bucket {name} remain in the storage below its prefix; an operator must move or delete them before the name can be used again"
                    )));
                }
                let mut record = record.to_vec();
                record.extend_from_slice(format!("\n{}", uuid::Uuid::new_v4().simple()).as_bytes());
                match self.write_record(root, name, record).await {
                    Ok(etag) => self.attach_dynamic(name, None, etag).map(|_| ()),
                    Err(Error::Precondition(_)) => {
                        let existing = self.bucket(name).await?;
                        Err(Self::exists(&existing, creator).await)
                    }
                    Err(e) => Err(e),
                }
            }
            Some(DynamicBuckets::Memory { .. }) => {
                let vb = self.dynamic_bucket(name, None, None)?;
                let member = vb.members.first().ok_or(Error::NoSuchBucket)?;
                member
                    .store
                    .put_internal(OWNER_PATH, Bytes::copy_from_slice(record))
                    .await?;
                let existing = {
                    let mut buckets = self.buckets.write().expect("bucket map lock");
                    match buckets.get(name) {
                        Some(existing) => Some(existing.clone()),
                        None => {
                            buckets.insert(name.to_owned(), vb);
                            None
                        }
                    }
                };
                match existing {
                    Some(existing) => Err(Self::exists(&existing, creator).await),
                    None => Ok(()),
                }
            }
        }
    }

    /// Writes the record of bucket `name` of a remote template, if it has none
    /// ([`Error::Precondition`] if it has), and answers its ETag. A record is the
    /// creator's name, a newline and an id of this bucket's own.
    async fn write_record(
        &self,
        root: &Backend,
        name: &str,
        record: Vec<u8>,
    ) -> Result<Option<String>> {
        let len = record.len() as u64;
        let body: Body = futures::stream::once(async move { Ok(Bytes::from(record)) }).boxed();
        root.store
            .put(
                &record_key(name),
                body,
                Declared::of_len(Some(len)),
                &Attrs::default(),
                &WriteCondition::IfAbsent,
                self.config.server.part_size,
            )
            .await
            .map(|out| out.etag)
    }

    /// The answer to CreateBucket of `vb`, which exists, from `requester`: owned when
    /// the requester made it. A configured bucket is the gateway's, given to its users
    /// by the operator: every user owns it. A dynamic bucket made before creators were
    /// recorded (or a directory made by hand) counts as every user's too.
    async fn exists(vb: &VirtualBucket, requester: Option<&str>) -> Error {
        let Some(requester) = requester else {
            return Error::BucketExists { owned: false };
        };
        if !vb.dynamic {
            return Error::BucketExists { owned: true };
        }
        let Some(member) = vb.members.first() else {
            return Error::NoSuchBucket;
        };
        match member.store.get_internal(OWNER_PATH).await {
            // The creator's name, then (on remote templates) a newline and the id.
            Ok(Some(record)) => Error::BucketExists {
                owned: record.split(|b| *b == b'\n').next() == Some(requester.as_bytes()),
            },
            Ok(None) => Error::BucketExists { owned: true },
            Err(e) => e,
        }
    }

    /// Deletes a bucket made by CreateBucket, and its incomplete multipart uploads, as
    /// AWS does; `BucketNotEmpty` while it holds objects. A write racing the delete either
    /// lands first (and the delete is refused) or fails with `NoSuchBucket`: writes in
    /// this engine are fenced by the bucket's write gate, writes in other engines sharing
    /// an `fs` root by the way the directory goes (see `retire_bucket_dir`).
    pub async fn delete_bucket(&self, name: &str) -> Result<()> {
        let vb = self.bucket(name).await?;
        if !vb.dynamic {
            return Err(Error::NotImplemented(
                "this bucket is defined in the configuration file; remove it there".into(),
            ));
        }
        let mut gate = vb.writes.write().await;
        if *gate {
            return Err(Error::NoSuchBucket);
        }
        match &self.config.dynamic_buckets {
            Some(DynamicBuckets::Fs { root, .. }) => {
                let (root, bucket) = (root.clone(), name.to_owned());
                tokio::task::spawn_blocking(move || backends::retire_bucket_dir(&root, &bucket))
                    .await
                    .map_err(Error::internal)??;
            }
            Some(DynamicBuckets::S3(_) | DynamicBuckets::Azure(_) | DynamicBuckets::Gcs(_)) => {
                self.delete_remote_bucket(&vb).await?;
            }
            _ => {
                if Self::holds_objects(&vb).await? {
                    return Err(Error::BucketNotEmpty);
                }
                // An in-memory bucket's uploads go with its store.
            }
        }
        *gate = true;
        self.buckets.write().expect("bucket map lock").remove(name);
        Ok(())
    }

    async fn holds_objects(vb: &VirtualBucket) -> Result<bool> {
        // Versions and delete markers too, as S3 counts them; fs buckets are looked at
        // by `retire_bucket_dir`, under its rename.
        if let Some(natives) = Self::natives(vb) {
            // S3 keeps them: its own listing, under the bucket's prefix.
            for (_, n) in &natives {
                // A backend bucket never versioned holds no versions: the listing below
                // says all. (moto's version listing of such a bucket fails with a 500
                // now and then while objects are deleted.)
                if n.state().await? == versions::State::Unversioned {
                    continue;
                }
                // A page can come back empty with a next marker (the gateway's own
                // records are left out of it): the next is looked at then.
                let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
                loop {
                    let page = n
                        .list(
                            "",
                            None,
                            key_marker.as_deref(),
                            version_marker.as_deref(),
                            100,
                        )
                        .await?;
                    if !page.rows.is_empty() {
                        return Ok(true);
                    }
                    match page.next {
                        Some((k, v))
                            if (Some(&k), &v) != (key_marker.as_ref(), &version_marker) =>
                        {
                            (key_marker, version_marker) = (Some(k), v);
                        }
                        _ => break,
                    }
                }
            }
        } else {
            for m in &vb.members {
                if !versions::all_files(m, "").await?.is_empty() {
                    return Ok(true);
                }
            }
        }
        let page = listing::list(
            &vb.members,
            &ListRequest {
                max_keys: 1,
                ..Default::default()
            },
        )
        .await?;
        Ok(!page.entries.is_empty())
    }

    /// DeleteBucket of a bucket of a remote template (its write gate held): its uploads
    /// are aborted, then what the gateway keeps for it, its record last, so that a
    /// delete cut short leaves a bucket that exists (and is deleted by asking again),
    /// never a prefix whose leftovers a bucket made again would inherit (a policy).
    /// Writes through other engines are not fenced as on `fs`: a write that found the
    /// record before it went and lands before the last look keeps the bucket (the record
    /// is written again and the answer is `BucketNotEmpty`); one landing later stays
    /// below the prefix of a bucket that no longer exists (docs/limitations.md).
    async fn delete_remote_bucket(&self, vb: &VirtualBucket) -> Result<()> {
        if Self::holds_objects(vb).await? {
            return Err(Error::BucketNotEmpty);
        }
        let member = vb.members.first().ok_or(Error::NoSuchBucket)?;
        let root = self.dynamic_root.as_ref().ok_or(Error::NoSuchBucket)?;
        for path in member.store.list_internal("mpu/").await? {
            let Some(raw) = member.store.get_internal(&path).await? else {
                continue;
            };
            let record: UploadRecord = serde_json::from_slice(&raw).map_err(Error::internal)?;
            match self
                .abort_upload(&vb.name, &record.key, &record.upload_id)
                .await
            {
                Ok(()) | Err(Error::NoSuchUpload) => {}
                Err(e) => return Err(e),
            }
        }
        crash_point("router::bucket_uploads_aborted", &vb.name)?;
        let creator = member.store.get_internal(OWNER_PATH).await?;
        for path in member.store.list_internal("").await? {
            if path != OWNER_PATH {
                member.store.delete_internal(&path).await?;
            }
        }
        crash_point("router::bucket_record_next", &vb.name)?;
        member.store.delete_internal(OWNER_PATH).await?;
        if Self::holds_objects(vb).await? {
            let record = creator.map(|c| c.to_vec()).unwrap_or_default();
            // The same bytes, so the same ETag: the bucket stays the one that engines
            // writing into it know.
            match self.write_record(root, &vb.name, record).await {
                Ok(_) | Err(Error::Precondition(_)) => {}
                Err(e) => {
                    warn!(bucket = %vb.name, error = %e, "a write landed in a bucket being deleted, and its record could not be written again: its objects stay below its prefix");
                    return Err(e);
                }
            }
            return Err(Error::BucketNotEmpty);
        }
        Ok(())
    }

    /// The bucket's access policy, if it has one.
    pub async fn bucket_policy(&self, bucket: &str) -> Result<Option<Arc<PolicyDocument>>> {
        let vb = self.bucket(bucket).await?;
        let cache = match &vb.access {
            BucketAccess::Configured(p) => return Ok(p.clone()),
            BucketAccess::Stored(cache) => cache,
        };
        if let Some((read, p)) = cache.lock().expect("policy cache").as_ref()
            && read.elapsed() < POLICY_CACHE
        {
            return Ok(p.clone());
        }
        let member = vb.members.first().ok_or(Error::NoSuchBucket)?;
        let policy = member
            .store
            .get_internal(POLICY_PATH)
            .await?
            .map(|raw| Arc::new(Self::stored_policy(bucket, &raw)));
        *cache.lock().expect("policy cache") = Some((Instant::now(), policy.clone()));
        Ok(policy)
    }

    /// A stored policy as written by PutBucketPolicy. One that no longer parses (edited by
    /// hand, or from a later version) must not open the bucket by losing its Deny
    /// statements: it stands as a policy that denies everything, which `full-access` users
    /// may still replace.
    fn stored_policy(bucket: &str, raw: &[u8]) -> PolicyDocument {
        let kind = || PolicyKind::Bucket {
            bucket: bucket.to_owned(),
        };
        match std::str::from_utf8(raw)
            .map_err(|e| e.to_string())
            .and_then(|json| PolicyDocument::parse(json, kind()).map_err(|e| e.to_string()))
        {
            Ok(doc) => doc,
            Err(e) => {
                warn!(bucket, error = %e, "the stored bucket policy does not parse: denying every request to the bucket until it is replaced");
                let deny = format!(
                    r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"UnreadablePolicy","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::{bucket}","arn:aws:s3:::{bucket}/*"]}}]}}"#
                );
                PolicyDocument::parse(&deny, kind()).expect("a well-formed deny-all policy")
            }
        }
    }

    /// PutBucketPolicy (buckets made by CreateBucket; a configured bucket's policy is in
    /// the configuration file).
    pub async fn put_bucket_policy(&self, bucket: &str, json: &str) -> Result<()> {
        let vb = self.bucket(bucket).await?;
        let BucketAccess::Stored(cache) = &vb.access else {
            return Err(Error::InvalidRequest(format!(
                "the policy of bucket {bucket} is set in the configuration file (buckets.{bucket}.bucket_policy)"
            )));
        };
        let doc = PolicyDocument::parse(
            json,
            PolicyKind::Bucket {
                bucket: bucket.to_owned(),
            },
        )
        .map_err(|e| Error::MalformedPolicy(e.to_string()))?;
        // AWS's BlockPublicPolicy: a public policy is refused, not stored.
        if doc.is_public()
            && self
                .public_access_block(bucket)
                .await?
                .is_some_and(|b| b.block_public_policy)
        {
            return Err(Error::AccessDenied);
        }
        let member = vb.members.first().ok_or(Error::NoSuchBucket)?;
        member
            .store
            .put_internal(POLICY_PATH, Bytes::from(json.to_owned()))
            .await?;
        *cache.lock().expect("policy cache") = Some((Instant::now(), Some(Arc::new(doc))));
        Ok(())
    }

    /// DeleteBucketPolicy; deleting a policy that is not there is not an error.
    pub async fn delete_bucket_policy(&self, bucket: &str) -> Result<()> {
        let vb = self.bucket(bucket).await?;
        let BucketAccess::Stored(cache) = &vb.access else {
            return Err(Error::InvalidRequest(format!(
                "the policy of bucket {bucket} is set in the configuration file (buckets.{bucket}.bucket_policy)"
            )));
        };
        let member = vb.members.first().ok_or(Error::NoSuchBucket)?;
        member.store.delete_internal(POLICY_PATH).await?;
        *cache.lock().expect("policy cache") = Some((Instant::now(), None));
        Ok(())
    }

    /// The bucket's public access block, if it has one: the configuration's
    /// (`buckets.NAME.public_access_block`), or the one PutPublicAccessBlock stored in a
    /// bucket made by CreateBucket.
    pub async fn public_access_block(&self, bucket: &str) -> Result<Option<PublicAccessBlock>> {
        let vb = self.bucket(bucket).await?;
        if let BucketAccess::Configured(_) = &vb.access {
            return Ok(self
                .config
                .buckets
                .get(bucket)
                .and_then(|b| b.public_access_block));
        }
        if let Some((read, b)) = vb.block.lock().expect("block cache").as_ref()
            && read.elapsed() < POLICY_CACHE
        {
            return Ok(*b);
        }
        let member = vb.members.first().ok_or(Error::NoSuchBucket)?;
        // Settings that no longer parse block everything: a lost block must not open the
        // bucket.
        let block = member.store.get_internal(BLOCK_PATH).await?.map(|raw| {
            serde_json::from_slice(&raw).unwrap_or_else(|e| {
                warn!(bucket, error = %e, "the stored public access block does not parse: blocking everything until it is replaced");
                PublicAccessBlock {
                    block_public_acls: true,
                    ignore_public_acls: true,
                    block_public_policy: true,
                    restrict_public_buckets: true,
                }
            })
        });
        *vb.block.lock().expect("block cache") = Some((Instant::now(), block));
        Ok(block)
    }

    /// PutPublicAccessBlock (`Some`) and DeletePublicAccessBlock (`None`), on buckets made
    /// by CreateBucket; a configured bucket's is in the configuration file.
    pub async fn set_public_access_block(
        &self,
        bucket: &str,
        block: Option<PublicAccessBlock>,
    ) -> Result<()> {
        let vb = self.bucket(bucket).await?;
        if let BucketAccess::Configured(_) = &vb.access {
            return Err(Error::InvalidRequest(format!(
                "the public access block of bucket {bucket} is set in the configuration file (buckets.{bucket}.public_access_block)"
            )));
        }
        let member = vb.members.first().ok_or(Error::NoSuchBucket)?;
        match &block {
            Some(b) => {
                let json = serde_json::to_vec(b).map_err(Error::internal)?;
                member
                    .store
                    .put_internal(BLOCK_PATH, Bytes::from(json))
                    .await?;
            }
            None => member.store.delete_internal(BLOCK_PATH).await?,
        }
        *vb.block.lock().expect("block cache") = Some((Instant::now(), block));
        Ok(())
    }

    /// The bucket's object ownership and ACL: the configuration's (`buckets.NAME
    /// .object_ownership`; a configured bucket has no ACL of its own), or the ones stored in
    /// a bucket made by CreateBucket.
    pub async fn bucket_acl(&self, bucket: &str) -> Result<BucketAcl> {
        let vb = self.bucket(bucket).await?;
        if let BucketAccess::Configured(_) = &vb.access {
            return Ok(BucketAcl {
                ownership: Some(
                    self.config
                        .buckets
                        .get(bucket)
                        .map(|b| b.object_ownership)
                        .unwrap_or_default(),
                ),
                grants: None,
            });
        }
        if let Some((read, a)) = vb.acl.lock().expect("acl cache").as_ref()
            && read.elapsed() < POLICY_CACHE
        {
            return Ok(a.clone());
        }
        let member = vb.members.first().ok_or(Error::NoSuchBucket)?;
        // Settings that no longer parse disable ACLs: a lost ACL must not open the bucket,
        // and with ACLs disabled the policies alone decide.
        let acl = match member.store.get_internal(ACL_PATH).await? {
            None => BucketAcl::default(),
            Some(raw) => serde_json::from_slice(&raw).unwrap_or_else(|e| {
                warn!(bucket, error = %e, "the stored bucket ACL does not parse: ACLs are disabled until it is replaced");
                BucketAcl::default()
            }),
        };
        *vb.acl.lock().expect("acl cache") = Some((Instant::now(), acl.clone()));
        Ok(acl)
    }

    /// PutBucketOwnershipControls, DeleteBucketOwnershipControls and PutBucketAcl, on
    /// buckets made by CreateBucket; a configured bucket's ownership is in the
    /// configuration file.
    pub async fn set_bucket_acl(&self, bucket: &str, acl: &BucketAcl) -> Result<()> {
        let vb = self.bucket(bucket).await?;
        if let BucketAccess::Configured(_) = &vb.access {
            return Err(Error::InvalidRequest(format!(
                "bucket {bucket} is configured: its object ownership is set in the configuration file (buckets.{bucket}.object_ownership), and it has no ACL of its own (its bucket_policy says who may do what)"
            )));
        }
        let member = vb.members.first().ok_or(Error::NoSuchBucket)?;
        if *acl == BucketAcl::default() {
            member.store.delete_internal(ACL_PATH).await?;
        } else {
            let json = serde_json::to_vec(acl).map_err(Error::internal)?;
            member
                .store
                .put_internal(ACL_PATH, Bytes::from(json))
                .await?;
        }
        *vb.acl.lock().expect("acl cache") = Some((Instant::now(), acl.clone()));
        Ok(())
    }

    /// The ACL kept with the copy of `key` a read would serve (`None`: the default),
    /// with its member's kind keeping ACLs; `NotFound` when there is no such key.
    pub async fn object_acl(
        &self,
        req: &RequestView,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<crate::model::ObjectAcl>> {
        let none = ReadConditions::default();
        let (outcome, _, _) = self
            .get_version(req, bucket, key, version_id, None, &none, true)
            .await?;
        Ok(outcome.info.attrs.acl)
    }

    /// PutObjectAcl in an unversioned bucket: on every member holding the key, as
    /// [`Router::put_tags`]. A member that keeps no ACLs takes only the default one
    /// (nothing to keep).
    async fn put_unversioned_acl(
        &self,
        vb: &VirtualBucket,
        key: &str,
        acl: Option<&crate::model::ObjectAcl>,
    ) -> Result<()> {
        let _admitted = vb.admit_write().await?;
        let mut found = false;
        for m in &vb.members {
            if !m.store.keeps_acls() {
                let head = Self::read_member(m, key, None, &ReadConditions::default(), true).await;
                match head {
                    Ok(_) if acl.is_some() => return Err(versions::acls_not_kept(m)),
                    Ok(_) => found = true,
                    Err(Error::NotFound) => {}
                    Err(e) => return Err(e),
                }
                continue;
            }
            let started = Instant::now();
            let r = m.store.put_acl(key, acl).await;
            m.observe(started, &r);
            match r {
                Ok(()) => found = true,
                Err(Error::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        if found { Ok(()) } else { Err(Error::NotFound) }
    }

    /// Who owns the bucket: the name of the user who made it by CreateBucket (`Some("")`
    /// for an anonymous request), `None` for a configured bucket (every user's).
    pub async fn bucket_owner(&self, bucket: &str) -> Result<Option<String>> {
        let vb = self.bucket(bucket).await?;
        if !vb.dynamic {
            return Ok(None);
        }
        let member = vb.members.first().ok_or(Error::NoSuchBucket)?;
        Ok(match member.store.get_internal(OWNER_PATH).await? {
            // The creator's name, then (on remote templates) a newline and the id.
            Some(record) => Some(
                String::from_utf8_lossy(record.split(|b| *b == b'\n').next().unwrap_or(&[]))
                    .into_owned(),
            ),
            None => Some(String::new()),
        })
    }

    /// Reads `key` from the first member in routing order that has it.
    pub async fn get(
        &self,
        req: &RequestView,
        bucket: &str,
        key: &str,
        range: Option<ByteRange>,
        cond: &ReadConditions,
        head: bool,
    ) -> Result<(GetOutcome, Option<ByteStream>, Arc<Backend>)> {
        check_key(key)?;
        let vb = self.bucket(bucket).await?;
        let obj = ObjectView {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            ..Default::default()
        };
        let order = self.decider.route(&vb, req, &obj).await?;
        let mut failure = None;
        let mut missed = Vec::new();
        for member in &order {
            match Self::read_member(member, key, range, cond, head).await {
                Ok((outcome, stream)) => return Ok(Self::served(outcome, stream, member)),
                Err(Error::NotFound) => missed.push(member),
                Err(e @ Error::Unavailable { .. }) => {
                    if !Exchange::note(&format!("{e}; trying the next member")) {
                        warn!(bucket, backend = %member.name, error = %e, "read failed; trying the next member");
                    }
                    failure = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        // A key that a migration moves (copied into a higher-priority member, then deleted
        // from the lower one) between this read's look at the first and at the second
        // member misses both: every member but the last is asked once more. A key leaves
        // a member only after it is in the one before, so the second look finds it unless
        // a client deleted it.
        if failure.is_none() && missed.len() > 1 {
            for member in &missed[..missed.len() - 1] {
                match Self::read_member(member, key, range, cond, head).await {
                    Ok((outcome, stream)) => return Ok(Self::served(outcome, stream, member)),
                    Err(Error::NotFound) => {}
                    Err(e @ Error::Unavailable { .. }) => failure = Some(e),
                    Err(e) => return Err(e),
                }
            }
        }
        // A member that failed may hold the key: "not found" would be a lie.
        Err(failure.unwrap_or(Error::NotFound))
    }

    /// One member's answer for a read. A member marked unhealthy is still asked in its
    /// place (skipping it could serve an older copy from a member after it), but only for
    /// as long as its probe allows: a backend that is down costs each read that, not the
    /// full network timeouts.
    async fn read_member(
        member: &Arc<Backend>,
        key: &str,
        range: Option<ByteRange>,
        cond: &ReadConditions,
        head: bool,
    ) -> Result<(GetOutcome, Option<ByteStream>)> {
        let started = Instant::now();
        let call = member.store.get(key, range, cond, head);
        let result = if member.healthy() {
            call.await
        } else {
            let probe = member.probe();
            tokio::time::timeout(probe, call).await.unwrap_or_else(|_| {
                Err(Error::Unavailable {
                    backend: member.name.clone(),
                    message: format!("no answer within {probe:?}, and failing before"),
                })
            })
        };
        member.observe(started, &result);
        result
    }

    fn served(
        outcome: GetOutcome,
        stream: Option<ByteStream>,
        member: &Arc<Backend>,
    ) -> (GetOutcome, Option<ByteStream>, Arc<Backend>) {
        Exchange::with_current(|x| x.set_backend(&member.name));
        (outcome, stream, member.clone())
    }

    /// GetObjectTagging: the tags of the copy a read would serve (a read that falls
    /// through to an older member answers that member's tags); with `version`, those of
    /// that version.
    pub async fn get_tags(
        &self,
        req: &RequestView,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<crate::model::Tags> {
        if version.is_some() {
            let vb = self.bucket(bucket).await?;
            if let Some(m) = vb.members.iter().find(|m| !m.store.keeps_tags()) {
                return Err(Error::NotImplemented(format!(
                    "object tags are not supported on member {} (its kind does not keep them yet)",
                    m.name
                )));
            }
            let (outcome, _, _) = self
                .get_version(
                    req,
                    bucket,
                    key,
                    version,
                    None,
                    &ReadConditions::default(),
                    true,
                )
                .await?;
            if outcome.info.untold_tags > 0 {
                return Err(Error::NotImplemented(
                    "the tags of an older version on a member that only counts them".into(),
                ));
            }
            return Ok(outcome.info.attrs.tags);
        }
        let (mut outcome, _, member) = self
            .get(req, bucket, key, None, &ReadConditions::default(), true)
            .await?;
        if !member.store.keeps_tags() {
            return Err(Error::NotImplemented(format!(
                "object tags are not supported on member {} (its kind does not keep them yet)",
                member.name
            )));
        }
        member.tell_tags(key, &mut outcome.info).await?;
        Ok(outcome.info.attrs.tags)
    }

    /// PutObjectTagging and DeleteObjectTagging (no tags): on every member holding the
    /// key, since a key may live in several (a mirror, a migration). Nothing changes when
    /// one of them cannot keep tags.
    pub async fn put_tags(&self, bucket: &str, key: &str, tags: &crate::model::Tags) -> Result<()> {
        check_key(key)?;
        let vb = self.bucket(bucket).await?;
        // The key's tags would change and its version's not: a read of that version by
        // id, and the access decisions made on it, would see other tags.
        self.refuse_unversioned_write(&vb, "changing an object's tags")
            .await?;
        let _admitted = vb.admit_write().await?;
        for m in vb.members.iter().filter(|m| !m.store.keeps_tags()) {
            let head = Self::read_member(m, key, None, &ReadConditions::default(), true).await;
            match head {
                Ok(_) => {
                    return Err(Error::NotImplemented(format!(
                        "object tags are not supported on member {} (its kind does not keep them yet)",
                        m.name
                    )));
                }
                Err(Error::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        let mut found = false;
        for m in vb.members.iter().filter(|m| m.store.keeps_tags()) {
            let started = Instant::now();
            let r = m.store.put_tags(key, tags).await;
            m.observe(started, &r);
            match r {
                Ok(()) => found = true,
                Err(Error::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        if found { Ok(()) } else { Err(Error::NotFound) }
    }

    /// Writes `body` to every placement target; succeeds only when all have it.
    #[allow(clippy::too_many_arguments)]
    pub async fn put(
        &self,
        req: &RequestView,
        bucket: &str,
        key: &str,
        body: Body,
        declared: Declared,
        attrs: &Attrs,
        cond: &WriteCondition,
    ) -> Result<(PutOutcome, Vec<Arc<Backend>>)> {
        check_key(key)?;
        check_attrs(attrs)?;
        let vb = self.bucket(bucket).await?;
        let _admitted = vb.admit_write().await?;
        let obj = object_view(req, bucket, key, declared.len, attrs);
        let targets = self.decider.place(&vb, req, &obj).await?;
        record_targets(&targets);
        let kept = acl_for(targets.iter().map(|t| &**t), attrs)?;
        let attrs = kept.as_ref().unwrap_or(attrs);
        let part_size = self.config.server.part_size;
        let outcome = self
            .put_to(&targets, key, body, declared, attrs, cond, part_size)
            .await?;
        self.confirm_write(&vb, key).await?;
        Ok((outcome, targets))
    }

    /// After a write to a bucket of a remote template: whether the bucket still exists.
    /// Another engine's DeleteBucket is not fenced by this engine's write gate; it looks
    /// for objects once more after removing the record, so a write that landed before
    /// that look keeps the bucket (the delete is refused). One that landed after it
    /// finds no record here, and is taken back and refused with `NoSuchBucket`: a write
    /// is never acknowledged into a bucket whose delete succeeded. One request for the
    /// record per write, on these buckets only.
    async fn confirm_write(&self, vb: &Arc<VirtualBucket>, key: &str) -> Result<()> {
        let Some(root) = self.dynamic_root.as_ref().filter(|_| vb.dynamic) else {
            return Ok(());
        };
        match Self::find_record(root, &vb.name).await {
            Ok(Some(r)) if r.etag == vb.record => Ok(()),
            // Gone, or deleted and made again (by anyone): the write is not the new
            // bucket's to keep.
            Ok(_) => {
                warn!(bucket = %vb.name, key, "the bucket was deleted through another engine while this write ran: taking it back");
                for m in &vb.members {
                    if let Err(e) = m.store.delete(key).await {
                        warn!(bucket = %vb.name, key, backend = %m.name, error = %e, "could not take back a write into a deleted bucket; it stays below the bucket's prefix");
                    }
                }
                self.forget(vb);
                Err(Error::NoSuchBucket)
            }
            // Unknown: the write stands, as the bucket existed when it began.
            Err(e) => {
                debug!(bucket = %vb.name, error = %e, "could not look up the bucket's record after a write");
                Ok(())
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn put_to(
        &self,
        targets: &[Arc<Backend>],
        key: &str,
        body: Body,
        declared: Declared,
        attrs: &Attrs,
        cond: &WriteCondition,
        part_size: u64,
    ) -> Result<PutOutcome> {
        if let [target] = targets {
            let started = Instant::now();
            let r = target
                .store
                .put(key, body, declared, attrs, cond, part_size)
                .await;
            target.observe(started, &r);
            return r;
        }
        // Mirrored write: one reader, a bounded channel per target, so the slowest target
        // sets the pace and memory stays bounded.
        let mut senders = Vec::new();
        let mut writes = Vec::new();
        for target in targets {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes>>(4);
            senders.push(tx);
            let stream: Body = tokio_stream_from(rx);
            let target = target.clone();
            let attrs = attrs.clone();
            let cond = cond.clone();
            let key = key.to_owned();
            let declared = declared.clone();
            writes.push(async move {
                let started = Instant::now();
                let r = target
                    .store
                    .put(&key, stream, declared, &attrs, &cond, part_size)
                    .await;
                target.observe(started, &r);
                r
            });
        }
        let pump = async move {
            let mut body = body;
            while let Some(item) = body.next().await {
                let failed = item.is_err();
                for tx in &senders {
                    let _ = tx.send(item.clone()).await;
                }
                if failed {
                    break;
                }
            }
        };
        let (_, results) = tokio::join!(pump, futures::future::join_all(writes));
        let mut first = None;
        let mut errors = Vec::new();
        for r in results {
            match r {
                Ok(o) => {
                    first.get_or_insert(o);
                }
                Err(e) => errors.push(e),
            }
        }
        match errors.into_iter().next() {
            Some(e) => Err(e),
            None => first.ok_or_else(|| Error::internal("no placement target")),
        }
    }

    /// Deletes `key` from every member, since a key may exist in several: lowest priority
    /// first, one after the other. A higher-priority member holds the newer copy (writes
    /// go there, a migration copies toward it), so a delete seen half-done (by a reader
    /// meanwhile, or for ever when the engine dies in between) leaves the newest copy, not
    /// an older one that a reader would take for current.
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        check_key(key)?;
        let vb = self.bucket(bucket).await?;
        for m in vb.members.iter().rev() {
            let started = Instant::now();
            let r = m.store.delete(key).await;
            m.observe(started, &r);
            r?;
        }
        Ok(())
    }

    pub async fn list(&self, bucket: &str, req: &ListRequest) -> Result<ListPage> {
        let vb = self.bucket(bucket).await?;
        listing::list(&vb.members, req).await
    }

    /// CopyObject: server-side when source and target are the same backend and the
    /// attributes are kept, streamed through otherwise.
    #[allow(clippy::too_many_arguments)]
    pub async fn copy(
        &self,
        req: &RequestView,
        src_bucket: &str,
        src_key: &str,
        src_cond: &ReadConditions,
        dst_bucket: &str,
        dst_key: &str,
        replace_attrs: Option<Attrs>,
        cond: &WriteCondition,
        checksum_algorithm: Option<Algorithm>,
    ) -> Result<(PutOutcome, DateTime<Utc>)> {
        self.copy_tagged(
            req,
            (src_bucket, src_key),
            src_cond,
            (dst_bucket, dst_key),
            (replace_attrs, None),
            cond,
            checksum_algorithm,
            None,
        )
        .await
    }

    /// [`Router::copy`], with the copy's tags: the source's (`x-amz-tagging-directive:
    /// COPY`, `None`) or these (`REPLACE`), and its ACL (never the source's, as in S3).
    #[allow(clippy::too_many_arguments)]
    pub async fn copy_tagged(
        &self,
        req: &RequestView,
        (src_bucket, src_key): (&str, &str),
        src_cond: &ReadConditions,
        (dst_bucket, dst_key): (&str, &str),
        (replace_attrs, replace_tags): (Option<Attrs>, Option<crate::model::Tags>),
        cond: &WriteCondition,
        checksum_algorithm: Option<Algorithm>,
        acl: Option<crate::model::ObjectAcl>,
    ) -> Result<(PutOutcome, DateTime<Utc>)> {
        let (copied, dst) = self
            .copy_unconfirmed(
                req,
                src_bucket,
                src_key,
                src_cond,
                dst_bucket,
                dst_key,
                (replace_attrs, replace_tags),
                cond,
                checksum_algorithm,
                acl,
            )
            .await?;
        self.confirm_write(&dst, dst_key).await?;
        Ok(copied)
    }

    #[allow(clippy::too_many_arguments)]
    async fn copy_unconfirmed(
        &self,
        req: &RequestView,
        src_bucket: &str,
        src_key: &str,
        src_cond: &ReadConditions,
        dst_bucket: &str,
        dst_key: &str,
        (replace_attrs, replace_tags): (Option<Attrs>, Option<crate::model::Tags>),
        cond: &WriteCondition,
        checksum_algorithm: Option<Algorithm>,
        acl: Option<crate::model::ObjectAcl>,
    ) -> Result<((PutOutcome, DateTime<Utc>), Arc<VirtualBucket>)> {
        check_key(dst_key)?;
        if let Some(a) = &replace_attrs {
            check_attrs(a)?;
        }
        // Look before reading: a copy inside one backend never moves the bytes.
        let (mut src, _, src_member) = self
            .get(req, src_bucket, src_key, None, src_cond, true)
            .await?;
        // The copy's tags (and whether a copy inside the backend keeps them) depend on the
        // source's.
        src_member.tell_tags(src_key, &mut src.info).await?;
        let dst = self.bucket(dst_bucket).await?;
        self.refuse_unversioned_write(&dst, "CopyObject").await?;
        let _admitted = dst.admit_write().await?;
        if src_bucket == dst_bucket
            && src_key == dst_key
            && replace_attrs.is_none()
            && replace_tags.is_none()
        {
            return Err(Error::InvalidRequest(
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata".into(),
            ));
        }
        let keep_attrs = replace_attrs.is_none();
        // The source's version file is its own, not the copy's.
        let mut attrs = replace_attrs.unwrap_or_else(|| src.info.attrs.clone());
        attrs.metadata.remove(crate::model::VERSION_META);
        attrs.tags = replace_tags
            .clone()
            .unwrap_or_else(|| src.info.attrs.tags.clone());
        attrs.acl = acl;
        // The source's checksum goes with its attributes (the bytes are the same); one in
        // another algorithm (or type) is computed as the bytes stream through.
        let recompute = checksum_algorithm.filter(|alg| {
            Stored::of(&attrs)
                .is_none_or(|c| c.algorithm != *alg || c.kind != checksum::Kind::FullObject)
        });
        let obj = object_view(req, dst_bucket, dst_key, Some(src.info.size), &attrs);
        let targets = self.decider.place(&dst, req, &obj).await?;
        if let Some(kept) = acl_for(targets.iter().map(|t| &**t), &attrs)? {
            attrs = kept;
        }
        let copy_acl = attrs.acl.clone();
        let server_side = targets.len() == 1
            && Arc::ptr_eq(&targets[0], &src_member)
            && attrs == src.info.attrs
            && *cond == WriteCondition::None
            && recompute.is_none();
        if server_side {
            let started = Instant::now();
            let r = src_member.store.copy(src_key, dst_key).await;
            src_member.observe(started, &r);
            match r {
                Ok(()) => {
                    // The copy's ETag and time, as the backend made them. The copy is done
                    // whatever this look finds: a client may already have deleted or
                    // replaced it, and then the source's ETag (equal bytes) answers.
                    let copied = src_member
                        .store
                        .get(dst_key, None, &ReadConditions::default(), true)
                        .await;
                    let answer = match copied {
                        Ok((copied, _)) => (
                            PutOutcome {
                                etag: copied.info.etag,
                            },
                            copied.info.last_modified,
                        ),
                        Err(_) => (
                            PutOutcome {
                                etag: src.info.etag,
                            },
                            Utc::now(),
                        ),
                    };
                    return Ok((answer, dst.clone()));
                }
                // Not in this backend after all: a migration moved it since the look. The
                // streamed copy below reads it wherever it is now.
                Err(Error::NotImplemented(_) | Error::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        // Streamed through: the attributes kept are those of the version actually read.
        let (mut read, stream, read_member) = self
            .get(req, src_bucket, src_key, None, src_cond, false)
            .await?;
        if replace_tags.is_none() {
            read_member.tell_tags(src_key, &mut read.info).await?;
        }
        let read_tags = read.info.attrs.tags.clone();
        let mut attrs = if keep_attrs { read.info.attrs } else { attrs };
        attrs.tags = replace_tags.unwrap_or(read_tags);
        attrs.metadata.remove(crate::model::VERSION_META);
        attrs.acl = copy_acl;
        let mut body = stream.ok_or_else(|| Error::internal("no body"))?;
        let mut declared = Declared::of_len(Some(read.info.size));
        if let Some(alg) = recompute {
            attrs.metadata.remove(checksum::CHECKSUM_META);
            declared.checksum = checksum::Pending::expected();
            body = checksum::hashed(body, alg, declared.checksum.clone());
        }
        let out = self
            .put_to(
                &targets,
                dst_key,
                body,
                declared,
                &attrs,
                cond,
                self.config.server.part_size,
            )
            .await?;
        Ok(((out, Utc::now()), dst.clone()))
    }

    pub async fn create_upload(
        &self,
        req: &RequestView,
        bucket: &str,
        key: &str,
        attrs: &Attrs,
        checksum: Option<(Algorithm, Option<checksum::Kind>)>,
    ) -> Result<String> {
        check_key(key)?;
        check_attrs(attrs)?;
        let checksum = match checksum {
            None => None,
            Some((alg, kind)) => {
                let kind = kind.unwrap_or_else(|| alg.default_multipart_kind());
                if !alg.supports(kind) {
                    return Err(Error::InvalidRequest(format!(
                        "The {} checksum type cannot be used with the {} checksum algorithm.",
                        kind.name(),
                        alg.name().to_ascii_lowercase()
                    )));
                }
                Some((alg, kind))
            }
        };
        let vb = self.bucket(bucket).await?;
        let _admitted = vb.admit_write().await?;
        let obj = object_view(req, bucket, key, None, attrs);
        // A multipart upload lives in one member, the first placement target; the others
        // (a mirror) get the completed object (`complete_upload`).
        let mut targets = self.decider.place(&vb, req, &obj).await?.into_iter();
        let member = targets
            .next()
            .ok_or_else(|| Error::internal("no placement target"))?;
        let mirrors: Vec<Arc<Backend>> = targets.collect();
        let versioned = self.versioning_of(&vb).await? != versions::State::Unversioned;
        if !mirrors.is_empty() && versioned {
            return Err(Error::NotImplemented(
                "a placement naming several members (a mirrored write) in a versioned bucket is not supported".into(),
            ));
        }
        if versioned {
            Self::refuse_versioned_upload(&vb, &member)?;
        }
        let everywhere: Vec<Arc<Backend>> = std::iter::once(member.clone())
            .chain(mirrors.iter().cloned())
            .collect();
        let kept = acl_for(everywhere.iter().map(|t| &**t), attrs)?;
        let attrs = kept.as_ref().unwrap_or(attrs);
        let mirrors: Vec<String> = mirrors.iter().map(|t| t.name.clone()).collect();
        let started = Instant::now();
        let r = member.store.mpu_create(key, attrs).await;
        member.observe(started, &r);
        let backend_id = r?;
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let upload_id = UploadId::encode(&member.name, &nonce, &backend_id);
        let record = UploadRecord {
            key: key.to_owned(),
            upload_id: upload_id.clone(),
            initiated: Utc::now(),
            attrs: attrs.clone(),
            mirrors,
            checksum,
        };
        let json = serde_json::to_vec(&record).map_err(Error::internal)?;
        member
            .store
            .put_internal(&format!("mpu/{nonce}.json"), Bytes::from(json))
            .await?;
        Ok(upload_id)
    }

    async fn upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(Arc<Backend>, UploadId, UploadRecord)> {
        check_key(key)?;
        let vb = self.bucket(bucket).await?;
        let id = UploadId::decode(upload_id)?;
        let member = vb.member(&id.member).cloned().ok_or(Error::NoSuchUpload)?;
        let raw = member
            .store
            .get_internal(&format!("mpu/{}.json", id.nonce))
            .await?
            .ok_or(Error::NoSuchUpload)?;
        let record: UploadRecord = serde_json::from_slice(&raw).map_err(Error::internal)?;
        if record.key != key || record.upload_id != upload_id {
            return Err(Error::NoSuchUpload);
        }
        Ok((member, id, record))
    }

    /// Uploads one part. The body is gathered in memory because object_store's part API
    /// takes whole parts.
    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: i32,
        body: Body,
        len: Option<u64>,
    ) -> Result<UploadedPart> {
        if !(1..=MAX_PART_NUMBER).contains(&part_number) {
            return Err(Error::InvalidArgument(format!(
                "part number must be between 1 and {MAX_PART_NUMBER}"
            )));
        }
        let vb = self.bucket(bucket).await?;
        let _admitted = vb.admit_write().await?;
        let (member, id, record) = self.upload(bucket, key, upload_id).await?;
        // The part's checksum in the upload's algorithm, for the completed object's.
        let algorithm = record.checksum.map(|(alg, _)| alg);
        let part_checksum = checksum::Pending::expected();
        let body = match algorithm {
            Some(alg) => checksum::hashed(body, alg, part_checksum.clone()),
            None => body,
        };
        // The part streams to the member; its size and MD5 (the part's ETag, as S3 makes
        // it) are tallied on the way.
        let tally = Arc::new(std::sync::Mutex::new((Md5::new(), 0u64)));
        let max = self.config.server.max_put_size;
        let counted: Body = {
            let tally = tally.clone();
            body.map(move |item| {
                let chunk = item?;
                let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
                t.1 += chunk.len() as u64;
                if t.1 > max {
                    return Err(Error::TooLarge(max));
                }
                t.0.update(&chunk);
                Ok(chunk)
            })
            .boxed()
        };
        let idx = usize::try_from(part_number - 1).map_err(Error::internal)?;
        let started = Instant::now();
        let r = member
            .store
            .mpu_put_part(key, &id.backend_id, &id.nonce, idx, counted, len)
            .await;
        member.observe(started, &r);
        let (etag, size) = {
            let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
            let md5 = std::mem::replace(&mut t.0, Md5::new());
            (hex::encode(md5.finalize()), t.1)
        };
        let PartRef { content_id } = match r {
            Ok(part) => part,
            Err(e) => return Err(self.upload_gone_or(bucket, key, upload_id, e).await),
        };
        let checksum = algorithm.and_then(|alg| Some((alg, part_checksum.get()?.value)));
        let record = PartRecord {
            part_number,
            etag: etag.clone(),
            size,
            last_modified: Utc::now(),
            content_id,
            checksum: checksum.as_ref().map(|(_, v)| v.clone()),
        };
        let json = serde_json::to_vec(&record).map_err(Error::internal)?;
        let recorded = member
            .store
            .put_internal(
                &format!("uploads/{}/parts/{part_number:05}.json", id.nonce),
                Bytes::from(json),
            )
            .await;
        if let Err(e) = recorded {
            return Err(self.upload_gone_or(bucket, key, upload_id, e).await);
        }
        Ok(UploadedPart { etag, checksum })
    }

    /// The answer for an upload whose part or completion failed in its member: the
    /// upload's own `NoSuchUpload` or `NoSuchBucket` when it is gone meanwhile (aborted,
    /// or taken with its bucket by a DeleteBucket, perhaps through another engine, whose
    /// rename of an `fs` bucket's directory makes the member's files vanish mid-way), as
    /// S3 answers for an upload a DeleteBucket aborted; `e` otherwise.
    async fn upload_gone_or(&self, bucket: &str, key: &str, upload_id: &str, e: Error) -> Error {
        match self.upload(bucket, key, upload_id).await {
            Err(gone @ (Error::NoSuchUpload | Error::NoSuchBucket)) => gone,
            _ => e,
        }
    }

    pub async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(UploadRecord, Vec<PartRecord>)> {
        let (member, id, record) = self.upload(bucket, key, upload_id).await?;
        let parts = Self::part_records(&member, &id).await?;
        Ok((record, parts))
    }

    /// The recorded parts of an upload already resolved by [`Router::upload`], in order.
    async fn part_records(member: &Backend, id: &UploadId) -> Result<Vec<PartRecord>> {
        let mut parts = Vec::new();
        for path in member
            .store
            .list_internal(&format!("uploads/{}/parts/", id.nonce))
            .await?
        {
            if let Some(raw) = member.store.get_internal(&path).await? {
                parts.push(serde_json::from_slice::<PartRecord>(&raw).map_err(Error::internal)?);
            }
        }
        parts.sort_by_key(|p| p.part_number);
        Ok(parts)
    }

    pub async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
        whole: Option<(Algorithm, String)>,
    ) -> Result<(PutOutcome, Option<Stored>, Option<String>)> {
        let vb = self.bucket(bucket).await?;
        let _admitted = vb.admit_write().await?;
        let state = self.versioning_of(&vb).await?;
        // S3 members version the completion themselves.
        let natives = Self::natives(&vb).filter(|_| state != versions::State::Unversioned);
        let versioned =
            (state != versions::State::Unversioned && natives.is_none()).then_some(state);
        let (member, record, outcome, checksum, mut version_id) = match self
            .complete_in_member(bucket, key, upload_id, parts, whole, versioned)
            .await
        {
            Ok(done) => done,
            Err(e @ (Error::NoSuchUpload | Error::NoSuchBucket)) => return Err(e),
            Err(e) => return Err(self.upload_gone_or(bucket, key, upload_id, e).await),
        };
        if !record.mirrors.is_empty() {
            self.mirror_upload(&vb, &member, key, &record, &outcome)
                .await?;
        }
        if let Some(natives) = &natives {
            let id = self
                .native_id_of(natives, &member.name, key, outcome.etag.as_deref())
                .await?;
            version_id = Some(versions_native::client_id(&member.name, id.as_deref()));
        }
        self.confirm_write(&vb, key).await?;
        Ok((outcome, checksum, version_id))
    }

    /// Assembles an upload's parts into the object in the upload's member; in a versioned
    /// bucket (`versioned`, its state), into a new version of it, whose id it answers.
    #[allow(clippy::type_complexity)]
    async fn complete_in_member(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
        whole: Option<(Algorithm, String)>,
        versioned: Option<versions::State>,
    ) -> Result<(
        Arc<Backend>,
        UploadRecord,
        PutOutcome,
        Option<Stored>,
        Option<String>,
    )> {
        let (member, id, record) = self.upload(bucket, key, upload_id).await?;
        if versioned.is_some() {
            let vb = self.bucket(bucket).await?;
            Self::refuse_versioned_upload(&vb, &member)?;
        }
        if versioned.is_some() && !record.mirrors.is_empty() {
            return Err(Error::NotImplemented(
                "a placement naming several members (a mirrored write) in a versioned bucket is not supported".into(),
            ));
        }
        let uploaded = Self::part_records(&member, &id).await?;
        if parts.is_empty() {
            return Err(Error::InvalidPart(
                "the upload must name at least one part".into(),
            ));
        }
        if parts
            .windows(2)
            .any(|w| w[1].part_number <= w[0].part_number)
        {
            return Err(Error::InvalidPartOrder);
        }
        let mut refs = Vec::with_capacity(parts.len());
        let mut md5s = Vec::with_capacity(parts.len());
        let mut part_checksums = Vec::with_capacity(parts.len());
        for (i, p) in parts.iter().enumerate() {
            let want = crate::backends::unquote_etag(&p.etag);
            let found = uploaded
                .iter()
                .find(|u| u.part_number == p.part_number && u.etag == want)
                .ok_or_else(|| {
                    Error::InvalidPart(format!(
                        "part {} with ETag {want:?} was not uploaded",
                        p.part_number
                    ))
                })?;
            if i + 1 < parts.len() && found.size < MIN_PART_SIZE {
                return Err(Error::EntityTooSmall(format!(
                    "part {} is {} bytes; all but the last must be at least 5 MiB",
                    p.part_number, found.size
                )));
            }
            // A part's checksum the client names must be the one it was uploaded with.
            if let Some((alg, value)) = &p.checksum {
                let same = record.checksum.is_some_and(|(a, _)| a == *alg)
                    && found.checksum.as_deref() == Some(value.as_str());
                if !same {
                    return Err(Error::InvalidPart(format!(
                        "part {} was not uploaded with the {} checksum {value:?}",
                        p.part_number,
                        alg.name()
                    )));
                }
            }
            refs.push((
                p.part_number,
                PartRef {
                    content_id: found.content_id.clone(),
                },
            ));
            md5s.push(found.etag.as_str());
            part_checksums.push(checksum::PartChecksum {
                value: found.checksum.as_deref().unwrap_or_default(),
                len: found.size,
            });
        }
        // The object's checksum: the parts' combined (a part recorded before the upload
        // kept checksums has none, and then neither has the object).
        let checksum = record
            .checksum
            .and_then(|(alg, kind)| checksum::multipart(alg, kind, &part_checksums));
        if let Some((alg, value)) = &whole {
            let matches = checksum
                .as_ref()
                .is_some_and(|c| c.algorithm == *alg && c.value == *value);
            if !matches {
                return Err(Error::ChecksumMismatch(alg.name()));
            }
        }
        let attrs = match &checksum {
            Some(c) => c.kept_in(&record.attrs),
            None => record.attrs.clone(),
        };
        // The upload's ETag as S3 makes it, whatever the member's own multipart ETag.
        let etag = backends::multipart_etag(md5s)?;
        // Native multipart APIs number parts by position (object_store's part_idx).
        if !id.backend_id.is_empty()
            && refs
                .iter()
                .enumerate()
                .any(|(i, (n, _))| usize::try_from(*n).ok() != Some(i + 1))
        {
            return Err(Error::InvalidPart(format!(
                "backend {} needs parts numbered 1..N without gaps",
                member.name
            )));
        }
        let started = Instant::now();
        let parts: Vec<PartRef> = refs.into_iter().map(|(_, r)| r).collect();
        let (r, version_id) = match versioned {
            None => {
                let r = member
                    .store
                    .mpu_complete(key, &id.backend_id, &id.nonce, parts, &attrs, &etag)
                    .await;
                (r, None)
            }
            // The parts assemble into the version's file, which is then published as a
            // PUT's is (the same two steps, the same recovery after a crash).
            Some(state) => {
                let (store, id, attrs, etag) = (&member.store, &id, &attrs, &etag);
                let done = versions::write(
                    &member,
                    bucket,
                    key,
                    state,
                    &WriteCondition::None,
                    |file| async move {
                        let mut a = attrs.clone();
                        a.metadata
                            .insert(crate::model::VERSION_META.to_owned(), file.name);
                        store
                            .mpu_complete(&file.key, &id.backend_id, &id.nonce, parts, &a, etag)
                            .await
                    },
                )
                .await;
                match done {
                    Ok((o, v)) => (Ok(o), Some(v)),
                    Err(e) => (Err(e), None),
                }
            }
        };
        member.observe(started, &r);
        let outcome = r?;
        self.forget_upload(&member, &id, &uploaded).await;
        Ok((member, record, outcome, checksum, version_id))
    }

    /// Copies a completed multipart upload from its member to the other members its
    /// placement named, so that a mirror gets every object, large ones too (it used to
    /// get one copy, and the client 200). The completion is acknowledged when every
    /// mirror has it; a mirror that fails fails the request, as a mirrored PUT does.
    /// The object is read at the ETag the completion gave it: a client's newer write of
    /// the key (mirrored itself) is not overwritten in the mirrors by this older one.
    async fn mirror_upload(
        &self,
        vb: &VirtualBucket,
        member: &Arc<Backend>,
        key: &str,
        record: &UploadRecord,
        outcome: &PutOutcome,
    ) -> Result<()> {
        let mut mirrors = Vec::with_capacity(record.mirrors.len());
        for name in &record.mirrors {
            let m = vb.member(name).ok_or_else(|| {
                Error::internal(format!(
                    "member {name}, a mirror of this upload, is no longer in bucket {}",
                    vb.name
                ))
            })?;
            mirrors.push(m.clone());
        }
        let cond = ReadConditions {
            if_match: outcome.etag.clone(),
            ..ReadConditions::default()
        };
        let started = Instant::now();
        let r = member.store.get(key, None, &cond, false).await;
        member.observe(started, &r);
        let (mut read, stream) = match r {
            Ok(found) => found,
            // Replaced or deleted by a client since: that write went to the mirrors.
            Err(Error::Precondition(_) | Error::NotFound) => return Ok(()),
            Err(e) => return Err(e),
        };
        match member.tell_tags(key, &mut read.info).await {
            Ok(()) => {}
            Err(Error::NotFound) => return Ok(()),
            Err(e) => return Err(e),
        }
        let body = stream.ok_or_else(|| Error::internal("no body"))?;
        // The mirrors keep the upload's ETag where they can (not S3, which gives a
        // single-request write its MD5).
        let declared = Declared {
            len: Some(read.info.size),
            etag: outcome.etag.clone(),
            ..Declared::default()
        };
        self.put_to(
            &mirrors,
            key,
            body,
            declared,
            &read.info.attrs,
            &WriteCondition::None,
            self.config.server.part_size,
        )
        .await?;
        Ok(())
    }

    pub async fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        let (member, id, _) = self.upload(bucket, key, upload_id).await?;
        let parts = Self::part_records(&member, &id).await?;
        member
            .store
            .mpu_abort(key, &id.backend_id, &id.nonce)
            .await?;
        self.forget_upload(&member, &id, &parts).await;
        Ok(())
    }

    async fn forget_upload(&self, member: &Backend, id: &UploadId, parts: &[PartRecord]) {
        for p in parts {
            let path = format!("uploads/{}/parts/{:05}.json", id.nonce, p.part_number);
            if let Err(e) = member.store.delete_internal(&path).await {
                debug!(backend = %member.name, error = %e, "could not remove a part record");
            }
        }
        if let Err(e) = member
            .store
            .delete_internal(&format!("mpu/{}.json", id.nonce))
            .await
        {
            warn!(backend = %member.name, error = %e, "could not remove an upload record");
        }
    }

    /// In-progress uploads of every member, sorted by key then start time.
    pub async fn list_uploads(&self, bucket: &str, prefix: &str) -> Result<Vec<UploadSummary>> {
        let vb = self.bucket(bucket).await?;
        let mut out = Vec::new();
        for m in &vb.members {
            for path in m.store.list_internal("mpu/").await? {
                if let Some(raw) = m.store.get_internal(&path).await?
                    && let Ok(r) = serde_json::from_slice::<UploadRecord>(&raw)
                    && r.key.starts_with(prefix)
                {
                    out.push(UploadSummary {
                        key: r.key,
                        upload_id: r.upload_id,
                        initiated: r.initiated,
                    });
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key).then(a.initiated.cmp(&b.initiated)));
        Ok(out)
    }

    /// UploadPartCopy: a range of an existing object becomes a part.
    #[allow(clippy::too_many_arguments)]
    pub async fn upload_part_copy(
        &self,
        req: &RequestView,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: i32,
        src_bucket: &str,
        src_key: &str,
        range: Option<ByteRange>,
        src_cond: &ReadConditions,
    ) -> Result<(UploadedPart, DateTime<Utc>)> {
        // A copy range must lie within the source, as S3 requires: a GET's range is cut
        // to the object, a part's must not be, or the part would be shorter than asked and
        // the assembled object silently wrong.
        let out_of_range = |size: u64| {
            Error::InvalidArgument(format!(
                "Range specified is not valid for source object of size: {size}"
            ))
        };
        let read = match self
            .get(req, src_bucket, src_key, range, src_cond, false)
            .await
        {
            Err(Error::InvalidRange) => {
                let (src, _, _) = self
                    .get(req, src_bucket, src_key, None, src_cond, true)
                    .await?;
                return Err(out_of_range(src.info.size));
            }
            other => other?,
        };
        let (src, stream, _) = read;
        if let Some(ByteRange::Bounded { last, .. }) = range
            && last >= src.info.size
        {
            return Err(out_of_range(src.info.size));
        }
        let body = stream.ok_or_else(|| Error::internal("no body"))?;
        let len = src.range.end - src.range.start;
        let part = self
            .upload_part(bucket, key, upload_id, part_number, body, Some(len))
            .await?;
        Ok((part, src.info.last_modified))
    }
}

/// The attributes to write to `targets` when some of them keep no object ACLs: without
/// the ACL when it is only an owner's FULL_CONTROL (what an object has without one, so
/// nothing a client set is dropped), refused when it grants more. `None`: as they are.
/// The mover applies the same rule to its destination, so a move never drops a grant.
pub(crate) fn acl_for<'a>(
    targets: impl IntoIterator<Item = &'a Backend>,
    attrs: &Attrs,
) -> Result<Option<Attrs>> {
    let Some(acl) = &attrs.acl else {
        return Ok(None);
    };
    let Some(m) = targets.into_iter().find(|t| !t.store.keeps_acls()) else {
        return Ok(None);
    };
    if *acl != crate::model::ObjectAcl::private(&acl.owner) {
        return Err(Error::NotImplemented(format!(
            "object ACLs other than the owner's FULL_CONTROL are not supported on member {} (its kind, {}, has no place to keep them with the object)",
            m.name, m.kind
        )));
    }
    let mut kept = attrs.clone();
    kept.acl = None;
    Ok(Some(kept))
}

fn record_targets(targets: &[Arc<Backend>]) {
    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    Exchange::with_current(|x| x.set_backend(&names.join(",")));
}

fn object_view(
    req: &RequestView,
    bucket: &str,
    key: &str,
    size: Option<u64>,
    attrs: &Attrs,
) -> ObjectView {
    ObjectView {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        size,
        content_type: attrs.content_type.clone(),
        metadata: crate::checksum::client_metadata(attrs)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        age_seconds: None,
        tags: req.tags.clone(),
    }
}

fn tokio_stream_from(mut rx: tokio::sync::mpsc::Receiver<Result<Bytes>>) -> Body {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

/// A ListObjectVersions request.
#[derive(Debug, Clone, Default)]
pub struct VersionListRequest {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub key_marker: Option<String>,
    pub version_id_marker: Option<String>,
    pub max_keys: usize,
}

/// One entry of a ListObjectVersions page.
#[derive(Debug, Clone)]
pub enum VersionEntry {
    Version(versions::Row),
    Prefix(String),
}

#[derive(Debug, Clone, Default)]
pub struct VersionPage {
    pub entries: Vec<VersionEntry>,
    pub truncated: bool,
    /// Where the next page starts: key and version id markers.
    pub next: Option<(String, Option<String>)>,
}

/// Versioning (see [`crate::versions`]): kept by the gateway in `fs` and `memory` members.
impl Router {
    /// Whether every member of `vb` is of a kind whose versions the gateway keeps
    /// (`fs`, `memory`, `azure`, `gcs`), or every member passes its own through (S3 with
    /// static credentials, see `versions_native.rs`); else why not.
    fn unversionable(vb: &VirtualBucket) -> Option<String> {
        if Self::natives(vb).is_some() {
            return None;
        }
        let gateway = |k: &str| matches!(k, "fs" | "memory" | "azure" | "gcs");
        match vb.members.iter().find(|m| !gateway(m.kind)) {
            None => None,
            Some(m) if m.store.native_versions().is_none() => Some(format!(
                "buckets with {} members that go through object_store (no static credentials)",
                m.kind
            )),
            Some(_) => Some(
                "buckets whose members keep versions differently (s3 members keep their own, the gateway keeps those of the others)"
                    .to_owned(),
            ),
        }
    }

    async fn versioning_of(&self, vb: &VirtualBucket) -> Result<versions::State> {
        use crate::config::VersioningConfig as V;
        if let Some(natives) = Self::natives(vb) {
            return self.native_state(vb, &natives).await;
        }
        if Self::unversionable(vb).is_some() {
            return Ok(versions::State::Unversioned);
        }
        if !vb.dynamic {
            return Ok(
                match self.config.buckets.get(&vb.name).and_then(|b| b.versioning) {
                    None => versions::State::Unversioned,
                    Some(V::Enabled) => versions::State::Enabled,
                    Some(V::Suspended) => versions::State::Suspended,
                },
            );
        }
        // Read at most every POLICY_CACHE, not by every request: another engine's change
        // arrives within that time (AWS too asks writers to wait after enabling
        // versioning, for its own propagation), this engine's at once.
        if let Some((read, state)) = *vb.versioning.lock().expect("versioning cache")
            && read.elapsed() < POLICY_CACHE
        {
            return Ok(state);
        }
        let member = vb.members.first().ok_or(Error::NoSuchBucket)?;
        let raw = member.store.get_internal(versions::STATE_PATH).await?;
        let state = raw
            .and_then(|r| versions::State::parse(std::str::from_utf8(&r).ok()?.trim()))
            .unwrap_or(versions::State::Unversioned);
        *vb.versioning.lock().expect("versioning cache") = Some((Instant::now(), state));
        Ok(state)
    }

    /// GetBucketVersioning.
    pub async fn versioning(&self, bucket: &str) -> Result<versions::State> {
        let vb = self.bucket(bucket).await?;
        self.versioning_of(&vb).await
    }

    /// PutBucketVersioning: buckets made by CreateBucket whose member keeps no versions of
    /// its own; a configured bucket's state is in the configuration file.
    pub async fn put_versioning(&self, bucket: &str, state: versions::State) -> Result<()> {
        let vb = self.bucket(bucket).await?;
        if let Some(natives) = Self::natives(&vb) {
            return self.native_put_versioning(&vb, &natives, state).await;
        }
        if let Some(why) = Self::unversionable(&vb) {
            return Err(Error::NotImplemented(format!(
                "versioning of {why} is not supported yet"
            )));
        }
        if !vb.dynamic {
            return Err(Error::InvalidRequest(format!(
                "the versioning of bucket {bucket} is set in the configuration file (buckets.{bucket}.versioning)"
            )));
        }
        let Some(text) = state.as_str() else {
            return Err(Error::InvalidArgument(
                "a bucket's versioning is Enabled or Suspended".into(),
            ));
        };
        for m in &vb.members {
            m.store
                .put_internal(versions::STATE_PATH, Bytes::from_static(text.as_bytes()))
                .await?;
        }
        *vb.versioning.lock().expect("versioning cache") = Some((Instant::now(), state));
        Ok(())
    }

    /// PutObject, answering the version id in a versioned bucket.
    #[allow(clippy::too_many_arguments)]
    pub async fn put_version(
        &self,
        req: &RequestView,
        bucket: &str,
        key: &str,
        body: Body,
        declared: Declared,
        attrs: &Attrs,
        cond: &WriteCondition,
    ) -> Result<(PutOutcome, Option<String>)> {
        let vb = self.bucket(bucket).await?;
        let state = self.versioning_of(&vb).await?;
        if state == versions::State::Unversioned {
            let (out, _) = self
                .put(req, bucket, key, body, declared, attrs, cond)
                .await?;
            return Ok((out, None));
        }
        if let Some(natives) = Self::natives(&vb) {
            return self
                .native_put(req, &vb, &natives, key, body, declared, attrs, cond)
                .await;
        }
        check_key(key)?;
        check_attrs(attrs)?;
        let _admitted = vb.admit_write().await?;
        let obj = object_view(req, bucket, key, declared.len, attrs);
        let targets = self.decider.place(&vb, req, &obj).await?;
        record_targets(&targets);
        let kept = acl_for(targets.iter().map(|t| &**t), attrs)?;
        let attrs = kept.as_ref().unwrap_or(attrs);
        let [target] = targets.as_slice() else {
            return Err(Error::NotImplemented(
                "a placement naming several members (a mirrored write) in a versioned bucket is not supported".into(),
            ));
        };
        let started = Instant::now();
        let r = versions::put(
            target,
            bucket,
            key,
            body,
            declared,
            attrs,
            state,
            cond,
            self.config.server.part_size,
        )
        .await;
        target.observe(started, &r);
        let (out, id) = r?;
        self.confirm_write(&vb, key).await?;
        Ok((out, Some(id)))
    }

    /// Multipart uploads into a versioned bucket whose versions the gateway keeps are
    /// assembled into the version's own object, which GCS's multipart API (through
    /// `object_store`, bound to the upload's key) cannot do: refused there.
    fn refuse_versioned_upload(vb: &VirtualBucket, member: &Backend) -> Result<()> {
        if member.kind == "gcs" && Self::natives(vb).is_none() {
            return Err(Error::NotImplemented(format!(
                "multipart uploads into a versioned bucket are not supported on member {} (kind gcs: its multipart uploads complete at their own key, not at a version's)",
                member.name
            )));
        }
        Ok(())
    }

    /// Refuses a write that would replace `key` in a versioned bucket without keeping a
    /// version (CopyObject's and CompleteMultipartUpload's targets, not versioned yet).
    async fn refuse_unversioned_write(&self, vb: &VirtualBucket, what: &str) -> Result<()> {
        // S3 members version copies and uploads themselves.
        if Self::natives(vb).is_some()
            || self.versioning_of(vb).await? == versions::State::Unversioned
        {
            return Ok(());
        }
        Err(Error::NotImplemented(format!(
            "{what} into a versioned bucket is not supported yet"
        )))
    }

    /// CopyObject with versions: a `versionId` on the source (any version of a versioned
    /// bucket; `null` of an unversioned one), and a versioned target, where the copy is
    /// a new version. Answers the outcome, the copy's time, the source's version id (none
    /// from an unversioned bucket) and the copy's (none into an unversioned bucket).
    /// Between unversioned buckets, [`Router::copy_tagged`] (a server-side copy where it
    /// can).
    #[allow(clippy::too_many_arguments)]
    pub async fn copy_version(
        &self,
        req: &RequestView,
        (src_bucket, src_key, src_version): (&str, &str, Option<&str>),
        src_cond: &ReadConditions,
        (dst_bucket, dst_key): (&str, &str),
        (replace_attrs, replace_tags): (Option<Attrs>, Option<crate::model::Tags>),
        cond: &WriteCondition,
        checksum_algorithm: Option<Algorithm>,
        acl: Option<crate::model::ObjectAcl>,
    ) -> Result<(PutOutcome, DateTime<Utc>, Option<String>, Option<String>)> {
        let dst = self.bucket(dst_bucket).await?;
        let state = self.versioning_of(&dst).await?;
        let src = self.bucket(src_bucket).await?;
        let src_versioned = self.versioning_of(&src).await? != versions::State::Unversioned;
        if state == versions::State::Unversioned
            && !src_versioned
            && src_version.is_none_or(|v| v == "null")
        {
            let (out, at) = self
                .copy_tagged(
                    req,
                    (src_bucket, src_key),
                    src_cond,
                    (dst_bucket, dst_key),
                    (replace_attrs, replace_tags),
                    cond,
                    checksum_algorithm,
                    acl,
                )
                .await?;
            return Ok((out, at, None, None));
        }
        check_key(dst_key)?;
        if let Some(a) = &replace_attrs {
            check_attrs(a)?;
        }
        // Copying a version over its own key restores it (as S3): only the current
        // object onto itself, unchanged, is refused.
        if src_bucket == dst_bucket
            && src_key == dst_key
            && src_version.is_none()
            && replace_attrs.is_none()
            && replace_tags.is_none()
        {
            return Err(Error::InvalidRequest(
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata".into(),
            ));
        }
        // One read: the version's bytes, attributes and id together.
        let (read, stream, src_id) = self
            .get_version(req, src_bucket, src_key, src_version, None, src_cond, false)
            .await
            .map_err(|e| match e {
                Error::DeleteMarker { named: true, .. } => Error::InvalidRequest(
                    "The source of a copy request may not specifically refer to a delete marker by version id.".into(),
                ),
                Error::DeleteMarker { named: false, .. } => Error::NotFound,
                e => e,
            })?;
        let _admitted = dst.admit_write().await?;
        let mut read_tags = read.info.attrs.tags.clone();
        // S3's GET counts a version's tags at most (some servers not even that).
        if replace_tags.is_none()
            && let Some(natives) = Self::natives(&src)
        {
            read_tags = Self::native_source_tags(&natives, src_key, src_id.as_deref()).await?;
        }
        let mut attrs = replace_attrs.unwrap_or(read.info.attrs);
        attrs.tags = replace_tags.unwrap_or(read_tags);
        // The source's version file is its own, not the copy's; so is its ACL (a copy
        // never takes its source's).
        attrs.metadata.remove(crate::model::VERSION_META);
        attrs.acl = acl;
        let recompute = checksum_algorithm.filter(|alg| {
            Stored::of(&attrs)
                .is_none_or(|c| c.algorithm != *alg || c.kind != checksum::Kind::FullObject)
        });
        let mut body = stream.ok_or_else(|| Error::internal("no body"))?;
        let mut declared = Declared::of_len(Some(read.info.size));
        if let Some(alg) = recompute {
            attrs.metadata.remove(checksum::CHECKSUM_META);
            declared.checksum = checksum::Pending::expected();
            body = checksum::hashed(body, alg, declared.checksum.clone());
        }
        let obj = object_view(req, dst_bucket, dst_key, Some(read.info.size), &attrs);
        let targets = self.decider.place(&dst, req, &obj).await?;
        record_targets(&targets);
        if let Some(kept) = acl_for(targets.iter().map(|t| &**t), &attrs)? {
            attrs = kept;
        }
        let part_size = self.config.server.part_size;
        let (out, dst_id) = if state == versions::State::Unversioned {
            let out = self
                .put_to(&targets, dst_key, body, declared, &attrs, cond, part_size)
                .await?;
            (out, None)
        } else if let Some(natives) = Self::natives(&dst) {
            // S3 makes the version; a PUT's answer names it (a copy inside S3's would
            // not).
            let [target] = targets.as_slice() else {
                return Err(Error::NotImplemented(
                    "a placement naming several members (a mirrored write) in a versioned bucket is not supported".into(),
                ));
            };
            self.native_write(&natives, target, dst_key, body, declared, &attrs, cond)
                .await?
        } else {
            let [target] = targets.as_slice() else {
                return Err(Error::NotImplemented(
                    "a placement naming several members (a mirrored write) in a versioned bucket is not supported".into(),
                ));
            };
            let started = Instant::now();
            let r = versions::put(
                target, dst_bucket, dst_key, body, declared, &attrs, state, cond, part_size,
            )
            .await;
            target.observe(started, &r);
            let (out, id) = r?;
            (out, Some(id))
        };
        self.confirm_write(&dst, dst_key).await?;
        Ok((out, Utc::now(), src_id, dst_id))
    }

    /// GetObjectTagging, answering the version id in a versioned bucket: a version's tags
    /// are those of its file (the key's copy follows them).
    pub async fn get_version_tags(
        &self,
        req: &RequestView,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<(crate::model::Tags, Option<String>)> {
        let vb = self.bucket(bucket).await?;
        if self.versioning_of(&vb).await? == versions::State::Unversioned {
            let tags = self.get_tags(req, bucket, key, version_id).await?;
            return Ok((tags, None));
        }
        if let Some(natives) = Self::natives(&vb) {
            check_key(key)?;
            return self.native_tags(&natives, key, version_id).await;
        }
        let none = ReadConditions::default();
        let (mut read, _, id) = self
            .get_version(req, bucket, key, version_id, None, &none, true)
            .await?;
        // The current version: its file's tags, which a change of them writes first.
        if version_id.is_none()
            && let Some(v) = id.as_deref().filter(|v| *v != "null")
        {
            read = self
                .get_version(req, bucket, key, Some(v), None, &none, true)
                .await?
                .0;
        }
        Ok((read.info.attrs.tags, id))
    }

    /// PutObjectTagging and DeleteObjectTagging (no tags), answering the version id
    /// tagged in a versioned bucket: the tags of the version named, or of the current one
    /// (see [`versions::put_tags`]); in an unversioned bucket, [`Router::put_tags`].
    pub async fn put_version_tags(
        &self,
        req: &RequestView,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: &crate::model::Tags,
    ) -> Result<Option<String>> {
        self.change_version(req, bucket, key, version_id, versions::Change::Tags(tags))
            .await
    }

    /// PutObjectAcl (`None`: the default ACL) on the version named, or the current one;
    /// see [`Router::put_version_tags`].
    pub async fn put_object_acl(
        &self,
        req: &RequestView,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        acl: Option<&crate::model::ObjectAcl>,
    ) -> Result<()> {
        self.change_version(req, bucket, key, version_id, versions::Change::Acl(acl))
            .await
            .map(drop)
    }

    /// Sets a version's tags or ACL (see [`versions::change`]).
    async fn change_version(
        &self,
        req: &RequestView,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        change: versions::Change<'_>,
    ) -> Result<Option<String>> {
        check_key(key)?;
        let vb = self.bucket(bucket).await?;
        let state = self.versioning_of(&vb).await?;
        if state != versions::State::Unversioned
            && let Some(natives) = Self::natives(&vb)
        {
            return match change {
                versions::Change::Tags(tags) => {
                    self.native_put_tags(&vb, &natives, key, version_id, tags)
                        .await
                }
                // S3 members keep no ACLs: the default one is what the version has.
                versions::Change::Acl(Some(_)) => Err(Error::NotImplemented(format!(
                    "object ACLs other than the default are not supported on the S3 members of bucket {bucket} (S3 keeps them apart from the object, which the gateway does not pass through)"
                ))),
                versions::Change::Acl(None) => {
                    let none = ReadConditions::default();
                    let (_, _, id) = self
                        .get_version(req, bucket, key, version_id, None, &none, true)
                        .await?;
                    Ok(id)
                }
            };
        }
        let id = version_id.map(versions::VersionId::parse).transpose()?;
        if state == versions::State::Unversioned {
            if id.as_ref().is_some_and(|i| *i != versions::VersionId::Null) {
                return Err(Error::InvalidArgument(
                    "Invalid version id specified".into(),
                ));
            }
            match change {
                versions::Change::Tags(tags) => self.put_tags(bucket, key, tags).await?,
                versions::Change::Acl(acl) => self.put_unversioned_acl(&vb, key, acl).await?,
            }
            return Ok(None);
        }
        let _admitted = vb.admit_write().await?;
        let members: Vec<&Arc<Backend>> = match &id {
            Some(versions::VersionId::In { member, .. }) => {
                vec![vb.member(member).ok_or(Error::NoSuchVersion)?]
            }
            _ => vb.members.iter().collect(),
        };
        for m in members {
            let started = Instant::now();
            let r = versions::change(m, key, id.as_ref(), change).await;
            m.observe(started, &r);
            match r {
                Ok(v) => return Ok(Some(v)),
                // Not in this member: the next may hold the key.
                Err(Error::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Err(match id {
            Some(versions::VersionId::In { .. }) => Error::NoSuchVersion,
            _ => Error::NotFound,
        })
    }

    /// GetObject and HeadObject with or without a version id; answers the version id
    /// served (none in an unversioned bucket).
    #[allow(clippy::too_many_arguments)]
    pub async fn get_version(
        &self,
        req: &RequestView,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        range: Option<ByteRange>,
        cond: &ReadConditions,
        head: bool,
    ) -> Result<(GetOutcome, Option<ByteStream>, Option<String>)> {
        check_key(key)?;
        let vb = self.bucket(bucket).await?;
        if let Some(natives) = Self::natives(&vb) {
            return self
                .native_get(req, &vb, &natives, key, version_id, range, cond, head)
                .await;
        }
        let Some(id) = version_id else {
            let versioned = Self::unversionable(&vb).is_none()
                && self.versioning_of(&vb).await? != versions::State::Unversioned;
            let mut repaired = false;
            loop {
                match self.get(req, bucket, key, range, cond, head).await {
                    Ok((o, s, member)) => {
                        if !versioned {
                            return Ok((o, s, None));
                        }
                        let mut published = versions::published_from(&o.info.attrs);
                        if published.is_some() {
                            let newest = versions::files(&member, key).await?;
                            match newest.first() {
                                // A copy whose version files are elsewhere (a migration
                                // carries current versions only): here it is the null
                                // version.
                                None => published = None,
                                // A write that stopped between its version file and
                                // publishing it (a crash) left the key behind its newest
                                // version: publish and read again.
                                Some(f) if Some(f) != published.as_ref() && !repaired => {
                                    versions::publish(&member, key).await?;
                                    repaired = true;
                                    continue;
                                }
                                Some(_) => {}
                            }
                        }
                        let id = published
                            .map_or_else(|| "null".to_owned(), |f| f.client_id(&member.name));
                        return Ok((o, s, Some(id)));
                    }
                    Err(Error::NotFound) if versioned => {
                        for m in &vb.members {
                            let newest = versions::files(m, key).await?;
                            match newest.first() {
                                Some(f) if f.is_marker() => {
                                    return Err(Error::DeleteMarker {
                                        version_id: f.client_id(&m.name),
                                        named: false,
                                    });
                                }
                                Some(_) if !repaired => {
                                    versions::publish(m, key).await?;
                                    repaired = true;
                                }
                                _ => {}
                            }
                        }
                        if !repaired {
                            return Err(Error::NotFound);
                        }
                        // Read once more after publishing; a second miss is final.
                        let (o, s, member) = self.get(req, bucket, key, range, cond, head).await?;
                        let id = versions::published_from(&o.info.attrs)
                            .map(|f| f.client_id(&member.name))
                            .unwrap_or_else(|| "null".to_owned());
                        return Ok((o, s, Some(id)));
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        let id = versions::VersionId::parse(id)?;
        let state = self.versioning_of(&vb).await?;
        if state == versions::State::Unversioned {
            // An unversioned bucket's one version is null: the object itself.
            if id != versions::VersionId::Null {
                return Err(Error::InvalidArgument(
                    "Invalid version id specified".into(),
                ));
            }
            let (o, s, _) = self.get(req, bucket, key, range, cond, head).await?;
            return Ok((o, s, None));
        }
        let members: Vec<&Arc<Backend>> = match &id {
            versions::VersionId::Null => vb.members.iter().collect(),
            versions::VersionId::In { member, .. } => {
                vec![vb.member(member).ok_or(Error::NoSuchVersion)?]
            }
        };
        let mut missing = Error::NoSuchVersion;
        for m in members {
            match versions::get(m, key, &id, range, cond, head).await {
                Ok((o, s)) => {
                    let (o, s, _) = Self::served(o, s, m);
                    let id = match &id {
                        versions::VersionId::Null => "null".to_owned(),
                        versions::VersionId::In { member, sort } => format!("{member}.{sort}"),
                    };
                    return Ok((o, s, Some(id)));
                }
                Err(Error::NoSuchVersion) => {}
                Err(e @ Error::Unavailable { .. }) => missing = e,
                Err(e) => return Err(e),
            }
        }
        Err(missing)
    }

    /// DeleteObject with or without a version id. Answers the version id the delete made
    /// (a delete marker) or removed, and whether that is a delete marker; none in an
    /// unversioned bucket.
    pub async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<(Option<String>, bool)> {
        check_key(key)?;
        let vb = self.bucket(bucket).await?;
        if let Some(natives) = Self::natives(&vb)
            && self.versioning_of(&vb).await? != versions::State::Unversioned
        {
            return self.native_delete(&vb, &natives, key, version_id).await;
        }
        let id = version_id.map(versions::VersionId::parse).transpose()?;
        let state = self.versioning_of(&vb).await?;
        if state == versions::State::Unversioned {
            if id.as_ref().is_some_and(|i| *i != versions::VersionId::Null) {
                return Err(Error::InvalidArgument(
                    "Invalid version id specified".into(),
                ));
            }
            self.delete(bucket, key).await?;
            return Ok((None, false));
        }
        let _admitted = vb.admit_write().await?;
        match id {
            None => {
                let (first, rest) = vb.members.split_first().ok_or(Error::NoSuchBucket)?;
                let marker = versions::put_marker(first, bucket, key, state).await?;
                // Older copies in the other members must not show through the marker.
                for m in rest.iter().rev() {
                    m.store.delete(key).await?;
                }
                Ok((Some(marker), true))
            }
            Some(id) => {
                let members: Vec<&Arc<Backend>> = match &id {
                    versions::VersionId::Null => vb.members.iter().collect(),
                    versions::VersionId::In { member, .. } => {
                        vb.member(member).into_iter().collect()
                    }
                };
                let mut marker = false;
                for m in members {
                    marker |= versions::delete(m, bucket, key, &id).await?;
                }
                let shown = match &id {
                    versions::VersionId::Null => "null".to_owned(),
                    versions::VersionId::In { member, sort } => format!("{member}.{sort}"),
                };
                Ok((Some(shown), marker))
            }
        }
    }

    /// ListObjectVersions: every version of every key under the prefix, by key and then
    /// newest first.
    pub async fn list_versions(
        &self,
        bucket: &str,
        req: &VersionListRequest,
    ) -> Result<VersionPage> {
        let vb = self.bucket(bucket).await?;
        if let Some(natives) = Self::natives(&vb) {
            return self.native_list(&natives, req).await;
        }
        if let Some(why) = Self::unversionable(&vb) {
            return Err(Error::NotImplemented(format!(
                "ListObjectVersions on {why} is not supported yet"
            )));
        }
        let rows = versions::rows(&vb.members, &req.prefix).await?;
        Ok(Self::page_of(&rows, req))
    }

    /// One ListObjectVersions page of `rows` (every version, by key and then newest first).
    fn page_of(rows: &[versions::Row], req: &VersionListRequest) -> VersionPage {
        // Skip up to the markers: with a version id marker, the versions of that key up
        // to and with it; without, every version of keys up to the key marker.
        let mut start = 0;
        if let Some(km) = &req.key_marker {
            start = match req.version_id_marker.as_deref() {
                Some(vm) if !vm.is_empty() => rows
                    .iter()
                    .position(|r| r.key == *km && r.version_id == vm)
                    .map(|i| i + 1)
                    .unwrap_or_else(|| rows.partition_point(|r| r.key <= *km)),
                // A common prefix as marker: past every key under it too.
                _ => rows.partition_point(|r| {
                    r.key <= *km
                        || (req
                            .delimiter
                            .as_deref()
                            .is_some_and(|d| !d.is_empty() && km.ends_with(d))
                            && r.key.starts_with(km.as_str()))
                }),
            };
        }
        let mut page = VersionPage::default();
        let mut last_prefix: Option<String> = None;
        let mut i = start;
        while i < rows.len() {
            let r = &rows[i];
            let grouped = req
                .delimiter
                .as_deref()
                .filter(|d| !d.is_empty())
                .and_then(|d| {
                    let rest = &r.key[req.prefix.len()..];
                    rest.find(d)
                        .map(|at| r.key[..req.prefix.len() + at + d.len()].to_owned())
                });
            if let Some(p) = grouped {
                if last_prefix.as_ref() == Some(&p) {
                    i += 1;
                    continue;
                }
                if page.entries.len() == req.max_keys {
                    page.truncated = true;
                    break;
                }
                last_prefix = Some(p.clone());
                page.entries.push(VersionEntry::Prefix(p.clone()));
                page.next = Some((p, None));
                i += 1;
                continue;
            }
            if page.entries.len() == req.max_keys {
                page.truncated = true;
                break;
            }
            page.entries.push(VersionEntry::Version(r.clone()));
            page.next = Some((r.key.clone(), Some(r.version_id.clone())));
            i += 1;
        }
        if !page.truncated {
            page.next = None;
        }
        page
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::testing::{Hook, Hooked, first, put};
    use crate::backends::{ObjectStoreBackend, Store};

    /// A router with one bucket, `bkt`, over `members` (highest priority first).
    fn router(members: Vec<(&str, Arc<dyn Store>)>) -> Router {
        let members = members
            .into_iter()
            .map(|(name, store)| {
                Arc::new(Backend::new(
                    name.to_owned(),
                    "memory",
                    &Default::default(),
                    store,
                    std::time::Duration::from_secs(10),
                ))
            })
            .collect();
        let vb = VirtualBucket::new(
            "bkt".into(),
            members,
            "default".into(),
            FailureMode::FailOpen,
            BucketAccess::Configured(None),
            Utc::now(),
            false,
        );
        Router {
            config: Arc::new(Config::from_toml("version = 1").unwrap()),
            registry: Registry::default(),
            buckets: RwLock::new([("bkt".to_owned(), Arc::new(vb))].into()),
            dynamic_root: None,
            decider: Decider {
                policies: None,
                metrics: Arc::new(Metrics::default()),
            },
        }
    }

    fn memory(name: &str) -> Arc<dyn Store> {
        Arc::new(ObjectStoreBackend::memory(name, None))
    }

    fn view() -> RequestView {
        RequestView {
            operation: "GetObject".into(),
            ..RequestView::default()
        }
    }

    async fn size_of(r: &Router, key: &str) -> Result<u64> {
        let (got, _, _) = r
            .get(&view(), "bkt", key, None, &ReadConditions::default(), true)
            .await?;
        Ok(got.info.size)
    }

    /// A reloaded router keeps the buckets made by CreateBucket on a `memory` template,
    /// objects and all, while the template is unchanged; a new template starts empty.
    #[tokio::test]
    async fn a_reload_keeps_the_buckets_made_in_memory() {
        let config = |tier: &str| {
            Arc::new(
                Config::from_toml(&format!(
                    "version = 1\n[dynamic_buckets]\nkind = \"memory\"\nlabels = {{ tier = \"{tier}\" }}\n"
                ))
                .unwrap(),
            )
        };
        let metrics = Arc::new(Metrics::default());
        let first = Router::new(config("hot"), None, metrics.clone()).unwrap();
        first.create_bucket("made", None).await.unwrap();
        let made = first.bucket("made").await.unwrap();
        put(made.members[0].store.as_ref(), "k").await;
        let second = Router::reload(config("hot"), None, metrics.clone(), &first).unwrap();
        let kept = second.bucket("made").await.unwrap();
        assert!(
            Arc::ptr_eq(&made, &kept),
            "a new bucket, without its objects"
        );
        let third = Router::reload(config("cold"), None, metrics, &second).unwrap();
        assert!(matches!(
            third.bucket("made").await,
            Err(Error::NoSuchBucket)
        ));
    }

    /// A bucket made by CreateBucket keeps its versioning state in its member; requests do
    /// not read it each time (a file read on every PUT and GET of an `fs` bucket), but at
    /// most every [`POLICY_CACHE`], and the engine that changes it sees the change at once.
    #[tokio::test]
    async fn the_versioning_state_is_not_read_by_every_request() {
        let config = Arc::new(
            Config::from_toml("version = 1\n[dynamic_buckets]\nkind = \"memory\"\n").unwrap(),
        );
        let metrics = Arc::new(Metrics::default());
        let r = Router::new(config, None, metrics.clone()).unwrap();
        r.create_bucket("made", None).await.unwrap();
        let internal_reads = || {
            metrics
                .encode()
                .lines()
                .filter(|l| {
                    l.starts_with("switchyard_backend_requests_total{")
                        && l.contains("operation=\"internal\"")
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        };
        let before = internal_reads();
        for i in 0..10 {
            let body: Body = futures::stream::iter(vec![Ok(Bytes::from(format!("v{i}")))]).boxed();
            r.put_version(
                &view(),
                "made",
                "k",
                body,
                Declared::default(),
                &Attrs::default(),
                &WriteCondition::None,
            )
            .await
            .unwrap();
            r.get_version(
                &view(),
                "made",
                "k",
                None,
                None,
                &ReadConditions::default(),
                true,
            )
            .await
            .unwrap();
        }
        let reads = internal_reads() - before;
        assert!(reads <= 2.0, "{reads} bookkeeping calls for 20 requests");
        r.put_versioning("made", versions::State::Enabled)
            .await
            .unwrap();
        assert_eq!(
            r.versioning("made").await.unwrap(),
            versions::State::Enabled
        );
        let body: Body = futures::stream::iter(vec![Ok(Bytes::from_static(b"v"))]).boxed();
        let (_, id) = r
            .put_version(
                &view(),
                "made",
                "k",
                body,
                Declared::default(),
                &Attrs::default(),
                &WriteCondition::None,
            )
            .await
            .unwrap();
        assert!(
            id.is_some(),
            "the write right after enabling kept no version"
        );
    }

    #[tokio::test]
    async fn a_delete_cut_short_leaves_the_newest_copy() {
        let new = memory("new");
        let old_inner = memory("old");
        // The source's old copy (1 byte) and a client's newer write (5 bytes).
        put(old_inner.as_ref(), "k").await;
        let body: Body = futures::stream::iter(vec![Ok(Bytes::from_static(b"newer"))]).boxed();
        new.put(
            "k",
            body,
            Declared::default(),
            &Attrs::default(),
            &WriteCondition::None,
            1 << 23,
        )
        .await
        .unwrap();
        // The delete fails part-way (as when the engine dies in the middle).
        let mut old = Hooked::new(old_inner);
        old.fail_deletes = true;
        let r = router(vec![("new", new), ("old", Arc::new(old))]);
        r.delete("bkt", "k").await.unwrap_err();
        assert_eq!(
            size_of(&r, "k").await.unwrap(),
            5,
            "the older copy came back"
        );
    }

    #[tokio::test]
    async fn a_read_racing_a_move_finds_the_key() {
        let new = memory("new");
        let old_inner = memory("old");
        put(old_inner.as_ref(), "k").await;
        // The read misses `new`; just as it looks at `old`, a migration moves the key.
        let (n, o) = (new.clone(), old_inner.clone());
        let mover: Hook = Box::new(move || {
            Box::pin(async move {
                put(n.as_ref(), "k").await;
                o.delete("k").await.unwrap();
            })
        });
        let old = Hooked::new(old_inner).on_get(first(), mover);
        let r = router(vec![("new", new), ("old", Arc::new(old))]);
        assert_eq!(size_of(&r, "k").await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_member_marked_unhealthy_keeps_its_place_in_reads() {
        let new = memory("new");
        let old = memory("old");
        put(old.as_ref(), "k").await;
        let body: Body = futures::stream::iter(vec![Ok(Bytes::from_static(b"newer"))]).boxed();
        new.put(
            "k",
            body,
            Declared::default(),
            &Attrs::default(),
            &WriteCondition::None,
            1 << 23,
        )
        .await
        .unwrap();
        let r = router(vec![("new", new), ("old", old)]);
        // One failure a moment ago (a 5xx, a reset connection): `new` answers again.
        r.bucket("bkt").await.unwrap().members[0].mark_unhealthy();
        assert_eq!(size_of(&r, "k").await.unwrap(), 5, "read the older copy");
        assert!(
            r.bucket("bkt").await.unwrap().members[0].healthy(),
            "an answer heals"
        );
    }

    #[tokio::test]
    async fn a_copy_deleted_as_soon_as_it_is_made_still_succeeded() {
        let inner = memory("only");
        put(inner.as_ref(), "src").await;
        // The look at the copy (the third read: source, source, copy) comes after a
        // client already deleted it.
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = calls.clone();
        let (store, victim) = (inner.clone(), inner.clone());
        let delete: Hook =
            Box::new(move || Box::pin(async move { victim.delete("dst").await.unwrap() }));
        let when = Box::new(move || seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 1);
        let only = Hooked::new(store).on_get(when, delete);
        let r = router(vec![("only", Arc::new(only))]);
        let replace = Some(Attrs::default());
        let (out, _) = r
            .copy(
                &view(),
                "bkt",
                "src",
                &ReadConditions::default(),
                "bkt",
                "dst",
                replace,
                &WriteCondition::None,
                None,
            )
            .await
            .expect("the copy was made");
        assert!(out.etag.is_some());
        assert!(calls.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    }
}
