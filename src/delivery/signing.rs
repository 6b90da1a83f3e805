//! Standard Webhooks signatures: `webhook-signature` = space-separated
//! `v1,<base64 HMAC-SHA256>` per active secret over `{id}.{timestamp}.{body}`
//! with the base64-decoded `whsec_` secret, plus an optional asymmetric
//! `v1a,<base64 Ed25519 signature>` over the same content.

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
    let key = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    let key = STANDARD.decode(key).unwrap_or_else(|_| key.as_bytes().to_vec());
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC accepts keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `v1a,...` Ed25519 signature of one message.
pub fn sign_v1a(seed: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = signing_key(seed)?;
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    Some(format!("v1a,{}", STANDARD.encode(key.sign(&content).to_bytes())))
}

/// The full `webhook-signature` header value.
pub fn signature_header(secrets: &[&str], ed25519_seed: Option<&str>, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut parts: Vec<String> = secrets.iter().map(|s| sign_v1(s, id, timestamp, body)).collect();
    if let Some(sig) = ed25519_seed.and_then(|seed| sign_v1a(seed, id, timestamp, body)) {
        parts.push(sig);
    }
    parts.join(" ")
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
        let header = signature_header(&[&new, &old], None, "msg_1", 1700000000, b"{}");
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
        let header = signature_header(&[&new_secret()], Some(&seed), "msg_2", 1700000000, b"body");
        assert!(header.contains(" v1a,"));
        assert!(verify(&header, &public, "msg_2", 1700000000, b"body"));
        assert!(!verify(&header, &public, "msg_2", 1700000000, b"other"));
        let other = public_key(&new_ed25519_seed()).unwrap();
        assert!(!verify(&header, &other, "msg_2", 1700000000, b"body"));
    }
}
