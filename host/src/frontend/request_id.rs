//! Request ids, as S3 gives them: `x-amz-request-id` and `x-amz-id-2` on every answer,
//! success or error, and the same id as `<RequestId>` (with `<HostId>`) in an error's XML
//! body. The id is on the request's log line too, so that the id a client reports leads
//! to what the engine did.
//!
//! On the hot path: an id is a counter and a few multiplications, its header one 16-byte
//! value; only an error's body is rewritten (to carry the id).

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use http::HeaderValue;
use http::header::HeaderName;

use super::exchange::Exchange;

const X_AMZ_REQUEST_ID: HeaderName = HeaderName::from_static("x-amz-request-id");
const X_AMZ_ID_2: HeaderName = HeaderName::from_static("x-amz-id-2");

/// One request's id, shown as 16 upper-case hex digits as AWS shows its own. Unique within
/// the engine: the n-th request's id is a bijection of (random start + n), so no two
/// requests of one process share one; engines start at random points, so ids of
/// different engines collide no more than random 64-bit numbers do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(u64);

/// What every id of this process is derived from.
struct Engine {
    start: u64,
    /// `x-amz-id-2` (AWS's "host id"): the same for every answer of this engine, so that
    /// an answer can be traced to the engine that gave it (it is logged at start).
    host_id: HeaderValue,
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let (start, _) = uuid::Uuid::new_v4().as_u64_pair();
        let mut raw = [0u8; 32];
        raw[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        raw[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        let host = base64::engine::general_purpose::STANDARD.encode(raw);
        Engine {
            start,
            host_id: HeaderValue::from_str(&host).expect("base64 is a valid header value"),
        }
    })
}

/// This engine's `x-amz-id-2`.
pub fn host_id() -> &'static str {
    engine().host_id.to_str().expect("base64")
}

/// splitmix64's finaliser: a bijection of u64 (xor-shifts and odd multipliers are each
/// invertible) that spreads consecutive numbers over the whole range.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl RequestId {
    /// The next request's id.
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Self(mix(engine().start.wrapping_add(n)))
    }

    fn hex(self) -> [u8; 16] {
        const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
        let mut out = [0u8; 16];
        for (i, d) in out.iter_mut().enumerate() {
            *d = DIGITS[((self.0 >> (60 - 4 * i)) & 0xf) as usize];
        }
        out
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.hex()).expect("hex digits"))
    }
}

/// Puts the exchange's id on an answer: its headers, and an error's XML body when the
/// body is sent (`head`: the answer to a HEAD request, whose body never is; a `304` has
/// none either). An error's code goes to the exchange when nothing there named one
/// (errors s3s answers itself: a bad signature, a malformed request).
pub fn stamp(exchange: &Exchange, resp: &mut http::Response<s3s::Body>, head: bool) {
    let id = exchange.id;
    let engine = engine();
    let status = resp.status();
    if !head
        && !status.is_success()
        && status != http::StatusCode::NOT_MODIFIED
        && let Some((body, code)) = error_body(resp.body(), id, engine.host_id.as_bytes())
    {
        *resp.body_mut() = body;
        exchange.error_code_if_unset(&code);
    }
    let headers = resp.headers_mut();
    headers.insert(
        X_AMZ_REQUEST_ID,
        HeaderValue::from_bytes(&id.hex()).expect("hex digits"),
    );
    headers.insert(X_AMZ_ID_2, engine.host_id.clone());
}

/// An S3 error body (`<Error>...</Error>`, held whole, as s3s makes them) with the
/// request's id and the engine's host id added where AWS puts them, last.
fn error_body(body: &s3s::Body, id: RequestId, host_id: &[u8]) -> Option<(s3s::Body, String)> {
    const END: &[u8] = b"</Error>";
    let bytes = body.bytes()?;
    let head = bytes.strip_suffix(END)?;
    let code = head
        .windows(6)
        .position(|w| w == b"<Code>")
        .and_then(|i| {
            let rest = &head[i + 6..];
            let end = rest.windows(7).position(|w| w == b"</Code>")?;
            std::str::from_utf8(&rest[..end]).ok()
        })
        .unwrap_or("-")
        .to_owned();
    let mut out = Vec::with_capacity(bytes.len() + 64 + host_id.len());
    out.extend_from_slice(head);
    out.extend_from_slice(b"<RequestId>");
    out.extend_from_slice(&id.hex());
    out.extend_from_slice(b"</RequestId><HostId>");
    out.extend_from_slice(host_id);
    out.extend_from_slice(b"</HostId>");
    out.extend_from_slice(END);
    Some((s3s::Body::from(out), code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_hex_of_sixteen_digits() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100_000 {
            let id = RequestId::next();
            let shown = id.to_string();
            assert_eq!(shown.len(), 16);
            assert!(
                shown
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
            );
            assert!(seen.insert(shown), "an id came twice");
        }
        // Consecutive counters do not give neighbouring ids.
        assert_ne!(mix(1).wrapping_sub(mix(0)), 1);
    }

    #[test]
    fn an_error_body_carries_the_id_and_host() {
        let id = RequestId(0x0123_4567_89AB_CDEF);
        let body = s3s::Body::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code><Message>gone</Message></Error>".to_owned(),
        );
        let (out, code) = error_body(&body, id, b"aG9zdA==").unwrap();
        assert_eq!(code, "NoSuchKey");
        assert_eq!(
            std::str::from_utf8(&out.bytes().unwrap()).unwrap(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code><Message>gone</Message><RequestId>0123456789ABCDEF</RequestId><HostId>aG9zdA==</HostId></Error>"
        );
        // Anything else is left alone.
        assert!(error_body(&s3s::Body::from("<Other/>".to_owned()), id, b"h").is_none());
        assert!(error_body(&s3s::Body::empty(), id, b"h").is_none());
    }
}
