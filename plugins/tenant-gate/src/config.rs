//! The policy's configuration: the `config` string of its `[policies.NAME]` entry, in JSON.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The request header naming the tenant (lower-case, as the gateway passes headers).
    #[serde(default = "default_header")]
    pub header: String,
    pub tenants: BTreeMap<String, Tenant>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    /// The `region` label of the members that hold the tenant's data.
    pub region: String,
    /// Access keys that act for the tenant.
    pub principals: Vec<String>,
    /// Largest body one write request may carry; none: no cap.
    #[serde(default)]
    pub max_object_bytes: Option<u64>,
}

fn default_header() -> String {
    "x-tenant".to_owned()
}

impl Config {
    pub fn parse(text: &str) -> Result<Self, String> {
        let c: Config =
            serde_json::from_str(text).map_err(|e| format!("bad tenant-gate configuration: {e}"))?;
        if c.tenants.is_empty() {
            return Err("bad tenant-gate configuration: no tenants".into());
        }
        if let Some(bad) = c.tenants.keys().find(|t| t.is_empty() || t.contains('/')) {
            return Err(format!(
                "bad tenant-gate configuration: tenant name {bad:?} (names are a key's first segment)"
            ));
        }
        Ok(c)
    }
}
