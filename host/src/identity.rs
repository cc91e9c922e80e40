//! Who is calling: operators (`[[operators]]`), their roles, and their tokens, kept only as SHA-256 digests and compared in constant time.
//!
//! An identity is only ever made here, from a bearer token: no route takes
//! one from a request body.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use crate::domain::Role;

/// An operator's name: 1 to 64 of `a-z`, `0-9`, `-`, `_`, `.`, starting
/// with a letter or digit. It appears in the audit trail and in outcomes,
/// so it is never free text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct OperatorName(String);

impl OperatorName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Names the audit trail and freezes give to acts no person made: a
/// rollback the `auto_rollback` policy asked for, a config `window`.
const RESERVED_NAMES: [&str; 2] = ["auto_rollback", "window"];

impl FromStr for OperatorName {
    type Err = String;

    fn from_str(s: &str) -> Result<OperatorName, String> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
            });
        if RESERVED_NAMES.contains(&s) {
            Err(format!(
                "{s:?} names Sando's own acts in the audit trail; pick another operator name"
            ))
        } else if ok {
            Ok(OperatorName(s.to_owned()))
        } else {
            Err(format!(
                "{s:?} is not an operator name (1 to 64 of a-z, 0-9, '-', '_', '.', starting with a letter or digit)"
            ))
        }
    }
}

impl<'de> Deserialize<'de> for OperatorName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for OperatorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A token's SHA-256, as the config writes it: 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    pub fn of(token: &str) -> TokenDigest {
        TokenDigest(Sha256::digest(token.trim().as_bytes()).into())
    }

    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

// Never printed: a digest is not the token, but there is no reason to show it.
impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenDigest(..)")
    }
}

impl FromStr for TokenDigest {
    type Err = String;

    fn from_str(s: &str) -> Result<TokenDigest, String> {
        let bad = || {
            "must be 64 hex digits, a SHA-256 of the token (`sando operators add` prints one)"
                .to_owned()
        };
        if s.len() != 64 {
            return Err(bad());
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(TokenDigest(bytes))
    }
}

/// Where an operator's token is known from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorToken {
    /// `token_sha256`: only its digest is in the config.
    Sha256(TokenDigest),
    /// `token_file`: a file holding the token itself, read once at start.
    File(PathBuf),
}

/// One `[[operators]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorConfig {
    pub name: OperatorName,
    pub role: Role,
    pub token: OperatorToken,
    /// Git author e-mails that are this operator's (for `forbid_author`).
    pub emails: Vec<String>,
}

/// Who a request is from: made by [`Operators::authenticate`] from its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: OperatorName,
    pub role: Role,
}

/// Every identity the daemon knows, with its token's digest.
#[derive(Debug, Clone, Default)]
pub struct Operators {
    entries: Vec<(TokenDigest, Identity)>,
}

/// The name the old single token (`token_env` / `token_file`) is known by.
pub const LEGACY_ADMIN: &str = "admin";

/// Why the operators' tokens could not be read at start.
#[derive(Debug, thiserror::Error)]
#[error("operators: {name}: token file {path}: {message}")]
pub struct TokenFileError {
    pub name: OperatorName,
    pub path: String,
    pub message: String,
}

impl Operators {
    /// The configured operators, plus the old single token as `admin` when
    /// one is given. Reads each `token_file` once.
    pub fn new(
        configured: &[OperatorConfig],
        legacy_token: Option<&str>,
    ) -> Result<Operators, TokenFileError> {
        let mut entries = Vec::new();
        for operator in configured {
            let digest = match &operator.token {
                OperatorToken::Sha256(digest) => *digest,
                OperatorToken::File(path) => {
                    let error = |message: String| TokenFileError {
                        name: operator.name.clone(),
                        path: path.display().to_string(),
                        message,
                    };
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| error(crate::fixtures::io_message(&e)))?;
                    if text.trim().is_empty() {
                        return Err(error("is empty".into()));
                    }
                    TokenDigest::of(&text)
                }
            };
            entries.push((digest, Identity { name: operator.name.clone(), role: operator.role }));
        }
        if let Some(token) = legacy_token {
            let name = OperatorName(LEGACY_ADMIN.into());
            entries.push((TokenDigest::of(token), Identity { name, role: Role::Admin }));
        }
        Ok(Operators { entries })
    }

    /// The identity whose token `given` is. Every entry is compared, each
    /// in constant time, so timing reveals neither a prefix nor which
    /// operator matched.
    pub fn authenticate(&self, given: &str) -> Option<Identity> {
        let digest = TokenDigest::of(given);
        let mut found = None;
        for (known, identity) in &self.entries {
            let same: bool = known.0.ct_eq(&digest.0).into();
            if same && found.is_none() {
                found = Some(identity.clone());
            }
        }
        found
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A new random token (256 bits from the kernel, hex), for `sando operators add`.
pub fn new_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_known_by_its_digest_only() {
        let digest = TokenDigest::of("s3cret");
        let configured = vec![OperatorConfig {
            name: "alice".parse().unwrap(),
            role: Role::Operator,
            token: OperatorToken::Sha256(digest.hex().parse().unwrap()),
            emails: Vec::new(),
        }];
        let operators = Operators::new(&configured, Some("old")).unwrap();
        let alice = operators.authenticate("s3cret").unwrap();
        assert_eq!((alice.name.as_str(), alice.role), ("alice", Role::Operator));
        let admin = operators.authenticate("old").unwrap();
        assert_eq!((admin.name.as_str(), admin.role), ("admin", Role::Admin));
        assert_eq!(operators.authenticate("s3cre"), None);
        assert_eq!(operators.authenticate(""), None);
    }

    #[test]
    fn malformed_digests_and_names_are_refused() {
        assert!("abc".parse::<TokenDigest>().is_err());
        assert!("zz".repeat(32).parse::<TokenDigest>().is_err());
        assert!("Alice".parse::<OperatorName>().is_err());
        assert!("".parse::<OperatorName>().is_err());
        assert!("-x".parse::<OperatorName>().is_err());
        assert!("carol.d".parse::<OperatorName>().is_ok());
        assert!("root".parse::<Role>().is_err());
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
    }

    #[test]
    fn new_tokens_differ() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
