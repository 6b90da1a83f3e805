//! Standard Webhooks signatures: `webhook-signature` = space-separated
//! `v1,<base64 HMAC-SHA256>` per active secret over `{id}.{timestamp}.{body}`
//! with the base64-decoded `whsec_` secret, plus an optional asymmetric
//! `v1a,<base64 Ed25519 signature>` over the same content.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use ed25519_dalek::{Signer as _, SigningKey};
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;

/// Prefix of symmetric signing secrets.
pub const SECRET_PREFIX: &str = "whsec_";
/// Prefix of published Ed25519 public keys.
pub const PUBLIC_KEY_PREFIX: &str = "whpk_";

/// A new `whsec_` secret with 32 random bytes.
pub fn new_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// A new Ed25519 seed (base64) for `v1a` signatures.
pub fn new_ed25519_seed() -> String {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    STANDARD.encode(seed)
}

/// The `whpk_` public key of an Ed25519 seed.
pub fn public_key(seed: &str) -> Option<String> {
    let key = signing_key(seed)?;
    Some(format!("{PUBLIC_KEY_PREFIX}{}", STANDARD.encode(key.verifying_key().to_bytes())))
}

fn signing_key(seed: &str) -> Option<SigningKey> {
    let bytes: [u8; 32] = STANDARD.decode(seed).ok()?.try_into().ok()?;
    Some(SigningKey::from_bytes(&bytes))
}

/// The `v1,...` signature of one message with one `whsec_` secret.
pub fn sign_v1(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    V1Key::new(secret).sign(id, timestamp, body)
}

/// The `v1a,...` Ed25519 signature of one message.
fn sign_ed25519(key: &SigningKey, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    format!("v1a,{}", STANDARD.encode(key.sign(&content).to_bytes()))
}

/// A `whsec_` secret ready to sign: the HMAC state after absorbing the
/// decoded key, so each message costs only the hashing of its own content.
pub struct V1Key(Hmac<Sha256>);

impl V1Key {
    pub fn new(secret: &str) -> Self {
        let key = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
        let key = STANDARD.decode(key).unwrap_or_else(|_| key.as_bytes().to_vec());
        V1Key(Hmac::<Sha256>::new_from_slice(&key).expect("HMAC accepts keys of any length"))
    }

    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = self.0.clone();
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// Everything one subscription signs a message with: its active `whsec_`
/// secrets and its optional Ed25519 key.
pub struct Signer {
    v1: Vec<V1Key>,
    v1a: Option<SigningKey>,
}

impl Signer {
    /// A signer from plain-text secrets (a malformed Ed25519 seed signs without `v1a`).
    pub fn new(secrets: &[&str], ed25519_seed: Option<&str>) -> Self {
        Signer { v1: secrets.iter().map(|s| V1Key::new(s)).collect(), v1a: ed25519_seed.and_then(signing_key) }
    }

    /// The full `webhook-signature` header value: space-separated `v1`
    /// signatures, then the `v1a` one.
    pub fn header(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut parts: Vec<String> = self.v1.iter().map(|k| k.sign(id, timestamp, body)).collect();
        parts.extend(self.v1a.as_ref().map(|key| sign_ed25519(key, id, timestamp, body)));
        parts.join(" ")
    }
}

/// Most subscriptions whose opened keys a [`SignerCache`] keeps; it starts
/// over when full.
const CACHED_SIGNERS: usize = 10_000;

/// Signers by subscription, each with the sealed secrets it was opened
/// from, so a delivery neither decrypts nor decodes its keys: a rotation or
/// an expired secret changes the sealed list and opens a new signer.
#[derive(Default)]
pub struct SignerCache {
    signers: Mutex<HashMap<String, Opened>>,
}

/// A cached signer and the sealed secrets (then the seed) it was opened from.
type Opened = (Vec<String>, Arc<Signer>);

impl SignerCache {
    /// The signer for subscription `id` whose active secrets are `sealed`
    /// (with its sealed Ed25519 `seed`), opening them with `open` only when
    /// they differ from the cached ones. A cache hit allocates nothing.
    pub fn get<'a, E>(
        &self,
        id: &str,
        sealed: impl Iterator<Item = &'a str> + Clone,
        seed: Option<&'a str>,
        open: impl Fn(&str) -> Result<String, E>,
    ) -> Result<Arc<Signer>, E> {
        let key = || sealed.clone().chain(seed);
        if let Some((cached, signer)) = self.signers.lock().expect("signer cache").get(id)
            && cached.iter().map(String::as_str).eq(key())
        {
            return Ok(signer.clone());
        }
        let secrets = sealed.clone().map(&open).collect::<Result<Vec<_>, E>>()?;
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let seed = seed.map(&open).transpose()?;
        let signer = Arc::new(Signer::new(&secrets, seed.as_deref()));
        let mut signers = self.signers.lock().expect("signer cache");
        if signers.len() >= CACHED_SIGNERS {
            signers.clear();
        }
        signers.insert(id.to_owned(), (key().map(str::to_owned).collect(), signer.clone()));
        Ok(signer)
    }
}

