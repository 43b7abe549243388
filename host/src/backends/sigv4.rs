//! SigV4 header signing for the direct S3 client, with the signing key kept for the day.
//!
//! aws-sigv4's `sign` is general: it parses the URL, decodes and re-encodes the query,
//! copies every header into `http` types, formats the date twice and derives the signing
//! key (four HMACs) for every request. For a 4 KiB GET that was about a tenth of the
//! gateway's CPU. The requests signed here are few and known (GET, HEAD, PUT, listing and
//! part uploads with `UNSIGNED-PAYLOAD`), so the canonical request is written directly into
//! one buffer, and the key is derived once a day with aws-sigv4's own
//! `generate_signing_key`; the final HMAC is aws-sigv4's `calculate_signature`. A test
//! checks every signature against aws-sigv4's `sign` for the same request.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::SystemTime;

use aws_sigv4::sign::v4::{calculate_signature, generate_signing_key};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};

/// What SigV4 leaves unescaped in a query: the unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub struct Signer {
    access_key: String,
    secret_key: String,
    session_token: Option<String>,
    region: String,
    /// The day (`YYYYMMDD`) and its signing key.
    key: Mutex<Option<(String, Vec<u8>)>>,
}

impl Signer {
    pub fn new(
        access_key: String,
        secret_key: String,
        session_token: Option<String>,
        region: String,
    ) -> Self {
        Self {
            access_key,
            secret_key,
            session_token,
            region,
            key: Mutex::new(None),
        }
    }

    /// The headers to add to a request of `method` for `path_and_query` (the path already
    /// escaped once, as sent) with `headers` (lower-case names, `host` among them) and an
    /// unsigned payload: `x-amz-date`, `x-amz-content-sha256`, `x-amz-security-token`
    /// with temporary credentials, and `authorization`.
    pub fn sign(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(String, String)],
        now: SystemTime,
    ) -> Vec<(&'static str, String)> {
        let t = time::OffsetDateTime::from(now);
        let mut amz_date = String::with_capacity(16);
        let _ = write!(
            amz_date,
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        let day = &amz_date[..8];

        let mut added: Vec<(&'static str, String)> = vec![
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD".to_owned()),
            ("x-amz-date", amz_date.clone()),
        ];
        if let Some(token) = &self.session_token {
            added.push(("x-amz-security-token", token.clone()));
        }
        let mut all: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(added.iter().map(|(k, v)| (*k, v.as_str())))
            .collect();
        // Stable: values of a repeated header stay in the order given.
        all.sort_by(|a, b| a.0.cmp(b.0));

        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let mut canonical = String::with_capacity(256 + path_and_query.len());
        canonical.push_str(method);
        canonical.push('\n');
        canonical.push_str(path);
        canonical.push('\n');
        canonical_query(query, &mut canonical);
        canonical.push('\n');
        let mut signed_headers = String::with_capacity(128);
        let mut i = 0;
        while i < all.len() {
            let name = all[i].0;
            canonical.push_str(name);
            canonical.push(':');
            let mut first = true;
            while i < all.len() && all[i].0 == name {
                if !first {
                    canonical.push(',');
                }
                trim_all(all[i].1, &mut canonical);
                first = false;
                i += 1;
            }
            canonical.push('\n');
            if !signed_headers.is_empty() {
                signed_headers.push(';');
            }
            signed_headers.push_str(name);
        }
        canonical.push('\n');
        canonical.push_str(&signed_headers);
        canonical.push_str("\nUNSIGNED-PAYLOAD");

        let scope = format!("{day}/{}/s3/aws4_request", self.region);
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let signature = {
            let mut cached = self.key.lock().unwrap_or_else(|e| e.into_inner());
            let key = match cached.as_ref() {
                Some((d, key)) if d == day => key,
                _ => {
                    let key = generate_signing_key(&self.secret_key, now, &self.region, "s3")
                        .as_ref()
                        .to_vec();
                    &cached.insert((day.to_owned(), key)).1
                }
            };
            calculate_signature(key, string_to_sign.as_bytes())
        };
        added.push((
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
                self.access_key
            ),
        ));
        added
    }
}

/// The query's parameters sorted, each name and value escaped as SigV4 wants (whatever
/// escaping the URL used), a parameter without a value given an empty one.
fn canonical_query(query: &str, out: &mut String) {
    if query.is_empty() {
        return;
    }
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    let mut params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    params.sort();
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        let _ = write!(
            out,
            "{}={}",
            utf8_percent_encode(k, UNRESERVED),
            utf8_percent_encode(v, UNRESERVED)
        );
    }
}

