//! The `fs` backend: a directory where each object is a plain file holding exactly the
//! object's bytes, at the path named by its key.
//!
//! Attributes cannot live in the file without changing its bytes, so they are kept in a
//! JSON sidecar at `.switchyard/meta/<key>.json` beside the data (see docs/configuration.md).
//! The sidecar records the size and modification time of the data file it describes; a
//! sidecar that does not match (the file was replaced by another tool) is ignored, so a
//! file written directly into the directory is served at once, with default attributes.
//!
//! Writes go to a temporary file first and are renamed into place, so readers never see a
//! partial object.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use md5::{Digest, Md5};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::objstore::{check_read_conditions, check_write_condition};
use super::{PartRef, Store};
use crate::config::ConfigError;
use crate::model::{
    Attrs, Body, ByteRange, ByteStream, Declared, Error, GetOutcome, ObjectInfo, ObjectSummary,
    PutOutcome, RESERVED_PREFIX, ReadConditions, Result, WriteCondition,
};

const RESERVED_DIR: &str = ".switchyard";
const READ_BUFFER: usize = 256 * 1024;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Sidecar {
    size: u64,
    mtime_ns: i128,
    etag: String,
    #[serde(default)]
    attrs: Attrs,
}

pub struct FsStore {
    name: String,
    root: PathBuf,
    /// Serialises conditional writes within this process (see docs on conditional PUT).
    cond_lock: tokio::sync::Mutex<()>,
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

impl FsStore {
    pub fn new(root: PathBuf, prefix: Option<String>, name: &str) -> Result<Self, ConfigError> {
        let root = match prefix.filter(|p| !p.is_empty()) {
            Some(p) => root.join(p),
            None => root,
        };
        std::fs::create_dir_all(root.join(RESERVED_DIR).join("tmp")).map_err(|e| {
            ConfigError::Invalid {
                field: format!("backends.{name}.root"),
                message: format!("cannot create {}: {e}", root.display()),
            }
        })?;
        Ok(Self {
            name: name.to_owned(),
            root,
            cond_lock: tokio::sync::Mutex::new(()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn data_path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn sidecar_path(&self, key: &str) -> PathBuf {
        sidecar_path(&self.root, key)
    }

    fn internal(&self, rel: &str) -> PathBuf {
        self.root.join(RESERVED_DIR).join(rel)
    }

    fn tmp_path(&self) -> PathBuf {
        self.root
            .join(RESERVED_DIR)
            .join("tmp")
            .join(uuid::Uuid::new_v4().simple().to_string())
    }

    fn io(&self, e: std::io::Error) -> Error {
        io_error(&self.name, e)
    }

    /// Streams `body` into a new temporary file, returning its path, size and MD5.
    async fn write_tmp(&self, mut body: Body) -> Result<(PathBuf, u64, String)> {
        let tmp = self.tmp_path();
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| self.io(e))?;
        let mut md5 = Md5::new();
        let mut size = 0u64;
        let result: Result<()> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                md5.update(&chunk);
                size += chunk.len() as u64;
                file.write_all(&chunk).await.map_err(|e| self.io(e))?;
            }
            file.flush().await.map_err(|e| self.io(e))?;
            file.sync_data().await.map_err(|e| self.io(e))?;
            Ok(())
        }
        .await;
        drop(file);
        match result {
            Ok(()) => Ok((tmp, size, hex::encode(md5.finalize()))),
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(e)
            }
        }
    }

