//! S3 object tagging: the rules a tag set must follow, checked once before any backend is
//! touched, so that a refused request changes nothing.
//!
//! The limits are AWS's ("Categorizing your storage using tags"): at most 10 tags per
//! object, keys of 1 to 128 and values of 0 to 256 Unicode characters, made of letters,
//! digits, white space and `+ - = . _ : / @`, no two tags with one key, no key starting
//! with `aws:`. The error codes are the ones AWS answers for each.

use crate::model::{Error, Result, Tags};

/// The most tags an object may carry.
pub const MAX_TAGS: usize = 10;
const MAX_KEY_CHARS: usize = 128;
const MAX_VALUE_CHARS: usize = 256;

fn allowed(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "+-=._:/@".contains(c)
}

/// Checks a tag set given as pairs (duplicates still visible) and makes it a [`Tags`].
pub fn check(pairs: Vec<(String, String)>) -> Result<Tags> {
    if pairs.len() > MAX_TAGS {
        return Err(Error::BadRequest(format!(
            "Object tags cannot be greater than {MAX_TAGS}"
        )));
    }
    let mut tags = Tags::new();
    for (k, v) in pairs {
        let key_chars = k.chars().count();
        if key_chars == 0 || !k.chars().all(allowed) {
            return Err(Error::InvalidTag(
                "The TagKey you have provided is invalid".into(),
            ));
        }
        if key_chars > MAX_KEY_CHARS {
            return Err(Error::InvalidTag(format!(
                "The TagKey you have provided is too long, max {MAX_KEY_CHARS}"
            )));
        }
        if k.starts_with("aws:") {
            return Err(Error::InvalidTag(
                "Your TagKey cannot be prefixed with aws:".into(),
            ));
        }
        if v.chars().count() > MAX_VALUE_CHARS {
            return Err(Error::InvalidTag(format!(
                "The TagValue you have provided is too long, max {MAX_VALUE_CHARS}"
            )));
        }
        if !v.chars().all(allowed) {
            return Err(Error::InvalidTag(
                "The TagValue you have provided is invalid".into(),
            ));
        }
        if tags.insert(k, v).is_some() {
            return Err(Error::InvalidTag(
                "Cannot provide multiple Tags with the same key".into(),
            ));
        }
    }
    Ok(tags)
}

fn bad_header() -> Error {
    Error::InvalidArgument(
        "The header 'x-amz-tagging' shall be encoded as UTF-8 encoded URL query parameters.".into(),
    )
}

/// Decodes one component of a URL query strictly: `+` is a space, every `%` starts two hex
/// digits, and the result is UTF-8.
fn decode_component(s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(bad_header)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad_header())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad_header())?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| bad_header())
}

/// The tags of an `x-amz-tagging` header (`k1=v1&k2=v2`, URL-encoded), checked. A header
/// that is not text or not URL-encoded UTF-8 is `InvalidArgument`, as AWS answers.
pub fn from_header(value: &http::HeaderValue) -> Result<Tags> {
    let text = value.to_str().map_err(|_| bad_header())?;
    let mut pairs = Vec::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        pairs.push((decode_component(k)?, decode_component(v)?));
    }
    check(pairs)
}

/// Every character but the unreserved ones is escaped in a tag set's query form.
const ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A tag set as one URL query, `k1=v1&k2=v2`, everything but the unreserved characters
/// escaped (a space as `%20`, which every reader takes, where `+` is not): the form of
/// `x-amz-tagging` and Azure's `x-ms-tags`, and the metadata entry
/// [`TAGS_META`](crate::model::TAGS_META) in which GCS and memory members keep tags. An
/// empty value keeps its `=` (Azurite takes a pair without one for malformed).
pub fn encode(tags: &Tags) -> String {
    let mut out = String::new();
    for (k, v) in tags {
        if !out.is_empty() {
            out.push('&');
        }
        out.extend(percent_encoding::utf8_percent_encode(k, ESCAPED));
        out.push('=');
        out.extend(percent_encoding::utf8_percent_encode(v, ESCAPED));
    }
    out
}

/// A tag set that [`encode`] wrote, as a backend keeps it. Not checked against S3's
/// limits (another tool may have written it): a pair that does not decode is left out,
/// and an empty text (what an emulator keeps of a removed entry) is no tags.
pub fn decode(text: &str) -> Tags {
    text.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = decode_component(k).ok().filter(|k| !k.is_empty())?;
            Some((k, decode_component(v).ok()?))
        })
        .collect()
}

/// The tags a request's `x-amz-tagging` header sets (none without one).
pub fn of_request(headers: &http::HeaderMap) -> Result<Tags> {
    headers
        .get("x-amz-tagging")
        .map_or_else(|| Ok(Tags::new()), from_header)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(s: &str) -> Result<Tags> {
        from_header(&http::HeaderValue::from_str(s).unwrap())
    }

    #[test]
    fn headers_decode_as_url_query_parameters() {
        let t = header("a=1&b%20c=x+y&empty=&bare").unwrap();
        assert_eq!(t["a"], "1");
        assert_eq!(t["b c"], "x y");
        assert_eq!(t["empty"], "");
        assert_eq!(t["bare"], "");
        assert_eq!(header("k=%C3%A9t%C3%A9").unwrap()["k"], "été");
        assert!(header("").unwrap().is_empty());
        for bad in ["a=%ZZ", "a=%4", "a=%", "a=%FF%FE"] {
            assert!(
                matches!(header(bad), Err(Error::InvalidArgument(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn tag_sets_survive_their_query_form() {
        let tags: Tags = [
            ("note", "two words + more"),
            ("état", "été"),
            ("empty", ""),
            ("a+b=c", "/@: x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let text = encode(&tags);
        assert!(
            text.is_ascii() && !text.contains('+') && !text.contains(' '),
            "{text}"
        );
        assert!(
            text.contains("empty=&") || text.ends_with("empty="),
            "{text}"
        );
        assert_eq!(decode(&text), tags);
        assert_eq!(
            header(&text).unwrap(),
            tags,
            "not the form x-amz-tagging takes"
        );
        assert!(decode("").is_empty());
        // Written by another tool: what decodes is kept.
        assert_eq!(
            decode("a=1&b=%ZZ&=x&c"),
            [("a", "1"), ("c", "")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect::<Tags>()
        );
    }

    #[test]
    fn aws_limits() {
        let many: Vec<_> = (0..11).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(matches!(check(many.clone()), Err(Error::BadRequest(_))));
        assert!(check(many[..10].to_vec()).is_ok());
        let t = |k: &str, v: &str| check(vec![(k.to_owned(), v.to_owned())]);
        assert!(t(&"é".repeat(128), &"é".repeat(256)).is_ok());
        assert!(matches!(t(&"k".repeat(129), ""), Err(Error::InvalidTag(_))));
        assert!(matches!(
            t("k", &"v".repeat(257)),
            Err(Error::InvalidTag(_))
        ));
        assert!(matches!(t("", "v"), Err(Error::InvalidTag(_))));
        assert!(matches!(t("aws:x", "v"), Err(Error::InvalidTag(_))));
        assert!(matches!(t("k", "a*b"), Err(Error::InvalidTag(_))));
        assert!(t("AWS:x", "+-=._:/@ ok").is_ok());
        let dup = vec![("k".into(), "1".into()), ("k".into(), "2".into())];
        assert!(matches!(check(dup), Err(Error::InvalidTag(_))));
    }
}
