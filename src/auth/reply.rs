//! Reply tokens: HMAC-SHA256-signed acknowledgement handles.
//!
//! `reply` = `v1:<owner>:<expires unix seconds>:<JetStream ack subject>`,
//! `salt` = 16 random bytes (base64url), `hmac` = base64url of
//! HMAC-SHA256(key, "herald-reply-v1\n" + reply + "\n" + salt). The ack
//! subject names the consumer and the event (stream and consumer sequence,
//! delivery count), so the signature covers consumer, message, owner and
//! expiry. Verification is constant-time and accepts the previous key during
//! a rotation.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use time::OffsetDateTime;

const VERSION: &str = "v1";
const DOMAIN: &[u8] = b"herald-reply-v1\n";

/// A reply token as handed to clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyToken {
    pub reply: String,
    pub salt: String,
    pub hmac: String,
}

/// What a valid token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyClaims {
    pub owner: String,
    pub expires_at: i64,
    pub ack_subject: String,
}

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Malformed, tampered with, or signed with an unknown key.
    Invalid(&'static str),
    /// Correctly signed but past its expiry.
    Expired,
}

/// The signing key and the one before it.
pub struct ReplyKeys {
    current: SecretString,
    previous: Option<SecretString>,
}

impl std::fmt::Debug for ReplyKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReplyKeys(<redacted>)")
    }
}

impl ReplyKeys {
    pub fn new(current: SecretString, previous: Option<SecretString>) -> Self {
        ReplyKeys { current, previous }
    }

    /// A random key for development mode (tokens die with the process).
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        ReplyKeys { current: SecretString::from(URL_SAFE_NO_PAD.encode(key)), previous: None }
    }

    /// Signs claims with the current key and a fresh salt.
    pub fn sign(&self, claims: &ReplyClaims) -> ReplyToken {
        let reply = format!("{VERSION}:{}:{}:{}", claims.owner, claims.expires_at, claims.ack_subject);
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let salt = URL_SAFE_NO_PAD.encode(salt);
        let tag = mac(self.current.expose_secret(), &reply, &salt).finalize().into_bytes();
        ReplyToken { reply, salt, hmac: URL_SAFE_NO_PAD.encode(tag) }
    }

    /// Checks the signature (current or previous key), then the expiry.
    pub fn verify(&self, token: &ReplyToken, now: OffsetDateTime) -> Result<ReplyClaims, Rejection> {
        let tag = URL_SAFE_NO_PAD.decode(&token.hmac).map_err(|_| Rejection::Invalid("hmac is not base64url"))?;
        let signed_by =
            |key: &SecretString| mac(key.expose_secret(), &token.reply, &token.salt).verify_slice(&tag).is_ok();
        if !signed_by(&self.current) && !self.previous.as_ref().is_some_and(signed_by) {
            return Err(Rejection::Invalid("signature does not match"));
        }
        let claims = parse(&token.reply).ok_or(Rejection::Invalid("malformed reply"))?;
        if claims.expires_at <= now.unix_timestamp() {
            return Err(Rejection::Expired);
        }
        Ok(claims)
    }
}

fn mac(key: &str, reply: &str, salt: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(DOMAIN);
    mac.update(reply.as_bytes());
    mac.update(b"\n");
    mac.update(salt.as_bytes());
    mac
}

fn parse(reply: &str) -> Option<ReplyClaims> {
    let mut parts = reply.splitn(4, ':');
    let (version, owner, expires, subject) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    (version == VERSION).then_some(())?;
    Some(ReplyClaims { owner: owner.to_owned(), expires_at: expires.parse().ok()?, ack_subject: subject.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(current: &str, previous: Option<&str>) -> ReplyKeys {
        ReplyKeys::new(SecretString::from(current), previous.map(SecretString::from))
    }

    fn claims(expires_at: i64) -> ReplyClaims {
        ReplyClaims { owner: "U1".into(), expires_at, ack_subject: "$JS.ACK.HERALD_EVENTS.C1.1.5.5.1.0".into() }
    }

    const NOW: i64 = 1_800_000_000;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(NOW).unwrap()
    }

    #[test]
    fn signed_tokens_verify_and_carry_their_claims() {
        let k = keys("k".repeat(32).as_str(), None);
        let token = k.sign(&claims(NOW + 60));
        assert_eq!(k.verify(&token, now()), Ok(claims(NOW + 60)));
        assert_ne!(k.sign(&claims(NOW + 60)).salt, token.salt, "fresh salt per token");
    }

    #[test]
    fn any_change_to_reply_salt_or_hmac_invalidates_the_token() {
        let k = keys("k".repeat(32).as_str(), None);
        let token = k.sign(&claims(NOW + 60));
        let mut other_owner = token.clone();
        other_owner.reply = other_owner.reply.replace(":U1:", ":U2:");
        let mut other_message = token.clone();
        other_message.reply = other_message.reply.replace(".5.5.", ".6.6.");
        let mut later = token.clone();
        later.reply = later.reply.replace(&(NOW + 60).to_string(), &(NOW + 6000).to_string());
        let mut salt = token.clone();
        salt.salt = "AAAAAAAAAAAAAAAAAAAAAA".into();
        let mut hmac = token.clone();
        hmac.hmac.replace_range(0..2, if hmac.hmac.starts_with("AA") { "BB" } else { "AA" });
        for bad in [other_owner, other_message, later, salt, hmac] {
            assert!(matches!(k.verify(&bad, now()), Err(Rejection::Invalid(_))), "{bad:?}");
        }
        let garbage = ReplyToken { reply: "x".into(), salt: "y".into(), hmac: "%%%".into() };
        assert!(matches!(k.verify(&garbage, now()), Err(Rejection::Invalid(_))));
    }

    #[test]
    fn expired_tokens_are_refused_after_the_signature_check() {
        let k = keys("k".repeat(32).as_str(), None);
        assert_eq!(k.verify(&k.sign(&claims(NOW)), now()), Err(Rejection::Expired));
        assert!(k.verify(&k.sign(&claims(NOW + 1)), now()).is_ok());
    }

    #[test]
    fn the_previous_key_still_verifies_during_rotation() {
        let old = keys("o".repeat(32).as_str(), None);
        let token = old.sign(&claims(NOW + 60));
        let rotated = keys("n".repeat(32).as_str(), Some("o".repeat(32).as_str()));
        assert!(rotated.verify(&token, now()).is_ok());
        let forgotten = keys("n".repeat(32).as_str(), None);
        assert!(matches!(forgotten.verify(&token, now()), Err(Rejection::Invalid(_))));
    }
}
