//! Azure Blob requests that bypass object_store: object PUTs, GETs, HEADs, listings and
//! folder markers.
//!
//! An S3 client expects an object's ETag to be the MD5 of its content (of a multipart
//! upload: the MD5 of its parts' MD5s, a dash and their count). Azure's own ETags are
//! opaque (`0x8DC…`), but a blob has a place for its MD5: the `Content-MD5` property,
//! which Azure's tools (azcopy, Storage Explorer) check downloads against. Every blob the
//! gateway writes gets it (computed while the bytes stream through, set by the request
//! that commits the blob), and its ETag is that MD5 in hex. A multipart upload's ETag is
//! kept beside it as the metadata [`ETAG_META`]. object_store neither sets nor reads
//! `Content-MD5`, and its listings carry no metadata: with it, a listing would need a
//! request per key to show the ETag HEAD shows. So these requests are made here, and a
//! listing asks for metadata (`include=metadata`), which gives every blob's ETag in the
//! same page. Blob names ending in `/` (folder markers), which object_store's paths
//! cannot name, go the same way.
//!
//! A blob written by another tool answers the MD5 it has (Azure computes it for a blob
//! put in one request), else its Azure ETag.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::{Bytes, BytesMut};
use futures::stream::{BoxStream, FuturesOrdered};
use futures::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use object_store::azure::{AzureCredential, AzureCredentialProvider};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::objstore::{decode_meta_name, encode_meta_name};
use super::rest::{self, Rest};
use crate::checksum::CHECKSUM_META;
use crate::config::{AzureBackend, ConfigError};
use crate::model::{
    Attrs, Body, ByteRange, ByteStream, Declared, ETAG_META, Error, GetOutcome, ObjectInfo,
    ObjectSummary, PutOutcome, Result, WriteCondition,
};

/// What a blob name keeps unescaped in a URL path: the unreserved characters and `/`.
const NAME: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');
/// What a query value keeps unescaped.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The REST API version of every request (object_store 0.14's).
const VERSION: &str = "2023-11-03";
/// A listing page of 5000 blobs with metadata stays well below this.
const LIST_PAGE_MAX: usize = 64 << 20;
/// A Get Blob Tags answer holds at most 10 tags of a few hundred bytes each.
const TAGS_MAX: usize = 64 << 10;
/// Blocks of one blob uploaded at once: bounds memory at `block * this`.
const BLOCKS_IN_FLIGHT: usize = 4;

enum Auth {
    /// The account key (configured, or Azurite's): requests are signed here (Shared Key).
    Key(Vec<u8>),
    /// object_store's provider (bearer tokens, SAS), for backends without a key.
    Provider(AzureCredentialProvider),
}

pub struct AzureDirect {
    rest: Rest,
    /// `scheme://host[:port][/account]/container`.
    container_url: String,
    account: String,
    auth: Auth,
}

/// One blob as Azure describes it (a HEAD, a GET or a listing row).
struct Props {
    native: String,
    content_md5: Option<[u8; 16]>,
    /// The multipart upload's ETag kept in [`ETAG_META`].
    kept_etag: Option<String>,
}

impl Props {
    /// The ETag an S3 client sees: the multipart ETag kept with the blob, else the MD5,
    /// else Azure's own.
    fn s3_etag(&self) -> String {
        if let Some(e) = &self.kept_etag
            && super::is_multipart_etag(e)
        {
            return e.clone();
        }
        match &self.content_md5 {
            Some(md5) => hex::encode(md5),
            None => super::unquote_etag(&self.native),
        }
    }
}

fn md5_of_base64(v: &str) -> Option<[u8; 16]> {
    STANDARD.decode(v.trim()).ok()?.try_into().ok()
}

