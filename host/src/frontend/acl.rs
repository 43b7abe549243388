//! ACLs, object ownership and Block Public Access, as S3 has them on a bucket made today:
//! object ownership `BucketOwnerEnforced`, which disables ACLs. The bucket's owner owns
//! every object and holds FULL_CONTROL; access is decided by policies alone. So every S3
//! tool can read ACLs and set the ones that change nothing (`private`,
//! `bucket-owner-full-control`, or the owner's own FULL_CONTROL grant), and any other ACL
//! is refused as S3 refuses it (400 AccessControlListNotSupported), never dropped.

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};
use sha2::{Digest, Sha256};

use super::{Frontend, Requester, requester, traced, view_of};
use crate::config;
use crate::model::{self, Error, ReadConditions};
use crate::router::Router;

/// The canonical id S3 gives anonymous requesters.
const ANONYMOUS_ID: &str = "65a011a29cdf8ec533ec3d1ccaae921c";

/// The stable canonical user id of a configured user: a digest of its name, 64 hex digits
/// as S3's ids are, so that it is the same on every engine and across restarts.
pub fn canonical_id(user: &str) -> String {
    hex::encode(Sha256::digest(format!("switchyard-user:{user}").as_bytes()))
}

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
    let owner = traced(
        "GetBucketAcl",
        bucket,
        bucket_owner(&snapshot.router, bucket, &who),
    )
    .await?;
    Ok(S3Response::new(GetBucketAclOutput {
        grants: Some(owner_acl(&owner)),
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
    let owner = traced(
        "PutBucketAcl",
        &input.bucket,
        bucket_owner(&snapshot.router, &input.bucket, &who),
    )
    .await?;
    let acl = AclRequest {
        canned: input.acl.as_ref().map(BucketCannedACL::as_str),
        grants: grant_headers(&req.headers),
        body: input.access_control_policy.as_ref(),
    };
    check_acl(&acl, owner.id.as_deref().unwrap_or_default())?;
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
    super::unversioned(version_id)?;
    let snapshot = fe.live.current();
    let who = requester(&snapshot, req)?;
    let router = &snapshot.router;
    let view = view_of(router, req, bucket, op);
    traced(op, bucket, async {
        router
            .get(&view, bucket, key, None, &ReadConditions::default(), true)
            .await?;
        bucket_owner(router, bucket, &who).await
    })
    .await
}

pub async fn get_object_acl(
    fe: &Frontend,
    req: S3Request<GetObjectAclInput>,
) -> S3Result<S3Response<GetObjectAclOutput>> {
    let i = &req.input;
    let owner = object_owner(
        fe,
        &req,
        "GetObjectAcl",
        &i.bucket,
        &i.key,
        i.version_id.as_deref(),
    )
    .await?;
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
    let owner = object_owner(
        fe,
        &req,
        "PutObjectAcl",
        &i.bucket,
        &i.key,
        i.version_id.as_deref(),
    )
    .await?;
    let acl = AclRequest {
        canned: i.acl.as_ref().map(ObjectCannedACL::as_str),
        grants: grant_headers(&req.headers),
        body: i.access_control_policy.as_ref(),
    };
    check_acl(&acl, owner.id.as_deref().unwrap_or_default())?;
    Ok(S3Response::new(PutObjectAclOutput::default()))
}

pub async fn get_bucket_ownership_controls(
    fe: &Frontend,
    req: S3Request<GetBucketOwnershipControlsInput>,
) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
    let router = fe.router();
    let bucket = &req.input.bucket;
    traced("GetBucketOwnershipControls", bucket, async {
        router.bucket(bucket).await.map(|_| ())
    })
    .await?;
    Ok(S3Response::new(GetBucketOwnershipControlsOutput {
        ownership_controls: Some(enforced()),
    }))
}

fn enforced() -> OwnershipControls {
    OwnershipControls {
        rules: vec![OwnershipControlsRule {
            object_ownership: ObjectOwnership::from_static(ObjectOwnership::BUCKET_OWNER_ENFORCED),
        }],
    }
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
    traced("PutBucketOwnershipControls", &input.bucket, async {
        dynamic_only(&router, &input.bucket, "object ownership (always BucketOwnerEnforced)")
            .await?;
        if rules.len() != 1 {
            return Err(Error::InvalidRequest(
                "OwnershipControls takes exactly one rule".into(),
            ));
        }
        match rules[0].object_ownership.as_str() {
            // What every bucket has: nothing to store.
            ObjectOwnership::BUCKET_OWNER_ENFORCED => Ok(()),
            o @ (ObjectOwnership::BUCKET_OWNER_PREFERRED | ObjectOwnership::OBJECT_WRITER) => {
                Err(Error::NotImplemented(format!(
                    "object ownership {o} is not supported: ACLs are disabled on every bucket (BucketOwnerEnforced)"
                )))
            }
            o => Err(Error::InvalidArgument(format!(
                "unknown object ownership {o:?}"
            ))),
        }
    })
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
        dynamic_only(&router, bucket, "object ownership (always BucketOwnerEnforced)").await?;
        // Without controls S3 falls back to ObjectWriter: ACLs enabled.
        Err::<(), _>(Error::NotImplemented(
            "deleting the ownership controls would enable ACLs, which are not supported: every bucket stays BucketOwnerEnforced".into(),
        ))
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
