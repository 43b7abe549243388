//! Tenant residency: a tenant's objects are written only to members in the tenant's region.
//!
//! The region comes from the request's principal (access key), else from the object key's first
//! segment (the part before the first `/`), else from the configured default. A write goes to
//! the first healthy member whose `region` label equals it; when none is healthy the policy
//! answers `unavailable` rather than write the data outside its region. Reads try the region's
//! members first. Tiering is not this policy's business: every object is kept.

#[cfg(test)]
mod cases;
mod config;

use config::Config;

#[allow(unsafe_code, reason = "the generated canonical-ABI glue is unsafe")]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/switchyard-policy@0.1.0",
        world: "policy",
    });

    use super::Residency;
    export!(Residency);
}

use bindings::exports::switchyard::policy::{placement, routing, tiering};
use bindings::switchyard::policy::host;
use bindings::switchyard::policy::types::{Member, Object, PolicyError, Request, TierAction};

struct Residency;

impl placement::Guest for Residency {
    fn place(req: Request, obj: Object, members: Vec<Member>) -> Result<Vec<String>, PolicyError> {
        place(config()?, &req, &obj, &members)
    }
}

impl routing::Guest for Residency {
    fn route(req: Request, obj: Object, members: Vec<Member>) -> Result<Vec<String>, PolicyError> {
        route(config()?, &req, &obj, &members)
    }
}

impl tiering::Guest for Residency {
    fn tier(_: Object, _: String, _: Vec<Member>) -> Result<TierAction, PolicyError> {
        // Checked anyway, so a broken configuration shows on every kind of call.
        Ok(tier(config()?))
    }
}

/// The configuration, parsed by the first call of an instance and kept: an instance's
/// `config()` never changes (a new configuration comes with new instances), and parsing it
/// on every call cost more than the decision itself.
fn config() -> Result<&'static Config, PolicyError> {
    static CONFIG: std::sync::OnceLock<Result<Config, String>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| Config::parse(&host::config()))
        .as_ref()
        .map_err(|e| PolicyError::InvalidInput(e.clone()))
}

/// A debug line in Switchyard's log. Native unit tests have no host, so there it goes nowhere.
fn debug(message: impl FnOnce() -> String) {
    #[cfg(not(test))]
    host::log(host::LogLevel::Debug, &message());
    #[cfg(test)]
    drop(message);
}

/// Where the region came from, for log lines and error messages.
enum Source<'a> {
    Tenant(&'a str),
    Prefix(&'a str),
    Default,
}

impl std::fmt::Display for Source<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Tenant(t) => write!(f, "tenant {t:?}"),
            Source::Prefix(p) => write!(f, "key prefix {p:?}"),
            Source::Default => f.write_str("the default"),
        }
    }
}

/// The region the object belongs to: the principal's, else the key prefix's, else the default.
fn region_of<'c, 'r>(
    config: &'c Config,
    req: &'r Request,
    obj: &'r Object,
) -> Option<(&'c str, Source<'r>)> {
    if let Some(principal) = req.principal.as_deref()
        && let Some(region) = config.tenants.get(principal)
    {
        return Some((region, Source::Tenant(principal)));
    }
    if let Some((prefix, _)) = obj.key.split_once('/')
        && let Some(region) = config.prefixes.get(prefix)
    {
        return Some((region, Source::Prefix(prefix)));
    }
    config
        .default
        .as_deref()
        .map(|region| (region, Source::Default))
}

