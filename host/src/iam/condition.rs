//! The Condition element: operators, keys and values, compiled once and tested per request.
//!
//! Semantics follow AWS's "Condition operators": several values for one key are ORed,
//! several keys under one operator and several operators are ANDed. A key the request does
//! not have makes a condition false, except for the negated operators (true), `...IfExists`
//! (true) and `Null` (which tests exactly that).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::pattern::{Case, Match, Pattern, PatternError, Pieces, Syntax};
use super::{Context, Principal};

/// Operators this evaluator implements, by family; each also takes the `IfExists` suffix
/// except `Null`.
pub(super) const OPERATORS: [&str; 15] = [
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "NumericEquals",
    "NumericNotEquals",
    "NumericLessThan",
    "NumericLessThanEquals",
    "NumericGreaterThan",
    "NumericGreaterThanEquals",
    "Bool",
    "IpAddress",
    "NotIpAddress",
];

/// Operators AWS has and this evaluator does not: refused by name rather than as unknown.
const AWS_ONLY_OPERATORS: [&str; 11] = [
    "DateEquals",
    "DateNotEquals",
    "DateLessThan",
    "DateLessThanEquals",
    "DateGreaterThan",
    "DateGreaterThanEquals",
    "BinaryEquals",
    "ArnEquals",
    "ArnNotEquals",
    "ArnLike",
    "ArnNotLike",
];

/// Condition keys, as listed in error messages.
pub(super) const KEYS: [&str; 13] = [
    "aws:SourceIp",
    "aws:SecureTransport",
    "aws:username",
    "aws:userid",
    "aws:PrincipalType",
    "s3:prefix",
    "s3:delimiter",
    "s3:max-keys",
    "s3:x-amz-acl",
    "s3:signatureversion",
    "s3:VersionId",
    "s3:ExistingObjectTag/<key>",
    "s3:RequestObjectTag/<key>",
];

/// Keys the caller supplies through [`Context::keys`], by their lower-case names.
const REQUEST_KEYS: [&str; 6] = [
    "s3:prefix",
    "s3:delimiter",
    "s3:max-keys",
    "s3:x-amz-acl",
    "s3:signatureversion",
    "s3:versionid",
];
const TAG_KEY_PREFIXES: [&str; 2] = ["s3:existingobjecttag/", "s3:requestobjecttag/"];

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub(super) enum ConditionError {
    #[error("operator \"{0}\" is not supported")]
    UnsupportedOperator(String),
    #[error("unknown operator \"{0}\" (supported: {list}, each also as ...IfExists except Null)", list = OPERATORS.join(", ") + ", Null")]
    UnknownOperator(String),
    #[error(
        "\"{0}\": set operators (ForAnyValue:, ForAllValues:) are not supported: every supported key has one value"
    )]
    SetOperator(String),
    #[error("unknown condition key \"{0}\" (supported: {list}; names are case-insensitive)", list = KEYS.join(", "))]
    UnknownKey(String),
    #[error("\"{key}\" holds {kind}; operator {operator} does not apply to it (use {use_instead})")]
    WrongType {
        key: String,
        kind: &'static str,
        operator: String,
        use_instead: &'static str,
    },
    #[error("no values")]
    NoValues,
    #[error("{0:?} is not a number")]
    NotANumber(String),
    #[error("{0:?} is not true or false")]
    NotABool(String),
    #[error("{0:?} is not an IP address or CIDR block")]
    NotAnIp(String),
    #[error("{0:?}: policy variables are only allowed in the values of String operators")]
    VariableOutsideString(String),
    #[error(transparent)]
    Pattern(#[from] PatternError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyType {
    String,
    Numeric,
    Bool,
    Ip,
}

