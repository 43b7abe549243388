//! Merged listings: a k-way merge of the members' sorted listings, de-duplicated (the
//! highest-priority member's copy wins), rolled up by delimiter, cut into pages.
//!
//! The continuation token is the last key or common prefix returned, so any engine can
//! serve the next page: nothing is remembered between pages.

use std::pin::Pin;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::StreamExt;
use futures::stream::{BoxStream, Peekable};

use crate::backends::Backend;
use crate::model::{Error, ObjectSummary, Result};

/// After this many keys under one common prefix, a member's listing is restarted past the
/// prefix instead of reading on: cheap for small prefixes, bounded for huge ones.
const ROLLUP_SCAN_LIMIT: usize = 100;

/// Sorts after every key that starts with the string it is appended to (in practice).
const PAST: char = '\u{10FFFF}';

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Object(ObjectSummary),
    Prefix(String),
}

impl Entry {
    fn key(&self) -> &str {
        match self {
            Entry::Object(o) => &o.key,
            Entry::Prefix(p) => p,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Return only keys after this one (StartAfter, Marker, or a decoded token).
    pub after: Option<String>,
    pub max_keys: usize,
}

#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub entries: Vec<Entry>,
    pub truncated: bool,
    /// The last key or prefix of this page when there is more.
    pub next: Option<String>,
}

pub fn encode_token(last: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("1:{last}"))
}

pub fn decode_token(token: &str) -> Result<String> {
    let bad = || Error::InvalidArgument("the continuation token is not valid".into());
    let bytes = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    text.strip_prefix("1:").map(str::to_owned).ok_or_else(bad)
}

struct Cursor {
    backend: Arc<Backend>,
    stream: Pin<Box<Peekable<BoxStream<'static, Result<ObjectSummary>>>>>,
    prefix: String,
}

impl Cursor {
    fn open(backend: Arc<Backend>, prefix: &str, after: Option<&str>) -> Self {
        let stream = backend.store.list(prefix, after).peekable();
        Self {
            backend,
            stream: Box::pin(stream),
            prefix: prefix.to_owned(),
        }
    }

    async fn peek_key(&mut self) -> Result<Option<String>> {
        match self.stream.as_mut().peek().await {
            None => Ok(None),
            Some(Ok(o)) => Ok(Some(o.key.clone())),
            Some(Err(_)) => match self.stream.next().await {
                Some(Err(e)) => {
                    if matches!(e, Error::Unavailable { .. }) {
                        self.backend.mark_unhealthy();
                    }
                    Err(e)
                }
                _ => unreachable!("peeked an error"),
            },
        }
    }

    async fn next(&mut self) -> Option<ObjectSummary> {
        match self.stream.next().await {
            Some(Ok(o)) => Some(o),
            _ => None,
        }
    }

    /// Moves past every key starting with `cp`.
    async fn skip_prefix(&mut self, cp: &str) -> Result<()> {
        let mut scanned = 0;
        while let Some(key) = self.peek_key().await? {
            if !key.starts_with(cp) {
                return Ok(());
            }
            scanned += 1;
            if scanned > ROLLUP_SCAN_LIMIT {
                *self = Cursor::open(
                    self.backend.clone(),
                    &self.prefix.clone(),
                    Some(&format!("{cp}{PAST}")),
                );
                return Ok(());
            }
            self.next().await;
        }
        Ok(())
    }
}

/// Where listing resumes after `after`: past the whole common prefix when `after` is one.
fn resume_point(req: &ListRequest) -> Option<String> {
    let after = req.after.as_ref()?;
    if let Some(d) = &req.delimiter
        && !d.is_empty()
        && let Some(rest) = after.strip_prefix(&req.prefix)
        && rest.ends_with(d.as_str())
        && rest.find(d.as_str()) == Some(rest.len() - d.len())
    {
        return Some(format!("{after}{PAST}"));
    }
    Some(after.clone())
}

fn rollup<'a>(key: &'a str, prefix: &str, delimiter: Option<&str>) -> Option<&'a str> {
    let d = delimiter.filter(|d| !d.is_empty())?;
    let rest = &key[prefix.len()..];
    rest.find(d).map(|i| &key[..prefix.len() + i + d.len()])
}

/// Lists `members` (highest priority first) as one sorted, de-duplicated listing.
pub async fn list(members: &[Arc<Backend>], req: &ListRequest) -> Result<ListPage> {
    let after = resume_point(req);
    let mut cursors: Vec<Cursor> = members
        .iter()
        .map(|b| Cursor::open(b.clone(), &req.prefix, after.as_deref()))
        .collect();
    let mut page = ListPage::default();
    if req.max_keys == 0 {
        return Ok(page);
    }
    loop {
        // The smallest key across members; ties go to the earliest (highest-priority) one.
        let mut best: Option<(usize, String)> = None;
        for (i, c) in cursors.iter_mut().enumerate() {
            if let Some(k) = c.peek_key().await?
                && best.as_ref().is_none_or(|(_, b)| k < *b)
            {
                best = Some((i, k));
            }
        }
        let Some((winner, key)) = best else { break };
        if page.entries.len() == req.max_keys {
            page.truncated = true;
            page.next = page.entries.last().map(|e| e.key().to_owned());
            break;
        }
        if let Some(cp) = rollup(&key, &req.prefix, req.delimiter.as_deref()) {
            let cp = cp.to_owned();
            for c in &mut cursors {
                c.skip_prefix(&cp).await?;
            }
            page.entries.push(Entry::Prefix(cp));
            continue;
        }
        let mut chosen = None;
        for (i, c) in cursors.iter_mut().enumerate() {
            if c.peek_key().await?.as_deref() == Some(key.as_str()) {
                let o = c.next().await;
                if i == winner {
                    chosen = o;
                }
            }
        }
        if let Some(o) = chosen {
            page.entries.push(Entry::Object(o));
        }
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for k in ["a", "ünï/çødé", "x/y/"] {
            assert_eq!(decode_token(&encode_token(k)).unwrap(), k);
        }
        assert!(decode_token("!!").is_err());
        assert!(decode_token(&URL_SAFE_NO_PAD.encode("nope")).is_err());
    }

    #[test]
    fn rollups() {
        assert_eq!(rollup("a/b/c", "", Some("/")), Some("a/"));
        assert_eq!(rollup("a/b/c", "a/", Some("/")), Some("a/b/"));
        assert_eq!(rollup("a/b", "a/", Some("/")), None);
        assert_eq!(rollup("a/b", "", None), None);
    }
}
