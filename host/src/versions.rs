//! Object versioning kept by the gateway, for members that keep no versions of their own
//! (`fs`, `memory`), with no index: the files are the whole truth.
//!
//! **Layout.** Every version of key `K` is an object of its own at
//! `.switchyard/versions/K~v/<sort>-<kind>` in the member that holds it, with the
//! attributes of the write. `<sort>` is 16 hex digits of `u64::MAX - nanoseconds since
//! 1970` and 8 random ones, so names sort newest first and two writers never pick the
//! same one; `<kind>` is `v` (a version), `d` (a delete marker), `n` (the `null` version,
//! written while versioning is suspended or kept from before it was enabled) or `m` (a
//! `null` delete marker). `~v` ends the key's directory so that the versions of `a` and
//! of `a/b` never share one (`a~v/` and `a/b~v/`).
//!
//! **The current version stays at the key**, as a copy of the newest version file (the
//! name of which it carries as [`VERSION_META`]), or absent when the newest is a delete
//! marker: reads without a version id are today's reads, and a directory taken away from
//! the gateway holds the latest data at its keys. A write first writes its version file,
//! then publishes: copy the newest file to the key (an atomic replace in every store),
//! and look again; while a newer version appeared meanwhile, publish again. The last
//! publisher therefore saw its copy still newest after making it, so the key converges
//! to the newest version whatever the interleaving of writers on any number of engines,
//! and no version is lost (each lives in a file no other writer names).
//!
//! **Objects from before versioning** (or written into the directory by another tool) have
//! no version file: such a key is the `null` version. The first versioned write to it
//! copies it to a `n` file first (checked afterwards: a copy that caught another writer's
//! version, which carries [`VERSION_META`], is removed again).
//!
//! **Version ids** given to clients are `<member>.<sort>` (the member holding the file, as
//! upload ids name theirs), or `null`.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::backends::Backend;
use crate::model::{
    Attrs, Body, ByteRange, ByteStream, Declared, Error, GetOutcome, ObjectInfo, ObjectSummary,
    PutOutcome, RESERVED_PREFIX, ReadConditions, Result, Tags, VERSION_META, WriteCondition,
};

/// A bucket's versioning state, as S3 has it: once enabled, never back to unversioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Unversioned,
    Enabled,
    Suspended,
}

impl State {
    /// As stored and as S3 spells it.
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            State::Unversioned => None,
            State::Enabled => Some("Enabled"),
            State::Suspended => Some("Suspended"),
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Enabled" => Some(State::Enabled),
            "Suspended" => Some(State::Suspended),
            _ => None,
        }
    }
}

/// Where a dynamic bucket's state is kept in each member (relative to the reserved prefix).
pub const STATE_PATH: &str = "versioning";
/// The directory of every version file (relative to the reserved prefix).
const DIR: &str = "versions/";
/// Ends a key's directory of versions.
const KEY_END: &str = "~v";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Data,
    Marker,
    NullData,
    NullMarker,
}

impl Kind {
    fn suffix(self) -> &'static str {
        match self {
            Kind::Data => "v",
            Kind::Marker => "d",
            Kind::NullData => "n",
            Kind::NullMarker => "m",
        }
    }
}

/// One version file of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub sort: String,
    pub kind: Kind,
}

impl File {
    fn new(kind: Kind, at: DateTime<Utc>, random: bool) -> Self {
        let nanos = u64::try_from(at.timestamp_nanos_opt().unwrap_or(0)).unwrap_or(0);
        let tail = if random {
            uuid::Uuid::new_v4().as_u128() as u32
        } else {
            0
        };
        Self {
            sort: format!("{:016x}{tail:08x}", u64::MAX - nanos),
            kind,
        }
    }

    pub fn name(&self) -> String {
        format!("{}-{}", self.sort, self.kind.suffix())
    }

    pub fn parse(name: &str) -> Option<Self> {
        let (sort, kind) = name.split_once('-')?;
        if sort.len() != 24 || !sort.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let kind = match kind {
            "v" => Kind::Data,
            "d" => Kind::Marker,
            "n" => Kind::NullData,
            "m" => Kind::NullMarker,
            _ => return None,
        };
        Some(Self {
            sort: sort.to_owned(),
            kind,
        })
    }

    pub fn is_marker(&self) -> bool {
        matches!(self.kind, Kind::Marker | Kind::NullMarker)
    }

    pub fn is_null(&self) -> bool {
        matches!(self.kind, Kind::NullData | Kind::NullMarker)
    }

