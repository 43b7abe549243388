//! Tiering by age: writes land on a `tier=hot` member; a tiering pass moves (or copies)
//! objects older than a threshold to a `tier=cold` member, and optionally deletes objects older
//! than a second threshold. Objects of unknown age, and objects already on a cold member, stay.
//! Reads try healthy members first, in the configured order.

#[cfg(test)]
mod cases;
mod config;

use config::{Config, Mode};

#[allow(unsafe_code, reason = "the generated canonical-ABI glue is unsafe")]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/switchyard-policy@0.1.0",
        world: "policy",
    });

    use super::AgeTiering;
    export!(AgeTiering);
}

use bindings::exports::switchyard::policy::{placement, routing, tiering};
use bindings::switchyard::policy::host::{self, LogLevel};
use bindings::switchyard::policy::types::{Member, Object, PolicyError, Request, TierAction};

/// The label that names a member's tier, and its two values.
const TIER: &str = "tier";
const HOT: &str = "hot";
const COLD: &str = "cold";

struct AgeTiering;

impl placement::Guest for AgeTiering {
    fn place(_: Request, _: Object, members: Vec<Member>) -> Result<Vec<String>, PolicyError> {
        // Checked on every call, so a broken configuration shows before the first tiering pass.
        config()?;
        place(&members)
    }
}

impl routing::Guest for AgeTiering {
    fn route(_: Request, _: Object, members: Vec<Member>) -> Result<Vec<String>, PolicyError> {
        config()?;
        route(&members)
    }
}

impl tiering::Guest for AgeTiering {
    fn tier(obj: Object, current: String, members: Vec<Member>) -> Result<TierAction, PolicyError> {
        let action = tier(config()?, &obj, &current, &members)?;
        if !matches!(action, TierAction::Keep) {
            host::log(
                LogLevel::Debug,
                &format!("{}/{} on {current:?}: {action:?}", obj.bucket, obj.key),
            );
        }
        Ok(action)
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

fn has_tier(member: &Member, tier: &str) -> bool {
    member.labels.iter().any(|(k, v)| k == TIER && v == tier)
}

/// The first healthy member labelled `tier`, or why there is none.
fn first_healthy<'m>(members: &'m [Member], tier: &str) -> Result<&'m Member, PolicyError> {
    let mut labelled = members.iter().filter(|m| has_tier(m, tier)).peekable();
    if labelled.peek().is_none() {
        return Err(PolicyError::Unavailable(format!(
            "no member is labelled {TIER}={tier}"
        )));
    }
    let labelled: Vec<&Member> = labelled.collect();
    labelled.iter().find(|m| m.healthy).copied().ok_or_else(|| {
        let names: Vec<&str> = labelled.iter().map(|m| m.name.as_str()).collect();
        PolicyError::Unavailable(format!(
            "every {TIER}={tier} member is unhealthy: {}",
            names.join(", ")
        ))
    })
}

fn place(members: &[Member]) -> Result<Vec<String>, PolicyError> {
    first_healthy(members, HOT).map(|m| vec![m.name.clone()])
}

/// Every member, healthy ones first; the configured order otherwise.
fn route(members: &[Member]) -> Result<Vec<String>, PolicyError> {
    if members.is_empty() {
        return Err(PolicyError::Unavailable("the bucket has no members".into()));
    }
    let (healthy, unhealthy): (Vec<&Member>, Vec<&Member>) =
        members.iter().partition(|m| m.healthy);
    Ok(healthy
        .into_iter()
        .chain(unhealthy)
        .map(|m| m.name.clone())
        .collect())
}

fn tier(
    config: &Config,
    obj: &Object,
    current: &str,
    members: &[Member],
) -> Result<TierAction, PolicyError> {
    let Some(here) = members.iter().find(|m| m.name == current) else {
        return Err(PolicyError::InvalidInput(format!(
            "the current member {current:?} is not one of the bucket's members"
        )));
    };
    let Some(age) = obj.age_seconds else {
        return Ok(TierAction::Keep);
    };
    if config.delete_after_seconds.is_some_and(|limit| age > limit) {
        return Ok(TierAction::Delete);
    }
    if age <= config.cold_after_seconds || has_tier(here, COLD) {
        return Ok(TierAction::Keep);
    }
    let target = first_healthy(members, COLD)?.name.clone();
    Ok(match config.mode {
        Mode::Move => TierAction::MoveTo(target),
        Mode::Copy => TierAction::CopyTo(target),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, tier: &str, healthy: bool) -> Member {
        Member {
            name: name.into(),
            kind: "memory".into(),
            labels: vec![(TIER.into(), tier.into())],
            healthy,
            latency_us: None,
        }
    }

    fn aged(age: Option<u64>) -> Object {
        Object {
            bucket: "logs".into(),
            key: "app/2026-01-01.log".into(),
            size: Some(10),
            content_type: None,
            metadata: vec![],
            age_seconds: age,
        }
    }

    fn config(text: &str) -> Config {
        Config::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn thresholds() {
        let c = config(r#"{"cold_after_seconds": 100, "delete_after_seconds": 1000}"#);
        let members = [
            member("hot", HOT, true),
            member("cold-1", COLD, false),
            member("cold-2", COLD, true),
        ];
        let t = |age, current| tier(&c, &aged(age), current, &members);
        assert!(matches!(t(None, "hot"), Ok(TierAction::Keep)));
        assert!(matches!(t(Some(100), "hot"), Ok(TierAction::Keep)));
        assert!(matches!(t(Some(101), "hot"), Ok(TierAction::MoveTo(m)) if m == "cold-2"));
        assert!(matches!(t(Some(500), "cold-1"), Ok(TierAction::Keep)));
        assert!(matches!(t(Some(1001), "cold-1"), Ok(TierAction::Delete)));
        assert!(matches!(
            t(Some(5), "nowhere"),
            Err(PolicyError::InvalidInput(_))
        ));
    }

    #[test]
    fn placement_needs_a_healthy_hot_member() {
        let members = [
            member("cold", COLD, true),
            member("hot-1", HOT, false),
            member("hot-2", HOT, true),
        ];
        assert_eq!(place(&members).ok(), Some(vec!["hot-2".to_string()]));
        assert!(
            matches!(place(&members[..2]), Err(PolicyError::Unavailable(m)) if m.contains("hot-1"))
        );
        assert!(
            matches!(place(&members[..1]), Err(PolicyError::Unavailable(m)) if m.contains("no member"))
        );
    }
}
