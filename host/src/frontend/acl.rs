//! ACLs, object ownership and Block Public Access, as S3 has them.
//!
//! A bucket is made as S3 makes one today: object ownership `BucketOwnerEnforced`, which
//! disables ACLs. The bucket's owner owns every object and holds FULL_CONTROL; access is
//! decided by policies alone. So every S3 tool can read ACLs and set the ones that change
//! nothing (`private`, `bucket-owner-full-control`, or the owner's own FULL_CONTROL grant),
//! and any other ACL is refused as S3 refuses it (400 AccessControlListNotSupported), never
//! dropped.
//!
//! Under `ObjectWriter` or `BucketOwnerPreferred` (set by PutBucketOwnershipControls, by
//! CreateBucket's `x-amz-object-ownership`, or by the configuration file) ACLs count: a
//! bucket's ACL is stored beside its policy, an object's with the object (see
//! [`crate::model::ObjectAcl`]), and their grants allow what AWS's table says beside the
//! policies ([`crate::iam::AclOn`]). Grantees are S3's AllUsers and AuthenticatedUsers
//! groups and the configured users, by their canonical ids ([`canonical_id`]).

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};
use sha2::{Digest, Sha256};

use super::{Frontend, Requester, Snapshot, requester, traced, view_of};
use crate::config::{self, ObjectOwnership as Ownership};
use crate::model::{self, AclGrant, AclPermission, Error, ObjectAcl, ReadConditions};
use crate::router::{BucketAcl, Router};

/// The canonical id S3 gives anonymous requesters.
const ANONYMOUS_ID: &str = "65a011a29cdf8ec533ec3d1ccaae921c";

/// The stable canonical user id of a configured user: a digest of its name, 64 hex digits
/// as S3's ids are, so that it is the same on every engine and across restarts.
pub fn canonical_id(user: &str) -> String {
    hex::encode(Sha256::digest(format!("switchyard-user:{user}").as_bytes()))
}

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// The S3 owner of a user's name (`""`: anonymous).
fn owner(user: &str) -> Owner {
    if user.is_empty() {
        return Owner {
            display_name: Some("anonymous".into()),
            id: Some(ANONYMOUS_ID.into()),
        };
    }
    Owner {
        display_name: Some(user.to_owned()),
        id: Some(canonical_id(user)),
    }
}

/// The owner as ListBuckets shows it: the requester.
pub fn requester_owner(who: &Requester<'_>) -> Owner {
    owner(who.user.map_or("", |u| u.name.as_str()))
}

/// Who owns `bucket` (and, under BucketOwnerEnforced, every object in it): the user who
/// made it by CreateBucket; a configured bucket is every user's, so the requester's.
async fn bucket_owner(router: &Router, bucket: &str, who: &Requester<'_>) -> model::Result<Owner> {
    Ok(match router.bucket_owner(bucket).await? {
        Some(creator) => owner(&creator),
        None => requester_owner(who),
    })
}

/// The ACL of everything under BucketOwnerEnforced: the owner's FULL_CONTROL.
fn owner_acl(owner: &Owner) -> Grants {
    vec![Grant {
        grantee: Some(Grantee {
            display_name: owner.display_name.clone(),
            email_address: None,
            id: owner.id.clone(),
            type_: Type::from_static(Type::CANONICAL_USER),
            uri: None,
        }),
        permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
    }]
}

fn not_supported() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::AccessControlListNotSupported,
        "The bucket does not allow ACLs",
    )
}

/// A canned ACL that changes nothing under BucketOwnerEnforced.
fn owner_only_canned(acl: &str) -> bool {
    acl == "private" || acl == "bucket-owner-full-control"
}

/// The ACL a request sets, in any of its three forms.
#[derive(Default)]
pub struct AclRequest<'a> {
    pub canned: Option<&'a str>,
    /// The `x-amz-grant-*` headers' values, whatever the permission.
    pub grants: Vec<(&'static str, &'a str)>,
    pub body: Option<&'a AccessControlPolicy>,
}

impl AclRequest<'_> {
    fn is_empty(&self) -> bool {
        self.canned.is_none() && self.grants.is_empty() && self.body.is_none()
    }
}

/// Whether a grant header's value names only `owner_id` (`id="..."`, comma-separated).
fn names_only(value: &str, owner_id: &str) -> bool {
    value.split(',').all(|g| {
        let g = g.trim();
        g.split_once('=').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("id") && v.trim().trim_matches('"') == owner_id
        })
    })
}

