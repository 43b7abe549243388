//! Object checksums as S3 keeps them (`x-amz-checksum-*`): the five algorithms, full-object
//! and composite checksums, and how an object keeps its checksum in every backend kind.
//!
//! **Storage.** An object's checksum is one user-metadata entry, [`CHECKSUM_META`]
//! (`switchyard-checksum`), written with the object like its other metadata (an `fs` file's
//! extended attribute, S3 `x-amz-meta-*`, Azure `x-ms-meta-*`, GCS `x-goog-meta-*`, the
//! memory store's attributes), so that it is published with the bytes and stays with an
//! ejected object. Its value is `ALGORITHM:TYPE:VALUE`, with the algorithm and type
//! spelled as S3 spells them and the value as S3 answers it (base64, and `-N` for a
//! composite checksum of N parts): `CRC32:FULL_OBJECT:NhCmhg==`,
//! `SHA256:COMPOSITE:Zm9v…=-3`. Clients cannot set the name, and never see it as metadata.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use crc_fast::CrcAlgorithm;

use crate::model::Attrs;

/// The user metadata holding an object's checksum (see the module's docs).
pub const CHECKSUM_META: &str = "switchyard-checksum";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Algorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl Algorithm {
    pub const ALL: [Algorithm; 5] = [
        Algorithm::Crc32,
        Algorithm::Crc32c,
        Algorithm::Crc64Nvme,
        Algorithm::Sha1,
        Algorithm::Sha256,
    ];

    /// As S3 spells it (`x-amz-checksum-algorithm`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "CRC32",
            Algorithm::Crc32c => "CRC32C",
            Algorithm::Crc64Nvme => "CRC64NVME",
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s))
    }

    /// Which multipart checksum types S3 offers for the algorithm: CRCs combine into a
    /// full-object checksum, and all but CRC64NVME have a composite one.
    pub fn supports(self, kind: Kind) -> bool {
        match kind {
            Kind::FullObject => self.crc().is_some(),
            Kind::Composite => self != Algorithm::Crc64Nvme,
        }
    }

    /// A multipart upload's checksum type when CreateMultipartUpload names none.
    pub fn default_multipart_kind(self) -> Kind {
        match self {
            Algorithm::Crc64Nvme => Kind::FullObject,
            _ => Kind::Composite,
        }
    }

    fn crc(self) -> Option<CrcAlgorithm> {
        match self {
            Algorithm::Crc32 => Some(CrcAlgorithm::Crc32IsoHdlc),
            Algorithm::Crc32c => Some(CrcAlgorithm::Crc32Iscsi),
            Algorithm::Crc64Nvme => Some(CrcAlgorithm::Crc64Nvme),
            Algorithm::Sha1 | Algorithm::Sha256 => None,
        }
    }

    /// The digest's width in bytes.
    fn width(self) -> usize {
        match self {
            Algorithm::Crc32 | Algorithm::Crc32c => 4,
            Algorithm::Crc64Nvme => 8,
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
        }
    }
}

/// How an object's checksum covers it: the bytes as a whole, or (a multipart upload's
/// composite checksum) the checksums of its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    FullObject,
    Composite,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::FullObject => "FULL_OBJECT",
            Kind::Composite => "COMPOSITE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Kind::FullObject, Kind::Composite]
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
    }
}

/// A checksum as an object keeps it and S3 answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub algorithm: Algorithm,
    pub kind: Kind,
    /// Base64, with `-N` for a composite checksum of N parts.
    pub value: String,
}

impl Stored {
    pub fn full_object(algorithm: Algorithm, value: String) -> Self {
        Self {
            algorithm,
            kind: Kind::FullObject,
            value,
        }
    }

    /// `ALGORITHM:TYPE:VALUE`, the metadata's value.
    pub fn encode(&self) -> String {
        format!(
            "{}:{}:{}",
            self.algorithm.name(),
            self.kind.name(),
            self.value
        )
    }

    pub fn decode(s: &str) -> Option<Self> {
        let mut it = s.splitn(3, ':');
        let algorithm = Algorithm::parse(it.next()?)?;
        let kind = Kind::parse(it.next()?)?;
        let value = it.next().filter(|v| !v.is_empty())?.to_owned();
        Some(Self {
            algorithm,
            kind,
            value,
        })
    }

