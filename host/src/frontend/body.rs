//! Request bodies: size limits and integrity checks while the bytes stream through.
//!
//! Content-MD5 and `x-amz-checksum-*` (in headers, or in the trailer of an aws-chunked
//! body as current SDKs send by default) are verified as the last chunk passes. A mismatch
//! becomes an error item at the end of the stream, before the backend commits, so the
//! write is aborted and nothing becomes visible.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::StreamExt;
use http::HeaderMap;
use s3s::TrailingHeaders;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::{Checksum, StreamingBlob};

use crate::checksum::{Algorithm, Pending, Stored};
use crate::config::ServerConfig;
use crate::model::{Body, Error, Result};
use crate::server::ClientStalled;

/// Which checksums the client declared, and their values when known up front.
#[derive(Debug, Default, Clone)]
pub struct Expected {
    pub content_md5: Option<String>,
    pub checksums: Checksum,
    /// Algorithms whose value arrives in the trailer (`x-amz-trailer`).
    pub trailer: Vec<String>,
    pub declared_len: Option<u64>,
    /// Filled once the whole body has passed its checks: the checksums it was checked
    /// against (header or trailer), which the answer carries as S3's does.
    pub verified: std::sync::Arc<std::sync::Mutex<Option<Checksum>>>,
    /// The checksum the object is to keep, when one is declared: known up front from a
    /// header, or once the body has passed its checks from the trailer.
    pub keep: Pending,
}

const ALGORITHMS: [&str; 5] = ["crc32", "crc32c", "sha1", "sha256", "crc64nvme"];

fn checksum_value<'a>(c: &'a Checksum, alg: &str) -> Option<&'a String> {
    match alg {
        "crc32" => c.checksum_crc32.as_ref(),
        "crc32c" => c.checksum_crc32c.as_ref(),
        "sha1" => c.checksum_sha1.as_ref(),
        "sha256" => c.checksum_sha256.as_ref(),
        "crc64nvme" => c.checksum_crc64nvme.as_ref(),
        _ => None,
    }
}

pub fn value_mut<'a>(c: &'a mut Checksum, alg: &str) -> Option<&'a mut Option<String>> {
    match alg {
        "crc32" => Some(&mut c.checksum_crc32),
        "crc32c" => Some(&mut c.checksum_crc32c),
        "sha1" => Some(&mut c.checksum_sha1),
        "sha256" => Some(&mut c.checksum_sha256),
        "crc64nvme" => Some(&mut c.checksum_crc64nvme),
        _ => None,
    }
}

/// A kept checksum as S3 answers it: the algorithm's field, and the type.
pub fn answered(c: Option<&Stored>) -> Checksum {
    let mut out = Checksum::default();
    if let Some(c) = c {
        let alg = c.algorithm.name().to_ascii_lowercase();
        if let Some(field) = value_mut(&mut out, &alg) {
            *field = Some(c.value.clone());
        }
        out.checksum_type = Some(s3s::dto::ChecksumType::from(c.kind.name().to_owned()));
    }
    out
}

/// The first checksum `c` holds, with its algorithm.
pub fn named(c: &Checksum) -> Option<(Algorithm, String)> {
    ALGORITHMS.iter().find_map(|alg| {
        let v = checksum_value(c, alg)?;
        Some((Algorithm::parse(alg)?, v.clone()))
    })
}

fn enable(h: &mut ChecksumHasher, alg: &str) {
    match alg {
        "crc32" => h.crc32 = Some(Default::default()),
        "crc32c" => h.crc32c = Some(Default::default()),
        "sha1" => h.sha1 = Some(Default::default()),
        "sha256" => h.sha256 = Some(Default::default()),
        "crc64nvme" => h.crc64nvme = Some(Default::default()),
        _ => {}
    }
}

fn alg_label(alg: &str) -> &'static str {
    match alg {
        "crc32" => "CRC32",
        "crc32c" => "CRC32C",
        "sha1" => "SHA1",
        "sha256" => "SHA256",
        _ => "CRC64NVME",
    }
}

impl Expected {
    /// Reads the trailer declaration from the request headers.
    pub fn with_trailer(mut self, headers: &HeaderMap) -> Self {
        if let Some(t) = headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()) {
            for name in t.split(',') {
                let name = name.trim().to_ascii_lowercase();
                if let Some(alg) = name.strip_prefix("x-amz-checksum-")
                    && ALGORITHMS.contains(&alg)
                {
                    self.trailer.push(alg.to_owned());
                }
            }
        }
        if any_checksum(&self.checksums) || !self.trailer.is_empty() {
            self.keep = Pending::expected();
        }
        self
    }

    /// Rejects a malformed Content-MD5 before any byte is read.
    pub fn check_format(&self) -> Result<()> {
        if let Some(md5) = &self.content_md5 {
            match STANDARD.decode(md5) {
                Ok(v) if v.len() == 16 => {}
                _ => return Err(Error::InvalidDigest),
            }
        }
        Ok(())
    }
}

