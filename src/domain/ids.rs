//! Identifier generation and validation. Every id must be usable as one NATS
//! subject token and one KV key segment.

use std::sync::Mutex;

use crate::error::{Error, Result};

/// Longest accepted id.
pub const MAX_ID_LEN: usize = 64;

/// A fresh, time-ordered, subject-safe id (a ULID). Ids made by one process
/// are strictly increasing, even within one millisecond.
pub fn new_id() -> String {
    static GENERATOR: Mutex<ulid::Generator> = Mutex::new(ulid::Generator::new());
    let next = GENERATOR.lock().map_err(|_| ()).and_then(|mut g| g.generate().map_err(|_| ()));
    next.unwrap_or_else(|()| ulid::Ulid::new()).to_string()
}

/// True when `id` is 1 to 64 ASCII letters, digits, `-` or `_`, starting with
/// a letter or digit. Such a string is one NATS subject token and never the
/// `_` padding token of the event subjects.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks an id from a request, naming `field` when it is malformed or empty.
pub fn check_id(field: &str, id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    if !is_valid_id(id) {
        return Err(Error::invalid(
            field,
            format!("must be 1 to {MAX_ID_LEN} letters, digits, '-' or '_' starting with a letter or digit"),
        ));
    }
    Ok(())
}

/// Checks a display name: 1 to `max` characters, no control characters.
pub fn check_name(field: &str, name: &str, max: usize) -> Result<()> {
    let len = name.chars().count();
    if name.trim().is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    if len > max {
        return Err(Error::invalid(field, format!("is {len} characters; the limit is {max}")));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let a = new_id();
        let b = new_id();
        assert!(is_valid_id(&a), "{a}");
        assert!(a < b, "ids increase: {a} then {b}");
    }

    #[test]
    fn ids_with_subject_metacharacters_are_rejected() {
        for bad in ["", "_", "-a", "a.b", "a*", "a>", "a b", "ä", &"x".repeat(65)] {
            assert!(!is_valid_id(bad), "{bad:?} should be invalid");
        }
        for good in ["admin", "01HZY3", "a_b-c", &"x".repeat(64)] {
            assert!(is_valid_id(good), "{good:?} should be valid");
        }
    }

    #[test]
    fn check_id_names_the_field() {
        let err = check_id("resource_id", "a.b").unwrap_err().to_string();
        assert!(err.contains("resource_id"), "{err}");
    }

    #[test]
    fn names_are_bounded() {
        assert!(check_name("name", "ok", 3).is_ok());
        assert!(check_name("name", "long", 3).unwrap_err().to_string().contains("limit is 3"));
        assert!(check_name("name", "  ", 3).is_err());
        assert!(check_name("name", "a\nb", 3).is_err());
    }
}