    /// The id a client sees.
    pub fn client_id(&self, member: &str) -> String {
        if self.is_null() {
            "null".to_owned()
        } else {
            format!("{member}.{}", self.sort)
        }
    }
}

/// What a client's version id names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionId {
    Null,
    In { member: String, sort: String },
}

impl VersionId {
    /// `400 InvalidArgument` for an id no version of this gateway has ever had.
    pub fn parse(id: &str) -> Result<Self> {
        if id == "null" {
            return Ok(VersionId::Null);
        }
        let bad = || Error::InvalidArgument("Invalid version id specified".into());
        let (member, sort) = id.rsplit_once('.').ok_or_else(bad)?;
        if member.is_empty() || sort.len() != 24 || !sort.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(VersionId::In {
            member: member.to_owned(),
            sort: sort.to_owned(),
        })
    }
}

/// The store key of a version file.
pub fn file_key(key: &str, f: &File) -> String {
    format!("{RESERVED_PREFIX}{DIR}{key}{KEY_END}/{}", f.name())
}

/// The version files of `key` in `member`, newest first.
pub async fn files(member: &Backend, key: &str) -> Result<Vec<File>> {
    let dir = format!("{DIR}{key}{KEY_END}/");
    let mut out: Vec<File> = member
        .store
        .list_internal(&dir)
        .await?
        .iter()
        .filter_map(|p| p.strip_prefix(&dir))
        .filter(|name| !name.contains('/'))
        .filter_map(File::parse)
        .collect();
    out.sort_by(|a, b| a.sort.cmp(&b.sort));
    Ok(out)
}

/// Every version file under the keys starting with `prefix`, as (key, file), by key and
/// then newest first.
pub async fn all_files(member: &Backend, prefix: &str) -> Result<Vec<(String, File)>> {
    let mut out: Vec<(String, File)> = member
        .store
        .list_internal(DIR)
        .await?
        .iter()
        .filter_map(|p| parse_path(p))
        .filter(|(k, _)| k.starts_with(prefix))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.sort.cmp(&b.1.sort)));
    Ok(out)
}

/// The key and version file a path (relative to the reserved prefix) names, if it is one.
fn parse_path(p: &str) -> Option<(String, File)> {
    let (dir, name) = p.strip_prefix(DIR)?.rsplit_once('/')?;
    let key = dir.strip_suffix(KEY_END)?;
    Some((key.to_owned(), File::parse(name)?))
}

/// Head of an object without its body.
async fn head(member: &Backend, key: &str) -> Result<ObjectInfo> {
    member
        .store
        .get(key, None, &ReadConditions::default(), true)
        .await
        .map(|(o, _)| o.info)
}

/// The version file a key's object was published from, if it says.
pub fn published_from(attrs: &Attrs) -> Option<File> {
    attrs
        .metadata
        .get(VERSION_META)
        .and_then(|n| File::parse(n))
}

/// Keeps the object at `key`, when it has no version file (written before versioning, by
/// another tool, or carried here by a migration), as its `null` version before a
/// versioned write replaces it. Read and written again rather than copied, so that the
/// file names itself in [`VERSION_META`]. Engines doing this at once write the same file
/// (named after the object's time) with the same bytes; one that reads the key after
/// another writer published its version there (which that writer archived first) stops.
async fn archive_unversioned(member: &Backend, key: &str) -> Result<()> {
    let have = files(member, key).await?;
    if !have.is_empty() {
        return Ok(());
    }
    let (mut read, stream) = match member
        .store
        .get(key, None, &ReadConditions::default(), false)
        .await
    {
        Ok(r) => r,
        Err(Error::NotFound) => return Ok(()),
        Err(e) => return Err(e),
    };
    if published_from(&read.info.attrs).is_some() && !files(member, key).await?.is_empty() {
        return Ok(());
    }
    // The tags go with the null version (Azure only counts them on a read).
    member.tell_tags(key, &mut read.info).await?;
    let f = File::new(Kind::NullData, read.info.last_modified, false);
    let mut attrs = read.info.attrs.clone();
    attrs.metadata.insert(VERSION_META.to_owned(), f.name());
    let body = stream.ok_or_else(|| Error::internal("a read without a body"))?;
    let declared = Declared {
        etag: read.info.etag.clone(),
        ..Declared::of_len(Some(read.info.size))
    };
    member
        .store
        .put(
            &file_key(key, &f),
            body,
            declared,
            &attrs,
            &WriteCondition::None,
            u64::MAX,
        )
        .await?;
    Ok(())
}

