//! Versioning passed through to S3 members (static credentials), which keep versions of
//! their own: the gateway adds nothing to the backend, so what a client writes through it
//! is what `aws s3api list-object-versions` shows on the backend bucket, and the reverse.
//!
//! **State.** A bucket's versioning is its members' backend buckets' own: read from the
//! first member (at most every [`POLICY_CACHE`], as a created bucket's stored state), and
//! PutBucketVersioning sets it on every member. The file's `versioning` is refused for S3
//! members (config.rs): a second source of truth would disagree with the backend as soon
//! as someone changed it there. A bucket made by CreateBucket is a prefix of the template's
//! S3 bucket, whose versioning every such bucket shares: PutBucketVersioning on it is
//! refused, and it reads the shared bucket's state.
//!
//! **Version ids** are `<member>.<S3's id>` (member names have no `.`; the first `.` ends
//! the member, and S3's id, whatever it holds, is the rest), or `null` for S3's null
//! version, which may be in any member.
//!
//! This module is a child of the router's: it reads the bucket's placement and routing
//! as the router's own reads and writes do.

use super::*;
use crate::backends::S3Native;

/// The members of a bucket and their native versioning.
pub(super) type Natives = Vec<(Arc<Backend>, S3Native)>;

/// What a client's version id names in a bucket of S3 members.
enum NativeId<'a> {
    Null,
    In { member: &'a str, id: &'a str },
}

impl<'a> NativeId<'a> {
    fn parse(id: &'a str) -> Result<Self> {
        if id == "null" {
            return Ok(NativeId::Null);
        }
        match id.split_once('.') {
            Some((member, id)) if !member.is_empty() && !id.is_empty() => {
                Ok(NativeId::In { member, id })
            }
            _ => Err(Error::InvalidArgument(
                "Invalid version id specified".into(),
            )),
        }
    }
}

/// The id a client sees of S3's id `native` in `member` (`None`: the null version).
pub(super) fn client_id(member: &str, native: Option<&str>) -> String {
    match native {
        Some(id) if id != "null" => format!("{member}.{id}"),
        _ => "null".to_owned(),
    }
}

/// A delete marker error with its id named for the client.
fn named_marker(e: Error, member: &str) -> Error {
    match e {
        Error::DeleteMarker { version_id, named } => Error::DeleteMarker {
            version_id: client_id(member, Some(&version_id)),
            named,
        },
        e => e,
    }
}

impl Router {
    /// Every member of `vb` with its native versioning, when all pass theirs through.
    pub(super) fn natives(vb: &VirtualBucket) -> Option<Natives> {
        let all: Option<Natives> = vb
            .members
            .iter()
            .map(|m| m.store.native_versions().map(|n| (m.clone(), n)))
            .collect();
        all.filter(|v| !v.is_empty())
    }

