//! SigV4 users from configuration, and per-bucket anonymous access.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::path::S3Path;
use s3s::{S3Result, s3_error};

use crate::config::{Anonymous, Config, ConfigError};
use crate::router::Router;

/// Secret keys by access key. s3s checks header and presigned signatures against them.
pub struct Auth {
    users: HashMap<String, String>,
}

impl Auth {
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let mut users = HashMap::new();
        for (i, u) in config.users.iter().enumerate() {
            users.insert(
                u.access_key.clone(),
                u.secret_key.resolve(&format!("users[{i}].secret_key"))?,
            );
        }
        Ok(Self { users })
    }
}

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.users.get(access_key) {
            Some(secret) => Ok(SecretKey::from(secret.as_str())),
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

/// Signed requests may do anything; unsigned ones only what their bucket allows.
pub struct Access {
    router: Arc<ArcSwap<Router>>,
}

impl Access {
    pub fn new(router: Arc<ArcSwap<Router>>) -> Self {
        Self { router }
    }
}

const READ_OPS: [&str; 6] = [
    "GetObject",
    "HeadObject",
    "ListObjects",
    "ListObjectsV2",
    "HeadBucket",
    "GetBucketLocation",
];

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        if cx.credentials().is_some() {
            return Ok(());
        }
        let bucket = match cx.s3_path() {
            S3Path::Root => {
                return Err(s3_error!(
                    AccessDenied,
                    "Anonymous users cannot list buckets."
                ));
            }
            S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => bucket.to_string(),
        };
        let router = self.router.load();
        let Ok(vb) = router.bucket(&bucket) else {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        };
        let allowed = match vb.anonymous {
            Anonymous::None => false,
            Anonymous::Read => READ_OPS.contains(&cx.s3_op().name()),
            Anonymous::ReadWrite => true,
        };
        if allowed {
            Ok(())
        } else {
            Err(s3_error!(AccessDenied, "Access Denied"))
        }
    }
}