/// Accepts an ACL that changes nothing under BucketOwnerEnforced: none, a `private` or
/// `bucket-owner-full-control` canned ACL, or FULL_CONTROL to the owner alone (by header or
/// in the body); refuses any other with S3's 400 AccessControlListNotSupported.
pub fn check_acl(acl: &AclRequest<'_>, owner_id: &str) -> S3Result<()> {
    if acl.canned.is_some_and(|c| !owner_only_canned(c)) {
        return Err(not_supported());
    }
    for (header, value) in &acl.grants {
        if *header != "x-amz-grant-full-control" || !names_only(value, owner_id) {
            return Err(not_supported());
        }
    }
    if let Some(body) = acl.body {
        let owner_only = body.grants.iter().flatten().all(|g| {
            g.permission.as_ref().map(Permission::as_str) == Some(Permission::FULL_CONTROL)
                && g.grantee.as_ref().is_some_and(|e| {
                    e.type_.as_str() == Type::CANONICAL_USER && e.id.as_deref() == Some(owner_id)
                })
        });
        if !owner_only {
            return Err(not_supported());
        }
    }
    Ok(())
}

/// The ACL headers of a write (PutObject, CopyObject, CreateMultipartUpload): its canned
/// `x-amz-acl` and its `x-amz-grant-*`, checked against the bucket's owner before anything
/// is written. Without ACL headers nothing is read.
pub async fn check_write_acl<T>(
    fe: &Frontend,
    req: &S3Request<T>,
    bucket: &str,
    canned: Option<&str>,
) -> S3Result<()> {
    let acl = AclRequest {
        canned,
        grants: grant_headers(&req.headers),
        body: None,
    };
    if acl.is_empty() {
        return Ok(());
    }
    let snapshot = fe.live.current();
    let who = requester(&snapshot, req)?;
    let owner = traced(
        "CheckAcl",
        bucket,
        bucket_owner(&snapshot.router, bucket, &who),
    )
    .await?;
    check_acl(&acl, owner.id.as_deref().unwrap_or_default())
}

/// The grant headers of a request.
pub fn grant_headers(headers: &http::HeaderMap) -> Vec<(&'static str, &str)> {
    [
        "x-amz-grant-full-control",
        "x-amz-grant-read",
        "x-amz-grant-read-acp",
        "x-amz-grant-write",
        "x-amz-grant-write-acp",
    ]
    .into_iter()
    .filter_map(|h| Some((h, headers.get(h)?.to_str().unwrap_or("?"))))
    .collect()
}

/// CreateBucket's ACL and object ownership: a bucket is made BucketOwnerEnforced, with no
/// ACL but the owner's, or not at all.
pub fn check_create(input: &CreateBucketInput, headers: &http::HeaderMap) -> S3Result<()> {
    if let Some(o) = &input.object_ownership
        && o.as_str() != ObjectOwnership::BUCKET_OWNER_ENFORCED
    {
        return Err(S3Error::with_message(
            S3ErrorCode::NotImplemented,
            format!(
                "object ownership {} is not supported: ACLs are disabled on every bucket (BucketOwnerEnforced)",
                o.as_str()
            ),
        ));
    }
    let canned = input.acl.as_ref().map(BucketCannedACL::as_str);
    if canned.is_some_and(|c| !owner_only_canned(c)) || !grant_headers(headers).is_empty() {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidBucketAclWithObjectOwnership,
            "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
        ));
    }
    Ok(())
}

pub async fn get_bucket_acl(
    fe: &Frontend,
    req: S3Request<GetBucketAclInput>,
) -> S3Result<S3Response<GetBucketAclOutput>> {
    let snapshot = fe.live.current();
    let who = requester(&snapshot, &req)?;
    let bucket = &req.input.bucket;
    let state = bucket_acl_of(&snapshot.router, "GetBucketAcl", bucket).await?;
    let owner = traced(
        "GetBucketAcl",
        bucket,
        bucket_owner(&snapshot.router, bucket, &who),
    )
    .await?;
    let grants = match &state.grants {
        Some(g) if state.acls_enabled() => rendered(g),
        _ => owner_acl(&owner),
    };
    Ok(S3Response::new(GetBucketAclOutput {
        grants: Some(grants),
        owner: Some(owner),
    }))
}

