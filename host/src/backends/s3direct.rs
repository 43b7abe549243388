//! S3 requests with static credentials that bypass object_store: single-request streaming
//! PUTs for bodies whose length is known, GETs and HEADs, and listings.
//!
//! `object_store` takes a PUT body as one in-memory payload, or streams it as a multipart
//! upload of buffered parts (`part_size` each, several in flight). For a gateway that is
//! the wrong trade: every upload in flight holds megabytes, so memory grows with
//! concurrency times part size, and small objects wait until their whole body has arrived
//! before the backend sees a byte. When the client declared the length (S3 requires it
//! anyway, up to 5 GiB per PUT), the body can instead flow through as it arrives: one
//! signed request with `UNSIGNED-PAYLOAD`, the bytes passed on chunk by chunk, so memory
//! per upload is a few chunks whatever the object's size. A body that ends early, runs
//! long or fails its checksum aborts the request, and S3 commits nothing.
//!
//! GETs and HEADs go the same way: object_store's per-request cost (its signer parses the
//! URL and formats dates anew each time) was the largest user-space share of a small
//! GET, and its answer leaves out the encryption headers that say whether an ETag is the
//! content's MD5. So do listings: object_store reads a ListObjectsV2 page with a serde
//! deserializer that cost more than half of the gateway's CPU per LIST; an event reader
//! that picks the four fields a listing needs costs a fraction of that.

use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::rest::Rest;
use super::sigv4::Signer;
use crate::config::{ConfigError, S3Backend};
mod versioned;
pub use versioned::{NativePage, NativeRow, S3Native};

use crate::model::{
    Attrs, Body, ByteRange, ByteStream, Error, GetOutcome, ObjectInfo, ObjectSummary, PutOutcome,
    Result, WriteCondition,
};

/// Everything but S3's unreserved characters is escaped in a query value.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A page of 1000 keys of 1 KiB each is about 1.3 MiB of XML.
const LIST_PAGE_MAX: usize = 16 << 20;

/// S3's largest single PUT.
pub const MAX_SINGLE_PUT: u64 = 5 * 1024 * 1024 * 1024;

/// A key's path is escaped as a query value, but for `/`.
const KEY: &AsciiSet = &QUERY_VALUE.remove(b'/');

pub struct S3Direct {
    /// The client, its timeouts and retries (`network.*`): a request fails when neither a
    /// body chunk went out nor the answer came in for `network.read_timeout`; GETs and
    /// HEADs that failed before an answer, or with a 5xx, are retried with backoff, as
    /// object_store would.
    rest: Rest,
    signer: Signer,
    /// `scheme://host[:port]`.
    origin: String,
    /// The host header value.
    host: String,
    /// Path before the key: `/bucket/` (path style) or `/` (virtual-hosted).
    base_path: String,
}

