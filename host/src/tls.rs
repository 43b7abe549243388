//! TLS: the listeners' certificate, kept current while the engine runs, and the PEM files
//! TLS reads (certificate chains, private keys, the CA bundles backends trust).
//!
//! Certificates are renewed under a running engine: cert-manager and certbot replace the
//! files by rename, Kubernetes swaps a symlink to a new directory of them. Every new
//! handshake asks [`CurrentCert`] for the certificate, so a reload is one pointer swap:
//! connections already open keep the session they have, new ones get the new pair. A new
//! pair is used only once both files parse and the key matches the certificate; anything
//! else keeps the pair being served.
//!
//! This module depends on nothing else in the crate: `config` uses it to check CA bundles,
//! the listeners and the backends to build their TLS.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, info, warn};

/// Quiet time after a change in a watched directory before the files are read: a renewal
/// writes a certificate and a key, often as several steps each, and the pair is only
/// worth reading once all of them are done.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// The files are also compared this often without any event: file systems where change
/// notification does not work (network mounts, some container volumes) still get their
/// renewals, at most this late.
const RECHECK: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file was read but does not hold what it should.
    #[error("{}: {message}", path.display())]
    Content { path: PathBuf, message: String },
    #[error(
        "the private key in {} does not belong to the certificate in {}",
        key.display(),
        cert.display()
    )]
    Mismatch { cert: PathBuf, key: PathBuf },
}

fn content(path: &Path, message: impl Into<String>) -> TlsError {
    TlsError::Content {
        path: path.to_owned(),
        message: message.into(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The certificates of a PEM file (a chain, leaf first, or a CA bundle); blocks of other
/// kinds (a private key in the same file) are passed over. Each certificate must be X.509
/// DER whose fields [`CertSummary`] can read, so a corrupt file is found here rather than
/// by the first client.
pub fn certificates_from_pem(
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| content(path, format!("not a PEM file: {e}")))?;
    if certs.is_empty() {
        return Err(content(
            path,
            "holds no certificate (no -----BEGIN CERTIFICATE----- block)",
        ));
    }
    for (i, cert) in certs.iter().enumerate() {
        if CertSummary::parse(cert).is_none() {
            return Err(content(
                path,
                format!("certificate {} of {} is not X.509", i + 1, certs.len()),
            ));
        }
    }
    Ok(certs)
}

/// Reads a PEM file of CA certificates (`ca_bundle` of the remote backends).
pub fn read_ca_bundle(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    certificates_from_pem(path, &read(path)?)
}

fn key_from_pem(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        pem::Error::NoItemsFound => content(
            path,
            "holds no private key (a PKCS#8, PKCS#1 or SEC1 PEM block; encrypted keys are not supported)",
        ),
        e => content(path, format!("not a PEM file: {e}")),
    })
}

/// The certificate and key files the listeners serve.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertFiles {
    /// The pair from the files' contents: both parse and the key belongs to the leaf.
    fn certified_key(
        &self,
        cert_pem: &[u8],
        key_pem: &[u8],
        provider: &CryptoProvider,
    ) -> Result<CertifiedKey, TlsError> {
        let chain = certificates_from_pem(&self.cert, cert_pem)?;
        let key = key_from_pem(&self.key, key_pem)?;
        let key = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| content(&self.key, format!("unusable private key: {e}")))?;
        let pair = CertifiedKey::new(chain, key);
        match pair.keys_match() {
            // Unknown: the key type cannot tell its public key (none that aws-lc-rs loads).
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
                Ok(pair)
            }
            Err(_) => Err(TlsError::Mismatch {
                cert: self.cert.clone(),
                key: self.key.clone(),
            }),
        }
    }

    /// Both files' bytes, or why one could not be read: what a reload compares with the
    /// previous attempt, so that an unchanged pair (good or bad) is neither loaded nor
    /// reported again.
    fn snapshot(&self) -> Snapshot {
        let read = |p: &Path| std::fs::read(p).map_err(|e| e.to_string());
        (read(&self.cert), read(&self.key))
    }

    /// The directories whose entries name the files, and those of the files the names
    /// lead to through symlinks: a rename or symlink swap is an event in the former, an
    /// in-place write of a symlink's target one in the latter.
    fn directories(&self) -> BTreeSet<PathBuf> {
        let parent = |p: &Path| match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let mut dirs = BTreeSet::new();
        for path in [&self.cert, &self.key] {
            dirs.insert(parent(path));
            if let Ok(real) = std::fs::canonicalize(path) {
                dirs.insert(parent(&real));
            }
        }
        dirs
    }
}