pub async fn put_bucket_acl(
    fe: &Frontend,
    req: S3Request<PutBucketAclInput>,
) -> S3Result<S3Response<PutBucketAclOutput>> {
    let snapshot = fe.live.current();
    let who = requester(&snapshot, &req)?;
    let input = &req.input;
    let bucket = &input.bucket;
    let router = &snapshot.router;
    let state = bucket_acl_of(router, "PutBucketAcl", bucket).await?;
    let acl = AclRequest {
        canned: input.acl.as_ref().map(BucketCannedACL::as_str),
        grants: grant_headers(&req.headers),
        body: input.access_control_policy.as_ref(),
    };
    if !state.acls_enabled() {
        let owner = traced("PutBucketAcl", bucket, bucket_owner(router, bucket, &who)).await?;
        check_acl(&acl, owner.id.as_deref().unwrap_or_default())?;
        return Ok(S3Response::new(PutBucketAclOutput::default()));
    }
    let owner = owner_name(router, bucket, &who).await?;
    let grants = grants_of(&snapshot, &acl, &owner, &owner)?;
    refuse_public(router, bucket, &grants).await?;
    let private = grants == ObjectAcl::private(&owner).grants;
    let stored = BucketAcl {
        grants: (!private).then_some(grants),
        ..state
    };
    traced(
        "PutBucketAcl",
        bucket,
        router.set_bucket_acl(bucket, &stored),
    )
    .await?;
    Ok(S3Response::new(PutBucketAclOutput::default()))
}

/// The owner of `key` in `bucket`, once the object is found (NoSuchKey otherwise).
async fn object_owner<T>(
    fe: &Frontend,
    req: &S3Request<T>,
    op: &'static str,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> S3Result<Owner> {
    let snapshot = fe.live.current();
    let who = requester(&snapshot, req)?;
    let router = &snapshot.router;
    let view = view_of(router, req, bucket, op);
    traced(op, bucket, async {
        let none = ReadConditions::default();
        router
            .get_version(&view, bucket, key, version_id, None, &none, true)
            .await?;
        bucket_owner(router, bucket, &who).await
    })
    .await
}

/// With ACLs enabled on its bucket: the ACL of `key` (its own, or the default: the bucket
/// owner's FULL_CONTROL) and the bucket owner's name; `None` under BucketOwnerEnforced.
async fn object_acl_of<T>(
    fe: &Frontend,
    req: &S3Request<T>,
    op: &'static str,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> S3Result<Option<(ObjectAcl, String)>> {
    let snapshot = fe.live.current();
    let router = &snapshot.router;
    if !bucket_acl_of(router, op, bucket).await?.acls_enabled() {
        return Ok(None);
    }
    let who = requester(&snapshot, req)?;
    let view = view_of(router, req, bucket, op);
    let acl = traced(
        op,
        bucket,
        router.object_acl(&view, bucket, key, version_id),
    )
    .await?;
    let bucket_owner = owner_name(router, bucket, &who).await?;
    let acl = acl.unwrap_or_else(|| ObjectAcl::private(&bucket_owner));
    Ok(Some((acl, bucket_owner)))
}

pub async fn get_object_acl(
    fe: &Frontend,
    req: S3Request<GetObjectAclInput>,
) -> S3Result<S3Response<GetObjectAclOutput>> {
    let i = &req.input;
    let v = i.version_id.as_deref();
    if let Some((acl, _)) = object_acl_of(fe, &req, "GetObjectAcl", &i.bucket, &i.key, v).await? {
        return Ok(S3Response::new(GetObjectAclOutput {
            grants: Some(rendered(&acl.grants)),
            owner: Some(owner(&acl.owner)),
            request_charged: None,
        }));
    }
    let owner = object_owner(fe, &req, "GetObjectAcl", &i.bucket, &i.key, v).await?;
    Ok(S3Response::new(GetObjectAclOutput {
        grants: Some(owner_acl(&owner)),
        owner: Some(owner),
        request_charged: None,
    }))
}

