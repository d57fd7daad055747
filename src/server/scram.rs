//! SCRAM-SHA-256 (RFC 5802, RFC 7677) on the server side, against stored verifiers.
//!
//! A verifier holds the salt, the iteration count, `StoredKey = H(HMAC(SaltedPassword,
//! "Client Key"))` and `ServerKey = HMAC(SaltedPassword, "Server Key")`, in PostgreSQL's
//! `pg_authid.rolpassword` format (`SCRAM-SHA-256$<i>:<salt>$<StoredKey>:<ServerKey>`).
//! Neither key lets anyone log in: the client proof needs `ClientKey`, and only its hash is
//! stored. (pgwire's own SCRAM handler needs the salted password itself, which is
//! password-equivalent; hence this module.)
//!
//! Channel binding (`SCRAM-SHA-256-PLUS`, `tls-server-end-point`) is supported: the client
//! proves it sees the same server certificate, so a TLS-intercepting proxy cannot relay the
//! exchange.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::{digest, hmac, pbkdf2, rand::SecureRandom};
use subtle::ConstantTimeEq;

/// The mechanism names, as advertised in AuthenticationSASL.
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
/// With channel binding.
pub const SCRAM_SHA_256_PLUS: &str = "SCRAM-SHA-256-PLUS";
/// Iterations for new verifiers (PostgreSQL's default).
pub const DEFAULT_ITERATIONS: u32 = 4096;

/// A stored SCRAM-SHA-256 verifier.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys are not secrets in the password sense, but they have no place in logs.
        f.debug_struct("Verifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Derives a verifier from a password with a fresh random salt.
    pub fn new(password: &str, iterations: u32) -> Result<Self, String> {
        let mut salt = vec![0u8; 16];
        ring::rand::SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| "the system random number generator failed".to_string())?;
        Ok(Self::derive(password, salt, iterations))
    }

    /// Derives a verifier from a password and a given salt.
    pub fn derive(password: &str, salt: Vec<u8>, iterations: u32) -> Self {
        // SASLprep, falling back to the raw bytes when the password is not valid for it
        // (what PostgreSQL and libpq do).
        let normalized = stringprep::saslprep(password)
            .map(|p| p.into_owned())
            .unwrap_or_else(|_| password.to_string());
        let mut salted = [0u8; 32];
        let rounds =
            std::num::NonZeroU32::new(iterations.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            rounds,
            &salt,
            normalized.as_bytes(),
            &mut salted,
        );
        let client_key = hmac_sha256(&salted, b"Client Key");
        let stored_key = sha256(&client_key);
        let server_key = hmac_sha256(&salted, b"Server Key");
        Self {
            iterations,
            salt,
            stored_key,
            server_key,
        }
    }

    /// Parses `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            "not a SCRAM-SHA-256 verifier (expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)".to_string()
        };
        let rest = text.strip_prefix("SCRAM-SHA-256$").ok_or_else(bad)?;
        let (params, keys) = rest.split_once('$').ok_or_else(bad)?;
        let (iterations, salt) = params.split_once(':').ok_or_else(bad)?;
        let (stored, server) = keys.split_once(':').ok_or_else(bad)?;
        let iterations: u32 = iterations.parse().map_err(|_| bad())?;
        if iterations == 0 {
            return Err(bad());
        }
        let salt = B64.decode(salt).map_err(|_| bad())?;
        let key = |s: &str| -> Result<[u8; 32], String> {
            B64.decode(s)
                .ok()
                .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
                .ok_or_else(bad)
        };
        Ok(Self {
            iterations,
            salt,
            stored_key: key(stored)?,
            server_key: key(server)?,
        })
    }

    /// A deterministic stand-in for a user that does not exist, so that the exchange looks
    /// the same (same salt every time for the same name) and then fails like a wrong password.
    pub fn mock(user: &str, secret: &[u8; 32]) -> Self {
        let seed = hmac_sha256(secret, user.as_bytes());
        Self {
            iterations: DEFAULT_ITERATIONS,
            salt: seed[..16].to_vec(),
            stored_key: hmac_sha256(&seed, b"stored"),
            server_key: hmac_sha256(&seed, b"server"),
        }
    }
}

impl fmt::Display for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }
}

/// Why an exchange failed. The client only ever learns "authentication failed"; the
/// variants exist for the server's own log.
#[derive(Debug, PartialEq, Eq)]
pub enum ScramError {
    /// The message does not follow the SCRAM grammar.
    Malformed(&'static str),
    /// Channel-binding negotiation is inconsistent (a possible downgrade).
    ChannelBinding(&'static str),
    /// The proof does not match: wrong password or unknown user.
    WrongProof,
}

impl fmt::Display for ScramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScramError::Malformed(what) => write!(f, "malformed SCRAM message: {what}"),
            ScramError::ChannelBinding(what) => write!(f, "SCRAM channel binding: {what}"),
            ScramError::WrongProof => write!(f, "wrong password"),
        }
    }
}

