//! From JSON text to compiled statements, refusing anything outside the supported subset
//! with an error that names the element at fault.
//!
//! s3s-policy reads each statement into its model; the checks it does not make (unknown or
//! conflicting elements, duplicate keys, what a principal, action or resource may be) are
//! made here, on the JSON, before and after.

use std::collections::{HashMap, HashSet};
use std::fmt;

use s3s_policy::model::{
    self as m, ActionRule, ConditionKeyValues, ConditionRule, OneOrMore, PrincipalRule,
    ResourceRule, WildcardOneOrMore,
};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::PolicyKind;
use super::condition::{Condition, ConditionError, Operator};
use super::pattern::{Pattern, PatternError, Syntax};
use super::statement::{Actions, Effect, Principals, ResourcePattern, Resources, Statement};

/// AWS's limit for bucket policies. Identity policies come from the operator's own
/// configuration and have none.
pub(super) const MAX_BUCKET_POLICY_BYTES: usize = 20 * 1024;

const TOP_ELEMENTS: [&str; 3] = ["Version", "Id", "Statement"];
const STATEMENT_ELEMENTS: [&str; 9] = [
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];
const S3_ARN: &str = "arn:aws:s3:::";
const USER_FORMS: &str = "\"alice\" or \"arn:aws:iam::<account>:user/alice\"";

#[derive(Debug, thiserror::Error)]
pub(super) enum ParseError {
    #[error("not valid JSON: {0}")]
    Json(serde_json::Error),
    #[error(
        "the policy is {0} bytes; a bucket policy may have at most {MAX_BUCKET_POLICY_BYTES} (as in AWS)"
    )]
    TooLarge(usize),
    #[error("{at}: {problem}")]
    Invalid { at: String, problem: Problem },
}

#[derive(Debug, thiserror::Error)]
pub(super) enum Problem {
    #[error("must be a JSON object")]
    NotAnObject,
    #[error("must be a string")]
    NotAString,
    #[error("is empty")]
    Empty,
    #[error("missing \"{0}\"")]
    Missing(&'static str),
    #[error("unknown element \"{0}\" (expected {list})", list = .1.join(", "))]
    UnknownElement(String, &'static [&'static str]),
    #[error("{0} is not a policy language version (use \"2012-10-17\")")]
    Version(String),
    #[error("has both {0} and {1}; a statement takes one of them")]
    Both(&'static str, &'static str),
    #[error("needs {0} or {1}")]
    Neither(&'static str, &'static str),
    #[error(
        "identity policies must not have {0}: they apply to the user or group they are attached to"
    )]
    PrincipalInIdentityPolicy(&'static str),
    #[error("bucket policies need Principal or NotPrincipal")]
    NoPrincipal,
    #[error("must be \"Allow\" or \"Deny\"")]
    Effect,
    #[error("Sid {0:?} is also the Sid of Statement[{1}]; Sids must be unique")]
    DuplicateSid(String, usize),
    /// s3s-policy's own message, for a value of the wrong JSON type.
    #[error("{0}")]
    Model(serde_json::Error),
    #[error("a string principal must be \"*\"; name users as {{\"AWS\": [...]}}")]
    PrincipalString,
    #[error("principal type {0:?} is not supported: only \"AWS\" (users, or \"*\")")]
    PrincipalType(String),
    #[error(
        "{0:?}: account principals are not supported (there are no accounts here); name users: {USER_FORMS}"
    )]
    AccountPrincipal(String),
    #[error("{0:?} is not a user: principals are \"*\" or users, {USER_FORMS}")]
    NotAUser(String),
    #[error("{0:?}: user paths are not supported")]
    UserPath(String),
    #[error("{0:?}: a principal cannot have wildcards other than \"*\" alone")]
    PrincipalWildcard(String),
    #[error(
        "{0:?} is not an S3 action: \"s3:<Action>\" (letters and digits, wildcards allowed) or \"*\""
    )]
    Action(String),
    #[error(
        "{0:?} is not an S3 resource: \"*\", \"arn:aws:s3:::<bucket>\" or \"arn:aws:s3:::<bucket>/<key>\""
    )]
    Resource(String),
    #[error(
        "{0:?} is outside bucket {1:?}: its policy may only name \"arn:aws:s3:::{1}\" and \"arn:aws:s3:::{1}/...\" (AWS: \"Policy has invalid resource\")"
    )]
    OtherBucket(String, String),
    #[error("{0:?}: {1}")]
    Variable(String, PatternError),
    #[error("{0}")]
    Condition(ConditionError),
    #[error("values must be strings (or booleans and numbers, read as their text)")]
    ConditionValue,
}