pub async fn put_object_acl(
    fe: &Frontend,
    req: S3Request<PutObjectAclInput>,
) -> S3Result<S3Response<PutObjectAclOutput>> {
    let i = &req.input;
    let v = i.version_id.as_deref();
    let acl = AclRequest {
        canned: i.acl.as_ref().map(ObjectCannedACL::as_str),
        grants: grant_headers(&req.headers),
        body: i.access_control_policy.as_ref(),
    };
    if let Some((current, bucket_owner)) =
        object_acl_of(fe, &req, "PutObjectAcl", &i.bucket, &i.key, v).await?
    {
        let snapshot = fe.live.current();
        let router = &snapshot.router;
        let grants = grants_of(&snapshot, &acl, &current.owner, &bucket_owner)?;
        refuse_public(router, &i.bucket, &grants).await?;
        let new = ObjectAcl {
            owner: current.owner,
            grants,
        };
        let kept = (!new.is_default_for(&bucket_owner)).then_some(&new);
        let view = view_of(router, &req, &i.bucket, "PutObjectAcl");
        traced(
            "PutObjectAcl",
            &i.bucket,
            router.put_object_acl(&view, &i.bucket, &i.key, v, kept),
        )
        .await?;
        return Ok(S3Response::new(PutObjectAclOutput::default()));
    }
    let owner = object_owner(fe, &req, "PutObjectAcl", &i.bucket, &i.key, v).await?;
    check_acl(&acl, owner.id.as_deref().unwrap_or_default())?;
    Ok(S3Response::new(PutObjectAclOutput::default()))
}

pub async fn get_bucket_ownership_controls(
    fe: &Frontend,
    req: S3Request<GetBucketOwnershipControlsInput>,
) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
    let router = fe.router();
    let bucket = &req.input.bucket;
    let state = bucket_acl_of(&router, "GetBucketOwnershipControls", bucket).await?;
    let Some(ownership) = state.ownership else {
        let mut e = S3Error::with_message(
            S3ErrorCode::Custom("OwnershipControlsNotFoundError".into()),
            "The bucket ownership controls were not found",
        );
        e.set_status_code(http::StatusCode::NOT_FOUND);
        return Err(e);
    };
    Ok(S3Response::new(GetBucketOwnershipControlsOutput {
        ownership_controls: Some(OwnershipControls {
            rules: vec![OwnershipControlsRule {
                object_ownership: ObjectOwnership::from(ownership.name().to_owned()),
            }],
        }),
    }))
}

/// Refuses changing a configured bucket's settings through the API, as PutBucketPolicy
/// does: they are the configuration file's.
async fn dynamic_only(router: &Router, bucket: &str, what: &str) -> model::Result<()> {
    if router.bucket(bucket).await?.dynamic {
        return Ok(());
    }
    Err(Error::InvalidRequest(format!(
        "bucket {bucket} is configured, its {what} is set in the configuration file, not through the API"
    )))
}

pub async fn put_bucket_ownership_controls(
    fe: &Frontend,
    req: S3Request<PutBucketOwnershipControlsInput>,
) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
    let router = fe.router();
    let input = &req.input;
    let rules = &input.ownership_controls.rules;
    let bucket = &input.bucket;
    let (ownership, state) = traced("PutBucketOwnershipControls", bucket, async {
        dynamic_only(
            &router,
            bucket,
            &format!("object ownership (buckets.{bucket}.object_ownership)"),
        )
        .await?;
        if rules.len() != 1 {
            return Err(Error::InvalidRequest(
                "OwnershipControls takes exactly one rule".into(),
            ));
        }
        let o = rules[0].object_ownership.as_str();
        let ownership = Ownership::from_name(o)
            .ok_or_else(|| Error::InvalidArgument(format!("unknown object ownership {o:?}")))?;
        Ok((ownership, router.bucket_acl(bucket).await?))
    })
    .await?;
    // As S3: ACLs cannot be disabled while the bucket's ACL grants to S3's groups (outside
    // the account); its other grants are kept and stop counting.
    if !ownership.acls_enabled() && state.grants.iter().flatten().any(|g| g.grantee.is_public()) {
        return Err(acl_error(
            S3ErrorCode::InvalidBucketAclWithObjectOwnership,
            "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
        ));
    }
    let stored = BucketAcl {
        ownership: Some(ownership),
        ..state
    };
    traced(
        "PutBucketOwnershipControls",
        bucket,
        router.set_bucket_acl(bucket, &stored),
    )
    .await?;
    Ok(S3Response::new(PutBucketOwnershipControlsOutput::default()))
}

