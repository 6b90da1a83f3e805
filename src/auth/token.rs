//! API token format: `hrld_<token id>_<secret>`. Only SHA-256 of the secret
//! is stored; the secret has 256 bits of entropy, so a fast hash suffices.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::ids;

/// Prefix of every Herald API token (helps secret scanners).
pub const TOKEN_PREFIX: &str = "hrld_";

/// A freshly generated token.
pub struct NewToken {
    pub id: String,
    /// The full bearer string, shown to the user once.
    pub bearer: String,
    pub secret_hash: String,
}

/// Generates a token with a new id and 32 random bytes of secret.
pub fn generate() -> NewToken {
    let id = ids::new_id();
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let secret = URL_SAFE_NO_PAD.encode(secret);
    NewToken { bearer: format!("{TOKEN_PREFIX}{id}_{secret}"), secret_hash: hash_secret(&secret), id }
}

/// Splits a bearer string into token id and secret.
pub fn parse_bearer(bearer: &str) -> Option<(&str, &str)> {
    let rest = bearer.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (ids::is_valid_id(id) && !secret.is_empty()).then_some((id, secret))
}

/// The stored form of a secret.
pub fn hash_secret(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

/// Compares a presented secret with a stored hash in constant time.
pub fn verify_secret(secret: &str, stored_hash: &str) -> bool {
    hash_secret(secret).as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_verify() {
        let token = generate();
        let (id, secret) = parse_bearer(&token.bearer).unwrap();
        assert_eq!(id, token.id);
        assert!(verify_secret(secret, &token.secret_hash));
        assert!(!verify_secret("wrong", &token.secret_hash));
    }

    #[test]
    fn malformed_bearers_are_rejected() {
        for bad in ["", "hrld_", "hrld_abc", "xyz_ID_secret", "hrld_a.b_secret", "hrld_ID_"] {
            assert!(parse_bearer(bad).is_none(), "{bad:?}");
        }
    }
}