struct State {
    inner: StreamingBlob,
    expected: Expected,
    trailers: Option<TrailingHeaders>,
    md5: Option<Md5>,
    hasher: ChecksumHasher,
    algs: Vec<String>,
    seen: u64,
    limit: u64,
    done: bool,
}

/// Wraps a client body with the server's size limit (`max_put_size`) and integrity
/// checks. A client that went silent (the connection's body deadline, `client_timeout`)
/// fails the request with `RequestTimeout`; any other read error with `IncompleteBody`.
pub fn verified(
    inner: StreamingBlob,
    expected: Expected,
    trailers: Option<TrailingHeaders>,
    server: &ServerConfig,
) -> Body {
    let mut hasher = ChecksumHasher::default();
    let mut algs = Vec::new();
    for alg in ALGORITHMS {
        if checksum_value(&expected.checksums, alg).is_some()
            || expected.trailer.iter().any(|t| t == alg)
        {
            enable(&mut hasher, alg);
            algs.push(alg.to_owned());
        }
    }
    // A checksum in a header is the object's from the start (a body that does not match
    // it fails, and nothing is written).
    if let Some((alg, value)) = named(&expected.checksums) {
        expected.keep.set(Stored::full_object(alg, value));
    }
    let state = State {
        md5: expected.content_md5.as_ref().map(|_| Md5::new()),
        inner,
        expected,
        trailers,
        hasher,
        algs,
        seen: 0,
        limit: server.max_put_size,
        done: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        match st.inner.next().await {
            Some(Ok(chunk)) => {
                st.seen += chunk.len() as u64;
                if st.seen > st.limit {
                    st.done = true;
                    return Some((Err(Error::TooLarge(st.limit)), st));
                }
                if let Some(m) = st.md5.as_mut() {
                    m.update(&chunk);
                }
                st.hasher.update(&chunk);
                Some((Ok(chunk), st))
            }
            Some(Err(e)) => {
                st.done = true;
                let e = match stalled_for(&*e) {
                    Some(limit) => Error::RequestTimeout(limit),
                    None => Error::ClientBody(e.to_string()),
                };
                Some((Err(e), st))
            }
            None => {
                st.done = true;
                match finish(&mut st) {
                    Ok(()) => None,
                    Err(e) => Some((Err(e), st)),
                }
            }
        }
    })
    .boxed()
}

/// The client timeout, if a body error is (or was caused by) the client's silence; s3s
/// passes it on as the source of its own errors for aws-chunked bodies.
fn stalled_for(e: &(dyn std::error::Error + 'static)) -> Option<Duration> {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if let Some(ClientStalled(limit)) = e.downcast_ref() {
            return Some(*limit);
        }
        cur = e.source();
    }
    None
}

fn finish(st: &mut State) -> Result<()> {
    if let Some(len) = st.expected.declared_len
        && st.seen != len
    {
        return Err(Error::IncompleteBody);
    }
    if let (Some(md5), Some(want)) = (st.md5.take(), st.expected.content_md5.as_ref()) {
        let got = STANDARD.encode(md5.finalize());
        if &got != want {
            return Err(Error::BadDigest);
        }
    }
    let computed = std::mem::take(&mut st.hasher).finalize();
    let trailer = st.trailers.as_ref().and_then(|t| t.take());
    for alg in &st.algs {
        let want = match checksum_value(&st.expected.checksums, alg) {
            Some(v) => Some(v.clone()),
            None => trailer
                .as_ref()
                .and_then(|h| h.get(format!("x-amz-checksum-{alg}")))
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        };
        let Some(want) = want else {
            return Err(Error::InvalidArgument(format!(
                "x-amz-checksum-{alg} was declared in x-amz-trailer but not sent"
            )));
        };
        if checksum_value(&computed, alg) != Some(&want) {
            return Err(Error::ChecksumMismatch(alg_label(alg)));
        }
        if st.expected.keep.is_pending()
            && let Some(a) = Algorithm::parse(alg)
        {
            st.expected.keep.set(Stored::full_object(a, want));
        }
    }
    // The hasher computed the checked algorithms only.
    *st.expected
        .verified
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(computed);
    Ok(())
}

/// Whether `c` holds any checksum.
pub fn any_checksum(c: &Checksum) -> bool {
    ALGORITHMS
        .iter()
        .any(|alg| checksum_value(c, alg).is_some())
}