/// The server's half of one SCRAM exchange, after the client-first message.
#[derive(Debug)]
pub struct ServerFirst {
    /// The server-first message to send.
    pub message: String,
    gs2_header: String,
    channel_binding: Option<Vec<u8>>,
    client_first_bare: String,
    nonce: String,
    verifier: Verifier,
}

/// Handles the client-first message.
///
/// `mechanism` is what the client chose; `plus_offered` whether the server advertised
/// `SCRAM-SHA-256-PLUS`; `cert_hash` the `tls-server-end-point` binding data of the server
/// certificate (when TLS is on).
pub fn client_first(
    message: &[u8],
    mechanism: &str,
    plus_offered: bool,
    cert_hash: Option<&[u8]>,
    verifier: Verifier,
) -> Result<ServerFirst, ScramError> {
    let message = std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
    // gs2-header = gs2-cbind-flag "," [ authzid ] ","
    let mut parts = message.splitn(3, ',');
    let flag = parts.next().ok_or(ScramError::Malformed("no gs2 header"))?;
    let authzid = parts.next().ok_or(ScramError::Malformed("no gs2 header"))?;
    let bare = parts
        .next()
        .ok_or(ScramError::Malformed("no client-first-message-bare"))?;
    if !authzid.is_empty() {
        return Err(ScramError::Malformed(
            "authorization identities are not supported",
        ));
    }
    let channel_binding = match (flag, mechanism) {
        ("p=tls-server-end-point", SCRAM_SHA_256_PLUS) => Some(
            cert_hash
                .ok_or(ScramError::ChannelBinding(
                    "no server certificate to bind to",
                ))?
                .to_vec(),
        ),
        (f, SCRAM_SHA_256_PLUS) if f.starts_with("p=") => {
            return Err(ScramError::ChannelBinding(
                "unsupported channel binding type",
            ));
        }
        (_, SCRAM_SHA_256_PLUS) => {
            return Err(ScramError::ChannelBinding(
                "SCRAM-SHA-256-PLUS chosen without channel binding",
            ));
        }
        ("n", SCRAM_SHA_256) => None,
        ("y", SCRAM_SHA_256) if plus_offered => {
            // The client could bind and believes the server cannot, yet the server offered
            // PLUS: someone removed it from the list on the way.
            return Err(ScramError::ChannelBinding(
                "client says the server does not support channel binding, but it does",
            ));
        }
        ("y", SCRAM_SHA_256) => None,
        (_, SCRAM_SHA_256) => {
            return Err(ScramError::ChannelBinding(
                "channel binding requested with SCRAM-SHA-256",
            ));
        }
        _ => return Err(ScramError::Malformed("unknown mechanism")),
    };
    let gs2_header = format!("{flag},{authzid},");
    // client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
    let mut attrs = bare.split(',');
    let user = attrs.next().ok_or(ScramError::Malformed("no username"))?;
    if user.starts_with("m=") {
        return Err(ScramError::Malformed(
            "mandatory extensions are not supported",
        ));
    }
    if !user.starts_with("n=") {
        return Err(ScramError::Malformed("no username attribute"));
    }
    let client_nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(ScramError::Malformed("no nonce"))?;
    if client_nonce.is_empty()
        || !client_nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
    {
        return Err(ScramError::Malformed("the client nonce is not printable"));
    }
    let mut server_nonce = [0u8; 18];
    ring::rand::SystemRandom::new()
        .fill(&mut server_nonce)
        .map_err(|_| ScramError::Malformed("the system random number generator failed"))?;
    let nonce = format!("{client_nonce}{}", B64.encode(server_nonce));
    let message = format!(
        "r={nonce},s={},i={}",
        B64.encode(&verifier.salt),
        verifier.iterations
    );
    Ok(ServerFirst {
        message,
        gs2_header,
        channel_binding,
        client_first_bare: bare.to_string(),
        nonce,
        verifier,
    })
}

