//! Google Cloud Storage requests that bypass object_store: object PUTs, GETs, HEADs,
//! listings and folder markers.
//!
//! GCS computes an object's MD5 (`md5Hash`) for every upload made in one request, and its
//! XML API answers that MD5 in hex as the ETag, as S3 does. object_store, though, streams
//! a body larger than one part as an XML multipart upload, whose object has no MD5 and an
//! ETag that is not one; so a PUT is sent here as one streamed request instead, of any
//! size, and GCS computes the MD5. A multipart upload's S3 ETag is kept as the metadata
//! [`ETAG_META`], which the JSON API's listing carries: a listing shows every object's
//! ETag without a request per key. Object names ending in `/` (folder markers), which
//! object_store's paths cannot name, go the same way.
//!
//! An object written by another tool answers its XML ETag (its MD5, unless it was
//! composed or uploaded in parts).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use object_store::gcp::GcpCredentialProvider;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::rest::{self, Rest};
use crate::checksum::CHECKSUM_META;
use crate::config::{ConfigError, GcsBackend};
use crate::model::{
    Attrs, Body, ByteRange, ByteStream, Declared, ETAG_META, Error, GetOutcome, ObjectInfo,
    ObjectSummary, PutOutcome, Result, TAGS_META, WriteCondition,
};

/// An object name in an XML-API path: everything but the unreserved characters and `/`
/// escaped.
const XML_NAME: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');
/// An object name as one JSON-API path segment, or a query value.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A body up to this size is read whole before it is sent (one request that can be
/// repeated); a larger one streams.
const SMALL_PUT: u64 = 1 << 20;
/// A JSON listing page of 1000 objects with their metadata stays well below this.
const LIST_PAGE_MAX: usize = 64 << 20;

pub struct GcsDirect {
    rest: Rest,
    /// `scheme://host[:port]` of both APIs.
    base: String,
    bucket: String,
    credentials: GcpCredentialProvider,
}

/// An object's S3 ETag: the multipart ETag kept with it, else its XML ETag.
fn s3_etag(kept: Option<&str>, native: &str) -> String {
    match kept {
        Some(k) if super::is_multipart_etag(k) => k.to_owned(),
        _ => super::unquote_etag(native),
    }
}

impl GcsDirect {
    pub fn from_config(
        name: &str,
        c: &GcsBackend,
        credentials: GcpCredentialProvider,
    ) -> Result<Self, ConfigError> {
        let field = |f: &str| format!("backends.{name}.{f}");
        let base = c
            .endpoint
            .as_deref()
            .unwrap_or("https://storage.googleapis.com")
            .trim_end_matches('/')
            .to_owned();
        url::Url::parse(&base).map_err(|e| ConfigError::Invalid {
            field: field("endpoint"),
            message: e.to_string(),
        })?;
        Ok(Self {
            rest: Rest::new(
                name,
                &c.network,
                c.allow_http,
                c.ca_bundle.as_deref(),
                &field("ca_bundle"),
            )?,
            base,
            bucket: c.bucket.clone(),
            credentials,
        })
    }

    fn xml_url(&self, full_name: &str) -> String {
        format!(
            "{}/{}/{}",
            self.base,
            self.bucket,
            utf8_percent_encode(full_name, XML_NAME)
        )
    }

    fn json_url(&self, full_name: &str, query: &str) -> String {
        format!(
            "{}/storage/v1/b/{}/o/{}{query}",
            self.base,
            self.bucket,
            utf8_percent_encode(full_name, SEGMENT)
        )
    }

    /// A request with `headers`, with the bearer token (none for emulators).
    async fn request(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: &[(String, String)],
    ) -> Result<reqwest::RequestBuilder> {
        let credential = self.credentials.get_credential().await.map_err(|e| {
            self.rest
                .unavailable(format!("no credentials for GCS: {e}"))
        })?;
        let mut req = self.rest.http.request(method, url);
        if !credential.bearer.is_empty() {
            req = req.bearer_auth(&credential.bearer);
        }
        for (k, v) in headers {
            req = req.header(k, v);
        }
        Ok(req)
    }

