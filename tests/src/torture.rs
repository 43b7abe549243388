//! The consistency model of the torture test (`tests/tests/torture.rs`): a record of every
//! write and every answer the clients saw, with real-time intervals, and the checker that
//! decides which answers were allowed.
//!
//! # What a read may return
//!
//! Every write of a key (PutObject, CopyObject target, CompleteMultipartUpload, DeleteObject,
//! and the seeding before the clients start) is a [`Write`] with the interval `[start, end]`
//! in which the client waited for it, and an outcome: *acknowledged* (2xx) or *maybe* (5xx,
//! a cut connection, a 4xx that should not happen, a timeout, or cut by a kill). A maybe
//! write may take effect at any moment up to [`Write::late`]: `end` plus a grace for a
//! request that a backend may still finish after the gateway died, or never-ending for a
//! client timeout (the gateway may still be working on it).
//!
//! A read (GET, HEAD, one listing page) over `[s, e]` may return what write `w` wrote only
//! if `w` started before `e` and `w` is not *superseded*: no acknowledged write `w2` started
//! after `w` could last take effect (`w2.start > w.late`) and ended before the read began
//! (`w2.end < s`). A maybe write never supersedes anything. Those are the read's
//! *candidates*; "no such key" is allowed when a candidate is a delete (or the key's initial
//! absence). A copy writes one of the versions its source could have returned during the
//! copy (the candidates of the source over the copy's interval, followed through copies of
//! copies).
//!
//! # One object, one moment
//!
//! Each version has unique bytes (a header naming its key and id, then filler derived from
//! the id), Content-Type `application/x-v<id>`, `x-amz-meta-v: <id>` and sometimes
//! Cache-Control / Content-Disposition naming the id too. An answer is identified part by
//! part (bytes, Content-Type, metadata, ETag, size) and every part must name the same
//! version: a mix is a violation even when both versions are candidates. ETags are checked
//! where they are computable (hex MD5 for a single upload; for multipart either
//! `md5(part md5s)-N` as S3 makes it or `md5(body)-N`, or the plain MD5 once copied); where
//! a member's ETags are opaque (Azure), an ETag is learned per key from the answers that
//! carry it and must never name two versions.
//!
//! # Listings
//!
//! A listing is checked page by page: page `i` covers the keys after the previous page's
//! last key up to its own last key (to the end for the last page). A key in that range that
//! is live for the whole page request (every candidate is a version) must be on the page; a
//! key absent for the whole page request (no candidate is a version) must not; a listed
//! entry's size and ETag must be a candidate version's; keys are sorted and unique across
//! pages.
//!
//! # Violation kinds
//!
//! | kind | what was seen |
//! |---|---|
//! | `mixed-version` | parts of one answer name different versions (bytes of one, attributes or ETag of another; or a size or range that is not the attributes' version's) |
//! | `missing-attributes` | an object without Content-Type / `x-amz-meta-v` (an fs data file whose sidecar is missing or stale) |
//! | `bad-etag` | an ETag that no version has (or an opaque one already seen for another version) |
//! | `corrupt-bytes` | bytes that are no version's |
//! | `stale-read`, `stale-listing` | a whole version that is no candidate: overwritten or deleted before the read began |
//! | `resurrected-seed-read`, `resurrected-seed-listed` | the same, for the source's seeded object when the last write before the read deleted the key: the window docs/migration.md admits ([`DOCUMENTED`]) |
//! | `false-not-found` | NoSuchKey for a key live throughout the read |
//! | `copy-not-found` | CopyObject answered NoSuchKey while its source was live throughout |
//! | `bad-range-error` | InvalidRange while every candidate is long enough |
//! | `write-error`, `read-error` | a 4xx that no state explains (a PUT answered 404, a GET 412 without preconditions) |
//! | `listing-missing` | a page omits a key live for the whole page request |
//! | `listing-bad-etag`, `listing-bad-entry` | a listed entry whose ETag (size matches a candidate) or size is no candidate's |
//! | `listing-order`, `listing-unknown-key` | keys unsorted, repeated, outside the prefix, or never written |
//! | `final-missing`, `final-resurrected`, `final-unknown-key`, `final-left-in-source` | after the final copier passes: `new` lacks a live key, holds a deleted one or an unknown one; `old` is not empty |
//! | `final-mover-failed` | a final copier pass failed or counted failures |

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use md5::{Digest, Md5};