impl ServerFirst {
    /// Handles the client-final message; on success returns the server-final message.
    pub fn client_final(&self, message: &[u8]) -> Result<String, ScramError> {
        let message =
            std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (without_proof, proof) = message
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("no proof"))?;
        let mut attrs = without_proof.split(',');
        let binding = attrs
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or(ScramError::Malformed("no channel binding attribute"))?;
        let nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(ScramError::Malformed("no nonce"))?;
        let mut expected_binding = self.gs2_header.as_bytes().to_vec();
        if let Some(data) = &self.channel_binding {
            expected_binding.extend_from_slice(data);
        }
        let binding = B64
            .decode(binding)
            .map_err(|_| ScramError::Malformed("channel binding is not base64"))?;
        if !bool::from(binding.ct_eq(&expected_binding)) {
            return Err(ScramError::ChannelBinding(
                "channel binding data does not match",
            ));
        }
        if nonce != self.nonce {
            return Err(ScramError::Malformed("nonce mismatch"));
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| ScramError::Malformed("proof is not base64"))?;
        if proof.len() != 32 {
            return Err(ScramError::Malformed("proof has the wrong length"));
        }
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.message, without_proof
        );
        let client_signature = hmac_sha256(&self.verifier.stored_key, auth_message.as_bytes());
        let mut client_key = [0u8; 32];
        for (k, (p, s)) in client_key
            .iter_mut()
            .zip(proof.iter().zip(client_signature))
        {
            *k = p ^ s;
        }
        if !bool::from(sha256(&client_key).ct_eq(&self.verifier.stored_key)) {
            return Err(ScramError::WrongProof);
        }
        let server_signature = hmac_sha256(&self.verifier.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)))
    }
}

/// `tls-server-end-point` binding data (RFC 5929): the hash of the server certificate, with
/// the certificate's signature hash (SHA-256 for MD5 and SHA-1). `None` when the signature
/// algorithm is not one we recognise, in which case PLUS is not offered.
pub fn tls_server_end_point(cert_der: &[u8]) -> Option<Vec<u8>> {
    use x509_certificate::DigestAlgorithm;
    let cert = x509_certificate::X509Certificate::from_der(cert_der).ok()?;
    let algorithm = cert.signature_algorithm()?.digest_algorithm()?;
    let alg = match algorithm {
        DigestAlgorithm::Sha384 => &digest::SHA384,
        DigestAlgorithm::Sha512 => &digest::SHA512,
        _ => &digest::SHA256,
    };
    Some(digest::digest(alg, cert_der).as_ref().to_vec())
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let tag = hmac::sign(&key, message);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, data).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==,
    /// 4096 iterations, the client nonce rOprNGfwEbeRWgbNEkqO and this server nonce.
    #[test]
    fn rfc7677_example() -> Result<(), String> {
        let salt = B64
            .decode("W22ZaJ0SNY7soEsUEjb6gQ==")
            .map_err(|e| e.to_string())?;
        let verifier = Verifier::derive("pencil", salt, 4096);
        let mut first = client_first(
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            SCRAM_SHA_256,
            false,
            None,
            verifier,
        )
        .map_err(|e| e.to_string())?;
        // Replace the random server nonce with the RFC's, as if we had drawn it.
        first.nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".to_string();
        first.message = format!("r={},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", first.nonce);
        let last = first
            .client_final(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .map_err(|e| e.to_string())?;
        assert_eq!(last, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
        // A flipped bit in the proof is a wrong password.
        assert_eq!(
            first.client_final(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVc="),
            Err(ScramError::WrongProof)
        );
        Ok(())
    }

    #[test]
    fn verifier_round_trips_and_hides_the_password() -> Result<(), String> {
        let v = Verifier::new("correct horse", DEFAULT_ITERATIONS)?;
        let text = v.to_string();
        assert!(text.starts_with("SCRAM-SHA-256$4096:"));
        assert!(!text.contains("correct horse"));
        assert_eq!(Verifier::parse(&text)?, v);
        assert!(Verifier::parse("md5abcdef").is_err());
        assert!(Verifier::parse("SCRAM-SHA-256$0:AAAA$AAAA:AAAA").is_err());
        Ok(())
    }

    #[test]
    fn downgrade_and_mismatched_binding_are_refused() -> Result<(), ScramError> {
        let v = Verifier::mock("u", &[7; 32]);
        // The server offered PLUS, the client says "y" (thinks the server cannot bind).
        assert!(matches!(
            client_first(
                b"y,,n=,r=abc",
                SCRAM_SHA_256,
                true,
                Some(&[1; 32]),
                v.clone()
            ),
            Err(ScramError::ChannelBinding(_))
        ));
        // PLUS chosen, but binding data for another certificate.
        let first = client_first(
            b"p=tls-server-end-point,,n=,r=abc",
            SCRAM_SHA_256_PLUS,
            true,
            Some(&[1; 32]),
            v,
        )?;
        let mut wrong = b"p=tls-server-end-point,,".to_vec();
        wrong.extend_from_slice(&[2; 32]);
        let msg = format!(
            "c={},r={},p={}",
            B64.encode(wrong),
            first.nonce,
            B64.encode([0; 32])
        );
        assert!(matches!(
            first.client_final(msg.as_bytes()),
            Err(ScramError::ChannelBinding(_))
        ));
        Ok(())
    }

    #[test]
    fn mock_verifiers_are_stable_per_user() {
        let secret = [9; 32];
        assert_eq!(
            Verifier::mock("ghost", &secret),
            Verifier::mock("ghost", &secret)
        );
        assert_ne!(
            Verifier::mock("ghost", &secret).salt,
            Verifier::mock("other", &secret).salt
        );
    }
}
