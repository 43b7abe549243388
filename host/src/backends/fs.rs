//! The `fs` backend: a directory where each object is a plain file holding exactly the
//! object's bytes, at the path named by its key.
//!
//! **One object, one moment.** What S3 says about an object besides its bytes (ETag,
//! content type, user metadata) lives in one extended attribute of the data file,
//! `user.switchyard`, set on the temporary file before it is published by a single `rename`
//! (or `link`, for a conditional create). Bytes and attributes share an inode, so a reader,
//! a concurrent writer or an engine restarted after `kill -9` sees the old object or the
//! whole new one, never bytes of one write with attributes of another. The attribute also
//! records the size and modification time of the bytes it describes: a file changed in
//! place by another tool no longer matches and is served with default attributes and a
//! synthetic ETag, like any file dropped into the directory. Objects written by versions
//! before 0.2 kept their attributes in sidecars (`.switchyard/meta/KEY.json`); those are
//! still read for files that carry no attribute.
//!
//! **Durability.** A write is acknowledged after the file (bytes and attribute) and the
//! directory entries that publish it are on disk (`fsync` of the file, then of each
//! directory whose entries changed).
//!
//! **Folder markers.** A key ending in `/` (`photos/`, as the AWS console's "Create
//! folder" writes it) is the file [`MARKER_FILE`] inside the directory of that name
//! (`photos/.switchyard-folder`), with the marker's bytes (usually none) and attributes
//! like any object's. The directory then holds the marker: deleting the last object under
//! it leaves it (and the marker), deleting the marker leaves the objects under it. Keys
//! with a segment of that name are refused here: the name is the marker's.
//!
//! **Temporary files** live in a directory of this engine's own under
//! `.switchyard/tmp/`, beside a lock file the engine holds while it runs. An engine that
//! opens the backend removes the directories of engines that no longer hold their lock
//! (killed mid-write), and does so again every few minutes; engines sharing a root never
//! remove each other's live files.

use std::io::SeekFrom;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use md5::{Digest, Md5};
use rustix::io::Errno;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::objstore::{check_read_conditions, check_write_condition};
use super::{PartRef, Store};
use crate::config::ConfigError;
use crate::model::{
    Attrs, Body, ByteRange, ByteStream, Declared, Error, GetOutcome, ObjectInfo, ObjectSummary,
    PutOutcome, RESERVED_PREFIX, ReadConditions, Result, WriteCondition,
};

const RESERVED_DIR: &str = ".switchyard";
/// The file inside a directory that is the folder marker `DIR/` (see the module's doc).
pub const MARKER_FILE: &str = ".switchyard-folder";
const READ_BUFFER: usize = 256 * 1024;
/// The extended attribute holding a [`Stamp`].
const XATTR: &str = "user.switchyard";
/// The longest file name Linux filesystems take (`NAME_MAX`).
const NAME_MAX: usize = 255;
/// A temporary file or directory with no live owner and untouched for this long is left
/// over from a crash (or from a version that did not track owners).
const ORPHAN_AGE: Duration = Duration::from_secs(3600);
/// How often a running engine looks for other engines' leftovers.
const SWEEP_EVERY: Duration = Duration::from_secs(600);
/// A parent directory removed by a concurrent delete between our `mkdir` and our `rename`
/// is made again; this bounds how often in a row.
const PUBLISH_ATTEMPTS: usize = 64;

/// What S3 says about one version of an object, and which bytes it describes.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Stamp {
    size: u64,
    mtime_ns: i128,
    etag: String,
    #[serde(default)]
    attrs: Attrs,
}

