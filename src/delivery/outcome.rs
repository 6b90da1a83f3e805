//! What a delivery attempt's result means: delivered, retry after a delay,
//! give up, or disable the subscription. Pure; the worker maps these to
//! ack / nak-with-delay / term in one place.

use std::time::Duration;

use rand::Rng as _;

/// The result of one HTTP attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// The receiver answered with this status (and maybe `Retry-After` seconds).
    Status { code: u16, retry_after: Option<Duration> },
    /// No answer: connection refused, reset, timed out, TLS failure, refused by the network guard.
    Network { retryable: bool },
}

/// What to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Delivered,
    Retry(Duration),
    /// Not retryable (a 4xx other than 408/410/429, or a refused destination).
    Fail,
    /// Retryable, but the schedule is used up.
    Exhausted,
    /// 410 Gone: disable the subscription.
    Disable,
}

/// The retry policy.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Delay before attempt n+1 after attempt n failed (n = 1 is the first).
    pub schedule: Vec<Duration>,
    /// Relative jitter, e.g. 0.2 for +-20%.
    pub jitter: f64,
    /// Largest `Retry-After` honoured; longer ones are cut to this.
    pub max_retry_after: Duration,
}

impl RetryPolicy {
    /// Decides what follows attempt number `attempt` (1-based).
    pub fn decide(&self, attempt: u32, response: &Response) -> Decision {
        let retry_after = match response {
            Response::Status { code: 200..=299, .. } => return Decision::Delivered,
            Response::Status { code: 410, .. } => return Decision::Disable,
            Response::Status { code: 408 | 429 | 500..=599, retry_after } => *retry_after,
            Response::Status { .. } => return Decision::Fail,
            Response::Network { retryable: false } => return Decision::Fail,
            Response::Network { retryable: true } => None,
        };
        let Some(base) = self.schedule.get(attempt.saturating_sub(1) as usize) else {
            return Decision::Exhausted;
        };
        match retry_after {
            Some(wait) => Decision::Retry(wait.clamp(Duration::from_secs(1), self.max_retry_after)),
            None => Decision::Retry(self.jittered(*base)),
        }
    }

    fn jittered(&self, base: Duration) -> Duration {
        if self.jitter <= 0.0 {
            return base;
        }
        let factor = rand::rng().random_range(1.0 - self.jitter..=1.0 + self.jitter);
        base.mul_f64(factor)
    }
}

/// Parses `Retry-After` as delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate(value.trim())?;
    Some(at.duration_since(now).unwrap_or_default())
}

fn httpdate(value: &str) -> Option<std::time::SystemTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let parsed = time::PrimitiveDateTime::parse(value, &format).ok()?.assume_utc();
    Some(parsed.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            schedule: vec![Duration::from_secs(5), Duration::from_secs(300)],
            jitter: 0.0,
            max_retry_after: Duration::from_secs(3600),
        }
    }

    fn status(code: u16) -> Response {
        Response::Status { code, retry_after: None }
    }

    #[test]
    fn statuses_map_to_decisions() {
        let p = policy();
        assert_eq!(p.decide(1, &status(204)), Decision::Delivered);
        assert_eq!(p.decide(1, &status(410)), Decision::Disable);
        for code in [400, 401, 403, 404, 422] {
            assert_eq!(p.decide(1, &status(code)), Decision::Fail, "{code}");
        }
        for code in [408, 429, 500, 502, 503] {
            assert_eq!(p.decide(1, &status(code)), Decision::Retry(Duration::from_secs(5)), "{code}");
        }
        assert_eq!(p.decide(2, &Response::Network { retryable: true }), Decision::Retry(Duration::from_secs(300)));
        assert_eq!(p.decide(1, &Response::Network { retryable: false }), Decision::Fail);
    }

    #[test]
    fn retries_end_when_the_schedule_is_used_up() {
        assert_eq!(policy().decide(3, &status(500)), Decision::Exhausted);
        assert_eq!(policy().decide(3, &status(200)), Decision::Delivered);
    }

    #[test]
    fn retry_after_is_honoured_within_bounds() {
        let p = policy();
        let with = |secs| Response::Status { code: 429, retry_after: Some(Duration::from_secs(secs)) };
        assert_eq!(p.decide(1, &with(42)), Decision::Retry(Duration::from_secs(42)));
        assert_eq!(p.decide(1, &with(0)), Decision::Retry(Duration::from_secs(1)));
        assert_eq!(p.decide(1, &with(99_999)), Decision::Retry(Duration::from_secs(3600)));
    }

    #[test]
    fn jitter_stays_within_its_band() {
        let p = RetryPolicy { jitter: 0.2, ..policy() };
        for _ in 0..100 {
            let Decision::Retry(d) = p.decide(1, &status(500)) else { panic!() };
            assert!(d >= Duration::from_secs(4) && d <= Duration::from_secs(6), "{d:?}");
        }
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:29:00 GMT", now), Some(Duration::from_secs(60)));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
