//! An S3 server that stores nothing: it reads every body to the end and answers as if it
//! had kept it. The 256 × 256 MiB upload test sends 64 GiB through Switchyard, which
//! neither the disk nor memory could hold; this is its backend.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Result;
use futures::StreamExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::dto::*;
use s3s::service::S3ServiceBuilder;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};

/// What arrived, for a check that the uploads really went through.
#[derive(Default)]
pub struct Counters {
    pub bytes: AtomicU64,
}

struct Sink {
    counters: Arc<Counters>,
    seq: AtomicU64,
}

impl Sink {
    /// Reads a body to its end; bytes are counted as they arrive, so that uploads cut
    /// short still show how far they got.
    async fn drain(&self, body: Option<StreamingBlob>) -> S3Result<()> {
        if let Some(mut body) = body {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| s3_error!(IncompleteBody, "{e}"))?;
                self.counters
                    .bytes
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    fn etag(&self) -> ETag {
        ETag::Strong(format!("{:032x}", self.seq.fetch_add(1, Ordering::Relaxed)))
    }
}

#[async_trait::async_trait]
impl S3 for Sink {
    async fn head_bucket(
        &self,
        _req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn head_object(
        &self,
        _req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        Err(s3_error!(NoSuchKey))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.drain(req.input.body).await?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(self.etag()),
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(req.input.bucket),
            key: Some(req.input.key),
            upload_id: Some(format!(
                "upload-{}",
                self.seq.fetch_add(1, Ordering::Relaxed)
            )),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.drain(req.input.body).await?;
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(self.etag()),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let parts = req
            .input
            .multipart_upload
            .and_then(|m| m.parts)
            .map_or(0, |p| p.len());
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(req.input.bucket),
            key: Some(req.input.key),
            e_tag: Some(ETag::Strong(format!(
                "{:032x}-{parts}",
                self.seq.fetch_add(1, Ordering::Relaxed)
            ))),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        _req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }
}

/// Serves the sink on 127.0.0.1 (ephemeral port) in the current runtime until the task
/// is aborted; returns its address and counters.
pub async fn start(
    access_key: &str,
    secret_key: &str,
) -> Result<(
    std::net::SocketAddr,
    Arc<Counters>,
    tokio::task::JoinHandle<()>,
)> {
    let counters = Arc::new(Counters::default());
    let mut builder = S3ServiceBuilder::new(Sink {
        counters: counters.clone(),
        seq: AtomicU64::new(1),
    });
    builder.set_auth(SimpleAuth::from_single(access_key, secret_key));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let http = ConnBuilder::new(TokioExecutor::new());
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((socket, _)) = listener.accept().await {
            while conns.try_join_next().is_some() {}
            let _ = socket.set_nodelay(true);
            let conn = http
                .serve_connection(TokioIo::new(socket), service.clone())
                .into_owned();
            conns.spawn(async move {
                let _ = conn.await;
            });
        }
    });
    Ok((addr, counters, task))
}