impl S3Direct {
    /// Only for backends with static credentials: others (instance roles, web identity)
    /// keep going through `object_store`, which knows how to refresh them.
    pub fn from_config(name: &str, c: &S3Backend) -> Result<Option<Self>, ConfigError> {
        let field = |f: &str| format!("backends.{name}.{f}");
        let (Some(ak), Some(sk)) = (&c.access_key_id, &c.secret_access_key) else {
            return Ok(None);
        };
        let token = match &c.session_token {
            Some(t) => Some(t.resolve(&field("session_token"))?),
            None => None,
        };
        let signer = Signer::new(
            ak.resolve(&field("access_key_id"))?,
            sk.resolve(&field("secret_access_key"))?,
            token,
            c.region.clone(),
        );
        let (origin, base_path) = match (&c.endpoint, c.virtual_hosted_style) {
            (Some(e), false) => (
                e.trim_end_matches('/').to_owned(),
                format!("/{}/", c.bucket),
            ),
            // As object_store reads it: a virtual-hosted endpoint already names the bucket.
            (Some(e), true) => (e.trim_end_matches('/').to_owned(), "/".to_owned()),
            (None, _) => (
                format!("https://{}.s3.{}.amazonaws.com", c.bucket, c.region),
                "/".to_owned(),
            ),
        };
        let url = url::Url::parse(&origin).map_err(|e| ConfigError::Invalid {
            field: field("endpoint"),
            message: e.to_string(),
        })?;
        if !url.path().trim_matches('/').is_empty() {
            // An endpoint with a path of its own: leave it to object_store.
            return Ok(None);
        }
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Ok(None),
        };
        // In addition to the system's roots, as object_store's client has them.
        let rest = Rest::new(
            name,
            &c.network,
            c.allow_http,
            c.ca_bundle.as_deref(),
            &field("ca_bundle"),
        )?;
        Ok(Some(Self {
            rest,
            signer,
            origin,
            host,
            base_path,
        }))
    }

    fn unavailable(&self, message: impl std::fmt::Display) -> Error {
        self.rest.unavailable(message)
    }

    fn url(&self, full_key: &str, query: &str) -> String {
        let path = format!("{}{}", self.base_path, utf8_percent_encode(full_key, KEY));
        format!("{}{path}{query}", self.origin)
    }

    /// A request with `headers`, signed (SigV4, `UNSIGNED-PAYLOAD`).
    fn signed(
        &self,
        method: reqwest::Method,
        url: &str,
        mut headers: Vec<(String, String)>,
    ) -> Result<reqwest::RequestBuilder> {
        let path_and_query = url
            .strip_prefix(self.origin.as_str())
            .ok_or_else(|| Error::internal(format!("{url} is not under {}", self.origin)))?;
        headers.push(("host".into(), self.host.clone()));
        let signed = self
            .signer
            .sign(method.as_str(), path_and_query, &headers, SystemTime::now());
        let mut req = self.rest.http.request(method, url);
        // reqwest sets host and content-length itself (from the URL and the body).
        for (k, v) in headers
            .iter()
            .filter(|(k, _)| k != "host" && k != "content-length")
        {
            req = req.header(k, v);
        }
        for (k, v) in signed {
            req = req.header(k, v);
        }
        Ok(req)
    }

    /// GETs (or HEADs) `full_key`, a byte range of it when asked. object_store would do
    /// as well, but at about twice the CPU per request (its signer parses the URL and
    /// formats the date anew every time), and without the encryption headers that tell
    /// whether the ETag is the content's MD5.
    pub async fn get(
        &self,
        full_key: &str,
        range: Option<ByteRange>,
        head: bool,
    ) -> Result<(GetOutcome, Option<ByteStream>)> {
        let url = self.url(full_key, "");
        let mut headers = Vec::new();
        if let (Some(r), false) = (range, head) {
            headers.push(("range".into(), super::rest::range_header(r)));
        }
        let method = if head {
            reqwest::Method::HEAD
        } else {
            reqwest::Method::GET
        };
        let resp = self.send_retrying(method, &url, &headers).await?;
        let status = resp.status().as_u16();
        match status {
            200 | 206 => {}
            404 => return Err(Error::NotFound),
            416 => return Err(Error::InvalidRange),
            s => {
                // A HEAD answer has no body to name the error.
                let code = if head {
                    String::new()
                } else {
                    self.error_code(resp).await
                };
                return Err(self.unavailable(format!("GET answered {s} {code}")));
            }
        }
        self.read_object(resp, head)
    }

    /// A 200 or 206 answer to a GET or HEAD: the object's attributes, and its body unless
    /// `head`.
    fn read_object(
        &self,
        resp: reqwest::Response,
        head: bool,
    ) -> Result<(GetOutcome, Option<ByteStream>)> {
        let status = resp.status().as_u16();
        let h = resp.headers();
        let text = |name: &str| super::rest::header(h, name);
        let length = text("content-length").and_then(|v| v.parse::<u64>().ok());
        // The kept ETag of other kinds means nothing here: S3 makes its own ETags (and
        // clients cannot write the reserved metadata name).
        let super::rest::Answered {
            size,
            served,
            last_modified,
            attrs,
            kept_etag: _,
        } = self
            .rest
            .answered(status, h, length, "x-amz-meta-", str::to_owned)?;
        let etag = text("etag").map(super::objstore::unquote);
        // The tags themselves cost a request of their own, made when they are needed.
        let untold_tags = text("x-amz-tagging-count")
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap_or(0);
        // SSE-KMS and SSE-C objects have ETags that are not the MD5 of their content.
        let encrypted = text("x-amz-server-side-encryption").is_some_and(|v| v.contains("kms"))
            || h.contains_key("x-amz-server-side-encryption-customer-algorithm");
        let content_md5 = if encrypted {
            None
        } else {
            etag.as_deref().and_then(super::etag_md5)
        };
        let outcome = GetOutcome {
            info: ObjectInfo {
                size,
                etag,
                last_modified,
                attrs,
                content_md5,
                foreign: false,
                untold_tags,
            },
            range: served,
        };
        if head {
            return Ok((outcome, None));
        }
        let body = self.rest.body_stream(resp);
        Ok((outcome, Some(body)))
    }

    /// Sends a request without a body, retrying failures before an answer and 5xx
    /// answers with backoff (`network.max_retries` within `network.retry_timeout`), as
    /// object_store would.
    async fn send_retrying(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: &[(String, String)],
    ) -> Result<reqwest::Response> {
        // Signed anew each time: the signature carries the time.
        self.rest
            .send_retrying(method.as_str(), || async {
                self.signed(method.clone(), url, headers.to_vec())
            })
            .await
    }

    /// Keys under `full_prefix` (the backend's prefix included) after `start_after`, in
    /// S3's order, one ListObjectsV2 page (up to 1000 keys) fetched at a time as the
    /// stream is read.
    pub fn list(
        self: Arc<Self>,
        full_prefix: String,
        start_after: Option<String>,
    ) -> BoxStream<'static, Result<ObjectSummary>> {
        // `None` once the last page is in; the first page starts after `start_after`,
        // the others from the previous page's continuation token.
        let first = PageCursor::StartAfter(start_after);
        futures::stream::try_unfold(Some(first), move |cursor| {
            let this = self.clone();
            let prefix = full_prefix.clone();
            async move {
                let Some(cursor) = cursor else {
                    return Ok(None);
                };
                let page = this.list_page(&prefix, &cursor).await?;
                let next = match page.next {
                    Some(t) if matches!(&cursor, PageCursor::Token(prev) if *prev == t) => {
                        return Err(this.unavailable(
                            "ListObjectsV2 answered the same continuation token twice",
                        ));
                    }
                    Some(t) => Some(PageCursor::Token(t)),
                    None => None,
                };
                let rows = futures::stream::iter(page.objects.into_iter().map(Ok));
                Ok(Some((rows, next)))
            }
        })
        .try_flatten()
        .boxed()
    }

    async fn list_page(&self, full_prefix: &str, cursor: &PageCursor) -> Result<ListedPage> {
        let value = |v: &str| utf8_percent_encode(v, QUERY_VALUE).to_string();
        // Parameters in the order SigV4 sorts them.
        let mut query = String::from("?");
        if let PageCursor::Token(t) = cursor {
            query.push_str(&format!("continuation-token={}&", value(t)));
        }
        query.push_str("list-type=2");
        query.push_str(&format!("&prefix={}", value(full_prefix)));
        if let PageCursor::StartAfter(Some(after)) = cursor {
            query.push_str(&format!("&start-after={}", value(after)));
        }
        let bucket_path = match self.base_path.trim_end_matches('/') {
            "" => "/",
            p => p,
        };
        let url = format!("{}{bucket_path}{query}", self.origin);
        let resp = self.send_retrying(reqwest::Method::GET, &url, &[]).await?;
        let status = resp.status();
        if !status.is_success() {
            let code = self.error_code(resp).await;
            return Err(self.unavailable(format!("ListObjectsV2 answered {status} {code}")));
        }
        let xml = self.rest.read_all(resp, LIST_PAGE_MAX).await?;
        parse_list_page(&xml)
            .map_err(|e| self.unavailable(format!("unreadable ListObjectsV2 answer: {e}")))
    }

    /// The `<Code>` of an S3 error answer's body ("" when it has none, or takes longer
    /// than the idle timeout to arrive).
    async fn error_code(&self, resp: reqwest::Response) -> String {
        let text = self.rest.error_text(resp).await;
        text.split_once("<Code>")
            .and_then(|(_, r)| r.split_once("</Code>"))
            .map_or("", |(c, _)| c)
            .to_owned()
    }

    /// Deletes `full_key`; a missing key is not an error. For folder markers, which
    /// object_store cannot name.
    pub async fn delete(&self, full_key: &str) -> Result<()> {
        self.delete_version(full_key, None).await.map(drop)
    }

    /// PUTs `len` bytes of `body` to `full_key` (the key with the backend's prefix).
    pub async fn put(
        &self,
        full_key: &str,
        body: Body,
        len: u64,
        md5: Option<[u8; 16]>,
        attrs: &Attrs,
        cond: &WriteCondition,
    ) -> Result<PutOutcome> {
        let mut headers = super::attr_headers(attrs, super::STANDARD_ATTR_HEADERS, |k| {
            format!("x-amz-meta-{k}")
        });
        if let Some(md5) = md5 {
            headers.push(("content-md5".into(), STANDARD.encode(md5)));
        }
        if !attrs.tags.is_empty() {
            headers.push(("x-amz-tagging".into(), crate::tagging::encode(&attrs.tags)));
        }
        match cond {
            WriteCondition::None => {}
            WriteCondition::IfAbsent => headers.push(("if-none-match".into(), "*".into())),
            WriteCondition::IfMatch(_) => {
                return Err(Error::internal("If-Match writes go through object_store"));
            }
        }
        let etag = self.send(full_key, "", headers, body, len).await?;
        Ok(PutOutcome {
            etag: etag.map(super::objstore::unquote),
        })
    }

    /// The tags of `full_key` (GetObjectTagging).
    pub async fn get_tags(&self, full_key: &str) -> Result<crate::model::Tags> {
        self.get_tags_at(full_key, "?tagging").await
    }

    /// [`Self::get_tags`] with the query given (`?tagging`, and a version's id).
    async fn get_tags_at(&self, full_key: &str, query: &str) -> Result<crate::model::Tags> {
        let url = self.url(full_key, query);
        let resp = self.send_retrying(reqwest::Method::GET, &url, &[]).await?;
        match resp.status().as_u16() {
            200 => {}
            404 => return Err(Error::NotFound),
            s => {
                let code = self.error_code(resp).await;
                return Err(self.unavailable(format!("GetObjectTagging answered {s} {code}")));
            }
        }
        let xml = self.rest.read_all(resp, TAGGING_MAX).await?;
        super::rest::parse_tag_set(&xml, "Tagging")
            .map_err(|e| self.unavailable(format!("unreadable GetObjectTagging answer: {e}")))
    }

    /// Replaces the tags of `full_key` (PutObjectTagging; DeleteObjectTagging for none).
    /// S3 keeps the object's bytes, ETag and Last-Modified.
    pub async fn put_tags(&self, full_key: &str, tags: &crate::model::Tags) -> Result<()> {
        self.put_tags_at(full_key, "?tagging", tags).await
    }

    /// [`Self::put_tags`] with the query given (`?tagging`, and a version's id).
    async fn put_tags_at(
        &self,
        full_key: &str,
        query: &str,
        tags: &crate::model::Tags,
    ) -> Result<()> {
        let url = self.url(full_key, query);
        let (method, what) = if tags.is_empty() {
            (reqwest::Method::DELETE, "DeleteObjectTagging")
        } else {
            (reqwest::Method::PUT, "PutObjectTagging")
        };
        let mut headers = Vec::new();
        let body = bytes::Bytes::from(super::rest::tag_set_xml(S3_TAGGING, tags));
        if !tags.is_empty() {
            use md5::Digest as _;
            // S3 requires a digest of the body of PutObjectTagging.
            headers.push((
                "content-md5".to_owned(),
                STANDARD.encode(md5::Md5::digest(&body)),
            ));
            headers.push(("content-type".to_owned(), "application/xml".to_owned()));
            headers.push(("content-length".to_owned(), body.len().to_string()));
        }
        let sent = self
            .rest
            .send_retrying(what, || async {
                let req = self.signed(method.clone(), &url, headers.clone())?;
                Ok(if tags.is_empty() {
                    req
                } else {
                    req.body(body.clone())
                })
            })
            .await;
        let resp = match sent {
            Ok(resp) => resp,
            // moto answers 500 to DeleteObjectTagging of a missing key, where S3 answers
            // NoSuchKey: a look tells which (only when the request failed).
            Err(e @ Error::Unavailable { .. }) if tags.is_empty() => {
                return match self.get(full_key, None, true).await {
                    Err(Error::NotFound) => Err(Error::NotFound),
                    _ => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let code = self.error_code(resp).await;
        Err(match (status, code.as_str()) {
            (404, _) => Error::NotFound,
            (400, "InvalidTag") => Error::InvalidTag("the S3 server refused the tags".into()),
            (s, c) => self.unavailable(format!("{what} answered {s} {c}")),
        })
    }

    /// Uploads part `part_number` (from 1) of multipart upload `upload_id`; returns the
    /// part's ETag as S3 sent it (the form CompleteMultipartUpload takes back).
    pub async fn put_part(
        &self,
        full_key: &str,
        upload_id: &str,
        part_number: usize,
        body: Body,
        len: u64,
    ) -> Result<String> {
        let query = format!(
            "?partNumber={part_number}&uploadId={}",
            utf8_percent_encode(upload_id, NON_ALPHANUMERIC)
        );
        self.send(full_key, &query, Vec::new(), body, len)
            .await?
            .ok_or_else(|| self.unavailable("UploadPart answered without an ETag"))
    }

    /// One signed PUT with a streamed body of `len` bytes; the ETag header of the answer.
    async fn send(
        &self,
        full_key: &str,
        query: &str,
        headers: Vec<(String, String)>,
        body: Body,
        len: u64,
    ) -> Result<Option<String>> {
        let answer = self
            .send_answer(full_key, query, headers, body, len)
            .await?;
        Ok(super::rest::header(&answer, "etag"))
    }

    /// [`Self::send`], answering the headers of the answer.
    async fn send_answer(
        &self,
        full_key: &str,
        query: &str,
        mut headers: Vec<(String, String)>,
        body: Body,
        len: u64,
    ) -> Result<reqwest::header::HeaderMap> {
        let url = self.url(full_key, query);
        headers.push(("content-length".into(), len.to_string()));
        let req = self.signed(reqwest::Method::PUT, &url, headers)?;
        let resp = self.rest.send_streaming(req, body, Some(len)).await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp.headers().clone());
        }
        let code = self.error_code(resp).await;
        Err(match (status.as_u16(), code.as_str()) {
            (412, _) | (409, "ConditionalRequestConflict") => {
                Error::Precondition("the backend refused the write condition".into())
            }
            (404, "NoSuchKey") => Error::NotFound,
            (400, "BadDigest") => Error::BadDigest,
            (404, "NoSuchUpload") => Error::NoSuchUpload,
            (s, c) => self.unavailable(format!("PUT answered {s} {c}")),
        })
    }
}

