//! Validated collection names.
//!
//! A collection name arrives from URLs, config files and the command line,
//! and the embedded store turns it into a directory under the data
//! directory. A name that could mean anything else there (`..`, `/`, a NUL,
//! an absolute path, a name longer than a file name may be) must never get
//! that far, so names are checked once, where they enter, and travel as a
//! [`CollectionName`] afterwards: a value of this type is always safe to
//! join onto a directory.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// The longest name; well under every file system's 255-byte limit, which
/// leaves room for the `-vN` suffix a reindex adds.
pub const MAX_NAME_LEN: usize = 64;

/// A name of 1 to 64 ASCII letters, digits, `-` and `_`, not starting with
/// `-`. It can name no path but a child of the directory it is joined to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct CollectionName(String);

/// Why a name was refused; the message says which rule it broke, and never
/// echoes more than the first 64 characters of hostile input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{field} {shown:?} is not a valid name: {rule}; use 1-64 ASCII letters, digits, '-' or '_'"
)]
pub struct NameError {
    pub field: &'static str,
    shown: String,
    rule: &'static str,
}

/// Checks `name` against the naming rule, for any kind of named thing
/// (`field` says which, in the error).
pub fn check_name(field: &'static str, name: &str) -> Result<(), NameError> {
    let rule = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("it is longer than 64 bytes")
    } else if name.starts_with('-') {
        Some("it starts with '-'")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Some("it has characters other than letters, digits, '-' and '_'")
    } else {
        None
    };
    match rule {
        None => Ok(()),
        Some(rule) => Err(NameError {
            field,
            shown: name.chars().take(MAX_NAME_LEN).collect(),
            rule,
        }),
    }
}

impl CollectionName {
    pub fn new(name: &str) -> Result<Self, NameError> {
        check_name("collection", name)?;
        Ok(Self(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for CollectionName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        Self::new(s)
    }
}

impl AsRef<str> for CollectionName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for CollectionName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CollectionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for CollectionName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_leave_a_directory_are_refused() {
        for bad in [
            "",
            "..",
            ".",
            "../other",
            "..%2Fother",
            "/var/lib/x",
            "a/b",
            "a\\b",
            "a\0b",
            "-rf",
            "caf\u{e9}",
            &"x".repeat(65),
            &"x".repeat(300),
        ] {
            let err = CollectionName::new(bad).expect_err(bad);
            assert!(err.to_string().contains("not a valid name"), "{err}");
            assert!(err.to_string().len() < 300, "{err}");
        }
        for good in ["guide", "a", "A-1_b", "guide-v2", &"x".repeat(64)] {
            assert_eq!(
                CollectionName::new(good).map(|n| n.to_string()),
                Ok(good.to_string())
            );
        }
    }

    #[test]
    fn deserializing_validates() {
        let ok: Result<CollectionName, _> = serde_json::from_str("\"docs\"");
        assert!(ok.is_ok());
        let bad: Result<CollectionName, _> = serde_json::from_str("\"../x\"");
        assert!(bad.is_err());
    }
}
