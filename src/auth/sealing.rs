//! Secrets at rest: AES-256-GCM under the key `secrets.key`. A sealed value
//! is `sealed:v1:` + base64url(12-byte random nonce ‖ ciphertext ‖ tag); the
//! plain text never reaches NATS.

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, AeadCore, OsRng},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::error::{Error, Result};

const PREFIX: &str = "sealed:v1:";

/// Seals and opens secrets with one AES-256-GCM key.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

impl Sealer {
    /// A sealer for a 32-byte key.
    pub fn new(key: &[u8; 32]) -> Self {
        Sealer { cipher: Aes256Gcm::new(key.into()) }
    }

    /// A sealer with a random key (development mode: sealed values die with the process).
    pub fn random() -> Self {
        Sealer { cipher: Aes256Gcm::new(&Aes256Gcm::generate_key(OsRng)) }
    }

    /// Decodes a base64 (standard or url-safe) 32-byte key.
    pub fn decode_key(text: &str) -> Option<[u8; 32]> {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        let bytes = STANDARD.decode(text.trim()).or_else(|_| URL_SAFE.decode(text.trim())).ok()?;
        bytes.try_into().ok()
    }

    /// Encrypts `plain` with a fresh nonce.
    pub fn seal(&self, plain: &str) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = self.cipher.encrypt(&nonce, plain.as_bytes()).expect("AES-GCM encryption cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// Decrypts a sealed value; fails when it was sealed under another key or altered.
    pub fn open(&self, sealed: &str) -> Result<String> {
        let fail = || Error::Internal(anyhow::anyhow!("a stored secret cannot be decrypted (wrong secrets.key?)"));
        let bytes = sealed.strip_prefix(PREFIX).and_then(|b| URL_SAFE_NO_PAD.decode(b).ok()).ok_or_else(fail)?;
        if bytes.len() < 12 + 16 {
            return Err(fail());
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let plain = self.cipher.decrypt(Nonce::from_slice(nonce), ciphertext).map_err(|_| fail())?;
        String::from_utf8(plain).map_err(|_| fail())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_with_the_same_key_only() {
        let sealer = Sealer::new(&[7u8; 32]);
        let sealed = sealer.seal("whsec_top-secret");
        assert!(sealed.starts_with("sealed:v1:") && !sealed.contains("top-secret"));
        assert_ne!(sealer.seal("whsec_top-secret"), sealed, "fresh nonce each time");
        assert_eq!(sealer.open(&sealed).unwrap(), "whsec_top-secret");
        assert!(Sealer::new(&[8u8; 32]).open(&sealed).is_err());
        // Flip one character of the ciphertext: the tag no longer matches.
        let mut tampered: Vec<char> = sealed.chars().collect();
        let at = tampered.len() / 2;
        tampered[at] = if tampered[at] == 'A' { 'B' } else { 'A' };
        assert!(sealer.open(&tampered.into_iter().collect::<String>()).is_err());
        assert!(sealer.open("plain text").is_err());
    }

    #[test]
    fn keys_decode_from_base64_and_must_be_32_bytes() {
        let key = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
        assert!(Sealer::decode_key(&key).is_some());
        assert!(Sealer::decode_key("c2hvcnQ=").is_none());
    }
}
