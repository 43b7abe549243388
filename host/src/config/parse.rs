//! Reading the TOML text into a [`Config`], with errors that name the key they are about
//! and its place in the file.
//!
//! The TOML deserializer gives an error the place of the value it was reading, but serde
//! reads a table whose type depends on one of its keys (a backend's `kind`,
//! `[dynamic_buckets]`) whole before it chooses the type, and an error inside such a table
//! then has the table's place, the header line, and no key: a wrong `endpoint` of
//! `[backends.hot]` was reported at `[backends.hot]`. Such an error is read again here from
//! that table alone, as the type its `kind` names, which places it at the key. Every
//! error's place is then turned into the key path of the value there
//! (`backends.hot.endpoint`, `buckets.photos.members[2]`).

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::{AzureBackend, Config, FsBackend, GcsBackend, MemoryBackend, S3Backend};

/// A configuration that is not TOML, or whose values do not fit their fields.
#[derive(Debug)]
pub struct ParseError {
    /// The file, when the text came from one.
    pub file: Option<PathBuf>,
    /// Line and column (from 1) of the place the error is about, when it has one.
    pub position: Option<(usize, usize)>,
    /// The key the error is about (`backends.hot.endpoint`, `users[0].secret_key`); none
    /// for a syntax error or one about the whole document.
    pub key: Option<String>,
    /// What is wrong, as the TOML parser or serde says it.
    pub message: String,
    /// The line at `position`, with a caret under the place.
    excerpt: String,
}

/// `FILE:LINE:COLUMN: KEY: MESSAGE` (`line L, column C: ` without a file), then the line
/// with a caret, as compilers write it, so that editors can jump to it.
impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.position) {
            (Some(file), Some((line, column))) => {
                write!(f, "{}:{line}:{column}: ", file.display())?
            }
            (Some(file), None) => write!(f, "{}: ", file.display())?,
            (None, Some((line, column))) => write!(f, "line {line}, column {column}: ")?,
            (None, None) => {}
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)?;
        if !self.excerpt.is_empty() {
            write!(f, "\n{}", self.excerpt)?;
        }
        Ok(())
    }
}

impl ParseError {
    fn new(text: &str, message: &str, span: Option<Range<usize>>, key: Option<String>) -> Self {
        let (position, excerpt) = match span {
            Some(span) => {
                let (line, column, excerpt) = excerpt(text, span);
                (Some((line, column)), excerpt)
            }
            None => (None, String::new()),
        };
        ParseError {
            file: None,
            position,
            key: key.filter(|k| !k.is_empty()),
            message: message.trim_end().to_owned(),
            excerpt,
        }
    }
}

/// Line and column (from 1, in characters) of `span`'s start, and that line with carets
/// under the span (at least one, at most to the line's end):
///
/// ```text
///   |
/// 5 | endpoint = 5
///   |            ^
/// ```
fn excerpt(text: &str, span: Range<usize>) -> (usize, usize, String) {
    let start = span.start.min(text.len());
    let start = (0..=start)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line = text[..line_start].matches('\n').count() + 1;
    let content = text[line_start..line_end].trim_end_matches('\r');
    let column = text[line_start..start].chars().count() + 1;
    let width = text
        .get(start..span.end.clamp(start, line_end))
        .map_or(1, |s| s.chars().count())
        .clamp(
            1,
            (content.chars().count() + 2).saturating_sub(column).max(1),
        );
    let gutter = " ".repeat(line.to_string().len());
    let excerpt = format!(
        "{gutter} |\n{line} | {content}\n{gutter} | {}{}",
        " ".repeat(column - 1),
        "^".repeat(width)
    );
    (line, column, excerpt)
}

/// Parses `text` into a configuration (not validated).
pub(super) fn parse(text: &str) -> Result<Config, ParseError> {
    let doc =
        DeTable::parse(text).map_err(|e| ParseError::new(text, e.message(), e.span(), None))?;
    let root = Spanned::new(doc.span(), DeValue::Table(doc.get_ref().clone()));
    Config::deserialize(toml::de::Deserializer::from(doc)).map_err(|e| locate(text, &root, &e))
}

/// One step of a key path.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn path_text(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The node of the document an error's place falls in: the smallest key or value whose
/// span holds it (the deeper one of two alike: a table and the header that made it).
struct Hit<'a, 'i> {
    len: usize,
    path: Vec<Step>,
    /// The value, when the place is a value's (not a key's).
    value: Option<&'a Spanned<DeValue<'i>>>,
}