/// Verifies a `webhook-signature` header against a `whsec_` secret or a
/// `whpk_` public key (used by `herald listen` and the tests).
pub fn verify(header: &str, key: &str, id: &str, timestamp: i64, body: &[u8]) -> bool {
    if let Some(public) = key.strip_prefix(PUBLIC_KEY_PREFIX) {
        let Some(public) = STANDARD.decode(public).ok().and_then(|b| <[u8; 32]>::try_from(b).ok()) else {
            return false;
        };
        let Ok(verifying) = ed25519_dalek::VerifyingKey::from_bytes(&public) else { return false };
        let mut content = format!("{id}.{timestamp}.").into_bytes();
        content.extend_from_slice(body);
        return header.split(' ').filter_map(|p| p.strip_prefix("v1a,")).any(|sig| {
            STANDARD
                .decode(sig)
                .ok()
                .and_then(|b| ed25519_dalek::Signature::from_slice(&b).ok())
                .is_some_and(|sig| verifying.verify_strict(&content, &sig).is_ok())
        });
    }
    let expected = sign_v1(key, id, timestamp, body);
    header.split(' ').any(|part| subtle::ConstantTimeEq::ct_eq(part.as_bytes(), expected.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_published_standard_webhooks_test_vector() {
        let signature = sign_v1(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn every_active_secret_signs_during_rotation_and_each_verifies() {
        let (old, new) = (new_secret(), new_secret());
        let header = Signer::new(&[&new, &old], None).header("msg_1", 1700000000, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        assert!(verify(&header, &old, "msg_1", 1700000000, b"{}"));
        assert!(verify(&header, &new, "msg_1", 1700000000, b"{}"));
        assert!(!verify(&header, &new_secret(), "msg_1", 1700000000, b"{}"));
        assert!(!verify(&header, &new, "msg_1", 1700000001, b"{}"), "timestamp is signed");
        assert!(!verify(&header, &new, "msg_1", 1700000000, b"{ }"), "body is signed");
    }

    #[test]
    fn asymmetric_signatures_verify_with_the_public_key_only() {
        let seed = new_ed25519_seed();
        let public = public_key(&seed).unwrap();
        assert!(public.starts_with("whpk_"));
        let header = Signer::new(&[&new_secret()], Some(&seed)).header("msg_2", 1700000000, b"body");
        assert!(header.contains(" v1a,"));
        assert!(verify(&header, &public, "msg_2", 1700000000, b"body"));
        assert!(!verify(&header, &public, "msg_2", 1700000000, b"other"));
        let other = public_key(&new_ed25519_seed()).unwrap();
        assert!(!verify(&header, &other, "msg_2", 1700000000, b"body"));
    }

    #[test]
    fn cached_signers_are_reopened_when_the_sealed_secrets_change() {
        let cache = SignerCache::default();
        let opened = std::cell::Cell::new(0);
        let open = |sealed: &str| {
            opened.set(opened.get() + 1);
            Ok::<_, ()>(sealed.trim_start_matches("sealed:").to_owned())
        };
        let (old, new) = (new_secret(), new_secret());
        let (sealed_old, sealed_new) = (format!("sealed:{old}"), format!("sealed:{new}"));
        let first = cache.get("sub", [sealed_old.as_str()].into_iter(), None, open).unwrap();
        let again = cache.get("sub", [sealed_old.as_str()].into_iter(), None, open).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(opened.get(), 1, "the second delivery opens nothing");
        assert!(verify(&again.header("m", 1, b"x"), &old, "m", 1, b"x"));
        // Rotation: both secrets sign, and the cache notices the change.
        let rotated = cache.get("sub", [sealed_new.as_str(), &sealed_old].into_iter(), None, open).unwrap();
        let header = rotated.header("m", 1, b"x");
        assert!(verify(&header, &new, "m", 1, b"x") && verify(&header, &old, "m", 1, b"x"));
        // The old secret expired: only the new one signs.
        let header = cache.get("sub", [sealed_new.as_str()].into_iter(), None, open).unwrap().header("m", 1, b"x");
        assert!(!verify(&header, &old, "m", 1, b"x") && verify(&header, &new, "m", 1, b"x"));
        // An Ed25519 seed added later is part of what is compared.
        let seed = new_ed25519_seed();
        let header = cache
            .get("sub", [sealed_new.as_str()].into_iter(), Some(&format!("sealed:{seed}")), open)
            .unwrap()
            .header("m", 1, b"x");
        assert!(verify(&header, &public_key(&seed).unwrap(), "m", 1, b"x"));
        assert_eq!(opened.get(), 1 + 2 + 1 + 2);
        assert!(cache.get("sub", [sealed_old.as_str()].into_iter(), None, |_| Err::<String, _>("wrong key")).is_err());
    }
}
