//! Parsing JetStream ack subjects, so Herald only ever acknowledges to a
//! well-formed ack subject of its own events stream.

use super::event_log::EVENTS_STREAM;

/// A validated ack subject of a consumer on the events stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckSubject {
    subject: String,
    consumer: String,
    stream_sequence: u64,
}

impl AckSubject {
    /// Parses `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<time>.<pending>`
    /// (and the longer form with domain and account hash); every numeric
    /// token must be a number and the stream must be Herald's.
    pub fn parse(subject: &str) -> Option<Self> {
        let tokens: Vec<&str> = subject.split('.').collect();
        let (stream, consumer, numbers) = match tokens.as_slice() {
            ["$JS", "ACK", stream, consumer, rest @ ..] if rest.len() == 5 => (*stream, *consumer, rest),
            ["$JS", "ACK", _domain, _account, stream, consumer, rest @ ..] if rest.len() == 6 => {
                (*stream, *consumer, &rest[..5])
            }
            _ => return None,
        };
        if stream != EVENTS_STREAM || !crate::domain::ids::is_valid_id(consumer) {
            return None;
        }
        let numbers: Option<Vec<u64>> = numbers.iter().map(|t| t.parse::<u64>().ok()).collect();
        let numbers = numbers?;
        Some(AckSubject { subject: subject.to_owned(), consumer: consumer.to_owned(), stream_sequence: numbers[1] })
    }

    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The consumer (durable name) the acknowledgement is for.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// The stream sequence of the acknowledged event.
    pub fn stream_sequence(&self) -> u64 {
        self.stream_sequence
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_ack_subject_forms() {
        let short = AckSubject::parse("$JS.ACK.HERALD_EVENTS.C1.1.42.7.1795449954994532398.0").unwrap();
        assert_eq!((short.consumer(), short.stream_sequence()), ("C1", 42));
        let long = AckSubject::parse("$JS.ACK.hub.ACCHASH.HERALD_EVENTS.C1.2.43.8.1795449954994532398.3.tok").unwrap();
        assert_eq!((long.consumer(), long.stream_sequence()), ("C1", 43));
    }

    #[test]
    fn rejects_foreign_or_malformed_subjects() {
        for bad in [
            "$JS.ACK.OTHER.C1.1.42.7.1.0",
            "$JS.API.STREAM.DELETE.HERALD_EVENTS",
            "$JS.ACK.HERALD_EVENTS.C1.1.x.7.1.0",
            "$JS.ACK.HERALD_EVENTS.*.1.42.7.1.0",
            "$JS.ACK.HERALD_EVENTS.C1.1.42.7.1",
            "herald.ev.res.P._._._.created",
            "",
        ] {
            assert!(AckSubject::parse(bad).is_none(), "{bad}");
        }
    }
}