fn find<'a, 'i>(
    node: &'a Spanned<DeValue<'i>>,
    span: &Range<usize>,
    path: &mut Vec<Step>,
    best: &mut Option<Hit<'a, 'i>>,
) {
    match node.get_ref() {
        DeValue::Table(table) => {
            for (key, child) in table.iter() {
                path.push(Step::Key(key.get_ref().to_string()));
                consider(key.span(), None, span, path, best);
                consider(child.span(), Some(child), span, path, best);
                // Children are searched whatever their parent's span: the table a
                // `[a.b]` header makes implicitly has no span around its children.
                find(child, span, path, best);
                path.pop();
            }
        }
        DeValue::Array(array) => {
            for (i, child) in array.iter().enumerate() {
                path.push(Step::Index(i));
                consider(child.span(), Some(child), span, path, best);
                find(child, span, path, best);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Keeps the node at `path` (its key's or value's span `s`) when it holds `span` and is
/// smaller than the best so far.
fn consider<'a, 'i>(
    s: Range<usize>,
    value: Option<&'a Spanned<DeValue<'i>>>,
    span: &Range<usize>,
    path: &[Step],
    best: &mut Option<Hit<'a, 'i>>,
) {
    if s.start <= span.start && span.end <= s.end {
        let len = s.end - s.start;
        let better = best
            .as_ref()
            .is_none_or(|b| len < b.len || (len == b.len && path.len() > b.path.len()));
        if better {
            *best = Some(Hit {
                len,
                path: path.to_vec(),
                value,
            });
        }
    }
}

/// The error of `e` placed at the key it is about.
fn locate(text: &str, root: &Spanned<DeValue<'_>>, e: &toml::de::Error) -> ParseError {
    let Some(span) = e.span() else {
        return ParseError::new(text, e.message(), None, None);
    };
    let mut best = None;
    find(root, &span, &mut Vec::new(), &mut best);
    let Some(hit) = best else {
        return ParseError::new(text, e.message(), Some(span), None);
    };
    let (span, path) = match hit
        .value
        .and_then(|table| within_tagged(&hit.path, table, e))
    {
        Some((inner, steps)) => {
            let mut path = hit.path;
            path.extend(steps);
            // The inner place, found again from the root: it may lie in a nested table.
            let mut deeper = None;
            find(root, &inner, &mut Vec::new(), &mut deeper);
            (inner, deeper.map_or(path, |d| d.path))
        }
        None => (span, hit.path),
    };
    ParseError::new(text, e.message(), Some(span), Some(path_text(&path)))
}

/// For an error placed at a table whose type its `kind` chooses: the place of the key it
/// is about, and the steps from the table to it. None when the table is no such table,
/// or the error cannot be placed closer.
fn within_tagged(
    path: &[Step],
    table: &Spanned<DeValue<'_>>,
    e: &toml::de::Error,
) -> Option<(Range<usize>, Vec<Step>)> {
    let tagged = matches!(path, [Step::Key(b), Step::Key(_)] if b == "backends")
        || matches!(path, [Step::Key(d)] if d == "dynamic_buckets");
    let DeValue::Table(entries) = table.get_ref() else {
        return None;
    };
    if !tagged || table.span() != e.span()? {
        return None;
    }
    let key_span = |name: &str| {
        entries
            .iter()
            .find(|(k, _)| k.get_ref() == name)
            .map(|(k, _)| k.span())
    };
    let message = e.message();
    // An unknown field names itself.
    if let Some(name) = message
        .strip_prefix("unknown field `")
        .and_then(|m| m.split_once('`'))
        .map(|(name, _)| name)
    {
        return key_span(name).map(|s| (s, vec![Step::Key(name.to_owned())]));
    }
    let kind = entries.get("kind")?;
    if message.starts_with("unknown variant") {
        return Some((kind.span(), vec![Step::Key("kind".into())]));
    }
    // Anything else: read the table again as its kind's type, straight from the document,
    // and keep the error only if it is the same one, now with its own place.
    let mut rest = entries.clone();
    rest.remove("kind");
    let de = || ValueDeserializer::from(Spanned::new(table.span(), DeValue::Table(rest.clone())));
    let inner = match kind.get_ref().as_str()? {
        "s3" => S3Backend::deserialize(de()).err(),
        "azure" => AzureBackend::deserialize(de()).err(),
        "gcs" => GcsBackend::deserialize(de()).err(),
        "fs" => FsBackend::deserialize(de()).err(),
        "memory" => MemoryBackend::deserialize(de()).err(),
        _ => None,
    }?;
    let inner_span = inner.span()?;
    (inner.message() == message && inner_span != table.span()).then(|| (inner_span, Vec::new()))
}