    /// The checksum an object's attributes keep, if any (a malformed one is none).
    pub fn of(attrs: &Attrs) -> Option<Self> {
        attrs
            .metadata
            .get(CHECKSUM_META)
            .and_then(|v| Self::decode(v))
    }

    /// `attrs` keeping this checksum.
    pub fn kept_in(&self, attrs: &Attrs) -> Attrs {
        let mut a = attrs.clone();
        a.metadata.insert(CHECKSUM_META.to_owned(), self.encode());
        a
    }
}

/// The metadata a client (or a policy) sees: without the checksum's entry.
pub fn client_metadata(attrs: &Attrs) -> impl Iterator<Item = (&String, &String)> {
    attrs
        .metadata
        .iter()
        .filter(|(k, _)| *k != CHECKSUM_META && *k != crate::model::VERSION_META)
}

/// One running checksum.
pub enum Hasher {
    Crc(Algorithm, crc_fast::Digest),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm.crc() {
            Some(crc) => Hasher::Crc(algorithm, crc_fast::Digest::new(crc)),
            None if algorithm == Algorithm::Sha1 => {
                Hasher::Sha1(<sha1::Sha1 as sha1::Digest>::new())
            }
            None => Hasher::Sha256(<sha2::Sha256 as sha2::Digest>::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Crc(_, d) => d.update(data),
            Hasher::Sha1(d) => sha1::Digest::update(d, data),
            Hasher::Sha256(d) => sha2::Digest::update(d, data),
        }
    }

    /// The digest, base64-encoded as S3 answers it.
    pub fn finish(self) -> String {
        STANDARD.encode(match self {
            Hasher::Crc(alg, d) => crc_bytes(alg, d.finalize()),
            Hasher::Sha1(d) => sha1::Digest::finalize(d).to_vec(),
            Hasher::Sha256(d) => sha2::Digest::finalize(d).to_vec(),
        })
    }
}

/// A CRC's big-endian bytes, as wide as the algorithm's.
fn crc_bytes(alg: Algorithm, crc: u64) -> Vec<u8> {
    crc.to_be_bytes()[8 - alg.width()..].to_vec()
}

/// One part's checksum (base64, as UploadPart answered it) and length.
pub struct PartChecksum<'a> {
    pub value: &'a str,
    pub len: u64,
}

