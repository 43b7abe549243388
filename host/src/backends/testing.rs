//! A store wrapper for tests that need another party to act at the worst moment: a
//! migration's step or a client's write in the middle of one of the store's calls.

use std::sync::Arc;
use std::sync::Mutex;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

use super::{PartRef, Store};
use crate::model::{
    Attrs, Body, ByteRange, ByteStream, Declared, Error, GetOutcome, ObjectSummary, PutOutcome,
    ReadConditions, Result, WriteCondition,
};

/// What another party does.
pub type Hook = Box<dyn FnOnce() -> futures::future::BoxFuture<'static, ()> + Send>;
/// When it does it (asked at each call).
pub type Trigger = Box<dyn Fn() -> bool + Send + Sync>;

/// Delegates to `inner`; runs a hook before the first listing (or read) for which its
/// trigger holds; fails deletes on demand.
pub struct Hooked {
    inner: Arc<dyn Store>,
    on_list: Mutex<Option<(Trigger, Hook)>>,
    on_get: Mutex<Option<(Trigger, Hook)>>,
    pub fail_deletes: bool,
}

impl Hooked {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            on_list: Mutex::new(None),
            on_get: Mutex::new(None),
            fail_deletes: false,
        }
    }

    pub fn on_list(self, when: Trigger, hook: Hook) -> Self {
        *self.on_list.lock().unwrap() = Some((when, hook));
        self
    }

    pub fn on_get(self, when: Trigger, hook: Hook) -> Self {
        *self.on_get.lock().unwrap() = Some((when, hook));
        self
    }

    fn due(slot: &Mutex<Option<(Trigger, Hook)>>) -> Option<Hook> {
        let mut slot = slot.lock().unwrap();
        if slot.as_ref().is_some_and(|(when, _)| when()) {
            return slot.take().map(|(_, hook)| hook);
        }
        None
    }
}

/// A trigger that always holds: the hook runs at the first call.
pub fn first() -> Trigger {
    Box::new(|| true)
}

/// Writes `key` with a one-byte body (`x`).
pub async fn put(store: &dyn Store, key: &str) {
    let body: Body = futures::stream::iter(vec![Ok(Bytes::from_static(b"x"))]).boxed();
    store
        .put(
            key,
            body,
            Declared::default(),
            &Attrs::default(),
            &WriteCondition::None,
            1 << 23,
        )
        .await
        .unwrap();
}

#[async_trait::async_trait]
impl Store for Hooked {
    async fn put(
        &self,
        key: &str,
        body: Body,
        d: Declared,
        a: &Attrs,
        c: &WriteCondition,
        p: u64,
    ) -> Result<PutOutcome> {
        self.inner.put(key, body, d, a, c, p).await
    }
    async fn get(
        &self,
        key: &str,
        r: Option<ByteRange>,
        c: &ReadConditions,
        head: bool,
    ) -> Result<(GetOutcome, Option<ByteStream>)> {
        if let Some(hook) = Self::due(&self.on_get) {
            hook().await;
        }
        self.inner.get(key, r, c, head).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        if self.fail_deletes {
            return Err(Error::Unavailable {
                backend: "hooked".into(),
                message: "deletes fail here".into(),
            });
        }
        self.inner.delete(key).await
    }
    fn list(
        &self,
        prefix: &str,
        offset: Option<&str>,
    ) -> BoxStream<'static, Result<ObjectSummary>> {
        let hook = Self::due(&self.on_list);
        let (inner, prefix, offset) = (
            self.inner.clone(),
            prefix.to_owned(),
            offset.map(str::to_owned),
        );
        futures::stream::once(async move {
            if let Some(h) = hook {
                h().await;
            }
            inner.list(&prefix, offset.as_deref())
        })
        .flatten()
        .boxed()
    }
    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        self.inner.copy(from, to).await
    }
    async fn mpu_create(&self, key: &str, attrs: &Attrs) -> Result<String> {
        self.inner.mpu_create(key, attrs).await
    }
    async fn mpu_put_part(
        &self,
        key: &str,
        u: &str,
        n: &str,
        i: usize,
        body: Body,
        len: Option<u64>,
    ) -> Result<PartRef> {
        self.inner.mpu_put_part(key, u, n, i, body, len).await
    }
    async fn mpu_complete(
        &self,
        key: &str,
        u: &str,
        n: &str,
        parts: Vec<PartRef>,
        attrs: &Attrs,
        etag: &str,
    ) -> Result<PutOutcome> {
        self.inner.mpu_complete(key, u, n, parts, attrs, etag).await
    }
    async fn mpu_abort(&self, key: &str, u: &str, n: &str) -> Result<()> {
        self.inner.mpu_abort(key, u, n).await
    }
    fn keeps_tags(&self) -> bool {
        self.inner.keeps_tags()
    }
    async fn get_tags(&self, key: &str) -> Result<crate::model::Tags> {
        self.inner.get_tags(key).await
    }
    async fn put_tags(&self, key: &str, tags: &crate::model::Tags) -> Result<()> {
        self.inner.put_tags(key, tags).await
    }
    async fn put_internal(&self, path: &str, data: Bytes) -> Result<()> {
        self.inner.put_internal(path, data).await
    }
    async fn get_internal(&self, path: &str) -> Result<Option<Bytes>> {
        self.inner.get_internal(path).await
    }
    async fn delete_internal(&self, path: &str) -> Result<()> {
        self.inner.delete_internal(path).await
    }
    async fn list_internal(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list_internal(prefix).await
    }
}
