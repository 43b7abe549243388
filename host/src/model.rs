//! Small types shared by every layer: what an object is, what a member is, what went wrong.
//! Neither s3s nor object_store types appear here.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;

/// Reserved key space inside every backend location for Switchyard's own bookkeeping
/// (multipart markers, staged parts, fs metadata). Hidden from listings; clients cannot
/// write keys under it.
pub const RESERVED_PREFIX: &str = ".switchyard/";

/// User metadata name under which a backend keeps an object's S3 ETag when its own ETag
/// is not that one and it has no native place for it (a multipart upload's
/// `<md5 of part md5s>-<parts>` on Azure, GCS and memory members; every ETag on memory
/// members, whose own ETags are counters). Reserved: clients cannot set it, and it is not
/// shown to them as metadata.
pub const ETAG_META: &str = "switchyard-etag";

/// User metadata name under which `fs` and `memory` members keep, on an object of a
/// versioned bucket, the name of the version file it is a copy of (see
/// [`crate::versions`]). Reserved like [`ETAG_META`].
pub const VERSION_META: &str = "switchyard-version";

/// User metadata name under which the kinds without a native place for object tags keep
/// them, as one URL query ([`crate::tagging::encode`]): GCS, whose objects have none, and
/// memory. Reserved like [`ETAG_META`].
pub const TAGS_META: &str = "switchyard-tags";

/// The object attributes S3 clients set and expect back, stored natively by each backend.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attrs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    /// `x-amz-meta-*` without the prefix, lower-cased as S3 does.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// The object's tags (S3 object tagging), kept natively where the kind allows: see
    /// [`crate::tagging`]. Checked before they get here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: Tags,
    /// The object's ACL, when its bucket has ACLs enabled and it differs from the default
    /// (the bucket owner's FULL_CONTROL alone). Kept with the object so that it moves with
    /// it, by the kinds that can ([`crate::backends::Store::keeps_acls`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<ObjectAcl>,
}

/// Who an ACL grant is for, in the gateway's terms: S3's groups, or a configured user by
/// name (clients name it by its canonical id).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Grantee {
    /// `http://acs.amazonaws.com/groups/global/AllUsers`: anyone, anonymous included.
    AllUsers,
    /// `http://acs.amazonaws.com/groups/global/AuthenticatedUsers`: any signed request
    /// (here: any configured user).
    AuthenticatedUsers,
    /// A configured user, by name (`""`: the anonymous requester, as an owner).
    User(String),
}

impl Grantee {
    /// Whether a grant to it makes an ACL public, as Block Public Access reads it.
    pub fn is_public(&self) -> bool {
        matches!(self, Grantee::AllUsers | Grantee::AuthenticatedUsers)
    }
}

/// S3's ACL permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AclPermission {
    Read,
    Write,
    ReadAcp,
    WriteAcp,
    FullControl,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AclGrant {
    pub grantee: Grantee,
    pub permission: AclPermission,
}

/// An object's owner and grants.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectAcl {
    /// The owner's user name (`""`: an anonymous writer).
    pub owner: String,
    pub grants: Vec<AclGrant>,
}

impl ObjectAcl {
    /// The owner's FULL_CONTROL alone: S3's `private`.
    pub fn private(owner: &str) -> Self {
        Self {
            owner: owner.to_owned(),
            grants: vec![AclGrant {
                grantee: Grantee::User(owner.to_owned()),
                permission: AclPermission::FullControl,
            }],
        }
    }

    /// Whether it is what an object has without one: private to the bucket's owner.
    pub fn is_default_for(&self, bucket_owner: &str) -> bool {
        *self == Self::private(bucket_owner)
    }
}

/// An object's tag set: keys are unique and case-sensitive, as in S3.
pub type Tags = BTreeMap<String, String>;

