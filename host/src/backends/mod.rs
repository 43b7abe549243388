//! Backends: one named location in one object store each, behind the [`Store`] trait.
//!
//! Remote kinds (S3, Azure, GCS) and `memory` go through `object_store`; `fs` has its own
//! implementation because `object_store`'s local store keeps no attributes and has no
//! resumable multipart API. The registry also tracks health and latency per backend.

mod azure;
mod fs;
mod gcs;
mod metered;
mod objstore;
mod rest;
mod s3direct;
pub use s3direct::{NativePage, NativeRow, S3Native};
mod sigv4;
#[cfg(test)]
pub(crate) mod testing;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::config::{BackendConfig, Config, DynamicBuckets};
use crate::model::{
    Attrs, Body, ByteRange, ByteStream, Declared, Error, GetOutcome, MemberView, ObjectInfo,
    ObjectSummary, PutOutcome, RESERVED_PREFIX, ReadConditions, Result, WriteCondition,
};

pub use fs::{FsStore, MARKER_FILE, create_bucket_dir, recover_retired, retire_bucket_dir};
pub use objstore::ObjectStoreBackend;

/// One part of a multipart upload as the backend knows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PartRef {
    /// What the backend needs to assemble the part (S3 ETag, staged object name, ...).
    pub content_id: String,
}

/// The operations the router needs from one backend location. Keys are the client's keys;
/// the store applies its own prefix.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Streams `body` into `key`. Small bodies go in one request, larger ones as a multipart
    /// upload of `part_size` parts; an error item in `body` aborts and leaves nothing behind.
    /// With `declared.len`, a store that can pass a body of known length straight through
    /// (S3 with static credentials) does, whatever its size; a `declared.md5` that the
    /// bytes do not match fails the write with [`Error::BadDigest`].
    async fn put(
        &self,
        key: &str,
        body: Body,
        declared: Declared,
        attrs: &Attrs,
        cond: &WriteCondition,
        part_size: u64,
    ) -> Result<PutOutcome>;

    /// Reads an object (or only its metadata when `head`).
    async fn get(
        &self,
        key: &str,
        range: Option<ByteRange>,
        cond: &ReadConditions,
        head: bool,
    ) -> Result<(GetOutcome, Option<ByteStream>)>;

    /// Deletes `key`; deleting a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Keys under `prefix` strictly after `offset`, in ascending byte order, excluding the
    /// reserved namespace.
    fn list(&self, prefix: &str, offset: Option<&str>)
    -> BoxStream<'static, Result<ObjectSummary>>;

    /// Server-side copy inside this store, keeping the source's attributes.
    async fn copy(&self, from: &str, to: &str) -> Result<()>;

    /// Starts a multipart upload and returns the backend's own upload id.
    async fn mpu_create(&self, key: &str, attrs: &Attrs) -> Result<String>;
    /// Uploads one part. `len` is the part's length when known in advance: a store that
    /// can stream a part of known length (S3 with static credentials) does, others read
    /// the part first.
    async fn mpu_put_part(
        &self,
        key: &str,
        upload: &str,
        nonce: &str,
        part_idx: usize,
        body: Body,
        len: Option<u64>,
    ) -> Result<PartRef>;
    /// Completes with parts in order; `attrs` are the ones given at creation, `etag` the
    /// S3 ETag of the upload (`<md5 of the part md5s>-<parts>`), which a store whose own
    /// multipart ETag differs keeps with the object.
    async fn mpu_complete(
        &self,
        key: &str,
        upload: &str,
        nonce: &str,
        parts: Vec<PartRef>,
        attrs: &Attrs,
        etag: &str,
    ) -> Result<PutOutcome>;
    async fn mpu_abort(&self, key: &str, upload: &str, nonce: &str) -> Result<()>;

    /// Whether this store keeps object tags ([`Attrs::tags`]): a store that does not
    /// refuses a write that sets some (`NotImplemented`), and its objects' tags are unknown.
    fn keeps_tags(&self) -> bool {
        false
    }

    /// All the tags of `key`, those a read leaves out included (see
    /// [`ObjectInfo::untold_tags`]). `NotFound` when there is no `key`.
    async fn get_tags(&self, key: &str) -> Result<crate::model::Tags> {
        let (found, _) = self
            .get(key, None, &ReadConditions::default(), true)
            .await?;
        Ok(found.info.attrs.tags)
    }

    /// Replaces the tags of `key` without rewriting its bytes where the backend allows,
    /// keeping its ETag and Last-Modified (as S3 does). `NotFound` when there is no `key`.
    async fn put_tags(&self, key: &str, tags: &crate::model::Tags) -> Result<()> {
        let _ = (key, tags);
        Err(Error::NotImplemented(
            "object tags are not supported on this member's kind yet".into(),
        ))
    }

    /// Whether this store keeps object ACLs ([`Attrs::acl`]): one that does not refuses a
    /// write that sets one other than the bucket owner's default (`NotImplemented`).
    fn keeps_acls(&self) -> bool {
        false
    }

    /// Replaces the ACL of `key` (`None`: the default), keeping its bytes, ETag and
    /// Last-Modified, as PutObjectAcl does. `NotFound` when there is no `key`.
    async fn put_acl(&self, key: &str, acl: Option<&crate::model::ObjectAcl>) -> Result<()> {
        let _ = (key, acl);
        Err(Error::NotImplemented(
            "object ACLs are not supported on this member's kind".into(),
        ))
    }

    /// The backend's own versioning, where the gateway passes it through (S3 with static
    /// credentials); `None` where the gateway keeps versions itself.
    fn native_versions(&self) -> Option<crate::backends::S3Native> {
        None
    }

    /// Small bookkeeping objects under the reserved prefix (`path` is relative to it).
    async fn put_internal(&self, path: &str, data: Bytes) -> Result<()>;
    async fn get_internal(&self, path: &str) -> Result<Option<Bytes>>;
    async fn delete_internal(&self, path: &str) -> Result<()>;
    /// Paths (relative to the reserved prefix) under `prefix`, sorted.
    async fn list_internal(&self, prefix: &str) -> Result<Vec<String>>;

    /// [`Store::list_internal`] with each object's size, ETag and Last-Modified, where one
    /// listing gives them (`fs` reads them from the directory walk, memory from its
    /// entries); `None` where that would cost a request per object.
    async fn list_internal_rows(&self, prefix: &str) -> Result<Option<Vec<ObjectSummary>>> {
        let _ = prefix;
        Ok(None)
    }
}