    /// Moves a finished temporary file to `key` and records its attributes.
    async fn commit(
        &self,
        tmp: &Path,
        key: &str,
        etag: String,
        attrs: &Attrs,
        cond: &WriteCondition,
    ) -> Result<PutOutcome> {
        let dest = self.data_path(key);
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| self.key_conflict(key, e))?;
        }
        let _guard = if *cond == WriteCondition::None {
            None
        } else {
            Some(self.cond_lock.lock().await)
        };
        match cond {
            WriteCondition::None => {}
            WriteCondition::IfAbsent => {
                // hard_link fails if the destination exists: an atomic create.
                match tokio::fs::hard_link(tmp, &dest).await {
                    Ok(()) => {
                        let _ = tokio::fs::remove_file(tmp).await;
                        return self.finish_commit(key, &dest, etag, attrs).await;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let _ = tokio::fs::remove_file(tmp).await;
                        return Err(Error::Precondition("the object already exists".into()));
                    }
                    Err(e) => {
                        let _ = tokio::fs::remove_file(tmp).await;
                        return Err(self.key_conflict(key, e));
                    }
                }
            }
            WriteCondition::IfMatch(_) => {
                let current = self.current_etag(key).await?;
                if let Err(e) =
                    check_write_condition(cond, current.as_ref().map(|e| Some(e.as_str())))
                {
                    let _ = tokio::fs::remove_file(tmp).await;
                    return Err(e);
                }
            }
        }
        if let Err(e) = tokio::fs::rename(tmp, &dest).await {
            let _ = tokio::fs::remove_file(tmp).await;
            return Err(self.key_conflict(key, e));
        }
        self.finish_commit(key, &dest, etag, attrs).await
    }

    async fn finish_commit(
        &self,
        key: &str,
        dest: &Path,
        etag: String,
        attrs: &Attrs,
    ) -> Result<PutOutcome> {
        let meta = tokio::fs::metadata(dest).await.map_err(|e| self.io(e))?;
        let sidecar = Sidecar {
            size: meta.len(),
            mtime_ns: mtime_ns(&meta),
            etag: etag.clone(),
            attrs: attrs.clone(),
        };
        let json = serde_json::to_vec(&sidecar).map_err(Error::internal)?;
        self.write_atomic(&self.sidecar_path(key), &json).await?;
        Ok(PutOutcome { etag: Some(etag) })
    }

    async fn write_atomic(&self, path: &Path, data: &[u8]) -> Result<()> {
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| self.io(e))?;
        }
        let tmp = self.tmp_path();
        tokio::fs::write(&tmp, data).await.map_err(|e| self.io(e))?;
        tokio::fs::rename(&tmp, path).await.map_err(|e| self.io(e))
    }

    fn key_conflict(&self, key: &str, e: std::io::Error) -> Error {
        match e.raw_os_error() {
            // ENOTDIR / EISDIR: a key is both an object and a "directory" of other keys.
            Some(20 | 21) => Error::InvalidArgument(format!(
                "key {key:?} conflicts with an existing key in fs backend {}: a key cannot be both an object and a prefix of other keys there",
                self.name
            )),
            // ENAMETOOLONG
            Some(36) => Error::KeyTooLong(format!(
                "a segment of {key:?} is longer than the filesystem allows (255 bytes)"
            )),
            _ => self.io(e),
        }
    }

    async fn current_etag(&self, key: &str) -> Result<Option<String>> {
        match tokio::fs::metadata(self.data_path(key)).await {
            Ok(meta) if meta.is_file() => Ok(Some(
                self.describe(key, &meta).await.etag.unwrap_or_default(),
            )),
            Ok(_) => Ok(None),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(self.key_conflict(key, e)),
        }
    }

    /// The object's info from the data file's metadata and, when it still matches, its
    /// sidecar.
    async fn describe(&self, key: &str, meta: &std::fs::Metadata) -> ObjectInfo {
        info_from(tokio::fs::read(self.sidecar_path(key)).await.ok(), meta)
    }

    /// Removes now-empty directories between `path` and the root, so deleted prefixes do
    /// not linger as directories.
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
}

fn is_missing(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(20)
}

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
}

/// Reads one directory, sorted so that the walk yields keys in byte order: a directory
/// sorts as its name followed by `/`, because every key inside it does.
fn read_sorted(dir: &Path, skip_reserved: bool) -> std::io::Result<Vec<(String, bool)>> {
    let mut entries = Vec::new();
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
        entries.push((name, is_dir));
    }
    entries.sort_by(|(a, ad), (b, bd)| {
        let a = if *ad { format!("{a}/") } else { a.clone() };
        let b = if *bd { format!("{b}/") } else { b.clone() };
        a.as_bytes().cmp(b.as_bytes())
    });
    Ok(entries)
}

struct Walk {
    root: PathBuf,
    prefix: String,
    offset: Option<String>,
    stack: Vec<Level>,
    started: bool,
    name: String,
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

    fn next_blocking(&mut self) -> Option<Result<ObjectSummary>> {
        if !self.started {
            self.started = true;
            match read_sorted(&self.root, true) {
                Ok(entries) => self.stack.push(Level {
                    dir: self.root.clone(),
                    key_prefix: String::new(),
                    entries: entries.into_iter(),
                }),
                Err(e) if is_missing(&e) => return None,
                Err(e) => return Some(Err(io_error(&self.name, e))),
            }
        }
        loop {
            let level = self.stack.last_mut()?;
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
                    Ok(entries) => self.stack.push(Level {
                        dir: path,
                        key_prefix: dir_key,
                        entries: entries.into_iter(),
                    }),
                    Err(e) if is_missing(&e) => continue,
                    Err(e) => return Some(Err(io_error(&self.name, e))),
                }
                continue;
            }
            if !key.starts_with(&self.prefix)
                || self.offset.as_deref().is_some_and(|o| key.as_str() <= o)
            {
                continue;
            }
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(e) if is_missing(&e) => continue,
                Err(e) => return Some(Err(io_error(&self.name, e))),
            };
            // The listing ETag is the cheap one; HEAD reads the sidecar for the real one.
            return Some(Ok(ObjectSummary {
                etag: read_sidecar_etag(&self.root, &key, &meta),
                key,
                size: meta.len(),
                last_modified: to_datetime(&meta),
            }));
        }
    }
}

