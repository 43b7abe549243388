//! Merged listings: a k-way merge of the members' sorted listings, de-duplicated (the
//! highest-priority member's copy wins), rolled up by delimiter, cut into pages.
//!
//! The continuation token is the last key or common prefix returned, so any engine can
//! serve the next page: nothing is remembered between pages.
//!
//! **Listing during a move.** A migration copies a key into the higher-priority member
//! before it deletes it from the lower one. Members are read at different moments, so a
//! page read from the new member first and the old one after could miss a key copied
//! after the first read and deleted before the second. For each page, this module reads
//! the members' entries over a key range in reverse priority order, lowest first, each
//! member's read complete before the next begins, and emits only entries up to the
//! smallest point every member was read to. A key live for the whole listing is then in
//! the old member when it is read, or it left it after being copied, and so is in the
//! new member when that is read later: every live key is listed at least once, and the
//! merge lists it once.

use std::pin::Pin;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::StreamExt;
use futures::stream::{BoxStream, Peekable};

use crate::backends::Backend;
use crate::model::{Error, ObjectSummary, Result};

/// After this many keys under one common prefix, a member's listing is restarted past the
/// prefix instead of reading on: cheap for small prefixes, bounded for huge ones.
const ROLLUP_SCAN_LIMIT: usize = 100;

/// Sorts after every key that starts with the string it is appended to (in practice).
const PAST: char = '\u{10FFFF}';

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Object(ObjectSummary),
    Prefix(String),
}

impl Entry {
    fn key(&self) -> &str {
        match self {
            Entry::Object(o) => &o.key,
            Entry::Prefix(p) => p,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Return only keys after this one (StartAfter, Marker, or a decoded token).
    pub after: Option<String>,
    pub max_keys: usize,
}

#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub entries: Vec<Entry>,
    pub truncated: bool,
    /// The last key or prefix of this page when there is more.
    pub next: Option<String>,
}

pub fn encode_token(last: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("1:{last}"))
}

pub fn decode_token(token: &str) -> Result<String> {
    let bad = || Error::InvalidArgument("the continuation token is not valid".into());
    let bytes = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    text.strip_prefix("1:").map(str::to_owned).ok_or_else(bad)
}

struct Cursor {
    backend: Arc<Backend>,
    stream: Pin<Box<Peekable<BoxStream<'static, Result<ObjectSummary>>>>>,
    prefix: String,
}

impl Cursor {
    fn open(backend: Arc<Backend>, prefix: &str, after: Option<&str>) -> Self {
        let stream = backend.store.list(prefix, after).peekable();
        Self {
            backend,
            stream: Box::pin(stream),
            prefix: prefix.to_owned(),
        }
    }

    async fn peek_key(&mut self) -> Result<Option<String>> {
        match self.stream.as_mut().peek().await {
            None => Ok(None),
            Some(Ok(o)) => Ok(Some(o.key.clone())),
            Some(Err(_)) => match self.stream.next().await {
                Some(Err(e)) => {
                    if matches!(e, Error::Unavailable { .. }) {
                        self.backend.mark_unhealthy();
                    }
                    Err(e)
                }
                _ => unreachable!("peeked an error"),
            },
        }
    }

    async fn next(&mut self) -> Option<ObjectSummary> {
        match self.stream.next().await {
            Some(Ok(o)) => Some(o),
            _ => None,
        }
    }

    /// Moves past every key starting with `cp`.
    async fn skip_prefix(&mut self, cp: &str) -> Result<()> {
        let mut scanned = 0;
        while let Some(key) = self.peek_key().await? {
            if !key.starts_with(cp) {
                return Ok(());
            }
            scanned += 1;
            if scanned > ROLLUP_SCAN_LIMIT {
                *self = Cursor::open(
                    self.backend.clone(),
                    &self.prefix.clone(),
                    Some(&format!("{cp}{PAST}")),
                );
                return Ok(());
            }
            self.next().await;
        }
        Ok(())
    }
}

/// Where listing resumes after `after`: past the whole common prefix when `after` is one.
fn resume_point(req: &ListRequest) -> Option<String> {
    let after = req.after.as_ref()?;
    if let Some(d) = &req.delimiter
        && !d.is_empty()
        && let Some(rest) = after.strip_prefix(&req.prefix)
        && rest.ends_with(d.as_str())
        && rest.find(d.as_str()) == Some(rest.len() - d.len())
    {
        return Some(format!("{after}{PAST}"));
    }
    Some(after.clone())
}