/// What a HEAD tells about one object in one member.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    pub size: u64,
    pub etag: Option<String>,
    pub last_modified: DateTime<Utc>,
    pub attrs: Attrs,
    /// The MD5 of the content, when the backend states it (an ETag that is one: not a
    /// multipart upload, not SSE-KMS or SSE-C, not Azure).
    pub content_md5: Option<[u8; 16]>,
    /// Not written through Switchyard: an `fs` file dropped into (or changed in) the
    /// directory by another tool, served with default attributes and a synthetic ETag.
    pub foreign: bool,
    /// How many tags the object has beyond `attrs.tags`. S3 and Azure answer a read with
    /// the count only (`x-amz-tagging-count`, `x-ms-tag-count`), and the tags cost one
    /// more request: a store leaves `attrs.tags` empty then, and whoever needs the tags
    /// (GetObjectTagging, a copy, the mover) asks [`Store::get_tags`] for them, so that
    /// a plain read of a tagged object costs no more than another's.
    ///
    /// [`Store::get_tags`]: crate::backends::Store::get_tags
    pub untold_tags: usize,
}

impl ObjectInfo {
    /// How many tags the object has (told or not).
    pub fn tag_count(&self) -> usize {
        self.attrs.tags.len() + self.untold_tags
    }
}

/// One listing row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSummary {
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
    pub last_modified: DateTime<Utc>,
}

/// Byte range requested by a GET, already validated against nothing (the backend knows the
/// size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=a-b` (inclusive end, as in HTTP).
    Bounded { first: u64, last: u64 },
    /// `bytes=a-`
    From(u64),
    /// `bytes=-n`
    Suffix(u64),
}

/// Read preconditions, evaluated by the member that holds the object.
#[derive(Debug, Clone, Default)]
pub struct ReadConditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<DateTime<Utc>>,
    pub if_unmodified_since: Option<DateTime<Utc>>,
}

/// Write preconditions (conditional PUT).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum WriteCondition {
    #[default]
    None,
    /// `If-None-Match: *`: only create.
    IfAbsent,
    /// `If-Match: etag`: only replace that version.
    IfMatch(String),
}

/// What a writer declares about a body before sending it. A store refuses (and commits
/// nothing for) a body that differs: the length through the request's framing, the MD5 by
/// having the backend check it (S3's `Content-MD5`) or, where it cannot, by hashing the
/// bytes itself. Declaring the MD5 lets a caller that already knows it (the mover, from the
/// source's ETag) skip hashing when the backend checks anyway.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Declared {
    pub len: Option<u64>,
    pub md5: Option<[u8; 16]>,
    /// The S3 ETag the written object is to answer when it is not the MD5 of its bytes: a
    /// multipart upload's (`<hex>-<parts>`), for a copy of one (a mirror, a migration).
    /// Kept by stores that keep an ETag of their own (fs, memory, Azure, GCS); an S3
    /// backend gives its own. Anything but a multipart ETag is ignored: the MD5 of what
    /// was written is the ETag then.
    pub etag: Option<String>,
    /// The checksum to keep with the object (the metadata
    /// [`CHECKSUM_META`](crate::checksum::CHECKSUM_META)), which an aws-chunked trailer
    /// makes known only at the body's end: a store adds it to the attributes when it
    /// writes them (see [`Pending::attrs`](crate::checksum::Pending::attrs)).
    pub checksum: crate::checksum::Pending,
}

impl Declared {
    pub fn of_len(len: Option<u64>) -> Self {
        Self {
            len,
            ..Self::default()
        }
    }
}

/// A request body on its way to a backend. Items are chunks; an `Err` aborts the write
/// (bad checksum, client gone) and nothing becomes visible.
pub type Body = BoxStream<'static, Result<Bytes, Error>>;

/// `body`, with `update` seeing each chunk as it passes and `finish` judging the whole at
/// its end: an error from it becomes the body's last item, before the end reaches a
/// store (which then commits nothing).
pub fn tapped<S: Send + 'static>(
    body: Body,
    state: S,
    update: fn(&mut S, &[u8]),
    finish: fn(S) -> Result<()>,
) -> Body {
    use futures::StreamExt;
    futures::stream::unfold(
        (body, Some(state)),
        move |(mut body, mut state)| async move {
            let s = state.as_mut()?;
            match body.next().await {
                Some(Ok(chunk)) => {
                    update(s, &chunk);
                    Some((Ok(chunk), (body, state)))
                }
                Some(Err(e)) => Some((Err(e), (body, None))),
                None => finish(state.take()?).err().map(|e| (Err(e), (body, None))),
            }
        },
    )
    .boxed()
}

/// A response body on its way to the client.
pub type ByteStream = BoxStream<'static, Result<Bytes, Error>>;

