//! The mover: copies objects between members of a virtual bucket, for migrations.
//!
//! It keeps no state of its own. Each run lists the source member, skips every key the
//! destination already has, and copies the rest with a conditional create, so a run that
//! is stopped at any point (even `kill -9`) and started again finishes the job without
//! copying anything twice, and never overwrites a newer client write. The key space splits
//! into shards by a stable hash, so N engines can each migrate one shard with no
//! coordination. See docs/migration.md for the guarantees under concurrent clients.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;

use crate::backends::Backend;
use crate::model::{Error, ReadConditions, Result, WriteCondition};
use crate::router::Router;

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
}

/// Counters a progress display or metrics read while a run goes on.
#[derive(Debug, Default)]
pub struct Progress {
    pub listed: AtomicU64,
    pub copied: AtomicU64,
    pub bytes_copied: AtomicU64,
    pub skipped: AtomicU64,
    pub deleted: AtomicU64,
    pub failed: AtomicU64,
}

impl Progress {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

fn member(router: &Router, spec: &MigrateSpec, name: &str) -> Result<Arc<Backend>> {
    let vb = router.bucket(&spec.bucket)?;
    vb.member(name).cloned().ok_or_else(|| {
        Error::InvalidArgument(format!(
            "{name:?} is not a member of bucket {:?}",
            spec.bucket
        ))
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

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Copied(u64),
    Skipped,
}

async fn move_one(from: &Backend, to: &Backend, key: &str, spec: &MigrateSpec) -> Result<Outcome> {
    let none = ReadConditions::default();
    match retry(|| to.store.get(key, None, &none, true)).await {
        Ok(_) => {
            // Already there: copied by an earlier run, or written by a client since the
            // migration began (newer than the source). Either way the source copy is
            // no longer needed.
            if spec.mode == Mode::Move && !spec.dry_run {
                retry(|| from.store.delete(key)).await?;
            }
            return Ok(Outcome::Skipped);
        }
        Err(Error::NotFound) => {}
        Err(e) => return Err(e),
    }
    let (source, _) = match retry(|| from.store.get(key, None, &none, true)).await {
        Ok(v) => v,
        // Deleted by a client since it was listed.
        Err(Error::NotFound) => return Ok(Outcome::Skipped),
        Err(e) => return Err(e),
    };
    if spec.dry_run {
        return Ok(Outcome::Copied(source.info.size));
    }
    // Read the very version we looked at, so attributes and bytes belong together.
    let pinned = ReadConditions {
        if_match: source.info.etag.clone(),
        ..Default::default()
    };
    let (got, stream) = match retry(|| from.store.get(key, None, &pinned, false)).await {
        Ok(v) => v,
        Err(Error::NotFound | Error::Precondition(_)) => return Ok(Outcome::Skipped),
        Err(e) => return Err(e),
    };
    let body = stream.ok_or_else(|| Error::internal("no body"))?;
    match to
        .store
        .put(
            key,
            body,
            &got.info.attrs,
            &WriteCondition::IfAbsent,
            8 * 1024 * 1024,
        )
        .await
    {
        Ok(_) => {}
        // A client wrote the key meanwhile: theirs is newer, keep it.
        Err(Error::Precondition(_)) => return Ok(Outcome::Skipped),
        Err(e) => return Err(e),
    }
    let (copied, _) = retry(|| to.store.get(key, None, &none, true)).await?;
    if copied.info.size != got.info.size {
        return Err(Error::Internal(format!(
            "{key}: copied {} bytes of {}",
            copied.info.size, got.info.size
        )));
    }
    // A client may have deleted the key (from both members) while it was being copied:
    // then the copy must not bring it back.
    match retry(|| from.store.get(key, None, &none, true)).await {
        Err(Error::NotFound) => {
            retry(|| to.store.delete(key)).await?;
            return Ok(Outcome::Skipped);
        }
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    if spec.mode == Mode::Move {
        retry(|| from.store.delete(key)).await?;
    }
    Ok(Outcome::Copied(got.info.size))
}

/// Copies (or moves) every key of this shard from `spec.from` to `spec.to`.
pub async fn migrate(router: &Router, spec: &MigrateSpec, progress: &Progress) -> Result<()> {
    let from = member(router, spec, &spec.from)?;
    let to = member(router, spec, &spec.to)?;
    if from.name == to.name {
        return Err(Error::InvalidArgument(
            "--from and --to name the same member".into(),
        ));
    }
    let keys = from
        .store
        .list("", None)
        .filter(|r| futures::future::ready(r.as_ref().map_or(true, |o| spec.shard.owns(&o.key))));
    let results = keys
        .map(|item| {
            let (from, to) = (from.clone(), to.clone());
            async move {
                let o = item?;
                progress.listed.fetch_add(1, Ordering::Relaxed);
                let r = move_one(&from, &to, &o.key, spec).await;
                match &r {
                    Ok(Outcome::Copied(bytes)) => {
                        progress.copied.fetch_add(1, Ordering::Relaxed);
                        progress.bytes_copied.fetch_add(*bytes, Ordering::Relaxed);
                        if spec.mode == Mode::Move {
                            progress.deleted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(Outcome::Skipped) => {
                        progress.skipped.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        progress.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(key = %o.key, error = %e, "could not migrate");
                    }
                }
                Ok::<(), Error>(())
            }
        })
        .buffer_unordered(spec.concurrency.max(1));
    futures::pin_mut!(results);
    while let Some(r) = results.next().await {
        // A listing failure ends the run (a later run resumes); per-key failures are
        // counted and the run goes on.
        r?;
    }
    Ok(())
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
}