/// A configured backend with its health state.
pub struct Backend {
    pub name: String,
    pub kind: &'static str,
    pub labels: Vec<(String, String)>,
    pub store: Arc<dyn Store>,
    unhealthy_for: Duration,
    /// How long a read waits for this backend while it is marked unhealthy.
    probe: Duration,
    epoch: Instant,
    /// Milliseconds since `epoch` until which the backend counts as unhealthy (0: healthy).
    unhealthy_until_ms: AtomicU64,
    /// Exponentially weighted latency of successful calls, in microseconds (0: unknown).
    latency_us: AtomicU64,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Backend {
    pub fn new(
        name: String,
        kind: &'static str,
        labels: &BTreeMap<String, String>,
        store: Arc<dyn Store>,
        unhealthy_for: Duration,
    ) -> Self {
        Self {
            name,
            kind,
            labels: labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            store,
            unhealthy_for,
            probe: DEFAULT_PROBE,
            epoch: Instant::now(),
            unhealthy_until_ms: AtomicU64::new(0),
            latency_us: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Bounds a read's wait for this backend while it is marked unhealthy (its connect
    /// timeout, for remote kinds).
    pub fn with_probe(mut self, probe: Duration) -> Self {
        self.probe = probe;
        self
    }

    /// Counts this backend's calls and bytes in `metrics` under the label `label` (its
    /// name; one shared label for the many buckets of `[dynamic_buckets]`).
    pub fn metered(mut self, metrics: &Arc<crate::metrics::Metrics>, label: &str) -> Self {
        self.store = Arc::new(metered::Metered::new(self.store, metrics.clone(), label));
        self
    }

    pub fn probe(&self) -> Duration {
        self.probe
    }

    pub fn healthy(&self) -> bool {
        self.unhealthy_until_ms.load(Ordering::Relaxed) <= self.now_ms()
    }

    pub fn mark_unhealthy(&self) {
        let until = self
            .now_ms()
            .saturating_add(u64::try_from(self.unhealthy_for.as_millis()).unwrap_or(u64::MAX));
        self.unhealthy_until_ms
            .store(until.max(1), Ordering::Relaxed);
    }

    /// Records the outcome of one call: failures of the backend mark it unhealthy; any
    /// answer of its own (an object, or not-found) marks it healthy again and feeds the
    /// latency estimate policies see. Errors caused by the request are neither.
    pub fn observe<T>(&self, started: Instant, result: &Result<T>) {
        match result {
            Err(Error::Unavailable { .. }) => self.mark_unhealthy(),
            Err(e) if !matches!(e, Error::NotFound) => {}
            _ => {
                self.unhealthy_until_ms.store(0, Ordering::Relaxed);
                let sample = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                let old = self.latency_us.load(Ordering::Relaxed);
                let new = if old == 0 {
                    sample
                } else {
                    (old * 7 + sample) / 8
                };
                self.latency_us.store(new.max(1), Ordering::Relaxed);
            }
        }
    }

    /// Completes `info` (of `key`, as read from this backend) with the tags the read only
    /// counted ([`ObjectInfo::untold_tags`]): one more request, for an object that has
    /// tags only. Between the read and this request a client may have replaced the
    /// object: the tags are then the newer object's, as S3's own GetObjectTagging after a
    /// GET could answer.
    pub async fn tell_tags(&self, key: &str, info: &mut ObjectInfo) -> Result<()> {
        if info.untold_tags == 0 {
            return Ok(());
        }
        let started = Instant::now();
        let r = self.store.get_tags(key).await;
        self.observe(started, &r);
        info.attrs.tags = r?;
        info.untold_tags = 0;
        Ok(())
    }

    pub fn view(&self) -> MemberView<'_> {
        let latency = self.latency_us.load(Ordering::Relaxed);
        MemberView {
            name: self.name.as_str().into(),
            kind: self.kind,
            labels: self.labels.as_slice().into(),
            healthy: self.healthy(),
            latency_us: (latency != 0).then_some(latency),
        }
    }
}

/// A read's wait for an unhealthy backend without a connect timeout of its own.
const DEFAULT_PROBE: Duration = Duration::from_secs(5);

/// Every backend by name, built once per configuration snapshot.
#[derive(Debug, Default)]
pub struct Registry {
    backends: BTreeMap<String, Arc<Backend>>,
    /// The [`settings_digest`] of each configured backend.
    settings: BTreeMap<String, String>,
}

impl Registry {
    pub fn build(
        config: &Config,
        metrics: &Arc<crate::metrics::Metrics>,
    ) -> Result<Self, crate::config::ConfigError> {
        Self::rebuild(config, metrics, None)
    }

    /// Builds the backends of `config`, taking from `previous` (the registry of the
    /// configuration it replaces) each backend configured with the same name and the same
    /// settings (secrets and CA bundles by their content): a reload keeps its health
    /// state, so that a backend known to be down is not tried again by every request after
    /// an unrelated change, as well as its connections and, for `memory`, its objects.
    pub fn rebuild(
        config: &Config,
        metrics: &Arc<crate::metrics::Metrics>,
        previous: Option<&Registry>,
    ) -> Result<Self, crate::config::ConfigError> {
        let mut backends = BTreeMap::new();
        let mut settings = BTreeMap::new();
        for (name, cfg) in &config.backends {
            let digest = settings_digest(name, cfg)?;
            let kept = previous
                .filter(|p| p.settings.get(name) == Some(&digest))
                .and_then(|p| p.backends.get(name));
            let backend = match kept {
                Some(b) => b.clone(),
                None => Arc::new(build_backend(name, cfg)?.metered(metrics, name)),
            };
            backends.insert(name.clone(), backend);
            settings.insert(name.clone(), digest);
        }
        Ok(Self { backends, settings })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Backend>> {
        self.backends.get(name)
    }

    /// Every configured backend, by name.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Backend>> {
        self.backends.values()
    }

    pub fn insert(&mut self, backend: Backend) {
        self.backends
            .insert(backend.name.clone(), Arc::new(backend));
    }
}

/// What tells two configurations of a backend apart: all its settings, secrets by value
/// (their `Debug` form hides the value), hashed so that no secret is kept in clear here.
fn settings_digest(name: &str, cfg: &BackendConfig) -> Result<String, crate::config::ConfigError> {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(format!("{cfg:?}"));
    for (field, secret) in cfg.secrets() {
        let value = secret.resolve(&format!("backends.{name}.{field}"))?;
        h.update([0u8]);
        h.update(field);
        h.update([0u8]);
        h.update(value);
    }
    // The bundle's content, not only its path: a CA rotated in place is new trust, and
    // the client built with the old one must go (an unreadable file was refused by
    // validation; one that vanished since fails the build below, which says why).
    if let Some(path) = cfg.ca_bundle() {
        h.update([1u8]);
        h.update(std::fs::read(path).unwrap_or_default());
    }
    Ok(hex::encode(h.finalize()))
}

fn build_backend(name: &str, cfg: &BackendConfig) -> Result<Backend, crate::config::ConfigError> {
    let common = cfg.common();
    let store: Arc<dyn Store> = match cfg {
        BackendConfig::Fs(fs) => {
            Arc::new(FsStore::new(fs.root.clone(), common.prefix.clone(), name)?)
        }
        _ => Arc::new(ObjectStoreBackend::from_config(name, cfg)?),
    };
    Ok(Backend::new(
        name.to_owned(),
        cfg.kind_name(),
        &common.labels,
        store,
        common.network.unhealthy_for,
    )
    .with_probe(common.network.connect_timeout))
}

/// Builds the single-member backend behind a bucket made by CreateBucket.
pub fn dynamic_backend(template: &DynamicBuckets, bucket: &str) -> Result<Backend> {
    let name = format!("dyn-{bucket}");
    match template {
        DynamicBuckets::Fs { root, labels } => {
            let store = FsStore::new(root.join(bucket), None, &name).map_err(Error::internal)?;
            Ok(Backend::new(
                name,
                "fs",
                labels,
                Arc::new(store),
                Duration::from_secs(10),
            ))
        }
        DynamicBuckets::Memory { labels } => {
            let store = ObjectStoreBackend::memory(&name, None);
            Ok(Backend::new(
                name,
                "memory",
                labels,
                Arc::new(store),
                Duration::from_secs(10),
            ))
        }
        DynamicBuckets::S3(_) | DynamicBuckets::Azure(_) | DynamicBuckets::Gcs(_) => {
            let remote = template.remote().expect("a remote template");
            build_backend(&name, &remote.below(bucket)).map_err(Error::internal)
        }
    }
}

/// The store holding every bucket of a remote `[dynamic_buckets]` template, each under
/// a prefix of its name: where CreateBucket's buckets are found (by their records).
pub fn dynamic_root(
    template: &DynamicBuckets,
) -> Result<Option<Backend>, crate::config::ConfigError> {
    template
        .remote()
        .map(|cfg| build_backend("dynamic_buckets", &cfg))
        .transpose()
}

/// Checks that a client key can be stored faithfully in every backend kind: object_store
/// paths and filesystem names cannot hold empty, `.` or `..` segments or control
/// characters, and the reserved namespace is not the client's. A trailing `/` (a folder
/// marker) is a key like another: each store gives it a representation of its own.
pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidArgument("the key must not be empty".into()));
    }
    if key.len() > 1024 {
        return Err(Error::KeyTooLong(format!(
            "{} bytes; the limit is 1024",
            key.len()
        )));
    }
    if key.starts_with(RESERVED_PREFIX) || key == RESERVED_PREFIX.trim_end_matches('/') {
        return Err(Error::InvalidArgument(format!(
            "keys under {RESERVED_PREFIX} are reserved by Switchyard"
        )));
    }
    if key.starts_with('/') || key.contains("//") {
        return Err(Error::InvalidArgument(
            "keys with a leading '/' or an empty segment ('//') are not supported".into(),
        ));
    }
    for segment in key.strip_suffix('/').unwrap_or(key).split('/') {
        if segment == "." || segment == ".." {
            return Err(Error::InvalidArgument(
                "keys with '.' or '..' segments are not supported".into(),
            ));
        }
    }
    if key.chars().any(|c| c.is_control()) {
        return Err(Error::InvalidArgument(
            "keys must not contain control characters".into(),
        ));
    }
    Ok(())
}

