//! The S3 front end: s3s decodes and authenticates requests; this module maps each operation
//! onto the router and maps results and errors back. s3s types stop here.

pub mod access_log;
mod acl;
mod auth;
mod body;
mod errors;
pub mod exchange;
pub mod request_id;
mod snapshot;

use std::sync::Arc;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};

pub use acl::canonical_id;
pub use auth::{Access, AccessHook, Auth, Requester, Users, Verdict, acl_docs, decide};
pub use body::Expected;
pub use snapshot::{Live, Snapshot};

use crate::checksum;
use crate::iam;
use crate::listing::{self, Entry, ListRequest};
use crate::model::{self, Attrs, ByteRange, Error, ReadConditions, WriteCondition};
use crate::policy::{Phase, RequestView};
use crate::router::{CompletedPart as RouterPart, Router};
use crate::tagging;

/// The S3 error for a client that kept a request waiting for `limit`.
pub fn request_timeout(limit: std::time::Duration) -> s3s::S3Error {
    errors::to_s3(Error::RequestTimeout(limit))
}

/// The `S3` implementation. Each request takes one configuration snapshot and keeps it
/// (see [`Live`]).
#[derive(Clone)]
pub struct Frontend {
    live: Live,
    /// Decides what a request touches beyond its own bucket and key (the access hook
    /// decided those before the operation began).
    access: Arc<Access>,
}

impl Frontend {
    pub fn new(live: Live, access: Arc<Access>) -> Self {
        Self { live, access }
    }

    /// The router of the request's snapshot.
    fn router(&self) -> Arc<Router> {
        self.live.current().router.clone()
    }

    /// Decides PutObjectTagging, which the access hook leaves to the front end: the tags
    /// it sets (`s3:RequestObjectTag/<key>`) are in its body.
    async fn authorize_put_tagging(
        &self,
        req: &S3Request<PutObjectTaggingInput>,
        tags: &model::Tags,
    ) -> S3Result<()> {
        let snapshot = self.live.current();
        let who = requester(&snapshot, req)?;
        let (bucket, key) = (&req.input.bucket, &req.input.key);
        let version = req.input.version_id.as_deref();
        let action = match version {
            Some(_) => "s3:PutObjectVersionTagging",
            None => "s3:PutObjectTagging",
        };
        let mut keys = auth::request_tag_keys(tags);
        let existing = self
            .access
            .existing_tag_keys(&who, action, (bucket, key), version, &req.headers)
            .await?;
        keys.extend(existing);
        let mut keys: Vec<(&str, &str)> =
            keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        if req.credentials.is_some() {
            keys.push(("s3:signatureversion", "AWS4-HMAC-SHA256"));
        }
        if let Some(v) = version {
            keys.push(("s3:VersionId", v));
        }
        self.access
            .authorize(&who, action, iam::Resource::Object { bucket, key }, &keys)
            .await?;
        let principal = req.credentials.as_ref().map(|c| c.access_key.as_str());
        self.access
            .admit(
                "PutObjectTagging",
                bucket,
                key,
                &req.headers,
                who.source_ip,
                principal,
            )
            .await
    }

    /// Allows reading a copy's source, as a GetObject of its own by the requester (with
    /// the source's tags when a policy names them); of a version, a GetObjectVersion.
    async fn authorize_copy_source<T>(
        &self,
        req: &S3Request<T>,
        (src_bucket, src_key, version): (&str, &str, Option<&str>),
    ) -> S3Result<()> {
        let snapshot = self.live.current();
        let who = requester(&snapshot, req)?;
        let action = match version {
            Some(_) => "s3:GetObjectVersion",
            None => "s3:GetObject",
        };
        let existing = self
            .access
            .existing_tag_keys(&who, action, (src_bucket, src_key), version, &req.headers)
            .await?;
        let mut keys: Vec<(&str, &str)> = existing
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if let Some(v) = version {
            keys.push(("s3:VersionId", v));
        }
        let resource = iam::Resource::Object {
            bucket: src_bucket,
            key: src_key,
        };
        self.access.authorize(&who, action, resource, &keys).await?;
        self.access
            .admit(
                "CopySource",
                src_bucket,
                src_key,
                &req.headers,
                who.source_ip,
                req.credentials.as_ref().map(|c| c.access_key.as_str()),
            )
            .await
    }
}

/// The requester of a request s3s authenticated, among the users of its snapshot.
fn requester<'a, T>(snapshot: &'a Snapshot, req: &S3Request<T>) -> S3Result<Requester<'a>> {
    Access::requester(
        &snapshot.users,
        req.credentials.as_ref().map(|c| c.access_key.as_str()),
        &req.extensions,
    )
}

fn ts(t: DateTime<Utc>) -> Timestamp {
    Timestamp::from(SystemTime::from(t))
}

fn from_ts(t: &Timestamp) -> DateTime<Utc> {
    let odt: time::OffsetDateTime = t.clone().into();
    DateTime::<Utc>::from(SystemTime::from(odt))
}

fn etag(s: Option<String>) -> Option<ETag> {
    s.map(ETag::Strong)
}

fn cond_etag(c: &ETagCondition) -> String {
    match c {
        ETagCondition::Any => "*".to_owned(),
        ETagCondition::ETag(e) => e.value().to_owned(),
    }
}

fn read_conditions(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> ReadConditions {
    ReadConditions {
        if_match: if_match.map(cond_etag),
        if_none_match: if_none_match.map(cond_etag),
        if_modified_since: if_modified_since.map(from_ts),
        if_unmodified_since: if_unmodified_since.map(from_ts),
    }
}

fn write_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> model::Result<WriteCondition> {
    match (if_match, if_none_match) {
        (Some(_), Some(_)) => Err(Error::NotImplemented(
            "If-Match and If-None-Match together are not supported".into(),
        )),
        (None, Some(ETagCondition::Any)) => Ok(WriteCondition::IfAbsent),
        (None, Some(_)) => Err(Error::NotImplemented(
            "If-None-Match on PUT only supports '*'".into(),
        )),
        (Some(c), None) => Ok(WriteCondition::IfMatch(cond_etag(c))),
        (None, None) => Ok(WriteCondition::None),
    }
}

fn byte_range(r: Option<&Range>) -> Option<ByteRange> {
    match r? {
        Range::Int {
            first,
            last: Some(last),
        } => Some(ByteRange::Bounded {
            first: *first,
            last: *last,
        }),
        Range::Int { first, last: None } => Some(ByteRange::From(*first)),
        Range::Suffix { length } => Some(ByteRange::Suffix(*length)),
    }
}

/// `aws-chunked` is how the body travelled, not how the object is encoded.
fn stored_encoding(e: Option<String>) -> Option<String> {
    let e = e?;
    let kept: Vec<&str> = e
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    (!kept.is_empty()).then(|| kept.join(","))
}

fn attrs(
    content_type: Option<String>,
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    content_language: Option<String>,
    metadata: Option<Metadata>,
) -> Attrs {
    Attrs {
        content_type,
        cache_control,
        content_disposition,
        content_encoding: stored_encoding(content_encoding),
        content_language,
        metadata: metadata
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect(),
        tags: model::Tags::new(),
        acl: None,
    }
}

/// `x-amz-tagging-count`: how many tags the object has, when it has some.
fn tag_count(info: &model::ObjectInfo) -> Option<i32> {
    let n = info.tag_count();
    (n > 0).then(|| i32::try_from(n).unwrap_or(i32::MAX))
}

fn metadata(a: &Attrs) -> Option<Metadata> {
    let m: Metadata = checksum::client_metadata(a)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!m.is_empty()).then_some(m)
}