fn invalid(at: impl fmt::Display, problem: Problem) -> ParseError {
    ParseError::Invalid {
        at: at.to_string(),
        problem,
    }
}

pub(super) fn parse(json: &str, kind: &PolicyKind) -> Result<Vec<Statement>, ParseError> {
    if matches!(kind, PolicyKind::Bucket { .. }) && json.len() > MAX_BUCKET_POLICY_BYTES {
        return Err(ParseError::TooLarge(json.len()));
    }
    // serde_json keeps the last of two equal keys: a reviewer reading the first would be
    // misled, so a policy with duplicates is refused before anything reads it.
    serde_json::from_str::<UniqueKeys>(json).map_err(ParseError::Json)?;
    let value: Value = serde_json::from_str(json).map_err(ParseError::Json)?;
    let Value::Object(mut top) = value else {
        return Err(invalid("policy", Problem::NotAnObject));
    };
    if let Some(k) = top.keys().find(|k| !TOP_ELEMENTS.contains(&k.as_str())) {
        return Err(invalid(
            "policy",
            Problem::UnknownElement(k.clone(), &TOP_ELEMENTS),
        ));
    }
    // Absent means 2008-10-17 to AWS: variables are then plain text.
    let variables = match top.remove("Version") {
        None => false,
        Some(v) => match serde_json::from_value::<m::Version>(v.clone()) {
            Ok(m::Version::V2012_10_17) => true,
            Ok(m::Version::V2008_10_17) => false,
            Err(_) => return Err(invalid("Version", Problem::Version(v.to_string()))),
        },
    };
    if top.get("Id").is_some_and(|id| !id.is_string()) {
        return Err(invalid("Id", Problem::NotAString));
    }
    let statements = match top.remove("Statement") {
        None => return Err(invalid("policy", Problem::Missing("Statement"))),
        Some(Value::Array(list)) => list,
        Some(one @ Value::Object(_)) => vec![one],
        Some(_) => return Err(invalid("Statement", Problem::NotAnObject)),
    };
    if statements.is_empty() {
        return Err(invalid("Statement", Problem::Empty));
    }
    let statements = statements
        .into_iter()
        .enumerate()
        .map(|(i, s)| statement(s, &format!("Statement[{i}]"), kind, variables))
        .collect::<Result<Vec<_>, _>>()?;
    let mut sids = HashMap::new();
    for (i, s) in statements.iter().enumerate() {
        if let Some(sid) = &s.sid
            && let Some(first) = sids.insert(sid.as_str(), i)
        {
            return Err(invalid(
                format!("Statement[{i}].Sid"),
                Problem::DuplicateSid(sid.clone(), first),
            ));
        }
    }
    Ok(statements)
}

