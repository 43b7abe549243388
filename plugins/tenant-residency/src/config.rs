//! The policy's configuration: a JSON object, checked strictly so a typo is an error rather
//! than a rule that silently never matches.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Principal (access key) → region. Checked first. Default: none.
    #[serde(default)]
    pub tenants: BTreeMap<String, String>,
    /// First key segment (before the first `/`) → region. Checked second. Default: none.
    #[serde(default)]
    pub prefixes: BTreeMap<String, String>,
    /// Region of objects no tenant or prefix matches. Default: none (such writes are refused).
    #[serde(default)]
    pub default: Option<String>,
    /// The member label that holds a member's region. Default: `region`.
    #[serde(default = "default_label")]
    pub label: String,
}

fn default_label() -> String {
    "region".into()
}

impl Config {
    pub fn parse(text: &str) -> Result<Config, String> {
        if text.trim().is_empty() {
            return Err("tenant-residency needs a configuration: a JSON object such as \
                 {\"tenants\": {\"acme-eu\": \"eu\"}, \"prefixes\": {\"us\": \"us\"}, \"default\": \"us\"}"
                .into());
        }
        let config: Config = serde_json::from_str(text)
            .map_err(|e| format!("invalid tenant-residency configuration: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.label.is_empty() {
            return Err("invalid tenant-residency configuration: `label` is empty".into());
        }
        let empty_region = self
            .tenants
            .iter()
            .map(|(k, v)| ("tenants", k.as_str(), v))
            .chain(
                self.prefixes
                    .iter()
                    .map(|(k, v)| ("prefixes", k.as_str(), v)),
            )
            .chain(self.default.iter().map(|v| ("default", "", v)))
            .find(|(_, _, region)| region.is_empty());
        if let Some((field, key, _)) = empty_region {
            let at = if key.is_empty() {
                String::new()
            } else {
                format!(".{key:?}")
            };
            return Err(format!(
                "invalid tenant-residency configuration: `{field}{at}` names an empty region"
            ));
        }
        if let Some(prefix) = self
            .prefixes
            .keys()
            .find(|p| p.is_empty() || p.contains('/'))
        {
            return Err(format!(
                "invalid tenant-residency configuration: prefix {prefix:?} is not a single key \
                 segment (it must be non-empty and contain no '/')"
            ));
        }
        if self.tenants.is_empty() && self.prefixes.is_empty() && self.default.is_none() {
            return Err(
                "invalid tenant-residency configuration: no `tenants`, `prefixes` or \
                 `default`, so no object has a region"
                    .into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_problem() {
        let err = |t: &str| Config::parse(t).err().unwrap_or_default();
        assert!(err("").contains("needs a configuration"));
        assert!(err("{\"tenant\": {}}").contains("unknown field `tenant`"));
        assert!(
            err("{\"prefixes\": {\"eu\": \"\"}}")
                .contains("`prefixes.\"eu\"` names an empty region")
        );
        assert!(err("{\"prefixes\": {\"a/b\": \"eu\"}}").contains("not a single key segment"));
        assert!(err("{}").contains("no object has a region"));
        assert!(err("[1]").contains("invalid tenant-residency configuration"));
    }
}
