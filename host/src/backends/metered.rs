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

    /// A listing is counted as one call, when its stream ends or fails, or when its
    /// reader drops it before the end (a page of a merged listing needs only the first
    /// keys of each member: what the backend answered so far was an answer).
    fn list(
        &self,
        prefix: &str,
        offset: Option<&str>,
    ) -> BoxStream<'static, Result<ObjectSummary>> {
        let mut call = ListCall {
            metrics: self.metrics.clone(),
            name: self.name.clone(),
            started: Instant::now(),
            counted: false,
        };
        let mut inner = self.inner.list(prefix, offset);
        futures::stream::poll_fn(move |cx| {
            let item = inner.poll_next_unpin(cx);
            match &item {
                std::task::Poll::Ready(None) => call.done(BackendOutcome::Ok),
                std::task::Poll::Ready(Some(Err(e))) => call.done(BackendOutcome::of_error(e)),
                _ => {}
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

    fn keeps_tags(&self) -> bool {
        self.inner.keeps_tags()
    }

    async fn get_tags(&self, key: &str) -> Result<crate::model::Tags> {
        let started = Instant::now();
        let r = self.inner.get_tags(key).await;
        self.done(BackendOp::Head, started, &r);
        r
    }

    fn native_versions(&self) -> Option<crate::backends::S3Native> {
        self.inner.native_versions()
    }

    async fn put_tags(&self, key: &str, tags: &crate::model::Tags) -> Result<()> {
        let started = Instant::now();
        let r = self.inner.put_tags(key, tags).await;
        self.done(BackendOp::Put, started, &r);
        r
    }

    fn keeps_acls(&self) -> bool {
        self.inner.keeps_acls()
    }

    async fn put_acl(&self, key: &str, acl: Option<&crate::model::ObjectAcl>) -> Result<()> {
        let started = Instant::now();
        let r = self.inner.put_acl(key, acl).await;
        self.done(BackendOp::Put, started, &r);
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

    async fn list_internal_rows(&self, prefix: &str) -> Result<Option<Vec<ObjectSummary>>> {
        let started = Instant::now();
        let r = self.inner.list_internal_rows(prefix).await;
        self.done(BackendOp::Internal, started, &r);
        r
    }
}

/// One listing's call, counted once: at its end, its first error, or when dropped.
struct ListCall {
    metrics: Arc<Metrics>,
    name: Name,
    started: Instant,
    counted: bool,
}

impl ListCall {
    fn done(&mut self, outcome: BackendOutcome) {
        if !std::mem::replace(&mut self.counted, true) {
            self.metrics.backend_call(
                &self.name,
                BackendOp::List,
                outcome,
                self.started.elapsed().as_secs_f64(),
            );
        }
    }
}

impl Drop for ListCall {
    fn drop(&mut self) {
        self.done(BackendOutcome::Ok);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::ObjectStoreBackend;
    use crate::backends::testing::put;

    /// A listing read only in part (a page of a merged listing) is still one call.
    #[tokio::test]
    async fn a_listing_dropped_before_its_end_is_counted() {
        let metrics = Arc::new(Metrics::default());
        let store = Metered::new(
            Arc::new(ObjectStoreBackend::memory("m", None)),
            metrics.clone(),
            "m",
        );
        for key in ["a", "b", "c"] {
            put(&store, key).await;
        }
        let mut listing = store.list("", None);
        assert!(listing.next().await.unwrap().is_ok());
        drop(listing);
        let all: Vec<_> = store.list("", None).collect().await;
        assert_eq!(all.len(), 3);
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"switchyard_backend_requests_total{backend="m",operation="list",outcome="ok"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"switchyard_backend_requests_total{backend="m",operation="put",outcome="ok"} 3"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"switchyard_backend_sent_bytes_total{backend="m"}"#),
            "{text}"
        );
    }
}