/// Microseconds since the start of one seed's run.
pub type Tick = u64;
/// A write that may take effect at any later time (a client timeout).
pub const FOREVER: Tick = u64::MAX;
/// Version id: unique within a seed's run.
pub type Vid = u64;

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn md5_hex(b: &[u8]) -> String {
    hex(&Md5::digest(b))
}

/// The bytes of version `id` of `key`: a header line that names both, then filler that
/// depends on the id (xorshift64*), `len` bytes in all (at least the header).
pub fn make_body(key: &str, id: Vid, len: usize) -> Bytes {
    let mut out = format!("{key} v{id}\n").into_bytes();
    let mut x = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5151_5151_5151_5151 | 1;
    out.reserve(len.saturating_sub(out.len()) + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    let header = out.iter().position(|b| *b == b'\n').unwrap_or(0) + 1;
    out.truncate(len.max(header));
    Bytes::from(out)
}

/// The version id in a whole body's header line.
pub fn body_vid(body: &[u8]) -> Option<Vid> {
    let line = &body[..body.iter().position(|b| *b == b'\n')?];
    let line = std::str::from_utf8(line).ok()?;
    line.rsplit_once(" v")?.1.parse().ok()
}

pub fn content_type_of(id: Vid) -> String {
    format!("application/x-v{id}")
}

fn vid_of_content_type(ct: &str) -> Option<Vid> {
    ct.strip_prefix("application/x-v")?.parse().ok()
}

/// An ETag that can be computed from the bytes: 32 hex digits, optionally `-N`.
pub fn is_md5_form(etag: &str) -> bool {
    let (h, n) = match etag.split_once('-') {
        Some((h, n)) => (h, Some(n)),
        None => (etag, None),
    };
    h.len() == 32
        && h.bytes().all(|b| b.is_ascii_hexdigit())
        && n.is_none_or(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// One version a client wrote (or the seeding wrote).
#[derive(Debug, Clone)]
pub struct Version {
    pub id: Vid,
    /// The key it was first written to (a copy carries it to others).
    pub key: String,
    pub body: Bytes,
    pub content_type: String,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    /// Part sizes of a multipart upload.
    pub parts: Option<Vec<usize>>,
    /// Written to the source member before the clients started.
    pub seed: bool,
}

impl Version {
    /// Every ETag this version may be served with.
    pub fn etag_forms(&self) -> Vec<String> {
        let whole = md5_hex(&self.body);
        let mut forms = vec![whole.clone()];
        if let Some(parts) = &self.parts {
            let mut cat = Vec::new();
            let mut at = 0;
            for p in parts {
                cat.extend_from_slice(&Md5::digest(&self.body[at..at + p]));
                at += p;
            }
            // S3's multipart ETag, which every member kind answers (fs used to answer the
            // whole body's MD5 with the part count, which no client can check).
            forms.push(format!("{}-{}", md5_hex(&cat), parts.len()));
        }
        forms
    }

    pub fn len(&self) -> u64 {
        self.body.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Put(Vid),
    /// CopyObject from this key of the same bucket (COPY directive).
    Copy {
        src: String,
    },
    Delete,
}

#[derive(Debug, Clone)]
pub struct Write {
    pub key: String,
    pub start: Tick,
    pub end: Tick,
    pub acked: bool,
    /// The latest moment it may take effect: `end` when acknowledged.
    pub late: Tick,
    pub effect: Effect,
    /// Who and what, for reports ("client 3 PUT", "seed").
    pub what: String,
}

/// A byte range as requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeReq {
    /// `bytes=a-b`
    Bounded(u64, u64),
    /// `bytes=a-`
    From(u64),
    /// `bytes=-n`
    Suffix(u64),
}

impl RangeReq {
    pub fn header(&self) -> String {
        match self {
            RangeReq::Bounded(a, b) => format!("bytes={a}-{b}"),
            RangeReq::From(a) => format!("bytes={a}-"),
            RangeReq::Suffix(n) => format!("bytes=-{n}"),
        }
    }

    /// The slice served from an object of `len` bytes; None when unsatisfiable.
    pub fn resolve(&self, len: u64) -> Option<(u64, u64)> {
        match *self {
            RangeReq::Bounded(a, b) if a < len => Some((a, b.min(len - 1))),
            RangeReq::From(a) if a < len => Some((a, len - 1)),
            RangeReq::Suffix(n) if len > 0 && n > 0 => Some((len.saturating_sub(n), len - 1)),
            _ => None,
        }
    }
}

/// What a GET or HEAD answered with an object.
#[derive(Debug, Clone, Default)]
pub struct ObjectAnswer {
    /// The bytes of a GET (whole or the range); None for HEAD.
    pub body: Option<Bytes>,
    pub range: Option<RangeReq>,
    /// `Content-Range: bytes a-b/total`.
    pub content_range: Option<(u64, u64, u64)>,
    pub content_length: Option<u64>,
    pub content_type: Option<String>,
    pub meta_v: Option<String>,
    pub etag: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
}

#[derive(Debug, Clone)]
pub enum ReadResult {
    Object(ObjectAnswer),
    NotFound,
    InvalidRange(RangeReq),
}

#[derive(Debug, Clone)]
pub struct Read {
    pub key: String,
    pub start: Tick,
    pub end: Tick,
    /// "GET", "GET range", "HEAD", "final GET new"...
    pub op: String,
    pub result: ReadResult,
}

#[derive(Debug, Clone)]
pub struct ListEntry {
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ListPage {
    pub start: Tick,
    pub end: Tick,
    pub entries: Vec<ListEntry>,
    pub truncated: bool,
}

/// All pages of one paginated ListObjectsV2.
#[derive(Debug, Clone)]
pub struct Listing {
    pub what: String,
    pub prefix: String,
    pub max_keys: i32,
    pub pages: Vec<ListPage>,
}

#[derive(Debug, Clone)]
pub struct Violation {
    pub kind: &'static str,
    pub key: String,
    pub at: Tick,
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{}] key {:?} at {}: {}",
            self.kind,
            self.key,
            fmt_tick(self.at),
            self.detail
        )
    }
}

pub fn fmt_tick(t: Tick) -> String {
    if t == FOREVER {
        "forever".into()
    } else {
        format!("{}.{:06}s", t / 1_000_000, t % 1_000_000)
    }
}

/// Kinds of violation that docs/migration.md describes as a known window ("The window that
/// remains"): a read of a key just deleted may see the source's object while the copier's
/// check has yet to remove its copy. They are reported apart, and fail the test only with
/// `strict`.
pub const DOCUMENTED: &[&str] = &["resurrected-seed-read", "resurrected-seed-listed"];

/// Everything one seed's run recorded.
#[derive(Default)]
pub struct History {
    pub versions: HashMap<Vid, Arc<Version>>,
    pub writes: BTreeMap<String, Vec<Write>>,
    pub reads: Vec<Read>,
    pub listings: Vec<Listing>,
    /// CopyObject answered NoSuchKey: (source key, target key, start, end).
    pub copy_misses: Vec<(String, String, Tick, Tick)>,
    /// Found while the operations ran (an error answer that no state allows, an ETag the
    /// PUT answered that is not its body's).
    pub violations: Vec<Violation>,
    /// ETags the writes were acknowledged with: (key, etag) -> version.
    pub acked_etags: Vec<(String, String, Vid)>,
}

impl History {
    pub fn add_version(&mut self, v: Version) -> Arc<Version> {
        let v = Arc::new(v);
        self.versions.insert(v.id, v.clone());
        v
    }

    pub fn add_write(&mut self, w: Write) {
        self.writes.entry(w.key.clone()).or_default().push(w);
    }
}

/// What a read over an interval may return for one key.
struct Allowed<'a> {
    versions: BTreeSet<Vid>,
    absent: bool,
    cands: Vec<&'a Write>,
}