pub async fn delete_bucket_ownership_controls(
    fe: &Frontend,
    req: S3Request<DeleteBucketOwnershipControlsInput>,
) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
    let router = fe.router();
    let bucket = &req.input.bucket;
    traced("DeleteBucketOwnershipControls", bucket, async {
        dynamic_only(
            &router,
            bucket,
            &format!("object ownership (buckets.{bucket}.object_ownership)"),
        )
        .await?;
        // Without controls S3 treats the bucket as ObjectWriter: ACLs enabled.
        let state = router.bucket_acl(bucket).await?;
        let stored = BucketAcl {
            ownership: None,
            ..state
        };
        router.set_bucket_acl(bucket, &stored).await
    })
    .await?;
    Ok(S3Response::new(
        DeleteBucketOwnershipControlsOutput::default(),
    ))
}

fn block_of(c: &PublicAccessBlockConfiguration) -> config::PublicAccessBlock {
    config::PublicAccessBlock {
        block_public_acls: c.block_public_acls.unwrap_or(false),
        ignore_public_acls: c.ignore_public_acls.unwrap_or(false),
        block_public_policy: c.block_public_policy.unwrap_or(false),
        restrict_public_buckets: c.restrict_public_buckets.unwrap_or(false),
    }
}

pub async fn get_public_access_block(
    fe: &Frontend,
    req: S3Request<GetPublicAccessBlockInput>,
) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
    let router = fe.router();
    let bucket = &req.input.bucket;
    let block = traced(
        "GetPublicAccessBlock",
        bucket,
        router.public_access_block(bucket),
    )
    .await?;
    let Some(b) = block else {
        let mut e = S3Error::with_message(
            S3ErrorCode::Custom("NoSuchPublicAccessBlockConfiguration".into()),
            "The public access block configuration was not found",
        );
        e.set_status_code(http::StatusCode::NOT_FOUND);
        return Err(e);
    };
    Ok(S3Response::new(GetPublicAccessBlockOutput {
        public_access_block_configuration: Some(PublicAccessBlockConfiguration {
            block_public_acls: Some(b.block_public_acls),
            ignore_public_acls: Some(b.ignore_public_acls),
            block_public_policy: Some(b.block_public_policy),
            restrict_public_buckets: Some(b.restrict_public_buckets),
        }),
    }))
}

pub async fn put_public_access_block(
    fe: &Frontend,
    req: S3Request<PutPublicAccessBlockInput>,
) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
    let router = fe.router();
    let input = &req.input;
    let block = block_of(&input.public_access_block_configuration);
    traced(
        "PutPublicAccessBlock",
        &input.bucket,
        router.set_public_access_block(&input.bucket, Some(block)),
    )
    .await?;
    Ok(S3Response::new(PutPublicAccessBlockOutput::default()))
}

pub async fn delete_public_access_block(
    fe: &Frontend,
    req: S3Request<DeletePublicAccessBlockInput>,
) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
    let router = fe.router();
    let bucket = &req.input.bucket;
    traced(
        "DeletePublicAccessBlock",
        bucket,
        router.set_public_access_block(bucket, None),
    )
    .await?;
    Ok(S3Response::new(DeletePublicAccessBlockOutput::default()))
}

fn acl_error(code: S3ErrorCode, message: impl Into<String>) -> S3Error {
    S3Error::with_message(code, message.into())
}

fn invalid_argument(message: impl Into<String>) -> S3Error {
    acl_error(S3ErrorCode::InvalidArgument, message)
}

/// The configured user (or the anonymous requester) whose canonical id is `id`.
fn user_of_id(snapshot: &Snapshot, id: &str) -> S3Result<model::Grantee> {
    if id == ANONYMOUS_ID {
        return Ok(model::Grantee::User(String::new()));
    }
    snapshot
        .users
        .names()
        .find(|name| canonical_id(name) == id)
        .map(|name| model::Grantee::User(name.to_owned()))
        .ok_or_else(|| invalid_argument("Invalid id"))
}

fn group_of_uri(uri: &str) -> S3Result<model::Grantee> {
    match uri {
        ALL_USERS => Ok(model::Grantee::AllUsers),
        AUTHENTICATED_USERS => Ok(model::Grantee::AuthenticatedUsers),
        other => Err(acl_error(
            S3ErrorCode::NotImplemented,
            format!(
                "grants to the group {other} are not supported: only AllUsers and AuthenticatedUsers"
            ),
        )),
    }
}