type Snapshot = (Result<Vec<u8>, String>, Result<Vec<u8>, String>);

/// What a log line says about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// The serial number in hex, as `openssl x509 -serial` prints it.
    pub serial: String,
    /// `CN=…, O=…`, in the certificate's order; attributes other than the usual six are
    /// left out.
    pub subject: String,
    pub not_before: chrono::DateTime<chrono::Utc>,
    pub not_after: chrono::DateTime<chrono::Utc>,
}

impl CertSummary {
    /// Reads the summary from a DER certificate; `None` when it is not X.509. Only the
    /// few fields it needs are read (TBSCertificate: optional version, serial, signature
    /// algorithm, issuer, validity, subject): the engine never verifies a certificate
    /// itself, so a full X.509 parser would be a dependency for log lines.
    pub fn parse(cert: &[u8]) -> Option<Self> {
        let (cert, _) = der::expect(cert, der::SEQUENCE)?;
        let (tbs, _) = der::expect(cert, der::SEQUENCE)?;
        let mut rest = tbs;
        if rest.first() == Some(&der::VERSION) {
            rest = der::element(rest)?.2;
        }
        let (serial, rest) = der::expect(rest, der::INTEGER)?;
        let (_algorithm, rest) = der::expect(rest, der::SEQUENCE)?;
        let (_issuer, rest) = der::expect(rest, der::SEQUENCE)?;
        let (validity, rest) = der::expect(rest, der::SEQUENCE)?;
        let (subject, _) = der::expect(rest, der::SEQUENCE)?;
        let (not_before, validity) = der::time(validity)?;
        let (not_after, _) = der::time(validity)?;
        Some(Self {
            serial: hex::encode_upper(serial),
            subject: der::name(subject)?,
            not_before,
            not_after,
        })
    }
}

/// Just enough DER for [`CertSummary`].
mod der {
    use chrono::{DateTime, NaiveDateTime, Utc};

    pub const SEQUENCE: u8 = 0x30;
    pub const SET: u8 = 0x31;
    pub const INTEGER: u8 = 0x02;
    pub const OID: u8 = 0x06;
    /// `[0] EXPLICIT Version` of a TBSCertificate.
    pub const VERSION: u8 = 0xa0;
    const UTC_TIME: u8 = 0x17;
    const GENERALIZED_TIME: u8 = 0x18;