    fn native_of<'n>(natives: &'n Natives, member: &str) -> Option<&'n (Arc<Backend>, S3Native)> {
        natives.iter().find(|(m, _)| m.name == member)
    }

    pub(super) async fn native_state(
        &self,
        vb: &VirtualBucket,
        natives: &Natives,
    ) -> Result<versions::State> {
        if let Some((read, state)) = *vb.versioning.lock().expect("versioning cache")
            && read.elapsed() < POLICY_CACHE
        {
            return Ok(state);
        }
        // A backend that cannot answer is marked as its other requests mark it.
        let started = Instant::now();
        let state = natives[0].1.state().await;
        natives[0].0.observe(started, &state);
        let state = state?;
        *vb.versioning.lock().expect("versioning cache") = Some((Instant::now(), state));
        Ok(state)
    }

    pub(super) async fn native_put_versioning(
        &self,
        vb: &VirtualBucket,
        natives: &Natives,
        state: versions::State,
    ) -> Result<()> {
        if vb.dynamic {
            return Err(Error::NotImplemented(format!(
                "bucket {} is a prefix of an S3 bucket shared by every bucket made by CreateBucket, and S3 versions whole buckets: set versioning on the backend bucket itself",
                vb.name
            )));
        }
        if state.as_str().is_none() {
            return Err(Error::InvalidArgument(
                "a bucket's versioning is Enabled or Suspended".into(),
            ));
        }
        for (m, n) in natives {
            let started = Instant::now();
            let r = n.set_state(state).await;
            m.observe(started, &r);
            r?;
        }
        *vb.versioning.lock().expect("versioning cache") = Some((Instant::now(), state));
        Ok(())
    }

    /// PutObject into a versioned bucket of S3 members: S3 makes the version.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn native_put(
        &self,
        req: &RequestView,
        vb: &Arc<VirtualBucket>,
        natives: &Natives,
        key: &str,
        body: Body,
        declared: Declared,
        attrs: &Attrs,
        cond: &WriteCondition,
    ) -> Result<(PutOutcome, Option<String>)> {
        check_key(key)?;
        check_attrs(attrs)?;
        let _admitted = vb.admit_write().await?;
        let obj = object_view(req, &vb.name, key, declared.len, attrs);
        let targets = self.decider.place(vb, req, &obj).await?;
        record_targets(&targets);
        let kept = acl_for(targets.iter().map(|t| &**t), attrs)?;
        let attrs = kept.as_ref().unwrap_or(attrs);
        let [target] = targets.as_slice() else {
            return Err(Error::NotImplemented(
                "a placement naming several members (a mirrored write) in a versioned bucket is not supported".into(),
            ));
        };
        let done = self
            .native_write(natives, target, key, body, declared, attrs, cond)
            .await?;
        self.confirm_write(vb, key).await?;
        Ok(done)
    }

    /// A write of `key` to `target` (placed, admitted), answering the version S3 made.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn native_write(
        &self,
        natives: &Natives,
        target: &Arc<Backend>,
        key: &str,
        body: Body,
        declared: Declared,
        attrs: &Attrs,
        cond: &WriteCondition,
    ) -> Result<(PutOutcome, Option<String>)> {
        let if_absent = match cond {
            WriteCondition::None => false,
            WriteCondition::IfAbsent => true,
            WriteCondition::IfMatch(_) => {
                return Err(Error::NotImplemented(
                    "If-Match writes to a versioned bucket of S3 members are not supported".into(),
                ));
            }
        };
        let (_, native) = Self::native_of(natives, &target.name)
            .ok_or_else(|| Error::internal("the placement named no member"))?;
        let started = Instant::now();
        let r = match native.put(key, body, &declared, attrs, if_absent).await {
            Ok(done) => Ok(done),
            Err((_, Some(e))) => Err(e),
            // Not one PUT (no length, or over 5 GiB): written as any other write, and
            // the version it made read back (limitations.md).
            Err((body, None)) => {
                match target
                    .store
                    .put(
                        key,
                        body,
                        declared,
                        attrs,
                        cond,
                        self.config.server.part_size,
                    )
                    .await
                {
                    Ok(out) => self
                        .native_id_of(natives, &target.name, key, out.etag.as_deref())
                        .await
                        .map(|id| (out, id)),
                    Err(e) => Err(e),
                }
            }
        };
        target.observe(started, &r);
        let (out, id) = r?;
        Ok((out, Some(client_id(&target.name, id.as_deref()))))
    }

    /// The (native) id of the version of `key` in `member` with ETag `etag`, written by
    /// a request whose answer did not name it (a multipart completion, a PUT that was
    /// not one request): the current version when it has that ETag, else the newest
    /// listed with it (a write that came after). `None`: S3's null version, or none found.
    pub(super) async fn native_id_of(
        &self,
        natives: &Natives,
        member: &str,
        key: &str,
        etag: Option<&str>,
    ) -> Result<Option<String>> {
        let (_, n) =
            Self::native_of(natives, member).ok_or_else(|| Error::internal("no such member"))?;
        let want = etag.map(|e| e.trim_matches('"').to_owned());
        let same = |e: Option<&str>| e.map(|e| e.trim_matches('"').to_owned()) == want;
        match n
            .get(key, None, None, &ReadConditions::default(), true)
            .await
        {
            Ok((o, _, id)) if same(o.info.etag.as_deref()) => return Ok(id),
            Ok(_) | Err(Error::NotFound | Error::DeleteMarker { .. }) => {}
            Err(e) => return Err(e),
        }
        let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
        loop {
            let page = n
                .list(
                    key,
                    None,
                    key_marker.as_deref(),
                    version_marker.as_deref(),
                    1000,
                )
                .await?;
            if let Some(r) = page
                .rows
                .iter()
                .find(|r| r.key == key && !r.marker && same(r.etag.as_deref()))
            {
                return Ok(Some(r.version_id.clone()).filter(|v| v != "null"));
            }
            match page.next {
                Some((k, v))
                    if k.as_str() <= key
                        && (Some(&k), &v) != (key_marker.as_ref(), &version_marker) =>
                {
                    (key_marker, version_marker) = (Some(k), v);
                }
                _ => return Ok(None),
            }
        }
    }

    /// The member and native id of a version of `key`: the one named (`null`: in the
    /// first member holding it), or the current one. A delete marker is
    /// [`Error::DeleteMarker`], named when asked for by id.
    async fn native_version<'n>(
        natives: &'n Natives,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<(&'n (Arc<Backend>, S3Native), Option<String>)> {
        let (members, native): (Vec<&(Arc<Backend>, S3Native)>, Option<&str>) = match version_id {
            None => (natives.iter().collect(), None),
            Some(v) => match NativeId::parse(v)? {
                NativeId::Null => (natives.iter().collect(), Some("null")),
                NativeId::In { member, id } => (
                    vec![Self::native_of(natives, member).ok_or(Error::NoSuchVersion)?],
                    Some(id),
                ),
            },
        };
        let none = ReadConditions::default();
        let mut marker = None;
        for mn in members {
            let (m, n) = mn;
            let started = Instant::now();
            let r = n.get(key, native, None, &none, true).await;
            m.observe(started, &r);
            match r {
                Ok((_, _, id)) => return Ok((mn, id.or_else(|| native.map(str::to_owned)))),
                Err(Error::NotFound | Error::NoSuchVersion) => {}
                Err(e @ Error::DeleteMarker { named: true, .. }) => {
                    return Err(named_marker(e, &m.name));
                }
                Err(e @ Error::DeleteMarker { .. }) => {
                    marker = marker.or(Some(named_marker(e, &m.name)));
                }
                Err(e) => return Err(e),
            }
        }
        Err(marker.unwrap_or(if version_id.is_some() {
            Error::NoSuchVersion
        } else {
            Error::NotFound
        }))
    }

    /// GetObjectTagging in a versioned bucket of S3 members: the tags of the version
    /// named, or of the current one, with its id.
    pub(super) async fn native_tags(
        &self,
        natives: &Natives,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<(crate::model::Tags, Option<String>)> {
        let ((m, n), id) = Self::native_version(natives, key, version_id).await?;
        let native = id.as_deref().unwrap_or("null");
        let started = Instant::now();
        let r = n.tags(key, native).await;
        m.observe(started, &r);
        let tags = r.map_err(|e| match e {
            Error::NotFound if version_id.is_some() => Error::NoSuchVersion,
            e => e,
        })?;
        Ok((tags, Some(client_id(&m.name, id.as_deref()))))
    }

    /// PutObjectTagging and DeleteObjectTagging in a versioned bucket of S3 members: the
    /// tags of the version named, or of the current one; S3 keeps the rest of it.
    pub(super) async fn native_put_tags(
        &self,
        vb: &Arc<VirtualBucket>,
        natives: &Natives,
        key: &str,
        version_id: Option<&str>,
        tags: &crate::model::Tags,
    ) -> Result<Option<String>> {
        let _admitted = vb.admit_write().await?;
        let ((m, n), id) = Self::native_version(natives, key, version_id).await?;
        let native = id.as_deref().unwrap_or("null");
        let started = Instant::now();
        let r = n.put_tags(key, native, tags).await;
        m.observe(started, &r);
        r.map_err(|e| match e {
            Error::NotFound if version_id.is_some() => Error::NoSuchVersion,
            e => e,
        })?;
        Ok(Some(client_id(&m.name, id.as_deref())))
    }

    /// The tags of the version a copy read (`src_id`, the client's id; `None`: the
    /// object of an unversioned bucket), which S3's GET only counts.
    pub(super) async fn native_source_tags(
        natives: &Natives,
        key: &str,
        src_id: Option<&str>,
    ) -> Result<crate::model::Tags> {
        let ((m, n), id) = Self::native_version(natives, key, src_id).await?;
        let started = Instant::now();
        let r = match (src_id, id.as_deref()) {
            (None, _) => n.current_tags(key).await,
            (Some(_), v) => n.tags(key, v.unwrap_or("null")).await,
        };
        m.observe(started, &r);
        r
    }

    /// GetObject and HeadObject in a bucket of S3 members.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn native_get(
        &self,
        req: &RequestView,
        vb: &Arc<VirtualBucket>,
        natives: &Natives,
        key: &str,
        version_id: Option<&str>,
        range: Option<ByteRange>,
        cond: &ReadConditions,
        head: bool,
    ) -> Result<(GetOutcome, Option<ByteStream>, Option<String>)> {
        let state = self.native_state(vb, natives).await?;
        let versioned = state != versions::State::Unversioned;
        // An unversioned bucket's one version is null: the object itself (S3 answers 400
        // to a version id on a bucket never versioned).
        let version_id = version_id.filter(|v| versioned || *v != "null");
        let Some(id) = version_id else {
            let obj = ObjectView {
                bucket: vb.name.clone(),
                key: key.to_owned(),
                ..Default::default()
            };
            let order = self.decider.route(vb, req, &obj).await?;
            let mut failure = None;
            let mut marker = None;
            for member in &order {
                let Some((_, n)) = Self::native_of(natives, &member.name) else {
                    continue;
                };
                let started = Instant::now();
                let r = n.get(key, None, range, cond, head).await;
                member.observe(started, &r);
                match r {
                    Ok((o, s, id)) => {
                        let (o, s, _) = Self::served(o, s, member);
                        let id = versioned.then(|| client_id(&member.name, id.as_deref()));
                        return Ok((o, s, id));
                    }
                    Err(Error::NotFound) => {}
                    // Deletes go to every member: a marker here hides this member's
                    // older versions; a later write placed in another member shows.
                    Err(e @ Error::DeleteMarker { .. }) => {
                        marker = marker.or(Some(named_marker(e, &member.name)));
                    }
                    Err(e @ Error::Unavailable { .. }) => failure = Some(e),
                    Err(e) => return Err(e),
                }
            }
            return Err(failure.or(marker).unwrap_or(Error::NotFound));
        };
        let parsed = NativeId::parse(id)?;
        if !versioned && !matches!(parsed, NativeId::Null) {
            return Err(Error::InvalidArgument(
                "Invalid version id specified".into(),
            ));
        }
        let (members, native): (Vec<&(Arc<Backend>, S3Native)>, &str) = match parsed {
            NativeId::Null => (natives.iter().collect(), "null"),
            NativeId::In { member, id } => (
                vec![Self::native_of(natives, member).ok_or(Error::NoSuchVersion)?],
                id,
            ),
        };
        let mut missing = Error::NoSuchVersion;
        for (m, n) in members {
            let started = Instant::now();
            let r = n.get(key, Some(native), range, cond, head).await;
            m.observe(started, &r);
            match r {
                Ok((o, s, _)) => {
                    let (o, s, _) = Self::served(o, s, m);
                    return Ok((o, s, versioned.then(|| id.to_owned())));
                }
                // The null version of an unversioned bucket is its object.
                Err(Error::NoSuchVersion | Error::NotFound) => {}
                Err(e @ Error::DeleteMarker { .. }) => return Err(named_marker(e, &m.name)),
                Err(e @ Error::Unavailable { .. }) => missing = e,
                Err(e) => return Err(e),
            }
        }
        Err(missing)
    }

    /// DeleteObject in a versioned bucket of S3 members: without a version id, a delete
    /// marker in every member (so that no older copy shows through); with one, that
    /// version for good.
    pub(super) async fn native_delete(
        &self,
        vb: &Arc<VirtualBucket>,
        natives: &Natives,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<(Option<String>, bool)> {
        let _admitted = vb.admit_write().await?;
        let Some(id) = version_id else {
            // The answer: the first marker made (a member that never held the key may
            // make none: moto does not, where S3 does).
            let mut answer: Option<(Option<String>, bool)> = None;
            for (m, n) in natives {
                let started = Instant::now();
                let r = n.delete(key, None).await;
                m.observe(started, &r);
                let (made, marker) = r?;
                let this = (made.map(|id| client_id(&m.name, Some(&id))), marker);
                if answer.as_ref().is_none_or(|(_, had)| !had && marker) {
                    answer = Some(this);
                }
            }
            return answer.ok_or(Error::NoSuchBucket);
        };
        let (members, native): (Vec<&(Arc<Backend>, S3Native)>, &str) = match NativeId::parse(id)? {
            NativeId::Null => (natives.iter().collect(), "null"),
            NativeId::In { member, id } => {
                (Self::native_of(natives, member).into_iter().collect(), id)
            }
        };
        let mut marker = false;
        for (m, n) in members {
            // Whether the version is a delete marker, looked at first: some servers
            // (moto) leave `x-amz-delete-marker` out of the answer to its delete, which
            // S3 sends (a version's kind never changes, so the look cannot go stale).
            let started = Instant::now();
            let r = n
                .get(key, Some(native), None, &ReadConditions::default(), true)
                .await;
            m.observe(started, &r);
            let was_marker = match r {
                Err(Error::DeleteMarker { .. }) => true,
                Ok(_) | Err(Error::NoSuchVersion | Error::NotFound) => false,
                Err(e) => return Err(e),
            };
            let started = Instant::now();
            let r = n.delete(key, Some(native)).await;
            m.observe(started, &r);
            marker |= r?.1 || was_marker;
        }
        Ok((Some(id.to_owned()), marker))
    }

    /// ListObjectVersions over S3 members. One member: S3's pages, the markers passed
    /// through. Several: each member's versions read whole and merged (by key, newest
    /// first), then paged as the gateway's own versions are.
    pub(super) async fn native_list(
        &self,
        natives: &Natives,
        req: &VersionListRequest,
    ) -> Result<VersionPage> {
        let row = |member: &str, r: crate::backends::NativeRow| versions::Row {
            version_id: client_id(member, Some(&r.version_id)),
            marker: r.marker,
            latest: r.latest,
            size: r.size,
            etag: r.etag,
            last_modified: r.last_modified,
            sort: String::new(),
            key: r.key,
        };
        if let [(m, n)] = natives.as_slice() {
            let version_marker = match req.version_id_marker.as_deref().filter(|v| !v.is_empty()) {
                None => None,
                Some(v) => match NativeId::parse(v)? {
                    NativeId::Null => Some("null"),
                    NativeId::In { id, .. } => Some(id),
                },
            };
            let mut page = VersionPage::default();
            if req.max_keys == 0 {
                return Ok(page);
            }
            let started = Instant::now();
            let r = n
                .list(
                    &req.prefix,
                    req.delimiter.as_deref(),
                    req.key_marker.as_deref(),
                    version_marker,
                    req.max_keys,
                )
                .await;
            m.observe(started, &r);
            let got = r?;
            // Rows and prefixes by key, as S3 interleaves them.
            let mut rows = got.rows.into_iter().peekable();
            let mut prefixes = got.prefixes.into_iter().peekable();
            loop {
                let take_prefix = match (rows.peek(), prefixes.peek()) {
                    (Some(r), Some(p)) => p.as_str() < r.key.as_str(),
                    (None, Some(_)) => true,
                    (_, None) => false,
                };
                if take_prefix {
                    page.entries
                        .push(VersionEntry::Prefix(prefixes.next().unwrap_or_default()));
                } else if let Some(r) = rows.next() {
                    page.entries.push(VersionEntry::Version(row(&m.name, r)));
                } else {
                    break;
                }
            }
            if let Some((k, v)) = got.next {
                page.truncated = true;
                page.next = Some((k, v.map(|v| client_id(&m.name, Some(&v)))));
            }
            return Ok(page);
        }
        let mut all = Vec::new();
        for (m, n) in natives {
            let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
            loop {
                let started = Instant::now();
                let r = n
                    .list(
                        &req.prefix,
                        None,
                        key_marker.as_deref(),
                        version_marker.as_deref(),
                        1000,
                    )
                    .await;
                m.observe(started, &r);
                let got = r?;
                all.extend(got.rows.into_iter().map(|r| row(&m.name, r)));
                match got.next {
                    Some((k, v)) if Some(&k) != key_marker.as_ref() || v != version_marker => {
                        (key_marker, version_marker) = (Some(k), v);
                    }
                    Some(_) => {
                        return Err(Error::Unavailable {
                            backend: m.name.clone(),
                            message: "ListObjectVersions answered the same markers twice".into(),
                        });
                    }
                    None => break,
                }
            }
        }
        all.sort_by(|a, b| {
            a.key
                .cmp(&b.key)
                .then_with(|| b.last_modified.cmp(&a.last_modified))
        });
        let mut last: Option<String> = None;
        for r in &mut all {
            r.latest = last.as_deref() != Some(r.key.as_str());
            last = Some(r.key.clone());
        }
        Ok(Self::page_of(&all, req))
    }
}
