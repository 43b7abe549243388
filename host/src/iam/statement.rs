//! A compiled statement and the test of whether it applies to one request.

use super::condition::Condition;
use super::pattern::{Case, Match, Pattern, Pieces};
use super::{Check, Context, Principal, Resource};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone)]
pub(super) struct Statement {
    pub(super) sid: Option<String>,
    pub(super) effect: Effect,
    /// `None` in identity policies: they apply to whoever they are attached to.
    pub(super) principal: Option<Principals>,
    pub(super) actions: Actions,
    pub(super) resources: Resources,
    pub(super) conditions: Vec<Condition>,
}

/// Principal or NotPrincipal.
#[derive(Debug, Clone)]
pub(super) struct Principals {
    /// `"*"` or `{"AWS": "*"}`: anyone, anonymous included.
    pub(super) everyone: bool,
    /// Any signed request (an ACL's AuthenticatedUsers group); no policy names it.
    pub(super) authenticated: bool,
    pub(super) users: Vec<Box<str>>,
    pub(super) negated: bool,
}

/// Action or NotAction; patterns are lower-case and matched without regard to case.
#[derive(Debug, Clone)]
pub(super) struct Actions {
    pub(super) patterns: Vec<Pattern>,
    pub(super) negated: bool,
}

/// Resource or NotResource.
#[derive(Debug, Clone)]
pub(super) struct Resources {
    pub(super) patterns: Vec<ResourcePattern>,
    pub(super) negated: bool,
}

#[derive(Debug, Clone)]
pub(super) struct ResourcePattern {
    /// `*` or `arn:aws:s3:::*`: the only patterns that match [`Resource::All`].
    pub(super) all: bool,
    /// Over the ARN after `arn:aws:s3:::`, which every S3 resource shares.
    pub(super) rest: Pattern,
}

impl Statement {
    /// Cheapest tests first: most statements are ruled out by their action.
    pub(super) fn applies(&self, cx: &Context<'_>, check: &Check<'_>) -> bool {
        self.actions.matches(check.action, cx)
            && self
                .principal
                .as_ref()
                .is_none_or(|p| p.matches(cx.principal))
            && self.resources.matches(check.resource, cx)
            && self.conditions.iter().all(|c| c.holds(cx))
    }
}

impl Principals {
    pub(super) fn matches(&self, principal: Principal<'_>) -> bool {
        let listed = self.everyone
            || match principal {
                Principal::User { name, .. } => {
                    self.authenticated || self.users.iter().any(|u| **u == *name)
                }
                Principal::Anonymous => false,
            };
        listed != self.negated
    }
}

impl Actions {
    fn matches(&self, action: &str, cx: &Context<'_>) -> bool {
        let listed = self
            .patterns
            .iter()
            .any(|p| p.matches(Pieces::one(&action), Case::Insensitive, cx) == Match::Yes);
        listed != self.negated
    }
}

impl Resources {
    fn matches(&self, resource: Resource<'_>, cx: &Context<'_>) -> bool {
        // A pattern whose variable has no value is neither a match nor a non-match: it
        // cannot make NotResource apply (AWS calls the statement invalid).
        let mut unresolved = false;
        for p in &self.patterns {
            let m = match resource {
                Resource::All => {
                    if p.all {
                        Match::Yes
                    } else {
                        Match::No
                    }
                }
                Resource::Bucket(bucket) => {
                    p.rest.matches(Pieces::new(&[bucket]), Case::Sensitive, cx)
                }
                Resource::Object { bucket, key } => {
                    p.rest
                        .matches(Pieces::new(&[bucket, "/", key]), Case::Sensitive, cx)
                }
            };
            match m {
                Match::Yes => return !self.negated,
                Match::Unresolved => unresolved = true,
                Match::No => {}
            }
        }
        self.negated && !unresolved
    }
}