impl AzureDirect {
    pub fn from_config(
        name: &str,
        c: &AzureBackend,
        provider: AzureCredentialProvider,
        key: Option<String>,
    ) -> Result<Self, ConfigError> {
        let field = |f: &str| format!("backends.{name}.{f}");
        let account_url = match (&c.endpoint, c.use_emulator) {
            (Some(e), _) => e.trim_end_matches('/').to_owned(),
            (None, true) => format!("http://127.0.0.1:10000/{}", c.account),
            (None, false) => format!("https://{}.blob.core.windows.net", c.account),
        };
        url::Url::parse(&account_url).map_err(|e| ConfigError::Invalid {
            field: field("endpoint"),
            message: e.to_string(),
        })?;
        let auth = match key {
            Some(k) => Auth::Key(
                STANDARD
                    .decode(k.trim())
                    .map_err(|e| ConfigError::Invalid {
                        field: field("access_key"),
                        message: format!("not base64: {e}"),
                    })?,
            ),
            None => Auth::Provider(provider),
        };
        Ok(Self {
            rest: Rest::new(
                name,
                &c.network,
                c.allow_http || c.use_emulator,
                c.ca_bundle.as_deref(),
                &field("ca_bundle"),
            )?,
            container_url: format!("{account_url}/{}", c.container),
            account: c.account.clone(),
            auth,
        })
    }

    fn url(&self, full_name: &str, query: &str) -> String {
        format!(
            "{}/{}{query}",
            self.container_url,
            utf8_percent_encode(full_name, NAME)
        )
    }

    /// A request with `headers` (lower-case names), authorized.
    async fn request(
        &self,
        method: reqwest::Method,
        url: &str,
        mut headers: Vec<(String, String)>,
    ) -> Result<reqwest::RequestBuilder> {
        let date = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        headers.push(("x-ms-date".into(), date));
        headers.push(("x-ms-version".into(), VERSION.into()));
        let mut url = url::Url::parse(url).map_err(Error::internal)?;
        match &self.auth {
            Auth::Key(key) => {
                let sts = string_to_sign(method.as_str(), &headers, &self.account, &url);
                let sig = STANDARD.encode(hmac_sha256(key, sts.as_bytes()));
                headers.push((
                    "authorization".into(),
                    format!("SharedKey {}:{sig}", self.account),
                ));
            }
            Auth::Provider(p) => match &*p.get_credential().await.map_err(|e| {
                self.rest
                    .unavailable(format!("no credentials for Azure: {e}"))
            })? {
                AzureCredential::BearerToken(t) => {
                    headers.push(("authorization".into(), format!("Bearer {t}")));
                }
                AzureCredential::SASToken(pairs) => {
                    url.query_pairs_mut().extend_pairs(pairs);
                }
                AzureCredential::AccessKey(_) => {
                    return Err(Error::internal(
                        "an Azure access key that is not in the configuration",
                    ));
                }
            },
        }
        let mut req = self.rest.http.request(method, url);
        for (k, v) in headers.iter().filter(|(k, _)| k != "content-length") {
            req = req.header(k, v);
        }
        Ok(req)
    }

    /// The error an answer of `status` means for a write.
    /// PUTs `data` (held whole, so that a retry can send it again) with `headers` and a
    /// Content-Length; an answer other than 2xx is the error [`Self::write_error`] names.
    async fn put_bytes(
        &self,
        what: &str,
        url: &str,
        mut headers: Vec<(String, String)>,
        data: Bytes,
    ) -> Result<()> {
        headers.push(("content-length".into(), data.len().to_string()));
        let resp = self
            .rest
            .send_retrying(what, || async {
                Ok(self
                    .request(reqwest::Method::PUT, url, headers.clone())
                    .await?
                    .header(reqwest::header::CONTENT_LENGTH, data.len())
                    .body(data.clone()))
            })
            .await?;
        if !resp.status().is_success() {
            return Err(self.write_error(what, resp).await);
        }
        Ok(())
    }

    async fn write_error(&self, what: &str, resp: reqwest::Response) -> Error {
        let status = resp.status().as_u16();
        let code = rest::header(resp.headers(), "x-ms-error-code").unwrap_or_default();
        match (status, code.as_str()) {
            (412, _) | (409, "BlobAlreadyExists") => {
                Error::Precondition("the backend refused the write condition".into())
            }
            (400, "Md5Mismatch") => Error::BadDigest,
            (400, "InvalidTag") => Error::InvalidTag(AZURE_TAG_RULES.into()),
            (404, "BlobNotFound" | "CannotVerifyCopySource") => Error::NotFound,
            _ => {
                let text = self.rest.error_text(resp).await;
                self.rest
                    .unavailable(format!("{what} answered {status} {code} {text}"))
            }
        }
    }