#[derive(Debug, Clone)]
pub struct GetOutcome {
    pub info: ObjectInfo,
    /// The served byte range (start, end exclusive); the full object when not ranged.
    pub range: std::ops::Range<u64>,
}

#[derive(Debug, Clone)]
pub struct PutOutcome {
    pub etag: Option<String>,
}

/// What a policy sees of a member. A request's views borrow the name and labels from
/// its backends ([`crate::backends::Backend::view`]): copying them for every decision
/// was 17 allocations for a bucket of three members, a tenth of a warm Rust decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView<'a> {
    pub name: std::borrow::Cow<'a, str>,
    pub kind: &'static str,
    pub labels: std::borrow::Cow<'a, [(String, String)]>,
    pub healthy: bool,
    pub latency_us: Option<u64>,
}

impl MemberView<'_> {
    /// A copy that borrows nothing, for a call that runs on a thread of its own.
    pub fn owned(&self) -> MemberView<'static> {
        MemberView {
            name: self.name.clone().into_owned().into(),
            kind: self.kind,
            labels: self.labels.clone().into_owned().into(),
            healthy: self.healthy,
            latency_us: self.latency_us,
        }
    }
}

/// Whose fault an error is decides its S3 code and whether a retry can help.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("no such key")]
    NotFound,
    #[error("no such bucket")]
    NoSuchBucket,
    /// CreateBucket of a bucket that exists; `owned` when the requester made it (or it is
    /// a configured bucket, which is every user's).
    #[error("bucket already exists")]
    BucketExists { owned: bool },
    #[error("bucket not empty")]
    BucketNotEmpty,
    /// A bucket operation that meets a state it must not resolve alone (409).
    #[error("operation aborted: {0}")]
    OperationAborted(String),
    #[error("precondition failed: {0}")]
    Precondition(String),
    #[error("not modified")]
    NotModified,
    #[error("range not satisfiable")]
    InvalidRange,
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A tag set S3 refuses (`InvalidTag`): a key or value too long, a duplicate key, a
    /// reserved `aws:` key.
    #[error("invalid tag: {0}")]
    InvalidTag(String),
    /// A request S3 refuses as `400 BadRequest` (more than 10 tags on an object).
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("key too long: {0}")]
    KeyTooLong(String),
    #[error("metadata too large: {0}")]
    MetadataTooLarge(String),
    #[error("Content-MD5 does not match the body")]
    BadDigest,
    /// A Content-MD5 that is not a base64-encoded 128-bit digest.
    #[error("Content-MD5 is malformed")]
    InvalidDigest,
    #[error("{0} checksum does not match the body")]
    ChecksumMismatch(&'static str),
    #[error("body is larger than the {0}-byte limit")]
    TooLarge(u64),
    #[error("body ended before its declared length")]
    IncompleteBody,
    #[error("the client sent no body bytes for {0:?}")]
    RequestTimeout(std::time::Duration),
    #[error("no such upload")]
    NoSuchUpload,
    #[error("invalid part: {0}")]
    InvalidPart(String),
    #[error("parts are not in ascending order")]
    InvalidPartOrder,
    #[error("part too small: {0}")]
    EntityTooSmall(String),
    #[error("not implemented: {0}")]
    NotImplemented(String),
    #[error("access denied")]
    AccessDenied,
    #[error("malformed policy: {0}")]
    MalformedPolicy(String),
    #[error("the bucket has no policy")]
    NoSuchBucketPolicy,
    #[error("client body error: {0}")]
    ClientBody(String),
    /// The backend failed or timed out: retryable.
    #[error("backend {backend} unavailable: {message}")]
    Unavailable { backend: String, message: String },
    #[error("policy {policy} failed: {message}")]
    PolicyFailed { policy: String, message: String },
    /// The bucket's policy refused the request (WIT 0.2 admission).
    #[error("refused by the bucket's policy: {message}")]
    Denied {
        code: crate::policy::DenyCode,
        message: String,
    },
    #[error("internal error: {0}")]
    Internal(String),
    /// A version id of the right form that names no version.
    #[error("no such version")]
    NoSuchVersion,
    /// The version read is a delete marker: the latest one (a read without a version id,
    /// 404) or the one the request named (405).
    #[error("the version is a delete marker")]
    DeleteMarker { version_id: String, named: bool },
}

impl Error {
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Error::Internal(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
