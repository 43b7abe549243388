//! Runs this plugin's CASES.toml natively: the cases `switchyard policy test` runs on the
//! component, checked here against the decision functions without the gateway or a wasm build.

use cases::{Call, Expect};

use crate::bindings::switchyard::policy::types::{Member, Object, PolicyError, TierAction};
use crate::{Config, place, route, tier};

fn answer(case: &cases::Case, members: &[Member]) -> Result<Expect, PolicyError> {
    let config = Config::parse(&case.config).map_err(PolicyError::InvalidInput)?;
    match case.call {
        Call::Place => place(members).map(Expect::Members),
        Call::Route => route(members).map(Expect::Members),
        Call::Tier => tier(&config, &object(&case.object), &case.current, members).map(tier_expect),
    }
}

fn member(m: &cases::Member) -> Member {
    Member {
        name: m.name.clone(),
        kind: m.kind.clone(),
        labels: m.labels.clone().into_iter().collect(),
        healthy: m.healthy,
        latency_us: m.latency_us,
    }
}

fn object(o: &cases::Object) -> Object {
    Object {
        bucket: o.bucket.clone(),
        key: o.key.clone(),
        size: o.size,
        content_type: o.content_type.clone(),
        metadata: o.metadata.clone().into_iter().collect(),
        age_seconds: o.age_seconds,
    }
}

fn tier_expect(action: TierAction) -> Expect {
    match action {
        TierAction::Keep => Expect::Keep,
        TierAction::Delete => Expect::Delete,
        TierAction::MoveTo(to) => Expect::MoveTo(to),
        TierAction::CopyTo(to) => Expect::CopyTo(to),
    }
}

#[test]
fn cases_toml() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/CASES.toml");
    let cases = cases::load(path).unwrap_or_else(|e| panic!("{e}"));
    assert!(cases.len() >= 6, "{path} has only {} cases", cases.len());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let members: Vec<Member> = case.members.iter().map(member).collect();
            let got = match answer(case, &members) {
                Ok(answer) => answer,
                Err(PolicyError::InvalidInput(m)) => Expect::Error(format!("invalid-input ({m})")),
                Err(PolicyError::Unavailable(m)) => Expect::Error(format!("unavailable ({m})")),
                Err(PolicyError::Other(m)) => Expect::Error(format!("other ({m})")),
            };
            let pass = match (&case.expect, &got) {
                (Expect::Error(want), Expect::Error(got)) => got.starts_with(&format!("{want} (")),
                (want, got) => want == got,
            };
            (!pass).then(|| format!("{:?}: expected {:?}, got {:?}", case.name, case.expect, got))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