/// The checksum of a multipart upload of `parts`: composite, the checksum of the
/// concatenated binary part checksums, `-`, their number; or full-object, the parts' CRCs
/// combined into the CRC of the whole. `None` when a part's value is not a digest of the
/// algorithm, or the algorithm has no such type.
pub fn multipart(algorithm: Algorithm, kind: Kind, parts: &[PartChecksum<'_>]) -> Option<Stored> {
    if !algorithm.supports(kind) {
        return None;
    }
    let mut raw = Vec::with_capacity(parts.len());
    for p in parts {
        let bytes = STANDARD.decode(p.value).ok()?;
        if bytes.len() != algorithm.width() {
            return None;
        }
        raw.push(bytes);
    }
    let value = match kind {
        Kind::Composite => {
            let mut h = Hasher::new(algorithm);
            for r in &raw {
                h.update(r);
            }
            format!("{}-{}", h.finish(), parts.len())
        }
        Kind::FullObject => {
            let crc = algorithm.crc()?;
            let mut whole: Option<u64> = None;
            for (r, p) in raw.iter().zip(parts) {
                let mut be = [0u8; 8];
                be[8 - r.len()..].copy_from_slice(r);
                let part = u64::from_be_bytes(be);
                whole = Some(match whole {
                    None => part,
                    Some(w) => crc_fast::checksum_combine(crc, w, part, p.len),
                });
            }
            STANDARD.encode(crc_bytes(algorithm, whole?))
        }
    };
    Some(Stored {
        algorithm,
        kind,
        value,
    })
}

/// `body`, computing its checksum in `algorithm` on the way into `slot`, which holds it
/// once the body has ended.
pub fn hashed(body: crate::model::Body, algorithm: Algorithm, slot: Pending) -> crate::model::Body {
    crate::model::tapped(
        body,
        (Hasher::new(algorithm), algorithm, slot),
        |(h, _, _), chunk| h.update(chunk),
        |(h, algorithm, slot)| {
            slot.set(Stored::full_object(algorithm, h.finish()));
            Ok(())
        },
    )
}

/// The checksum a write keeps with its object, when the writer has one: known before the
/// body (a header) or only once the body has passed its checks (an aws-chunked trailer).
/// A store takes it at the moment it writes the object's metadata: a store that must send
/// the metadata before the body (a streamed upload) keeps only one known by then.
#[derive(Debug, Clone, Default)]
pub struct Pending(Option<Arc<Mutex<Option<Stored>>>>);

impl Pending {
    /// A checksum to come.
    pub fn expected() -> Self {
        Pending(Some(Arc::default()))
    }

    pub fn known(c: Stored) -> Self {
        Pending(Some(Arc::new(Mutex::new(Some(c)))))
    }

    pub fn set(&self, c: Stored) {
        if let Some(slot) = &self.0 {
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(c);
        }
    }

    pub fn get(&self) -> Option<Stored> {
        self.0
            .as_ref()
            .and_then(|s| s.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    /// Whether a checksum is to come that is not known yet.
    pub fn is_pending(&self) -> bool {
        self.0.is_some() && self.get().is_none()
    }

    /// `attrs`, keeping the checksum when it is known by now.
    pub fn attrs<'a>(&self, attrs: &'a Attrs) -> std::borrow::Cow<'a, Attrs> {
        match self.get() {
            Some(c) => std::borrow::Cow::Owned(c.kept_in(attrs)),
            None => std::borrow::Cow::Borrowed(attrs),
        }
    }
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Eq for Pending {}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(alg: Algorithm, data: &[u8]) -> String {
        let mut h = Hasher::new(alg);
        h.update(data);
        h.finish()
    }

    #[test]
    fn known_values() {
        // "123456789", the CRC catalogue's check input.
        let check = b"123456789";
        assert_eq!(
            STANDARD.decode(of(Algorithm::Crc32, check)).unwrap(),
            0xcbf4_3926u32.to_be_bytes()
        );
        assert_eq!(
            STANDARD.decode(of(Algorithm::Crc32c, check)).unwrap(),
            0xe306_9283u32.to_be_bytes()
        );
        assert_eq!(
            STANDARD.decode(of(Algorithm::Crc64Nvme, check)).unwrap(),
            0xae8b_1486_0a79_9888u64.to_be_bytes()
        );
        assert_eq!(
            of(Algorithm::Sha256, b""),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert_eq!(of(Algorithm::Sha1, b""), "2jmj7l5rSw0yVb/vlWAYkK/YBwk=");
    }

    #[test]
    fn stored_round_trips() {
        let c = Stored {
            algorithm: Algorithm::Sha256,
            kind: Kind::Composite,
            value: "abc=-3".into(),
        };
        assert_eq!(c.encode(), "SHA256:COMPOSITE:abc=-3");
        assert_eq!(Stored::decode(&c.encode()), Some(c));
        assert_eq!(Stored::decode("MD5:FULL_OBJECT:x"), None);
        assert_eq!(Stored::decode("CRC32:FULL_OBJECT:"), None);
    }

    #[test]
    fn multipart_checksums() {
        let (a, b) = (b"hello ".as_slice(), b"world".as_slice());
        for alg in Algorithm::ALL {
            let parts = [
                PartChecksum {
                    value: &of(alg, a),
                    len: a.len() as u64,
                },
                PartChecksum {
                    value: &of(alg, b),
                    len: b.len() as u64,
                },
            ];
            if alg.supports(Kind::FullObject) {
                let whole = multipart(alg, Kind::FullObject, &parts).unwrap();
                assert_eq!(whole.value, of(alg, b"hello world"), "{alg:?}");
            } else {
                assert_eq!(multipart(alg, Kind::FullObject, &parts), None);
            }
            if alg.supports(Kind::Composite) {
                let mut raw = STANDARD.decode(of(alg, a)).unwrap();
                raw.extend(STANDARD.decode(of(alg, b)).unwrap());
                let want = format!("{}-2", of(alg, &raw));
                let got = multipart(alg, Kind::Composite, &parts).unwrap();
                assert_eq!(got.value, want, "{alg:?}");
            } else {
                assert_eq!(multipart(alg, Kind::Composite, &parts), None);
            }
        }
    }
}
