//! {{name}}: a Switchyard policy (WIT `switchyard:policy@0.2.0`). See README.md.

#[allow(unsafe_code, reason = "the generated canonical-ABI glue is unsafe")]
mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "policy",
    });

    use super::Policy;
    export!(Policy);
}

use bindings::exports::switchyard::policy::{admission, placement, routing, tiering};
use bindings::switchyard::policy::host;
use bindings::switchyard::policy::types::{
    Denial, DenyCode, Member, Object, PolicyError, Request, RouteAnswer, TierAction, Verdict,
};

struct Policy;

/// Operations that change the bucket.
const WRITES: [&str; 9] = [
    "PutObject",
    "CopyObject",
    "PostObject",
    "CreateMultipartUpload",
    "UploadPart",
    "UploadPartCopy",
    "CompleteMultipartUpload",
    "DeleteObject",
    "DeleteObjects",
];

impl admission::Guest for Policy {
    fn admit(req: Request, _obj: Object) -> Result<Verdict, PolicyError> {
        let verdict = if req.principal.is_none() && WRITES.contains(&req.operation.as_str()) {
            Verdict::Deny(Denial {
                code: DenyCode::AccessDenied,
                message: "anonymous writes are not accepted".into(),
            })
        } else {
            Verdict::Allow
        };
        let label = if matches!(verdict, Verdict::Allow) { "allow" } else { "deny" };
        host::counter_add("admissions", &[("verdict".into(), label.into())], 1);
        Ok(verdict)
    }
}

impl placement::Guest for Policy {
    fn place(_req: Request, _obj: Object, members: Vec<Member>) -> Result<Vec<String>, PolicyError> {
        members
            .iter()
            .find(|m| m.healthy)
            .map(|m| vec![m.name.clone()])
            .ok_or_else(|| PolicyError::Unavailable("no healthy member".into()))
    }
}

impl routing::Guest for Policy {
    fn route(_req: Request, _obj: Object, members: Vec<Member>) -> Result<RouteAnswer, PolicyError> {
        let (healthy, sick): (Vec<Member>, Vec<Member>) = members.into_iter().partition(|m| m.healthy);
        Ok(RouteAnswer {
            members: healthy.into_iter().chain(sick).map(|m| m.name).collect(),
            strict: false,
        })
    }
}

impl tiering::Guest for Policy {
    fn tier(_obj: Object, _current: String, _members: Vec<Member>) -> Result<TierAction, PolicyError> {
        Ok(TierAction::Keep)
    }
}
