//! S3 ACLs as policy statements. A bucket whose object ownership enables ACLs has its
//! bucket's and objects' grants weighed beside the policies: each grant becomes an Allow
//! statement for the actions AWS's table gives its permission ("Mapping of ACL permissions
//! and access policy permissions"), so a Deny in a policy still wins over it, and the
//! decision names the grant that allowed.

use super::pattern::{Pattern, Syntax};
use super::statement::{Actions, Effect, Principals, ResourcePattern, Resources, Statement};
use super::{PolicyDocument, PolicyKind};
use crate::model::{AclGrant, AclPermission, Grantee};

/// What an ACL is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclOn<'a> {
    Bucket(&'a str),
    Object { bucket: &'a str, key: &'a str },
}

/// The actions a permission allows on a bucket, and whether they act on its objects
/// (`bucket/*`) rather than on the bucket.
fn bucket_actions(p: AclPermission) -> &'static [(&'static str, bool)] {
    match p {
        AclPermission::Read => &[
            ("s3:ListBucket", false),
            ("s3:ListBucketVersions", false),
            ("s3:ListBucketMultipartUploads", false),
        ],
        AclPermission::Write => &[("s3:PutObject", true), ("s3:DeleteObject", true)],
        AclPermission::ReadAcp => &[("s3:GetBucketAcl", false)],
        AclPermission::WriteAcp => &[("s3:PutBucketAcl", false)],
        AclPermission::FullControl => &[
            ("s3:ListBucket", false),
            ("s3:ListBucketVersions", false),
            ("s3:ListBucketMultipartUploads", false),
            ("s3:PutObject", true),
            ("s3:DeleteObject", true),
            ("s3:GetBucketAcl", false),
            ("s3:PutBucketAcl", false),
        ],
    }
}

/// The actions a permission allows on an object (WRITE means nothing there).
fn object_actions(p: AclPermission) -> &'static [&'static str] {
    match p {
        AclPermission::Read => &["s3:GetObject", "s3:GetObjectVersion"],
        AclPermission::Write => &[],
        AclPermission::ReadAcp => &["s3:GetObjectAcl", "s3:GetObjectVersionAcl"],
        AclPermission::WriteAcp => &["s3:PutObjectAcl", "s3:PutObjectVersionAcl"],
        AclPermission::FullControl => &[
            "s3:GetObject",
            "s3:GetObjectVersion",
            "s3:GetObjectAcl",
            "s3:GetObjectVersionAcl",
            "s3:PutObjectAcl",
            "s3:PutObjectVersionAcl",
        ],
    }
}

fn permission_name(p: AclPermission) -> &'static str {
    match p {
        AclPermission::Read => "READ",
        AclPermission::Write => "WRITE",
        AclPermission::ReadAcp => "READ_ACP",
        AclPermission::WriteAcp => "WRITE_ACP",
        AclPermission::FullControl => "FULL_CONTROL",
    }
}

fn principals(g: &Grantee) -> (Principals, String) {
    let mut p = Principals {
        everyone: false,
        authenticated: false,
        users: Vec::new(),
        negated: false,
    };
    let name = match g {
        Grantee::AllUsers => {
            p.everyone = true;
            "AllUsers".to_owned()
        }
        Grantee::AuthenticatedUsers => {
            p.authenticated = true;
            "AuthenticatedUsers".to_owned()
        }
        Grantee::User(u) => {
            p.users.push(u.as_str().into());
            format!("user {u}")
        }
    };
    (p, name)
}

fn literal(text: &str) -> Pattern {
    Pattern::Literal(text.into())
}

impl PolicyDocument {
    /// The Allow statements of `grants` on `on`, one per grant that allows anything,
    /// each named `ACL <grantee> <PERMISSION>`. `ignore_public`: Block Public Access's
    /// IgnorePublicAcls, under which grants to AllUsers and AuthenticatedUsers count for
    /// nothing.
    pub fn from_acl(on: AclOn<'_>, grants: &[AclGrant], ignore_public: bool) -> Self {
        let bucket = match on {
            AclOn::Bucket(b) | AclOn::Object { bucket: b, .. } => b,
        };
        let mut statements = Vec::new();
        for g in grants {
            if ignore_public && g.grantee.is_public() {
                continue;
            }
            // (action, resource after arn:aws:s3:::)
            let allowed: Vec<(&str, String)> = match on {
                AclOn::Bucket(b) => bucket_actions(g.permission)
                    .iter()
                    .map(|&(a, objects)| (a, if objects { format!("{b}/*") } else { b.into() }))
                    .collect(),
                AclOn::Object { bucket, key } => object_actions(g.permission)
                    .iter()
                    .map(|&a| (a, format!("{bucket}/{key}")))
                    .collect(),
            };
            if allowed.is_empty() {
                continue;
            }
            let (principal, who) = principals(&g.grantee);
            // One statement per resource: the bucket, or its objects.
            let mut resources: Vec<&String> = allowed.iter().map(|(_, r)| r).collect();
            resources.dedup();
            for resource in resources {
                let actions = allowed
                    .iter()
                    .filter(|(_, r)| r == resource)
                    .map(|(a, _)| literal(&a.to_ascii_lowercase()))
                    .collect();
                // A bucket name has no wildcard: `*` is the only one here.
                let rest = match on {
                    AclOn::Bucket(_) if resource.ends_with("/*") => {
                        let glob = Syntax {
                            wildcards: true,
                            variables: false,
                        };
                        Pattern::compile(resource, glob).expect("a pattern without variables")
                    }
                    _ => literal(resource),
                };
                statements.push(Statement {
                    sid: Some(format!("ACL {who} {}", permission_name(g.permission))),
                    effect: Effect::Allow,
                    principal: Some(principal.clone()),
                    actions: Actions {
                        patterns: actions,
                        negated: false,
                    },
                    resources: Resources {
                        patterns: vec![ResourcePattern { all: false, rest }],
                        negated: false,
                    },
                    conditions: Vec::new(),
                });
            }
        }
        PolicyDocument {
            source: String::new(),
            kind: PolicyKind::Bucket {
                bucket: bucket.to_owned(),
            },
            statements,
        }
    }
}
