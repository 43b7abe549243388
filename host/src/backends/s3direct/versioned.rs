//! S3's own versioning, passed through: the bucket's versioning state, reads and deletes
//! of one version, writes that answer the version they made, and ListObjectVersions.
//! Version ids here are the backend's own; the router names the member in front of them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::utf8_percent_encode;

use super::{LIST_PAGE_MAX, QUERY_VALUE, S3Direct};
use crate::model::{Attrs, Body, ByteRange, ByteStream, Error, GetOutcome, PutOutcome, Result};

/// One row of a ListObjectVersions page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeRow {
    /// The full key (the backend's prefix included).
    pub key: String,
    pub version_id: String,
    pub marker: bool,
    pub latest: bool,
    pub size: u64,
    pub etag: Option<String>,
    pub last_modified: chrono::DateTime<chrono::Utc>,
}

/// One ListObjectVersions page, rows in S3's order (by key, newest first).
#[derive(Debug, Clone, Default)]
pub struct NativePage {
    pub rows: Vec<NativeRow>,
    /// Common prefixes (full), when grouped by a delimiter.
    pub prefixes: Vec<String>,
    /// Where the next page starts (key marker, version id marker), when there is one.
    pub next: Option<(String, Option<String>)>,
}

fn value(v: &str) -> String {
    utf8_percent_encode(v, QUERY_VALUE).to_string()
}

impl S3Direct {
    fn bucket_url(&self, query: &str) -> String {
        let bucket_path = match self.base_path.trim_end_matches('/') {
            "" => "/",
            p => p,
        };
        format!("{}{bucket_path}{query}", self.origin)
    }

    /// The bucket's versioning status as S3 spells it (`Enabled`, `Suspended`), `None`
    /// for a bucket never versioned, and on a server without versioning (R2, s3s-fs:
    /// `501 NotImplemented`), whose buckets are all unversioned: every request of a
    /// bucket over such a member reads this first, which must not fail them.
    pub async fn versioning(&self) -> Result<Option<String>> {
        let url = self.bucket_url("?versioning");
        let resp = self.send_retrying(reqwest::Method::GET, &url, &[]).await?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_IMPLEMENTED {
            return Ok(None);
        }
        if !status.is_success() {
            let code = self.error_code(resp).await;
            return Err(self.unavailable(format!("GetBucketVersioning answered {status} {code}")));
        }
        let xml = self.rest.read_all(resp, 64 << 10).await?;
        let xml = String::from_utf8_lossy(&xml);
        Ok(xml
            .split_once("<Status>")
            .and_then(|(_, r)| r.split_once("</Status>"))
            .map(|(s, _)| s.trim().to_owned())
            .filter(|s| !s.is_empty()))
    }

    /// Sets the bucket's versioning status (`Enabled` or `Suspended`).
    pub async fn set_versioning(&self, status: &str) -> Result<()> {
        use md5::Digest as _;
        let xml = format!(
            r#"<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>{status}</Status></VersioningConfiguration>"#
        );
        let url = self.bucket_url("?versioning");
        let md5 = STANDARD.encode(md5::Md5::digest(xml.as_bytes()));
        let headers = vec![
            ("content-md5".to_owned(), md5),
            ("content-length".to_owned(), xml.len().to_string()),
        ];
        let req = self.signed(reqwest::Method::PUT, &url, headers)?;
        let resp = req
            .body(xml)
            .send()
            .await
            .map_err(|e| self.unavailable(format!("PutBucketVersioning: {e}")))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let code = self.error_code(resp).await;
        // A server without versioning is not down: the client hears why, and the member
        // stays as healthy as it was.
        if status == reqwest::StatusCode::NOT_IMPLEMENTED {
            return Err(Error::NotImplemented(format!(
                "the S3 server behind this bucket has no versioning (PutBucketVersioning answered {status} {code})"
            )));
        }
        Err(self.unavailable(format!("PutBucketVersioning answered {status} {code}")))
    }