/// The checksum a GET or HEAD answers: the object's, when the request asks for it
/// (`x-amz-checksum-mode: ENABLED`) and reads the whole object (a range's bytes are not
/// what the checksum covers).
fn checksum_answer(mode: Option<&ChecksumMode>, ranged: bool, a: &Attrs) -> Checksum {
    let enabled = mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case(ChecksumMode::ENABLED));
    body::answered(
        checksum::Stored::of(a)
            .filter(|_| enabled && !ranged)
            .as_ref(),
    )
}

/// Sets the checksum fields of an s3s output (they share their names) from `c`, a
/// [`Checksum`], with its type when asked.
macro_rules! set_checksums {
    ($out:expr, $c:expr) => {{
        let c = $c;
        $out.checksum_crc32 = c.checksum_crc32;
        $out.checksum_crc32c = c.checksum_crc32c;
        $out.checksum_sha1 = c.checksum_sha1;
        $out.checksum_sha256 = c.checksum_sha256;
        $out.checksum_crc64nvme = c.checksum_crc64nvme;
    }};
    ($out:expr, $c:expr, with_type) => {{
        let c = $c;
        $out.checksum_type = c.checksum_type.clone();
        set_checksums!($out, c);
    }};
}

/// The algorithm a request names (`x-amz-checksum-algorithm`).
fn checksum_algorithm(a: Option<&ChecksumAlgorithm>) -> S3Result<Option<checksum::Algorithm>> {
    a.map(|a| {
        checksum::Algorithm::parse(a.as_str()).ok_or_else(|| {
            s3s::s3_error!(
                InvalidRequest,
                "Checksum algorithm provided is unsupported: {}",
                a.as_str()
            )
        })
    })
    .transpose()
}

/// The request as the policy of `bucket` sees it: with the headers its configuration asks
/// for, and the tags it sets.
fn request_view(
    router: &Router,
    bucket: &str,
    headers: &http::HeaderMap,
    source_ip: Option<std::net::IpAddr>,
    principal: Option<&str>,
    operation: std::borrow::Cow<'static, str>,
) -> RequestView {
    let wanted = router.policy_headers(bucket);
    RequestView {
        phase: Phase::of(&operation),
        operation,
        principal: principal.map(str::to_owned),
        source_ip: source_ip.map(|ip| ip.to_string()),
        headers: if wanted.is_empty() {
            Vec::new()
        } else {
            crate::policy::select_headers(headers, wanted)
        },
        tags: crate::policy::parse_tagging(
            headers.get("x-amz-tagging").and_then(|v| v.to_str().ok()),
        ),
    }
}

/// [`request_view`] of an S3 request on `bucket`.
fn view_of<T>(
    router: &Router,
    req: &S3Request<T>,
    bucket: &str,
    operation: &'static str,
) -> RequestView {
    request_view(
        router,
        bucket,
        &req.headers,
        req.extensions.get::<ClientAddr>().map(|a| a.0.ip()),
        req.credentials.as_ref().map(|c| c.access_key.as_str()),
        operation.into(),
    )
}

/// The client's address, put in request extensions by the server.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::SocketAddr);

/// The request came over TLS (the `aws:SecureTransport` condition key): put in the
/// extensions of requests on TLS connections by the server; absent on plain ones. A unit
/// marker, so that marking a request costs no allocation.
#[derive(Debug, Clone, Copy)]
pub struct SecureTransport;

/// A request's `versionId` on a gateway without versioning: the one version every object
/// has is `null` (as AWS names the version of an object in an unversioned bucket), so
/// `null` is the object itself and any other id names a version that cannot exist. Serving
/// the current object for it would answer a question the client did not ask.
fn unversioned(version_id: Option<&str>) -> S3Result<()> {
    match version_id {
        None | Some("null") => Ok(()),
        Some(_) => Err(s3s::s3_error!(
            InvalidArgument,
            "Invalid version id specified (this operation takes an object's current version only)"
        )),
    }
}

/// The attributes GetObjectAttributes can be asked for.
const OBJECT_ATTRIBUTE_NAMES: [&str; 5] = [
    ObjectAttributes::CHECKSUM,
    ObjectAttributes::ETAG,
    ObjectAttributes::OBJECT_PARTS,
    ObjectAttributes::OBJECT_SIZE,
    ObjectAttributes::STORAGE_CLASS,
];

/// A copy's source bucket, key and version id; `None` for an access point or outpost
/// source, which the gateway does not support.
fn copy_source(src: &CopySource) -> S3Result<Option<(String, String, Option<String>)>> {
    match src {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => Ok(Some((
            bucket.to_string(),
            key.to_string(),
            version_id.as_deref().map(str::to_owned),
        ))),
        _ => Ok(None),
    }
}

const UNSUPPORTED_COPY_SOURCE: &str = "access point and outpost copy sources are not supported";

fn parse_copy_range(r: Option<&str>) -> S3Result<Option<ByteRange>> {
    let Some(r) = r else { return Ok(None) };
    let bad = || {
        s3s::s3_error!(
            InvalidArgument,
            "x-amz-copy-source-range must be bytes=first-last"
        )
    };
    let spec = r.strip_prefix("bytes=").ok_or_else(bad)?;
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let first: u64 = a.parse().map_err(|_| bad())?;
    let last: u64 = b.parse().map_err(|_| bad())?;
    if last < first {
        return Err(bad());
    }
    Ok(Some(ByteRange::Bounded { first, last }))
}

/// The checksums a body was verified against (trailer ones included), else the ones its
/// headers declared.
fn take_verified(verified: &std::sync::Mutex<Option<Checksum>>, declared: Checksum) -> Checksum {
    verified
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or(declared)
}

fn expected(
    content_md5: Option<String>,
    checksums: Checksum,
    declared_len: Option<i64>,
    headers: &http::HeaderMap,
) -> S3Result<Expected> {
    let e = Expected {
        content_md5,
        checksums,
        trailer: Vec::new(),
        declared_len: declared_len.and_then(|l| u64::try_from(l).ok()),
        verified: Default::default(),
        keep: Default::default(),
    }
    .with_trailer(headers);
    e.check_format().map_err(errors::to_s3)?;
    Ok(e)
}

/// Runs one operation, naming it and its bucket in the request's span (so that what the
/// engine logs while handling it says what the request was), and maps its error, telling
/// the request's exchange the cause: the access log line, written when the answer ends,
/// carries it.
async fn traced<T>(
    op: &'static str,
    bucket: &str,
    fut: impl Future<Output = model::Result<T>>,
) -> S3Result<T> {
    let span = tracing::Span::current();
    span.record("op", op);
    span.record("bucket", bucket);
    match fut.await {
        Ok(v) => Ok(v),
        Err(e) => {
            let message = e.to_string();
            let s3 = errors::to_s3(e);
            exchange::Exchange::with_current(|x| x.set_error(s3.code().as_str(), &message));
            Err(s3)
        }
    }
}