/// Makes the key a copy of its newest version, or removes it when that is a delete marker
/// or there is none; again while a newer version appeared meanwhile.
pub async fn publish(member: &Backend, key: &str) -> Result<()> {
    for _ in 0..64 {
        let before = files(member, key).await?;
        match before.first() {
            Some(f) if !f.is_marker() => match copy_to_key(member, &file_key(key, f), key).await {
                Ok(()) => {}
                // Deleted meanwhile: look again.
                Err(Error::NotFound) => continue,
                Err(e) => return Err(e),
            },
            _ => member.store.delete(key).await?,
        }
        let after = files(member, key).await?;
        if after.first() == before.first() {
            return Ok(());
        }
    }
    Err(Error::Unavailable {
        backend: member.name.clone(),
        message: format!("the versions of {key:?} kept changing while they were published"),
    })
}

/// Copies a version file over its key, keeping its attributes, tags included, and its
/// ETag: read and written again rather than copied server-side, because an `fs` copy
/// gives the copy the MD5 of its bytes, and a version made by a multipart upload answers
/// `<md5>-<parts>` (the key must answer what its version does). On `fs` and memory the
/// bytes stay on the member's disk or in its memory; Azure and GCS members send them
/// through the engine once more.
async fn copy_to_key(member: &Backend, from: &str, key: &str) -> Result<()> {
    let (mut read, stream) = member
        .store
        .get(from, None, &ReadConditions::default(), false)
        .await?;
    // Azure's GET counts a blob's tags without naming them: without this the key would
    // lose them (seen with Azure's own client by clients::eject_azure_versions).
    member.tell_tags(from, &mut read.info).await?;
    let body = stream.ok_or_else(|| Error::internal("a read without a body"))?;
    let declared = Declared {
        etag: read.info.etag.clone(),
        ..Declared::of_len(Some(read.info.size))
    };
    member
        .store
        .put(
            key,
            body,
            declared,
            &read.info.attrs,
            &WriteCondition::None,
            u64::MAX,
        )
        .await
        .map(|_| ())
}

/// Removes the `null` versions older than `keep` (a suspended bucket keeps one).
async fn drop_older_nulls(member: &Backend, key: &str, keep: &File) -> Result<()> {
    for f in files(member, key).await? {
        if f.is_null() && f.sort > keep.sort {
            member.store.delete(&file_key(key, &f)).await?;
        }
    }
    Ok(())
}

/// A versioned PutObject into one member: returns the outcome and the version id.
#[allow(clippy::too_many_arguments)]
pub async fn put(
    member: &Arc<Backend>,
    bucket: &str,
    key: &str,
    body: Body,
    declared: Declared,
    attrs: &Attrs,
    state: State,
    cond: &WriteCondition,
    part_size: u64,
) -> Result<(PutOutcome, String)> {
    write(member, bucket, key, state, cond, |path| async move {
        let mut a = attrs.clone();
        a.metadata
            .insert(VERSION_META.to_owned(), path.name.clone());
        member
            .store
            .put(
                &path.key,
                body,
                declared,
                &a,
                &WriteCondition::None,
                part_size,
            )
            .await
    })
    .await
}

/// Where a new version goes: its file's name and store key.
pub struct NewFile {
    pub name: String,
    pub key: String,
}

/// Writes one version of `key` in `member` with `fill` (given the file to write, whose
/// name the attributes must carry as [`VERSION_META`]), then publishes it: PutObject,
/// CopyObject's target and CompleteMultipartUpload alike. Returns the outcome and the
/// version id.
///
/// With a condition, the key's current version in `member` is checked before the bytes
/// are written, and again after: a version another writer added meanwhile (in this engine
/// or another, as its file is visible only once whole) fails the write with 412 and its
/// file is removed unpublished. So of writers racing on one condition at most one wins;
/// both may lose when each sees the other's file. Writes through this engine to one key
/// also take turns (a lock held from the check to the publish), so that within one engine
/// a conditional write is atomic against unconditional ones too.
pub async fn write<F, Fut>(
    member: &Arc<Backend>,
    bucket: &str,
    key: &str,
    state: State,
    cond: &WriteCondition,
    fill: F,
) -> Result<(PutOutcome, String)>
where
    F: FnOnce(NewFile) -> Fut,
    Fut: std::future::Future<Output = Result<PutOutcome>>,
{
    let _turn = turn(member, key).await;
    archive_unversioned(member, key).await?;
    let before = if *cond == WriteCondition::None {
        Vec::new()
    } else {
        let before = files(member, key).await?;
        check(member, key, before.first(), cond).await?;
        before
    };
    let kind = if state == State::Suspended {
        Kind::NullData
    } else {
        Kind::Data
    };
    let f = File::new(kind, Utc::now(), true);
    let path = NewFile {
        name: f.name(),
        key: file_key(key, &f),
    };
    let out = fill(path).await?;
    crate::router::crash_point("versions::written", bucket)?;
    if *cond != WriteCondition::None {
        let raced = files(member, key)
            .await?
            .into_iter()
            .any(|g| g != f && !before.contains(&g));
        if raced {
            member.store.delete(&file_key(key, &f)).await?;
            return Err(Error::Precondition(
                "another version of the object was written meanwhile".into(),
            ));
        }
    }
    if f.is_null() {
        drop_older_nulls(member, key, &f).await?;
    }
    publish(member, key).await?;
    Ok((out, f.client_id(&member.name)))
}