    /// GETs (or HEADs) `full_name`, a byte range of it when asked; also the blob's Azure
    /// ETag (for conditions).
    pub async fn get(
        &self,
        full_name: &str,
        range: Option<ByteRange>,
        head: bool,
    ) -> Result<(GetOutcome, Option<ByteStream>, String)> {
        // Azure has no suffix ranges: find the size, then ask for that version's tail.
        if let (Some(ByteRange::Suffix(n)), false) = (range, head) {
            if n == 0 {
                return Err(Error::InvalidRange);
            }
            for _ in 0..3 {
                let (found, _, native) = self.get_once(full_name, None, true, None).await?;
                let size = found.info.size;
                let bounded = (size > 0).then(|| ByteRange::Bounded {
                    first: size.saturating_sub(n),
                    last: size - 1,
                });
                match self
                    .get_once(full_name, bounded, false, Some(&native))
                    .await
                {
                    Err(Error::Precondition(_)) => continue,
                    r => return r,
                }
            }
            return Err(self.rest.unavailable("the blob kept changing"));
        }
        // A whole blob is asked for as the range from 0: the answer then states the
        // blob's stored MD5 (`x-ms-blob-content-md5`) where it has one, and nothing where
        // it has none (Azurite computes a `Content-MD5` for whole reads of small blobs
        // without one, which HEAD and listings do not show). An empty blob has no such
        // range: it is read whole.
        match (range, head) {
            (None, false) => match self
                .get_once(full_name, Some(ByteRange::From(0)), false, None)
                .await
            {
                Err(Error::InvalidRange) => self.get_once(full_name, None, false, None).await,
                Ok((mut found, body, native)) => {
                    // The client asked for the whole object, not a part.
                    found.range = 0..found.info.size;
                    Ok((found, body, native))
                }
                r => r,
            },
            _ => self.get_once(full_name, range, head, None).await,
        }
    }

    async fn get_once(
        &self,
        full_name: &str,
        range: Option<ByteRange>,
        head: bool,
        if_match: Option<&str>,
    ) -> Result<(GetOutcome, Option<ByteStream>, String)> {
        let url = self.url(full_name, "");
        let mut headers = Vec::new();
        if let (Some(r), false) = (range, head) {
            headers.push(("x-ms-range".to_owned(), rest::range_header(r)));
        }
        if let Some(e) = if_match {
            headers.push(("if-match".to_owned(), e.to_owned()));
        }
        let method = if head {
            reqwest::Method::HEAD
        } else {
            reqwest::Method::GET
        };
        let resp = self
            .rest
            .send_retrying("GET", || {
                self.request(method.clone(), &url, headers.clone())
            })
            .await?;
        let resp = self.rest.got(resp, head).await?;
        let status = resp.status().as_u16();
        let h = resp.headers();
        let text = |name: &str| rest::header(h, name);
        let length = text("content-length").and_then(|v| v.parse::<u64>().ok());
        let rest::Answered {
            size,
            served,
            last_modified,
            attrs,
            kept_etag,
        } = self
            .rest
            .answered(status, h, length, "x-ms-meta-", decode_meta_name)?;
        // A ranged answer's Content-MD5 would be the range's: the blob's is
        // x-ms-blob-content-md5 then. A HEAD's Content-MD5 is the blob's.
        let md5 = text("x-ms-blob-content-md5").or_else(|| {
            (range.is_none() || head)
                .then(|| text("content-md5"))
                .flatten()
        });
        let props = Props {
            native: text("etag").unwrap_or_default(),
            content_md5: md5.as_deref().and_then(md5_of_base64),
            kept_etag,
        };
        // The tags themselves cost a request of their own, made when they are needed.
        let untold_tags = text("x-ms-tag-count")
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let outcome = GetOutcome {
            info: ObjectInfo {
                size,
                etag: Some(props.s3_etag()),
                last_modified,
                attrs,
                content_md5: props.content_md5,
                foreign: false,
                untold_tags,
            },
            range: served,
        };
        let body = (!head).then(|| self.rest.body_stream(resp));
        Ok((outcome, body, props.native))
    }