/// `501 NotImplemented` for `unsupported`, once `checks` have passed: what S3 looks at
/// before it gets to the request's arguments (the bucket exists, the key or upload named
/// does), so that a client asking about a missing bucket hears that, as from S3.
async fn unsupported(
    op: &'static str,
    bucket: &str,
    checks: impl Future<Output = model::Result<()>>,
    unsupported: Error,
) -> s3s::S3Error {
    let answer: S3Result<std::convert::Infallible> = traced(op, bucket, async {
        checks.await?;
        Err(unsupported)
    })
    .await;
    match answer {
        Err(e) => e,
        Ok(never) => match never {},
    }
}

/// The operations [`Frontend`] answers itself. s3s answers every other one `501
/// NotImplemented` (the `S3` trait's defaults) without looking at the request, so the
/// access hook first checks the bucket such a request names ([`AccessHook`]).
pub fn implements(op: &str) -> bool {
    matches!(
        op,
        "ListBuckets"
            | "HeadBucket"
            | "GetBucketLocation"
            | "CreateBucket"
            | "DeleteBucket"
            | "PutBucketPolicy"
            | "GetBucketPolicy"
            | "DeleteBucketPolicy"
            | "GetBucketPolicyStatus"
            | "GetBucketAcl"
            | "PutBucketAcl"
            | "GetObjectAcl"
            | "PutObjectAcl"
            | "GetBucketOwnershipControls"
            | "PutBucketOwnershipControls"
            | "DeleteBucketOwnershipControls"
            | "GetPublicAccessBlock"
            | "PutPublicAccessBlock"
            | "DeletePublicAccessBlock"
            | "PutObject"
            | "PostObject"
            | "GetObject"
            | "HeadObject"
            | "GetObjectAttributes"
            | "DeleteObject"
            | "DeleteObjects"
            | "CopyObject"
            | "ListObjectsV2"
            | "ListObjects"
            | "CreateMultipartUpload"
            | "UploadPart"
            | "UploadPartCopy"
            | "CompleteMultipartUpload"
            | "AbortMultipartUpload"
            | "ListParts"
            | "ListMultipartUploads"
            | "PutObjectTagging"
            | "GetObjectTagging"
            | "DeleteObjectTagging"
            | "PutBucketVersioning"
            | "GetBucketVersioning"
            | "ListObjectVersions"
    )
}

fn summary_to_object(o: model::ObjectSummary) -> Object {
    Object {
        key: Some(o.key),
        size: Some(i64::try_from(o.size).unwrap_or(i64::MAX)),
        e_tag: etag(o.etag),
        last_modified: Some(ts(o.last_modified)),
        storage_class: Some(ObjectStorageClass::from_static(
            ObjectStorageClass::STANDARD,
        )),
        ..Default::default()
    }
}