/// A write condition against `newest`, the key's newest version file in `member`: as S3,
/// `If-None-Match: *` fails when the current version is an object (a delete marker counts
/// as absent), `If-Match` when it is not one with that ETag (`404` when there is none).
async fn check(
    member: &Backend,
    key: &str,
    newest: Option<&File>,
    cond: &WriteCondition,
) -> Result<()> {
    let current = match newest {
        Some(f) if !f.is_marker() => match head(member, &file_key(key, f)).await {
            Ok(info) => Some(info.etag),
            Err(Error::NotFound) => None,
            Err(e) => return Err(e),
        },
        _ => None,
    };
    match (cond, current) {
        (WriteCondition::None, _) | (WriteCondition::IfAbsent, None) => Ok(()),
        (WriteCondition::IfAbsent, Some(_)) => {
            Err(Error::Precondition("the object already exists".into()))
        }
        (WriteCondition::IfMatch(_), None) => Err(Error::NotFound),
        (WriteCondition::IfMatch(want), Some(have)) => {
            let want = crate::backends::unquote_etag(want);
            if want == "*" || have.as_deref() == Some(want.as_str()) {
                Ok(())
            } else {
                Err(Error::Precondition("the ETag does not match".into()))
            }
        }
    }
}

/// Who is writing which key through this engine: a lock per (member's store, key).
type Turns = std::collections::HashMap<(usize, String), Arc<tokio::sync::Mutex<()>>>;

/// The writes of one key through this engine, one at a time (see [`write`]). Keyed by the
/// member's store, so two gateways in one process over other directories never wait on
/// each other for long (a shared entry only makes them take turns).
async fn turn(member: &Backend, key: &str) -> Turn {
    use std::sync::{LazyLock, Mutex};
    static TURNS: LazyLock<Mutex<Turns>> = LazyLock::new(Default::default);
    let id = (
        Arc::as_ptr(&member.store) as *const () as usize,
        key.to_owned(),
    );
    let lock = TURNS
        .lock()
        .expect("version turns")
        .entry(id.clone())
        .or_default()
        .clone();
    let guard = lock.clone().lock_owned().await;
    Turn {
        _guard: guard,
        table: &TURNS,
        id,
        lock,
    }
}

struct Turn {
    _guard: tokio::sync::OwnedMutexGuard<()>,
    table: &'static std::sync::Mutex<Turns>,
    id: (usize, String),
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        // The last one out removes the entry: the table holds the keys being written only.
        let mut t = self.table.lock().expect("version turns");
        // This turn's `lock`, the table's and the guard's: nobody else waits.
        if Arc::strong_count(&self.lock) <= 3 {
            t.remove(&self.id);
        }
    }
}

/// DeleteObject without a version id: a delete marker in `member`. Returns its id.
pub async fn put_marker(
    member: &Arc<Backend>,
    bucket: &str,
    key: &str,
    state: State,
) -> Result<String> {
    let _turn = turn(member, key).await;
    archive_unversioned(member, key).await?;
    let kind = if state == State::Suspended {
        Kind::NullMarker
    } else {
        Kind::Marker
    };
    let f = File::new(kind, Utc::now(), true);
    let mut a = Attrs::default();
    a.metadata.insert(VERSION_META.to_owned(), f.name());
    let empty: Body = Box::pin(futures::stream::empty::<Result<Bytes>>());
    member
        .store
        .put(
            &file_key(key, &f),
            empty,
            Declared::of_len(Some(0)),
            &a,
            &WriteCondition::None,
            u64::MAX,
        )
        .await?;
    crate::router::crash_point("versions::written", bucket)?;
    if f.is_null() {
        drop_older_nulls(member, key, &f).await?;
    }
    publish(member, key).await?;
    Ok(f.client_id(&member.name))
}