    /// GETs (or HEADs) one version of `full_key` (the current one without `version`).
    /// Answers the version id served (`None` for S3's `null` version, which it does not
    /// name). A delete marker is [`Error::DeleteMarker`] with its (native) id; a version
    /// that is not there, [`Error::NoSuchVersion`].
    pub async fn get_version(
        &self,
        full_key: &str,
        version: Option<&str>,
        range: Option<ByteRange>,
        head: bool,
    ) -> Result<(GetOutcome, Option<ByteStream>, Option<String>)> {
        let query = version.map_or_else(String::new, |v| format!("?versionId={}", value(v)));
        let url = self.url(full_key, &query);
        let mut headers = Vec::new();
        if let (Some(r), false) = (range, head) {
            headers.push(("range".into(), super::super::rest::range_header(r)));
        }
        let method = if head {
            reqwest::Method::HEAD
        } else {
            reqwest::Method::GET
        };
        let resp = self.send_retrying(method, &url, &headers).await?;
        let h = resp.headers();
        let id = super::super::rest::header(h, "x-amz-version-id").filter(|v| v != "null");
        let marker =
            super::super::rest::header(h, "x-amz-delete-marker").as_deref() == Some("true");
        match resp.status().as_u16() {
            200 | 206 => {
                let (o, body) = self.read_object(resp, head)?;
                Ok((o, body, id))
            }
            404 | 405 if marker => Err(Error::DeleteMarker {
                version_id: id
                    .or_else(|| version.map(str::to_owned))
                    .unwrap_or_else(|| "null".into()),
                named: version.is_some(),
            }),
            // Some servers (moto) name the delete marker in a HEAD's answer only.
            404 if !head => {
                let resp = self.send_retrying(reqwest::Method::HEAD, &url, &[]).await?;
                let h = resp.headers();
                match super::super::rest::header(h, "x-amz-delete-marker").as_deref() {
                    Some("true") => Err(Error::DeleteMarker {
                        version_id: super::super::rest::header(h, "x-amz-version-id")
                            .or_else(|| version.map(str::to_owned))
                            .unwrap_or_else(|| "null".into()),
                        named: version.is_some(),
                    }),
                    _ if version.is_some() => Err(Error::NoSuchVersion),
                    _ => Err(Error::NotFound),
                }
            }
            404 if version.is_some() => Err(Error::NoSuchVersion),
            404 => Err(Error::NotFound),
            // An id S3 never gave.
            400 if version.is_some() => Err(Error::InvalidArgument(
                "Invalid version id specified".into(),
            )),
            416 => Err(Error::InvalidRange),
            s => {
                let code = if head {
                    String::new()
                } else {
                    self.error_code(resp).await
                };
                Err(self.unavailable(format!("GET answered {s} {code}")))
            }
        }
    }

    /// PUTs `len` bytes to `full_key`; answers the ETag and the version id S3 gave the
    /// write (`None`: the `null` version, while the bucket's versioning is suspended).
    pub async fn put_version(
        &self,
        full_key: &str,
        body: Body,
        len: u64,
        md5: Option<[u8; 16]>,
        attrs: &Attrs,
        if_absent: bool,
    ) -> Result<(PutOutcome, Option<String>)> {
        let mut headers =
            super::super::attr_headers(attrs, super::super::STANDARD_ATTR_HEADERS, |k| {
                format!("x-amz-meta-{k}")
            });
        if let Some(md5) = md5 {
            headers.push(("content-md5".into(), STANDARD.encode(md5)));
        }
        if !attrs.tags.is_empty() {
            headers.push(("x-amz-tagging".into(), crate::tagging::encode(&attrs.tags)));
        }
        if if_absent {
            headers.push(("if-none-match".into(), "*".into()));
        }
        let answer = self.send_answer(full_key, "", headers, body, len).await?;
        let etag = super::super::rest::header(&answer, "etag").map(super::super::objstore::unquote);
        let id = super::super::rest::header(&answer, "x-amz-version-id").filter(|v| v != "null");
        Ok((PutOutcome { etag }, id))
    }

    /// The tags of one version of `full_key` (GetObjectTagging with a `versionId`).
    pub async fn get_version_tags(
        &self,
        full_key: &str,
        version: &str,
    ) -> Result<crate::model::Tags> {
        self.get_tags_at(full_key, &format!("?tagging&versionId={}", value(version)))
            .await
    }

    /// Replaces the tags of one version of `full_key` (PutObjectTagging, or
    /// DeleteObjectTagging for none, with a `versionId`).
    pub async fn put_version_tags(
        &self,
        full_key: &str,
        version: &str,
        tags: &crate::model::Tags,
    ) -> Result<()> {
        let query = format!("?tagging&versionId={}", value(version));
        self.put_tags_at(full_key, &query, tags).await
    }

