//! Tenant gate (WIT `switchyard:policy@0.2.0`): one bucket shared by tenants, each kept to its
//! own keys and its own region, decided in the gateway before any backend is touched.
//!
//! A tenant's keys start with its name (`acme/...`). Every request names its tenant in a header
//! (`x-tenant` unless configured otherwise; the gateway passes it because the policy's entry
//! says `headers = ["x-tenant"]`), and is admitted only when the signer is one of that tenant's
//! principals and the key is the tenant's. Writes over the tenant's object size cap are refused
//! with `EntityTooLarge`. Objects are written to a healthy member in the tenant's region and read
//! from that region's members only (strict routing): data residency holds for reads too.
//! Every admission is counted per tenant and verdict (`switchyard_policy_counter_total`).

mod config;

use config::{Config, Tenant};

#[allow(unsafe_code, reason = "the generated canonical-ABI glue is unsafe")]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/switchyard-policy@0.2.0",
        world: "policy",
    });

    use super::Gate;
    export!(Gate);
}

use bindings::exports::switchyard::policy::{admission, placement, routing, tiering};
use bindings::switchyard::policy::host;
use bindings::switchyard::policy::types::{
    Denial, DenyCode, Member, Object, Phase, PolicyError, Request, RouteAnswer, TierAction,
    Verdict,
};

struct Gate;

impl admission::Guest for Gate {
    fn admit(req: Request, obj: Object) -> Result<Verdict, PolicyError> {
        let config = config()?;
        let (tenant, verdict) = admit(&config, &req, &obj);
        count(tenant.unwrap_or("-"), &verdict);
        Ok(verdict)
    }
}

impl placement::Guest for Gate {
    fn place(_: Request, obj: Object, members: Vec<Member>) -> Result<Vec<String>, PolicyError> {
        let config = config()?;
        let (name, tenant) = tenant_of_key(&config, &obj.key)?;
        members
            .iter()
            .find(|m| m.healthy && in_region(m, &tenant.region))
            .map(|m| vec![m.name.clone()])
            .ok_or_else(|| {
                PolicyError::Unavailable(format!(
                    "no healthy member in region {:?} for tenant {name:?}",
                    tenant.region
                ))
            })
    }
}

impl routing::Guest for Gate {
    fn route(_: Request, obj: Object, members: Vec<Member>) -> Result<RouteAnswer, PolicyError> {
        let config = config()?;
        let (name, tenant) = tenant_of_key(&config, &obj.key)?;
        let members: Vec<String> = members
            .iter()
            .filter(|m| in_region(m, &tenant.region))
            .map(|m| m.name.clone())
            .collect();
        if members.is_empty() {
            return Err(PolicyError::Unavailable(format!(
                "no member in region {:?} for tenant {name:?}",
                tenant.region
            )));
        }
        // Strict: a copy of the tenant's data outside its region is never read.
        Ok(RouteAnswer {
            members,
            strict: true,
        })
    }
}