/// A GetObjectTagging answer holds at most 10 tags of a few hundred bytes each.
const TAGGING_MAX: usize = 64 << 10;

/// The root element of PutObjectTagging's body.
const S3_TAGGING: &str = r#"Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/""#;

/// Where a listing page starts: after a key (the first page), or from the previous
/// page's continuation token.
enum PageCursor {
    StartAfter(Option<String>),
    Token(String),
}

#[derive(Debug, Default)]
struct ListedPage {
    objects: Vec<ObjectSummary>,
    /// The continuation token, when the listing goes on.
    next: Option<String>,
}

/// The fields of a ListObjectsV2 answer that a listing uses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ListField {
    Key,
    LastModified,
    ETag,
    Size,
    IsTruncated,
    NextToken,
}

/// Reads a ListObjectsV2 answer with quick-xml's event reader: the fields a listing
/// needs are picked as they pass, and the rest (owners, storage classes, checksums) is
/// skipped unread. object_store's serde deserializer of the same answer was more than
/// half of the gateway's CPU per LIST of 1000 keys.
fn parse_list_page(xml: &[u8]) -> std::result::Result<ListedPage, String> {
    use quick_xml::events::Event;

    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut page = ListedPage::default();
    let mut truncated = false;
    // Depth of the element being read: 1 is the root, 2 its children.
    let mut depth = 0usize;
    let mut root_seen = false;
    let mut in_contents = false;
    let mut field: Option<ListField> = None;
    let mut text = String::new();
    let (mut key, mut etag, mut size, mut modified) = (None, None, None, None);
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => {
                depth += 1;
                let name = e.local_name();
                let name = name.as_ref();
                field = None;
                match (depth, in_contents, name) {
                    (1, _, b"ListBucketResult") => root_seen = true,
                    (1, _, other) => {
                        return Err(format!("root element {:?}", String::from_utf8_lossy(other)));
                    }
                    (2, _, b"Contents") => {
                        in_contents = true;
                        (key, etag, size, modified) = (None, None, None, None);
                    }
                    (2, _, b"IsTruncated") => field = Some(ListField::IsTruncated),
                    (2, _, b"NextContinuationToken") => field = Some(ListField::NextToken),
                    (3, true, b"Key") => field = Some(ListField::Key),
                    (3, true, b"LastModified") => field = Some(ListField::LastModified),
                    (3, true, b"ETag") => field = Some(ListField::ETag),
                    (3, true, b"Size") => field = Some(ListField::Size),
                    _ => {}
                }
                text.clear();
            }
            Event::Empty(e) if depth == 0 && e.local_name().as_ref() == b"ListBucketResult" => {
                root_seen = true;
            }
            Event::Text(t) if field.is_some() => {
                text.push_str(&t.decode().map_err(|e| e.to_string())?);
            }
            Event::GeneralRef(r) if field.is_some() => super::rest::push_xml_ref(&mut text, &r)?,
            Event::End(_) => {
                match field.take() {
                    Some(ListField::Key) => key = Some(std::mem::take(&mut text)),
                    Some(ListField::ETag) => {
                        etag = Some(super::objstore::unquote(std::mem::take(&mut text)));
                    }
                    Some(ListField::Size) => {
                        size = Some(
                            text.trim()
                                .parse::<u64>()
                                .map_err(|_| format!("Size {text:?} is not a number"))?,
                        );
                    }
                    Some(ListField::LastModified) => {
                        let t = chrono::DateTime::parse_from_rfc3339(text.trim())
                            .map_err(|_| format!("LastModified {text:?} is not a date"))?;
                        modified = Some(t.with_timezone(&chrono::Utc));
                    }
                    Some(ListField::IsTruncated) => truncated = text.trim() == "true",
                    Some(ListField::NextToken) => page.next = Some(std::mem::take(&mut text)),
                    None => {}
                }
                if depth == 2 && in_contents {
                    in_contents = false;
                    let key = key.take().ok_or("an entry without a Key")?;
                    page.objects.push(ObjectSummary {
                        size: size.ok_or_else(|| format!("{key:?} without a Size"))?,
                        last_modified: modified
                            .ok_or_else(|| format!("{key:?} without a LastModified"))?,
                        etag: etag.take(),
                        key,
                    });
                }
                depth = depth.saturating_sub(1);
            }
            // A cut answer must not pass for a short page.
            Event::Eof if depth > 0 => return Err("the answer ends inside an element".into()),
            Event::Eof => break,
            _ => {}
        }
    }
    if !root_seen {
        return Err("no ListBucketResult".into());
    }
    if truncated && page.next.is_none() {
        return Err("IsTruncated without a NextContinuationToken".into());
    }
    if !truncated {
        page.next = None;
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer as AWS writes it: namespaced, with owners, checksums and common
    /// prefixes around the fields a listing reads, and keys that need escaping.
    const LIST_PAGE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bucket</Name><Prefix>p/</Prefix><KeyCount>3</KeyCount><MaxKeys>3</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <Contents>
    <Key>p/a &amp; b &lt;c&gt; &#x65E5;&#26412; </Key>
    <LastModified>2026-11-29T09:50:22.123Z</LastModified>
    <ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag>
    <ChecksumAlgorithm>CRC32</ChecksumAlgorithm>
    <Size>4096</Size>
    <Owner><ID>Key</ID><DisplayName>Size</DisplayName></Owner>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <Contents><Key>p/b</Key><LastModified>2026-01-01T00:00:00Z</LastModified>
    <Size>0</Size></Contents>
  <CommonPrefixes><Prefix>p/dir/</Prefix></CommonPrefixes>
  <Contents>
    <Key>p/c</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>
    <ETag>"multi-3"</ETag><Size>18446744073709551615</Size>
  </Contents>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
</ListBucketResult>"#;

    #[test]
    fn a_listing_page_reads_as_s3_wrote_it() {
        let page = parse_list_page(LIST_PAGE.as_bytes()).unwrap();
        let keys: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
        // Whitespace inside a key is part of it; the owner's ID named Key is not one.
        assert_eq!(keys, ["p/a & b <c> 日本 ", "p/b", "p/c"]);
        let a = &page.objects[0];
        assert_eq!(a.size, 4096);
        assert_eq!(a.etag.as_deref(), Some("9b2cf535f27731c974343645a3985328"));
        assert_eq!(
            a.last_modified.to_rfc3339(),
            "2026-11-29T09:50:22.123+00:00"
        );
        assert_eq!(page.objects[1].etag, None);
        assert_eq!(page.objects[2].etag.as_deref(), Some("multi-3"));
        assert_eq!(page.objects[2].size, u64::MAX);
        assert_eq!(
            page.next.as_deref(),
            Some("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")
        );

        let last = LIST_PAGE
            .replace("<IsTruncated>true", "<IsTruncated>false")
            .replace("<NextContinuationToken>", "<NextContinuationToken>x");
        let page = parse_list_page(last.as_bytes()).unwrap();
        assert_eq!(page.next, None, "a token on a last page is not followed");
        let empty = r#"<ListBucketResult><Name>b</Name><IsTruncated>false</IsTruncated></ListBucketResult>"#;
        let page = parse_list_page(empty.as_bytes()).unwrap();
        assert!(page.objects.is_empty() && page.next.is_none());
    }

    #[test]
    fn a_listing_page_that_is_not_one_is_an_error_not_an_empty_page() {
        let cases = [
            ("", "no ListBucketResult"),
            ("<Error><Code>AccessDenied</Code></Error>", "root element"),
            ("<ListBucketResult><Contents><Key>a</Key>", "ends inside"),
            (
                "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
                "without a NextContinuationToken",
            ),
            (
                "<ListBucketResult><Contents><Key>a</Key><Size>-1</Size></Contents></ListBucketResult>",
                "not a number",
            ),
            (
                "<ListBucketResult><Contents><Key>a</Key><Size>1</Size></Contents></ListBucketResult>",
                "without a LastModified",
            ),
            (
                "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
                "without a Key",
            ),
            (
                "<ListBucketResult><Contents><Key>&bogus;</Key></Contents></ListBucketResult>",
                "unknown entity",
            ),
            ("<ListBucketResult><Contents></ListBucketResult>", ""),
        ];
        for (xml, want) in cases {
            let err = parse_list_page(xml.as_bytes()).expect_err(xml);
            assert!(err.contains(want), "{xml}: {err}");
        }
    }
}