fn permission_of(name: &str) -> S3Result<AclPermission> {
    Ok(match name {
        Permission::READ => AclPermission::Read,
        Permission::WRITE => AclPermission::Write,
        Permission::READ_ACP => AclPermission::ReadAcp,
        Permission::WRITE_ACP => AclPermission::WriteAcp,
        Permission::FULL_CONTROL => AclPermission::FullControl,
        other => return Err(invalid_argument(format!("unknown permission {other:?}"))),
    })
}

fn header_permission(header: &str) -> AclPermission {
    match header {
        "x-amz-grant-read" => AclPermission::Read,
        "x-amz-grant-write" => AclPermission::Write,
        "x-amz-grant-read-acp" => AclPermission::ReadAcp,
        "x-amz-grant-write-acp" => AclPermission::WriteAcp,
        _ => AclPermission::FullControl,
    }
}

/// The grants of an ACL a request sets on something `owner` owns (in a bucket `bucket_owner`
/// owns), in the gateway's terms. Grants by e-mail address and S3's other groups have no
/// meaning here and are refused, never dropped.
fn grants_of(
    snapshot: &Snapshot,
    acl: &AclRequest<'_>,
    owner: &str,
    bucket_owner: &str,
) -> S3Result<Vec<AclGrant>> {
    let grant = |grantee: model::Grantee, permission| AclGrant {
        grantee,
        permission,
    };
    let mine = || {
        grant(
            model::Grantee::User(owner.to_owned()),
            AclPermission::FullControl,
        )
    };
    if acl.canned.is_some() && (!acl.grants.is_empty() || acl.body.is_some()) {
        return Err(acl_error(
            S3ErrorCode::InvalidRequest,
            "Specifying both Canned ACLs and Header Grants is not allowed",
        ));
    }
    if let Some(canned) = acl.canned {
        let mut grants = vec![mine()];
        match canned {
            "private" => {}
            "public-read" => grants.push(grant(model::Grantee::AllUsers, AclPermission::Read)),
            "public-read-write" => {
                grants.push(grant(model::Grantee::AllUsers, AclPermission::Read));
                grants.push(grant(model::Grantee::AllUsers, AclPermission::Write));
            }
            "authenticated-read" => {
                grants.push(grant(
                    model::Grantee::AuthenticatedUsers,
                    AclPermission::Read,
                ));
            }
            "bucket-owner-read" | "bucket-owner-full-control" if owner != bucket_owner => {
                let p = if canned == "bucket-owner-read" {
                    AclPermission::Read
                } else {
                    AclPermission::FullControl
                };
                grants.push(grant(model::Grantee::User(bucket_owner.to_owned()), p));
            }
            "bucket-owner-read" | "bucket-owner-full-control" => {}
            other => {
                return Err(acl_error(
                    S3ErrorCode::NotImplemented,
                    format!(
                        "the canned ACL {other} is not supported (it names AWS services or groups the gateway does not have)"
                    ),
                ));
            }
        }
        return Ok(grants);
    }
    let mut grants = Vec::new();
    for (header, value) in &acl.grants {
        let permission = header_permission(header);
        for g in value.split(',') {
            let (kind, v) = g
                .trim()
                .split_once('=')
                .ok_or_else(|| invalid_argument(format!("{header}: malformed grant {g:?}")))?;
            let v = v.trim().trim_matches('"');
            let grantee = match kind.trim().to_ascii_lowercase().as_str() {
                "id" => user_of_id(snapshot, v)?,
                "uri" => group_of_uri(v)?,
                "emailaddress" => {
                    return Err(acl_error(
                        S3ErrorCode::UnresolvableGrantByEmailAddress,
                        "grants by e-mail address are not supported: name the user by its canonical id",
                    ));
                }
                other => {
                    return Err(invalid_argument(format!(
                        "{header}: unknown grantee type {other:?}"
                    )));
                }
            };
            grants.push(grant(grantee, permission));
        }
    }
    if let Some(body) = acl.body {
        for g in body.grants.iter().flatten() {
            let e = g.grantee.as_ref().ok_or_else(|| {
                acl_error(S3ErrorCode::MalformedACLError, "a grant without a grantee")
            })?;
            let grantee = match e.type_.as_str() {
                Type::CANONICAL_USER => user_of_id(snapshot, e.id.as_deref().unwrap_or_default())?,
                Type::GROUP => group_of_uri(e.uri.as_deref().unwrap_or_default())?,
                _ => {
                    return Err(acl_error(
                        S3ErrorCode::UnresolvableGrantByEmailAddress,
                        "grants by e-mail address are not supported: name the user by its canonical id",
                    ));
                }
            };
            let permission = permission_of(
                g.permission
                    .as_ref()
                    .map(Permission::as_str)
                    .ok_or_else(|| {
                        acl_error(
                            S3ErrorCode::MalformedACLError,
                            "a grant without a permission",
                        )
                    })?,
            )?;
            grants.push(grant(grantee, permission));
        }
    }
    if acl.is_empty() {
        return Ok(vec![mine()]);
    }
    Ok(grants)
}

