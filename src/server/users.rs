//! The users file: one SCRAM-SHA-256 verifier per user, never a password.
//!
//! ```toml
//! # Written by `discern user add`; the verifiers are PostgreSQL's rolpassword format.
//! [users]
//! alice = "SCRAM-SHA-256$4096:…$…:…"
//! ```
//!
//! The file is written with mode 0600 and replaced atomically (write, then rename).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::scram::{DEFAULT_ITERATIONS, Verifier};
use crate::error::{Error, Result};

/// The users and their verifiers.
#[derive(Debug, Default)]
pub struct Users {
    verifiers: BTreeMap<String, Verifier>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    users: BTreeMap<String, String>,
}

impl Users {
    /// Reads a users file; a missing file is an empty set of users.
    pub fn load(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(users_error(path, e)),
        };
        let file: UsersFile = toml::from_str(&text)
            .map_err(|e| users_error(path, crate::error::one_line(&e.message())))?;
        let mut verifiers = BTreeMap::new();
        for (name, verifier) in file.users {
            validate_user_name(&name).map_err(|e| users_error(path, e))?;
            let verifier = Verifier::parse(&verifier)
                .map_err(|e| users_error(path, format!("user '{name}': {e}")))?;
            verifiers.insert(name, verifier);
        }
        Ok(Self { verifiers })
    }

    /// Writes the users file (mode 0600, atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        let file = UsersFile {
            users: self
                .verifiers
                .iter()
                .map(|(name, v)| (name.clone(), v.to_string()))
                .collect(),
        };
        let body = toml::to_string(&file).map_err(|e| users_error(path, e))?;
        let text = format!(
            "# Discern users: SCRAM-SHA-256 verifiers (PostgreSQL's rolpassword format), never\n\
             # passwords. Manage with `discern user add NAME` and `discern user remove NAME`.\n{body}"
        );
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| users_error(path, e))?;
        }
        let tmp = tmp_path(path);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut out = options.open(&tmp).map_err(|e| users_error(&tmp, e))?;
        out.write_all(text.as_bytes())
            .and_then(|()| out.sync_all())
            .map_err(|e| users_error(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| users_error(path, e))
    }

    /// Adds or replaces a user.
    pub fn set_password(&mut self, name: &str, password: &str) -> Result<()> {
        validate_user_name(name).map_err(Error::Config)?;
        if password.is_empty() {
            return Err(Error::Config("the password is empty".into()));
        }
        let verifier = Verifier::new(password, DEFAULT_ITERATIONS).map_err(Error::Config)?;
        self.verifiers.insert(name.to_string(), verifier);
        Ok(())
    }

    /// Removes a user; false when there was none.
    pub fn remove(&mut self, name: &str) -> bool {
        self.verifiers.remove(name).is_some()
    }

    /// A user's verifier.
    pub fn get(&self, name: &str) -> Option<&Verifier> {
        self.verifiers.get(name)
    }

    /// The user names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.verifiers.keys().map(String::as_str)
    }

    /// No users at all.
    pub fn is_empty(&self) -> bool {
        self.verifiers.is_empty()
    }
}

/// User names are what PostgreSQL accepts unquoted, plus dots and dashes (e-mail-like
/// service accounts): 1 to 63 bytes of `[A-Za-z0-9_.@-]`.
pub fn validate_user_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "user name '{name}' must be 1 to 63 characters of letters, digits, _ . - @"
        ))
    }
}

/// A random password for the first user: 24 characters from an unambiguous alphabet
/// (about 137 bits).
pub fn random_password() -> Result<String> {
    use ring::rand::SecureRandom;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 24];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Config("the system random number generator failed".into()))?;
    // 256 is not a multiple of 56: reject the top values to keep the choice uniform.
    let mut out = String::with_capacity(24);
    let rng = ring::rand::SystemRandom::new();
    for mut b in bytes {
        while usize::from(b) >= 256 - 256 % ALPHABET.len() {
            let mut one = [0u8; 1];
            rng.fill(&mut one)
                .map_err(|_| Error::Config("the system random number generator failed".into()))?;
            b = one[0];
        }
        out.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
    }
    Ok(out)
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

fn users_error(path: &Path, cause: impl std::fmt::Display) -> Error {
    Error::Config(format!("users file {}: {cause}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_save_load_remove() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::Config(e.to_string()))?;
        let path = dir.path().join("users.toml");
        let mut users = Users::load(&path)?;
        assert!(users.is_empty());
        users.set_password("alice", "s3cret-pw")?;
        users.save(&path)?;
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Config(e.to_string()))?;
        assert!(!text.contains("s3cret-pw"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .map_err(|e| Error::Config(e.to_string()))?
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let mut again = Users::load(&path)?;
        assert_eq!(again.names().collect::<Vec<_>>(), ["alice"]);
        assert!(again.remove("alice"));
        assert!(!again.remove("alice"));
        assert!(users.set_password("bad name", "x").is_err());
        assert!(users.set_password("bob", "").is_err());
        Ok(())
    }

    #[test]
    fn random_passwords_differ() -> Result<()> {
        let a = random_password()?;
        assert_eq!(a.len(), 24);
        assert_ne!(a, random_password()?);
        Ok(())
    }
}
