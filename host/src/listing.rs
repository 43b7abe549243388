//! Merged listings: a k-way merge of the members' sorted listings, de-duplicated (the
//! highest-priority member's copy wins), rolled up by delimiter, cut into pages.
//!
//! The continuation token is the last key or common prefix returned, so any engine can
//! serve the next page: nothing is remembered between pages.
//!
//! **Listing during a move.** Members are read at different moments, one after the other,
//! and each page emits only entries up to the smallest point every read reached. Two
//! things can change between two reads:
//!
//! * A migration copies a key into a higher-priority member before it deletes it from a
//!   lower one. Reading the new member before the old could miss a key copied after the
//!   first read and deleted before the second. So the members are also read in reverse
//!   priority order, lowest first: a key absent when the old member is read left it after
//!   being copied, and is in the new member when that is read later. Every key live for
//!   the whole listing is listed.
//! * A key can be in both members, the newer copy in the higher one, and be deleted
//!   (lowest member first, see `Router::delete`). Reading only lowest-first could see the
//!   old member's stale copy and then not the new one's. So the higher members are read
//!   before the lowest as well, and a copy seen in a higher member in either read hides
//!   the lower members' copies. No entry is older than one that was current during the
//!   listing.
//!
//! With members `new, old` a page reads `new`, `old`, `new`; a bucket of one member reads
//! it once.

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
    if req.max_keys == 0 || members.is_empty() {
        return Ok(page);
    }
    // The reads of one page, one at a time (see the module's doc): every member but the
    // last in priority order, the last, then back up in reverse order. `bound` is how far
    // every read that stopped short went.
    let last = members.len() - 1;
    let order = (0..last)
        .chain(std::iter::once(last))
        .chain((0..last).rev());
    let mut earlier: Vec<Option<Vec<Entry>>> = vec![None; members.len()];
    let mut later: Vec<Vec<Entry>> = vec![Vec::new(); members.len()];
    let mut bound: Option<String> = None;
    for i in order {
        let (entries, exhausted) = read_member(&members[i], req, req.max_keys + 1).await?;
        if !exhausted && let Some(e) = entries.last() {
            let end = coverage_end(e);
            if bound.as_ref().is_none_or(|b| end < *b) {
                bound = Some(end);
            }
        }
        if i < last && earlier[i].is_none() {
            earlier[i] = Some(entries);
        } else {
            later[i] = entries;
        }
    }
    // One entry per key: the highest-priority member that had it in either of its reads
    // wins, its later read before its earlier one.
    let mut merged: std::collections::BTreeMap<String, Entry> = std::collections::BTreeMap::new();
    for i in (0..members.len()).rev() {
        let reads = earlier[i].iter().flatten().chain(&later[i]);
        for e in reads {
            if bound.as_ref().is_none_or(|b| coverage_end(e) <= *b) {
                merged.insert(e.key().to_owned(), e.clone());
            }
        }
    }
    let more = merged.len() > req.max_keys;
    page.entries = merged.into_values().take(req.max_keys).collect();
    if more || bound.is_some() {
        page.truncated = true;
        page.next = page.entries.last().map(|e| e.key().to_owned());
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::backends::testing::{Hook, Hooked, Trigger, first, put};
    use crate::backends::{ObjectStoreBackend, Store};
    use crate::model::{Attrs, Body, Declared, WriteCondition};
    use bytes::Bytes;

    fn backend(name: &str, store: Arc<dyn Store>) -> Arc<Backend> {
        Arc::new(Backend::new(
            name.to_owned(),
            "memory",
            &Default::default(),
            store,
            std::time::Duration::from_secs(10),
        ))
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
        let old: Arc<dyn Store> = Arc::new(Hooked::new(old_inner).on_list(first(), hook));
        let members = [backend("new", new), backend("old", old)];
        assert_eq!(all_keys(&members, 1000).await, ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn a_key_deleted_between_two_members_reads_shows_no_older_copy() {
        let new_inner: Arc<dyn Store> = Arc::new(ObjectStoreBackend::memory("new", None));
        let old_inner: Arc<dyn Store> = Arc::new(ObjectStoreBackend::memory("old", None));
        // "k" is in both: the source's old copy, and a client's newer write.
        put(old_inner.as_ref(), "k").await;
        let body: Body = futures::stream::iter(vec![Ok(Bytes::from_static(b"newer"))]).boxed();
        new_inner
            .put(
                "k",
                body,
                Declared::default(),
                &Attrs::default(),
                &WriteCondition::None,
                1 << 23,
            )
            .await
            .unwrap();
        // A client deletes it (lowest member first) just before the first read of the new
        // member that follows a read of the old one.
        let old_read = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = old_read.clone();
        let mark: Hook = Box::new(move || {
            Box::pin(async move { flag.store(true, std::sync::atomic::Ordering::Relaxed) })
        });
        let old: Arc<dyn Store> = Arc::new(Hooked::new(old_inner.clone()).on_list(first(), mark));
        let (n, o) = (new_inner.clone(), old_inner);
        let delete: Hook = Box::new(move || {
            Box::pin(async move {
                o.delete("k").await.unwrap();
                n.delete("k").await.unwrap();
            })
        });
        let after_old: Trigger =
            Box::new(move || old_read.load(std::sync::atomic::Ordering::Relaxed));
        let new: Arc<dyn Store> = Arc::new(Hooked::new(new_inner).on_list(after_old, delete));
        let members = [backend("new", new), backend("old", old)];
        let page = list(
            &members,
            &ListRequest {
                max_keys: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        // Deleted during the listing: absent, or the newer copy; never the older one.
        for e in &page.entries {
            if let Entry::Object(o) = e {
                // The memory store numbers ETags per store: the sizes tell the copies apart.
                assert_eq!(o.size, 5, "listed the older copy of {}", o.key);
            }
        }
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