/// Block Public Access's BlockPublicAcls: a request that sets a public ACL is refused
/// (403 AccessDenied, as AWS answers), nothing stored.
async fn refuse_public(router: &Router, bucket: &str, grants: &[AclGrant]) -> S3Result<()> {
    if !grants.iter().any(|g| g.grantee.is_public()) {
        return Ok(());
    }
    let block = router
        .public_access_block(bucket)
        .await
        .map_err(super::errors::to_s3)?;
    if block.is_some_and(|b| b.block_public_acls) {
        return Err(acl_error(S3ErrorCode::AccessDenied, "Access Denied"));
    }
    Ok(())
}

/// The S3 form of the gateway's grants.
fn rendered(grants: &[AclGrant]) -> Grants {
    grants
        .iter()
        .map(|g| {
            let grantee = match &g.grantee {
                model::Grantee::User(name) => {
                    let o = owner(name);
                    Grantee {
                        display_name: o.display_name,
                        email_address: None,
                        id: o.id,
                        type_: Type::from_static(Type::CANONICAL_USER),
                        uri: None,
                    }
                }
                group => Grantee {
                    display_name: None,
                    email_address: None,
                    id: None,
                    type_: Type::from_static(Type::GROUP),
                    uri: Some(
                        if *group == model::Grantee::AllUsers {
                            ALL_USERS
                        } else {
                            AUTHENTICATED_USERS
                        }
                        .to_owned(),
                    ),
                },
            };
            let permission = match g.permission {
                AclPermission::Read => Permission::READ,
                AclPermission::Write => Permission::WRITE,
                AclPermission::ReadAcp => Permission::READ_ACP,
                AclPermission::WriteAcp => Permission::WRITE_ACP,
                AclPermission::FullControl => Permission::FULL_CONTROL,
            };
            Grant {
                grantee: Some(grantee),
                permission: Some(Permission::from_static(permission)),
            }
        })
        .collect()
}

/// The bucket's object ownership and ACL, for a request (NoSuchBucket answered).
async fn bucket_acl_of(router: &Router, op: &'static str, bucket: &str) -> S3Result<BucketAcl> {
    traced(op, bucket, router.bucket_acl(bucket)).await
}

/// The name of the owner of a bucket with ACLs enabled: its creator, or for a configured
/// bucket (every user's) the requester.
async fn owner_name(router: &Router, bucket: &str, who: &Requester<'_>) -> S3Result<String> {
    let creator = router
        .bucket_owner(bucket)
        .await
        .map_err(super::errors::to_s3)?;
    Ok(creator.unwrap_or_else(|| requester_name(who)))
}

fn requester_name(who: &Requester<'_>) -> String {
    who.user.map_or(String::new(), |u| u.name.clone())
}

/// The ACL a write (PutObject, CopyObject, CreateMultipartUpload) gives its object.
/// Under BucketOwnerEnforced none: its ACL headers are checked against the bucket's owner,
/// as [`check_write_acl`] does. With ACLs enabled, the object's owner (its writer; the
/// bucket's owner under BucketOwnerPreferred with `bucket-owner-full-control`) and the
/// grants of `x-amz-acl` or `x-amz-grant-*` (the owner's FULL_CONTROL without them);
/// `None` when that is what an object has without an ACL of its own.
pub async fn write_acl<T>(
    fe: &Frontend,
    req: &S3Request<T>,
    bucket: &str,
    canned: Option<&str>,
) -> S3Result<Option<ObjectAcl>> {
    let snapshot = fe.live.current();
    let router = &snapshot.router;
    let acl = AclRequest {
        canned,
        grants: grant_headers(&req.headers),
        body: None,
    };
    let state = match router.bucket_acl(bucket).await {
        Ok(s) => s,
        // The write answers it.
        Err(Error::NoSuchBucket) => return Ok(None),
        Err(e) => return Err(super::errors::to_s3(e)),
    };
    if !state.acls_enabled() {
        check_write_acl(fe, req, bucket, canned).await?;
        return Ok(None);
    }
    let who = requester(&snapshot, req)?;
    let writer = requester_name(&who);
    let bucket_owner = owner_name(router, bucket, &who).await?;
    let owner = match state.ownership() {
        Ownership::BucketOwnerPreferred if canned == Some("bucket-owner-full-control") => {
            bucket_owner.clone()
        }
        _ => writer,
    };
    let grants = grants_of(&snapshot, &acl, &owner, &bucket_owner)?;
    refuse_public(router, bucket, &grants).await?;
    let acl = ObjectAcl { owner, grants };
    Ok((!acl.is_default_for(&bucket_owner)).then_some(acl))
}

