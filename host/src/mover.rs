//! The mover: copies objects between members of a virtual bucket, for migrations.
//!
//! It keeps no state of its own. Each run lists the source member, skips every key the
//! destination already has, and copies the rest with a conditional create, so a run that
//! is stopped at any point (even `kill -9`) and started again finishes the job without
//! copying anything twice, and never overwrites a newer client write. The key space splits
//! into shards by a stable hash, so N engines can each migrate one shard with no
//! coordination. See docs/migration.md for the guarantees under concurrent clients.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};

use crate::backends::Backend;
use crate::metrics::{JobKind, Metrics, MoverLabels, MoverOutcome};
use crate::model::{
    Attrs, Body, ByteStream, Declared, Error, ObjectSummary, ReadConditions, Result, WriteCondition,
};
use crate::policy::{ObjectView, TierAction};
use crate::router::{Router, VirtualBucket};

/// Shard `index` of `count` (`--shard I/N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?}: a shard is I/N, e.g. 0/3"))?;
        let index: u64 = i
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: I is not a number"))?;
        let count: u64 = n
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: N is not a number"))?;
        if count == 0 || index >= count {
            return Err(format!("{s:?}: need 0 <= I < N"));
        }
        Ok(Self { index, count })
    }

    /// Whether `key` belongs to this shard. The hash (64-bit FNV-1a of the key's bytes) is
    /// part of the interface: engines of different versions must agree on it.
    pub fn owns(&self, key: &str) -> bool {
        key_hash(key) % self.count == self.index
    }
}

/// 64-bit FNV-1a of the key's bytes: the shard hash. It is part of the interface (engines
/// of different versions must agree on it), so it is spelled out rather than taken from a
/// hasher whose output may change.
fn key_hash(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Copy and keep the source.
    Copy,
    /// Copy, verify, then delete from the source.
    Move,
}

#[derive(Debug, Clone)]
pub struct MigrateSpec {
    pub bucket: String,
    pub from: String,
    pub to: String,
    pub mode: Mode,
    pub shard: Shard,
    pub dry_run: bool,
    pub concurrency: usize,
    /// Bytes per second for the whole run, across all objects in flight.
    pub bandwidth: Option<u64>,
}

/// A tiering pass over one virtual bucket: every member is listed, and the bucket's policy
/// says, per object, whether to keep, move, copy or delete it.
#[derive(Debug, Clone)]
pub struct TierSpec {
    pub bucket: String,
    pub shard: Shard,
    pub dry_run: bool,
    pub concurrency: usize,
    pub bandwidth: Option<u64>,
}

/// Counters a progress display, the admin API and metrics read while a run goes on.
#[derive(Debug, Default)]
pub struct Progress {
    pub listed: AtomicU64,
    pub listed_bytes: AtomicU64,
    /// The listing reached its end: `listed` and `listed_bytes` are the totals.
    pub listing_done: AtomicBool,
    pub copied: AtomicU64,
    pub bytes_copied: AtomicU64,
    pub skipped: AtomicU64,
    pub kept: AtomicU64,
    pub deleted: AtomicU64,
    pub failed: AtomicU64,
    /// Listed objects dealt with, whatever the outcome: a moved object counts once,
    /// though it is both copied and deleted.
    pub finished: AtomicU64,
    metrics: Option<(Arc<Metrics>, JobKind)>,
}

/// A point-in-time copy of [`Progress`], as the admin API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProgressSnapshot {
    pub listed: u64,
    pub listed_bytes: u64,
    pub listing_done: bool,
    pub copied: u64,
    pub bytes_copied: u64,
    pub skipped: u64,
    pub kept: u64,
    pub deleted: u64,
    pub failed: u64,
    pub finished: u64,
}