fn rollup<'a>(key: &'a str, prefix: &str, delimiter: Option<&str>) -> Option<&'a str> {
    let d = delimiter.filter(|d| !d.is_empty())?;
    let rest = &key[prefix.len()..];
    rest.find(d).map(|i| &key[..prefix.len() + i + d.len()])
}

/// How far a member's read covers the key space: through the key itself, or through every
/// key under a common prefix.
fn coverage_end(e: &Entry) -> String {
    match e {
        Entry::Object(o) => o.key.clone(),
        Entry::Prefix(p) => format!("{p}{PAST}"),
    }
}

/// Up to `n` entries (objects and common prefixes) of one member from the request's
/// position, and whether the member has no more.
async fn read_member(
    backend: &Arc<Backend>,
    req: &ListRequest,
    n: usize,
) -> Result<(Vec<Entry>, bool)> {
    let after = resume_point(req);
    let mut cursor = Cursor::open(backend.clone(), &req.prefix, after.as_deref());
    let mut entries = Vec::new();
    while entries.len() < n {
        let Some(key) = cursor.peek_key().await? else {
            return Ok((entries, true));
        };
        if let Some(cp) = rollup(&key, &req.prefix, req.delimiter.as_deref()) {
            let cp = cp.to_owned();
            cursor.skip_prefix(&cp).await?;
            entries.push(Entry::Prefix(cp));
        } else if let Some(o) = cursor.next().await {
            entries.push(Entry::Object(o));
        }
    }
    let exhausted = cursor.peek_key().await?.is_none();
    Ok((entries, exhausted))
}