fn statement(
    value: Value,
    at: &str,
    kind: &PolicyKind,
    variables: bool,
) -> Result<Statement, ParseError> {
    let Value::Object(mut map) = value else {
        return Err(invalid(at, Problem::NotAnObject));
    };
    if let Some(k) = map
        .keys()
        .find(|k| !STATEMENT_ELEMENTS.contains(&k.as_str()))
    {
        return Err(invalid(
            at,
            Problem::UnknownElement(k.clone(), &STATEMENT_ELEMENTS),
        ));
    }
    // s3s-policy reads each pair through `#[serde(flatten)]`, which would take one of two
    // conflicting elements silently.
    for (a, b) in [
        ("Principal", "NotPrincipal"),
        ("Action", "NotAction"),
        ("Resource", "NotResource"),
    ] {
        match (map.contains_key(a), map.contains_key(b)) {
            (true, true) => return Err(invalid(at, Problem::Both(a, b))),
            (false, false) if a != "Principal" => {
                return Err(invalid(at, Problem::Neither(a, b)));
            }
            _ => {}
        }
    }
    let named_principal = ["Principal", "NotPrincipal"]
        .into_iter()
        .find(|k| map.contains_key(*k));
    match (kind, named_principal) {
        (PolicyKind::Identity, Some(p)) => {
            return Err(invalid(at, Problem::PrincipalInIdentityPolicy(p)));
        }
        (PolicyKind::Bucket { .. }, None) => return Err(invalid(at, Problem::NoPrincipal)),
        _ => {}
    }
    match map.get("Effect") {
        None => return Err(invalid(at, Problem::Missing("Effect"))),
        Some(e) if !matches!(e.as_str(), Some("Allow" | "Deny")) => {
            return Err(invalid(format!("{at}.Effect"), Problem::Effect));
        }
        _ => {}
    }
    if map.get("Sid").is_some_and(|s| !s.is_string()) {
        return Err(invalid(format!("{at}.Sid"), Problem::NotAString));
    }
    if let Some(p) = named_principal
        && let Some(Value::String(s)) = map.get(p)
        && s != "*"
    {
        return Err(invalid(format!("{at}.{p}"), Problem::PrincipalString));
    }
    if let Some(c) = map.get_mut("Condition") {
        stringify_condition_values(c, &format!("{at}.Condition"))?;
    }

    let model: m::Statement =
        serde_json::from_value(Value::Object(map)).map_err(|e| invalid(at, Problem::Model(e)))?;

    let principal = match model.principal {
        None => None,
        Some(PrincipalRule::Principal(p)) => {
            Some(principals(p, false, &format!("{at}.Principal"))?)
        }
        Some(PrincipalRule::NotPrincipal(p)) => {
            Some(principals(p, true, &format!("{at}.NotPrincipal"))?)
        }
    };
    let actions = match model.action {
        ActionRule::Action(a) => actions(a, false, &format!("{at}.Action"))?,
        ActionRule::NotAction(a) => actions(a, true, &format!("{at}.NotAction"))?,
    };
    let resources = match model.resource {
        ResourceRule::Resource(r) => {
            resources(r, false, &format!("{at}.Resource"), kind, variables)?
        }
        ResourceRule::NotResource(r) => {
            resources(r, true, &format!("{at}.NotResource"), kind, variables)?
        }
    };
    let conditions = match model.condition {
        None => Vec::new(),
        Some(rule) => conditions(rule, &format!("{at}.Condition"), variables)?,
    };
    Ok(Statement {
        sid: model.sid,
        effect: match model.effect {
            m::Effect::Allow => Effect::Allow,
            m::Effect::Deny => Effect::Deny,
        },
        principal,
        actions,
        resources,
        conditions,
    })
}