/// Fails `body` with [`Error::BadDigest`] at its end, before the end reaches the store,
/// unless its MD5 is `want`: for stores whose backend cannot check a declared MD5.
pub(crate) fn md5_checked(body: Body, want: Option<[u8; 16]>) -> Body {
    use md5::{Digest, Md5};
    let Some(want) = want else { return body };
    crate::model::tapped(
        body,
        (Md5::new(), want),
        |(h, _), chunk| h.update(chunk),
        |(h, want)| {
            let got: [u8; 16] = h.finalize().into();
            if got == want {
                Ok(())
            } else {
                Err(Error::BadDigest)
            }
        },
    )
}

/// An ETag as the MD5 it spells, when it has the form of one (single-part uploads to S3
/// and GCS, Switchyard's fs backend). Whether it is one is the store's to say.
pub(crate) fn etag_md5(etag: &str) -> Option<[u8; 16]> {
    let e = etag.trim_matches('"');
    let mut md5 = [0u8; 16];
    (e.len() == 32 && hex::decode_to_slice(e, &mut md5).is_ok()).then_some(md5)
}

/// Whether `key` is a folder marker: a key ending in `/`, which object_store paths cannot
/// name (they drop a trailing `/`).
pub(crate) fn is_marker(key: &str) -> bool {
    key.ends_with('/')
}