    /// The S3 ETag and Azure ETag of the blob, if it exists.
    async fn versions(&self, full_name: &str) -> Result<Option<(String, String)>> {
        match self.get_once(full_name, None, true, None).await {
            Ok((found, _, native)) => Ok(Some((found.info.etag.unwrap_or_default(), native))),
            Err(Error::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes `body` as `full_name`: one request for a body of up to `block` bytes, else
    /// blocks of `block` bytes (a few in flight) committed by a block list. The request
    /// that commits the blob sets its `Content-MD5`, computed on the way, and its
    /// attributes; nothing is visible before it, and a body that fails (or does not match
    /// `declared.md5`) commits nothing.
    pub async fn put(
        &self,
        full_name: &str,
        mut body: Body,
        declared: &Declared,
        attrs: &Attrs,
        cond: &WriteCondition,
        block: u64,
    ) -> Result<PutOutcome> {
        check_tags(&attrs.tags)?;
        let mut headers = blob_headers(attrs);
        match cond {
            WriteCondition::None => {}
            WriteCondition::IfAbsent => headers.push(("if-none-match".into(), "*".into())),
            WriteCondition::IfMatch(want) => {
                let current = self.versions(full_name).await?;
                headers.push(("if-match".into(), rest::if_match_token(want, current)?));
            }
        }
        let (first, whole) = super::objstore::read_up_to(&mut body, block).await?;
        let mut md5 = Md5::new();
        if whole {
            let data: Bytes = first.concat().into();
            md5.update(&data);
            let md5: [u8; 16] = md5.finalize().into();
            if declared.md5.is_some_and(|want| want != md5) {
                return Err(Error::BadDigest);
            }
            let etag = self.commit_headers(&mut headers, declared, &md5);
            headers.push(("x-ms-blob-type".into(), "BlockBlob".into()));
            // Also the request's own digest: Azure checks the bytes it got against it.
            headers.push(("content-md5".into(), STANDARD.encode(md5)));
            let url = self.url(full_name, "");
            self.put_bytes("Put Blob", &url, headers, data).await?;
            return Ok(PutOutcome { etag: Some(etag) });
        }
        // Block ids of one blob must all have the same length.
        let upload = uuid::Uuid::new_v4().simple().to_string();
        let block_id = |i: usize| STANDARD.encode(format!("{upload}{i:06}"));
        let mut ids = Vec::new();
        let mut in_flight = FuturesOrdered::new();
        let mut pending = BytesMut::new();
        let mut chunks = futures::stream::iter(first.into_iter().map(Ok)).chain(body);
        let block = usize::try_from(block).unwrap_or(usize::MAX);
        loop {
            let next = chunks.next().await.transpose()?;
            let ended = next.is_none();
            if let Some(chunk) = next {
                md5.update(&chunk);
                pending.extend_from_slice(&chunk);
            }
            while pending.len() >= block || (ended && !pending.is_empty()) {
                let take = pending.len().min(block);
                let data = pending.split_to(take).freeze();
                let id = block_id(ids.len());
                ids.push(id.clone());
                in_flight.push_back(self.put_block(full_name, id, data));
                if in_flight.len() >= BLOCKS_IN_FLIGHT {
                    in_flight.next().await.transpose()?;
                }
            }
            if ended {
                break;
            }
        }
        while let Some(r) = in_flight.next().await {
            r?;
        }
        let md5: [u8; 16] = md5.finalize().into();
        if declared.md5.is_some_and(|want| want != md5) {
            // The blocks stay uncommitted: Azure drops them after a week.
            return Err(Error::BadDigest);
        }
        let etag = self.commit_headers(&mut headers, declared, &md5);
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
        for id in &ids {
            xml.push_str(&format!("<Latest>{id}</Latest>"));
        }
        xml.push_str("</BlockList>");
        let xml = Bytes::from(xml);
        let url = self.url(full_name, "?comp=blocklist");
        self.put_bytes("Put Block List", &url, headers, xml).await?;
        Ok(PutOutcome { etag: Some(etag) })
    }

    /// Adds what the committing request sets about the content, and returns the ETag the
    /// blob will answer.
    fn commit_headers(
        &self,
        headers: &mut Vec<(String, String)>,
        declared: &Declared,
        md5: &[u8; 16],
    ) -> String {
        headers.push(("x-ms-blob-content-md5".into(), STANDARD.encode(md5)));
        // The body has passed its checks: a trailer's checksum is known now.
        if let Some(c) = declared.checksum.get() {
            let name = format!("x-ms-meta-{}", encode_meta_name(CHECKSUM_META));
            headers.retain(|(n, _)| *n != name);
            headers.push((name, c.encode()));
        }
        let etag = super::etag_to_keep(declared, md5);
        if super::is_multipart_etag(&etag) {
            headers.push((
                format!("x-ms-meta-{}", encode_meta_name(ETAG_META)),
                etag.clone(),
            ));
        }
        etag
    }

    fn put_block(
        &self,
        full_name: &str,
        id: String,
        data: Bytes,
    ) -> impl std::future::Future<Output = Result<()>> + '_ {
        let url = self.url(
            full_name,
            &format!(
                "?comp=block&blockid={}",
                utf8_percent_encode(&id, QUERY_VALUE)
            ),
        );
        async move { self.put_bytes("Put Block", &url, Vec::new(), data).await }
    }

    /// The index tags of `full_name` (Get Blob Tags).
    pub async fn get_tags(&self, full_name: &str) -> Result<crate::model::Tags> {
        let url = self.url(full_name, "?comp=tags");
        let resp = self
            .rest
            .send_retrying("Get Blob Tags", || {
                self.request(reqwest::Method::GET, &url, Vec::new())
            })
            .await?;
        if resp.status().as_u16() == 404 {
            return Err(Error::NotFound);
        }
        let xml = self.rest.read_ok("Get Blob Tags", resp, TAGS_MAX).await?;
        rest::parse_tag_set(&xml, "Tags").map_err(|e| {
            self.rest
                .unavailable(format!("unreadable Get Blob Tags answer: {e}"))
        })
    }

    /// Replaces the index tags of `full_name` (Set Blob Tags; an empty set removes them).
    /// Azure keeps the blob's bytes, ETag and Last-Modified.
    pub async fn put_tags(&self, full_name: &str, tags: &crate::model::Tags) -> Result<()> {
        check_tags(tags)?;
        let url = self.url(full_name, "?comp=tags");
        let xml = bytes::Bytes::from(rest::tag_set_xml("Tags", tags));
        let headers = vec![("content-type".to_owned(), "application/xml".to_owned())];
        self.put_bytes("Set Blob Tags", &url, headers, xml).await
    }

    /// Copies `from` to `to` in the container (Copy Blob), index tags included: Azure
    /// copies a blob's bytes, properties and metadata, but not its tags, which are read
    /// first and set by the request that makes the copy.
    pub async fn copy(&self, from: &str, to: &str) -> Result<()> {
        let tags = self.get_tags(from).await?;
        let mut source = url::Url::parse(&self.url(from, "")).map_err(Error::internal)?;
        // A shared access signature authorizes the source as it does the request.
        if let Auth::Provider(p) = &self.auth
            && let AzureCredential::SASToken(pairs) = &*p.get_credential().await.map_err(|e| {
                self.rest
                    .unavailable(format!("no credentials for Azure: {e}"))
            })?
        {
            source.query_pairs_mut().extend_pairs(pairs);
        }
        let mut headers = vec![("x-ms-copy-source".to_owned(), source.to_string())];
        if !tags.is_empty() {
            headers.push(("x-ms-tags".to_owned(), crate::tagging::encode(&tags)));
        }
        let url = self.url(to, "");
        self.put_bytes("Copy Blob", &url, headers, bytes::Bytes::new())
            .await
    }

    /// Deletes `full_name`; a missing blob is not an error.
    pub async fn delete(&self, full_name: &str) -> Result<()> {
        let url = self.url(full_name, "");
        let resp = self
            .rest
            .send_retrying("Delete Blob", || {
                self.request(reqwest::Method::DELETE, &url, Vec::new())
            })
            .await?;
        match resp.status().as_u16() {
            200..=299 | 404 => Ok(()),
            _ => Err(self.write_error("Delete Blob", resp).await),
        }
    }

    /// Blobs under `full_prefix` after `after` (full names), in Azure's order (by name),
    /// with the ETag an S3 client sees, one page (up to 5000 blobs) fetched at a time. The
    /// listing starts at the prefix (Azure's continuation marker is opaque) and skips to
    /// `after`.
    pub fn list(
        self: Arc<Self>,
        full_prefix: String,
        after: Option<String>,
    ) -> BoxStream<'static, Result<ObjectSummary>> {
        futures::stream::try_unfold(Some(String::new()), move |marker| {
            let this = self.clone();
            let prefix = full_prefix.clone();
            let after = after.clone();
            async move {
                let Some(marker) = marker else {
                    return Ok(None);
                };
                let (rows, next) = this.list_page(&prefix, &marker).await?;
                if next.as_deref() == Some(marker.as_str()) && !marker.is_empty() {
                    return Err(this
                        .rest
                        .unavailable("List Blobs answered the same marker twice"));
                }
                let rows: Vec<_> = rows
                    .into_iter()
                    .filter(|r| after.as_deref().is_none_or(|a| r.key.as_str() > a))
                    .map(Ok)
                    .collect();
                Ok(Some((futures::stream::iter(rows), next)))
            }
        })
        .try_flatten()
        .boxed()
    }

    async fn list_page(
        &self,
        full_prefix: &str,
        marker: &str,
    ) -> Result<(Vec<ObjectSummary>, Option<String>)> {
        let value = |v: &str| utf8_percent_encode(v, QUERY_VALUE).to_string();
        let mut query = format!(
            "?restype=container&comp=list&include=metadata&prefix={}",
            value(full_prefix)
        );
        if !marker.is_empty() {
            query.push_str(&format!("&marker={}", value(marker)));
        }
        let url = format!("{}{query}", self.container_url);
        let resp = self
            .rest
            .send_retrying("List Blobs", || {
                self.request(reqwest::Method::GET, &url, Vec::new())
            })
            .await?;
        let xml = self.rest.read_ok("List Blobs", resp, LIST_PAGE_MAX).await?;
        parse_list_page(&xml).map_err(|e| {
            self.rest
                .unavailable(format!("unreadable List Blobs answer: {e}"))
        })
    }
}

/// The `x-ms-blob-*` and `x-ms-meta-*` headers that set a blob's attributes, and
/// `x-ms-tags` its index tags.
fn blob_headers(attrs: &Attrs) -> Vec<(String, String)> {
    let mut headers = super::attr_headers(
        attrs,
        [
            "x-ms-blob-content-type",
            "x-ms-blob-cache-control",
            "x-ms-blob-content-disposition",
            "x-ms-blob-content-encoding",
            "x-ms-blob-content-language",
        ],
        |k| format!("x-ms-meta-{}", encode_meta_name(k)),
    );
    if !attrs.tags.is_empty() {
        headers.push(("x-ms-tags".into(), crate::tagging::encode(&attrs.tags)));
    }
    headers
}

/// What Azure allows in a blob index tag, which is less than S3 allows.
const AZURE_TAG_RULES: &str = "Azure Blob Storage allows only the letters a-z and A-Z, digits, spaces and + - . / : = _ in tag keys and values";

/// Refuses a tag set Azure would refuse, before anything is sent: blob index tags take
/// only ASCII letters, digits, spaces and `+ - . / : = _`, where S3 also takes other
/// letters and `@`. Kept as they are rather than escaped, so that Azure's own tools
/// (Find Blobs by Tags, lifecycle filters) see the tags the client set.
pub(crate) fn check_tags(tags: &crate::model::Tags) -> Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || " +-./:=_".contains(c);
    if tags
        .iter()
        .any(|(k, v)| !k.chars().all(allowed) || !v.chars().all(allowed))
    {
        return Err(Error::InvalidTag(AZURE_TAG_RULES.into()));
    }
    Ok(())
}