/// An object's info from its data file's metadata and the bytes of its sidecar, which
/// count only while they still describe that file (same size and modification time).
fn info_from(sidecar: Option<Vec<u8>>, meta: &std::fs::Metadata) -> ObjectInfo {
    let mtime = mtime_ns(meta);
    match sidecar.and_then(|b| serde_json::from_slice::<Sidecar>(&b).ok()) {
        Some(s) if s.size == meta.len() && s.mtime_ns == mtime => ObjectInfo {
            size: meta.len(),
            content_md5: super::etag_md5(&s.etag),
            etag: Some(s.etag),
            last_modified: to_datetime(meta),
            attrs: s.attrs,
        },
        _ => ObjectInfo {
            size: meta.len(),
            etag: Some(format!("{:x}-{:x}", mtime, meta.len())),
            last_modified: to_datetime(meta),
            attrs: Attrs::default(),
            content_md5: None,
        },
    }
}

fn sidecar_path(root: &Path, key: &str) -> PathBuf {
    root.join(RESERVED_DIR)
        .join("meta")
        .join(format!("{key}.json"))
}

fn read_sidecar_etag(root: &Path, key: &str, meta: &std::fs::Metadata) -> Option<String> {
    info_from(std::fs::read(sidecar_path(root, key)).ok(), meta).etag
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
        if *cond != WriteCondition::None {
            // Fail before reading the body when the answer is already known.
            let current = self.current_etag(key).await?;
            check_write_condition(cond, current.as_ref().map(|e| Some(e.as_str())))?;
        }
        let (tmp, _size, etag) = self.write_tmp(body).await?;
        // The ETag is the MD5 already computed: no second hash.
        if let Some(want) = declared.md5
            && etag != hex::encode(want)
        {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(Error::BadDigest);
        }
        self.commit(&tmp, key, etag, attrs, cond).await
    }

    async fn get(
        &self,
        key: &str,
        range: Option<ByteRange>,
        cond: &ReadConditions,
        head: bool,
    ) -> Result<(GetOutcome, Option<ByteStream>)> {
        let path = self.data_path(key);
        let mut file = tokio::fs::File::open(&path).await.map_err(|e| self.io(e))?;
        let meta = file.metadata().await.map_err(|e| self.io(e))?;
        if !meta.is_file() {
            return Err(Error::NotFound);
        }
        let info = self.describe(key, &meta).await;
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
        let path = self.data_path(key);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if is_missing(&e) => {}
            // A "directory" key: nothing to delete, as S3 would answer for a missing key.
            Err(e) if e.raw_os_error() == Some(21) => return Ok(()),
            Err(e) => return Err(self.io(e)),
        }
        let sidecar = self.sidecar_path(key);
        let _ = tokio::fs::remove_file(&sidecar).await;
        self.prune_dirs(&path, &self.root).await;
        self.prune_dirs(&sidecar, &self.root.join(RESERVED_DIR).join("meta"))
            .await;
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
        let src = self.data_path(from);
        let meta = tokio::fs::metadata(&src).await.map_err(|e| self.io(e))?;
        let info = self.describe(from, &meta).await;
        let tmp = self.tmp_path();
        tokio::fs::copy(&src, &tmp).await.map_err(|e| self.io(e))?;
        let etag = info.etag.unwrap_or_default();
        self.commit(&tmp, to, etag, &info.attrs, &WriteCondition::None)
            .await
            .map(|_| ())
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
        let (tmp, _, _) = self.write_tmp(body).await?;
        let dest = self.internal(&rel);
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| self.io(e))?;
        }
        tokio::fs::rename(&tmp, &dest)
            .await
            .map_err(|e| self.io(e))?;
        Ok(PartRef { content_id: rel })
    }

    async fn mpu_complete(
        &self,
        key: &str,
        upload: &str,
        nonce: &str,
        parts: Vec<PartRef>,
        attrs: &Attrs,
    ) -> Result<PutOutcome> {
        let tmp = self.tmp_path();
        let mut out = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| self.io(e))?;
        let mut md5 = Md5::new();
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
                    md5.update(&buf[..n]);
                    out.write_all(&buf[..n]).await.map_err(|e| self.io(e))?;
                }
            }
            out.flush().await.map_err(|e| self.io(e))?;
            out.sync_data().await.map_err(|e| self.io(e))?;
            Ok(())
        }
        .await;
        drop(out);
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        let etag = format!("{}-{}", hex::encode(md5.finalize()), parts.len());
        let outcome = self
            .commit(&tmp, key, etag, attrs, &WriteCondition::None)
            .await?;
        self.mpu_abort(key, upload, nonce).await?;
        Ok(outcome)
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