pub struct Checker<'a> {
    h: &'a History,
    /// A member's ETags may be opaque (Azure): learn them instead of computing them.
    opaque_etags: bool,
    /// Every computable ETag -> its version.
    by_etag: HashMap<String, Vid>,
    /// Opaque ETags: (key, etag) -> version, from answers whose other parts agreed.
    learned: HashMap<(String, String), Vid>,
    pub violations: Vec<Violation>,
    pub stats: BTreeMap<&'static str, u64>,
}

fn unquote(s: &str) -> String {
    s.trim().trim_matches('"').to_owned()
}

impl<'a> Checker<'a> {
    pub fn new(h: &'a History, opaque_etags: bool) -> Self {
        let mut by_etag = HashMap::new();
        for v in h.versions.values() {
            for f in v.etag_forms() {
                by_etag.insert(f, v.id);
            }
        }
        Self {
            h,
            opaque_etags,
            by_etag,
            learned: HashMap::new(),
            violations: Vec::new(),
            stats: BTreeMap::new(),
        }
    }

    fn violation(&mut self, kind: &'static str, key: &str, at: Tick, detail: String) {
        self.violations.push(Violation {
            kind,
            key: key.to_owned(),
            at,
            detail,
        });
    }

    fn writes(&self, key: &str) -> &'a [Write] {
        self.h.writes.get(key).map_or(&[], Vec::as_slice)
    }

    /// The writes a read of `key` over `[s, e]` may observe.
    fn candidates(&self, key: &str, s: Tick, e: Tick) -> Vec<&'a Write> {
        let ws = self.writes(key);
        // The latest start of an acknowledged write that was over before the read began:
        // anything that could not take effect after that start is superseded.
        let fence = ws
            .iter()
            .filter(|w| w.acked && w.end < s)
            .map(|w| w.start)
            .max();
        ws.iter()
            .filter(|w| w.start <= e && fence.is_none_or(|f| f <= w.late))
            .collect()
    }

    /// The versions a write may have written (following copies), or none for a delete.
    fn contents(&self, w: &'a Write, out: &mut BTreeSet<Vid>, seen: &mut HashSet<*const Write>) {
        if !seen.insert(w as *const Write) {
            return;
        }
        match &w.effect {
            Effect::Put(v) => {
                out.insert(*v);
            }
            Effect::Delete => {}
            Effect::Copy { src } => {
                for c in self.candidates(src, w.start, w.late) {
                    self.contents(c, out, seen);
                }
            }
        }
    }

    fn allowed(&self, key: &str, s: Tick, e: Tick) -> Allowed<'a> {
        let cands = self.candidates(key, s, e);
        let mut versions = BTreeSet::new();
        let mut absent = false;
        for w in &cands {
            match w.effect {
                Effect::Delete => absent = true,
                _ => self.contents(w, &mut versions, &mut HashSet::new()),
            }
        }
        Allowed {
            versions,
            absent,
            cands,
        }
    }

    fn version(&self, id: Vid) -> Option<&'a Arc<Version>> {
        self.h.versions.get(&id)
    }

    fn describe_cands(&self, a: &Allowed<'_>) -> String {
        let mut s = String::new();
        for w in &a.cands {
            let _ = write!(s, "\n      candidate {}", self.describe_write(w));
        }
        if a.cands.is_empty() {
            s.push_str("\n      (no candidate write)");
        }
        s
    }

    fn describe_write(&self, w: &Write) -> String {
        let effect = match &w.effect {
            Effect::Put(v) => {
                let len = self.version(*v).map_or(0, |v| v.len());
                format!("PUT v{v} ({len} bytes)")
            }
            Effect::Copy { src } => format!("COPY from {src:?}"),
            Effect::Delete => "DELETE".into(),
        };
        format!(
            "{effect} by {} [{} .. {}] {}",
            w.what,
            fmt_tick(w.start),
            fmt_tick(w.end),
            if w.acked {
                "acked".to_owned()
            } else {
                format!("maybe (until {})", fmt_tick(w.late))
            }
        )
    }

    /// The key's writes around `[s, e]`, for a report.
    fn history_near(&self, key: &str, s: Tick, e: Tick) -> String {
        let mut out = String::new();
        let ws = self.writes(key);
        let near: Vec<&Write> = ws
            .iter()
            .filter(|w| w.end.saturating_add(3_000_000) >= s && w.start <= e + 1_000_000)
            .collect();
        let earlier = ws.len() - near.len();
        if earlier > 0 {
            let _ = write!(out, "\n      ({earlier} other writes of this key)");
        }
        for w in near {
            let _ = write!(out, "\n      write {}", self.describe_write(w));
        }
        out
    }

    /// Which version each part of an answer names, or why it names none.
    fn identify(&mut self, key: &str, at: Tick, op: &str, a: &ObjectAnswer) -> Option<Vid> {
        let mut parts: Vec<(&'static str, Vid)> = Vec::new();
        let mut problems: Vec<String> = Vec::new();
        let mut kind: &'static str = "mixed-version";
        // Bytes.
        let mut size = a.content_length;
        if let Some(body) = &a.body {
            match a.range {
                None => {
                    size = Some(body.len() as u64);
                    match body_vid(body).and_then(|id| self.version(id)) {
                        Some(v) if v.body == *body => parts.push(("bytes", v.id)),
                        _ => {
                            self.violation(
                                "corrupt-bytes",
                                key,
                                at,
                                format!(
                                    "{op}: {} bytes that are no version's (begin {:?})",
                                    body.len(),
                                    String::from_utf8_lossy(&body[..body.len().min(60)])
                                ),
                            );
                            return None;
                        }
                    }
                }
                Some(_) => {
                    size = a.content_range.map(|(_, _, total)| total);
                }
            }
        }
        // Attributes.
        let meta = a.meta_v.as_deref().and_then(|m| m.parse::<Vid>().ok());
        let ct = a.content_type.as_deref().and_then(vid_of_content_type);
        match (meta, ct) {
            (None, None) => {
                kind = "missing-attributes";
                problems.push(format!(
                    "no attributes of any version (Content-Type {:?}, x-amz-meta-v {:?})",
                    a.content_type, a.meta_v
                ));
            }
            _ => {
                if let Some(m) = meta {
                    parts.push(("x-amz-meta-v", m));
                } else {
                    kind = "missing-attributes";
                    problems.push(format!("x-amz-meta-v missing ({:?})", a.meta_v));
                }
                if let Some(c) = ct {
                    parts.push(("Content-Type", c));
                } else {
                    kind = "missing-attributes";
                    problems.push(format!("Content-Type {:?} is no version's", a.content_type));
                }
            }
        }
        // ETag.
        let etag = a.etag.as_deref().map(unquote);
        match etag.as_deref() {
            Some(e) if is_md5_form(e) => match self.by_etag.get(e) {
                Some(id) => parts.push(("ETag", *id)),
                None => problems.push(format!("ETag {e} is no version's")),
            },
            Some(e) if self.opaque_etags => {
                if let Some(id) = self.learned.get(&(key.to_owned(), e.to_owned())) {
                    parts.push(("ETag (learned)", *id));
                }
            }
            Some(e) => {
                if kind != "missing-attributes" {
                    kind = "bad-etag";
                }
                problems.push(format!("ETag {e:?} is not an MD5 form"));
            }
            None => problems.push("no ETag".into()),
        }
        let ids: BTreeSet<Vid> = parts.iter().map(|(_, id)| *id).collect();
        let mut detail = String::new();
        if ids.len() > 1 {
            kind = "mixed-version";
        }
        let id = (ids.len() == 1).then(|| *ids.iter().next().expect("one id"));
        // Everything else must be that version's.
        if let Some(v) = id.and_then(|id| self.version(id)).cloned() {
            if size != Some(v.len()) {
                problems.push(format!("size {size:?} is not v{}'s {}", v.id, v.len()));
            }
            if a.content_type.as_deref() != Some(v.content_type.as_str()) {
                problems.push(format!("Content-Type {:?}", a.content_type));
            }
            if a.cache_control != v.cache_control {
                problems.push(format!(
                    "Cache-Control {:?}, v{} has {:?}",
                    a.cache_control, v.id, v.cache_control
                ));
            }
            if a.content_disposition != v.content_disposition {
                problems.push(format!(
                    "Content-Disposition {:?}, v{} has {:?}",
                    a.content_disposition, v.id, v.content_disposition
                ));
            }
            if let (Some(r), Some(body)) = (a.range, &a.body) {
                match (r.resolve(v.len()), a.content_range) {
                    (Some((x, y)), Some((ca, cb, _))) if (x, y) == (ca, cb) => {
                        if v.body[x as usize..=y as usize] != body[..] {
                            problems.push(format!(
                                "the bytes of {} are not v{}'s bytes {x}-{y}",
                                r.header(),
                                v.id
                            ));
                        }
                    }
                    (want, got) => problems.push(format!(
                        "{} of v{} ({} bytes) should serve {want:?}, Content-Range says {got:?}",
                        r.header(),
                        v.id,
                        v.len()
                    )),
                }
            }
            if let Some(e) = etag.as_deref()
                && self.opaque_etags
                && !is_md5_form(e)
            {
                self.learned.insert((key.to_owned(), e.to_owned()), v.id);
            }
        } else if ids.is_empty() && problems.is_empty() {
            problems.push("no part names a version".into());
        }
        if problems.is_empty() && id.is_some() {
            return id;
        }
        if parts.is_empty() {
            let _ = write!(detail, "{op} answered an object that names no version");
        } else {
            let _ = write!(
                detail,
                "{op} answered one object made of {}",
                parts
                    .iter()
                    .map(|(p, id)| format!("{p} of v{id}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if !problems.is_empty() {
            let _ = write!(detail, "; {}", problems.join("; "));
        }
        let _ = write!(
            detail,
            "\n      answer: Content-Type {:?}, x-amz-meta-v {:?}, ETag {:?}, size {size:?}, Cache-Control {:?}, Content-Disposition {:?}",
            a.content_type, a.meta_v, a.etag, a.cache_control, a.content_disposition
        );
        self.violation(kind, key, at, detail);
        None
    }

    /// A version that is no candidate: stale (or resurrected), with the writes that
    /// superseded it.
    fn stale(
        &mut self,
        key: &str,
        (s, e): (Tick, Tick),
        op: &str,
        id: Vid,
        a: &Allowed<'_>,
        listed: bool,
    ) {
        let v = self.version(id).cloned();
        // The documented window: the source's own (seeded) object, read back after the
        // key was deleted (the last write acknowledged before the read is a delete; a
        // write before that delete does not matter: the mover's copy of the seed lands in
        // the destination once the delete has emptied it).
        let ws = self.writes(key);
        let seed_write = ws
            .iter()
            .find(|w| w.effect == Effect::Put(id) && w.what == "seed");
        let documented = v.as_ref().is_some_and(|v| v.seed && v.key == key)
            && seed_write.is_some_and(|sw| {
                ws.iter()
                    .filter(|w| w.acked && w.end < s && w.start > sw.late)
                    .max_by_key(|w| w.end)
                    .is_some_and(|w| w.effect == Effect::Delete)
            });
        let kind = match (documented, listed) {
            (true, false) => "resurrected-seed-read",
            (true, true) => "resurrected-seed-listed",
            (false, false) => "stale-read",
            (false, true) => "stale-listing",
        };
        let origin = match &v {
            Some(v) if v.seed && v.key == key => " (the seeded version)".to_owned(),
            Some(v) if v.seed => format!(" (the seeded version of {:?}, copied)", v.key),
            Some(v) if v.key != key => format!(" (a version of {:?}, copied)", v.key),
            _ => String::new(),
        };
        let detail = format!(
            "{op} over [{} .. {}] returned v{id}{origin}, which is no candidate{}{}",
            fmt_tick(s),
            fmt_tick(e),
            self.describe_cands(a),
            self.history_near(key, s, e)
        );
        self.violation(kind, key, s, detail);
    }

    pub fn check_read(&mut self, r: &Read) {
        *self.stats.entry("reads").or_default() += 1;
        let a = self.allowed(&r.key, r.start, r.end);
        match &r.result {
            ReadResult::NotFound => {
                if !a.absent {
                    let detail = format!(
                        "{} over [{} .. {}] answered NoSuchKey, but the key was live throughout{}{}",
                        r.op,
                        fmt_tick(r.start),
                        fmt_tick(r.end),
                        self.describe_cands(&a),
                        self.history_near(&r.key, r.start, r.end)
                    );
                    self.violation("false-not-found", &r.key, r.start, detail);
                }
            }
            ReadResult::InvalidRange(range) => {
                let ok = a.versions.iter().any(|id| {
                    self.version(*id)
                        .is_some_and(|v| range.resolve(v.len()).is_none())
                });
                if !ok {
                    let detail = format!(
                        "{} {} answered InvalidRange, but every candidate is long enough{}",
                        r.op,
                        range.header(),
                        self.describe_cands(&a)
                    );
                    self.violation("bad-range-error", &r.key, r.start, detail);
                }
            }
            ReadResult::Object(ans) => {
                if let Some(id) = self.identify(&r.key, r.start, &r.op, ans)
                    && !a.versions.contains(&id)
                {
                    self.stale(&r.key, (r.start, r.end), &r.op, id, &a, false);
                }
            }
        }
    }

    /// CopyObject answered NoSuchKey: allowed only when its source may have been absent.
    pub fn check_copy_miss(&mut self, src: &str, dst: &str, s: Tick, e: Tick) {
        let a = self.allowed(src, s, e);
        if !a.absent {
            let detail = format!(
                "CopyObject {src:?} -> {dst:?} over [{} .. {}] answered NoSuchKey, but its source was live throughout (the answer names no key: the source's read or the target's write failed as missing){}{}",
                fmt_tick(s),
                fmt_tick(e),
                self.describe_cands(&a),
                self.history_near(src, s, e)
            );
            self.violation("copy-not-found", src, s, detail);
        }
    }

    /// Whether a listed entry is version `v`.
    fn entry_is(&self, key: &str, entry: &ListEntry, v: &Version) -> bool {
        if entry.size != v.len() {
            return false;
        }
        match entry.etag.as_deref().map(unquote) {
            Some(e) if is_md5_form(&e) => v.etag_forms().contains(&e),
            Some(e) if self.opaque_etags => self
                .learned
                .get(&(key.to_owned(), e))
                .is_none_or(|id| *id == v.id),
            _ => false,
        }
    }

    pub fn check_listing(&mut self, l: &Listing) {
        *self.stats.entry("listings").or_default() += 1;
        // Sorted, unique, inside the prefix.
        let mut last: Option<&str> = None;
        for p in &l.pages {
            for e in &p.entries {
                if !e.key.starts_with(&l.prefix) {
                    self.violation(
                        "listing-order",
                        &e.key,
                        p.start,
                        format!("{}: key outside prefix {:?}", l.what, l.prefix),
                    );
                }
                if let Some(prev) = last
                    && prev >= e.key.as_str()
                {
                    self.violation(
                        "listing-order",
                        &e.key,
                        p.start,
                        format!("{}: {:?} listed after {prev:?}", l.what, e.key),
                    );
                }
                last = Some(&e.key);
            }
        }
        let keys: Vec<&String> = self
            .h
            .writes
            .keys()
            .filter(|k| k.starts_with(&l.prefix))
            .collect();
        let mut after: Option<String> = None;
        for (i, p) in l.pages.iter().enumerate() {
            *self.stats.entry("pages").or_default() += 1;
            if p.truncated && p.entries.is_empty() {
                // Without a delimiter a truncated page lists something; this one's range
                // is unknown, so it is not checked (and the next page starts where it did).
                self.violation(
                    "listing-order",
                    &l.prefix,
                    p.start,
                    format!("{} page {i}: truncated, yet empty", l.what),
                );
                continue;
            }
            let upper = if p.truncated {
                p.entries.last().map(|e| e.key.clone())
            } else {
                None
            };
            let listed: HashMap<&str, &ListEntry> =
                p.entries.iter().map(|e| (e.key.as_str(), e)).collect();
            for e in &p.entries {
                if !self.h.writes.contains_key(&e.key) {
                    self.violation(
                        "listing-unknown-key",
                        &e.key,
                        p.start,
                        format!("{} page {i}: a key no client wrote", l.what),
                    );
                }
            }
            for key in &keys {
                let in_range = after.as_deref().is_none_or(|a| key.as_str() > a)
                    && upper.as_deref().is_none_or(|u| key.as_str() <= u);
                if !in_range {
                    continue;
                }
                let a = self.allowed(key, p.start, p.end);
                match listed.get(key.as_str()) {
                    None if !a.absent && !a.versions.is_empty() => {
                        let detail = format!(
                            "{} (prefix {:?}, max-keys {}) page {i} over [{} .. {}] covers ({:?} .. {:?}] but omits this key, live throughout{}{}",
                            l.what,
                            l.prefix,
                            l.max_keys,
                            fmt_tick(p.start),
                            fmt_tick(p.end),
                            after,
                            upper,
                            self.describe_cands(&a),
                            self.history_near(key, p.start, p.end)
                        );
                        self.violation("listing-missing", key, p.start, detail);
                    }
                    None => {}
                    Some(entry) => {
                        let ok = a.versions.iter().any(|id| {
                            self.version(*id)
                                .is_some_and(|v| self.entry_is(key, entry, v))
                        });
                        if ok {
                            continue;
                        }
                        // Which version is it, if any?
                        let any = self
                            .h
                            .versions
                            .values()
                            .find(|v| self.entry_is(key, entry, v))
                            .map(|v| v.id);
                        let sized = a
                            .versions
                            .iter()
                            .any(|id| self.version(*id).is_some_and(|v| v.len() == entry.size));
                        match any {
                            Some(id) => {
                                let op = format!("{} page {i}", l.what);
                                self.stale(key, (p.start, p.end), &op, id, &a, true);
                            }
                            None => {
                                let detail = format!(
                                    "{} page {i} over [{} .. {}]: entry (size {}, ETag {:?}) is no version's{}{}",
                                    l.what,
                                    fmt_tick(p.start),
                                    fmt_tick(p.end),
                                    entry.size,
                                    entry.etag,
                                    if sized {
                                        " (a candidate has that size: the ETag is foreign)"
                                    } else {
                                        ""
                                    },
                                    self.describe_cands(&a)
                                );
                                let kind = if sized {
                                    "listing-bad-etag"
                                } else {
                                    "listing-bad-entry"
                                };
                                self.violation(kind, key, p.start, detail);
                            }
                        }
                    }
                }
            }
            if let Some(u) = upper {
                after = Some(u);
            }
        }
    }

    /// Checks everything recorded, in an order that learns opaque ETags first.
    pub fn check_all(&mut self) {
        for (key, etag, id) in &self.h.acked_etags {
            let e = unquote(etag);
            if self.opaque_etags && !is_md5_form(&e) {
                self.learned.insert((key.clone(), e), *id);
            }
        }
        let h = self.h;
        for r in &h.reads {
            self.check_read(r);
        }
        for (src, dst, s, e) in &h.copy_misses {
            self.check_copy_miss(src, dst, *s, *e);
        }
        for l in &h.listings {
            self.check_listing(l);
        }
    }

    /// The final state of one member, read after every write ended: `listed` are the keys
    /// its listing holds.
    pub fn check_final_presence(&mut self, member: &str, listed: &BTreeSet<String>, at: Tick) {
        for key in self.h.writes.keys() {
            let a = self.allowed(key, at, at);
            let present = listed.contains(key);
            if !present && !a.absent {
                let detail = format!(
                    "not in {member} at the end, but its final state is a version{}{}",
                    self.describe_cands(&a),
                    self.history_near(key, FOREVER - 1, FOREVER - 1)
                );
                self.violation("final-missing", key, at, detail);
            }
            if present && a.versions.is_empty() {
                let detail = format!(
                    "in {member} at the end, but the key was deleted{}",
                    self.describe_cands(&a)
                );
                self.violation("final-resurrected", key, at, detail);
            }
        }
        for key in listed {
            if !self.h.writes.contains_key(key) {
                self.violation(
                    "final-unknown-key",
                    key,
                    at,
                    format!("in {member}: a key no client wrote"),
                );
            }
        }
    }

    pub fn push(&mut self, v: Violation) {
        self.violations.push(v);
    }
}
