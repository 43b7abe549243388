//! A [`Store`] that counts what goes through it: calls by outcome, their latency, and the
//! object bytes written and read (what a cloud bills as ingress and egress). Every call
//! the gateway makes to a backend, for clients or for the mover, goes through one.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

use super::{PartRef, Store};
use crate::metrics::{BackendOp, BackendOutcome, Metrics, Name};
use crate::model::{
    Attrs, Body, ByteRange, ByteStream, Declared, GetOutcome, ObjectSummary, PutOutcome,
    ReadConditions, Result, WriteCondition,
};

pub struct Metered {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    name: Name,
}

impl Metered {
    pub fn new(inner: Arc<dyn Store>, metrics: Arc<Metrics>, name: &str) -> Self {
        Self {
            inner,
            metrics,
            name: Name::new(name),
        }
    }

    fn done<T>(&self, op: BackendOp, started: Instant, result: &Result<T>) {
        self.metrics.backend_call(
            &self.name,
            op,
            BackendOutcome::of(result),
            started.elapsed().as_secs_f64(),
        );
    }

    /// `body`, counting its bytes as sent to the backend as they go.
    fn sending(&self, body: Body) -> Body {
        let (metrics, name) = (self.metrics.clone(), self.name.clone());
        body.inspect(move |chunk| {
            if let Ok(c) = chunk {
                metrics.backend_bytes(&name, 0, c.len() as u64);
            }
        })
        .boxed()
    }

    fn receiving(&self, stream: ByteStream) -> ByteStream {
        let (metrics, name) = (self.metrics.clone(), self.name.clone());
        stream
            .inspect(move |chunk| {
                if let Ok(c) = chunk {
                    metrics.backend_bytes(&name, c.len() as u64, 0);
                }
            })
            .boxed()
    }
}

#[async_trait]
impl Store for Metered {
    async fn put(
        &self,
        key: &str,
        body: Body,
        declared: Declared,
        attrs: &Attrs,
        cond: &WriteCondition,
        part_size: u64,
    ) -> Result<PutOutcome> {
        let started = Instant::now();
        let r = self
            .inner
            .put(key, self.sending(body), declared, attrs, cond, part_size)
            .await;
        self.done(BackendOp::Put, started, &r);
        r
    }

    async fn get(
        &self,
        key: &str,
        range: Option<ByteRange>,
        cond: &ReadConditions,
        head: bool,
    ) -> Result<(GetOutcome, Option<ByteStream>)> {
        let started = Instant::now();
        let r = self.inner.get(key, range, cond, head).await;
        let op = if head {
            BackendOp::Head
        } else {
            BackendOp::Get
        };
        self.done(op, started, &r);
        r.map(|(outcome, stream)| (outcome, stream.map(|s| self.receiving(s))))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let started = Instant::now();
        let r = self.inner.delete(key).await;
        self.done(BackendOp::Delete, started, &r);
        r
    }

    /// A listing is counted as one call, when its stream ends (or fails).
    fn list(
        &self,
        prefix: &str,
        offset: Option<&str>,
    ) -> BoxStream<'static, Result<ObjectSummary>> {
        let started = Instant::now();
        let (metrics, name) = (self.metrics.clone(), self.name.clone());
        let mut inner = self.inner.list(prefix, offset);
        let mut counted = false;
        futures::stream::poll_fn(move |cx| {
            let item = inner.poll_next_unpin(cx);
            if !counted {
                let outcome = match &item {
                    std::task::Poll::Ready(None) => Some(BackendOutcome::Ok),
                    std::task::Poll::Ready(Some(Err(e))) => Some(BackendOutcome::of_error(e)),
                    _ => None,
                };
                if let Some(outcome) = outcome {
                    counted = true;
                    metrics.backend_call(
                        &name,
                        BackendOp::List,
                        outcome,
                        started.elapsed().as_secs_f64(),
                    );
                }
            }
            item
        })
        .boxed()
    }

    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        let started = Instant::now();
        let r = self.inner.copy(from, to).await;
        self.done(BackendOp::Copy, started, &r);
        r
    }

    async fn mpu_create(&self, key: &str, attrs: &Attrs) -> Result<String> {
        let started = Instant::now();
        let r = self.inner.mpu_create(key, attrs).await;
        self.done(BackendOp::MpuCreate, started, &r);
        r
    }

    async fn mpu_put_part(
        &self,
        key: &str,
        upload: &str,
        nonce: &str,
        part_idx: usize,
        body: Body,
        len: Option<u64>,
    ) -> Result<PartRef> {
        let started = Instant::now();
        let r = self
            .inner
            .mpu_put_part(key, upload, nonce, part_idx, self.sending(body), len)
            .await;
        self.done(BackendOp::MpuPart, started, &r);
        r
    }

    async fn mpu_complete(
        &self,
        key: &str,
        upload: &str,
        nonce: &str,
        parts: Vec<PartRef>,
        attrs: &Attrs,
        etag: &str,
    ) -> Result<PutOutcome> {
        let started = Instant::now();
        let r = self
            .inner
            .mpu_complete(key, upload, nonce, parts, attrs, etag)
            .await;
        self.done(BackendOp::MpuComplete, started, &r);
        r
    }

    async fn mpu_abort(&self, key: &str, upload: &str, nonce: &str) -> Result<()> {
        let started = Instant::now();
        let r = self.inner.mpu_abort(key, upload, nonce).await;
        self.done(BackendOp::MpuAbort, started, &r);
        r
    }

    async fn put_internal(&self, path: &str, data: Bytes) -> Result<()> {
        let started = Instant::now();
        let r = self.inner.put_internal(path, data).await;
        self.done(BackendOp::Internal, started, &r);
        r
    }

    async fn get_internal(&self, path: &str) -> Result<Option<Bytes>> {
        let started = Instant::now();
        let r = self.inner.get_internal(path).await;
        self.done(BackendOp::Internal, started, &r);
        r
    }

    async fn delete_internal(&self, path: &str) -> Result<()> {
        let started = Instant::now();
        let r = self.inner.delete_internal(path).await;
        self.done(BackendOp::Internal, started, &r);
        r
    }

    async fn list_internal(&self, prefix: &str) -> Result<Vec<String>> {
        let started = Instant::now();
        let r = self.inner.list_internal(prefix).await;
        self.done(BackendOp::Internal, started, &r);
        r
    }
}