/// HMAC-SHA256 (RFC 2104).
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    use sha2::Sha256;
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.map(|x| x ^ b);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Shared Key's string to sign: the standard headers, the `x-ms-*` headers sorted, and
/// the resource (`/account/path` and the query's parameters sorted, values decoded).
fn string_to_sign(
    method: &str,
    headers: &[(String, String)],
    account: &str,
    url: &url::Url,
) -> String {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    };
    // Content-Length only when it is not 0 (API versions since 2015-02-21).
    let length = match get("content-length") {
        "0" => "",
        l => l,
    };
    let mut out = format!(
        "{method}\n{}\n{}\n{length}\n{}\n{}\n\n{}\n{}\n{}\n{}\n{}\n",
        get("content-encoding"),
        get("content-language"),
        get("content-md5"),
        get("content-type"),
        get("if-modified-since"),
        get("if-match"),
        get("if-none-match"),
        get("if-unmodified-since"),
        get("range"),
    );
    let mut ms: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(k, _)| k.starts_with("x-ms-"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    ms.sort_unstable();
    for (k, v) in ms {
        out.push_str(&format!("{k}:{v}\n"));
    }
    out.push_str(&format!("/{account}{}", url.path()));
    let mut params: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (k, v) in url.query_pairs() {
        params
            .entry(k.to_lowercase())
            .or_default()
            .push(v.into_owned());
    }
    for (k, mut vs) in params {
        vs.sort();
        out.push_str(&format!("\n{k}:{}", vs.join(",")));
    }
    out
}

