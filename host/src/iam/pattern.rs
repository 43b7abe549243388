//! Strings of the policy language as compiled patterns: `*` (any run of characters, `/`
//! included) and `?` (exactly one character: a `char`, never a byte), with policy variables
//! that stand for values of the request.
//!
//! Matching never allocates: a variable's value is compared in place, and the string being
//! matched may come in pieces (a resource's ARN is its bucket, `/` and key, never joined).

use super::{Context, Principal};

/// A value taken from the request when a statement is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Variable {
    /// `${aws:username}`: the user's name; absent for anonymous requests.
    Username,
    /// `${aws:userid}`: the user's access key; absent for anonymous requests.
    Userid,
    /// `${aws:PrincipalType}`: `User` or `Anonymous`.
    PrincipalType,
}

impl Variable {
    /// Names as written inside `${...}`, compared without regard to case, as AWS does.
    pub(super) const NAMES: [&'static str; 3] = ["aws:username", "aws:userid", "aws:PrincipalType"];

    fn from_name(name: &str) -> Option<Self> {
        [Self::Username, Self::Userid, Self::PrincipalType]
            .into_iter()
            .zip(Self::NAMES)
            .find_map(|(v, n)| n.eq_ignore_ascii_case(name).then_some(v))
    }

    pub(super) fn value<'c>(self, cx: &Context<'c>) -> Option<&'c str> {
        match (self, cx.principal) {
            (Self::Username, Principal::User { name, .. }) => Some(name),
            (Self::Userid, Principal::User { access_key, .. }) => Some(access_key),
            (Self::Username | Self::Userid, Principal::Anonymous) => None,
            (Self::PrincipalType, p) => Some(p.type_name()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Token {
    /// A run of literal characters, compared as a whole.
    Text(Box<str>),
    /// `?`
    AnyChar,
    /// `*`
    AnyRun,
    Var {
        var: Variable,
        /// `${aws:userid, 'anonymous'}`: used when the request has no value.
        default: Option<Box<str>>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Pattern {
    /// `*` alone, the most common pattern: matching it costs nothing.
    Everything,
    /// No wildcard and no variable: one comparison.
    Literal(Box<str>),
    Glob {
        tokens: Box<[Token]>,
        has_variables: bool,
    },
}

/// How the text of a pattern is read.
#[derive(Debug, Clone, Copy)]
pub(super) struct Syntax {
    /// `*` and `?` are wildcards (Action, Resource, StringLike); elsewhere they are literal.
    pub wildcards: bool,
    /// `${...}` is a variable: only under Version 2012-10-17, and only where AWS allows one.
    pub variables: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Case {
    Sensitive,
    Insensitive,
}

/// A match needs every variable's value; without one AWS calls the statement invalid, so the
/// caller can tell "does not match" from "cannot be decided" (which matters under negation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Match {
    Yes,
    No,
    Unresolved,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum PatternError {
    #[error("unknown policy variable \"${{{0}}}\" (supported: {list})", list = supported_variables())]
    UnknownVariable(String),
    #[error("\"${{\" without a closing \"}}\"")]
    Unterminated,
    #[error("the default value of \"${{{0}}}\" must be quoted: ${{name, 'value'}}")]
    BadDefault(String),
}

fn supported_variables() -> String {
    let mut list: Vec<String> = Variable::NAMES
        .iter()
        .map(|n| format!("${{{n}}}"))
        .collect();
    list.extend(["${*}", "${?}", "${$}"].map(String::from));
    list.join(", ")
}

impl Pattern {
    pub(super) fn compile(text: &str, syntax: Syntax) -> Result<Self, PatternError> {
        if syntax.wildcards && text == "*" {
            return Ok(Self::Everything);
        }
        let mut tokens = Vec::new();
        let mut text_run = String::new();
        let mut rest = text;
        // Literal characters (escapes included) gather into one run until a wildcard or a
        // variable ends it.
        let flush = |tokens: &mut Vec<Token>, run: &mut String| {
            if !run.is_empty() {
                tokens.push(Token::Text(std::mem::take(run).into()));
            }
        };
        while let Some(c) = rest.chars().next() {
            let token = if syntax.variables
                && let Some(after) = rest.strip_prefix("${")
            {
                let Some((inner, tail)) = after.split_once('}') else {
                    return Err(PatternError::Unterminated);
                };
                rest = tail;
                variable(inner)?
            } else {
                rest = &rest[c.len_utf8()..];
                match c {
                    '*' if syntax.wildcards => Token::AnyRun,
                    '?' if syntax.wildcards => Token::AnyChar,
                    c => {
                        text_run.push(c);
                        continue;
                    }
                }
            };
            match token {
                Token::Text(escaped) => text_run.push_str(&escaped),
                other => {
                    flush(&mut tokens, &mut text_run);
                    tokens.push(other);
                }
            }
        }
        if tokens.is_empty() {
            return Ok(Self::Literal(text_run.into()));
        }
        flush(&mut tokens, &mut text_run);
        let has_variables = tokens.iter().any(|t| matches!(t, Token::Var { .. }));
        Ok(Self::Glob {
            tokens: tokens.into(),
            has_variables,
        })
    }

    pub(super) fn matches(&self, input: Pieces<'_>, case: Case, cx: &Context<'_>) -> Match {
        let yes = match self {
            Self::Everything => true,
            Self::Literal(lit) => input.equals(lit, case),
            Self::Glob {
                tokens,
                has_variables,
            } => {
                if *has_variables && !resolved(tokens, cx) {
                    return Match::Unresolved;
                }
                glob(tokens, input, case, cx)
            }
        };
        if yes { Match::Yes } else { Match::No }
    }
}

fn variable(inner: &str) -> Result<Token, PatternError> {
    match inner {
        "*" | "?" | "$" => return Ok(Token::Text(inner.into())),
        _ => {}
    }
    // AWS's form is `${name, 'default'}`: a comma, a space, then the value in single quotes.
    let (name, default) = match inner.split_once(',') {
        None => (inner, None),
        Some((name, quoted)) => {
            let value = quoted
                .strip_prefix(' ')
                .and_then(|q| q.strip_prefix('\''))
                .and_then(|q| q.strip_suffix('\''))
                .filter(|v| !v.contains('\''))
                .ok_or_else(|| PatternError::BadDefault(inner.to_owned()))?;
            (name, Some(value.into()))
        }
    };
    let var =
        Variable::from_name(name).ok_or_else(|| PatternError::UnknownVariable(name.to_owned()))?;
    Ok(Token::Var { var, default })
}

fn resolved(tokens: &[Token], cx: &Context<'_>) -> bool {
    tokens.iter().all(|t| match t {
        Token::Var { var, default } => default.is_some() || var.value(cx).is_some(),
        _ => true,
    })
}

/// Wildcard matching by the classic two-pointer walk: on a mismatch, the most recent `*`
/// takes one more character and matching resumes after it. Going back to the most recent
/// star is enough because every other token consumes a fixed string once its start is
/// fixed, so an earlier star never needs to take a different length. Worst case is
/// O(pattern × input) steps, with no recursion and no allocation.
fn glob(tokens: &[Token], input: Pieces<'_>, case: Case, cx: &Context<'_>) -> bool {
    let mut t = 0;
    let mut at = START;
    // (token after the last `*`, input position where that star's run currently ends)
    let mut resume: Option<(usize, Pos)> = None;
    loop {
        let step = match tokens.get(t) {
            // A final `*` takes whatever is left: the common `prefix/*` ends here.
            Some(Token::AnyRun) if t + 1 == tokens.len() => return true,
            Some(Token::AnyRun) => {
                t += 1;
                resume = Some((t, at));
                continue;
            }
            Some(Token::AnyChar) => input.next(at).map(|(_, next)| next),
            Some(Token::Text(text)) => input.strip(at, text, case),
            Some(Token::Var { var, default }) => {
                match var.value(cx).or(default.as_deref()) {
                    Some(value) => input.strip(at, value, case),
                    // Checked before matching; kept total rather than panicking.
                    None => return false,
                }
            }
            None if input.at_end(at) => return true,
            None => None,
        };
        match step {
            Some(next) => {
                at = next;
                t += 1;
            }
            None => {
                let Some((after_star, run_end)) = resume else {
                    return false;
                };
                let Some((_, longer)) = input.next(run_end) else {
                    return false;
                };
                resume = Some((after_star, longer));
                t = after_star;
                at = longer;
            }
        }
    }
}

/// Without regard to case, an ASCII character only equals itself in the other case: the
/// Kelvin sign does not equal `k` though it lower-cases to it. That keeps byte-wise
/// comparison of ASCII text exact (see `Pieces::strip`).
fn same_char(a: char, b: char, case: Case) -> bool {
    a == b
        || case == Case::Insensitive
            && if a.is_ascii() || b.is_ascii() {
                a.eq_ignore_ascii_case(&b)
            } else {
                a.to_lowercase().eq(b.to_lowercase())
            }
}

/// A position in [`Pieces`]: (piece, byte offset in it).
type Pos = (usize, usize);
const START: Pos = (0, 0);

/// One string given as consecutive pieces, so `bucket` + `/` + `key` need not be joined.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pieces<'a>(&'a [&'a str]);

impl<'a> Pieces<'a> {
    pub(super) fn new(pieces: &'a [&'a str]) -> Self {
        Self(pieces)
    }

    pub(super) fn one(s: &'a &'a str) -> Self {
        Self(std::slice::from_ref(s))
    }

    fn next(&self, (mut piece, mut offset): Pos) -> Option<(char, Pos)> {
        while let Some(s) = self.0.get(piece) {
            if let Some(c) = s[offset..].chars().next() {
                return Some((c, (piece, offset + c.len_utf8())));
            }
            piece += 1;
            offset = 0;
        }
        None
    }

    /// Whole-string equality; most literal patterns (an action name) fail on the length.
    fn equals(&self, lit: &str, case: Case) -> bool {
        let bytewise = case == Case::Sensitive || lit.is_ascii();
        if bytewise && self.0.iter().map(|p| p.len()).sum::<usize>() != lit.len() {
            return false;
        }
        self.strip(START, lit, case)
            .is_some_and(|end| self.at_end(end))
    }

    fn at_end(&self, at: Pos) -> bool {
        self.next(at).is_none()
    }

    /// The position after `lit` if the input continues with it at `at`.
    fn strip(&self, at: Pos, lit: &str, case: Case) -> Option<Pos> {
        // Byte comparison is exact for equal case, and for ASCII text without regard to
        // case (a non-ASCII byte never equals an ASCII one); other text folds per character.
        let bytewise = case == Case::Sensitive || lit.is_ascii();
        if !bytewise {
            let mut at = at;
            for p in lit.chars() {
                let (c, next) = self.next(at)?;
                if !same_char(p, c, case) {
                    return None;
                }
                at = next;
            }
            return Some(at);
        }
        let (mut piece, mut offset) = at;
        let mut lit = lit.as_bytes();
        // Pieces and `lit` are whole UTF-8 strings, so equal bytes end on a char boundary.
        while !lit.is_empty() {
            let rest = &self.0.get(piece)?.as_bytes()[offset..];
            let n = rest.len().min(lit.len());
            let same = if case == Case::Sensitive {
                rest[..n] == lit[..n]
            } else {
                rest[..n].eq_ignore_ascii_case(&lit[..n])
            };
            if !same {
                return None;
            }
            lit = &lit[n..];
            offset += n;
            if offset == self.0[piece].len() && !lit.is_empty() {
                piece += 1;
                offset = 0;
            }
        }
        Some((piece, offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GLOB: Syntax = Syntax {
        wildcards: true,
        variables: true,
    };

    fn anonymous() -> Context<'static> {
        Context {
            principal: Principal::Anonymous,
            source_ip: None,
            secure_transport: true,
            keys: &[],
        }
    }

    /// The definition of `*` and `?` over characters, by plain recursion: slow, obviously right.
    fn reference(p: &[char], s: &[char], case: Case) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some(('*', rest)) => {
                reference(rest, s, case) || (!s.is_empty() && reference(p, &s[1..], case))
            }
            Some(('?', rest)) => !s.is_empty() && reference(rest, &s[1..], case),
            Some((c, rest)) => {
                s.first().is_some_and(|f| same_char(*c, *f, case)) && reference(rest, &s[1..], case)
            }
        }
    }

    /// xorshift64: a fixed seed makes every failure reproducible without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn string(&mut self, alphabet: &[char], max: usize) -> String {
            let len = self.below(max + 1);
            (0..len)
                .map(|_| alphabet[self.below(alphabet.len())])
                .collect()
        }
        /// A string the pattern nearly always matches: `*` becomes up to 3 characters, `?`
        /// one, and a literal sometimes changes case.
        fn instance(&mut self, pattern: &str, alphabet: &[char]) -> String {
            let mut s = String::new();
            for c in pattern.chars() {
                match c {
                    '*' => s += &self.string(alphabet, 3),
                    '?' => s.push(alphabet[self.below(alphabet.len())]),
                    c if self.below(4) == 0 => s.extend(c.to_uppercase()),
                    c => s.push(c),
                }
            }
            s
        }
    }

    #[test]
    fn wildcards_agree_with_the_reference_on_generated_strings() {
        // Multi-byte characters (é is 2 bytes, 日 3, 🦀 4) make a byte-wise `?` visible; `A`
        // and `a`, `É` and `é` exercise case folding, and the Kelvin sign the byte-wise path
        // for ASCII text; `/` must be an ordinary character.
        let pattern_alphabet = ['a', 'A', 'é', '日', '/', '*', '?', '🦀', 'K'];
        let input_alphabet = ['a', 'A', 'é', 'É', '日', '/', '🦀', 'k', '\u{212A}'];
        let mut rng = Rng(0x5EED_1A77_0000_0001);
        let cx = anonymous();
        let mut matched = 0;
        for _ in 0..20_000 {
            let p = rng.string(&pattern_alphabet, 7);
            // Half the inputs are drawn from the pattern itself, so that matches are common.
            let s = if rng.below(2) == 0 {
                rng.string(&input_alphabet, 9)
            } else {
                rng.instance(&p, &input_alphabet)
            };
            let pattern = Pattern::compile(&p, GLOB).unwrap();
            // The same string cut at up to two random character boundaries.
            let chars: Vec<(usize, char)> = s.char_indices().collect();
            let mut cuts = [rng.below(chars.len() + 1), rng.below(chars.len() + 1)];
            cuts.sort_unstable();
            let byte = |i: usize| chars.get(i).map_or(s.len(), |(b, _)| *b);
            let pieces = [
                &s[..byte(cuts[0])],
                &s[byte(cuts[0])..byte(cuts[1])],
                &s[byte(cuts[1])..],
            ];
            for case in [Case::Sensitive, Case::Insensitive] {
                let pc: Vec<char> = p.chars().collect();
                let sc: Vec<char> = s.chars().collect();
                let want = reference(&pc, &sc, case);
                let whole = pattern.matches(Pieces::one(&s.as_str()), case, &cx) == Match::Yes;
                let split = pattern.matches(Pieces::new(&pieces), case, &cx) == Match::Yes;
                assert_eq!(whole, want, "{p:?} vs {s:?} ({case:?})");
                assert_eq!(split, want, "{p:?} vs {pieces:?} ({case:?})");
                matched += usize::from(want);
            }
        }
        // Guards the generator: a run where nothing matches would prove little.
        assert!(matched > 10_000, "only {matched} matches in 40000");
    }

    #[test]
    fn question_mark_is_one_character_not_one_byte() {
        let cx = anonymous();
        let p = Pattern::compile("caf?", GLOB).unwrap();
        for (s, want) in [
            ("café", true),
            ("cafe", true),
            ("caf", false),
            ("cafée", false),
        ] {
            assert_eq!(
                p.matches(Pieces::one(&s), Case::Sensitive, &cx) == Match::Yes,
                want,
                "{s}"
            );
        }
        let p = Pattern::compile("??", GLOB).unwrap();
        assert_eq!(
            p.matches(Pieces::one(&"🦀日"), Case::Sensitive, &cx),
            Match::Yes
        );
        assert_eq!(
            p.matches(Pieces::one(&"🦀"), Case::Sensitive, &cx),
            Match::No
        );
    }

    #[test]
    fn variables_and_escapes() {
        let alice = Context {
            principal: Principal::User {
                name: "alice",
                access_key: "AKALICE",
            },
            ..anonymous()
        };
        let cx = anonymous();
        let m = |p: &str, s: &str, cx: &Context<'_>| {
            Pattern::compile(p, GLOB)
                .unwrap()
                .matches(Pieces::one(&s), Case::Sensitive, cx)
        };
        assert_eq!(
            m("home/${aws:username}/*", "home/alice/x", &alice),
            Match::Yes
        );
        assert_eq!(
            m("home/${AWS:UserName}/*", "home/alice/x", &alice),
            Match::Yes
        );
        assert_eq!(m("home/${aws:username}/*", "home/bob/x", &alice), Match::No);
        assert_eq!(
            m("home/${aws:username}/*", "home/bob/x", &cx),
            Match::Unresolved
        );
        assert_eq!(m("${aws:userid}", "AKALICE", &alice), Match::Yes);
        assert_eq!(m("${aws:PrincipalType}", "Anonymous", &cx), Match::Yes);
        assert_eq!(
            m("${aws:userid, 'anonymous'}", "anonymous", &cx),
            Match::Yes
        );
        assert_eq!(
            m("${aws:userid, 'anonymous'}", "AKALICE", &alice),
            Match::Yes
        );
        // A value is literal text: a `*` in it is not a wildcard.
        let star = Context {
            principal: Principal::User {
                name: "a*",
                access_key: "K",
            },
            ..anonymous()
        };
        assert_eq!(m("${aws:username}", "abc", &star), Match::No);
        assert_eq!(m("${aws:username}", "a*", &star), Match::Yes);
        assert_eq!(m("a${*}b", "a*b", &cx), Match::Yes);
        assert_eq!(m("a${*}b", "axb", &cx), Match::No);
        assert_eq!(m("a${?}${$}", "a?$", &cx), Match::Yes);
        assert_eq!(m("price$5", "price$5", &cx), Match::Yes);
        // Without variables (Version 2008-10-17), `${...}` is text and `*` still a wildcard.
        let old = Syntax {
            wildcards: true,
            variables: false,
        };
        let p = Pattern::compile("home/${aws:username}/*", old).unwrap();
        assert_eq!(
            p.matches(
                Pieces::one(&"home/${aws:username}/x"),
                Case::Sensitive,
                &alice
            ),
            Match::Yes
        );
        assert_eq!(
            p.matches(Pieces::one(&"home/alice/x"), Case::Sensitive, &alice),
            Match::No
        );
    }

    #[test]
    fn malformed_variables_are_refused() {
        for (text, want) in [
            (
                "${aws:SourceIp}",
                PatternError::UnknownVariable("aws:SourceIp".into()),
            ),
            ("a/${aws:username", PatternError::Unterminated),
            (
                "${aws:userid,'x'}",
                PatternError::BadDefault("aws:userid,'x'".into()),
            ),
            (
                "${aws:userid, x}",
                PatternError::BadDefault("aws:userid, x".into()),
            ),
        ] {
            assert_eq!(Pattern::compile(text, GLOB), Err(want), "{text}");
        }
        let msg = PatternError::UnknownVariable("s3:prefix".into()).to_string();
        assert_eq!(
            msg,
            "unknown policy variable \"${s3:prefix}\" (supported: ${aws:username}, \
             ${aws:userid}, ${aws:PrincipalType}, ${*}, ${?}, ${$})"
        );
    }

    #[test]
    fn star_is_literal_where_wildcards_are_off() {
        let exact = Syntax {
            wildcards: false,
            variables: true,
        };
        let p = Pattern::compile("a*?", exact).unwrap();
        assert_eq!(p, Pattern::Literal("a*?".into()));
        assert_eq!(
            Pattern::compile("a${*}b", GLOB).unwrap(),
            Pattern::Literal("a*b".into())
        );
        assert_eq!(
            Pattern::compile("*", exact).unwrap(),
            Pattern::Literal("*".into())
        );
        assert_eq!(Pattern::compile("*", GLOB).unwrap(), Pattern::Everything);
    }
}