    /// GETs (or HEADs) `full_name`, a byte range of it when asked; also the object's
    /// generation (for conditions).
    pub async fn get(
        &self,
        full_name: &str,
        range: Option<ByteRange>,
        head: bool,
    ) -> Result<(GetOutcome, Option<ByteStream>, Option<String>)> {
        let url = self.xml_url(full_name);
        // The stored bytes, not a decompressed version of them: GCS undoes a
        // `Content-Encoding: gzip` unless the client says it takes gzip.
        let mut headers = vec![("accept-encoding".to_owned(), "gzip".to_owned())];
        if let (Some(r), false) = (range, head) {
            headers.push(("range".to_owned(), rest::range_header(r)));
        }
        let method = if head {
            reqwest::Method::HEAD
        } else {
            reqwest::Method::GET
        };
        let resp = self
            .rest
            .send_retrying("GET", || self.request(method.clone(), &url, &headers))
            .await?;
        let resp = self.rest.got(resp, head).await?;
        let status = resp.status().as_u16();
        let h = resp.headers();
        let text = |name: &str| rest::header(h, name);
        let stored = text("x-goog-stored-content-length").and_then(|v| v.parse::<u64>().ok());
        let length = text("content-length")
            .and_then(|v| v.parse::<u64>().ok())
            .or(stored);
        let rest::Answered {
            size,
            served,
            last_modified,
            mut attrs,
            kept_etag: kept,
        } = self
            .rest
            .answered(status, h, length, "x-goog-meta-", str::to_owned)?;
        if let Some(tags) = attrs.metadata.remove(TAGS_META) {
            attrs.tags = crate::tagging::decode(&tags);
        }
        // `x-goog-hash: crc32c=…,md5=…`: the MD5 is there for objects that have one.
        let content_md5 = h
            .get_all("x-goog-hash")
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("").split(','))
            .find_map(|kv| kv.trim().strip_prefix("md5="))
            .and_then(|b64| STANDARD.decode(b64).ok())
            .and_then(|v| <[u8; 16]>::try_from(v).ok());
        let native = text("etag").unwrap_or_default();
        let outcome = GetOutcome {
            info: ObjectInfo {
                size,
                etag: Some(s3_etag(kept.as_deref(), &native)),
                last_modified,
                attrs,
                content_md5,
                foreign: false,
                untold_tags: 0,
            },
            range: served,
        };
        let generation = text("x-goog-generation");
        let body = (!head).then(|| self.rest.body_stream(resp));
        Ok((outcome, body, generation))
    }

    /// The S3 ETag and generation of the object, if it exists.
    async fn versions(&self, full_name: &str) -> Result<Option<(String, String)>> {
        match self.get(full_name, None, true).await {
            Ok((found, _, generation)) => Ok(Some((
                found.info.etag.unwrap_or_default(),
                generation.ok_or_else(|| self.rest.unavailable("a HEAD without a generation"))?,
            ))),
            Err(Error::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes `body` as `full_name` in one streamed request (chunked: nothing is held),
    /// which GCS commits only when the body is whole; a body that fails (or does not
    /// match `declared.md5`) commits nothing.
    pub async fn put(
        &self,
        full_name: &str,
        body: Body,
        declared: &Declared,
        attrs: &Attrs,
        cond: &WriteCondition,
    ) -> Result<PutOutcome> {
        let checksum_to_come = declared.checksum.is_pending();
        let attrs = declared.checksum.attrs(attrs);
        let mut headers = super::attr_headers(&attrs, super::STANDARD_ATTR_HEADERS, |k| {
            format!("x-goog-meta-{k}")
        });
        let kept = declared
            .etag
            .as_deref()
            .map(super::unquote_etag)
            .filter(|e| super::is_multipart_etag(e));
        if let Some(e) = &kept {
            headers.push((format!("x-goog-meta-{ETAG_META}"), e.clone()));
        }
        if !attrs.tags.is_empty() {
            headers.push((
                format!("x-goog-meta-{TAGS_META}"),
                crate::tagging::encode(&attrs.tags),
            ));
        }
        match cond {
            WriteCondition::None => {}
            WriteCondition::IfAbsent => {
                headers.push(("x-goog-if-generation-match".into(), "0".into()));
            }
            WriteCondition::IfMatch(want) => {
                let generation = rest::if_match_token(want, self.versions(full_name).await?)?;
                headers.push(("x-goog-if-generation-match".into(), generation));
            }
        }
        // The MD5 is computed on the way, and checked against a declared one before the
        // body's end goes out.
        let tally = Arc::new(std::sync::Mutex::new(Some(Md5::new())));
        let mut counted = {
            let tally = tally.clone();
            super::md5_checked(body, declared.md5)
                .inspect_ok(move |chunk| {
                    if let Some(m) = tally.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                        m.update(chunk);
                    }
                })
                .boxed()
        };
        let url = self.xml_url(full_name);
        // A small body is read whole first: one request of known length, which can be
        // repeated. A larger one streams: with its length when declared (the last bytes
        // held back until the body is known to be whole, so that a body failing its
        // checksum is cut short of its length and never committed), else chunked.
        let (first, whole) = super::objstore::read_up_to(&mut counted, SMALL_PUT).await?;
        let resp = if whole {
            // A trailer's checksum is known once the body is.
            if let (true, Some(c)) = (checksum_to_come, declared.checksum.get()) {
                headers.push((format!("x-goog-meta-{CHECKSUM_META}"), c.encode()));
            }
            let data: bytes::Bytes = first.concat().into();
            self.rest
                .send_retrying("PUT", || async {
                    Ok(self
                        .request(reqwest::Method::PUT, &url, &headers)
                        .await?
                        .header(reqwest::header::CONTENT_LENGTH, data.len())
                        .body(data.clone()))
                })
                .await?
        } else {
            let body = futures::stream::iter(first.into_iter().map(Ok))
                .chain(counted)
                .boxed();
            let req = self.request(reqwest::Method::PUT, &url, &headers).await?;
            self.rest.send_streaming(req, body, declared.len).await?
        };
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let text = self.rest.error_text(resp).await;
            return Err(match status {
                412 => Error::Precondition("the backend refused the write condition".into()),
                404 if matches!(cond, WriteCondition::IfMatch(_)) => Error::NotFound,
                _ => self
                    .rest
                    .unavailable(format!("PUT answered {status} {text}")),
            });
        }
        let md5: [u8; 16] = tally
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| Error::internal("the MD5 was taken"))?
            .finalize()
            .into();
        // A streamed body's trailer checksum came after its metadata: kept by a second
        // request, as a multipart upload's ETag is.
        let generation = rest::header(resp.headers(), "x-goog-generation");
        let etag = match (&kept, rest::header(resp.headers(), "etag")) {
            (Some(k), _) => k.clone(),
            (None, Some(native)) => super::unquote_etag(&native),
            (None, None) => hex::encode(md5),
        };
        if let (false, true, Some(c), Some(generation)) =
            (whole, checksum_to_come, declared.checksum.get(), generation)
        {
            let mut all = kept_metadata(&attrs);
            all.insert(CHECKSUM_META.to_owned(), c.encode());
            if let Some(k) = kept {
                all.insert(ETAG_META.to_owned(), k);
            }
            if let Err(e) = self.patch_metadata(full_name, &generation, all).await {
                tracing::warn!(key = full_name, error = %e, "could not keep an object's checksum with it");
            }
        }
        Ok(PutOutcome { etag: Some(etag) })
    }

    /// Deletes `full_name`; a missing object is not an error.
    pub async fn delete(&self, full_name: &str) -> Result<()> {
        let url = self.xml_url(full_name);
        let resp = self
            .rest
            .send_retrying("DELETE", || {
                self.request(reqwest::Method::DELETE, &url, &[])
            })
            .await?;
        match resp.status().as_u16() {
            200..=299 | 404 => Ok(()),
            s => {
                let text = self.rest.error_text(resp).await;
                Err(self.rest.unavailable(format!("DELETE answered {s} {text}")))
            }
        }
    }

    /// Keeps the S3 ETag of a completed multipart upload (`etag`) with the object it made
    /// (generation `generation`, so a newer write is never given it). GCS's multipart
    /// completion takes no metadata, so this is a second request, made at once: until it
    /// lands the object answers GCS's own ETag.
    /// `attrs` are the object's own (its metadata and tags are sent along: GCS merges
    /// them, and an emulator that replaces the whole map keeps them too).
    pub async fn keep_etag(
        &self,
        full_name: &str,
        generation: &str,
        etag: &str,
        attrs: &Attrs,
    ) -> Result<()> {
        let mut all = kept_metadata(attrs);
        all.insert(ETAG_META.to_owned(), etag.to_owned());
        self.patch_metadata(full_name, generation, all).await
    }

    /// Replaces the tags of `full_name`, kept in its metadata entry [`TAGS_META`]: a
    /// metadata update (JSON-API PATCH, which GCS merges into the object's metadata), so
    /// the bytes, the MD5 and the generation stay. GCS counts it as a change of the
    /// object's metadata all the same: its `updated` time moves.
    pub async fn put_tags(&self, full_name: &str, tags: &crate::model::Tags) -> Result<()> {
        // `null` removes the entry.
        let value = (!tags.is_empty()).then(|| crate::tagging::encode(tags));
        let mut metadata = serde_json::Map::new();
        metadata.insert(TAGS_META.to_owned(), value.into());
        match self.patch(full_name, "", metadata).await? {
            404 => Err(Error::NotFound),
            _ => Ok(()),
        }
    }

    /// Sets the metadata of generation `generation` of `full_name` to `all` (a newer
    /// generation is left alone).
    async fn patch_metadata(
        &self,
        full_name: &str,
        generation: &str,
        all: std::collections::BTreeMap<String, String>,
    ) -> Result<()> {
        let query = format!(
            "?ifGenerationMatch={}",
            utf8_percent_encode(generation, SEGMENT)
        );
        let all = all.into_iter().map(|(k, v)| (k, v.into())).collect();
        // 404 or 412: replaced (or deleted) since; the newer object has its own entries.
        self.patch(full_name, &query, all).await.map(drop)
    }

    /// A JSON-API PATCH of `full_name`'s metadata entries (GCS merges them into the
    /// object's); its status when 2xx, 404 or 412.
    async fn patch(
        &self,
        full_name: &str,
        query: &str,
        metadata: serde_json::Map<String, serde_json::Value>,
    ) -> Result<u16> {
        let url = self.json_url(full_name, query);
        let body = serde_json::json!({ "metadata": metadata }).to_string();
        let headers = [("content-type".to_owned(), "application/json".to_owned())];
        let resp = self
            .rest
            .send_retrying("PATCH", || async {
                Ok(self
                    .request(reqwest::Method::PATCH, &url, &headers)
                    .await?
                    .body(body.clone()))
            })
            .await?;
        match resp.status().as_u16() {
            s @ (200..=299 | 404 | 412) => Ok(s),
            s => {
                let text = self.rest.error_text(resp).await;
                Err(self.rest.unavailable(format!("PATCH answered {s} {text}")))
            }
        }
    }

    /// Objects under `full_prefix` after `after` (full names), by name, with the ETag an
    /// S3 client sees, one JSON-API page (up to 1000 objects) fetched at a time. An object
    /// with neither an MD5 nor a kept ETag (composed, or uploaded in parts by another
    /// tool) costs a HEAD for its XML ETag, which the JSON API does not give.
    pub fn list(
        self: Arc<Self>,
        full_prefix: String,
        after: Option<String>,
    ) -> BoxStream<'static, Result<ObjectSummary>> {
        futures::stream::try_unfold(Some(None::<String>), move |token| {
            let this = self.clone();
            let prefix = full_prefix.clone();
            let after = after.clone();
            async move {
                let Some(token) = token else {
                    return Ok(None);
                };
                let (rows, next) = this
                    .list_page(&prefix, after.as_deref(), token.as_deref())
                    .await?;
                if next.is_some() && next == token {
                    return Err(this
                        .rest
                        .unavailable("the listing answered the same page token twice"));
                }
                let mut out = Vec::with_capacity(rows.len());
                for row in rows {
                    if after.as_deref().is_some_and(|a| row.name.as_str() <= a) {
                        continue;
                    }
                    let etag = match (row.kept, row.md5) {
                        (Some(k), _) if super::is_multipart_etag(&k) => k,
                        (_, Some(md5)) => hex::encode(md5),
                        _ => match this.get(&row.name, None, true).await {
                            Ok((found, _, _)) => found.info.etag.unwrap_or_default(),
                            Err(Error::NotFound) => continue,
                            Err(e) => return Err(e),
                        },
                    };
                    out.push(Ok(ObjectSummary {
                        key: row.name,
                        size: row.size,
                        etag: Some(etag),
                        last_modified: row.updated,
                    }));
                }
                Ok(Some((futures::stream::iter(out), next.map(Some))))
            }
        })
        .try_flatten()
        .boxed()
    }

    async fn list_page(
        &self,
        full_prefix: &str,
        after: Option<&str>,
        token: Option<&str>,
    ) -> Result<(Vec<ListedObject>, Option<String>)> {
        let value = |v: &str| utf8_percent_encode(v, SEGMENT).to_string();
        let mut url = format!(
            "{}/storage/v1/b/{}/o?prefix={}&fields={}",
            self.base,
            self.bucket,
            value(full_prefix),
            value("nextPageToken,items(name,size,updated,md5Hash,metadata)")
        );
        if let Some(a) = after {
            url.push_str(&format!("&startOffset={}", value(a)));
        }
        if let Some(t) = token {
            url.push_str(&format!("&pageToken={}", value(t)));
        }
        let resp = self
            .rest
            .send_retrying("list", || self.request(reqwest::Method::GET, &url, &[]))
            .await?;
        let json = self
            .rest
            .read_ok("the listing", resp, LIST_PAGE_MAX)
            .await?;
        parse_list_page(&json).map_err(|e| {
            self.rest
                .unavailable(format!("unreadable listing answer: {e}"))
        })
    }
}