/// AWS reads `true` and `10` in condition values as "true" and "10"; s3s-policy takes
/// strings only.
fn stringify_condition_values(condition: &mut Value, at: &str) -> Result<(), ParseError> {
    let Value::Object(operators) = condition else {
        return Err(invalid(at, Problem::NotAnObject));
    };
    if operators.is_empty() {
        return Err(invalid(at, Problem::Empty));
    }
    for (op, keys) in operators.iter_mut() {
        let Value::Object(keys) = keys else {
            return Err(invalid(format!("{at}.{op}"), Problem::NotAnObject));
        };
        // An empty block would leave the statement unconditional, surely not what was meant.
        if keys.is_empty() {
            return Err(invalid(format!("{at}.{op}"), Problem::Empty));
        }
        for (key, values) in keys.iter_mut() {
            let bad = || invalid(format!("{at}.{op}[{key:?}]"), Problem::ConditionValue);
            let stringify = |v: &mut Value| match v {
                Value::String(_) => Ok(()),
                Value::Bool(b) => {
                    *v = Value::String(b.to_string());
                    Ok(())
                }
                Value::Number(n) => {
                    *v = Value::String(n.to_string());
                    Ok(())
                }
                _ => Err(bad()),
            };
            match values {
                Value::Array(list) => list.iter_mut().try_for_each(stringify)?,
                v => stringify(v)?,
            }
        }
    }
    Ok(())
}

/// `(path of the element, its text)` for each item of a one-or-more list: `X` for a single
/// string, `X[i]` for items of an array.
fn items<'s>(
    list: &'s [String],
    single: bool,
    at: &str,
) -> impl Iterator<Item = (String, &'s str)> {
    list.iter().enumerate().map(move |(i, s)| {
        let path = if single {
            at.to_owned()
        } else {
            format!("{at}[{i}]")
        };
        (path, s.as_str())
    })
}

fn principals(p: m::Principal, negated: bool, at: &str) -> Result<Principals, ParseError> {
    let mut set = Principals {
        everyone: false,
        authenticated: false,
        users: Vec::new(),
        negated,
    };
    let map = match p {
        m::Principal::Wildcard => {
            set.everyone = true;
            return Ok(set);
        }
        m::Principal::Map(map) => map,
    };
    if map.is_empty() {
        return Err(invalid(at, Problem::Empty));
    }
    for (kind, names) in map {
        if kind != "AWS" {
            return Err(invalid(at, Problem::PrincipalType(kind)));
        }
        let at = format!("{at}.AWS");
        let single = matches!(names, OneOrMore::One(_));
        let names = names.as_slice();
        if names.is_empty() {
            return Err(invalid(at, Problem::Empty));
        }
        for (path, name) in items(names, single, &at) {
            if name == "*" {
                set.everyone = true;
            } else {
                set.users
                    .push(user(name).map_err(|p| invalid(path, p))?.into());
            }
        }
    }
    Ok(set)
}

/// A user's name from `name` or `arn:aws:iam::<account>:user/name`. The account is not
/// checked: there is one set of users.
fn user(principal: &str) -> Result<&str, Problem> {
    if principal.contains(['*', '?']) {
        return Err(Problem::PrincipalWildcard(principal.to_owned()));
    }
    let Some(arn) = principal.strip_prefix("arn:") else {
        return if principal.is_empty() || principal.contains([':', '/']) {
            Err(Problem::NotAUser(principal.to_owned()))
        } else {
            Ok(principal)
        };
    };
    let resource = arn
        .strip_prefix("aws:iam::")
        .and_then(|rest| rest.split_once(':'))
        .map(|(_account, resource)| resource);
    match resource {
        Some("root") => Err(Problem::AccountPrincipal(principal.to_owned())),
        Some(r) => match r.strip_prefix("user/") {
            Some(name) if name.contains('/') => Err(Problem::UserPath(principal.to_owned())),
            Some(name) if !name.is_empty() => Ok(name),
            _ => Err(Problem::NotAUser(principal.to_owned())),
        },
        None => Err(Problem::NotAUser(principal.to_owned())),
    }
}