/// Reads a List Blobs answer: each blob's name, size, time, Azure ETag, Content-MD5 and
/// the multipart ETag kept in its metadata; and the continuation marker.
fn parse_list_page(
    xml: &[u8],
) -> std::result::Result<(Vec<ObjectSummary>, Option<String>), String> {
    use quick_xml::events::Event;
    let kept_name = encode_meta_name(ETAG_META);
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut rows = Vec::new();
    let mut next = None;
    let mut seen_root = false;
    #[derive(Default)]
    struct Row {
        name: Option<String>,
        size: Option<u64>,
        modified: Option<chrono::DateTime<chrono::Utc>>,
        etag: Option<String>,
        md5: Option<[u8; 16]>,
        kept: Option<String>,
    }
    let mut row = Row::default();
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if path.is_empty() {
                    if name != "EnumerationResults" {
                        return Err(format!("root element {name}"));
                    }
                    seen_root = true;
                }
                if name == "Blob" && path.len() == 2 {
                    row = Row::default();
                }
                path.push(name);
                text.clear();
            }
            Event::Text(t) => {
                text.push_str(&t.decode().map_err(|e| e.to_string())?);
            }
            Event::GeneralRef(r) => rest::push_xml_ref(&mut text, &r)?,
            Event::CData(t) => text.push_str(&String::from_utf8_lossy(&t)),
            Event::End(_) => {
                let value = std::mem::take(&mut text);
                let p: Vec<&str> = path.iter().map(String::as_str).collect();
                match p.as_slice() {
                    ["EnumerationResults", "NextMarker"] => {
                        next = Some(value).filter(|v| !v.is_empty());
                    }
                    ["EnumerationResults", "Blobs", "Blob", "Name"] => row.name = Some(value),
                    ["EnumerationResults", "Blobs", "Blob", "Properties", field] => match *field {
                        "Content-Length" => row.size = value.trim().parse().ok(),
                        "Last-Modified" => row.modified = rest::http_date(value.trim()),
                        "Etag" => row.etag = Some(value),
                        "Content-MD5" => row.md5 = md5_of_base64(&value),
                        _ => {}
                    },
                    ["EnumerationResults", "Blobs", "Blob", "Metadata", field]
                        if *field == kept_name =>
                    {
                        row.kept = Some(value);
                    }
                    ["EnumerationResults", "Blobs", "Blob"] => {
                        let r = std::mem::take(&mut row);
                        let name = r.name.ok_or("a blob without a name")?;
                        let props = Props {
                            native: r.etag.unwrap_or_default(),
                            content_md5: r.md5,
                            kept_etag: r.kept,
                        };
                        rows.push(ObjectSummary {
                            size: r.size.ok_or_else(|| format!("{name}: no Content-Length"))?,
                            last_modified: r
                                .modified
                                .ok_or_else(|| format!("{name}: no Last-Modified"))?,
                            etag: Some(props.s3_etag()),
                            key: name,
                        });
                    }
                    _ => {}
                }
                path.pop();
            }
            // A cut answer must not pass for a short page.
            Event::Eof if !path.is_empty() => {
                return Err("the answer ends inside an element".into());
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !seen_root {
        return Err("not a List Blobs answer".into());
    }
    Ok((rows, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_key_signature_matches_the_documented_example() {
        // RFC 4231 test case 2.
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let url = url::Url::parse(
            "http://127.0.0.1:10000/devstoreaccount1/c/a%20b/?comp=list&restype=container&prefix=x%2Fy",
        )
        .unwrap();
        let headers = vec![
            ("x-ms-version".to_owned(), VERSION.to_owned()),
            (
                "x-ms-date".to_owned(),
                "Mon, 01 Jan 2024 00:00:00 GMT".to_owned(),
            ),
            ("content-length".to_owned(), "0".to_owned()),
            ("if-match".to_owned(), "\"0x1\"".to_owned()),
        ];
        let sts = string_to_sign("GET", &headers, "devstoreaccount1", &url);
        assert_eq!(
            sts,
            "GET\n\n\n\n\n\n\n\n\"0x1\"\n\n\n\nx-ms-date:Mon, 01 Jan 2024 00:00:00 GMT\nx-ms-version:2023-11-03\n/devstoreaccount1/devstoreaccount1/c/a%20b/\ncomp:list\nprefix:x/y\nrestype:container"
        );
    }

    #[test]
    fn a_listing_page_gives_s3_etags() {
        let xml = br#"<?xml version="1.0" encoding="utf-8"?>
<EnumerationResults ServiceEndpoint="http://x/" ContainerName="c"><Prefix>p/</Prefix><Blobs>
<Blob><Name>p/a&amp;b</Name><Properties><Last-Modified>Tue, 29 Nov 2022 10:00:00 GMT</Last-Modified><Etag>0x8DAD1</Etag><Content-Length>3</Content-Length><Content-MD5>rL0Y20zC+Fzt72VPzMSk2A==</Content-MD5></Properties><Metadata><colour>blue</colour></Metadata></Blob>
<Blob><Name>p/multi</Name><Properties><Last-Modified>Tue, 29 Nov 2022 10:00:00 GMT</Last-Modified><Etag>0x8DAD2</Etag><Content-Length>9</Content-Length><Content-MD5>rL0Y20zC+Fzt72VPzMSk2A==</Content-MD5></Properties><Metadata><switchyard_2detag>96e024ba2074fe77e8e965ba43a704be-2</switchyard_2detag></Metadata></Blob>
<Blob><Name>p/dir/</Name><Properties><Last-Modified>Tue, 29 Nov 2022 10:00:00 GMT</Last-Modified><Etag>0x8DAD3</Etag><Content-Length>0</Content-Length><Content-MD5 /></Properties><Metadata /></Blob>
</Blobs><NextMarker>2!abc</NextMarker></EnumerationResults>"#;
        let (rows, next) = parse_list_page(xml).unwrap();
        assert_eq!(next.as_deref(), Some("2!abc"));
        let keys: Vec<_> = rows.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["p/a&b", "p/multi", "p/dir/"]);
        assert_eq!(
            rows[0].etag.as_deref(),
            Some("acbd18db4cc2f85cedef654fccc4a4d8")
        );
        assert_eq!(
            rows[1].etag.as_deref(),
            Some("96e024ba2074fe77e8e965ba43a704be-2")
        );
        assert_eq!(rows[2].etag.as_deref(), Some("0x8DAD3"));
        assert!(parse_list_page(b"<Error><Code>x</Code></Error>").is_err());
    }
}
