//! Prometheus metrics of one replica. Counters are updated where things
//! happen; gauges that mirror state (open streams, consumers, NATS
//! connection, retry queues) are refreshed when scraped or periodically.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric Herald exports.
pub struct Metrics {
    registry: Registry,
    pub events_emitted: IntCounterVec,
    pub emit_latency: Histogram,
    pub consumers: IntGauge,
    pub events_fetched: IntCounter,
    pub events_streamed: IntCounter,
    pub events_acked: IntCounter,
    pub events_nacked: IntCounter,
    pub open_streams: IntGauge,
    pub reply_rejections: IntCounterVec,
    pub deliveries: IntCounterVec,
    pub delivery_latency: Histogram,
    pub retry_queue_depth: IntGaugeVec,
    pub subscriptions: IntGauge,
    pub nats_connected: IntGauge,
    pub nats_reconnects: IntGauge,
}

const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("herald".into()), None).expect("valid registry prefix");
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry.register(Box::new(g.clone())).expect("unique metric");
            g
        };
        let histogram = |name: &str, help: &str| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()))
                .expect("valid metric");
            registry.register(Box::new(h.clone())).expect("unique metric");
            h
        };
        let retry_queue_depth = IntGaugeVec::new(
            Opts::new("retry_queue_depth", "events delivered or awaiting a retry, per subscription"),
            &["subscription"],
        )
        .expect("valid metric");
        registry.register(Box::new(retry_queue_depth.clone())).expect("unique metric");
        Metrics {
            events_emitted: counter_vec("events_emitted_total", "events stored, by type", &["type"]),
            emit_latency: histogram(
                "emit_duration_seconds",
                "EmitEvent(s) calls from validation to JetStream's acknowledgement",
            ),
            consumers: gauge("consumers", "scoped event consumers (all replicas)"),
            events_fetched: counter("events_fetched_total", "events returned by GetEventMessageBatch"),
            events_streamed: counter("events_streamed_total", "events sent on GetEventMessageStream"),
            events_acked: counter("events_acked_total", "events acknowledged through reply tokens"),
            events_nacked: counter("events_nacked_total", "events negatively acknowledged through reply tokens"),
            open_streams: gauge("open_streams", "event and notification streams open on this replica"),
            reply_rejections: counter_vec("reply_rejections_total", "refused reply tokens, by reason", &["reason"]),
            deliveries: counter_vec(
                "webhook_deliveries_total",
                "webhook delivery attempts, by outcome and HTTP status class",
                &["outcome", "status_class"],
            ),
            delivery_latency: histogram("webhook_delivery_duration_seconds", "webhook request latency"),
            retry_queue_depth,
            subscriptions: gauge("subscriptions", "webhook subscriptions (all replicas)"),
            nats_connected: gauge("nats_connected", "1 while connected to NATS"),
            nats_reconnects: gauge("nats_reconnects", "times the NATS connection was re-established"),
            registry,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("text encoding cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// `2xx`, `4xx`, `5xx` or `network` for a status code.
pub fn status_class(status: Option<u16>) -> &'static str {
    match status {
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(_) => "5xx",
        None => "network",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_in_the_prometheus_text_format() {
        let m = Metrics::new();
        m.events_emitted.with_label_values(&["job.done"]).inc_by(3);
        m.deliveries.with_label_values(&["delivered", status_class(Some(204))]).inc();
        let text = m.render();
        assert!(text.contains(r#"herald_events_emitted_total{type="job.done"} 3"#), "{text}");
        assert!(text.contains(r#"herald_webhook_deliveries_total{outcome="delivered",status_class="2xx"} 1"#));
        assert!(text.contains("# TYPE herald_emit_duration_seconds histogram"));
    }
}