/// CreateBucket's object ownership and ACL: the settings to store once the bucket is made
/// (`None`: S3's defaults, nothing to store). Under BucketOwnerEnforced (the default) no
/// ACL but the owner's is accepted, as S3 accepts.
pub fn create_settings(
    snapshot: &Snapshot,
    input: &CreateBucketInput,
    headers: &http::HeaderMap,
    creator: Option<&str>,
) -> S3Result<Option<BucketAcl>> {
    let ownership = match &input.object_ownership {
        None => Ownership::BucketOwnerEnforced,
        Some(o) => Ownership::from_name(o.as_str()).ok_or_else(|| {
            invalid_argument(format!("unknown object ownership {:?}", o.as_str()))
        })?,
    };
    let canned = input.acl.as_ref().map(BucketCannedACL::as_str);
    if !ownership.acls_enabled() {
        check_create(input, headers)?;
        return Ok(None);
    }
    let acl = AclRequest {
        canned,
        grants: grant_headers(headers),
        body: None,
    };
    let owner = creator.unwrap_or_default();
    let grants = grants_of(snapshot, &acl, owner, owner)?;
    let private = grants == ObjectAcl::private(owner).grants;
    Ok(Some(BucketAcl {
        ownership: Some(ownership),
        grants: (!private).then_some(grants),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(id: &str, permission: &'static str) -> Grant {
        Grant {
            grantee: Some(Grantee {
                display_name: None,
                email_address: None,
                id: Some(id.into()),
                type_: Type::from_static(Type::CANONICAL_USER),
                uri: None,
            }),
            permission: Some(Permission::from_static(permission)),
        }
    }

    #[test]
    fn only_acls_that_change_nothing_pass() {
        let me = canonical_id("alice");
        assert_eq!(me.len(), 64);
        assert_ne!(me, canonical_id("bob"));
        let ok = |a: AclRequest<'_>| check_acl(&a, &me).is_ok();
        assert!(ok(AclRequest::default()));
        assert!(ok(AclRequest {
            canned: Some("private"),
            ..Default::default()
        }));
        assert!(ok(AclRequest {
            canned: Some("bucket-owner-full-control"),
            ..Default::default()
        }));
        for c in [
            "public-read",
            "public-read-write",
            "authenticated-read",
            "bucket-owner-read",
        ] {
            assert!(
                !ok(AclRequest {
                    canned: Some(c),
                    ..Default::default()
                }),
                "{c}"
            );
        }
        let header = format!("id=\"{me}\"");
        assert!(ok(AclRequest {
            grants: vec![("x-amz-grant-full-control", &header)],
            ..Default::default()
        }));
        assert!(!ok(AclRequest {
            grants: vec![("x-amz-grant-read", &header)],
            ..Default::default()
        }));
        let others =
            format!("id=\"{me}\", uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"");
        assert!(!ok(AclRequest {
            grants: vec![("x-amz-grant-full-control", &others)],
            ..Default::default()
        }));
        let body = AccessControlPolicy {
            grants: Some(vec![grant(&me, Permission::FULL_CONTROL)]),
            owner: None,
        };
        assert!(ok(AclRequest {
            body: Some(&body),
            ..Default::default()
        }));
        let body = AccessControlPolicy {
            grants: Some(vec![
                grant(&me, Permission::FULL_CONTROL),
                grant(&canonical_id("bob"), Permission::READ),
            ]),
            owner: None,
        };
        let e = check_acl(
            &AclRequest {
                body: Some(&body),
                ..Default::default()
            },
            &me,
        )
        .unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::AccessControlListNotSupported);
    }
}