impl Progress {
    /// Counters that also feed the mover metrics under `kind`.
    pub fn with_metrics(metrics: Arc<Metrics>, kind: JobKind) -> Self {
        Self {
            metrics: Some((metrics, kind)),
            ..Self::default()
        }
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> ProgressSnapshot {
        ProgressSnapshot {
            listed: Self::get(&self.listed),
            listed_bytes: Self::get(&self.listed_bytes),
            listing_done: self.listing_done.load(Ordering::Relaxed),
            copied: Self::get(&self.copied),
            bytes_copied: Self::get(&self.bytes_copied),
            skipped: Self::get(&self.skipped),
            kept: Self::get(&self.kept),
            deleted: Self::get(&self.deleted),
            failed: Self::get(&self.failed),
            finished: Self::get(&self.finished),
        }
    }

    fn count(&self, outcome: MoverOutcome, bytes: u64) {
        let counter = match outcome {
            MoverOutcome::Copied => {
                self.bytes_copied.fetch_add(bytes, Ordering::Relaxed);
                &self.copied
            }
            MoverOutcome::Skipped => &self.skipped,
            MoverOutcome::Kept => &self.kept,
            MoverOutcome::Deleted => &self.deleted,
            MoverOutcome::Failed => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some((m, job)) = &self.metrics {
            let labels = MoverLabels {
                kind: *job,
                outcome,
            };
            m.mover_objects.get_or_create(&labels).inc();
            if bytes > 0 {
                m.mover_bytes.get_or_create(&labels).inc_by(bytes);
            }
        }
    }

    /// Counts one object's outcome, and the object as dealt with.
    fn finish(&self, outcome: MoverOutcome, bytes: u64) {
        self.count(outcome, bytes);
        self.finished.fetch_add(1, Ordering::Relaxed);
    }

    fn listed(&self, bytes: u64) {
        self.listed.fetch_add(1, Ordering::Relaxed);
        self.listed_bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// A byte-rate limit shared by every object a run has in flight. Each chunk books the
/// next free slot on a virtual clock and waits for it, so the long-run rate is exact and
/// no chunk waits longer than its own share.
#[derive(Debug)]
pub struct RateLimit {
    bytes_per_sec: f64,
    next: std::sync::Mutex<tokio::time::Instant>,
}

impl RateLimit {
    pub fn new(bytes_per_sec: u64) -> Self {
        Self {
            bytes_per_sec: bytes_per_sec.max(1) as f64,
            next: std::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }

    async fn take(&self, bytes: usize) {
        let wait = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = tokio::time::Instant::now();
            let start = (*next).max(now);
            *next = start + Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec);
            start - now
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Parses a rate such as `50MiB/s`, `200MB/s`, `1GiB` or a plain number of bytes per
/// second.
pub fn parse_rate(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    crate::config::parse_size(t.strip_suffix("/s").unwrap_or(t))
        .map_err(|e| format!("{e} (a rate is bytes per second, such as 50MiB/s)"))
}

async fn member(router: &Router, bucket: &str, name: &str) -> Result<Arc<Backend>> {
    let vb = router.bucket(bucket).await?;
    vb.member(name).cloned().ok_or_else(|| {
        Error::InvalidArgument(format!("{name:?} is not a member of bucket {bucket:?}"))
    })
}

/// Retries transient backend failures with exponential backoff.
async fn retry<T, F, Fut>(mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut delay = Duration::from_millis(100);
    for _ in 0..3 {
        match f().await {
            Err(Error::Unavailable { .. }) => {
                tokio::time::sleep(delay).await;
                delay *= 4;
            }
            other => return other,
        }
    }
    f().await
}

/// Wraps a source body so that it is paced by `limit`, and so that the write fails (and
/// nothing becomes visible at the destination) unless exactly `size` bytes came through.
/// The content check is the destination's: the put is told the source's MD5.
fn verified(key: &str, body: ByteStream, size: u64, limit: Option<Arc<RateLimit>>) -> Body {
    struct State {
        key: String,
        body: ByteStream,
        size: u64,
        seen: u64,
        limit: Option<Arc<RateLimit>>,
        done: bool,
    }
    let state = State {
        key: key.to_owned(),
        body,
        size,
        seen: 0,
        limit,
        done: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        match st.body.next().await {
            Some(Ok(chunk)) => {
                if let Some(l) = &st.limit {
                    l.take(chunk.len()).await;
                }
                st.seen += chunk.len() as u64;
                Some((Ok(chunk), st))
            }
            Some(Err(e)) => {
                st.done = true;
                Some((Err(e), st))
            }
            None => {
                st.done = true;
                if st.seen != st.size {
                    let e = Error::Internal(format!(
                        "{}: read {} bytes of {}",
                        st.key, st.seen, st.size
                    ));
                    return Some((Err(e), st));
                }
                None
            }
        }
    })
    .boxed()
}

/// How one object copy ended.
#[derive(Debug, PartialEq, Eq)]
enum CopyEnd {
    /// Written; the destination's ETag and the attributes written with it.
    Done {
        bytes: u64,
        etag: Option<String>,
        attrs: Box<Attrs>,
    },
    /// A client deleted the key meanwhile: nothing was written.
    SourceGone,
    /// The destination has the key: a client wrote it meanwhile (or, for an `IfMatch`
    /// replace, rewrote it), and theirs wins: nothing was written.
    DestinationNewer,
}

/// Copies `key` from `from` to `to` in one streamed pass: a single GET gives the
/// attributes and the bytes of one version, which go to a conditional write.
///
/// A write that fails as unavailable (a 5xx, a cut connection) cannot be replayed, its
/// body is spent, so the whole copy is retried, source read included. Such a write may
/// have been committed all the same (S3 can answer 500 after storing); the retry's
/// conditional write then finds the key and ends as `DestinationNewer`, which leaves what
/// the first attempt stored, the source's own bytes.
async fn copy_object(
    from: &Backend,
    to: &Backend,
    key: &str,
    cond: WriteCondition,
    part_size: u64,
    limit: Option<Arc<RateLimit>>,
) -> Result<CopyEnd> {
    retry(|| copy_once(from, to, key, cond.clone(), part_size, limit.clone())).await
}

/// One attempt of [`copy_object`].
async fn copy_once(
    from: &Backend,
    to: &Backend,
    key: &str,
    cond: WriteCondition,
    part_size: u64,
    limit: Option<Arc<RateLimit>>,
) -> Result<CopyEnd> {
    let none = ReadConditions::default();
    let (mut got, stream) = match from.store.get(key, None, &none, false).await {
        Ok(v) => v,
        Err(Error::NotFound) => return Ok(CopyEnd::SourceGone),
        Err(e) => return Err(e),
    };
    // The tags go with the object; a source that only counted them is asked for them.
    match from.tell_tags(key, &mut got.info).await {
        Ok(()) => {}
        Err(Error::NotFound) => return Ok(CopyEnd::SourceGone),
        Err(e) => return Err(e),
    }
    // A destination that keeps no object ACLs takes an owner-only one by dropping it, and
    // refuses one that grants more: the key fails and stays where it is, readable as its
    // ACL says, rather than lose a grant on the way.
    if let Some(kept) = crate::router::acl_for([to], &got.info.attrs)? {
        got.info.attrs = kept;
    }
    let body = stream.ok_or_else(|| Error::internal("the source gave no body"))?;
    let size = got.info.size;
    let body = verified(key, body, size, limit);
    // A multipart upload's ETag stays the object's where the destination can keep it, so
    // that clients (sync tools) see the same object after the move.
    let declared = Declared {
        len: Some(size),
        md5: got.info.content_md5,
        etag: got
            .info
            .etag
            .clone()
            .filter(|e| crate::backends::is_multipart_etag(e)),
        // The checksum, if any, travels in the attributes, with the same bytes.
        ..Declared::default()
    };
    match to
        .store
        .put(key, body, declared, &got.info.attrs, &cond, part_size)
        .await
    {
        Ok(out) => Ok(CopyEnd::Done {
            bytes: size,
            etag: out.etag,
            attrs: Box::new(got.info.attrs),
        }),
        Err(Error::Precondition(_)) => Ok(CopyEnd::DestinationNewer),
        Err(e) => Err(e),
    }
}

/// A client may have deleted the key (from every member) while it was being copied; then
/// the copy must not bring it back. Removes the copy when the source is gone and the
/// destination still holds exactly what this run wrote.
async fn undo_if_deleted(
    from: &Backend,
    to: &Backend,
    key: &str,
    written: Option<&str>,
) -> Result<bool> {
    let none = ReadConditions::default();
    match retry(|| from.store.get(key, None, &none, true)).await {
        Err(Error::NotFound) => {}
        Err(e) => return Err(e),
        Ok(_) => return Ok(false),
    }
    match retry(|| to.store.get(key, None, &none, true)).await {
        Ok((now, _)) if now.info.etag.as_deref() == written || written.is_none() => {
            retry(|| to.store.delete(key)).await?;
        }
        // Rewritten by a client since: theirs stays.
        Ok(_) | Err(Error::NotFound) => {}
        Err(e) => return Err(e),
    }
    Ok(true)
}

/// Whether `got` keeps every attribute of `wrote` (a backend may add defaults where none
/// was written, as S3 does with `binary/octet-stream`).
fn kept(wrote: &Attrs, got: &Attrs) -> bool {
    let same = |w: &Option<String>, g: &Option<String>| w.is_none() || w == g;
    same(&wrote.content_type, &got.content_type)
        && same(&wrote.cache_control, &got.cache_control)
        && same(&wrote.content_disposition, &got.content_disposition)
        && same(&wrote.content_encoding, &got.content_encoding)
        && same(&wrote.content_language, &got.content_language)
        && wrote
            .metadata
            .iter()
            .all(|(k, v)| got.metadata.get(k) == Some(v))
}

/// What the destination holds after this run wrote `key` there.
#[derive(Debug, PartialEq, Eq)]
enum AtDestination {
    /// The version this run wrote, whole: bytes, ETag and attributes.
    Ours,
    /// Another version: a client wrote (or deleted and wrote) the key since.
    Newer,
    /// Nothing: a client deleted the key since.
    Gone,
}

/// Reads back what this run wrote before anything relies on it (a source is deleted only
/// when the destination holds the whole object). A destination that answers with this
/// run's ETag but another size, other attributes or another number of tags did not keep
/// the object as written (a backend or emulator that drops attributes): an error, and the
/// source stays.
async fn verify_copy(
    to: &Backend,
    key: &str,
    etag: Option<&str>,
    size: u64,
    attrs: &Attrs,
) -> Result<AtDestination> {
    let none = ReadConditions::default();
    let info = match retry(|| to.store.get(key, None, &none, true)).await {
        Ok((got, _)) => got.info,
        Err(Error::NotFound) => return Ok(AtDestination::Gone),
        Err(e) => return Err(e),
    };
    if info.etag.as_deref() != etag {
        return Ok(AtDestination::Newer);
    }
    if info.size != size || !kept(attrs, &info.attrs) || info.tag_count() != attrs.tags.len() {
        return Err(Error::internal(format!(
            "{key}: the destination {} answers with the copy's ETag but not its size or attributes ({} bytes, {:?}; wrote {size} bytes, {attrs:?})",
            to.name, info.size, info.attrs
        )));
    }
    Ok(AtDestination::Ours)
}

/// Part size for the mover's writes: the server's, so big objects go up as multipart.
fn part_size(router: &Router) -> u64 {
    router.config.server.part_size
}

/// One source key, and whether the destination's listing had it.
struct Work {
    src: ObjectSummary,
    at_destination: bool,
}

/// Lists the source (this shard only) and joins it with the destination's listing: both
/// come in ascending key order, so one pass over each tells which keys are already there,
/// with no per-key lookup. Runs ahead of the copies, so totals (and an ETA) are known early.
fn plan(
    from: Arc<Backend>,
    to: Arc<Backend>,
    shard: Shard,
    progress: Arc<Progress>,
) -> tokio::sync::mpsc::Receiver<Result<Work>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4096);
    tokio::spawn(async move {
        let owned = move |r: &Result<ObjectSummary>| {
            futures::future::ready(r.as_ref().map_or(true, |o| shard.owns(&o.key)))
        };
        let mut src = from.store.list("", None).filter(owned);
        let dst = to.store.list("", None).filter(owned).peekable();
        futures::pin_mut!(dst);
        while let Some(item) = src.next().await {
            let src = match item {
                Ok(o) => o,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let mut at_destination = false;
            loop {
                match dst.as_mut().peek().await {
                    Some(Ok(d)) if d.key < src.key => {
                        dst.next().await;
                    }
                    Some(Ok(d)) => {
                        at_destination = d.key == src.key;
                        break;
                    }
                    Some(Err(_)) => {
                        if let Some(Err(e)) = dst.next().await {
                            let _ = tx.send(Err(e)).await;
                        }
                        return;
                    }
                    None => break,
                }
            }
            progress.listed(src.size);
            if tx
                .send(Ok(Work {
                    src,
                    at_destination,
                }))
                .await
                .is_err()
            {
                return;
            }
        }
        progress.listing_done.store(true, Ordering::Relaxed);
    });
    rx
}

fn receiver_stream<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}

/// What the first look at one source key decided.
enum Plan {
    /// Nothing to copy: the outcome, and whether the source copy goes (move mode, with the
    /// destination holding a whole object as new as the source or newer).
    Settled {
        outcome: MoverOutcome,
        bytes: u64,
        drop_source: bool,
    },
    /// To be copied under this condition.
    Copy(WriteCondition),
}

async fn classify(to: &Backend, work: &Work, spec: &MigrateSpec) -> Result<Plan> {
    let key = work.src.key.as_str();
    let settled = |outcome, bytes, drop_source| Plan::Settled {
        outcome,
        bytes,
        drop_source,
    };
    if work.at_destination {
        // Copied by an earlier run, or written by a client since the migration began
        // (newer than the source): either way the source copy is no longer needed, once
        // the destination is known to hold a whole object. Every kind publishes bytes and
        // attributes at once; an `fs` file without Switchyard's attributes and of the
        // source's size is the exception: a copy an earlier version published before its
        // attributes and was killed in between (or a file dropped in by another tool).
        // It is copied again over exactly that file.
        if to.kind == "fs" {
            let none = ReadConditions::default();
            match retry(|| to.store.get(key, None, &none, true)).await {
                Ok((there, _)) if there.info.foreign && there.info.size == work.src.size => {
                    if spec.dry_run {
                        return Ok(settled(MoverOutcome::Copied, work.src.size, false));
                    }
                    return Ok(Plan::Copy(WriteCondition::IfMatch(
                        there.info.etag.unwrap_or_default(),
                    )));
                }
                Ok(_) => {}
                // Deleted by a client meanwhile, from every member.
                Err(Error::NotFound) => return Ok(settled(MoverOutcome::Skipped, 0, false)),
                Err(e) => return Err(e),
            }
        }
        return Ok(if spec.mode == Mode::Move && !spec.dry_run {
            settled(MoverOutcome::Deleted, 0, true)
        } else {
            settled(MoverOutcome::Skipped, 0, false)
        });
    }
    if spec.dry_run {
        return Ok(settled(MoverOutcome::Copied, work.src.size, false));
    }
    Ok(Plan::Copy(WriteCondition::IfAbsent))
}

/// Copies one key, reads the copy back (in move mode, where the source's deletion relies
/// on it), and checks that a client did not delete the key meanwhile. Returns the outcome and whether the source copy may go (it goes only after
/// the batch's journal entry is cleared, see [`Journal`]).
async fn copy_checked(
    from: &Backend,
    to: &Backend,
    key: &str,
    cond: WriteCondition,
    spec: &MigrateSpec,
    part_size: u64,
    limit: Option<Arc<RateLimit>>,
) -> Result<(MoverOutcome, u64, bool)> {
    let drop_source = spec.mode == Mode::Move;
    let (bytes, etag, attrs) = match copy_object(from, to, key, cond, part_size, limit).await? {
        CopyEnd::SourceGone => return Ok((MoverOutcome::Skipped, 0, false)),
        // The destination's version is newer: the source copy is no longer needed.
        CopyEnd::DestinationNewer if drop_source => return Ok((MoverOutcome::Deleted, 0, true)),
        CopyEnd::DestinationNewer => return Ok((MoverOutcome::Skipped, 0, false)),
        CopyEnd::Done { bytes, etag, attrs } => (bytes, etag, attrs),
    };
    fail::fail_point!("mover::after_copy", |_| std::process::abort());
    // The read-back guards the source's deletion; in copy mode nothing relies on it (the
    // source stays), and it cost a quarter of the copier's speed on small objects.
    if drop_source
        && verify_copy(to, key, etag.as_deref(), bytes, &attrs).await? == AtDestination::Gone
    {
        // A client deleted the key (from every member) since the copy.
        return Ok((MoverOutcome::Skipped, 0, false));
    }
    if undo_if_deleted(from, to, key, etag.as_deref()).await? {
        return Ok((MoverOutcome::Skipped, 0, false));
    }
    fail::fail_point!("mover::after_verify", |_| std::process::abort());
    Ok((MoverOutcome::Copied, bytes, drop_source))
}

/// The copies a run has in flight, recorded in the destination (under its reserved
/// prefix) before they begin and cleared once each is known not to have brought a deleted
/// key back.
///
/// A copy is a conditional create at the destination; a client may delete the key between
/// the source's read and that create, and the copy then brings it back until the check
/// after it removes it again. A run killed between the two would leave the key back for
/// good: no later run could tell such a copy from a key a client wrote. The journal closes
/// that: a run starts by going through what earlier runs of its shard left, and removes a
/// copy whose source is gone when the destination still holds the source's version
/// (same size, and same MD5 where both sides state one). A run deletes source copies only
/// after clearing the batch's entry, so an entry never outlives a source the mover itself
/// deleted.
struct Journal<'a> {
    from: &'a Backend,
    to: &'a Backend,
    dir: String,
}

/// One journal entry: the keys of a batch, as the source's listing described them.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Intent {
    started: chrono::DateTime<chrono::Utc>,
    keys: Vec<IntentKey>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct IntentKey {
    key: String,
    size: u64,
    etag: Option<String>,
}

impl<'a> Journal<'a> {
    fn new(from: &'a Backend, to: &'a Backend, shard: Shard) -> Self {
        Self {
            from,
            to,
            dir: format!(
                "mover/intents/{}.{}.{}-{}/",
                from.name, to.name, shard.index, shard.count
            ),
        }
    }

    /// Settles what earlier runs of this shard left; returns how many copies it removed.
    async fn recover(&self) -> Result<u64> {
        let mut removed = 0;
        for path in self.to.store.list_internal(&self.dir).await? {
            let Some(raw) = self.to.store.get_internal(&path).await? else {
                continue;
            };
            match serde_json::from_slice::<Intent>(&raw) {
                Ok(intent) => {
                    for k in &intent.keys {
                        removed += u64::from(self.recover_key(k).await?);
                    }
                }
                Err(e) => {
                    tracing::warn!(path = %path, error = %e, "unreadable mover journal entry, dropped");
                }
            }
            self.to.store.delete_internal(&path).await?;
        }
        Ok(removed)
    }

    async fn recover_key(&self, k: &IntentKey) -> Result<bool> {
        let none = ReadConditions::default();
        match retry(|| self.from.store.get(&k.key, None, &none, true)).await {
            // Still at the source: this run's pass deals with it as with any key.
            Ok(_) => return Ok(false),
            Err(Error::NotFound) => {}
            Err(e) => return Err(e),
        }
        let there = match retry(|| self.to.store.get(&k.key, None, &none, true)).await {
            Ok((there, _)) => there.info,
            Err(Error::NotFound) => return Ok(false),
            Err(e) => return Err(e),
        };
        let md5_of = |etag: Option<&str>| etag.and_then(crate::backends::etag_md5);
        let there_md5 = there.content_md5.or_else(|| md5_of(there.etag.as_deref()));
        let same = there.size == k.size
            && match (there_md5, md5_of(k.etag.as_deref())) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            };
        if !same {
            // Written again by a client since: theirs stays.
            return Ok(false);
        }
        retry(|| self.to.store.delete(&k.key)).await?;
        tracing::info!(key = %k.key, "removed a copy of a key deleted while it was being copied, left by a run that stopped before its check");
        Ok(true)
    }

    async fn record(&self, keys: Vec<IntentKey>) -> Result<String> {
        let path = format!("{}{}.json", self.dir, uuid::Uuid::new_v4().simple());
        let intent = Intent {
            started: chrono::Utc::now(),
            keys,
        };
        let json = bytes::Bytes::from(serde_json::to_vec(&intent).map_err(Error::internal)?);
        retry(|| self.to.store.put_internal(&path, json.clone())).await?;
        Ok(path)
    }

    async fn clear(&self, path: &str) -> Result<()> {
        retry(|| self.to.store.delete_internal(path)).await
    }
}

/// Copies (or moves) every key of this shard from `spec.from` to `spec.to`.
///
/// Keys go in batches: each key is looked at, the batch's copies are recorded in the
/// [`Journal`], copied and checked, the record is cleared, and only then are source copies
/// deleted (move mode).
pub async fn migrate(router: &Router, spec: &MigrateSpec, progress: &Arc<Progress>) -> Result<()> {
    let from = member(router, &spec.bucket, &spec.from).await?;
    let to = member(router, &spec.bucket, &spec.to).await?;
    if from.name == to.name {
        return Err(Error::InvalidArgument(
            "--from and --to name the same member".into(),
        ));
    }
    let vb = router.bucket(&spec.bucket).await?;
    if vb.members.first().map(|m| m.name.as_str()) != Some(to.name.as_str()) && !spec.dry_run {
        tracing::warn!(bucket = %spec.bucket, to = %to.name, "the destination is not the bucket's first member: client writes may keep landing elsewhere, and will need another run (docs/migration.md)");
    }
    let journal = Journal::new(&from, &to, spec.shard);
    if !spec.dry_run {
        let removed = journal.recover().await?;
        if removed > 0 {
            tracing::info!(removed, "settled copies an earlier run left unchecked");
        }
    }
    let limit = spec.bandwidth.map(|b| Arc::new(RateLimit::new(b)));
    let part_size = part_size(router);
    let concurrency = spec.concurrency.max(1);
    let work = receiver_stream(plan(from.clone(), to.clone(), spec.shard, progress.clone()))
        .chunks(BATCH_PER_WORKER * concurrency);
    futures::pin_mut!(work);
    let batch = Batch {
        from: &from,
        to: &to,
        journal: &journal,
        spec,
        part_size,
        limit,
        progress,
        slots: tokio::sync::Semaphore::new(concurrency),
    };
    // Two batches at a time, sharing `concurrency` slots: the next batch's copies start
    // while the last copies of the previous one finish, so no slot waits for a batch's
    // slowest object.
    work.map(|keys| {
        let batch = &batch;
        async move {
            // A listing failure ends the run (a later run resumes); per-key failures are
            // counted and the run goes on.
            let keys: Vec<Work> = keys.into_iter().collect::<Result<_>>()?;
            batch.run(keys).await
        }
    })
    .buffer_unordered(BATCHES_IN_FLIGHT)
    .try_collect::<()>()
    .await
}

/// Batches of one run in progress at once (see [`migrate`]).
const BATCHES_IN_FLIGHT: usize = 2;

/// Source keys per batch, per object in flight: enough that the pause between batches
/// (waiting for the slowest copy of one) is a small part of a batch.
const BATCH_PER_WORKER: usize = 8;

/// What every batch of one [`migrate`] run shares.
struct Batch<'a> {
    from: &'a Backend,
    to: &'a Backend,
    journal: &'a Journal<'a>,
    spec: &'a MigrateSpec,
    part_size: u64,
    limit: Option<Arc<RateLimit>>,
    progress: &'a Progress,
    /// The run's objects in flight, shared by its batches.
    slots: tokio::sync::Semaphore,
}