    /// DELETE of `full_key`: without `version`, a delete marker in a versioned bucket;
    /// with it, that version for good. Answers the version id S3 names (the marker made,
    /// or the version removed) and whether that is a delete marker.
    pub async fn delete_version(
        &self,
        full_key: &str,
        version: Option<&str>,
    ) -> Result<(Option<String>, bool)> {
        let query = version.map_or_else(String::new, |v| format!("?versionId={}", value(v)));
        let url = self.url(full_key, &query);
        let resp = self
            .send_retrying(reqwest::Method::DELETE, &url, &[])
            .await?;
        let h = resp.headers();
        let id = super::super::rest::header(h, "x-amz-version-id");
        let marker =
            super::super::rest::header(h, "x-amz-delete-marker").as_deref() == Some("true");
        match resp.status().as_u16() {
            200..=299 | 404 => Ok((id, marker)),
            400 if version.is_some() => Err(Error::InvalidArgument(
                "Invalid version id specified".into(),
            )),
            s => {
                let code = self.error_code(resp).await;
                Err(self.unavailable(format!("DELETE answered {s} {code}")))
            }
        }
    }

    /// One ListObjectVersions page of up to `max` rows and prefixes under `full_prefix`,
    /// after the markers (full key, native version id).
    pub async fn list_versions(
        &self,
        full_prefix: &str,
        delimiter: Option<&str>,
        key_marker: Option<&str>,
        version_marker: Option<&str>,
        max: usize,
    ) -> Result<NativePage> {
        // Parameters in the order SigV4 sorts them.
        let mut query = String::from("?");
        if let Some(d) = delimiter.filter(|d| !d.is_empty()) {
            query.push_str(&format!("delimiter={}&", value(d)));
        }
        if let Some(k) = key_marker {
            query.push_str(&format!("key-marker={}&", value(k)));
        }
        query.push_str(&format!(
            "max-keys={}&prefix={}",
            max.max(1),
            value(full_prefix)
        ));
        if let (Some(_), Some(v)) = (key_marker, version_marker) {
            query.push_str(&format!("&version-id-marker={}", value(v)));
        }
        query.push_str("&versions");
        let url = self.bucket_url(&query);
        let resp = self.send_retrying(reqwest::Method::GET, &url, &[]).await?;
        let status = resp.status();
        if !status.is_success() {
            let code = self.error_code(resp).await;
            return Err(self.unavailable(format!("ListObjectVersions answered {status} {code}")));
        }
        let xml = self.rest.read_all(resp, LIST_PAGE_MAX).await?;
        parse_versions_page(&xml)
            .map_err(|e| self.unavailable(format!("unreadable ListObjectVersions answer: {e}")))
    }
}

/// One S3 member's versioning, in the gateway's keys (the member's prefix added and taken
/// away here, the reserved namespace left out of listings).
#[derive(Clone)]
pub struct S3Native {
    direct: std::sync::Arc<S3Direct>,
    prefix: String,
}

