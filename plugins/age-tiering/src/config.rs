//! The policy's configuration: a JSON object, checked strictly so a typo is an error rather
//! than a threshold that silently never applies.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Objects older than this many seconds leave the hot tier. Required.
    pub cold_after_seconds: u64,
    /// `move` (copy, verify, delete the original) or `copy` (keep the original). Default: `move`.
    #[serde(default)]
    pub mode: Mode,
    /// Objects older than this many seconds are deleted, wherever they are. Default: never.
    #[serde(default)]
    pub delete_after_seconds: Option<u64>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Move,
    Copy,
}

impl Config {
    pub fn parse(text: &str) -> Result<Config, String> {
        if text.trim().is_empty() {
            return Err("age-tiering needs a configuration: a JSON object such as \
                 {\"cold_after_seconds\": 2592000, \"mode\": \"move\", \"delete_after_seconds\": 31536000}"
                .into());
        }
        let config: Config = serde_json::from_str(text)
            .map_err(|e| format!("invalid age-tiering configuration: {e}"))?;
        if let Some(delete) = config.delete_after_seconds
            && delete <= config.cold_after_seconds
        {
            return Err(format!(
                "invalid age-tiering configuration: `delete_after_seconds` ({delete}) must be \
                 greater than `cold_after_seconds` ({})",
                config.cold_after_seconds
            ));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_problem() {
        let err = |t: &str| Config::parse(t).err().unwrap_or_default();
        assert!(err("").contains("needs a configuration"));
        assert!(err("{}").contains("missing field `cold_after_seconds`"));
        assert!(err(r#"{"cold_after_seconds": -1}"#).contains("invalid value"));
        assert!(
            err(r#"{"cold_after_seconds": 1, "mode": "shred"}"#)
                .contains("unknown variant `shred`")
        );
        assert!(
            err(r#"{"cold_after_seconds": 10, "delete_after_seconds": 10}"#)
                .contains("must be greater")
        );
        assert!(err(r#"{"cold_after": 10}"#).contains("unknown field `cold_after`"));
    }
}