impl Batch<'_> {
    /// Runs `step` on each item with its index, `concurrency` at a time across the run's
    /// batches, in whatever order they finish (one slow object does not hold the others'
    /// slots), and gives the results back in the items' order.
    async fn each<I, T, F>(&self, items: Vec<I>, step: impl Fn(usize, I) -> F) -> Vec<T>
    where
        F: std::future::Future<Output = T>,
    {
        let mut out: Vec<(usize, T)> = futures::stream::iter(items.into_iter().enumerate())
            .map(|(i, item)| {
                let fut = step(i, item);
                async move {
                    let _slot = self.slots.acquire().await;
                    (i, fut.await)
                }
            })
            .buffer_unordered(self.spec.concurrency.max(1))
            .collect()
            .await;
        out.sort_unstable_by_key(|(i, _)| *i);
        out.into_iter().map(|(_, t)| t).collect()
    }

    async fn run(&self, keys: Vec<Work>) -> Result<()> {
        let concurrency = self.spec.concurrency.max(1);
        // Indices rather than references into `keys`: a closure taking a reference does
        // not prove to the compiler that its future is Send for every lifetime.
        let keys = &keys;
        let plans: Vec<Result<Plan>> = futures::stream::iter(0..keys.len())
            .map(|i| classify(self.to, &keys[i], self.spec))
            .buffered(concurrency)
            .collect()
            .await;
        let copies: Vec<IntentKey> = keys
            .iter()
            .zip(&plans)
            .filter(|(_, p)| matches!(p, Ok(Plan::Copy(_))))
            .map(|(w, _)| IntentKey {
                key: w.src.key.clone(),
                size: w.src.size,
                etag: w.src.etag.clone(),
            })
            .collect();
        let recorded = if copies.is_empty() {
            None
        } else {
            Some(self.journal.record(copies).await?)
        };
        // (outcome, bytes, whether the source copy goes)
        let results: Vec<Result<(MoverOutcome, u64, bool)>> = self
            .each(plans, |i, plan| async move {
                let w = &keys[i];
                match plan? {
                    Plan::Settled {
                        outcome,
                        bytes,
                        drop_source,
                    } => Ok((outcome, bytes, drop_source)),
                    Plan::Copy(cond) => {
                        let limit = self.limit.clone();
                        copy_checked(
                            self.from,
                            self.to,
                            &w.src.key,
                            cond,
                            self.spec,
                            self.part_size,
                            limit,
                        )
                        .await
                    }
                }
            })
            .await;
        if let Some(path) = recorded {
            self.journal.clear(&path).await?;
        }
        let finished: Vec<Result<(MoverOutcome, u64)>> = self
            .each(results, |i, r| async move {
                let w = &keys[i];
                let (outcome, bytes, drop_source) = r?;
                if drop_source {
                    fail::fail_point!("mover::before_delete_source", |_| { std::process::abort() });
                    retry(|| self.from.store.delete(&w.src.key)).await?;
                }
                Ok((outcome, bytes))
            })
            .await;
        let moved = self.spec.mode == Mode::Move && !self.spec.dry_run;
        for (w, r) in keys.iter().zip(finished) {
            match r {
                Ok((outcome, bytes)) => {
                    self.progress.finish(outcome, bytes);
                    if outcome == MoverOutcome::Copied && moved {
                        self.progress.count(MoverOutcome::Deleted, 0);
                    }
                }
                Err(e) => {
                    self.progress.finish(MoverOutcome::Failed, 0);
                    tracing::warn!(key = %w.src.key, error = %e, "could not migrate");
                }
            }
        }
        Ok(())
    }
}

