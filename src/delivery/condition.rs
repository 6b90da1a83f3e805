//! Payload conditions: an RFC 9535 JSONPath filter expression written with
//! `$` for the payload, e.g. `$.status == 'FAILED' && $.attempts > 2`. It is
//! evaluated as the RFC 9535 query `$[?<expression with @ for $>]` over a
//! one-element array holding the payload, so every RFC 9535 comparison,
//! logical operator and function works.

use serde_json::Value;
use serde_json_path::JsonPath;

use crate::error::{Error, Result};

/// Longest condition.
pub const MAX_CONDITION_LEN: usize = 1024;

/// A compiled payload condition.
#[derive(Debug, Clone)]
pub struct Condition {
    path: JsonPath,
}

impl Condition {
    /// Compiles `expression`, naming `field` when it is not valid.
    pub fn parse(field: &str, expression: &str) -> Result<Self> {
        if expression.len() > MAX_CONDITION_LEN {
            return Err(Error::invalid(
                field,
                format!("is {} bytes; the limit is {MAX_CONDITION_LEN}", expression.len()),
            ));
        }
        let query = format!("$[?{}]", rebase(expression));
        let path = JsonPath::parse(&query)
            .map_err(|e| Error::invalid(field, format!("is not a valid JSONPath (RFC 9535) filter expression: {e}")))?;
        Ok(Condition { path })
    }

    /// True when the payload (`None`: no payload, seen as `null`) satisfies it.
    pub fn matches(&self, payload: Option<&Value>) -> bool {
        let wrapped = Value::Array(vec![payload.cloned().unwrap_or(Value::Null)]);
        !self.path.query(&wrapped).is_empty()
    }
}

/// Replaces the root identifier `$` by the current node `@` outside string literals.
fn rebase(expression: &str) -> String {
    let mut out = String::with_capacity(expression.len());
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in expression.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
                out.push(c);
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '$' => out.push('@'),
            None => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(expr: &str, payload: Value) -> bool {
        Condition::parse("condition", expr).unwrap().matches(Some(&payload))
    }

    #[test]
    fn comparisons_select_matching_payloads() {
        assert!(check("$.status == 'FAILED'", json!({"status": "FAILED"})));
        assert!(!check("$.status == 'FAILED'", json!({"status": "OK"})));
        assert!(!check("$.status == 'FAILED'", json!({})));
        assert!(check("$.n > 2 && $.tags[0] == 'gpu'", json!({"n": 3, "tags": ["gpu"]})));
        assert!(check("$.a || $.b", json!({"b": 1})));
        assert!(check("length($.items) >= 2", json!({"items": [1, 2]})));
    }

    #[test]
    fn dollar_signs_inside_strings_stay_literal() {
        assert!(check("$.price == '$5'", json!({"price": "$5"})));
    }

    #[test]
    fn invalid_expressions_name_the_field() {
        let err = Condition::parse("condition", "$.status ==").unwrap_err().to_string();
        assert!(err.contains("condition") && err.contains("JSONPath"), "{err}");
        assert!(Condition::parse("condition", &"x".repeat(1025)).unwrap_err().to_string().contains("limit is 1024"));
    }

    #[test]
    fn a_missing_payload_is_null() {
        let c = Condition::parse("c", "$ == null").unwrap();
        assert!(c.matches(None));
    }
}