fn label<'m>(member: &'m Member, key: &str) -> Option<&'m str> {
    member
        .labels
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn place(
    config: &Config,
    req: &Request,
    obj: &Object,
    members: &[Member],
) -> Result<Vec<String>, PolicyError> {
    let Some((region, source)) = region_of(config, req, obj) else {
        return Err(PolicyError::InvalidInput(format!(
            "no residency for principal {:?} and key {:?}: no tenant or prefix matches and no \
             default region is configured",
            req.principal.as_deref().unwrap_or("(anonymous)"),
            obj.key
        )));
    };
    let in_region: Vec<&Member> = members
        .iter()
        .filter(|m| label(m, &config.label) == Some(region))
        .collect();
    match in_region.iter().find(|m| m.healthy) {
        Some(member) => {
            // The gateway logs every decision with its answer (at debug); a line of ours is
            // for what is worth a look: an object no tenant or prefix claims. A line in every
            // decision cost a fifth of it (docs/policies.md).
            if matches!(source, Source::Default) {
                debug(|| {
                    format!(
                        "{}/{}: no tenant or prefix matches; the default region {region:?}, \
                         writing to {:?}",
                        obj.bucket, obj.key, member.name
                    )
                });
            }
            Ok(vec![member.name.clone()])
        }
        None if in_region.is_empty() => Err(PolicyError::Unavailable(format!(
            "region {region:?} (from {source}) has no member labelled {}={region}",
            config.label
        ))),
        None => Err(PolicyError::Unavailable(format!(
            "every member of region {region:?} (from {source}) is unhealthy: {}",
            names(&in_region)
        ))),
    }
}

/// Every member: healthy ones of the region, then other healthy ones, then the unhealthy ones
/// in the same order. Without a region (no rule matches) reads are not refused: healthy members
/// come first in the configured order.
fn route(
    config: &Config,
    req: &Request,
    obj: &Object,
    members: &[Member],
) -> Result<Vec<String>, PolicyError> {
    if members.is_empty() {
        return Err(PolicyError::Unavailable("the bucket has no members".into()));
    }
    let region = region_of(config, req, obj).map(|(region, _)| region);
    let mut ordered: Vec<&Member> = members.iter().collect();
    // A stable sort keeps the configured order within each group.
    ordered.sort_by_key(|m| {
        let in_region = region.is_some() && label(m, &config.label) == region;
        (!m.healthy, !in_region)
    });
    Ok(ordered.into_iter().map(|m| m.name.clone()).collect())
}

/// Residency is enforced on write; this policy never moves data.
fn tier(_: &Config) -> TierAction {
    TierAction::Keep
}

fn names(members: &[&Member]) -> String {
    members
        .iter()
        .map(|m| m.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, region: &str, healthy: bool) -> Member {
        Member {
            name: name.into(),
            kind: "memory".into(),
            labels: vec![("region".into(), region.into())],
            healthy,
            latency_us: None,
        }
    }

    fn request(principal: Option<&str>) -> Request {
        Request {
            operation: "PutObject".into(),
            principal: principal.map(Into::into),
            source_ip: None,
        }
    }

    fn object(key: &str) -> Object {
        Object {
            bucket: "data".into(),
            key: key.into(),
            size: None,
            content_type: None,
            metadata: vec![],
            age_seconds: None,
        }
    }

    fn config(text: &str) -> Config {
        Config::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn tenant_wins_over_prefix_and_prefix_over_default() {
        let c = config(r#"{"tenants": {"acme": "eu"}, "prefixes": {"us": "us"}, "default": "ap"}"#);
        let tenant = region_of(&c, &request(Some("acme")), &object("us/x")).map(|r| r.0);
        let prefix = region_of(&c, &request(Some("other")), &object("us/x")).map(|r| r.0);
        let default = region_of(&c, &request(None), &object("us")).map(|r| r.0);
        assert_eq!(
            (tenant, prefix, default),
            (Some("eu"), Some("us"), Some("ap"))
        );
    }

    #[test]
    fn route_puts_the_region_first_and_unhealthy_last() {
        let c = config(r#"{"prefixes": {"eu": "eu"}}"#);
        let members = [
            member("us-1", "us", true),
            member("eu-1", "eu", false),
            member("eu-2", "eu", true),
            member("us-2", "us", true),
        ];
        let order = route(&c, &request(None), &object("eu/a"), &members);
        assert_eq!(
            order.ok(),
            Some(vec![
                "eu-2".into(),
                "us-1".into(),
                "us-2".into(),
                "eu-1".into()
            ])
        );
    }
}