/// Whether `etag` has the form S3 gives a multipart upload: 32 hex digits, `-`, a count.
pub(crate) fn is_multipart_etag(etag: &str) -> bool {
    let e = etag.trim_matches('"');
    e.split_once('-').is_some_and(|(md5, n)| {
        md5.len() == 32
            && md5.bytes().all(|b| b.is_ascii_hexdigit())
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
    })
}

/// The S3 ETag of a multipart upload of parts with these MD5s (hex, as the parts'
/// ETags): the MD5 of their binary MD5s, `-`, their number.
pub fn multipart_etag<'a>(part_md5s: impl IntoIterator<Item = &'a str>) -> Result<String> {
    use md5::{Digest, Md5};
    let mut all = Md5::new();
    let mut n = 0usize;
    for hex_md5 in part_md5s {
        let md5 = etag_md5(hex_md5)
            .ok_or_else(|| Error::internal(format!("part ETag {hex_md5:?} is not an MD5")))?;
        all.update(md5);
        n += 1;
    }
    Ok(format!("{}-{n}", hex::encode(all.finalize())))
}

/// The ETag a store keeps for a write whose bytes have MD5 `md5`: the declared multipart
/// ETag of a copy of a multipart upload, else the MD5.
pub(crate) fn etag_to_keep(declared: &Declared, md5: &[u8; 16]) -> String {
    match declared.etag.as_deref().map(unquote_etag) {
        Some(e) if is_multipart_etag(&e) => e,
        _ => hex::encode(md5),
    }
}