    /// The first element of `input`: its tag, its contents and what follows it.
    pub fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            // Long form: the low bits count the length's bytes (4 is 4 GiB, plenty).
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |len, b| (len << 8) | usize::from(*b));
            (len, &rest[n..])
        };
        (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
    }

    /// The first element's contents and what follows, if it has this tag.
    pub fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (t, contents, rest) = element(input)?;
        (t == tag).then_some((contents, rest))
    }

    /// A UTCTime or GeneralizedTime (X.509 writes both in UTC, to the second).
    pub fn time(input: &[u8]) -> Option<(DateTime<Utc>, &[u8])> {
        let (tag, contents, rest) = element(input)?;
        let text = std::str::from_utf8(contents).ok()?;
        let full = match tag {
            // RFC 5280: two-digit years from 50 are 19xx.
            UTC_TIME if text.len() == 13 => {
                let century = if text < "50" { "20" } else { "19" };
                format!("{century}{text}")
            }
            GENERALIZED_TIME if text.len() == 15 => text.to_owned(),
            _ => return None,
        };
        let t = NaiveDateTime::parse_from_str(&full, "%Y%m%d%H%M%SZ").ok()?;
        Some((t.and_utc(), rest))
    }

    /// A Name as `CN=…, O=…`.
    pub fn name(mut rdns: &[u8]) -> Option<String> {
        let mut parts = Vec::new();
        while !rdns.is_empty() {
            let (mut set, rest) = expect(rdns, SET)?;
            rdns = rest;
            while !set.is_empty() {
                let (attribute, rest) = expect(set, SEQUENCE)?;
                set = rest;
                let (oid, value) = expect(attribute, OID)?;
                let (_, value, _) = element(value)?;
                // id-at-*: 2.5.4.N
                let label = match oid {
                    [0x55, 0x04, 0x03] => "CN",
                    [0x55, 0x04, 0x06] => "C",
                    [0x55, 0x04, 0x07] => "L",
                    [0x55, 0x04, 0x08] => "ST",
                    [0x55, 0x04, 0x0a] => "O",
                    [0x55, 0x04, 0x0b] => "OU",
                    _ => continue,
                };
                parts.push(format!("{label}={}", String::from_utf8_lossy(value)));
            }
        }
        Some(parts.join(", "))
    }
}

/// The pair every new handshake gets; a reload swaps it.
#[derive(Debug)]
struct CurrentCert(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// The listeners' TLS: the served pair, the handshake settings, and the files it came
/// from.
pub struct ListenerTls {
    files: CertFiles,
    provider: Arc<CryptoProvider>,
    current: Arc<CurrentCert>,
    /// The bytes the served pair was loaded from.
    loaded: Snapshot,
    acceptor: Acceptor,
}

impl ListenerTls {
    /// Loads the pair; the error names the file and what is wrong with it.
    pub fn load(files: CertFiles) -> Result<Self, TlsError> {
        // aws-lc-rs: the provider reqwest and the AWS SDK already build on.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let (cert_pem, key_pem) = (read(&files.cert)?, read(&files.key)?);
        let pair = files.certified_key(&cert_pem, &key_pem, &provider)?;
        log_loaded(&files, &pair, "TLS certificate loaded");
        let current = Arc::new(CurrentCert(ArcSwap::from_pointee(pair)));
        let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| content(&files.cert, e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        // The listeners serve HTTP/1.1 only (see `server::timed_http1`); a client that
        // offers only h2 is refused in the handshake rather than after it.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            files,
            provider,
            current,
            loaded: (Ok(cert_pem), Ok(key_pem)),
            acceptor: Acceptor(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        })
    }

    /// Handshakes for a listener (all listeners share the pair).
    pub fn acceptor(&self) -> Acceptor {
        self.acceptor.clone()
    }

    /// The certificate new handshakes get.
    pub fn current(&self) -> Option<CertSummary> {
        CertSummary::parse(self.current.0.load().end_entity_cert().ok()?)
    }

    /// Watches the files and swaps in each new good pair, until the handle is aborted.
    pub fn watch(&self) -> tokio::task::JoinHandle<()> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|e| crate::watch::changes(&e.kind)) {
                let _ = tx.try_send(());
            }
        });
        let mut reloader = Reloader {
            files: self.files.clone(),
            provider: self.provider.clone(),
            current: self.current.clone(),
            last: self.loaded.clone(),
        };
        let mut watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                warn!(error = %e, every = ?RECHECK, "cannot watch the TLS certificate files; checking them periodically");
                None
            }
        };
        let mut watched = BTreeSet::new();
        if let Some(w) = &mut watcher {
            watch_directories(w, &reloader.files, &mut watched, true);
        }
        tokio::spawn(async move {
            loop {
                match tokio::time::timeout(RECHECK, rx.recv()).await {
                    Ok(Some(())) => {
                        while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {}
                    }
                    // Without a watcher the sender is gone: only the periodic check is left.
                    Ok(None) => tokio::time::sleep(RECHECK).await,
                    Err(_elapsed) => {}
                }
                reloader = match tokio::task::spawn_blocking(move || {
                    reloader.check();
                    reloader
                })
                .await
                {
                    Ok(r) => r,
                    Err(e) => {
                        warn!(error = %e, "TLS certificate reload panicked; no more reloads");
                        return;
                    }
                };
                if let Some(w) = &mut watcher {
                    watch_directories(w, &reloader.files, &mut watched, false);
                }
            }
        })
    }
}