impl S3Native {
    pub fn new(direct: std::sync::Arc<S3Direct>, prefix: String) -> Self {
        Self { direct, prefix }
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The backend bucket's state (shared by every prefix in it).
    pub async fn state(&self) -> Result<crate::versions::State> {
        Ok(match self.direct.versioning().await?.as_deref() {
            Some(s) => {
                crate::versions::State::parse(s).unwrap_or(crate::versions::State::Unversioned)
            }
            None => crate::versions::State::Unversioned,
        })
    }

    pub async fn set_state(&self, state: crate::versions::State) -> Result<()> {
        let Some(s) = state.as_str() else {
            return Err(Error::internal("a bucket is never unversioned again"));
        };
        self.direct.set_versioning(s).await
    }

    /// A write of known length that S3 takes in one PUT (folder markers too: S3 names
    /// them as any key), answering the version it made; `Err((body, None))`, the body
    /// untouched, for one that goes another way (no length, or over 5 GiB).
    #[allow(clippy::type_complexity)]
    pub async fn put(
        &self,
        key: &str,
        body: Body,
        declared: &crate::model::Declared,
        attrs: &Attrs,
        if_absent: bool,
    ) -> std::result::Result<(PutOutcome, Option<String>), (Body, Option<Error>)> {
        let len = match declared.len {
            Some(l) if l <= super::MAX_SINGLE_PUT => l,
            _ => return Err((body, None)),
        };
        // As the unversioned direct PUT: a trailer's checksum is known once the body has
        // passed, so a small body is held whole to send it with the headers.
        let body = if declared.checksum.is_pending()
            && len <= super::super::objstore::HOLD_FOR_TRAILER
        {
            let mut body = body;
            let (whole, _) = match super::super::objstore::read_up_to(&mut body, len + 1).await {
                Ok(r) => r,
                Err(e) => return Err((body, Some(e))),
            };
            futures::StreamExt::boxed(futures::stream::iter(whole.into_iter().map(Ok)))
        } else {
            body
        };
        let attrs = declared.checksum.attrs(attrs);
        let body = super::super::md5_checked(body, declared.md5);
        self.direct
            .put_version(&self.full(key), body, len, declared.md5, &attrs, if_absent)
            .await
            .map_err(|e| {
                let empty: Body = Box::pin(futures::stream::empty());
                (empty, Some(e))
            })
    }

    pub async fn get(
        &self,
        key: &str,
        version: Option<&str>,
        range: Option<ByteRange>,
        cond: &crate::model::ReadConditions,
        head: bool,
    ) -> Result<(GetOutcome, Option<ByteStream>, Option<String>)> {
        let (o, body, id) = self
            .direct
            .get_version(&self.full(key), version, range, head)
            .await?;
        super::super::objstore::check_read_conditions(cond, &o.info)?;
        Ok((o, body, id))
    }

    /// The tags of a version (`null`: S3's null version).
    pub async fn tags(&self, key: &str, version: &str) -> Result<crate::model::Tags> {
        self.direct.get_version_tags(&self.full(key), version).await
    }

    /// The tags of the current object (S3's GET only counts them).
    pub async fn current_tags(&self, key: &str) -> Result<crate::model::Tags> {
        self.direct.get_tags(&self.full(key)).await
    }

    /// Replaces the tags of a version (none: removes them).
    pub async fn put_tags(
        &self,
        key: &str,
        version: &str,
        tags: &crate::model::Tags,
    ) -> Result<()> {
        self.direct
            .put_version_tags(&self.full(key), version, tags)
            .await
    }

    pub async fn delete(&self, key: &str, version: Option<&str>) -> Result<(Option<String>, bool)> {
        self.direct.delete_version(&self.full(key), version).await
    }

    /// One page of versions under `prefix` after the markers, keys without the member's
    /// prefix; rows and prefixes in the reserved namespace are left out (a page may come
    /// back short, or empty with a next marker, for that).
    pub async fn list(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        key_marker: Option<&str>,
        version_marker: Option<&str>,
        max: usize,
    ) -> Result<NativePage> {
        let full_marker = key_marker.map(|k| self.full(k));
        let mut page = self
            .direct
            .list_versions(
                &self.full(prefix),
                delimiter,
                full_marker.as_deref(),
                version_marker,
                max,
            )
            .await?;
        let strip = |k: &str| k.strip_prefix(&self.prefix).map(str::to_owned);
        let reserved = |k: &str| k.starts_with(crate::model::RESERVED_PREFIX);
        page.rows = page
            .rows
            .into_iter()
            .filter_map(|mut r| {
                r.key = strip(&r.key)?;
                (!reserved(&r.key)).then_some(r)
            })
            .collect();
        page.prefixes = page
            .prefixes
            .iter()
            .filter_map(|p| strip(p))
            .filter(|p| !reserved(p))
            .collect();
        if let Some((k, v)) = page.next.take() {
            page.next = strip(&k).map(|k| (k, v));
        }
        Ok(page)
    }
}

/// Reads a ListVersionsResult: `Version` and `DeleteMarker` rows (in whatever order the
/// server writes them: sorted here by key, then latest first, then newest), common
/// prefixes, and the next markers.
pub(super) fn parse_versions_page(xml: &[u8]) -> std::result::Result<NativePage, String> {
    use quick_xml::events::Event;

    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut page = NativePage::default();
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut text = String::new();
    let mut truncated = false;
    let (mut next_key, mut next_version) = (None, None);
    let mut row: Option<(bool, std::collections::BTreeMap<String, String>)> = None;
    let mut root_seen = false;
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_vec();
                if path.is_empty() {
                    if name != b"ListVersionsResult" {
                        return Err(format!("root element {:?}", String::from_utf8_lossy(&name)));
                    }
                    root_seen = true;
                }
                if path.len() == 1 && (name == b"Version" || name == b"DeleteMarker") {
                    row = Some((name == b"DeleteMarker", Default::default()));
                }
                path.push(name);
                text.clear();
            }
            Event::Empty(e)
                if path.is_empty() && e.local_name().as_ref() == b"ListVersionsResult" =>
            {
                root_seen = true;
            }
            Event::Text(t) => text.push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::GeneralRef(r) => super::super::rest::push_xml_ref(&mut text, &r)?,
            Event::End(_) => {
                let name = path.pop().unwrap_or_default();
                let field = String::from_utf8_lossy(&name).into_owned();
                match path.len() {
                    1 => match name.as_slice() {
                        b"IsTruncated" => truncated = text.trim() == "true",
                        b"NextKeyMarker" => next_key = Some(std::mem::take(&mut text)),
                        b"NextVersionIdMarker" => next_version = Some(std::mem::take(&mut text)),
                        b"Version" | b"DeleteMarker" => {
                            let (marker, f) = row.take().ok_or("a row that did not start")?;
                            let key = f.get("Key").cloned().ok_or("a row without a Key")?;
                            let modified = f
                                .get("LastModified")
                                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t.trim()).ok())
                                .ok_or_else(|| format!("{key:?} without a LastModified"))?;
                            page.rows.push(NativeRow {
                                version_id: f
                                    .get("VersionId")
                                    .cloned()
                                    .ok_or_else(|| format!("{key:?} without a VersionId"))?,
                                marker,
                                latest: f.get("IsLatest").is_some_and(|v| v.trim() == "true"),
                                size: f
                                    .get("Size")
                                    .map(|s| s.trim().parse::<u64>())
                                    .transpose()
                                    .map_err(|_| format!("{key:?} with a bad Size"))?
                                    .unwrap_or(0),
                                etag: f
                                    .get("ETag")
                                    .map(|e| super::super::objstore::unquote(e.clone())),
                                last_modified: modified.with_timezone(&chrono::Utc),
                                key,
                            });
                        }
                        _ => {}
                    },
                    2 => {
                        if let Some((_, f)) = row.as_mut() {
                            f.insert(field, std::mem::take(&mut text));
                        } else if path.get(1).map(Vec::as_slice) == Some(b"CommonPrefixes")
                            && name == b"Prefix"
                        {
                            page.prefixes.push(std::mem::take(&mut text));
                        }
                    }
                    _ => {}
                }
                text.clear();
            }
            Event::Eof if !path.is_empty() => {
                return Err("the answer ends inside an element".into());
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !root_seen {
        return Err("no ListVersionsResult".into());
    }
    // Servers write versions and delete markers interleaved (AWS) or apart (moto).
    page.rows.sort_by(|a, b| {
        a.key
            .cmp(&b.key)
            .then_with(|| b.latest.cmp(&a.latest))
            .then_with(|| b.last_modified.cmp(&a.last_modified))
    });
    if truncated {
        let key = next_key.ok_or("IsTruncated without a NextKeyMarker")?;
        page.next = Some((key, next_version.filter(|v| !v.is_empty())));
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_versions_page_reads_rows_markers_and_prefixes_in_order() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>b</Name><Prefix></Prefix><IsTruncated>true</IsTruncated>
  <Version><Key>a &amp; b</Key><VersionId>v1</VersionId><IsLatest>false</IsLatest>
    <LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>"e1"</ETag><Size>3</Size>
    <Owner><ID>Key</ID></Owner></Version>
  <Version><Key>b</Key><VersionId>null</VersionId><IsLatest>true</IsLatest>
    <LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>"e2"</ETag><Size>0</Size></Version>
  <DeleteMarker><Key>a &amp; b</Key><VersionId>m.1</VersionId><IsLatest>true</IsLatest>
    <LastModified>2026-01-02T00:00:00.000Z</LastModified></DeleteMarker>
  <CommonPrefixes><Prefix>p/</Prefix></CommonPrefixes>
  <NextKeyMarker>b</NextKeyMarker><NextVersionIdMarker>null</NextVersionIdMarker>
</ListVersionsResult>"#;
        let page = parse_versions_page(xml.as_bytes()).unwrap();
        let rows: Vec<(&str, &str, bool, bool)> = page
            .rows
            .iter()
            .map(|r| (r.key.as_str(), r.version_id.as_str(), r.marker, r.latest))
            .collect();
        assert_eq!(
            rows,
            [
                ("a & b", "m.1", true, true),
                ("a & b", "v1", false, false),
                ("b", "null", false, true)
            ]
        );
        assert_eq!(page.rows[1].etag.as_deref(), Some("e1"));
        assert_eq!(page.rows[1].size, 3);
        assert_eq!(page.prefixes, ["p/"]);
        assert_eq!(page.next, Some(("b".into(), Some("null".into()))));
        for bad in [
            "",
            "<Error><Code>AccessDenied</Code></Error>",
            "<ListVersionsResult><Version>",
        ] {
            assert!(parse_versions_page(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