/// Carries out one tiering answer for `key`, held by `current`.
async fn tier_one(
    router: &Router,
    vb: &VirtualBucket,
    current: &Arc<Backend>,
    key: &str,
    spec: &TierSpec,
    limit: Option<Arc<RateLimit>>,
) -> Result<(MoverOutcome, u64)> {
    let none = ReadConditions::default();
    // The listing has no attributes: the policy sees the object as a HEAD gives it.
    let head = match retry(|| current.store.get(key, None, &none, true)).await {
        Ok((h, _)) => h.info,
        Err(Error::NotFound) => return Ok((MoverOutcome::Skipped, 0)),
        Err(e) => return Err(e),
    };
    let age = (chrono::Utc::now() - head.last_modified)
        .num_seconds()
        .max(0);
    let obj = ObjectView {
        bucket: vb.name.clone(),
        key: key.to_owned(),
        size: Some(head.size),
        content_type: head.attrs.content_type.clone(),
        metadata: crate::checksum::client_metadata(&head.attrs)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        age_seconds: Some(age as u64),
        tags: Vec::new(),
    };
    let action = router.decider.tier(vb, &obj, &current.name).await?;
    let (target, keep_source) = match &action {
        TierAction::Keep => return Ok((MoverOutcome::Kept, 0)),
        TierAction::Delete => {
            if !spec.dry_run {
                retry(|| current.store.delete(key)).await?;
            }
            return Ok((MoverOutcome::Deleted, 0));
        }
        TierAction::CopyTo(t) => (t, true),
        TierAction::MoveTo(t) => (t, false),
    };
    let to = vb
        .member(target)
        .cloned()
        .ok_or_else(|| Error::internal("validated tier target"))?;
    if spec.dry_run {
        return Ok((MoverOutcome::Copied, head.size));
    }
    // The target may hold the key already: an earlier copy (as new as ours: nothing to
    // copy) or an older version (replace exactly that version, so that a client write
    // landing there meanwhile is not overwritten).
    let cond = match retry(|| to.store.get(key, None, &none, true)).await {
        Ok((there, _)) if there.info.last_modified >= head.last_modified => None,
        Ok((there, _)) => Some(match there.info.etag {
            Some(e) => WriteCondition::IfMatch(e),
            None => WriteCondition::None,
        }),
        Err(Error::NotFound) => Some(WriteCondition::IfAbsent),
        Err(e) => return Err(e),
    };
    let mut outcome = (MoverOutcome::Skipped, 0);
    if let Some(cond) = cond {
        match copy_object(current, &to, key, cond, part_size(router), limit).await? {
            CopyEnd::SourceGone | CopyEnd::DestinationNewer => {
                return Ok((MoverOutcome::Skipped, 0));
            }
            CopyEnd::Done { bytes, etag, attrs } => {
                if verify_copy(&to, key, etag.as_deref(), bytes, &attrs).await?
                    == AtDestination::Gone
                    || undo_if_deleted(current, &to, key, etag.as_deref()).await?
                {
                    return Ok((MoverOutcome::Skipped, 0));
                }
                outcome = (MoverOutcome::Copied, bytes);
            }
        }
    }
    if !keep_source {
        // Remove the source only if it is still the version that was tiered: a client
        // write to it since then is newer than the copy.
        match retry(|| current.store.get(key, None, &none, true)).await {
            Ok((now, _)) if now.info.etag == head.etag => {
                retry(|| current.store.delete(key)).await?;
            }
            Ok(_) | Err(Error::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(outcome)
}

/// Runs one tiering pass over every member of `spec.bucket` (this shard only).
pub async fn tier(router: &Router, spec: &TierSpec, progress: &Arc<Progress>) -> Result<()> {
    let vb = router.bucket(&spec.bucket).await?;
    let limit = spec.bandwidth.map(|b| Arc::new(RateLimit::new(b)));
    let shard = spec.shard;
    // Members one after another, each in key order.
    let mut listings = Vec::with_capacity(vb.members.len());
    for m in &vb.members {
        let member = m.clone();
        listings.push(
            m.store
                .list("", None)
                .filter(move |r: &Result<ObjectSummary>| {
                    futures::future::ready(r.as_ref().map_or(true, |o| shard.owns(&o.key)))
                })
                .map(move |r| r.map(|o| (member.clone(), o)))
                .boxed(),
        );
    }
    let results = futures::stream::iter(listings)
        .flatten()
        .map(|item| {
            let (vb, limit) = (vb.clone(), limit.clone());
            async move {
                let (member, o) = item?;
                progress.listed(o.size);
                match tier_one(router, &vb, &member, &o.key, spec, limit).await {
                    Ok((outcome, bytes)) => {
                        progress.finish(outcome, bytes);
                    }
                    Err(e) => {
                        progress.finish(MoverOutcome::Failed, 0);
                        tracing::warn!(key = %o.key, member = %member.name, error = %e, "could not tier");
                    }
                }
                Ok::<(), Error>(())
            }
        })
        .buffer_unordered(spec.concurrency.max(1));
    futures::pin_mut!(results);
    while let Some(r) = results.next().await {
        r?;
    }
    progress.listing_done.store(true, Ordering::Relaxed);
    Ok(())
}

/// An inventory pass over one virtual bucket: each member is listed (this shard only) and
/// its objects counted and summed. Nothing is read but the listings, nothing written.
#[derive(Debug, Clone)]
pub struct InventorySpec {
    pub bucket: String,
    pub shard: Shard,
}

/// A number of objects and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    pub objects: u64,
    pub bytes: u64,
}

impl Tally {
    fn add(&mut self, bytes: u64) {
        self.objects += 1;
        self.bytes += bytes;
    }
}

/// What an inventory pass found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Inventory {
    /// What clients see through the bucket, as ListObjects shows it: a key held by several
    /// members (during a migration, or mirrored) counts once, at the size of the copy in
    /// the first member holding it. What the bucket costs to store is the members' sum.
    pub bucket: Tally,
    /// Each member's own objects, in the bucket's member order.
    pub members: Vec<MemberTally>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MemberTally {
    pub name: String,
    #[serde(flatten)]
    pub tally: Tally,
}

/// Counts and sums the objects of `spec.bucket`, per member and as clients see them, in
/// one pass over every member's listing: the listings come in key order, so a k-way merge
/// tells which keys several members hold with no per-key lookup. `progress` counts the
/// objects listed (every member's) as it goes.
pub async fn inventory(
    router: &Router,
    spec: &InventorySpec,
    progress: &Arc<Progress>,
) -> Result<Inventory> {
    let vb = router.bucket(&spec.bucket).await?;
    let shard = spec.shard;
    let mut listings: Vec<_> = vb
        .members
        .iter()
        .map(|m| {
            m.store
                .list("", None)
                .try_filter(move |o| futures::future::ready(shard.owns(&o.key)))
                .boxed()
                .peekable()
        })
        .collect();
    let mut found = Inventory {
        bucket: Tally::default(),
        members: vb
            .members
            .iter()
            .map(|m| MemberTally {
                name: m.name.clone(),
                tally: Tally::default(),
            })
            .collect(),
    };
    loop {
        // The smallest key at the head of any listing; the members holding it are popped.
        let mut least: Option<String> = None;
        for l in &mut listings {
            if matches!(Pin::new(&mut *l).peek().await, Some(Err(_)))
                && let Some(Err(e)) = l.next().await
            {
                return Err(e);
            }
            if let Some(Ok(o)) = Pin::new(&mut *l).peek().await
                && least.as_ref().is_none_or(|k| o.key < *k)
            {
                least = Some(o.key.clone());
            }
        }
        let Some(key) = least else { break };
        let mut counted = false;
        for (l, member) in listings.iter_mut().zip(&mut found.members) {
            let here = matches!(Pin::new(&mut *l).peek().await, Some(Ok(o)) if o.key == key);
            if !here {
                continue;
            }
            let Some(Ok(o)) = l.next().await else {
                continue;
            };
            member.tally.add(o.size);
            progress.listed(o.size);
            if !counted {
                found.bucket.add(o.size);
                counted = true;
            }
        }
    }
    progress.listing_done.store(true, Ordering::Relaxed);
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_key_space() {
        let shards: Vec<Shard> = (0..3).map(|i| Shard { index: i, count: 3 }).collect();
        for i in 0..1000 {
            let key = format!("k/{i}");
            assert_eq!(shards.iter().filter(|s| s.owns(&key)).count(), 1);
        }
        assert!(Shard::parse("3/3").is_err() && Shard::parse("x").is_err());
        assert_eq!(Shard::parse("1/4").unwrap(), Shard { index: 1, count: 4 });
        // Stable across versions: the published FNV-1a test vectors.
        assert_eq!(key_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(key_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(key_hash("foobar"), 0x8594_4171_f739_67e8);
        assert!(Shard::ALL.owns("anything"));
    }

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rate("50MiB/s"), Ok(50 * 1024 * 1024));
        assert_eq!(parse_rate("200MB/s"), Ok(200_000_000));
        assert_eq!(parse_rate("1.5 GiB"), Ok(1_610_612_736));
        assert_eq!(parse_rate("4096"), Ok(4096));
        for bad in ["", "fast", "0", "10 parsecs/s", "-5MB/s"] {
            assert!(parse_rate(bad).is_err(), "{bad:?}");
        }
    }

    fn router(toml: &str) -> Router {
        let config = crate::Config::from_toml(toml).unwrap();
        Router::new(Arc::new(config), None, Arc::new(Metrics::default())).unwrap()
    }

    fn body(data: &'static [u8]) -> Body {
        futures::stream::iter(vec![Ok(bytes::Bytes::from_static(data))]).boxed()
    }

    fn spec(mode: Mode) -> MigrateSpec {
        MigrateSpec {
            bucket: "bkt".into(),
            from: "old".into(),
            to: "new".into(),
            mode,
            shard: Shard::ALL,
            dry_run: false,
            concurrency: 4,
            bandwidth: None,
        }
    }

    #[tokio::test]
    async fn a_copy_published_without_its_attributes_is_copied_again() {
        let dir = std::env::temp_dir().join(format!("sy-mover-{}", uuid::Uuid::new_v4()));
        let r = router(&format!(
            "version = 1\n[backends.old]\nkind = \"memory\"\n[backends.new]\nkind = \"fs\"\nroot = {:?}\n[buckets.bkt]\nmembers = [\"new\", \"old\"]\n",
            dir.display().to_string()
        ));
        let attrs = Attrs {
            content_type: Some("image/png".into()),
            metadata: [("owner".to_owned(), "ann".to_owned())].into(),
            ..Default::default()
        };
        let old = r.backend("old").unwrap().clone();
        let new = r.backend("new").unwrap().clone();
        old.store
            .put(
                "k",
                body(b"picture"),
                Declared::default(),
                &attrs,
                &WriteCondition::None,
                1 << 23,
            )
            .await
            .unwrap();
        // What a mover of an earlier version left when killed between publishing the
        // bytes and their attributes: the bytes alone.
        std::fs::write(dir.join("k"), b"picture").unwrap();
        let progress = Arc::new(Progress::default());
        migrate(&r, &spec(Mode::Move), &progress).await.unwrap();
        let p = progress.snapshot();
        assert_eq!((p.copied, p.failed), (1, 0), "{p:?}");
        let (got, _) = new
            .store
            .get("k", None, &ReadConditions::default(), true)
            .await
            .unwrap();
        assert_eq!(got.info.attrs, attrs, "the attributes were lost");
        assert!(matches!(
            old.store
                .get("k", None, &ReadConditions::default(), true)
                .await,
            Err(Error::NotFound)
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Tags travel with a migration, from a memory member to an `fs` one, where they are
    /// in the file's extended attribute for any tool to read; before it, a read falling
    /// through to the old member answers its tags.
    #[tokio::test]
    async fn tags_move_with_their_object() {
        let dir = std::env::temp_dir().join(format!("sy-mover-{}", uuid::Uuid::new_v4()));
        let r = router(&format!(
            "version = 1\n[backends.old]\nkind = \"memory\"\n[backends.new]\nkind = \"fs\"\nroot = {:?}\n[buckets.bkt]\nmembers = [\"new\", \"old\"]\n",
            dir.display().to_string()
        ));
        let tags: crate::model::Tags = [
            ("team".to_owned(), "blue".to_owned()),
            ("état".to_owned(), "été".to_owned()),
        ]
        .into();
        let attrs = Attrs {
            content_type: Some("text/plain".into()),
            tags: tags.clone(),
            ..Default::default()
        };
        let old = r.backend("old").unwrap().clone();
        let new = r.backend("new").unwrap().clone();
        old.store
            .put(
                "k",
                body(b"words"),
                Declared::default(),
                &attrs,
                &WriteCondition::None,
                1 << 23,
            )
            .await
            .unwrap();
        let view = crate::policy::RequestView::default();
        assert_eq!(r.get_tags(&view, "bkt", "k", None).await.unwrap(), tags);
        let progress = Arc::new(Progress::default());
        migrate(&r, &spec(Mode::Move), &progress).await.unwrap();
        let p = progress.snapshot();
        assert_eq!((p.copied, p.failed), (1, 0), "{p:?}");
        let (got, _) = new
            .store
            .get("k", None, &ReadConditions::default(), true)
            .await
            .unwrap();
        assert_eq!(got.info.attrs, attrs, "the tags were lost");
        assert_eq!(r.get_tags(&view, "bkt", "k", None).await.unwrap(), tags);
        // Without the gateway: the file's `user.switchyard` attribute names them.
        let mut buf = vec![0u8; 4096];
        let n = rustix::fs::getxattr(dir.join("k"), "user.switchyard", &mut buf[..]).unwrap();
        let stamp: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
        assert_eq!(stamp["attrs"]["tags"]["team"], "blue");
        assert_eq!(stamp["attrs"]["tags"]["état"], "été");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_copy_left_unchecked_by_a_killed_run_of_a_deleted_key_is_removed() {
        let r = router(
            "version = 1\n[backends.old]\nkind = \"memory\"\n[backends.new]\nkind = \"memory\"\n[buckets.bkt]\nmembers = [\"new\", \"old\"]\n",
        );
        let old = r.backend("old").unwrap().clone();
        let new = r.backend("new").unwrap().clone();
        let put = |store: Arc<Backend>, key: &'static str, data: &'static [u8]| async move {
            store
                .store
                .put(
                    key,
                    body(data),
                    Declared::default(),
                    &Attrs::default(),
                    &WriteCondition::None,
                    1 << 23,
                )
                .await
                .unwrap()
        };
        // A run recorded a batch, copied "gone" and "kept", and was killed before its
        // checks; meanwhile a client deleted "gone" from every member (its delete ran
        // before the copy landed), and wrote "rewritten" again with other bytes.
        for (k, data) in [("gone", &b"v1"[..]), ("kept", b"v1"), ("rewritten", b"v1")] {
            put(old.clone(), k, data).await;
        }
        let listed: Vec<ObjectSummary> =
            old.store.list("", None).map(|o| o.unwrap()).collect().await;
        let journal = Journal::new(&old, &new, Shard::ALL);
        journal
            .record(
                listed
                    .iter()
                    .map(|o| IntentKey {
                        key: o.key.clone(),
                        size: o.size,
                        etag: o.etag.clone(),
                    })
                    .collect(),
            )
            .await
            .unwrap();
        put(new.clone(), "gone", b"v1").await;
        put(new.clone(), "kept", b"v1").await;
        old.store.delete("gone").await.unwrap();
        old.store.delete("rewritten").await.unwrap();
        put(new.clone(), "rewritten", b"v2 longer").await;
        let progress = Arc::new(Progress::default());
        migrate(&r, &spec(Mode::Move), &progress).await.unwrap();
        let none = ReadConditions::default();
        assert!(
            matches!(
                new.store.get("gone", None, &none, true).await,
                Err(Error::NotFound)
            ),
            "a deleted key came back"
        );
        assert!(new.store.get("kept", None, &none, true).await.is_ok());
        let (got, _) = new.store.get("rewritten", None, &none, true).await.unwrap();
        assert_eq!(got.info.size, 9, "a client's write was removed");
        assert!(
            new.store.list_internal("mover/").await.unwrap().is_empty(),
            "the journal was left behind"
        );
    }

    #[tokio::test]
    async fn a_moved_object_counts_once() {
        let r = router(
            "version = 1\n[backends.old]\nkind = \"memory\"\n[backends.new]\nkind = \"memory\"\n[buckets.bkt]\nmembers = [\"new\", \"old\"]\n",
        );
        let old = r.backend("old").unwrap().clone();
        for k in ["a", "b", "c"] {
            old.store
                .put(
                    k,
                    body(b"x"),
                    Declared::default(),
                    &Attrs::default(),
                    &WriteCondition::None,
                    1 << 23,
                )
                .await
                .unwrap();
        }
        let progress = Arc::new(Progress::default());
        migrate(&r, &spec(Mode::Move), &progress).await.unwrap();
        let p = progress.snapshot();
        assert_eq!((p.copied, p.deleted, p.finished), (3, 3, 3), "{p:?}");
    }

    #[tokio::test]
    async fn an_inventory_counts_each_member_and_each_key_once_for_the_bucket() {
        let r = router(
            "version = 1\n[backends.old]\nkind = \"memory\"\n[backends.new]\nkind = \"memory\"\n[backends.idle]\nkind = \"memory\"\n[buckets.bkt]\nmembers = [\"new\", \"old\", \"idle\"]\n",
        );
        let put = |member: &str, key: &'static str, data: &'static [u8]| {
            let store = r.backend(member).unwrap().clone();
            async move {
                store
                    .store
                    .put(
                        key,
                        body(data),
                        Declared::default(),
                        &Attrs::default(),
                        &WriteCondition::None,
                        1 << 23,
                    )
                    .await
                    .unwrap();
            }
        };
        // "b" is in both (mid-migration): the bucket counts the first member's copy.
        put("old", "a", b"1").await;
        put("old", "b", b"22").await;
        put("new", "b", b"4444").await;
        put("new", "c", b"333").await;
        put("old", "d", b"55555").await;
        let r = &r;
        let count = |shard| async move {
            let spec = InventorySpec {
                bucket: "bkt".into(),
                shard,
            };
            let progress = Arc::new(Progress::default());
            let found = inventory(r, &spec, &progress).await.unwrap();
            let p = progress.snapshot();
            assert!(p.listing_done);
            let members: u64 = found.members.iter().map(|m| m.tally.objects).sum();
            assert_eq!(p.listed, members);
            found
        };
        let tally = |objects, bytes| Tally { objects, bytes };
        let all = count(Shard::ALL).await;
        assert_eq!(all.bucket, tally(4, 1 + 4 + 3 + 5));
        let members: Vec<(&str, Tally)> = all
            .members
            .iter()
            .map(|m| (m.name.as_str(), m.tally))
            .collect();
        assert_eq!(
            members,
            [
                ("new", tally(2, 7)),
                ("old", tally(3, 8)),
                ("idle", tally(0, 0))
            ]
        );
        // Shards split the same totals.
        let mut sum = Tally::default();
        for index in 0..3 {
            let part = count(Shard { index, count: 3 }).await;
            sum.objects += part.bucket.objects;
            sum.bytes += part.bucket.bytes;
        }
        assert_eq!(sum, all.bucket);
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_limit_paces_bytes_across_callers() {
        // 1 MB/s shared by four callers moving 2 MB in 64 KB chunks: about 2 s in all
        // (the first chunk goes at once), on tokio's paused clock.
        let limit = Arc::new(RateLimit::new(1_000_000));
        let started = tokio::time::Instant::now();
        let callers = (0..4).map(|_| {
            let limit = limit.clone();
            tokio::spawn(async move {
                for _ in 0..8 {
                    limit.take(62_500).await;
                }
            })
        });
        futures::future::join_all(callers).await;
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(1900) && took <= Duration::from_millis(2100),
            "{took:?}"
        );
    }
}