/// Refuses attributes that name Switchyard's own metadata.
pub fn check_attrs(attrs: &Attrs) -> Result<()> {
    for reserved in [
        crate::model::ETAG_META,
        crate::checksum::CHECKSUM_META,
        crate::model::VERSION_META,
        crate::model::TAGS_META,
    ] {
        if attrs.metadata.contains_key(reserved) {
            return Err(Error::InvalidArgument(format!(
                "x-amz-meta-{reserved} is reserved by Switchyard"
            )));
        }
    }
    Ok(())
}

/// The request headers that set an object's attributes: `standard` names the headers of
/// Content-Type, Cache-Control, Content-Disposition, Content-Encoding and
/// Content-Language, in that order; `meta` makes a metadata header's name.
pub(crate) fn attr_headers(
    attrs: &Attrs,
    standard: [&str; 5],
    meta: impl Fn(&str) -> String,
) -> Vec<(String, String)> {
    let values = [
        &attrs.content_type,
        &attrs.cache_control,
        &attrs.content_disposition,
        &attrs.content_encoding,
        &attrs.content_language,
    ];
    let mut headers: Vec<(String, String)> = standard
        .iter()
        .zip(values)
        .filter_map(|(name, v)| Some(((*name).to_owned(), v.clone()?)))
        .collect();
    headers.extend(attrs.metadata.iter().map(|(k, v)| (meta(k), v.clone())));
    headers
}

/// The standard attributes' header names in S3 and GCS.
pub(crate) const STANDARD_ATTR_HEADERS: [&str; 5] = [
    "content-type",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
];