/// Lists `members` (highest priority first) as one sorted, de-duplicated listing.
pub async fn list(members: &[Arc<Backend>], req: &ListRequest) -> Result<ListPage> {
    let mut page = ListPage::default();
    if req.max_keys == 0 {
        return Ok(page);
    }
    // Lowest priority first, one member at a time (see the module's doc). `bound` is how
    // far every member that has more was read.
    let mut read: Vec<Vec<Entry>> = vec![Vec::new(); members.len()];
    let mut bound: Option<String> = None;
    for (i, m) in members.iter().enumerate().rev() {
        let (entries, exhausted) = read_member(m, req, req.max_keys + 1).await?;
        if !exhausted && let Some(last) = entries.last() {
            let end = coverage_end(last);
            if bound.as_ref().is_none_or(|b| end < *b) {
                bound = Some(end);
            }
        }
        read[i] = entries;
    }
    // Merge: ascending, one entry per key (the highest-priority member's object), within
    // the bound.
    let mut next: Vec<usize> = vec![0; members.len()];
    let mut more = false;
    loop {
        let mut best: Option<(usize, &Entry)> = None;
        for (i, entries) in read.iter().enumerate() {
            if let Some(e) = entries.get(next[i])
                && best.is_none_or(|(_, b)| e.key() < b.key())
            {
                best = Some((i, e));
            }
        }
        let Some((winner, entry)) = best else { break };
        if bound.as_ref().is_some_and(|b| coverage_end(entry) > *b) {
            break;
        }
        if page.entries.len() == req.max_keys {
            more = true;
            break;
        }
        let key = entry.key().to_owned();
        page.entries.push(read[winner][next[winner]].clone());
        for (i, entries) in read.iter().enumerate() {
            if entries.get(next[i]).is_some_and(|e| e.key() == key) {
                next[i] += 1;
            }
        }
    }
    if more || bound.is_some() {
        page.truncated = true;
        page.next = page.entries.last().map(|e| e.key().to_owned());
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::backends::{ObjectStoreBackend, PartRef, Store};
    use crate::model::{
        Attrs, Body, ByteRange, ByteStream, Declared, GetOutcome, PutOutcome, ReadConditions,
        WriteCondition,
    };
    use bytes::Bytes;

    type Hook = Box<dyn FnOnce() -> futures::future::BoxFuture<'static, ()> + Send>;

    /// A store whose next listing first runs `hook` (a mover's step, at the worst moment).
    struct Hooked {
        inner: Arc<dyn Store>,
        hook: std::sync::Mutex<Option<Hook>>,
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
            self.inner.get(key, r, c, head).await
        }
        async fn delete(&self, key: &str) -> Result<()> {
            self.inner.delete(key).await
        }
        fn list(
            &self,
            prefix: &str,
            offset: Option<&str>,
        ) -> BoxStream<'static, Result<ObjectSummary>> {
            let hook = self.hook.lock().unwrap().take();
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
        ) -> Result<PutOutcome> {
            self.inner.mpu_complete(key, u, n, parts, attrs).await
        }
        async fn mpu_abort(&self, key: &str, u: &str, n: &str) -> Result<()> {
            self.inner.mpu_abort(key, u, n).await
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

    fn backend(name: &str, store: Arc<dyn Store>) -> Arc<Backend> {
        Arc::new(Backend::new(
            name.to_owned(),
            "memory",
            &Default::default(),
            store,
            std::time::Duration::from_secs(10),
        ))
    }

    async fn put(store: &dyn Store, key: &str) {
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

    async fn all_keys(members: &[Arc<Backend>], max_keys: usize) -> Vec<String> {
        let mut keys = Vec::new();
        let mut after = None;
        loop {
            let page = list(
                members,
                &ListRequest {
                    after: after.clone(),
                    max_keys,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            keys.extend(page.entries.iter().map(|e| e.key().to_owned()));
            if !page.truncated {
                return keys;
            }
            after = page.next;
        }
    }

    #[tokio::test]
    async fn a_key_moved_between_two_members_reads_is_listed() {
        let new: Arc<dyn Store> = Arc::new(ObjectStoreBackend::memory("new", None));
        let old_inner: Arc<dyn Store> = Arc::new(ObjectStoreBackend::memory("old", None));
        for k in ["a", "b", "c"] {
            put(old_inner.as_ref(), k).await;
        }
        // The mover moves "b" (copy to new, then delete from old) just as old is listed.
        let (n, o) = (new.clone(), old_inner.clone());
        let hook: Hook = Box::new(move || {
            Box::pin(async move {
                put(n.as_ref(), "b").await;
                o.delete("b").await.unwrap();
            })
        });
        let old: Arc<dyn Store> = Arc::new(Hooked {
            inner: old_inner,
            hook: std::sync::Mutex::new(Some(hook)),
        });
        let members = [backend("new", new), backend("old", old)];
        assert_eq!(all_keys(&members, 1000).await, ["a", "b", "c"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn listings_during_a_move_miss_no_key() {
        let new: Arc<dyn Store> = Arc::new(ObjectStoreBackend::memory("new", None));
        let old: Arc<dyn Store> = Arc::new(ObjectStoreBackend::memory("old", None));
        let keys: Vec<String> = (0..2000).map(|i| format!("d/{i:06}/x")).collect();
        for k in &keys {
            put(old.as_ref(), k).await;
        }
        let members = [backend("new", new.clone()), backend("old", old.clone())];
        let mover = {
            let keys = keys.clone();
            tokio::spawn(async move {
                for k in &keys {
                    put(new.as_ref(), k).await;
                    old.delete(k).await.unwrap();
                    tokio::time::sleep(std::time::Duration::from_micros(200)).await;
                }
            })
        };
        let mut listings = 0;
        while !mover.is_finished() {
            for max_keys in [50, 1000] {
                assert_eq!(
                    all_keys(&members, max_keys).await,
                    keys,
                    "listing {listings}"
                );
                listings += 1;
            }
        }
        mover.await.unwrap();
        assert!(listings > 2, "the move ended before the listings began");
    }

    #[test]
    fn tokens_round_trip() {
        for k in ["a", "ünï/çødé", "x/y/"] {
            assert_eq!(decode_token(&encode_token(k)).unwrap(), k);
        }
        assert!(decode_token("!!").is_err());
        assert!(decode_token(&URL_SAFE_NO_PAD.encode("nope")).is_err());
    }

    #[test]
    fn rollups() {
        assert_eq!(rollup("a/b/c", "", Some("/")), Some("a/"));
        assert_eq!(rollup("a/b/c", "a/", Some("/")), Some("a/b/"));
        assert_eq!(rollup("a/b", "a/", Some("/")), None);
        assert_eq!(rollup("a/b", "", None), None);
    }
}