/// A header value as SigV4 canonicalises it: trimmed, runs of spaces made one.
fn trim_all(value: &str, out: &mut String) {
    let mut space = false;
    for c in value.trim_matches(' ').chars() {
        if c == ' ' {
            if !space {
                out.push(' ');
            }
            space = true;
        } else {
            out.push(c);
            space = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{
        PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
        UriPathNormalizationMode, sign,
    };
    use aws_sigv4::sign::v4;
    use aws_smithy_runtime_api::client::identity::Identity;

    /// aws-sigv4's signature of the same request, as the direct client used to make it.
    fn reference(
        creds: &Credentials,
        region: &str,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        now: SystemTime,
    ) -> Vec<(String, String)> {
        let identity: Identity = creds.clone().into();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name("s3")
            .time(now)
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let signable = SignableRequest::new(
            method,
            url,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::UnsignedPayload,
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let (signed, _) = instructions.into_parts();
        let mut out: Vec<_> = signed
            .iter()
            .map(|h| (h.name().to_owned(), h.value().to_owned()))
            .collect();
        out.sort();
        out
    }

    /// The same key for aws-sigv4 and for the signer under test.
    fn both(token: Option<&str>) -> (Credentials, Signer) {
        let (ak, sk) = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG");
        let creds = Credentials::new(ak, sk, token.map(str::to_owned), None, "t");
        let signer = Signer::new(
            ak.into(),
            sk.into(),
            token.map(str::to_owned),
            "eu-west-3".into(),
        );
        (creds, signer)
    }

    /// The signer's headers, in the order `reference` gives them.
    fn ours(
        signer: &Signer,
        method: &str,
        path_and_query: &str,
        headers: &[(String, String)],
        now: SystemTime,
    ) -> Vec<(String, String)> {
        let mut got: Vec<_> = signer
            .sign(method, path_and_query, headers, now)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        got.sort();
        got
    }

    #[test]
    fn signatures_match_aws_sigv4() {
        let h = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        type Case = (&'static str, &'static str, Vec<(String, String)>);
        let cases: Vec<Case> = vec![
            (
                "GET",
                "/bkt/a%20b/c%2Bd.txt",
                h(&[("host", "127.0.0.1:9000")]),
            ),
            (
                "GET",
                "/bkt/k",
                h(&[("range", "bytes=0-99"), ("host", "s3.example.com")]),
            ),
            (
                "HEAD",
                "/k%C3%A9y",
                h(&[("host", "bkt.s3.us-west-2.amazonaws.com")]),
            ),
            (
                "PUT",
                "/bkt/dir/obj",
                h(&[
                    ("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
                    ("content-type", "text/plain"),
                    ("x-amz-meta-note", "  two   spaces  inside "),
                    ("x-amz-meta-z", "last"),
                    ("x-amz-meta-a", "first"),
                    ("if-none-match", "*"),
                    ("content-length", "12345"),
                    ("host", "127.0.0.1:9000"),
                ]),
            ),
            (
                "PUT",
                "/bkt/obj?partNumber=7&uploadId=ab%2Dcd%5F%2E%7Eef%2Bgh%3D",
                h(&[("content-length", "5242880"), ("host", "127.0.0.1:9000")]),
            ),
            (
                "GET",
                "/bkt?continuation-token=1%2Fx%3D%3D&list-type=2&prefix=a%20b%2Fc&start-after=a%2F%E2%82%AC",
                h(&[("host", "127.0.0.1:9000")]),
            ),
            ("GET", "/bkt?list-type=2&prefix=", h(&[("host", "h")])),
            (
                "GET",
                "/bkt?start-after=z&prefix=p&list-type=2",
                h(&[("host", "h")]),
            ),
            ("POST", "/bkt/k?uploads", h(&[("host", "h")])),
        ];
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
        for token in [None, Some("FwoGZXIvYXdzE+/token==")] {
            let (creds, signer) = both(token);
            for (method, pq, headers) in &cases {
                let host = &headers.iter().find(|(k, _)| k == "host").unwrap().1;
                let url = format!("http://{host}{pq}");
                let want = reference(&creds, "eu-west-3", method, &url, headers, now);
                // Twice: the second signature uses the cached key.
                for _ in 0..2 {
                    let got = ours(&signer, method, pq, headers, now);
                    assert_eq!(got, want, "{method} {pq} {headers:?}");
                }
            }
        }
        // The next day's key is derived anew, not taken from the cache.
        let (creds, signer) = both(None);
        let headers = h(&[("host", "h")]);
        for day in 0..3 {
            let t = now + std::time::Duration::from_secs(day * 86_400);
            assert_eq!(
                ours(&signer, "GET", "/bkt/k", &headers, t),
                reference(&creds, "eu-west-3", "GET", "http://h/bkt/k", &headers, t)
            );
        }
    }
}