/// The file a version id names in `member`; `Ok(None)` for the `null` version that is the
/// key itself (no version file at all).
pub async fn find(member: &Backend, key: &str, id: &VersionId) -> Result<Option<File>> {
    let all = files(member, key).await?;
    let found = match id {
        VersionId::Null => all.iter().find(|f| f.is_null()).cloned(),
        VersionId::In { sort, .. } => all.iter().find(|f| &f.sort == sort).cloned(),
    };
    match found {
        Some(f) => Ok(Some(f)),
        None if *id == VersionId::Null && all.is_empty() => match head(member, key).await {
            Ok(_) => Ok(None),
            Err(Error::NotFound) => Err(Error::NoSuchVersion),
            Err(e) => Err(e),
        },
        None => Err(Error::NoSuchVersion),
    }
}

/// Reads one version of `key` from `member`.
pub async fn get(
    member: &Backend,
    key: &str,
    id: &VersionId,
    range: Option<ByteRange>,
    cond: &ReadConditions,
    head_only: bool,
) -> Result<(GetOutcome, Option<ByteStream>)> {
    let (path, got) = match find(member, key, id).await? {
        None => (
            key.to_owned(),
            member.store.get(key, range, cond, head_only).await,
        ),
        Some(f) if f.is_marker() => {
            return Err(Error::DeleteMarker {
                version_id: f.client_id(&member.name),
                named: true,
            });
        }
        Some(f) => {
            let path = file_key(key, &f);
            let got = member
                .store
                .get(&path, range, cond, head_only)
                .await
                .map_err(|e| match e {
                    Error::NotFound => Error::NoSuchVersion,
                    e => e,
                });
            (path, got)
        }
    };
    // A version's tags are its object's; kinds that only count them on a read (Azure)
    // are asked for them.
    let (mut o, s) = got?;
    member.tell_tags(&path, &mut o.info).await?;
    Ok((o, s))
}

/// Removes one version for good. Returns whether it was a delete marker; a version that
/// is not there is not an error (as S3).
pub async fn delete(member: &Backend, bucket: &str, key: &str, id: &VersionId) -> Result<bool> {
    let _turn = turn(member, key).await;
    let f = match find(member, key, id).await {
        Ok(Some(f)) => f,
        Ok(None) => {
            member.store.delete(key).await?;
            return Ok(false);
        }
        Err(Error::NoSuchVersion) => return Ok(false),
        Err(e) => return Err(e),
    };
    let newest = files(member, key).await?.first() == Some(&f);
    member.store.delete(&file_key(key, &f)).await?;
    crate::router::crash_point("versions::removed", bucket)?;
    if newest {
        publish(member, key).await?;
    }
    Ok(f.is_marker())
}

/// What a change of one version's sub-resources sets: PutObjectTagging (and
/// DeleteObjectTagging, no tags) or PutObjectAcl (`None`: the default ACL).
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    Tags(&'a Tags),
    Acl(Option<&'a crate::model::ObjectAcl>),
}

impl Change<'_> {
    /// Sets it on the object at `path` (a version's file, or the key itself) in `member`.
    async fn apply(self, member: &Backend, path: &str) -> Result<()> {
        match self {
            Change::Tags(tags) => member.store.put_tags(path, tags).await,
            Change::Acl(acl) if member.store.keeps_acls() => member.store.put_acl(path, acl).await,
            // The default ACL is what such an object has: nothing to keep, once it exists.
            Change::Acl(acl) => {
                head(member, path).await?;
                match acl {
                    None => Ok(()),
                    Some(_) => Err(acls_not_kept(member)),
                }
            }
        }
    }
}

/// The refusal of an ACL other than the default on a member whose kind keeps none.
pub fn acls_not_kept(member: &Backend) -> Error {
    Error::NotImplemented(format!(
        "object ACLs other than the default are not supported on member {} (its kind, {}, has no place to keep them with the object)",
        member.name, member.kind
    ))
}