/// Watches the directories the files are named in now (a symlink swap can move them),
/// and drops the ones no longer needed.
fn watch_directories(
    watcher: &mut notify::RecommendedWatcher,
    files: &CertFiles,
    watched: &mut BTreeSet<PathBuf>,
    first: bool,
) {
    use notify::Watcher as _;
    let wanted = files.directories();
    for dir in watched.difference(&wanted) {
        // Often already gone with its directory (a replaced Kubernetes secret version).
        let _ = watcher.unwatch(dir);
    }
    watched.retain(|d| wanted.contains(d));
    for dir in wanted {
        if watched.contains(&dir) {
            continue;
        }
        match watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
            Ok(()) => {
                watched.insert(dir);
            }
            Err(e) if first => {
                warn!(dir = %dir.display(), error = %e, every = ?RECHECK, "cannot watch a TLS certificate directory; checking it periodically");
            }
            Err(e) => {
                debug!(dir = %dir.display(), error = %e, "cannot watch a TLS certificate directory")
            }
        }
    }
}

struct Reloader {
    files: CertFiles,
    provider: Arc<CryptoProvider>,
    current: Arc<CurrentCert>,
    /// The files as last read, whether they were loaded or not.
    last: Snapshot,
}

impl Reloader {
    /// Loads the files if they changed since the last look. A pair that cannot be used is
    /// reported once, however many events and periodic checks find it unchanged.
    fn check(&mut self) {
        let seen = self.files.snapshot();
        if seen == self.last {
            return;
        }
        self.last = seen.clone();
        let result = match seen {
            (Err(e), _) => Err(format!("cannot read {}: {e}", self.files.cert.display())),
            (_, Err(e)) => Err(format!("cannot read {}: {e}", self.files.key.display())),
            (Ok(cert), Ok(key)) => self
                .files
                .certified_key(&cert, &key, &self.provider)
                .map_err(|e| e.to_string()),
        };
        match result {
            Ok(pair) => {
                log_loaded(&self.files, &pair, "TLS certificate reloaded");
                self.current.0.store(Arc::new(pair));
            }
            Err(e) => warn!(
                error = %e,
                "the TLS certificate files changed but cannot be used; new connections still get the previous certificate"
            ),
        }
    }
}

fn log_loaded(files: &CertFiles, pair: &CertifiedKey, message: &str) {
    let Some(s) = pair
        .end_entity_cert()
        .ok()
        .and_then(|c| CertSummary::parse(c))
    else {
        return;
    };
    info!(
        cert = %files.cert.display(),
        subject = %s.subject,
        serial = %s.serial,
        not_after = %s.not_after.to_rfc3339(),
        "{message}"
    );
    let now = chrono::Utc::now();
    if s.not_after < now || s.not_before > now {
        warn!(
            cert = %files.cert.display(),
            not_before = %s.not_before.to_rfc3339(),
            not_after = %s.not_after.to_rfc3339(),
            "the TLS certificate is not valid now: clients will refuse it"
        );
    }
}

/// TLS handshakes of one listener.
#[derive(Clone)]
pub struct Acceptor(tokio_rustls::TlsAcceptor);