impl KeyType {
    fn describe(self) -> (&'static str, &'static str) {
        match self {
            Self::String => ("a string", "a String operator or Null"),
            Self::Numeric => ("a number", "a Numeric operator or Null"),
            Self::Bool => ("a boolean", "Bool or Null"),
            Self::Ip => ("an IP address", "IpAddress, NotIpAddress or Null"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    SourceIp,
    SecureTransport,
    Username,
    Userid,
    PrincipalType,
    /// Looked up in [`Context::keys`] by this name: lower-case, except a tag key, which
    /// keeps its case because S3 tag keys are case-sensitive.
    Request(Box<str>),
}

/// See [`super::request_key`].
pub(super) fn request_key(name: &str) -> Option<String> {
    match Key::parse(name) {
        Ok(Key::Request(name)) => Some(name.into()),
        _ => None,
    }
}

impl Key {
    fn parse(name: &str) -> Result<Self, ConditionError> {
        let lower = name.to_ascii_lowercase();
        Ok(match lower.as_str() {
            "aws:sourceip" => Self::SourceIp,
            "aws:securetransport" => Self::SecureTransport,
            "aws:username" => Self::Username,
            "aws:userid" => Self::Userid,
            "aws:principaltype" => Self::PrincipalType,
            l if REQUEST_KEYS.contains(&l) => Self::Request(l.into()),
            l => {
                let tag = TAG_KEY_PREFIXES.iter().find_map(|prefix| {
                    l.starts_with(prefix)
                        .then(|| (*prefix, &name[prefix.len()..]))
                        .filter(|(_, tag)| !tag.is_empty())
                });
                match tag {
                    Some((prefix, tag)) => Self::Request(format!("{prefix}{tag}").into()),
                    None => return Err(ConditionError::UnknownKey(name.to_owned())),
                }
            }
        })
    }

    fn kind(&self) -> KeyType {
        match self {
            Self::SourceIp => KeyType::Ip,
            Self::SecureTransport => KeyType::Bool,
            Self::Request(name) if &**name == "s3:max-keys" => KeyType::Numeric,
            _ => KeyType::String,
        }
    }

    fn value<'c>(&self, cx: &Context<'c>) -> Option<Value<'c>> {
        match self {
            Self::SourceIp => cx.source_ip.map(Value::Ip),
            Self::SecureTransport => Some(Value::Bool(cx.secure_transport)),
            Self::Username => match cx.principal {
                Principal::User { name, .. } => Some(Value::Str(name)),
                Principal::Anonymous => None,
            },
            Self::Userid => match cx.principal {
                Principal::User { access_key, .. } => Some(Value::Str(access_key)),
                Principal::Anonymous => None,
            },
            Self::PrincipalType => Some(Value::Str(cx.principal.type_name())),
            Self::Request(name) => cx
                .keys
                .iter()
                .find(|(k, _)| *k == &**name)
                .map(|(_, v)| Value::Str(v)),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Value<'c> {
    Str(&'c str),
    Bool(bool),
    Ip(IpAddr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

#[derive(Debug, Clone, PartialEq)]
enum Test {
    /// StringEquals, StringLike and their IgnoreCase and Not forms: Equals is Like without
    /// wildcards.
    String {
        patterns: Vec<Pattern>,
        case: Case,
        negated: bool,
    },
    Numeric {
        values: Vec<f64>,
        order: Order,
        negated: bool,
    },
    Bool(Vec<bool>),
    Ip {
        blocks: Vec<Cidr>,
        negated: bool,
    },
    /// `true` values test that the key is absent, `false` that it is present.
    Null(Vec<bool>),
}

/// One operator applied to one key.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Condition {
    key: Key,
    test: Test,
    if_exists: bool,
}

/// An operator's name, parsed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Operator {
    family: Family,
    if_exists: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    String {
        like: bool,
        case: Case,
        negated: bool,
    },
    Numeric {
        order: Order,
        negated: bool,
    },
    Bool,
    Ip {
        negated: bool,
    },
    Null,
}

impl Operator {
    pub(super) fn parse(name: &str) -> Result<Self, ConditionError> {
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("foranyvalue:") || lower.starts_with("forallvalues:") {
            return Err(ConditionError::SetOperator(name.to_owned()));
        }
        let (base, if_exists) = match name.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (name, false),
        };
        let string = |like, case, negated| Family::String {
            like,
            case,
            negated,
        };
        let numeric = |order, negated| Family::Numeric { order, negated };
        let family = match base {
            "StringEquals" => string(false, Case::Sensitive, false),
            "StringNotEquals" => string(false, Case::Sensitive, true),
            "StringEqualsIgnoreCase" => string(false, Case::Insensitive, false),
            "StringNotEqualsIgnoreCase" => string(false, Case::Insensitive, true),
            "StringLike" => string(true, Case::Sensitive, false),
            "StringNotLike" => string(true, Case::Sensitive, true),
            "NumericEquals" => numeric(Order::Equal, false),
            "NumericNotEquals" => numeric(Order::Equal, true),
            "NumericLessThan" => numeric(Order::Less, false),
            "NumericLessThanEquals" => numeric(Order::LessOrEqual, false),
            "NumericGreaterThan" => numeric(Order::Greater, false),
            "NumericGreaterThanEquals" => numeric(Order::GreaterOrEqual, false),
            "Bool" => Family::Bool,
            "IpAddress" => Family::Ip { negated: false },
            "NotIpAddress" => Family::Ip { negated: true },
            // AWS has no NullIfExists: "if the key exists, test whether it is absent".
            "Null" if !if_exists => Family::Null,
            b if AWS_ONLY_OPERATORS.contains(&b) => {
                return Err(ConditionError::UnsupportedOperator(name.to_owned()));
            }
            _ => return Err(ConditionError::UnknownOperator(name.to_owned())),
        };
        Ok(Self { family, if_exists })
    }

    fn accepts(&self, kind: KeyType) -> bool {
        matches!(
            (self.family, kind),
            (Family::Null, _)
                | (Family::String { .. }, KeyType::String)
                | (Family::Numeric { .. }, KeyType::Numeric)
                | (Family::Bool, KeyType::Bool)
                | (Family::Ip { .. }, KeyType::Ip)
        )
    }
}

impl Condition {
    /// `values` are the policy's strings (JSON booleans and numbers already turned into
    /// their text, as AWS accepts them).
    pub(super) fn compile(
        operator_name: &str,
        operator: Operator,
        key_name: &str,
        values: &[String],
        variables: bool,
    ) -> Result<Self, ConditionError> {
        let key = Key::parse(key_name)?;
        if !operator.accepts(key.kind()) {
            let (kind, use_instead) = key.kind().describe();
            return Err(ConditionError::WrongType {
                key: key_name.to_owned(),
                kind,
                operator: operator_name.to_owned(),
                use_instead,
            });
        }
        if values.is_empty() {
            return Err(ConditionError::NoValues);
        }
        let non_string = |v: &String| {
            if variables && v.contains("${") {
                return Err(ConditionError::VariableOutsideString(v.clone()));
            }
            Ok(())
        };
        let test = match operator.family {
            Family::String {
                like,
                case,
                negated,
            } => Test::String {
                patterns: values
                    .iter()
                    .map(|v| {
                        Pattern::compile(
                            v,
                            Syntax {
                                wildcards: like,
                                variables,
                            },
                        )
                    })
                    .collect::<Result<_, _>>()?,
                case,
                negated,
            },
            Family::Numeric { order, negated } => Test::Numeric {
                values: values
                    .iter()
                    .map(|v| {
                        non_string(v)?;
                        parse_number(v).ok_or_else(|| ConditionError::NotANumber(v.clone()))
                    })
                    .collect::<Result<_, _>>()?,
                order,
                negated,
            },
            Family::Bool => Test::Bool(
                values
                    .iter()
                    .map(|v| non_string(v).and_then(|()| parse_bool(v)))
                    .collect::<Result<_, _>>()?,
            ),
            Family::Null => Test::Null(
                values
                    .iter()
                    .map(|v| non_string(v).and_then(|()| parse_bool(v)))
                    .collect::<Result<_, _>>()?,
            ),
            Family::Ip { negated } => Test::Ip {
                blocks: values
                    .iter()
                    .map(|v| {
                        non_string(v)?;
                        Cidr::parse(v).ok_or_else(|| ConditionError::NotAnIp(v.clone()))
                    })
                    .collect::<Result<_, _>>()?,
                negated,
            },
        };
        Ok(Self {
            key,
            test,
            if_exists: operator.if_exists,
        })
    }

    pub(super) fn holds(&self, cx: &Context<'_>) -> bool {
        let value = self.key.value(cx);
        let negated = match &self.test {
            Test::Null(absent) => return absent.contains(&value.is_none()),
            Test::String { negated, .. }
            | Test::Numeric { negated, .. }
            | Test::Ip { negated, .. } => *negated,
            Test::Bool(_) => false,
        };
        let Some(value) = value else {
            return self.if_exists || negated;
        };
        match (&self.test, value) {
            (Test::String { patterns, case, .. }, Value::Str(s)) => {
                // A value whose variable has no value can neither match nor be shown not to
                // match: under negation it makes the condition false, as AWS makes the whole
                // statement invalid.
                let mut unresolved = false;
                for p in patterns {
                    match p.matches(Pieces::one(&s), *case, cx) {
                        Match::Yes => return !negated,
                        Match::Unresolved => unresolved = true,
                        Match::No => {}
                    }
                }
                negated && !unresolved
            }
            (Test::Numeric { values, order, .. }, Value::Str(s)) => {
                // A request value that is not a number equals nothing and orders with nothing.
                let any = parse_number(s).is_some_and(|n| {
                    values.iter().any(|&v| match order {
                        Order::Equal => n == v,
                        Order::Less => n < v,
                        Order::LessOrEqual => n <= v,
                        Order::Greater => n > v,
                        Order::GreaterOrEqual => n >= v,
                    })
                });
                any != negated
            }
            (Test::Bool(values), Value::Bool(b)) => values.contains(&b),
            (Test::Ip { blocks, .. }, Value::Ip(ip)) => {
                // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d.
                let ip = ip.to_canonical();
                blocks.iter().any(|b| b.contains(ip)) != negated
            }
            // Types are checked at compile time; an impossible pair never grants.
            _ => false,
        }
    }

    /// AWS's rule for "not public", simplified: the condition limits the statement to a set
    /// of client addresses narrower than everything, or to signed-in users.
    pub(super) fn excludes_the_public(&self) -> bool {
        if self.if_exists {
            return false;
        }
        match (&self.key, &self.test) {
            (Key::SourceIp, Test::Ip { blocks, negated }) => {
                !negated && blocks.iter().all(|b| b.prefix > 0)
            }
            (Key::Username | Key::Userid, Test::String { negated, .. }) => !negated,
            _ => false,
        }
    }
}

/// Decimal numbers only: Rust's `f64` parser would also take "NaN", "inf" and "1e3", which
/// AWS's numeric operators do not.
fn parse_number(s: &str) -> Option<f64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || frac.is_some_and(|f| !all_digits(f)) {
        return None;
    }
    s.parse().ok()
}

fn parse_bool(s: &str) -> Result<bool, ConditionError> {
    if s.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if s.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(ConditionError::NotABool(s.to_owned()))
    }
}

/// An address block; a single address is a block of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                (a, Some(p.parse::<u8>().ok()?))
            }
            Some(_) => return None,
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return None;
        }
        // A block written in IPv4-mapped form means the IPv4 clients it maps, which is how
        // the request's address is compared (see `holds`).
        if let IpAddr::V6(v6) = addr
            && prefix >= 96
            && let Some(v4) = v6.to_ipv4_mapped()
        {
            return Some(Self::masked(IpAddr::V4(v4), prefix - 96));
        }
        Some(Self::masked(addr, prefix))
    }

    /// AWS accepts host bits after the prefix (`192.0.2.7/24`) and ignores them.
    fn masked(addr: IpAddr, prefix: u8) -> Self {
        let net = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from_bits(a.to_bits() & mask32(prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from_bits(a.to_bits() & mask128(prefix))),
        };
        Self { net, prefix }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                ip.to_bits() & mask32(self.prefix) == net.to_bits()
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                ip.to_bits() & mask128(self.prefix) == net.to_bits()
            }
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_blocks() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for (block, addr, want) in [
            ("192.0.2.0/24", "192.0.2.255", true),
            ("192.0.2.0/24", "192.0.3.0", false),
            ("192.0.2.7/24", "192.0.2.1", true),
            ("192.0.2.7", "192.0.2.7", true),
            ("192.0.2.7", "192.0.2.8", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "2001:db8::1", false),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("::/0", "::1", true),
            ("::ffff:192.0.2.0/120", "192.0.2.9", true),
        ] {
            let b = Cidr::parse(block).unwrap();
            assert_eq!(b.contains(ip(addr)), want, "{block} ∋ {addr}");
        }
        for bad in [
            "192.0.2.0/33",
            "2001:db8::/129",
            "192.0.2.0/",
            "192.0.2.0/-1",
            "192.0.2.0/+8",
            "192.0.2",
            "fe80::1%eth0",
            "host.example",
            "",
        ] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn numbers_are_plain_decimals() {
        for (s, want) in [
            ("10", Some(10.0)),
            ("-3", Some(-3.0)),
            ("2.5", Some(2.5)),
            ("007", Some(7.0)),
            ("", None),
            ("NaN", None),
            ("inf", None),
            ("1e3", None),
            ("+1", None),
            (".5", None),
            ("5.", None),
            (" 5", None),
        ] {
            assert_eq!(parse_number(s), want, "{s:?}");
        }
    }

    #[test]
    fn operator_names() {
        assert!(Operator::parse("StringLikeIfExists").unwrap().if_exists);
        assert!(!Operator::parse("StringLike").unwrap().if_exists);
        for (name, want) in [
            (
                "DateGreaterThan",
                ConditionError::UnsupportedOperator("DateGreaterThan".into()),
            ),
            (
                "ArnLikeIfExists",
                ConditionError::UnsupportedOperator("ArnLikeIfExists".into()),
            ),
            (
                "NullIfExists",
                ConditionError::UnknownOperator("NullIfExists".into()),
            ),
            (
                "stringequals",
                ConditionError::UnknownOperator("stringequals".into()),
            ),
            (
                "ForAnyValue:StringLike",
                ConditionError::SetOperator("ForAnyValue:StringLike".into()),
            ),
            (
                "ForAllValues:StringEquals",
                ConditionError::SetOperator("ForAllValues:StringEquals".into()),
            ),
        ] {
            assert_eq!(Operator::parse(name).unwrap_err(), want, "{name}");
        }
    }
}