fn url_encode(s: &str) -> String {
    // S3 encodes like a URI component but keeps '/'.
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

fn check_encoding(e: Option<&EncodingType>) -> S3Result<bool> {
    match e {
        None => Ok(false),
        Some(e) if e.as_str() == EncodingType::URL => Ok(true),
        Some(_) => Err(s3s::s3_error!(
            InvalidArgument,
            "Invalid Encoding Method specified in Request"
        )),
    }
}

fn max_keys(m: Option<i32>) -> S3Result<usize> {
    match m {
        None => Ok(1000),
        Some(m) if m < 0 => Err(s3s::s3_error!(
            InvalidArgument,
            "max-keys must be non-negative"
        )),
        Some(m) => Ok(usize::try_from(m).unwrap_or(1000).min(1000)),
    }
}

struct Listed {
    contents: Option<Vec<Object>>,
    prefixes: Option<Vec<CommonPrefix>>,
    count: usize,
}

fn split_entries(entries: Vec<Entry>, encode: bool) -> Listed {
    let enc = |s: String| if encode { url_encode(&s) } else { s };
    let count = entries.len();
    let mut contents = Vec::new();
    let mut prefixes = Vec::new();
    for e in entries {
        match e {
            Entry::Object(mut o) => {
                o.key = enc(o.key);
                contents.push(summary_to_object(o));
            }
            Entry::Prefix(p) => prefixes.push(CommonPrefix {
                prefix: Some(enc(p)),
            }),
        }
    }
    Listed {
        contents: (!contents.is_empty()).then_some(contents),
        prefixes: (!prefixes.is_empty()).then_some(prefixes),
        count,
    }
}

#[async_trait::async_trait]
impl S3 for Frontend {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let snapshot = self.live.current();
        let owner = acl::requester_owner(&requester(&snapshot, &req)?);
        let router = snapshot.router.clone();
        let buckets = traced("ListBuckets", "", router.buckets())
            .await?
            .iter()
            .map(|b| Bucket {
                name: Some(b.name.clone()),
                creation_date: Some(ts(b.created)),
                bucket_region: None,
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner),
            ..Default::default()
        }))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let router = self.router();
        let bucket = req.input.bucket;
        traced("HeadBucket", &bucket, async {
            router.bucket(&bucket).await.map(|_| ())
        })
        .await?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(router.config.server.region.clone()),
            ..Default::default()
        }))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let router = self.router();
        let bucket = req.input.bucket;
        traced("GetBucketLocation", &bucket, async {
            router.bucket(&bucket).await.map(|_| ())
        })
        .await?;
        let region = &router.config.server.region;
        // us-east-1 is reported as an empty constraint, as AWS does.
        let constraint =
            (region != "us-east-1").then(|| BucketLocationConstraint::from(region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint: constraint,
        }))
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let snapshot = self.live.current();
        let router = snapshot.router.clone();
        let who = requester(&snapshot, &req)?;
        let creator = who.user.map(|u| u.name.as_str());
        let settings = acl::create_settings(&snapshot, &req.input, &req.headers, creator)?;
        let bucket = &req.input.bucket;
        traced("CreateBucket", bucket, async {
            router.create_bucket(bucket, creator).await?;
            match settings {
                Some(s) => router.set_bucket_acl(bucket, &s).await,
                None => Ok(()),
            }
        })
        .await?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{bucket}")),
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let router = self.router();
        let bucket = req.input.bucket;
        traced("DeleteBucket", &bucket, router.delete_bucket(&bucket)).await?;
        Ok(S3Response::new(DeleteBucketOutput::default()))
    }

    async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        let router = self.router();
        let input = req.input;
        traced(
            "PutBucketPolicy",
            &input.bucket,
            router.put_bucket_policy(&input.bucket, &input.policy),
        )
        .await?;
        Ok(S3Response::new(PutBucketPolicyOutput::default()))
    }

    async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        let router = self.router();
        let bucket = req.input.bucket;
        let policy = traced("GetBucketPolicy", &bucket, async {
            router
                .bucket_policy(&bucket)
                .await?
                .ok_or(Error::NoSuchBucketPolicy)
        })
        .await?;
        Ok(S3Response::new(GetBucketPolicyOutput {
            policy: Some(policy.source().to_owned()),
        }))
    }

    async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        let router = self.router();
        let bucket = req.input.bucket;
        traced(
            "DeleteBucketPolicy",
            &bucket,
            router.delete_bucket_policy(&bucket),
        )
        .await?;
        Ok(S3Response::new(DeleteBucketPolicyOutput::default()))
    }

    async fn get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        acl::get_bucket_acl(self, req).await
    }

    async fn put_bucket_acl(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        acl::put_bucket_acl(self, req).await
    }

    async fn get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        acl::get_object_acl(self, req).await
    }

    async fn put_object_acl(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        acl::put_object_acl(self, req).await
    }

    async fn get_bucket_ownership_controls(
        &self,
        req: S3Request<GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
        acl::get_bucket_ownership_controls(self, req).await
    }

    async fn put_bucket_ownership_controls(
        &self,
        req: S3Request<PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
        acl::put_bucket_ownership_controls(self, req).await
    }

    async fn delete_bucket_ownership_controls(
        &self,
        req: S3Request<DeleteBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
        acl::delete_bucket_ownership_controls(self, req).await
    }

    async fn get_public_access_block(
        &self,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        acl::get_public_access_block(self, req).await
    }

    async fn put_public_access_block(
        &self,
        req: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        acl::put_public_access_block(self, req).await
    }

    async fn delete_public_access_block(
        &self,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        acl::delete_public_access_block(self, req).await
    }

    async fn get_bucket_policy_status(
        &self,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        let router = self.router();
        let bucket = req.input.bucket;
        let (policy, block) = traced("GetBucketPolicyStatus", &bucket, async {
            Ok((
                router.bucket_policy(&bucket).await?,
                router.public_access_block(&bucket).await?,
            ))
        })
        .await?;
        // RestrictPublicBuckets takes from a public policy what it gives the public.
        let restricted = block.is_some_and(|b| b.restrict_public_buckets);
        Ok(S3Response::new(GetBucketPolicyStatusOutput {
            policy_status: Some(PolicyStatus {
                is_public: Some(!restricted && policy.is_some_and(|p| p.is_public())),
            }),
        }))
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let router = self.router();
        let input = req.input;
        let config = input.versioning_configuration;
        if config
            .mfa_delete
            .as_ref()
            .is_some_and(|m| m.as_str() == MFADelete::ENABLED)
        {
            let checks = async { router.bucket(&input.bucket).await.map(|_| ()) };
            let e = Error::NotImplemented("MFA delete is not supported".into());
            return Err(unsupported("PutBucketVersioning", &input.bucket, checks, e).await);
        }
        let state = config
            .status
            .as_ref()
            .and_then(|s| crate::versions::State::parse(s.as_str()))
            .ok_or_else(|| {
                s3s::s3_error!(
                    MalformedXML,
                    "The XML you provided was not well-formed or did not validate against our published schema (Status must be Enabled or Suspended)"
                )
            })?;
        traced(
            "PutBucketVersioning",
            &input.bucket,
            router.put_versioning(&input.bucket, state),
        )
        .await?;
        Ok(S3Response::new(PutBucketVersioningOutput::default()))
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let router = self.router();
        let bucket = req.input.bucket;
        let state = traced("GetBucketVersioning", &bucket, router.versioning(&bucket)).await?;
        Ok(S3Response::new(GetBucketVersioningOutput {
            status: state
                .as_str()
                .map(|s| BucketVersioningStatus::from(s.to_owned())),
            ..Default::default()
        }))
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let router = self.router();
        let input = req.input;
        let encode = check_encoding(input.encoding_type.as_ref())?;
        let max = max_keys(input.max_keys)?;
        if input.version_id_marker.is_some() && input.key_marker.is_none() {
            return Err(s3s::s3_error!(
                InvalidArgument,
                "A version-id marker cannot be specified without a key marker."
            ));
        }
        let request = crate::router::VersionListRequest {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone(),
            key_marker: input.key_marker.clone(),
            version_id_marker: input.version_id_marker.clone(),
            max_keys: max,
        };
        let page = traced(
            "ListObjectVersions",
            &input.bucket,
            router.list_versions(&input.bucket, &request),
        )
        .await?;
        let enc = |s: String| if encode { url_encode(&s) } else { s };
        let mut versions = Vec::new();
        let mut markers = Vec::new();
        let mut prefixes = Vec::new();
        for e in page.entries {
            match e {
                crate::router::VersionEntry::Prefix(p) => prefixes.push(CommonPrefix {
                    prefix: Some(enc(p)),
                }),
                crate::router::VersionEntry::Version(r) if r.marker => {
                    markers.push(DeleteMarkerEntry {
                        is_latest: Some(r.latest),
                        key: Some(enc(r.key)),
                        last_modified: Some(ts(r.last_modified)),
                        owner: None,
                        version_id: Some(r.version_id),
                    })
                }
                crate::router::VersionEntry::Version(r) => versions.push(ObjectVersion {
                    e_tag: etag(r.etag),
                    is_latest: Some(r.latest),
                    key: Some(enc(r.key)),
                    last_modified: Some(ts(r.last_modified)),
                    size: Some(i64::try_from(r.size).unwrap_or(i64::MAX)),
                    storage_class: Some(ObjectVersionStorageClass::from_static(
                        ObjectVersionStorageClass::STANDARD,
                    )),
                    version_id: Some(r.version_id),
                    ..Default::default()
                }),
            }
        }
        let (next_key, next_version) = match page.next {
            Some((k, v)) => (Some(enc(k)), v),
            None => (None, None),
        };
        Ok(S3Response::new(ListObjectVersionsOutput {
            common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
            delete_markers: (!markers.is_empty()).then_some(markers),
            delimiter: input.delimiter.map(enc),
            encoding_type: input.encoding_type,
            is_truncated: Some(page.truncated),
            key_marker: Some(input.key_marker.map(enc).unwrap_or_default()),
            max_keys: Some(i32::try_from(max).unwrap_or(1000)),
            name: Some(input.bucket),
            next_key_marker: next_key,
            next_version_id_marker: next_version,
            prefix: Some(input.prefix.map(enc).unwrap_or_default()),
            version_id_marker: Some(input.version_id_marker.unwrap_or_default()),
            versions: (!versions.is_empty()).then_some(versions),
            ..Default::default()
        }))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let router = self.router();
        let view = view_of(&router, &req, &req.input.bucket, "PutObject");
        let canned = req.input.acl.as_ref().map(ObjectCannedACL::as_str);
        // Boxed: a write's future stays small without ACLs.
        let object_acl = Box::pin(acl::write_acl(self, &req, &req.input.bucket, canned)).await?;
        let headers = req.headers;
        let trailers = req.trailing_headers;
        let input = req.input;
        let cond = match write_condition(input.if_match.as_ref(), input.if_none_match.as_ref()) {
            Ok(cond) => cond,
            Err(e) => {
                let checks = async {
                    router.bucket(&input.bucket).await?;
                    crate::backends::check_key(&input.key)
                };
                return Err(unsupported("PutObject", &input.bucket, checks, e).await);
            }
        };
        let checksums = Checksum {
            checksum_crc32: input.checksum_crc32.clone(),
            checksum_crc32c: input.checksum_crc32c.clone(),
            checksum_sha1: input.checksum_sha1.clone(),
            checksum_sha256: input.checksum_sha256.clone(),
            checksum_crc64nvme: input.checksum_crc64nvme.clone(),
            ..Default::default()
        };
        let expected = expected(
            input.content_md5,
            checksums.clone(),
            input.content_length,
            &headers,
        )?;
        let limit = router.config.server.max_put_size;
        if input
            .content_length
            .is_some_and(|l| u64::try_from(l).unwrap_or(0) > limit)
        {
            return Err(errors::to_s3(Error::TooLarge(limit)));
        }
        let mut a = attrs(
            input.content_type,
            input.cache_control,
            input.content_disposition,
            input.content_encoding,
            input.content_language,
            input.metadata,
        );
        a.tags = tagging::of_request(&headers).map_err(errors::to_s3)?;
        a.acl = object_acl;
        let blob = input.body.unwrap_or_else(|| {
            StreamingBlob::wrap(futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>())
        });
        let declared = model::Declared {
            checksum: expected.keep.clone(),
            ..model::Declared::of_len(expected.declared_len)
        };
        let verified = expected.verified.clone();
        let body = body::verified(blob, expected, trailers, &router.config.server);
        let bucket = input.bucket;
        let key = input.key;
        let (out, version_id) = traced(
            "PutObject",
            &bucket,
            router.put_version(&view, &bucket, &key, body, declared, &a, &cond),
        )
        .await?;
        // The checksums the body was checked against, from headers or the trailer; a
        // single PUT's checksum is of the whole object.
        let checked = take_verified(&verified, checksums);
        let any = body::any_checksum(&checked);
        Ok(S3Response::new(PutObjectOutput {
            e_tag: etag(out.etag),
            checksum_crc32: checked.checksum_crc32,
            checksum_crc32c: checked.checksum_crc32c,
            checksum_sha1: checked.checksum_sha1,
            checksum_sha256: checked.checksum_sha256,
            checksum_crc64nvme: checked.checksum_crc64nvme,
            checksum_type: any.then(|| ChecksumType::from_static(ChecksumType::FULL_OBJECT)),
            version_id,
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let router = self.router();
        let view = view_of(&router, &req, &req.input.bucket, "GetObject");
        let input = req.input;
        let cond = read_conditions(
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        );
        let vid = input.version_id.as_deref();
        if input.part_number.is_some() {
            let checks = async {
                let head =
                    router.get_version(&view, &input.bucket, &input.key, vid, None, &cond, true);
                head.await.map(|_| ())
            };
            let e = Error::NotImplemented("GetObject with partNumber is not supported".into());
            return Err(unsupported("GetObject", &input.bucket, checks, e).await);
        }
        let range = byte_range(input.range.as_ref());
        let (outcome, stream, version_id) = traced(
            "GetObject",
            &input.bucket,
            router.get_version(&view, &input.bucket, &input.key, vid, range, &cond, false),
        )
        .await?;
        let info = outcome.info;
        let tags = tag_count(&info);
        let c = checksum_answer(input.checksum_mode.as_ref(), range.is_some(), &info.attrs);
        let len = outcome.range.end - outcome.range.start;
        let content_range = range.map(|_| {
            format!(
                "bytes {}-{}/{}",
                outcome.range.start,
                outcome.range.end.saturating_sub(1),
                info.size
            )
        });
        let body = stream.map(|s| {
            StreamingBlob::wrap(sync_wrapper::SyncStream::new(
                s.map(|r| r.map_err(std::io::Error::other)),
            ))
        });
        let mut out = GetObjectOutput {
            body,
            content_length: Some(i64::try_from(len).unwrap_or(i64::MAX)),
            content_range,
            accept_ranges: Some("bytes".into()),
            e_tag: etag(info.etag),
            last_modified: Some(ts(info.last_modified)),
            metadata: metadata(&info.attrs),
            content_type: info.attrs.content_type,
            cache_control: info.attrs.cache_control,
            content_disposition: info.attrs.content_disposition,
            content_encoding: info.attrs.content_encoding,
            tag_count: tags,
            content_language: info.attrs.content_language,
            version_id,
            ..Default::default()
        };
        set_checksums!(out, c, with_type);
        Ok(S3Response::new(out))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let router = self.router();
        let view = view_of(&router, &req, &req.input.bucket, "HeadObject");
        let input = req.input;
        let cond = read_conditions(
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        );
        let vid = input.version_id.as_deref();
        if input.part_number.is_some() {
            let checks = async {
                let head =
                    router.get_version(&view, &input.bucket, &input.key, vid, None, &cond, true);
                head.await.map(|_| ())
            };
            let e = Error::NotImplemented("HeadObject with partNumber is not supported".into());
            return Err(unsupported("HeadObject", &input.bucket, checks, e).await);
        }
        let (outcome, _, version_id) = traced(
            "HeadObject",
            &input.bucket,
            router.get_version(&view, &input.bucket, &input.key, vid, None, &cond, true),
        )
        .await?;
        let info = outcome.info;
        let tags = tag_count(&info);
        let c = checksum_answer(input.checksum_mode.as_ref(), false, &info.attrs);
        let mut out = HeadObjectOutput {
            content_length: Some(i64::try_from(info.size).unwrap_or(i64::MAX)),
            accept_ranges: Some("bytes".into()),
            e_tag: etag(info.etag),
            last_modified: Some(ts(info.last_modified)),
            metadata: metadata(&info.attrs),
            content_type: info.attrs.content_type,
            cache_control: info.attrs.cache_control,
            content_disposition: info.attrs.content_disposition,
            content_encoding: info.attrs.content_encoding,
            content_language: info.attrs.content_language,
            version_id,
            ..Default::default()
        };
        set_checksums!(out, c, with_type);
        let mut resp = S3Response::new(out);
        // Not in S3's HeadObject model, but sent by S3 (as on GET).
        if let Some(n) = tags {
            resp.headers
                .insert("x-amz-tagging-count", http::HeaderValue::from(n));
        }
        Ok(resp)
    }

    /// What a HEAD tells, as XML: ETag, size, storage class, the object's checksum when it
    /// keeps one, and for a multipart upload its number of parts (from its `-N` ETag). The
    /// parts themselves are not kept once the upload is complete, so `Parts` is left out,
    /// as S3 leaves it out of an object uploaded without checksums.
    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        let router = self.router();
        let view = view_of(&router, &req, &req.input.bucket, "GetObjectAttributes");
        let input = req.input;
        let mut wanted = Vec::with_capacity(input.object_attributes.len());
        for a in &input.object_attributes {
            // One header may list several, comma-separated.
            for name in a.as_str().split(',').map(str::trim) {
                if !OBJECT_ATTRIBUTE_NAMES.contains(&name) {
                    return Err(s3s::s3_error!(
                        InvalidArgument,
                        "Invalid attribute name specified: {name:?}"
                    ));
                }
                wanted.push(name.to_owned());
            }
        }
        if wanted.is_empty() {
            return Err(s3s::s3_error!(
                InvalidArgument,
                "x-amz-object-attributes names no attribute"
            ));
        }
        if let Some(m) = input.max_parts
            && m < 0
        {
            return Err(s3s::s3_error!(
                InvalidArgument,
                "max-parts must not be negative"
            ));
        }
        let (outcome, _, version_id) = traced(
            "GetObjectAttributes",
            &input.bucket,
            router.get_version(
                &view,
                &input.bucket,
                &input.key,
                input.version_id.as_deref(),
                None,
                &ReadConditions::default(),
                true,
            ),
        )
        .await?;
        let info = outcome.info;
        let want = |name: &str| wanted.iter().any(|w| w == name);
        let parts = info
            .etag
            .as_deref()
            .filter(|e| crate::backends::is_multipart_etag(e))
            .and_then(|e| e.rsplit_once('-'))
            .and_then(|(_, n)| n.parse::<i32>().ok());
        Ok(S3Response::new(GetObjectAttributesOutput {
            e_tag: etag(info.etag.clone()).filter(|_| want(ObjectAttributes::ETAG)),
            last_modified: Some(ts(info.last_modified)),
            object_size: want(ObjectAttributes::OBJECT_SIZE)
                .then(|| i64::try_from(info.size).unwrap_or(i64::MAX)),
            storage_class: want(ObjectAttributes::STORAGE_CLASS)
                .then(|| StorageClass::from_static(StorageClass::STANDARD)),
            checksum: checksum::Stored::of(&info.attrs)
                .filter(|_| want(ObjectAttributes::CHECKSUM))
                .map(|c| body::answered(Some(&c))),
            object_parts: parts
                .filter(|_| want(ObjectAttributes::OBJECT_PARTS))
                .map(|n| GetObjectAttributesParts {
                    total_parts_count: Some(n),
                    part_number_marker: input.part_number_marker,
                    max_parts: input.max_parts,
                    is_truncated: Some(false),
                    ..Default::default()
                }),
            version_id,
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let router = self.router();
        let input = req.input;
        let (version_id, marker) = traced(
            "DeleteObject",
            &input.bucket,
            router.delete_version(&input.bucket, &input.key, input.version_id.as_deref()),
        )
        .await?;
        Ok(S3Response::new(DeleteObjectOutput {
            delete_marker: marker.then_some(true),
            version_id,
            ..Default::default()
        }))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let snapshot = self.live.current();
        let router = snapshot.router.clone();
        let who = requester(&snapshot, &req)?;
        let principal = req.credentials.as_ref().map(|c| c.access_key.as_str());
        let input = req.input;
        if input.delete.objects.len() > 1000 {
            return Err(s3s::s3_error!(
                MalformedXML,
                "DeleteObjects accepts at most 1000 keys"
            ));
        }
        traced("DeleteObjects", &input.bucket, async {
            router.bucket(&input.bucket).await.map(|_| ())
        })
        .await?;
        let quiet = input.delete.quiet.unwrap_or(false);
        let bucket = input.bucket.clone();
        // Each key is a DeleteObject of its own: a key the requester may not delete is
        // answered AccessDenied in the list, and the others go ahead, as in S3.
        let mut allowed = Vec::with_capacity(input.delete.objects.len());
        for o in input.delete.objects {
            let resource = iam::Resource::Object {
                bucket: &bucket,
                key: &o.key,
            };
            let (action, keys) = match o.version_id.as_deref() {
                Some(v) => ("s3:DeleteObjectVersion", vec![("s3:VersionId", v)]),
                None => ("s3:DeleteObject", Vec::new()),
            };
            let verdict = match self.access.authorize(&who, action, resource, &keys).await {
                Ok(()) => {
                    self.access
                        .admit(
                            "DeleteObjects",
                            &bucket,
                            &o.key,
                            &req.headers,
                            who.source_ip,
                            principal,
                        )
                        .await
                }
                Err(denied) => Err(denied),
            };
            allowed.push((o, verdict));
        }
        let results = futures::stream::iter(allowed)
            .map(|(o, verdict)| {
                let router = router.clone();
                let bucket = bucket.clone();
                async move {
                    let r = if let Err(denied) = verdict {
                        Err(denied)
                    } else {
                        router
                            .delete_version(&bucket, &o.key, o.version_id.as_deref())
                            .await
                            .map_err(errors::to_s3)
                    };
                    (o.key, o.version_id, r)
                }
            })
            .buffered(16)
            .collect::<Vec<_>>()
            .await;
        let mut deleted = Vec::new();
        let mut errs = Vec::new();
        for (key, asked, r) in results {
            match r {
                // As S3: a delete that made a marker names it as DeleteMarkerVersionId; one
                // that removed a version echoes the version asked for.
                Ok((made, marker)) if !quiet => deleted.push(DeletedObject {
                    key: Some(key),
                    delete_marker: marker.then_some(true),
                    delete_marker_version_id: if marker { made } else { None },
                    version_id: asked,
                }),
                Ok(_) => {}
                Err(s3) => {
                    errs.push(s3s::dto::Error {
                        key: Some(key),
                        code: Some(s3.code().as_str().to_owned()),
                        message: s3.message().map(str::to_owned),
                        version_id: asked,
                    });
                }
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: (!deleted.is_empty()).then_some(deleted),
            errors: (!errs.is_empty()).then_some(errs),
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let router = self.router();
        let view = view_of(&router, &req, &req.input.bucket, "CopyObject");
        let canned = req.input.acl.as_ref().map(ObjectCannedACL::as_str);
        // Boxed: a write's future stays small without ACLs.
        let object_acl = Box::pin(acl::write_acl(self, &req, &req.input.bucket, canned)).await?;
        let Some((src_bucket, src_key, src_version)) = copy_source(&req.input.copy_source)? else {
            let bucket = &req.input.bucket;
            let checks = async { router.bucket(bucket).await.map(|_| ()) };
            let e = Error::NotImplemented(UNSUPPORTED_COPY_SOURCE.into());
            return Err(unsupported("CopyObject", bucket, checks, e).await);
        };
        // Reading the source is a GetObject of its own, whoever asks.
        self.authorize_copy_source(&req, (&src_bucket, &src_key, src_version.as_deref()))
            .await?;
        let replace_tags = match req
            .input
            .tagging_directive
            .as_ref()
            .map(TaggingDirective::as_str)
        {
            None | Some(TaggingDirective::COPY) => None,
            Some(TaggingDirective::REPLACE) => {
                Some(tagging::of_request(&req.headers).map_err(errors::to_s3)?)
            }
            Some(other) => {
                return Err(s3s::s3_error!(
                    InvalidArgument,
                    "Unknown tagging directive {other}"
                ));
            }
        };
        let input = req.input;
        let src_cond = read_conditions(
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
        );
        let replace = match input
            .metadata_directive
            .as_ref()
            .map(MetadataDirective::as_str)
        {
            None | Some(MetadataDirective::COPY) => None,
            Some(MetadataDirective::REPLACE) => Some(attrs(
                input.content_type,
                input.cache_control,
                input.content_disposition,
                input.content_encoding,
                input.content_language,
                input.metadata,
            )),
            Some(other) => {
                return Err(s3s::s3_error!(
                    InvalidArgument,
                    "Unknown metadata directive {other}"
                ));
            }
        };
        let bucket = input.bucket;
        let fut = router.copy_version(
            &view,
            (&src_bucket, &src_key, src_version.as_deref()),
            &src_cond,
            (&bucket, &input.key),
            (replace, replace_tags),
            &WriteCondition::None,
            checksum_algorithm(input.checksum_algorithm.as_ref())?,
            object_acl,
        );
        let (out, modified, src_version, version_id) = traced("CopyObject", &bucket, async {
            fut.await.map_err(|e| match e {
                // A failed copy-source condition is a 412 even for If-None-Match.
                Error::NotModified => Error::Precondition("x-amz-copy-source-if-none-match".into()),
                other => other,
            })
        })
        .await?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: etag(out.etag),
                last_modified: Some(ts(modified)),
                ..Default::default()
            }),
            copy_source_version_id: src_version,
            version_id,
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let router = self.router();
        let input = req.input;
        let encode = check_encoding(input.encoding_type.as_ref())?;
        let max = max_keys(input.max_keys)?;
        let token_after = match &input.continuation_token {
            Some(t) => Some(listing::decode_token(t).map_err(errors::to_s3)?),
            None => None,
        };
        let after = match (token_after, input.start_after.clone()) {
            (Some(t), Some(s)) => Some(t.max(s)),
            (t, s) => t.or(s),
        };
        let lr = ListRequest {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
            after,
            max_keys: max,
        };
        let page = traced(
            "ListObjectsV2",
            &input.bucket,
            router.list(&input.bucket, &lr),
        )
        .await?;
        let next = page.next.as_deref().map(listing::encode_token);
        let listed = split_entries(page.entries, encode);
        let enc = |s: Option<String>| if encode { s.map(|s| url_encode(&s)) } else { s };
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(enc(input.prefix).unwrap_or_default()),
            delimiter: enc(input.delimiter),
            max_keys: Some(i32::try_from(max).unwrap_or(1000)),
            key_count: Some(i32::try_from(listed.count).unwrap_or(i32::MAX)),
            is_truncated: Some(page.truncated),
            continuation_token: input.continuation_token,
            next_continuation_token: next,
            start_after: enc(input.start_after),
            contents: listed.contents,
            common_prefixes: listed.prefixes,
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let router = self.router();
        let input = req.input;
        let encode = check_encoding(input.encoding_type.as_ref())?;
        let max = max_keys(input.max_keys)?;
        let lr = ListRequest {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
            after: input.marker.clone().filter(|m| !m.is_empty()),
            max_keys: max,
        };
        let page = traced(
            "ListObjects",
            &input.bucket,
            router.list(&input.bucket, &lr),
        )
        .await?;
        let listed = split_entries(page.entries, encode);
        let enc = |s: Option<String>| if encode { s.map(|s| url_encode(&s)) } else { s };
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(enc(input.prefix).unwrap_or_default()),
            delimiter: enc(input.delimiter),
            marker: Some(enc(input.marker).unwrap_or_default()),
            max_keys: Some(i32::try_from(max).unwrap_or(1000)),
            is_truncated: Some(page.truncated),
            next_marker: enc(page.next),
            contents: listed.contents,
            common_prefixes: listed.prefixes,
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let router = self.router();
        let view = view_of(&router, &req, &req.input.bucket, "CreateMultipartUpload");
        let canned = req.input.acl.as_ref().map(ObjectCannedACL::as_str);
        // Boxed: a write's future stays small without ACLs.
        let object_acl = Box::pin(acl::write_acl(self, &req, &req.input.bucket, canned)).await?;
        let tags = tagging::of_request(&req.headers).map_err(errors::to_s3)?;
        let input = req.input;
        let mut a = attrs(
            input.content_type,
            input.cache_control,
            input.content_disposition,
            input.content_encoding,
            input.content_language,
            input.metadata,
        );
        a.tags = tags;
        a.acl = object_acl;
        let algorithm = checksum_algorithm(input.checksum_algorithm.as_ref())?;
        let kind = match &input.checksum_type {
            None => None,
            Some(t) => Some(checksum::Kind::parse(t.as_str()).ok_or_else(|| {
                s3s::s3_error!(
                    InvalidRequest,
                    "Value for x-amz-checksum-type header is invalid."
                )
            })?),
        };
        let wanted = match (algorithm, kind) {
            (Some(alg), kind) => Some((alg, kind)),
            (None, None) => None,
            (None, Some(_)) => {
                return Err(s3s::s3_error!(
                    InvalidRequest,
                    "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header."
                ));
            }
        };
        let id = traced(
            "CreateMultipartUpload",
            &input.bucket,
            router.create_upload(&view, &input.bucket, &input.key, &a, wanted),
        )
        .await?;
        let kind = algorithm.map(|alg| kind.unwrap_or_else(|| alg.default_multipart_kind()));
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(id),
            checksum_algorithm: input.checksum_algorithm,
            checksum_type: kind.map(|k| ChecksumType::from(k.name().to_owned())),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let router = self.router();
        let headers = req.headers;
        let trailers = req.trailing_headers;
        let input = req.input;
        let checksums = Checksum {
            checksum_crc32: input.checksum_crc32.clone(),
            checksum_crc32c: input.checksum_crc32c.clone(),
            checksum_sha1: input.checksum_sha1.clone(),
            checksum_sha256: input.checksum_sha256.clone(),
            checksum_crc64nvme: input.checksum_crc64nvme.clone(),
            ..Default::default()
        };
        let expected = expected(
            input.content_md5,
            checksums.clone(),
            input.content_length,
            &headers,
        )?;
        let blob = input.body.unwrap_or_else(|| {
            StreamingBlob::wrap(futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>())
        });
        let len = expected.declared_len;
        let verified = expected.verified.clone();
        let body = body::verified(blob, expected, trailers, &router.config.server);
        let part = traced(
            "UploadPart",
            &input.bucket,
            router.upload_part(
                &input.bucket,
                &input.key,
                &input.upload_id,
                input.part_number,
                body,
                len,
            ),
        )
        .await?;
        let mut checked = take_verified(&verified, checksums);
        // The part's checksum in the upload's algorithm, which the client may not have sent.
        if let Some((alg, value)) = part.checksum
            && let Some(field) = body::value_mut(&mut checked, &alg.name().to_ascii_lowercase())
        {
            field.get_or_insert(value);
        }
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(part.etag)),
            checksum_crc32: checked.checksum_crc32,
            checksum_crc32c: checked.checksum_crc32c,
            checksum_sha1: checked.checksum_sha1,
            checksum_sha256: checked.checksum_sha256,
            checksum_crc64nvme: checked.checksum_crc64nvme,
            ..Default::default()
        }))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let router = self.router();
        let view = view_of(&router, &req, &req.input.bucket, "UploadPartCopy");
        let Some((src_bucket, src_key, src_version)) = copy_source(&req.input.copy_source)? else {
            let input = &req.input;
            let checks = async {
                let upload = router.list_parts(&input.bucket, &input.key, &input.upload_id);
                upload.await.map(|_| ())
            };
            let e = Error::NotImplemented(UNSUPPORTED_COPY_SOURCE.into());
            return Err(unsupported("UploadPartCopy", &input.bucket, checks, e).await);
        };
        // A part copied from an older version is not supported yet.
        unversioned(src_version.as_deref())?;
        self.authorize_copy_source(&req, (&src_bucket, &src_key, src_version.as_deref()))
            .await?;
        let input = req.input;
        let range = parse_copy_range(input.copy_source_range.as_deref())?;
        let src_cond = read_conditions(
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
        );
        let (part, modified) = traced(
            "UploadPartCopy",
            &input.bucket,
            router.upload_part_copy(
                &view,
                &input.bucket,
                &input.key,
                &input.upload_id,
                input.part_number,
                &src_bucket,
                &src_key,
                range,
                &src_cond,
            ),
        )
        .await?;
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some({
                let c = body::answered(
                    part.checksum
                        .map(|(alg, v)| checksum::Stored::full_object(alg, v))
                        .as_ref(),
                );
                let mut result = CopyPartResult {
                    e_tag: Some(ETag::Strong(part.etag)),
                    last_modified: Some(ts(modified)),
                    ..Default::default()
                };
                set_checksums!(result, c);
                result
            }),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let router = self.router();
        let input = req.input;
        if input.if_match.is_some() || input.if_none_match.is_some() {
            let checks = async {
                let upload = router.list_parts(&input.bucket, &input.key, &input.upload_id);
                upload.await.map(|_| ())
            };
            let e = Error::NotImplemented(
                "conditional CompleteMultipartUpload is not supported".into(),
            );
            return Err(unsupported("CompleteMultipartUpload", &input.bucket, checks, e).await);
        }
        let parts = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default()
            .into_iter()
            .map(|p| RouterPart {
                part_number: p.part_number.unwrap_or(0),
                etag: p.e_tag.map(|e| e.value().to_owned()).unwrap_or_default(),
                checksum: body::named(&Checksum {
                    checksum_crc32: p.checksum_crc32,
                    checksum_crc32c: p.checksum_crc32c,
                    checksum_sha1: p.checksum_sha1,
                    checksum_sha256: p.checksum_sha256,
                    checksum_crc64nvme: p.checksum_crc64nvme,
                    ..Default::default()
                }),
            })
            .collect();
        // A checksum of the whole object the client states (a full-object one, usually).
        let whole = body::named(&Checksum {
            checksum_crc32: input.checksum_crc32,
            checksum_crc32c: input.checksum_crc32c,
            checksum_sha1: input.checksum_sha1,
            checksum_sha256: input.checksum_sha256,
            checksum_crc64nvme: input.checksum_crc64nvme,
            ..Default::default()
        });
        let (done, kept, version_id) = traced(
            "CompleteMultipartUpload",
            &input.bucket,
            router.complete_upload(&input.bucket, &input.key, &input.upload_id, parts, whole),
        )
        .await?;
        let c = body::answered(kept.as_ref());
        let mut out = CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: etag(done.etag),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            version_id,
            ..Default::default()
        };
        set_checksums!(out, c, with_type);
        Ok(S3Response::new(out))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let router = self.router();
        let input = req.input;
        traced(
            "AbortMultipartUpload",
            &input.bucket,
            router.abort_upload(&input.bucket, &input.key, &input.upload_id),
        )
        .await?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let router = self.router();
        let input = req.input;
        let (_, parts) = traced(
            "ListParts",
            &input.bucket,
            router.list_parts(&input.bucket, &input.key, &input.upload_id),
        )
        .await?;
        let marker = input.part_number_marker.unwrap_or(0);
        let max = usize::try_from(input.max_parts.unwrap_or(1000).clamp(0, 1000)).unwrap_or(1000);
        let remaining: Vec<_> = parts
            .into_iter()
            .filter(|p| p.part_number > marker)
            .collect();
        let truncated = remaining.len() > max;
        let page: Vec<_> = remaining.into_iter().take(max).collect();
        let next = if truncated {
            page.last().map(|p| p.part_number)
        } else {
            None
        };
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: next,
            max_parts: Some(i32::try_from(max).unwrap_or(1000)),
            is_truncated: Some(truncated),
            parts: Some(
                page.into_iter()
                    .map(|p| Part {
                        part_number: Some(p.part_number),
                        e_tag: Some(ETag::Strong(p.etag)),
                        size: Some(i64::try_from(p.size).unwrap_or(i64::MAX)),
                        last_modified: Some(ts(p.last_modified)),
                        ..Default::default()
                    })
                    .collect(),
            ),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            ..Default::default()
        }))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let router = self.router();
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let uploads = traced(
            "ListMultipartUploads",
            &input.bucket,
            router.list_uploads(&input.bucket, &prefix),
        )
        .await?;
        let max = usize::try_from(input.max_uploads.unwrap_or(1000).clamp(0, 1000)).unwrap_or(1000);
        let key_marker = input.key_marker.clone().unwrap_or_default();
        let id_marker = input.upload_id_marker.clone();
        let remaining: Vec<_> = uploads
            .into_iter()
            .filter(|u| {
                if key_marker.is_empty() {
                    return true;
                }
                match &id_marker {
                    Some(id) if u.key == key_marker => u.upload_id.as_str() > id.as_str(),
                    _ => u.key > key_marker,
                }
            })
            .collect();
        let truncated = remaining.len() > max;
        let page: Vec<_> = remaining.into_iter().take(max).collect();
        let (next_key, next_id) = match (truncated, page.last()) {
            (true, Some(u)) => (Some(u.key.clone()), Some(u.upload_id.clone())),
            _ => (None, None),
        };
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            next_key_marker: next_key,
            next_upload_id_marker: next_id,
            max_uploads: Some(i32::try_from(max).unwrap_or(1000)),
            is_truncated: Some(truncated),
            uploads: Some(
                page.into_iter()
                    .map(|u| MultipartUpload {
                        key: Some(u.key),
                        upload_id: Some(u.upload_id),
                        initiated: Some(ts(u.initiated)),
                        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }))
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let router = self.router();
        let view = view_of(&router, &req, &req.input.bucket, "GetObjectTagging");
        let input = req.input;
        let version = input.version_id.as_deref();
        let (tags, version_id) = traced(
            "GetObjectTagging",
            &input.bucket,
            router.get_version_tags(&view, &input.bucket, &input.key, version),
        )
        .await?;
        Ok(S3Response::new(GetObjectTaggingOutput {
            tag_set: tags
                .into_iter()
                .map(|(k, v)| Tag {
                    key: Some(k),
                    value: Some(v),
                })
                .collect(),
            version_id: version_id.or(input.version_id),
        }))
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let router = self.router();
        let input = &req.input;
        let pairs = input
            .tagging
            .tag_set
            .iter()
            .map(|t| {
                (
                    t.key.clone().unwrap_or_default(),
                    t.value.clone().unwrap_or_default(),
                )
            })
            .collect();
        let tags = tagging::check(pairs).map_err(errors::to_s3)?;
        self.authorize_put_tagging(&req, &tags).await?;
        let view = view_of(&router, &req, &input.bucket, "PutObjectTagging");
        let version_id = traced(
            "PutObjectTagging",
            &input.bucket,
            router.put_version_tags(
                &view,
                &input.bucket,
                &input.key,
                input.version_id.as_deref(),
                &tags,
            ),
        )
        .await?;
        Ok(S3Response::new(PutObjectTaggingOutput { version_id }))
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let router = self.router();
        let view = view_of(&router, &req, &req.input.bucket, "DeleteObjectTagging");
        let input = req.input;
        let version_id = traced(
            "DeleteObjectTagging",
            &input.bucket,
            router.put_version_tags(
                &view,
                &input.bucket,
                &input.key,
                input.version_id.as_deref(),
                &model::Tags::new(),
            ),
        )
        .await?;
        Ok(S3Response::new(DeleteObjectTaggingOutput { version_id }))
    }
}
