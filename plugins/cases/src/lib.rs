//! Reads the CASES.toml files of `switchyard policy test`, so a Rust plugin's `cargo test` can
//! run its cases natively, without the gateway or a wasm build. The format is the gateway's:
//! top-level `config` and `[[members]]` are defaults that a `[[case]]` may override.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    config: String,
    #[serde(default)]
    members: Vec<Member>,
    #[serde(default, rename = "case")]
    cases: Vec<RawCase>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default = "yes")]
    pub healthy: bool,
    pub latency_us: Option<u64>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub operation: String,
    pub principal: Option<String>,
    pub source_ip: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Object {
    pub bucket: String,
    pub key: String,
    pub size: Option<u64>,
    pub content_type: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    pub age_seconds: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Call {
    Place,
    Route,
    Tier,
}

/// The answer a case expects, in the gateway's spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    Members(Vec<String>),
    Keep,
    Delete,
    MoveTo(String),
    CopyTo(String),
    /// `invalid-input`, `unavailable` or `other`.
    Error(String),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawExpect {
    Members(Vec<String>),
    Word(String),
    Target(BTreeMap<String, String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: String,
    call: Call,
    config: Option<String>,
    members: Option<Vec<Member>>,
    request: Option<Request>,
    object: Object,
    current: Option<String>,
    expect: Option<RawExpect>,
    expect_error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub call: Call,
    pub config: String,
    pub members: Vec<Member>,
    pub request: Request,
    pub object: Object,
    pub current: String,
    pub expect: Expect,
}

/// The cases of `path`, with the file's defaults filled in.
pub fn load(path: impl AsRef<Path>) -> Result<Vec<Case>, String> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: File = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    file.cases
        .into_iter()
        .map(|c| {
            let expect = match (c.expect, c.expect_error) {
                (Some(RawExpect::Members(names)), None) => Expect::Members(names),
                (Some(RawExpect::Word(w)), None) if w == "keep" => Expect::Keep,
                (Some(RawExpect::Word(w)), None) if w == "delete" => Expect::Delete,
                (Some(RawExpect::Target(t)), None) if t.len() == 1 => match t.into_iter().next() {
                    Some((action, to)) if action == "move-to" => Expect::MoveTo(to),
                    Some((action, to)) if action == "copy-to" => Expect::CopyTo(to),
                    _ => return Err(format!("case {:?}: unknown tier action", c.name)),
                },
                (None, Some(kind)) => Expect::Error(kind),
                _ => {
                    return Err(format!(
                        "case {:?}: needs one valid `expect` or `expect_error`",
                        c.name
                    ));
                }
            };
            Ok(Case {
                name: c.name,
                call: c.call,
                config: c.config.unwrap_or_else(|| file.config.clone()),
                members: c.members.unwrap_or_else(|| file.members.clone()),
                request: c.request.unwrap_or_default(),
                object: c.object,
                current: c.current.unwrap_or_default(),
                expect,
            })
        })
        .collect()
}
