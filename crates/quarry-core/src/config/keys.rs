//! `[[server.keys]]`: named API keys, each with scopes, the collections it
//! may touch, and a rate limit.
//!
//! A key's secret is never in the file: it is read from an environment
//! variable (`secret_env`), or only its sha256 is written (`secret_sha256`),
//! so a configuration can be committed and dumped without leaking it.

use serde::{Deserialize, Serialize};

use crate::{CoreError, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Labels the key's metrics and log lines; never secret.
    pub name: String,
    /// The environment variable holding the key.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// The key's sha256, in hex (`printf %s KEY | sha256sum`).
    #[serde(default)]
    pub secret_sha256: Option<String>,
    /// What the key may do. Default: `["read"]`.
    #[serde(default = "read_only")]
    pub scopes: Vec<Scope>,
    /// Glob patterns of the collections the key sees (`faq-*`); the others
    /// do not exist for it. Default: all.
    #[serde(default)]
    pub collections: Vec<String>,
    /// A token bucket for the key. Default: `server.rate`, if set.
    #[serde(default)]
    pub rate: Option<RateConfig>,
}

/// What a key may do; each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Search, context, documents' status, listings, job status.
    Read,
    /// Also: add, replace and delete documents, start syncs.
    Write,
    /// Also: `/metrics`.
    Admin,
}

/// A token bucket: `per_second` tokens a second, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    pub per_second: f64,
    /// Default: one second's worth, at least 1.
    #[serde(default)]
    pub burst: Option<u32>,
}

fn read_only() -> Vec<Scope> {
    vec![Scope::Read]
}

impl RateConfig {
    /// Checks the numbers; `what` names the field in the error.
    pub fn validate(&self, what: &str) -> Result<()> {
        if !(self.per_second.is_finite() && self.per_second > 0.0) {
            return Err(CoreError::Invalid(format!(
                "{what}.per_second = {} must be a positive number of requests a second",
                self.per_second
            )));
        }
        if self.burst == Some(0) {
            return Err(CoreError::Invalid(format!(
                "{what}.burst = 0 would refuse every request; use at least 1"
            )));
        }
        Ok(())
    }

    /// The bucket's size.
    pub fn burst(&self) -> u32 {
        self.burst
            .unwrap_or_else(|| self.per_second.ceil().clamp(1.0, u32::MAX as f64) as u32)
    }
}

impl KeyConfig {
    /// The highest scope the key has.
    pub fn scope(&self) -> Scope {
        self.scopes.iter().copied().max().unwrap_or(Scope::Read)
    }

    /// The sha256 of the key's secret, from the environment variable or the
    /// configured digest; exactly one of them must be set.
    pub fn secret_digest(&self) -> Result<[u8; 32]> {
        let bad = |m: String| CoreError::Invalid(format!("[[server.keys]] {:?}: {m}", self.name));
        if self.name.trim().is_empty() {
            return Err(bad(
                "name is empty; give the key a name for logs and metrics".into(),
            ));
        }
        match (&self.secret_env, &self.secret_sha256) {
            (Some(var), None) => {
                let value = std::env::var(var).unwrap_or_default();
                if value.trim().is_empty() {
                    return Err(bad(format!(
                        "secret_env = {var:?}, but that variable is unset or empty; export it"
                    )));
                }
                use sha2::Digest;
                Ok(sha2::Sha256::digest(value.trim().as_bytes()).into())
            }
            (None, Some(hexed)) => {
                let bytes = hex::decode(hexed.trim()).ok().filter(|b| b.len() == 32);
                let bytes = bytes.ok_or_else(|| {
                    bad("secret_sha256 must be 64 hex digits (`printf %s KEY | sha256sum`)".into())
                })?;
                let mut d = [0u8; 32];
                d.copy_from_slice(&bytes);
                Ok(d)
            }
            (Some(_), Some(_)) => Err(bad("set secret_env or secret_sha256, not both".into())),
            (None, None) => Err(bad(
                "no secret: set secret_env (a variable holding the key) or secret_sha256".into(),
            )),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(toml_text: &str) -> KeyConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn secrets_come_from_the_environment_or_a_digest_never_the_file() {
        let k = key(
            "name = \"bot\"\nsecret_sha256 = \"2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b\"\n",
        );
        // sha256("secret")
        assert_eq!(
            hex::encode(k.secret_digest().unwrap()),
            "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
        );
        assert_eq!(k.scope(), Scope::Read);
        let err = toml::from_str::<KeyConfig>("name = \"bot\"\nsecret = \"plain\"\n").unwrap_err();
        assert!(err.to_string().contains("secret"), "{err}");
        let unset = key("name = \"bot\"\nsecret_env = \"QUARRY_TEST_UNSET_KEY_VAR\"\n");
        let err = unset.secret_digest().unwrap_err().to_string();
        assert!(
            err.contains("QUARRY_TEST_UNSET_KEY_VAR") && err.contains("bot"),
            "{err}"
        );
        let neither = key("name = \"bot\"\n")
            .secret_digest()
            .unwrap_err()
            .to_string();
        assert!(neither.contains("secret_env"), "{neither}");
        let short = key("name = \"bot\"\nsecret_sha256 = \"abc\"\n");
        assert!(short.secret_digest().is_err());
        let admin = key("name = \"ops\"\nsecret_sha256 = \"00\"\nscopes = [\"read\", \"admin\"]\n");
        assert_eq!(admin.scope(), Scope::Admin);
    }

    #[test]
    fn rates_are_checked_and_burst_defaults_to_a_second() {
        let r = RateConfig {
            per_second: 2.5,
            burst: None,
        };
        assert_eq!(r.burst(), 3);
        assert!(r.validate("rate").is_ok());
        let zero = RateConfig {
            per_second: 0.0,
            burst: None,
        };
        assert!(
            zero.validate("server.rate")
                .unwrap_err()
                .to_string()
                .contains("server.rate")
        );
        let no_burst = RateConfig {
            per_second: 1.0,
            burst: Some(0),
        };
        assert!(no_burst.validate("rate").is_err());
    }
}