impl Stamp {
    /// The stamp as the object's info, when it still describes the file `meta` is of.
    fn describe(self, meta: &std::fs::Metadata) -> Option<ObjectInfo> {
        (self.size == meta.len() && self.mtime_ns == mtime_ns(meta)).then(|| ObjectInfo {
            size: meta.len(),
            content_md5: super::etag_md5(&self.etag),
            etag: Some(self.etag),
            last_modified: to_datetime(meta),
            attrs: self.attrs,
            foreign: false,
            untold_tags: 0,
        })
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// A file no stamp describes: written or changed by another tool.
fn foreign_info(meta: &std::fs::Metadata) -> ObjectInfo {
    ObjectInfo {
        size: meta.len(),
        etag: Some(format!("{:x}-{:x}", mtime_ns(meta), meta.len())),
        last_modified: to_datetime(meta),
        attrs: Attrs::default(),
        content_md5: None,
        foreign: true,
        untold_tags: 0,
    }
}

/// Reads the stamp of an open file (`None` when it has none).
fn stamp_of_fd(fd: impl AsFd) -> Option<Stamp> {
    let mut buf = [0u8; 4096];
    match rustix::fs::fgetxattr(&fd, XATTR, &mut buf) {
        Ok(n) => Stamp::decode(&buf[..n]),
        Err(Errno::RANGE) => {
            let len = rustix::fs::fgetxattr(&fd, XATTR, &mut [0u8; 0][..]).ok()?;
            let mut big = vec![0u8; len];
            let n = rustix::fs::fgetxattr(&fd, XATTR, &mut big[..]).ok()?;
            Stamp::decode(&big[..n])
        }
        Err(_) => None,
    }
}

/// Reads the stamp of the file at `path` (`None` when it has none).
fn stamp_of_path(path: &Path) -> Option<Stamp> {
    let mut buf = [0u8; 4096];
    match rustix::fs::getxattr(path, XATTR, &mut buf) {
        Ok(n) => Stamp::decode(&buf[..n]),
        Err(Errno::RANGE) => std::fs::File::open(path).ok().and_then(stamp_of_fd),
        Err(_) => None,
    }
}

/// This engine's directory of temporary files, and the lock that tells other engines it
/// is alive. Removed when the store is dropped.
struct TmpDir {
    dir: PathBuf,
    lock_path: PathBuf,
    _lock: std::fs::File,
}

impl TmpDir {
    /// Claims a fresh directory under `parent`. The lock file is locked before it gets the
    /// name other engines look for, so none of them can take it for a dead engine's.
    fn claim(parent: &Path) -> std::io::Result<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let staging = parent.join(format!(".{id}.new"));
        let lock = std::fs::File::create(&staging)?;
        lock.try_lock().map_err(std::io::Error::other)?;
        let lock_path = parent.join(format!("{id}.lock"));
        std::fs::rename(&staging, &lock_path)?;
        let dir = parent.join(&id);
        std::fs::create_dir(&dir)?;
        Ok(Self {
            dir,
            lock_path,
            _lock: lock,
        })
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

/// Removes what dead engines left under `parent` (the `tmp` directory): the directory of
/// every lock file nobody holds, and unowned entries older than [`ORPHAN_AGE`].
fn sweep(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let old = |p: &Path| {
        std::fs::symlink_metadata(p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > ORPHAN_AGE)
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if let Some(id) = name.strip_suffix(".lock") {
            let Ok(lock) = std::fs::OpenOptions::new().write(true).open(&path) else {
                continue;
            };
            // Held: its engine is alive. Free: the engine is gone, and so is any write of
            // its that was not published.
            if lock.try_lock().is_ok() {
                let dir = parent.join(id);
                match std::fs::remove_dir_all(&dir) {
                    Ok(()) => {
                        tracing::info!(dir = %dir.display(), "removed a dead engine's temporary files")
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(dir = %dir.display(), error = %e, "could not remove a dead engine's temporary files")
                    }
                }
                let _ = std::fs::remove_file(&path);
            }
        } else if entry.file_type().is_ok_and(|t| t.is_dir()) {
            if !parent.join(format!("{name}.lock")).exists() && old(&path) {
                let _ = std::fs::remove_dir_all(&path);
            }
        } else if old(&path) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

pub struct FsStore {
    name: String,
    root: PathBuf,
    tmp: TmpDir,
    /// Serialises `If-Match` writes within this process (see docs on conditional PUT).
    cond_lock: tokio::sync::Mutex<()>,
    /// Sidecars of earlier versions exist here (`.switchyard/meta`, seen at start).
    legacy_meta: bool,
    /// Seconds since the epoch of the last sweep of other engines' leftovers.
    last_sweep: AtomicU64,
}

fn mtime_ns(meta: &std::fs::Metadata) -> i128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
}

fn to_datetime(meta: &std::fs::Metadata) -> DateTime<Utc> {
    meta.modified()
        .map(DateTime::<Utc>::from)
        .unwrap_or_else(|_| Utc::now())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl FsStore {
    pub fn new(root: PathBuf, prefix: Option<String>, name: &str) -> Result<Self, ConfigError> {
        let root = match prefix.filter(|p| !p.is_empty()) {
            Some(p) => root.join(p),
            None => root,
        };
        let fail = |what: &str, e: std::io::Error| ConfigError::Invalid {
            field: format!("backends.{name}.root"),
            message: format!("{what} {}: {e}", root.display()),
        };
        let tmp_parent = root.join(RESERVED_DIR).join("tmp");
        std::fs::create_dir_all(&tmp_parent).map_err(|e| fail("cannot create", e))?;
        let tmp = TmpDir::claim(&tmp_parent).map_err(|e| fail("cannot write in", e))?;
        // Attributes live in extended attributes: a filesystem without them cannot keep
        // an object's metadata, so refuse it now rather than lose metadata later.
        let probe = tmp.dir.join("xattr-probe");
        let probed = std::fs::File::create(&probe).and_then(|f| {
            rustix::fs::fsetxattr(&f, XATTR, b"{}", rustix::fs::XattrFlags::empty())
                .map_err(std::io::Error::from)
        });
        let _ = std::fs::remove_file(&probe);
        probed.map_err(|e| {
            fail(
                "the fs backend keeps object attributes in user extended attributes (xattrs), which this filesystem refuses:",
                e,
            )
        })?;
        sweep(&tmp_parent);
        Ok(Self {
            name: name.to_owned(),
            legacy_meta: root.join(RESERVED_DIR).join("meta").is_dir(),
            root,
            tmp,
            cond_lock: tokio::sync::Mutex::new(()),
            last_sweep: AtomicU64::new(now_secs()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file holding `key`: the file at the key's path, or for a folder marker
    /// (`dir/`) the [`MARKER_FILE`] in its directory.
    fn data_path(&self, key: &str) -> PathBuf {
        match key.strip_suffix('/') {
            Some(dir) => self.root.join(dir).join(MARKER_FILE),
            None => self.root.join(key),
        }
    }

    /// Whether `key` names a marker's file itself (or a path under one), which is not a
    /// key here.
    fn names_marker_file(key: &str) -> bool {
        key.split('/').any(|s| s == MARKER_FILE)
    }

    fn internal(&self, rel: &str) -> PathBuf {
        self.root.join(RESERVED_DIR).join(rel)
    }

    fn io(&self, e: std::io::Error) -> Error {
        io_error(&self.name, e)
    }

    /// Opens a new temporary file of this engine's.
    async fn create_tmp(&self) -> Result<(PathBuf, tokio::fs::File)> {
        let last = self.last_sweep.load(Ordering::Relaxed);
        let now = now_secs();
        if now.saturating_sub(last) >= SWEEP_EVERY.as_secs()
            && self
                .last_sweep
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let parent = self.root.join(RESERVED_DIR).join("tmp");
            tokio::task::spawn_blocking(move || sweep(&parent));
        }
        let path = self.tmp.dir.join(uuid::Uuid::new_v4().simple().to_string());
        match tokio::fs::File::create(&path).await {
            Ok(f) => Ok((path, f)),
            // The directory is gone: the bucket's directory was removed (DeleteBucket),
            // or someone cleaned the reserved directory by hand.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.make_dirs_below_root(&self.tmp.dir).await?;
                let f = tokio::fs::File::create(&path)
                    .await
                    .map_err(|e| self.io(e))?;
                Ok((path, f))
            }
            Err(e) => Err(self.io(e)),
        }
    }

    /// Streams `body` into a new temporary file, stamps it (when `stamp` is given: a part
    /// of a multipart upload needs none) and makes it durable. The stamp's ETag is the
    /// MD5 of the bytes, or the declared multipart ETag of a copy of a multipart upload.
    /// Returns its path, size, MD5 (hex) and the ETag stamped.
    async fn write_tmp(
        &self,
        mut body: Body,
        stamp: Option<(&Attrs, &Declared)>,
    ) -> Result<(PathBuf, u64, String, String)> {
        let (tmp, mut file) = self.create_tmp().await?;
        let mut md5 = Md5::new();
        let mut size = 0u64;
        let streamed: Result<()> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                md5.update(&chunk);
                size += chunk.len() as u64;
                file.write_all(&chunk).await.map_err(|e| self.io(e))?;
            }
            file.flush().await.map_err(|e| self.io(e))
        }
        .await;
        let md5: [u8; 16] = md5.finalize().into();
        let etag = match stamp {
            Some((_, declared)) => super::etag_to_keep(declared, &md5),
            None => hex::encode(md5),
        };
        let result = match streamed {
            Ok(()) => {
                self.seal(
                    file.into_std().await,
                    stamp.map(|(a, d)| (etag.clone(), d.checksum.attrs(a).into_owned())),
                )
                .await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => Ok((tmp, size, hex::encode(md5), etag)),
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(e)
            }
        }
    }

    /// Stamps a finished temporary file with `etag` and `attrs` (bytes and attributes are
    /// then one inode, published together) and flushes both to disk.
    async fn seal(&self, file: std::fs::File, stamp: Option<(String, Attrs)>) -> Result<()> {
        let name = self.name.clone();
        tokio::task::spawn_blocking(move || {
            if let Some((etag, attrs)) = stamp {
                fail::fail_point!("fs::before_stamp", |_| std::process::abort());
                let meta = file.metadata().map_err(|e| io_error(&name, e))?;
                let stamp = Stamp {
                    size: meta.len(),
                    mtime_ns: mtime_ns(&meta),
                    etag,
                    attrs,
                };
                let json = serde_json::to_vec(&stamp).map_err(Error::internal)?;
                rustix::fs::fsetxattr(&file, XATTR, &json, rustix::fs::XattrFlags::empty())
                    .map_err(|e| match e {
                        // ext4 keeps every attribute of a file in one block.
                        Errno::TOOBIG | Errno::NOSPC => Error::MetadataTooLarge(format!(
                            "{} bytes of attributes do not fit in this filesystem's extended attributes",
                            json.len()
                        )),
                        e => io_error(&name, e.into()),
                    })?;
            }
            file.sync_all().map_err(|e| io_error(&name, e))
        })
        .await
        .map_err(Error::internal)?
    }

    /// Creates the directories of `dir` below the root, one by one: never the root itself,
    /// so that a write racing the removal of its bucket's directory cannot bring it back.
    /// Returns the directories whose entries changed (for [`sync_dirs`]).
    async fn make_dirs_below_root(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let rel = dir
            .strip_prefix(&self.root)
            .map_err(|_| Error::internal("a directory outside the backend's root"))?;
        let mut changed = Vec::new();
        let mut at = self.root.clone();
        for part in rel.components() {
            let parent = at.clone();
            at.push(part);
            match tokio::fs::create_dir(&at).await {
                Ok(()) => changed.push(parent),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(if self.root.is_dir() {
                        // A concurrent delete pruned a parent we had just made.
                        Error::internal("directory removed while being used")
                    } else {
                        Error::NoSuchBucket
                    });
                }
                Err(e) => return Err(self.io(e)),
            }
        }
        Ok(changed)
    }

    /// Refuses, before any byte is read, a key this directory cannot hold as a file: a
    /// segment longer than the filesystem allows, or a key that is (or is under) another
    /// key's "directory". One `stat`: the parents are made when the object is published.
    async fn check_writable(&self, key: &str) -> Result<()> {
        if Self::names_marker_file(key) {
            return Err(Error::InvalidArgument(format!(
                "the fs backend {} keeps folder markers (keys ending in '/') as files named {MARKER_FILE}: keys with a segment of that name are refused",
                self.name
            )));
        }
        if let Some(seg) = key.split('/').find(|s| s.len() > NAME_MAX) {
            return Err(Error::KeyTooLong(format!(
                "the fs backend {} stores keys as file paths, and a segment of {} bytes is longer than the filesystem allows ({NAME_MAX})",
                self.name,
                seg.len()
            )));
        }
        match tokio::fs::symlink_metadata(self.data_path(key)).await {
            Ok(meta) if meta.is_dir() => Err(self.conflict(key)),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.key_conflict(key, e)),
        }
    }

    fn conflict(&self, key: &str) -> Error {
        Error::InvalidArgument(format!(
            "key {key:?} conflicts with an existing key in fs backend {}: a key cannot be both an object and a prefix of other keys there",
            self.name
        ))
    }

    /// Publishes the finished temporary file `tmp` as `key`, under `cond`: one `rename`
    /// (or `link`, which fails if the key exists, for a conditional create). On any error
    /// the temporary file is removed and nothing is published.
    async fn publish(&self, tmp: &Path, key: &str, cond: &WriteCondition) -> Result<()> {
        let result = self.publish_inner(tmp, key, cond).await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(tmp).await;
        }
        result
    }

    async fn publish_inner(&self, tmp: &Path, key: &str, cond: &WriteCondition) -> Result<()> {
        let dest = self.data_path(key);
        let _guard = match cond {
            WriteCondition::IfMatch(_) => {
                let guard = self.cond_lock.lock().await;
                let current = self.current_etag(key).await?;
                check_write_condition(cond, current.as_ref().map(|e| Some(e.as_str())))?;
                Some(guard)
            }
            _ => None,
        };
        fail::fail_point!("fs::before_publish", |_| std::process::abort());
        let create_only = matches!(cond, WriteCondition::IfAbsent);
        let changed = self
            .place(tmp, &dest, create_only, |e| self.key_conflict(key, e))
            .await?;
        fail::fail_point!("fs::after_publish", |_| std::process::abort());
        self.sync_dirs(changed).await?;
        if self.legacy_meta && !super::is_marker(key) {
            // A sidecar of an earlier version no longer describes this key.
            let _ = tokio::fs::remove_file(sidecar_path(&self.root, key)).await;
        }
        Ok(())
    }

    /// Moves the file `tmp` to `dest` (a `rename`; a `link`, which fails if `dest` exists,
    /// when `create_only`), making `dest`'s parents as needed, and again when a concurrent
    /// delete prunes them in between. Returns the directories whose entries changed.
    async fn place(
        &self,
        tmp: &Path,
        dest: &Path,
        create_only: bool,
        map: impl Fn(std::io::Error) -> Error,
    ) -> Result<Vec<PathBuf>> {
        let parent = dest.parent().unwrap_or(&self.root).to_owned();
        let mut changed = vec![parent.clone()];
        let mut attempt = 0;
        loop {
            let r = if create_only {
                tokio::fs::hard_link(tmp, dest).await
            } else {
                tokio::fs::rename(tmp, dest).await
            };
            match r {
                Ok(()) => break,
                Err(e) if create_only && e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(Error::Precondition("the object already exists".into()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if tokio::fs::symlink_metadata(tmp).await.is_err() {
                        // Our temporary file went with its directory: the bucket's
                        // directory was removed (DeleteBucket) while we wrote.
                        return Err(Error::NoSuchBucket);
                    }
                    attempt += 1;
                    if attempt > PUBLISH_ATTEMPTS {
                        return Err(map(e));
                    }
                    // The parents do not exist yet, or a delete pruned them meanwhile.
                    match self.make_dirs_below_root(&parent).await {
                        Ok(dirs) => changed.extend(dirs),
                        Err(Error::Internal(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(map(e)),
            }
        }
        if create_only {
            let _ = tokio::fs::remove_file(tmp).await;
        }
        Ok(changed)
    }

    /// Makes changed directory entries durable (`fsync` of each directory).
    async fn sync_dirs(&self, mut dirs: Vec<PathBuf>) -> Result<()> {
        dirs.sort();
        dirs.dedup();
        let name = self.name.clone();
        tokio::task::spawn_blocking(move || {
            for d in dirs {
                match std::fs::File::open(&d).and_then(|f| f.sync_all()) {
                    Ok(()) => {}
                    // Gone since the entry was placed in it: moved with the entry inside
                    // by a DeleteBucket's rename of the bucket's directory (which then
                    // finds the object and puts the directory back: `BucketNotEmpty`),
                    // or pruned after a concurrent DELETE took the entry. Either way the
                    // write happened; failing it here answered 404 for an object that
                    // stayed (seen in CI: a CompleteMultipartUpload racing DeleteBucket).
                    Err(e) if is_missing(&e) => {}
                    Err(e) => return Err(io_error(&name, e)),
                }
            }
            Ok(())
        })
        .await
        .map_err(Error::internal)?
    }

    /// Maps an error about `key`'s path to the client's fault when it is one.
    fn key_conflict(&self, key: &str, e: std::io::Error) -> Error {
        match Errno::from_io_error(&e) {
            // A key is both an object and a "directory" of other keys.
            Some(Errno::NOTDIR | Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST) => {
                self.conflict(key)
            }
            Some(Errno::NAMETOOLONG) => Error::KeyTooLong(format!(
                "a segment of {key:?} is longer than the filesystem allows ({NAME_MAX} bytes)"
            )),
            _ => self.io(e),
        }
    }

    async fn current_etag(&self, key: &str) -> Result<Option<String>> {
        let path = self.data_path(key);
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(Some(
                self.describe_path(key, &meta)
                    .await
                    .etag
                    .unwrap_or_default(),
            )),
            Ok(_) => Ok(None),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(self.key_conflict(key, e)),
        }
    }

    /// The info of an open data file: its stamp when the stamp still describes it, else a
    /// sidecar of an earlier version that does, else that of a foreign file.
    async fn describe_file(
        &self,
        key: &str,
        file: &tokio::fs::File,
        meta: &std::fs::Metadata,
    ) -> ObjectInfo {
        if let Some(info) = stamp_of_fd(file).and_then(|s| s.describe(meta)) {
            return info;
        }
        self.describe_legacy(key, meta).await
    }

    async fn describe_path(&self, key: &str, meta: &std::fs::Metadata) -> ObjectInfo {
        if let Some(info) = stamp_of_path(&self.data_path(key)).and_then(|s| s.describe(meta)) {
            return info;
        }
        self.describe_legacy(key, meta).await
    }

    async fn describe_legacy(&self, key: &str, meta: &std::fs::Metadata) -> ObjectInfo {
        if self.legacy_meta
            && !super::is_marker(key)
            && let Ok(bytes) = tokio::fs::read(sidecar_path(&self.root, key)).await
            && let Some(info) = Stamp::decode(&bytes).and_then(|s| s.describe(meta))
        {
            return info;
        }
        foreign_info(meta)
    }

    /// Removes now-empty directories between `path` and the root, so deleted prefixes do
    /// not linger as directories. A write racing this makes its parents again.
    /// Rewrites the stamp of `key` in place with `change` made to its attributes: the
    /// bytes, their mtime (the object's Last-Modified) and the ETag stay. A file replaced
    /// meanwhile keeps its own stamp (the write after wins), as the change applies to the
    /// inode opened.
    async fn restamp(&self, key: &str, change: impl FnOnce(&mut Attrs) + Send) -> Result<()> {
        if Self::names_marker_file(key) {
            return Err(Error::NotFound);
        }
        let file = tokio::fs::File::open(self.data_path(key))
            .await
            .map_err(|e| self.io(e))?;
        let meta = file.metadata().await.map_err(|e| self.io(e))?;
        if !meta.is_file() {
            return Err(Error::NotFound);
        }
        let info = self.describe_file(key, &file, &meta).await;
        let mut attrs = info.attrs;
        change(&mut attrs);
        let stamp = Stamp {
            size: meta.len(),
            mtime_ns: mtime_ns(&meta),
            // A foreign file's synthetic ETag, kept as it is answered.
            etag: info.etag.unwrap_or_default(),
            attrs,
        };
        let json = serde_json::to_vec(&stamp).map_err(Error::internal)?;
        let file = file.into_std().await;
        let name = self.name.clone();
        tokio::task::spawn_blocking(move || {
            rustix::fs::fsetxattr(&file, XATTR, &json, rustix::fs::XattrFlags::empty()).map_err(
                |e| match e {
                    Errno::TOOBIG | Errno::NOSPC => Error::MetadataTooLarge(format!(
                        "{} bytes of attributes do not fit in this filesystem's extended attributes",
                        json.len()
                    )),
                    e => io_error(&name, e.into()),
                },
            )?;
            file.sync_all().map_err(|e| io_error(&name, e))
        })
        .await
        .map_err(Error::internal)?
    }

    async fn prune_dirs(&self, path: &Path, stop: &Path) {
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == stop || !d.starts_with(stop) {
                break;
            }
            if tokio::fs::remove_dir(d).await.is_err() {
                break;
            }
            dir = d.parent();
        }
    }

    /// Writes a small bookkeeping file atomically and durably.
    async fn write_atomic(&self, path: &Path, data: &[u8]) -> Result<()> {
        let (tmp, mut file) = self.create_tmp().await?;
        let written: Result<()> = async {
            file.write_all(data).await.map_err(|e| self.io(e))?;
            file.flush().await.map_err(|e| self.io(e))?;
            self.seal(file.into_std().await, None).await?;
            let changed = self.place(&tmp, path, false, |e| self.io(e)).await?;
            self.sync_dirs(changed).await
        }
        .await;
        if written.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        written
    }
}

fn is_missing(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
        || matches!(
            Errno::from_io_error(e),
            Some(Errno::NOTDIR | Errno::NAMETOOLONG)
        )
}

/// An I/O error as Switchyard's. A path that cannot name a file here (missing, under a
/// file, too long) is simply not here: it is not a failure of the backend, which must not
/// be marked unhealthy for what a client asked.
fn io_error(backend: &str, e: std::io::Error) -> Error {
    if is_missing(&e) {
        return Error::NotFound;
    }
    Error::Unavailable {
        backend: backend.to_owned(),
        message: e.to_string(),
    }
}

fn resolve_range(range: Option<ByteRange>, size: u64) -> Result<std::ops::Range<u64>> {
    let r = match range {
        None => return Ok(0..size),
        Some(ByteRange::Bounded { first, last }) => first..last.saturating_add(1).min(size),
        Some(ByteRange::From(first)) => first..size,
        Some(ByteRange::Suffix(n)) => size.saturating_sub(n)..size,
    };
    if r.start >= size && !(size == 0 && matches!(range, Some(ByteRange::Suffix(_)))) {
        return Err(Error::InvalidRange);
    }
    Ok(r)
}

/// One directory level of a sorted walk.
struct Level {
    dir: PathBuf,
    key_prefix: String,
    entries: std::vec::IntoIter<(String, bool)>,
    /// The directory holds its folder marker (the key `key_prefix`), not yet yielded: it
    /// sorts before every key inside the directory.
    marker: bool,
}

/// Reads one directory, sorted so that the walk yields keys in byte order: a directory
/// sorts as its name followed by `/`, because every key inside it does. A folder marker's
/// file is not an entry: whether the directory holds one is returned beside them.
fn read_sorted(dir: &Path, skip_reserved: bool) -> std::io::Result<(Vec<(String, bool)>, bool)> {
    let mut entries = Vec::new();
    let mut marker = false;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if skip_reserved && name == RESERVED_DIR {
            continue;
        }
        let ft = entry.file_type()?;
        let is_dir = if ft.is_symlink() {
            entry.path().is_dir()
        } else {
            ft.is_dir()
        };
        if name == MARKER_FILE {
            marker |= !is_dir;
            continue;
        }
        entries.push((name, is_dir));
    }
    entries.sort_by(|(a, ad), (b, bd)| {
        let a = if *ad { format!("{a}/") } else { a.clone() };
        let b = if *bd { format!("{b}/") } else { b.clone() };
        a.as_bytes().cmp(b.as_bytes())
    });
    Ok((entries, marker))
}

struct Walk {
    root: PathBuf,
    prefix: String,
    offset: Option<String>,
    stack: Vec<Level>,
    started: bool,
    name: String,
    /// Read ETags (stamps, or sidecars when `legacy_meta`); internal walks need none.
    etags: bool,
    legacy_meta: bool,
}

impl Walk {
    /// Whether a directory whose keys all start with `dir_key` (ending in `/`) can hold a
    /// wanted key.
    fn dir_wanted(&self, dir_key: &str) -> bool {
        let prefix_ok = dir_key.starts_with(&self.prefix) || self.prefix.starts_with(dir_key);
        let offset_ok = match &self.offset {
            Some(o) => dir_key > o.as_str() || o.starts_with(dir_key),
            None => true,
        };
        prefix_ok && offset_ok
    }

    /// The ETag of the file at `path`, with the metadata it goes with; `None` when the
    /// file is gone. The stamp is read after the `stat`: a file replaced or deleted in
    /// between has a stamp that does not describe `meta`, or none, and a listing must not
    /// take it for a foreign file (it answered a made-up ETag for a key a client was
    /// deleting). So a file whose stamp does not describe it is looked at again, until it
    /// holds still.
    fn etag(
        &self,
        key: &str,
        path: &Path,
        mut meta: std::fs::Metadata,
    ) -> std::io::Result<Option<(std::fs::Metadata, Option<String>)>> {
        if !self.etags {
            return Ok(Some((meta, None)));
        }
        for _ in 0..3 {
            if let Some(info) = stamp_of_path(path).and_then(|s| s.describe(&meta)) {
                return Ok(Some((meta, info.etag)));
            }
            match std::fs::metadata(path) {
                Ok(now) if same_version(&now, &meta) => break,
                Ok(now) => meta = now,
                Err(e) if is_missing(&e) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        if self.legacy_meta
            && !super::is_marker(key)
            && let Ok(bytes) = std::fs::read(sidecar_path(&self.root, key))
            && let Some(info) = Stamp::decode(&bytes).and_then(|s| s.describe(&meta))
        {
            return Ok(Some((meta, info.etag)));
        }
        let etag = foreign_info(&meta).etag;
        Ok(Some((meta, etag)))
    }

    /// The listing row of `key`, held in the file at `path`: `None` when the file went
    /// away (or the key is not wanted).
    fn row(&self, key: String, path: &Path) -> Option<Result<ObjectSummary>> {
        if !key.starts_with(&self.prefix)
            || self.offset.as_deref().is_some_and(|o| key.as_str() <= o)
        {
            return None;
        }
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if is_missing(&e) => return None,
            Err(e) => return Some(Err(io_error(&self.name, e))),
        };
        let (meta, etag) = match self.etag(&key, path, meta) {
            Ok(Some(found)) => found,
            // Deleted since the directory was read.
            Ok(None) => return None,
            Err(e) => return Some(Err(io_error(&self.name, e))),
        };
        Some(Ok(ObjectSummary {
            etag,
            key,
            size: meta.len(),
            last_modified: to_datetime(&meta),
        }))
    }

    fn next_blocking(&mut self) -> Option<Result<ObjectSummary>> {
        if !self.started {
            self.started = true;
            match read_sorted(&self.root, true) {
                Ok((entries, _)) => self.stack.push(Level {
                    dir: self.root.clone(),
                    key_prefix: String::new(),
                    entries: entries.into_iter(),
                    // A marker at the root would be the key "/": none.
                    marker: false,
                }),
                Err(e) if is_missing(&e) => return None,
                Err(e) => return Some(Err(io_error(&self.name, e))),
            }
        }
        loop {
            let level = self.stack.last_mut()?;
            if std::mem::take(&mut level.marker) {
                let key = level.key_prefix.clone();
                let path = level.dir.join(MARKER_FILE);
                match self.row(key, &path) {
                    Some(row) => return Some(row),
                    None => continue,
                }
            }
            let Some((name, is_dir)) = level.entries.next() else {
                self.stack.pop();
                continue;
            };
            let key = format!("{}{name}", level.key_prefix);
            let path = level.dir.join(&name);
            if is_dir {
                let dir_key = format!("{key}/");
                if !self.dir_wanted(&dir_key) {
                    continue;
                }
                match read_sorted(&path, false) {
                    Ok((entries, marker)) => self.stack.push(Level {
                        dir: path,
                        key_prefix: dir_key,
                        entries: entries.into_iter(),
                        marker,
                    }),
                    Err(e) if is_missing(&e) => continue,
                    Err(e) => return Some(Err(io_error(&self.name, e))),
                }
                continue;
            }
            if let Some(row) = self.row(key, &path) {
                return Some(row);
            }
        }
    }
}

/// Whether two `stat`s saw the same file unchanged.
fn same_version(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    (a.dev(), a.ino(), a.len(), a.mtime(), a.mtime_nsec())
        == (b.dev(), b.ino(), b.len(), b.mtime(), b.mtime_nsec())
}

fn sidecar_path(root: &Path, key: &str) -> PathBuf {
    root.join(RESERVED_DIR)
        .join("meta")
        .join(format!("{key}.json"))
}

#[async_trait]
impl Store for FsStore {
    async fn put(
        &self,
        key: &str,
        body: Body,
        declared: Declared,
        attrs: &Attrs,
        cond: &WriteCondition,
        _part_size: u64,
    ) -> Result<PutOutcome> {
        self.check_writable(key).await?;
        if *cond != WriteCondition::None {
            // Fail before reading the body when the answer is already known.
            let current = self.current_etag(key).await?;
            check_write_condition(cond, current.as_ref().map(|e| Some(e.as_str())))?;
        }
        let (tmp, _size, md5, etag) = self.write_tmp(body, Some((attrs, &declared))).await?;
        // The MD5 was computed on the way: no second hash.
        if let Some(want) = declared.md5
            && md5 != hex::encode(want)
        {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(Error::BadDigest);
        }
        self.publish(&tmp, key, cond).await?;
        Ok(PutOutcome { etag: Some(etag) })
    }

    async fn get(
        &self,
        key: &str,
        range: Option<ByteRange>,
        cond: &ReadConditions,
        head: bool,
    ) -> Result<(GetOutcome, Option<ByteStream>)> {
        if Self::names_marker_file(key) {
            return Err(Error::NotFound);
        }
        let path = self.data_path(key);
        let mut file = tokio::fs::File::open(&path).await.map_err(|e| self.io(e))?;
        let meta = file.metadata().await.map_err(|e| self.io(e))?;
        if !meta.is_file() {
            return Err(Error::NotFound);
        }
        // Read from the open file: the bytes served are those the attributes describe,
        // even if the key is replaced meanwhile.
        let info = self.describe_file(key, &file, &meta).await;
        check_read_conditions(cond, &info)?;
        let served = if head {
            0..info.size
        } else {
            resolve_range(range, info.size)?
        };
        let outcome = GetOutcome {
            info,
            range: served.clone(),
        };
        if head {
            return Ok((outcome, None));
        }
        file.seek(SeekFrom::Start(served.start))
            .await
            .map_err(|e| self.io(e))?;
        let reader = file.take(served.end - served.start);
        let name = self.name.clone();
        let stream = tokio_util::io::ReaderStream::with_capacity(reader, READ_BUFFER)
            .map(move |r| r.map_err(|e| io_error(&name, e)))
            .boxed();
        Ok((outcome, Some(stream)))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        if Self::names_marker_file(key) {
            // Not a key here (a marker's file): nothing to delete, as for a missing key.
            return Ok(());
        }
        let path = self.data_path(key);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {
                // The removal is durable before it is acknowledged. The directory may be
                // pruned by a concurrent delete already: then it is gone for good too.
                if let Some(parent) = path.parent() {
                    match self.sync_dirs(vec![parent.to_owned()]).await {
                        Ok(()) | Err(Error::NotFound) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e) if is_missing(&e) => {}
            // A "directory" key: nothing to delete, as S3 would answer for a missing key.
            Err(e) if Errno::from_io_error(&e) == Some(Errno::ISDIR) => return Ok(()),
            Err(e) => return Err(self.io(e)),
        }
        self.prune_dirs(&path, &self.root).await;
        if self.legacy_meta && !super::is_marker(key) {
            let sidecar = sidecar_path(&self.root, key);
            let _ = tokio::fs::remove_file(&sidecar).await;
            self.prune_dirs(&sidecar, &self.root.join(RESERVED_DIR).join("meta"))
                .await;
        }
        Ok(())
    }

    fn list(
        &self,
        prefix: &str,
        offset: Option<&str>,
    ) -> BoxStream<'static, Result<ObjectSummary>> {
        let walk = Walk {
            root: self.root.clone(),
            prefix: prefix.to_owned(),
            offset: offset.map(str::to_owned),
            stack: Vec::new(),
            started: false,
            name: self.name.clone(),
            etags: true,
            legacy_meta: self.legacy_meta,
        };
        // Directory reads block; batches of entries are produced on the blocking pool.
        futures::stream::unfold(Some(walk), |walk| async move {
            let mut walk = walk?;
            let (walk, batch) = tokio::task::spawn_blocking(move || {
                let mut batch = Vec::with_capacity(256);
                while batch.len() < 256 {
                    match walk.next_blocking() {
                        Some(item) => {
                            let stop = item.is_err();
                            batch.push(item);
                            if stop {
                                break;
                            }
                        }
                        None => break,
                    }
                }
                (walk, batch)
            })
            .await
            .ok()?;
            if batch.is_empty() {
                return None;
            }
            Some((futures::stream::iter(batch), Some(walk)))
        })
        .flatten()
        .boxed()
    }

    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        if Self::names_marker_file(from) {
            return Err(Error::NotFound);
        }
        self.check_writable(to).await?;
        let src = std::fs::File::open(self.data_path(from)).map_err(|e| self.io(e))?;
        let meta = src.metadata().map_err(|e| self.io(e))?;
        if !meta.is_file() {
            return Err(Error::NotFound);
        }
        // Attributes and bytes from the same open file: one version, even if `from` is
        // replaced meanwhile.
        let attrs = match stamp_of_fd(&src).and_then(|s| s.describe(&meta)) {
            Some(info) => info.attrs,
            None => self.describe_legacy(from, &meta).await.attrs,
        };
        let (tmp, dst) = self.create_tmp().await?;
        let dst = dst.into_std().await;
        let name = self.name.clone();
        // The copy's ETag is the MD5 of its bytes, as for a copy streamed through.
        let copied = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let (mut src, mut dst) = (src, dst);
            let mut md5 = Md5::new();
            let mut buf = vec![0u8; READ_BUFFER];
            loop {
                let n = src.read(&mut buf).map_err(|e| io_error(&name, e))?;
                if n == 0 {
                    break;
                }
                md5.update(&buf[..n]);
                dst.write_all(&buf[..n]).map_err(|e| io_error(&name, e))?;
            }
            Ok::<_, Error>((dst, hex::encode(md5.finalize())))
        })
        .await
        .map_err(Error::internal)
        .and_then(|r| r);
        let sealed = match copied {
            Ok((dst, etag)) => self.seal(dst, Some((etag, attrs))).await,
            Err(e) => Err(e),
        };
        if let Err(e) = sealed {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        self.publish(&tmp, to, &WriteCondition::None).await
    }

    fn keeps_tags(&self) -> bool {
        true
    }

    /// Tags go in the file's stamp, rewritten in place: the bytes, their mtime (the
    /// object's Last-Modified) and the ETag stay. A file replaced meanwhile keeps its own
    /// stamp (the write after wins), as the change applies to the inode opened.
    async fn put_tags(&self, key: &str, tags: &crate::model::Tags) -> Result<()> {
        let tags = tags.clone();
        self.restamp(key, move |a| a.tags = tags).await
    }

    fn keeps_acls(&self) -> bool {
        true
    }

    /// In the stamp beside the tags, as [`Self::put_tags`] keeps them.
    async fn put_acl(&self, key: &str, acl: Option<&crate::model::ObjectAcl>) -> Result<()> {
        let acl = acl.cloned();
        self.restamp(key, move |a| a.acl = acl).await
    }

    async fn mpu_create(&self, _key: &str, _attrs: &Attrs) -> Result<String> {
        Ok(String::new())
    }

    async fn mpu_put_part(
        &self,
        _key: &str,
        _upload: &str,
        nonce: &str,
        part_idx: usize,
        body: Body,
        _len: Option<u64>,
    ) -> Result<PartRef> {
        let rel = format!("uploads/{nonce}/data/{part_idx:05}");
        let (tmp, _, _, _) = self.write_tmp(body, None).await?;
        let placed = match self
            .place(&tmp, &self.internal(&rel), false, |e| self.io(e))
            .await
        {
            Ok(changed) => self.sync_dirs(changed).await,
            Err(e) => Err(e),
        };
        if let Err(e) = placed {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        Ok(PartRef { content_id: rel })
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
        self.check_writable(key).await?;
        let (tmp, mut out) = self.create_tmp().await?;
        let mut buf = vec![0u8; READ_BUFFER];
        let result: Result<()> = async {
            for part in &parts {
                let mut f = tokio::fs::File::open(self.internal(&part.content_id))
                    .await
                    .map_err(|e| match self.io(e) {
                        Error::NotFound => {
                            Error::InvalidPart(format!("part {} was not uploaded", part.content_id))
                        }
                        other => other,
                    })?;
                loop {
                    let n = f.read(&mut buf).await.map_err(|e| self.io(e))?;
                    if n == 0 {
                        break;
                    }
                    out.write_all(&buf[..n]).await.map_err(|e| self.io(e))?;
                }
            }
            out.flush().await.map_err(|e| self.io(e))
        }
        .await;
        // S3's multipart ETag (the MD5 of the part MD5s), as the router computed it.
        let etag = etag.to_owned();
        let sealed = match result {
            Ok(()) => {
                self.seal(out.into_std().await, Some((etag.clone(), attrs.clone())))
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = sealed {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        self.publish(&tmp, key, &WriteCondition::None).await?;
        self.mpu_abort(key, upload, nonce).await?;
        Ok(PutOutcome { etag: Some(etag) })
    }

    async fn mpu_abort(&self, _key: &str, _upload: &str, nonce: &str) -> Result<()> {
        match tokio::fs::remove_dir_all(self.internal(&format!("uploads/{nonce}/data"))).await {
            Ok(()) => Ok(()),
            Err(e) if is_missing(&e) => Ok(()),
            Err(e) => Err(self.io(e)),
        }
    }

    async fn put_internal(&self, path: &str, data: Bytes) -> Result<()> {
        self.write_atomic(&self.internal(path), &data).await
    }

    async fn get_internal(&self, path: &str) -> Result<Option<Bytes>> {
        match tokio::fs::read(self.internal(path)).await {
            Ok(b) => Ok(Some(Bytes::from(b))),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(self.io(e)),
        }
    }

    async fn delete_internal(&self, path: &str) -> Result<()> {
        let full = self.internal(path);
        match tokio::fs::remove_file(&full).await {
            Ok(()) => {
                self.prune_dirs(&full, &self.root.join(RESERVED_DIR)).await;
                Ok(())
            }
            Err(e) if is_missing(&e) => Ok(()),
            Err(e) => Err(self.io(e)),
        }
    }

    async fn list_internal(&self, prefix: &str) -> Result<Vec<String>> {
        let base = self.root.join(RESERVED_DIR);
        let walk = Walk {
            root: base,
            prefix: prefix.to_owned(),
            offset: None,
            stack: Vec::new(),
            started: false,
            name: self.name.clone(),
            etags: false,
            legacy_meta: false,
        };
        tokio::task::spawn_blocking(move || {
            let mut walk = walk;
            let mut out = Vec::new();
            while let Some(item) = walk.next_blocking() {
                out.push(item?.key);
            }
            Ok(out)
        })
        .await
        .map_err(Error::internal)?
    }

    async fn list_internal_rows(&self, prefix: &str) -> Result<Option<Vec<ObjectSummary>>> {
        let walk = Walk {
            root: self.root.join(RESERVED_DIR),
            prefix: prefix.to_owned(),
            offset: None,
            stack: Vec::new(),
            started: false,
            name: self.name.clone(),
            etags: true,
            legacy_meta: false,
        };
        tokio::task::spawn_blocking(move || {
            let mut walk = walk;
            let mut out = Vec::new();
            while let Some(item) = walk.next_blocking() {
                out.push(item?);
            }
            Ok(Some(out))
        })
        .await
        .map_err(Error::internal)?
    }
}

/// The name prefix of a bucket directory being deleted (bucket names cannot start with
/// `.`, so such a directory is never taken for a bucket).
const RETIRING: &str = ".deleting-";

/// Whether the directory `dir` holds at least one object (a file outside `.switchyard`),
/// or a version of one (a file under `.switchyard/versions/`, delete markers too: S3
/// refuses to delete a bucket while any version is left).
fn holds_objects(dir: &Path) -> std::io::Result<bool> {
    Ok(holds_files(dir.to_owned())? || holds_files(dir.join(RESERVED_DIR).join("versions"))?)
}

fn holds_files(root: PathBuf) -> std::io::Result<bool> {
    let mut walk = Walk {
        root,
        prefix: String::new(),
        offset: None,
        stack: Vec::new(),
        started: false,
        name: String::new(),
        etags: false,
        legacy_meta: false,
    };
    match walk.next_blocking() {
        None => Ok(false),
        Some(Ok(_)) => Ok(true),
        Some(Err(e)) => Err(std::io::Error::other(e.to_string())),
    }
}

/// Deletes the directory of bucket `name` under `root` (a bucket made by CreateBucket),
/// with its incomplete multipart uploads, unless it holds objects. Safe against writes
/// racing it, in this engine or another: the directory is first renamed out of the way in
/// one step, so a write that had not published by then finds its bucket gone (its
/// temporary file went with the directory, and parents are never made above a bucket's
/// root); a write that had is in the renamed directory, which then goes back, and the
/// answer is `BucketNotEmpty`. No acknowledged write is lost.
pub fn retire_bucket_dir(root: &Path, name: &str) -> Result<()> {
    let dir = root.join(name);
    let away = root.join(format!(
        "{RETIRING}{name}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    match std::fs::rename(&dir, &away) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NoSuchBucket),
        Err(e) => return Err(io_error(name, e)),
    }
    fail::fail_point!("fs::bucket_retired", |_| std::process::abort());
    let full = holds_objects(&away).map_err(|e| io_error(name, e));
    if full.as_ref().is_ok_and(|full| !full) {
        std::fs::remove_dir_all(&away).map_err(|e| io_error(name, e))?;
        return Ok(());
    }
    restore(&away, &dir)?;
    full.and(Err(Error::BucketNotEmpty))
}

/// Puts a bucket directory renamed away by [`retire_bucket_dir`] back. `rename` replaces
/// an empty directory, so a bucket made again meanwhile (by CreateBucket) and still empty
/// gives way; one that took objects already cannot, and the directory stays aside, with
/// an error naming it.
fn restore(away: &Path, dir: &Path) -> Result<()> {
    std::fs::rename(away, dir).map_err(|e| {
        tracing::error!(bucket_dir = %dir.display(), kept_at = %away.display(), error = %e, "a bucket directory could not be put back after a refused DeleteBucket; its objects are kept aside");
        Error::internal(format!(
            "the bucket's directory could not be put back; its objects are kept at {}",
            away.display()
        ))
    })
}

/// The name prefix of a bucket directory being made by CreateBucket, before it is
/// renamed to the bucket's name (never taken for a bucket, as [`RETIRING`]).
const CREATING: &str = ".creating-";

/// Makes the directory of a bucket made by CreateBucket, under `root`, with `record`
/// (the bucket's creator) at `record_path` in its reserved directory. The directory is
/// prepared aside and renamed into place in one step that replaces nothing, so that of
/// two engines making one name at once exactly one does, and no one sees the bucket
/// without its record. False when a bucket of that name exists already.
pub fn create_bucket_dir(
    root: &Path,
    name: &str,
    record_path: &str,
    record: &[u8],
) -> Result<bool> {
    let fail = |e: std::io::Error| io_error(name, e);
    std::fs::create_dir_all(root).map_err(fail)?;
    let staging = root.join(format!(
        "{CREATING}{name}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let prepared = (|| {
        let reserved = staging.join(RESERVED_DIR);
        std::fs::create_dir_all(&reserved)?;
        let mut f = std::fs::File::create(reserved.join(record_path))?;
        std::io::Write::write_all(&mut f, record)?;
        f.sync_all()
    })();
    if let Err(e) = prepared {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(fail(e));
    }
    let dir = root.join(name);
    let renamed = rustix::fs::renameat_with(
        rustix::fs::CWD,
        &staging,
        rustix::fs::CWD,
        &dir,
        rustix::fs::RenameFlags::NOREPLACE,
    );
    let made = match renamed {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::EXIST | rustix::io::Errno::NOTEMPTY) => Ok(false),
        // A filesystem without renameat2's no-replace: `mkdir` is just as exclusive,
        // and the record follows it (a CreateBucket of the same name meanwhile may find
        // no record, and take the bucket for every user's).
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS | rustix::io::Errno::NOTSUP) => {
            match std::fs::create_dir(&dir) {
                Ok(()) => std::fs::rename(staging.join(RESERVED_DIR), dir.join(RESERVED_DIR))
                    .map(|()| true)
                    .map_err(fail),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(fail(e)),
            }
        }
        Err(e) => Err(fail(e.into())),
    };
    if !matches!(made, Ok(true)) || staging.exists() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    if matches!(made, Ok(true)) {
        // The new name is durable once its parent is.
        if let Ok(parent) = std::fs::File::open(root) {
            let _ = parent.sync_all();
        }
    }
    made
}

/// How old a directory left by a CreateBucket that never finished (a crash between its
/// preparation and its rename) must be before an engine starting removes it: any
/// CreateBucket still running is much younger.
const STALE_CREATION: Duration = Duration::from_secs(600);

/// Finishes what a DeleteBucket stopped by a crash left under `root`: a bucket directory
/// renamed away that still holds objects goes back (the delete would have been refused);
/// an empty one is removed. A CreateBucket's directory prepared and never renamed into
/// place is removed.
pub fn recover_retired(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with(CREATING) {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_CREATION);
            if stale {
                let _ = std::fs::remove_dir_all(entry.path());
            }
            continue;
        }
        let Some(rest) = name.strip_prefix(RETIRING) else {
            continue;
        };
        // `<bucket>-<32 hex digits>`
        let Some(bucket) = rest.len().checked_sub(33).map(|n| &rest[..n]) else {
            continue;
        };
        let away = entry.path();
        match holds_objects(&away) {
            Ok(false) => {
                let _ = std::fs::remove_dir_all(&away);
            }
            Ok(true) => {
                let _ = restore(&away, &root.join(bucket));
            }
            Err(e) => {
                tracing::warn!(dir = %away.display(), error = %e, "could not look into a bucket directory left by an interrupted DeleteBucket")
            }
        }
    }
}

// Reserved keys are filtered by the walker's skip of the top-level reserved directory.
const _: () = assert!(RESERVED_PREFIX.len() == RESERVED_DIR.len() + 1);

#[cfg(test)]
mod tests {
    use super::*;

    fn body(data: &'static [u8]) -> Body {
        futures::stream::iter(vec![Ok(Bytes::from_static(data))]).boxed()
    }

    #[tokio::test]
    async fn sorted_listing_and_sidecars() {
        let dir = std::env::temp_dir().join(format!("sy-fs-{}", uuid::Uuid::new_v4()));
        let s = FsStore::new(dir.clone(), None, "t").unwrap();
        let attrs = Attrs {
            content_type: Some("text/plain".into()),
            ..Default::default()
        };
        for k in ["a/b", "a-c", "a/a/z", "b", "a0"] {
            s.put(
                k,
                body(b"x"),
                Declared::default(),
                &attrs,
                &WriteCondition::None,
                1 << 23,
            )
            .await
            .unwrap();
        }
        let keys: Vec<String> = s.list("", None).map(|r| r.unwrap().key).collect().await;
        assert_eq!(keys, ["a-c", "a/a/z", "a/b", "a0", "b"]);
        let keys: Vec<String> = s
            .list("a/", Some("a/a/z"))
            .map(|r| r.unwrap().key)
            .collect()
            .await;
        assert_eq!(keys, ["a/b"]);
        let (got, _) = s
            .get("a/b", None, &ReadConditions::default(), true)
            .await
            .unwrap();
        assert_eq!(got.info.attrs, attrs);
        assert_eq!(
            got.info.etag.as_deref(),
            Some("9dd4e461268c8034f5c8564e155c67a6")
        );
        // A file replaced behind our back is served with default attributes.
        std::fs::write(dir.join("a/b"), b"changed!").unwrap();
        let (got, _) = s
            .get("a/b", None, &ReadConditions::default(), true)
            .await
            .unwrap();
        assert_eq!(got.info.size, 8);
        assert_eq!(got.info.attrs, Attrs::default());
        let e = s
            .put(
                "b",
                body(b"y"),
                Declared::default(),
                &attrs,
                &WriteCondition::IfAbsent,
                1 << 23,
            )
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Precondition(_)));
        s.delete("a/a/z").await.unwrap();
        assert!(!dir.join("a/a").exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[cfg(test)]
mod consistency {
    //! Races and names that broke the fs backend's "one object, one moment" guarantee.
    use std::sync::Arc;

    use super::*;

    fn temp_root(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sy-fs-{name}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn bytes_body(data: Vec<u8>) -> Body {
        futures::stream::iter(vec![Ok(Bytes::from(data))]).boxed()
    }

    fn attrs_of(tag: &str) -> Attrs {
        Attrs {
            content_type: Some(format!("application/x-{tag}")),
            metadata: [("v".to_owned(), tag.to_owned())].into(),
            ..Default::default()
        }
    }

    async fn put(s: &FsStore, key: &str, data: Vec<u8>, attrs: &Attrs) -> Result<PutOutcome> {
        s.put(
            key,
            bytes_body(data),
            Declared::default(),
            attrs,
            &WriteCondition::None,
            1 << 23,
        )
        .await
    }

    async fn read(s: &FsStore, key: &str) -> Result<(ObjectInfo, Vec<u8>)> {
        let (got, stream) = s.get(key, None, &ReadConditions::default(), false).await?;
        let chunks: Vec<Bytes> = stream.unwrap().map(|c| c.unwrap()).collect().await;
        Ok((got.info, chunks.concat()))
    }

    /// Bytes, attributes and ETag of what a reader got all come from one write.
    fn assert_whole(info: &ObjectInfo, data: &[u8]) {
        let tag = String::from_utf8_lossy(&data[..data.len().min(8)]).into_owned();
        assert_eq!(
            info.attrs.metadata.get("v").map(String::as_str),
            Some(tag.as_str()),
            "attributes of another write"
        );
        assert_eq!(
            info.etag.as_deref(),
            Some(hex::encode(Md5::digest(data)).as_str()),
            "ETag of another write"
        );
        assert_eq!(info.size, data.len() as u64);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writers_of_one_key_never_mix() {
        let root = temp_root("mix");
        let s = Arc::new(FsStore::new(root.clone(), None, "t").unwrap());
        for round in 0..100 {
            let writers: Vec<_> = ["aaaaaaaa", "bbbbbbbb"]
                .into_iter()
                .map(|tag| {
                    let s = s.clone();
                    tokio::spawn(async move {
                        // Different sizes, so a mix-up of sizes shows too.
                        let len = if tag.starts_with('a') { 1000 } else { 3000 };
                        let data = format!("{tag}{round:08}").repeat(len).into_bytes();
                        put(&s, "k", data, &attrs_of(tag)).await.unwrap();
                    })
                })
                .collect();
            let reader = {
                let s = s.clone();
                tokio::spawn(async move {
                    for _ in 0..5 {
                        if let Ok((info, data)) = read(&s, "k").await {
                            assert_whole(&info, &data);
                        }
                    }
                })
            };
            for w in writers {
                w.await.unwrap();
            }
            reader.await.unwrap();
            let (info, data) = read(&s, "k").await.unwrap();
            assert_whole(&info, &data);
        }
        std::fs::remove_dir_all(root).unwrap();
    }

    /// A listing racing deletes and rewrites of a key shows it with one of its versions'
    /// ETags or not at all: a file removed or replaced between the listing's `stat` and
    /// its read of the stamp was listed with a made-up ETag, as a foreign file (seen by
    /// the torture test, fs-fs seed 1903594247).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn listings_racing_deletes_show_real_etags() {
        let root = temp_root("list-race");
        let s = Arc::new(FsStore::new(root.clone(), None, "t").unwrap());
        let etags: std::collections::HashSet<String> = ["aaaaaaaa", "bbbbbbbb"]
            .iter()
            .map(|t| hex::encode(Md5::digest(t.repeat(100))))
            .collect();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let churn = {
            let (s, stop) = (s.clone(), stop.clone());
            tokio::spawn(async move {
                let mut i = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let tag = if i.is_multiple_of(2) {
                        "aaaaaaaa"
                    } else {
                        "bbbbbbbb"
                    };
                    put(&s, "d/k", tag.repeat(100).into_bytes(), &attrs_of(tag))
                        .await
                        .unwrap();
                    if i.is_multiple_of(3) {
                        s.delete("d/k").await.unwrap();
                    }
                    i += 1;
                }
            })
        };
        let mut seen = 0;
        for _ in 0..3000 {
            let listed: Vec<ObjectSummary> = futures::TryStreamExt::try_collect(s.list("d/", None))
                .await
                .unwrap();
            for o in listed {
                let etag = o.etag.as_deref().map(crate::backends::unquote_etag);
                assert!(
                    etag.as_deref().is_some_and(|e| etags.contains(e)),
                    "{o:?} is no version's"
                );
                seen += 1;
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        churn.await.unwrap();
        assert!(seen > 0);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[tokio::test]
    async fn overlapping_and_long_names_are_refused_with_nothing_written() {
        let root = temp_root("names");
        let s = FsStore::new(root.clone(), None, "t").unwrap();
        let a = attrs_of("xxxxxxxx");
        put(&s, "a", b"xxxxxxxx".to_vec(), &a).await.unwrap();
        let e = put(&s, "a/b", b"xxxxxxxx".to_vec(), &a).await.unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
        put(&s, "x/y", b"xxxxxxxx".to_vec(), &a).await.unwrap();
        let e = put(&s, "x", b"xxxxxxxx".to_vec(), &a).await.unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
        let e = put(&s, &format!("l/{}", "n".repeat(256)), b"x".to_vec(), &a)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::KeyTooLong(_)), "{e:?}");
        // Names the backend can hold are stored whole, whatever the gateway's own files
        // are called.
        for key in [
            format!("m/{}", "n".repeat(255)),
            format!("m/{}", "n".repeat(251)),
            "q".to_owned(),
            "q.json/x".to_owned(),
        ] {
            put(&s, &key, b"xxxxxxxx".to_vec(), &a).await.unwrap();
            let (info, data) = read(&s, &key).await.unwrap();
            assert_whole(&info, &data);
        }
        let keys: Vec<String> = s.list("", None).map(|r| r.unwrap().key).collect().await;
        assert_eq!(
            keys,
            [
                "a".to_owned(),
                format!("m/{}", "n".repeat(251)),
                format!("m/{}", "n".repeat(255)),
                "q".to_owned(),
                "q.json/x".to_owned(),
                "x/y".to_owned()
            ]
        );
        // A name that cannot exist here is simply not here (the key may be in another
        // member): not a failure of the backend.
        let e = read(&s, &format!("l/{}", "n".repeat(300)))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::NotFound), "{e:?}");
        s.delete(&format!("l/{}", "n".repeat(300))).await.unwrap();
        std::fs::remove_dir_all(root).unwrap();
    }

    /// A folder marker `d/` is the file `d/.switchyard-folder`: listed before the keys
    /// under it, kept when they go, and gone without them.
    #[tokio::test]
    async fn folder_markers_are_files_in_their_directory() {
        let root = temp_root("markers");
        let s = FsStore::new(root.clone(), None, "t").unwrap();
        let a = attrs_of("xxxxxxxx");
        put(&s, "d/", b"xxxxxxxx".to_vec(), &a).await.unwrap();
        assert!(root.join("d").join(MARKER_FILE).is_file());
        let (info, data) = read(&s, "d/").await.unwrap();
        assert_whole(&info, &data);
        for k in ["d/x", "d-e", "d/sub/y", "d0"] {
            put(&s, k, b"xxxxxxxx".to_vec(), &a).await.unwrap();
        }
        let keys = |p: &'static str, o: Option<&'static str>| {
            s.list(p, o)
                .map(|r| r.unwrap().key)
                .collect::<Vec<String>>()
        };
        assert_eq!(keys("", None).await, ["d-e", "d/", "d/sub/y", "d/x", "d0"]);
        assert_eq!(keys("d/", None).await, ["d/", "d/sub/y", "d/x"]);
        assert_eq!(keys("d/", Some("d/")).await, ["d/sub/y", "d/x"]);
        assert_eq!(keys("d", Some("d-e")).await, ["d/", "d/sub/y", "d/x", "d0"]);
        let listed: Vec<ObjectSummary> = futures::TryStreamExt::try_collect(s.list("d/", None))
            .await
            .unwrap();
        assert_eq!(listed[0].etag, info.etag);
        // The last keys under it go: the directory stays, with its marker.
        s.delete("d/x").await.unwrap();
        s.delete("d/sub/y").await.unwrap();
        assert!(!root.join("d/sub").exists());
        assert_eq!(keys("d/", None).await, ["d/"]);
        // The marker goes: the keys under it stay; then the directory goes with the last.
        put(&s, "d/z", b"xxxxxxxx".to_vec(), &a).await.unwrap();
        s.delete("d/").await.unwrap();
        assert!(matches!(read(&s, "d/").await, Err(Error::NotFound)));
        assert_eq!(keys("d/", None).await, ["d/z"]);
        s.delete("d/z").await.unwrap();
        assert!(!root.join("d").exists());
        // The marker's file name is not a key; a marker cannot sit beside an object of
        // its name.
        let e = put(&s, &format!("e/{MARKER_FILE}"), b"x".to_vec(), &a)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
        put(&s, "f/", b"".to_vec(), &a).await.unwrap();
        let marker_file = format!("f/{MARKER_FILE}");
        assert!(matches!(read(&s, &marker_file).await, Err(Error::NotFound)));
        s.delete(&marker_file).await.unwrap();
        assert!(
            read(&s, "f/").await.is_ok(),
            "deleting the file's name deleted the marker"
        );
        let e = put(&s, "f", b"x".to_vec(), &a).await.unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
        let e = put(&s, "d0/", b"x".to_vec(), &a).await.unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
        std::fs::remove_dir_all(root).unwrap();
    }

    /// A multipart upload's ETag is S3's (given by the router), and a copy of such an
    /// object keeps it when declared.
    #[tokio::test]
    async fn multipart_etags_are_kept() {
        let root = temp_root("mpu-etag");
        let s = FsStore::new(root.clone(), None, "t").unwrap();
        let part = s
            .mpu_put_part("k", "", "n1", 0, bytes_body(b"abc".to_vec()), None)
            .await
            .unwrap();
        let etag = "96e024ba2074fe77e8e965ba43a704be-1";
        let out = s
            .mpu_complete("k", "", "n1", vec![part], &Attrs::default(), etag)
            .await
            .unwrap();
        assert_eq!(out.etag.as_deref(), Some(etag));
        let (info, _) = read(&s, "k").await.unwrap();
        assert_eq!(info.etag.as_deref(), Some(etag));
        assert_eq!(info.content_md5, None);
        let declared = Declared {
            etag: Some(format!("\"{etag}\"")),
            ..Declared::default()
        };
        let out = s
            .put(
                "copy",
                bytes_body(b"abc".to_vec()),
                declared,
                &Attrs::default(),
                &WriteCondition::None,
                1 << 23,
            )
            .await
            .unwrap();
        assert_eq!(out.etag.as_deref(), Some(etag));
        // Anything but a multipart ETag is not kept: the MD5 of the bytes is the ETag.
        let declared = Declared {
            etag: Some("0123456789abcdef0123456789abcdef".into()),
            ..Declared::default()
        };
        let out = s
            .put(
                "other",
                bytes_body(b"abc".to_vec()),
                declared,
                &Attrs::default(),
                &WriteCondition::None,
                1 << 23,
            )
            .await
            .unwrap();
        assert_eq!(
            out.etag.as_deref(),
            Some("900150983cd24fb0d6963f7d28e17f72")
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn deletes_in_a_prefix_do_not_fail_puts_into_it() {
        let root = temp_root("prune");
        let s = Arc::new(FsStore::new(root.clone(), None, "t").unwrap());
        let deleter = {
            let s = s.clone();
            tokio::spawn(async move {
                for i in 0..6000 {
                    s.delete(&format!("p/q/k{}/never", i % 300)).await.unwrap();
                    if i % 50 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        };
        let puts = futures::stream::iter(0..300)
            .map(|i| {
                let s = s.clone();
                async move {
                    let key = format!("p/q/k{i}/o");
                    let r = put(&s, &key, b"xxxxxxxx".to_vec(), &attrs_of("xxxxxxxx")).await;
                    (key, r)
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        deleter.await.unwrap();
        for (key, r) in puts {
            r.unwrap_or_else(|e| panic!("PUT {key}: {e:?}"));
            let (info, data) = read(&s, &key).await.unwrap();
            assert_whole(&info, &data);
        }
        std::fs::remove_dir_all(root).unwrap();
    }

    #[tokio::test]
    async fn sidecars_of_earlier_versions_are_still_read() {
        let root = temp_root("legacy");
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::fs::write(root.join("d/old"), b"legacy bytes").unwrap();
        let meta = std::fs::metadata(root.join("d/old")).unwrap();
        let sidecar = sidecar_path(&root, "d/old");
        std::fs::create_dir_all(sidecar.parent().unwrap()).unwrap();
        let stamp = Stamp {
            size: meta.len(),
            mtime_ns: mtime_ns(&meta),
            etag: hex::encode(Md5::digest(b"legacy bytes")),
            attrs: attrs_of("legacy"),
        };
        std::fs::write(&sidecar, serde_json::to_vec(&stamp).unwrap()).unwrap();
        let s = FsStore::new(root.clone(), None, "t").unwrap();
        let (info, _) = read(&s, "d/old").await.unwrap();
        assert_eq!(info.attrs, attrs_of("legacy"));
        assert!(!info.foreign);
        // Rewritten through the gateway: the stamp rules, and the sidecar is gone.
        put(&s, "d/old", b"aaaaaaaa".to_vec(), &attrs_of("aaaaaaaa"))
            .await
            .unwrap();
        let (info, data) = read(&s, "d/old").await.unwrap();
        assert_whole(&info, &data);
        assert!(!sidecar.exists());
        std::fs::remove_dir_all(root).unwrap();
    }

    #[tokio::test]
    async fn temporary_files_do_not_outlive_their_writer() {
        let root = temp_root("tmp");
        let tmp_files = |root: &Path| -> Vec<PathBuf> {
            fn walk(d: &Path, out: &mut Vec<PathBuf>) {
                for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        walk(&p, out);
                    } else if p.extension().is_none_or(|x| x != "lock") {
                        out.push(p);
                    }
                }
            }
            let mut out = Vec::new();
            walk(&root.join(RESERVED_DIR).join("tmp"), &mut out);
            out
        };
        {
            let s = FsStore::new(root.clone(), None, "t").unwrap();
            // A body that fails half-way leaves nothing.
            let failing: Body = futures::stream::iter(vec![
                Ok(Bytes::from_static(b"half")),
                Err(Error::ClientBody("gone".into())),
            ])
            .boxed();
            s.put(
                "k",
                failing,
                Declared::default(),
                &Attrs::default(),
                &WriteCondition::None,
                1 << 23,
            )
            .await
            .unwrap_err();
            assert_eq!(tmp_files(&root), Vec::<PathBuf>::new());
        }
        // What an engine killed mid-write leaves behind (a partial file of its own) is
        // removed by the next engine to open the directory, but another live engine's
        // files are not.
        let live = FsStore::new(root.clone(), None, "live").unwrap();
        let (live_tmp, _) = live.create_tmp().await.unwrap();
        let dead = root.join(RESERVED_DIR).join("tmp").join("dead-engine");
        std::fs::create_dir_all(&dead).unwrap();
        std::fs::write(dead.join("partial"), vec![0u8; 4096]).unwrap();
        std::fs::write(
            root.join(RESERVED_DIR).join("tmp").join("dead-engine.lock"),
            b"",
        )
        .unwrap();
        let _next = FsStore::new(root.clone(), None, "next").unwrap();
        assert!(!dead.exists(), "a dead engine's partial write survived");
        assert!(live_tmp.exists(), "a live engine's file was removed");
        std::fs::remove_dir_all(root).unwrap();
    }
}