/// ETags travel quoted in HTTP and bare inside Switchyard.
pub fn unquote_etag(s: &str) -> String {
    objstore::unquote(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reload keeps each backend configured as before, health state and all, and builds
    /// anew the ones whose settings (a secret included) changed.
    #[test]
    fn a_rebuild_keeps_the_backends_configured_as_before() {
        let config = |label: &str, secret: &str| {
            Config::from_toml(&format!(
                r#"version = 1
[backends.same]
kind = "memory"
[backends.relabelled]
kind = "memory"
labels = {{ tier = "{label}" }}
[backends.rekeyed]
kind = "s3"
bucket = "b"
endpoint = "http://127.0.0.1:1"
allow_http = true
access_key_id = "AKID"
secret_access_key = "{secret}"
"#
            ))
            .unwrap()
        };
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let before = Registry::build(&config("hot", "one"), &metrics).unwrap();
        for b in before.backends.values() {
            b.mark_unhealthy();
        }
        let after = Registry::rebuild(&config("cold", "two"), &metrics, Some(&before)).unwrap();
        let same = |name: &str| Arc::ptr_eq(&before.backends[name], &after.backends[name]);
        assert!(same("same"));
        assert!(!after.backends["same"].healthy(), "its health was reset");
        assert!(!same("relabelled"));
        assert!(!same("rekeyed"), "a changed secret went unnoticed");
        assert!(after.backends["rekeyed"].healthy());
        // Unchanged again: kept again.
        let again = Registry::rebuild(&config("cold", "two"), &metrics, Some(&after)).unwrap();
        assert!(Arc::ptr_eq(
            &after.backends["rekeyed"],
            &again.backends["rekeyed"]
        ));
    }

    /// A CA bundle replaced in place (a rotated certificate authority, same path) is a
    /// changed setting: the reload that follows (SIGHUP) builds the backend anew, with the
    /// new bundle, rather than keep the one that trusts the old authority.
    #[test]
    fn a_rebuild_notices_a_changed_ca_bundle() {
        let dir = std::env::temp_dir().join(format!("sy-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bundle = dir.join("ca.pem");
        let ca = |name: &str| {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.self_signed(&key).unwrap().pem()
        };
        std::fs::write(&bundle, ca("old-ca")).unwrap();
        let config = Config::from_toml(&format!(
            r#"version = 1
[backends.tls]
kind = "s3"
bucket = "b"
endpoint = "https://127.0.0.1:1"
access_key_id = "AKID"
secret_access_key = "secret"
ca_bundle = {:?}
"#,
            bundle.display().to_string()
        ))
        .unwrap();
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let before = Registry::build(&config, &metrics).unwrap();
        let again = Registry::rebuild(&config, &metrics, Some(&before)).unwrap();
        assert!(Arc::ptr_eq(&before.backends["tls"], &again.backends["tls"]));
        std::fs::write(&bundle, ca("new-ca")).unwrap();
        let after = Registry::rebuild(&config, &metrics, Some(&again)).unwrap();
        assert!(
            !Arc::ptr_eq(&again.backends["tls"], &after.backends["tls"]),
            "the new CA bundle went unnoticed"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn multipart_etags() {
        // Two parts "a" and "b": the MD5 of their MD5s.
        let a = hex::encode(<md5::Md5 as md5::Digest>::digest(b"a"));
        let b = hex::encode(<md5::Md5 as md5::Digest>::digest(b"b"));
        let e = multipart_etag([a.as_str(), b.as_str()]).unwrap();
        assert_eq!(e, "96e024ba2074fe77e8e965ba43a704be-2");
        assert!(is_multipart_etag(&e));
        assert!(is_multipart_etag(&format!("\"{e}\"")));
        assert!(!is_multipart_etag(&a));
        assert!(!is_multipart_etag("0x8D9-2"));
        assert!(multipart_etag(["nope"]).is_err());
    }

    #[test]
    fn keys() {
        assert!(check_key("a/b/c.txt").is_ok());
        assert!(check_key("ünïcødé/日本語 key+with spaces").is_ok());
        assert!(check_key(&"k".repeat(1024)).is_ok());
        // Folder markers.
        assert!(check_key("a/").is_ok());
        assert!(check_key("a/b/").is_ok());
        assert!(matches!(
            check_key(&"k".repeat(1025)),
            Err(Error::KeyTooLong(_))
        ));
        for bad in [
            "",
            "a/../b",
            "../x",
            "./a",
            "a//b",
            "/a",
            "/",
            "a//",
            "a/../",
            ".switchyard/x",
            ".switchyard/",
            "a\u{0}b",
            "a\nb",
        ] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
    }
}