fn actions(
    rule: WildcardOneOrMore<String>,
    negated: bool,
    at: &str,
) -> Result<Actions, ParseError> {
    let (list, single) = match &rule {
        WildcardOneOrMore::Wildcard => {
            return Ok(Actions {
                patterns: vec![Pattern::Everything],
                negated,
            });
        }
        WildcardOneOrMore::One(a) => (std::slice::from_ref(a), true),
        WildcardOneOrMore::More(list) => (list.as_slice(), false),
    };
    if list.is_empty() {
        return Err(invalid(at, Problem::Empty));
    }
    let patterns = items(list, single, at)
        .map(|(path, a)| action(a).map_err(|p| invalid(path, p)))
        .collect::<Result<_, _>>()?;
    Ok(Actions { patterns, negated })
}

fn action(text: &str) -> Result<Pattern, Problem> {
    if text == "*" {
        return Ok(Pattern::Everything);
    }
    // Action names are ASCII, so lower-casing them here lets matching fold ASCII only.
    let lower = text.to_ascii_lowercase();
    let well_formed = lower.strip_prefix("s3:").is_some_and(|name| {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?')
    });
    if !well_formed {
        return Err(Problem::Action(text.to_owned()));
    }
    let syntax = Syntax {
        wildcards: true,
        variables: false,
    };
    Pattern::compile(&lower, syntax).map_err(|e| Problem::Variable(text.to_owned(), e))
}

fn resources(
    rule: WildcardOneOrMore<String>,
    negated: bool,
    at: &str,
    kind: &PolicyKind,
    variables: bool,
) -> Result<Resources, ParseError> {
    let star = ["*".to_owned()];
    let (list, single) = match &rule {
        WildcardOneOrMore::Wildcard => (&star[..], true),
        WildcardOneOrMore::One(r) => (std::slice::from_ref(r), true),
        WildcardOneOrMore::More(list) => (list.as_slice(), false),
    };
    if list.is_empty() {
        return Err(invalid(at, Problem::Empty));
    }
    let patterns = items(list, single, at)
        .map(|(path, r)| resource(r, kind, variables).map_err(|p| invalid(path, p)))
        .collect::<Result<_, _>>()?;
    Ok(Resources { patterns, negated })
}

fn resource(text: &str, kind: &PolicyKind, variables: bool) -> Result<ResourcePattern, Problem> {
    let rest = if text == "*" {
        "*"
    } else {
        match text.strip_prefix(S3_ARN) {
            Some(rest) if !rest.is_empty() && !rest.starts_with('/') => rest,
            _ => return Err(Problem::Resource(text.to_owned())),
        }
    };
    if let PolicyKind::Bucket { bucket } = kind {
        let inside = text != "*"
            && rest
                .strip_prefix(bucket.as_str())
                .is_some_and(|after| after.is_empty() || after.starts_with('/'));
        if !inside {
            return Err(Problem::OtherBucket(text.to_owned(), bucket.clone()));
        }
    }
    let syntax = Syntax {
        wildcards: true,
        variables,
    };
    Ok(ResourcePattern {
        all: rest == "*",
        rest: Pattern::compile(rest, syntax).map_err(|e| Problem::Variable(text.to_owned(), e))?,
    })
}

fn conditions(
    ConditionRule(operators): ConditionRule,
    at: &str,
    variables: bool,
) -> Result<Vec<Condition>, ParseError> {
    let mut conditions = Vec::new();
    for (name, ConditionKeyValues(keys)) in operators {
        let operator = Operator::parse(&name).map_err(|e| invalid(at, Problem::Condition(e)))?;
        for (key, values) in keys {
            let condition = Condition::compile(&name, operator, &key, values.as_slice(), variables)
                .map_err(|e| invalid(format!("{at}.{name}[{key:?}]"), Problem::Condition(e)))?;
            conditions.push(condition);
        }
    }
    Ok(conditions)
}

/// Reads any JSON and fails on an object with two equal keys.
struct UniqueKeys;

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueKeys)
    }
}

impl<'de> Visitor<'de> for UniqueKeys {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<UniqueKeys>()?.is_some() {}
        Ok(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            map.next_value::<UniqueKeys>()?;
        }
        Ok(self)
    }
}