impl Acceptor {
    /// The server side of a handshake over `io`; `None` when it fails or is not done by
    /// `deadline` (a client that connects and stalls mid-handshake holds nothing longer
    /// than a silent one would).
    pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        io: S,
        deadline: tokio::time::Instant,
    ) -> Option<tokio_rustls::server::TlsStream<S>> {
        match tokio::time::timeout_at(deadline, self.0.accept(io)).await {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(e)) => {
                debug!(error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                debug!("TLS handshake not done within the client timeout");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh temporary directory, removed on drop.
    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static SEQ: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "switchyard-tls-{name}-{}-{}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }

        fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, contents).unwrap();
            path
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A self-signed certificate with this serial; its PEM and its key's PEM (PKCS#8).
    fn self_signed(serial: u64, key: &rcgen::KeyPair) -> String {
        let mut params = rcgen::CertificateParams::new(vec!["gw.test".to_owned()]).unwrap();
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "gw.test");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Switchyard");
        params.not_before = rcgen::date_time_ymd(2025, 1, 2);
        params.not_after = rcgen::date_time_ymd(2051, 3, 4);
        params.self_signed(key).unwrap().pem()
    }

    /// The key inside a PKCS#8 document, PEM-encoded under `label`: PKCS#1 for RSA,
    /// SEC1 for EC.
    fn inner_key_pem(pkcs8: &[u8], label: &str) -> String {
        use base64::Engine as _;
        let (info, _) = der::expect(pkcs8, der::SEQUENCE).unwrap();
        let (_version, rest) = der::expect(info, der::INTEGER).unwrap();
        let (_algorithm, rest) = der::expect(rest, der::SEQUENCE).unwrap();
        let (key, _) = der::expect(rest, 0x04).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(key);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    fn provider() -> CryptoProvider {
        rustls::crypto::aws_lc_rs::default_provider()
    }

    #[test]
    fn summary_has_serial_subject_and_validity() {
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = self_signed(0x01_02ab, &key);
        let certs = certificates_from_pem(Path::new("c.pem"), pem.as_bytes()).unwrap();
        let s = CertSummary::parse(&certs[0]).unwrap();
        assert_eq!(s.serial, "0102AB");
        assert_eq!(s.subject, "CN=gw.test, O=Switchyard");
        assert_eq!(s.not_before.to_rfc3339(), "2025-01-02T00:00:00+00:00");
        // GeneralizedTime: from 2050 on, X.509 writes four-digit years.
        assert_eq!(s.not_after.to_rfc3339(), "2051-03-04T00:00:00+00:00");
        assert_eq!(CertSummary::parse(b"\x30\x03\x02\x01\x01"), None);
    }

    #[test]
    fn keys_load_as_pkcs8_pkcs1_and_sec1() {
        let dir = Dir::new("keys");
        let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let rsa = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let cases = [
            ("ec-pkcs8", &ec, ec.serialize_pem()),
            (
                "ec-sec1",
                &ec,
                inner_key_pem(&ec.serialize_der(), "EC PRIVATE KEY"),
            ),
            ("rsa-pkcs8", &rsa, rsa.serialize_pem()),
            (
                "rsa-pkcs1",
                &rsa,
                inner_key_pem(&rsa.serialize_der(), "RSA PRIVATE KEY"),
            ),
            ("ed25519-pkcs8", &ed, ed.serialize_pem()),
        ];
        for (name, key, key_pem) in cases {
            let files = CertFiles {
                cert: dir.write(&format!("{name}.crt"), self_signed(7, key)),
                key: dir.write(&format!("{name}.key"), &key_pem),
            };
            assert!(key_pem.contains("PRIVATE KEY"), "{name}");
            let tls = ListenerTls::load(files).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(tls.current().unwrap().serial, "07", "{name}");
        }
    }

    #[test]
    fn bad_files_are_named_with_their_problem() {
        let dir = Dir::new("bad");
        let key = rcgen::KeyPair::generate().unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let cert = dir.write("cert.pem", self_signed(1, &key));
        let key_file = dir.write("key.pem", key.serialize_pem());
        let load = |cert: &Path, key: &Path| {
            ListenerTls::load(CertFiles {
                cert: cert.to_owned(),
                key: key.to_owned(),
            })
            .err()
            .expect("should fail")
            .to_string()
        };
        let missing = dir.0.join("missing.pem");
        let e = load(&missing, &key_file);
        assert!(
            e.starts_with(&format!("cannot read {}: ", missing.display())),
            "{e}"
        );
        // The files given the other way round.
        let e = load(&key_file, &cert);
        assert_eq!(
            e,
            format!(
                "{}: holds no certificate (no -----BEGIN CERTIFICATE----- block)",
                key_file.display()
            )
        );
        let e = load(&cert, &cert);
        assert!(
            e.starts_with(&format!("{}: holds no private key", cert.display())),
            "{e}"
        );
        let garbage = dir.write(
            "garbage.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let e = load(&garbage, &key_file);
        assert_eq!(
            e,
            format!("{}: certificate 1 of 1 is not X.509", garbage.display())
        );
        let other_key = dir.write("other.pem", other.serialize_pem());
        let e = load(&cert, &other_key);
        assert_eq!(
            e,
            format!(
                "the private key in {} does not belong to the certificate in {}",
                other_key.display(),
                cert.display()
            )
        );
        // A CA bundle is a certificate file too.
        let e = read_ca_bundle(&key_file).unwrap_err().to_string();
        assert!(e.contains("holds no certificate"), "{e}");
        assert_eq!(read_ca_bundle(&cert).unwrap().len(), 1);
    }

    /// Counts the warnings logged while it is the default subscriber.
    #[derive(Clone, Default)]
    struct Warnings(Arc<std::sync::atomic::AtomicUsize>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            if *event.metadata().level() == tracing::Level::WARN {
                self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    #[test]
    fn a_bad_pair_keeps_the_served_one_and_is_reported_once() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let warnings = Warnings::default();
        let count = || warnings.0.load(std::sync::atomic::Ordering::Relaxed);
        let subscriber = tracing_subscriber::registry().with(warnings.clone());
        let _guard = tracing::subscriber::set_default(subscriber);

        let dir = Dir::new("reload");
        let key = rcgen::KeyPair::generate().unwrap();
        let files = CertFiles {
            cert: dir.write("cert.pem", self_signed(1, &key)),
            key: dir.write("key.pem", key.serialize_pem()),
        };
        let tls = ListenerTls::load(files.clone()).unwrap();
        let mut reloader = Reloader {
            files: files.clone(),
            provider: Arc::new(provider()),
            current: tls.current.clone(),
            last: tls.loaded.clone(),
        };
        let serial = || tls.current().unwrap().serial;
        reloader.check();
        assert_eq!((serial(), count()), ("01".to_owned(), 0), "nothing changed");

        // A renewed certificate whose key was not replaced (yet): the old pair stays.
        let new_key = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&files.cert, self_signed(2, &new_key)).unwrap();
        for _ in 0..3 {
            reloader.check();
        }
        assert_eq!((serial(), count()), ("01".to_owned(), 1));
        // A key file that is not there at all.
        std::fs::remove_file(&files.key).unwrap();
        reloader.check();
        reloader.check();
        assert_eq!((serial(), count()), ("01".to_owned(), 2));
        // The key arrives: the new pair is served.
        std::fs::write(&files.key, new_key.serialize_pem()).unwrap();
        reloader.check();
        assert_eq!((serial(), count()), ("02".to_owned(), 2));
        // Garbage in place of the certificate, then the old files back.
        std::fs::write(&files.cert, "not pem").unwrap();
        reloader.check();
        assert_eq!((serial(), count()), ("02".to_owned(), 3));
        std::fs::write(&files.cert, self_signed(1, &key)).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        reloader.check();
        assert_eq!((serial(), count()), ("01".to_owned(), 3));
    }
}