impl tiering::Guest for Gate {
    fn tier(_: Object, _: String, _: Vec<Member>) -> Result<TierAction, PolicyError> {
        config()?;
        Ok(TierAction::Keep)
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

fn in_region(m: &Member, region: &str) -> bool {
    m.labels.iter().any(|(k, v)| k == "region" && v == region)
}

/// The tenant owning `key`: its first segment.
fn tenant_of_key<'c>(config: &'c Config, key: &str) -> Result<(&'c str, &'c Tenant), PolicyError> {
    let first = key.split_once('/').map_or(key, |(t, _)| t);
    config
        .tenants
        .get_key_value(first)
        .map(|(n, t)| (n.as_str(), t))
        .ok_or_else(|| PolicyError::InvalidInput(format!("key {key:?} belongs to no tenant")))
}

fn deny(code: DenyCode, message: String) -> Verdict {
    Verdict::Deny(Denial { code, message })
}

/// The verdict, and the tenant it was about when the request named a known one.
fn admit<'c>(config: &'c Config, req: &Request, obj: &Object) -> (Option<&'c str>, Verdict) {
    let Some(principal) = req.principal.as_deref() else {
        return (
            None,
            deny(DenyCode::AccessDenied, "anonymous requests are not served".into()),
        );
    };
    let Some(claimed) = req
        .headers
        .iter()
        .find(|(k, _)| *k == config.header)
        .map(|(_, v)| v.as_str())
    else {
        return (
            None,
            deny(
                DenyCode::InvalidRequest,
                format!("the {} header is required", config.header),
            ),
        );
    };
    let Some((name, tenant)) = config.tenants.get_key_value(claimed) else {
        return (
            None,
            deny(DenyCode::AccessDenied, format!("unknown tenant {claimed:?}")),
        );
    };
    let name = name.as_str();
    if !tenant.principals.iter().any(|p| p == principal) {
        return (
            Some(name),
            deny(
                DenyCode::AccessDenied,
                format!("{principal} is not a principal of tenant {name}"),
            ),
        );
    }
    // Bucket-level requests (listings) have no key: the tenant's own check is enough.
    if !obj.key.is_empty() && obj.key.split_once('/').map(|(t, _)| t) != Some(name) {
        return (
            Some(name),
            deny(
                DenyCode::AccessDenied,
                format!("key {:?} is outside tenant {name}'s prefix {name}/", obj.key),
            ),
        );
    }
    let writes = matches!(req.phase, Phase::Single | Phase::MultipartPart)
        && matches!(
            req.operation.as_str(),
            "PutObject" | "UploadPart" | "PostObject"
        );
    if writes
        && let (Some(size), Some(cap)) = (obj.size, tenant.max_object_bytes)
        && size > cap
    {
        return (
            Some(name),
            deny(
                DenyCode::EntityTooLarge,
                format!("tenant {name} writes at most {cap} bytes per request"),
            ),
        );
    }
    (Some(name), Verdict::Allow)
}

/// One count per admission, by tenant (a configured name, or `-`) and verdict.
fn count(tenant: &str, verdict: &Verdict) {
    let verdict = match verdict {
        Verdict::Allow => "allow",
        Verdict::Deny(_) => "deny",
    };
    #[cfg(not(test))]
    host::counter_add(
        "admissions",
        &[
            ("tenant".to_owned(), tenant.to_owned()),
            ("verdict".to_owned(), verdict.to_owned()),
        ],
        1,
    );
    #[cfg(test)]
    drop((tenant, verdict));
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{"tenants": {"acme": {"region": "eu", "principals": ["alice"], "max_object_bytes": 100}}}"#;

    fn req(principal: Option<&str>, tenant: Option<&str>, operation: &str) -> Request {
        Request {
            operation: operation.into(),
            principal: principal.map(str::to_owned),
            source_ip: None,
            headers: tenant
                .map(|t| vec![("x-tenant".to_owned(), t.to_owned())])
                .unwrap_or_default(),
            phase: Phase::Single,
        }
    }

    fn obj(key: &str, size: Option<u64>) -> Object {
        Object {
            bucket: "b".into(),
            key: key.into(),
            size,
            content_type: None,
            metadata: vec![],
            age_seconds: None,
            tags: vec![],
        }
    }

    fn code(v: &Verdict) -> Option<DenyCode> {
        match v {
            Verdict::Allow => None,
            Verdict::Deny(d) => Some(d.code),
        }
    }

    #[test]
    fn admission_keeps_tenants_apart() {
        let c = Config::parse(CONFIG).unwrap_or_else(|e| panic!("{e}"));
        let ok = req(Some("alice"), Some("acme"), "PutObject");
        assert_eq!(code(&admit(&c, &ok, &obj("acme/a", Some(10))).1), None);
        assert_eq!(code(&admit(&c, &ok, &obj("", None)).1), None);
        for (r, o, want) in [
            (req(None, Some("acme"), "GetObject"), obj("acme/a", None), DenyCode::AccessDenied),
            (req(Some("alice"), None, "GetObject"), obj("acme/a", None), DenyCode::InvalidRequest),
            (req(Some("alice"), Some("x"), "GetObject"), obj("acme/a", None), DenyCode::AccessDenied),
            (req(Some("bob"), Some("acme"), "GetObject"), obj("acme/a", None), DenyCode::AccessDenied),
            (req(Some("alice"), Some("acme"), "GetObject"), obj("globex/a", None), DenyCode::AccessDenied),
            (req(Some("alice"), Some("acme"), "GetObject"), obj("acmeX/a", None), DenyCode::AccessDenied),
            (req(Some("alice"), Some("acme"), "PutObject"), obj("acme/a", Some(101)), DenyCode::EntityTooLarge),
        ] {
            assert_eq!(code(&admit(&c, &r, &o).1), Some(want), "{r:?} {o:?}");
        }
    }
}