/// PutObjectTagging, DeleteObjectTagging and PutObjectAcl on one version of `key` in
/// `member`, or without `id` on its current one: the tags and the ACL are the
/// version's, kept on its file, and on the key too when that is the current version's
/// copy (a read of it, and the access decisions made on it, see the same ones). Bytes,
/// ETag and Last-Modified stay. Returns the version id changed; `NotFound` when
/// `member` has no such key, a delete marker's error when the version named (or the
/// current one) is one.
pub async fn change(
    member: &Arc<Backend>,
    key: &str,
    id: Option<&VersionId>,
    change: Change<'_>,
) -> Result<String> {
    let _turn = turn(member, key).await;
    let all = files(member, key).await?;
    let target = match id {
        None => match all.first() {
            Some(f) if f.is_marker() => {
                return Err(Error::DeleteMarker {
                    version_id: f.client_id(&member.name),
                    named: false,
                });
            }
            Some(f) => Some(f.clone()),
            None => None,
        },
        Some(id) => match find(member, key, id).await {
            Ok(found) => found,
            Err(Error::NoSuchVersion) if id == &VersionId::Null => return Err(Error::NotFound),
            Err(e) => return Err(e),
        },
    };
    let Some(f) = target else {
        // The null version that is the key itself, with no file.
        change.apply(member, key).await?;
        return Ok("null".to_owned());
    };
    if f.is_marker() {
        return Err(Error::DeleteMarker {
            version_id: f.client_id(&member.name),
            named: true,
        });
    }
    change
        .apply(member, &file_key(key, &f))
        .await
        .map_err(|e| match (e, id) {
            (Error::NotFound, Some(_)) => Error::NoSuchVersion,
            (e, _) => e,
        })?;
    if all.first() == Some(&f) {
        match head(member, key).await {
            Ok(info) if published_from(&info.attrs).as_ref() == Some(&f) => {
                match change.apply(member, key).await {
                    Ok(()) | Err(Error::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
            // Not this version's copy (yet): publishing makes it one, with the new tags.
            Ok(_) | Err(Error::NotFound) => publish(member, key).await?,
            Err(e) => return Err(e),
        }
    }
    Ok(f.client_id(&member.name))
}

/// One row of ListObjectVersions.
#[derive(Debug, Clone)]
pub struct Row {
    pub key: String,
    pub version_id: String,
    pub marker: bool,
    pub latest: bool,
    pub size: u64,
    pub etag: Option<String>,
    pub last_modified: DateTime<Utc>,
    /// The order among the key's versions, newest first.
    pub sort: String,
}

/// Every version under `prefix` in `members`, by key and then newest first, with
/// `latest` set on the newest of each key.
pub async fn rows(members: &[Arc<Backend>], prefix: &str) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    for m in members {
        let listed = match m.store.list_internal_rows(DIR).await? {
            Some(listed) => listed,
            // A kind whose listing says nothing of the objects: a look at each.
            None => {
                let mut listed = Vec::new();
                for (key, f) in all_files(m, prefix).await? {
                    let path = file_key(&key, &f);
                    match head(m, &path).await {
                        Ok(info) => listed.push(ObjectSummary {
                            key: path[RESERVED_PREFIX.len()..].to_owned(),
                            size: info.size,
                            etag: info.etag,
                            last_modified: info.last_modified,
                        }),
                        // Removed since the listing.
                        Err(Error::NotFound) => {}
                        Err(e) => return Err(e),
                    }
                }
                listed
            }
        };
        let mut versioned = std::collections::BTreeSet::new();
        for o in listed {
            let Some((key, f)) = parse_path(&o.key).filter(|(k, _)| k.starts_with(prefix)) else {
                continue;
            };
            versioned.insert(key.clone());
            out.push(Row {
                version_id: f.client_id(&m.name),
                marker: f.is_marker(),
                latest: false,
                size: if f.is_marker() { 0 } else { o.size },
                etag: (!f.is_marker()).then_some(o.etag).flatten(),
                last_modified: o.last_modified,
                sort: f.sort,
                key,
            });
        }
        // Keys with no version file: each is its own null version.
        let mut keys = m.store.list(prefix, None);
        use futures::StreamExt as _;
        while let Some(o) = keys.next().await {
            let o = o?;
            if versioned.contains(&o.key) {
                continue;
            }
            out.push(Row {
                version_id: "null".to_owned(),
                marker: false,
                latest: false,
                size: o.size,
                etag: o.etag,
                sort: File::new(Kind::NullData, o.last_modified, false).sort,
                last_modified: o.last_modified,
                key: o.key,
            });
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key).then_with(|| a.sort.cmp(&b.sort)));
    let mut last: Option<String> = None;
    for r in &mut out {
        if last.as_deref() != Some(r.key.as_str()) {
            r.latest = true;
            last = Some(r.key.clone());
        }
    }
    Ok(out)
}