/// The metadata entries an object written with `attrs` has: the client's (and a kept
/// checksum), and its tags.
fn kept_metadata(attrs: &Attrs) -> std::collections::BTreeMap<String, String> {
    let mut all = attrs.metadata.clone();
    if !attrs.tags.is_empty() {
        all.insert(TAGS_META.to_owned(), crate::tagging::encode(&attrs.tags));
    }
    all
}

struct ListedObject {
    name: String,
    size: u64,
    updated: chrono::DateTime<chrono::Utc>,
    md5: Option<[u8; 16]>,
    kept: Option<String>,
}

fn parse_list_page(
    json: &[u8],
) -> std::result::Result<(Vec<ListedObject>, Option<String>), String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Page {
        #[serde(default)]
        items: Vec<Item>,
        next_page_token: Option<String>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Item {
        name: String,
        /// A string in GCS's answers (a 64-bit number); a number from some emulators.
        size: serde_json::Value,
        updated: String,
        md5_hash: Option<String>,
        #[serde(default)]
        metadata: std::collections::BTreeMap<String, String>,
    }
    let page: Page = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    let rows = page
        .items
        .into_iter()
        .map(|mut i| {
            Ok(ListedObject {
                size: match &i.size {
                    serde_json::Value::String(v) => v.parse().ok(),
                    serde_json::Value::Number(n) => n.as_u64(),
                    _ => None,
                }
                .ok_or_else(|| format!("{}: size {}", i.name, i.size))?,
                updated: chrono::DateTime::parse_from_rfc3339(&i.updated)
                    .map_err(|_| format!("{}: updated {:?}", i.name, i.updated))?
                    .with_timezone(&chrono::Utc),
                md5: i
                    .md5_hash
                    .as_deref()
                    .and_then(|b| STANDARD.decode(b).ok())
                    .and_then(|v| <[u8; 16]>::try_from(v).ok()),
                kept: i.metadata.remove(ETAG_META),
                name: i.name,
            })
        })
        .collect::<std::result::Result<Vec<_>, String>>()?;
    Ok((rows, page.next_page_token.filter(|t| !t.is_empty())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_page_gives_md5s_and_kept_etags() {
        let json = br#"{"kind":"storage#objects","nextPageToken":"t2","items":[
            {"name":"p/a","size":"3","updated":"2024-01-01T00:00:00.123Z","md5Hash":"rL0Y20zC+Fzt72VPzMSk2A=="},
            {"name":"p/m","size":"9","updated":"2024-01-01T00:00:00Z","metadata":{"switchyard-etag":"96e024ba2074fe77e8e965ba43a704be-2","colour":"blue"}},
            {"name":"p/d/","size":"0","updated":"2024-01-01T00:00:00Z","md5Hash":"1B2M2Y8AsgTpgAmY7PhCfg=="}]}"#;
        let (rows, next) = parse_list_page(json).unwrap();
        assert_eq!(next.as_deref(), Some("t2"));
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[0].md5.map(hex::encode).as_deref(),
            Some("acbd18db4cc2f85cedef654fccc4a4d8")
        );
        assert_eq!(
            rows[1].kept.as_deref(),
            Some("96e024ba2074fe77e8e965ba43a704be-2")
        );
        assert_eq!(rows[2].name, "p/d/");
        let (rows, next) = parse_list_page(br#"{"kind":"storage#objects"}"#).unwrap();
        assert!(rows.is_empty() && next.is_none());
        assert!(parse_list_page(b"<xml/>").is_err());
        assert_eq!(s3_etag(None, "\"abc\""), "abc");
        assert_eq!(s3_etag(Some("not-multipart"), "\"abc\""), "abc");
    }
}
