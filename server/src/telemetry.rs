//! Prometheus metrics through the `metrics` facade.
//!
//! Every series is described (Prometheus `# HELP`) and, where its labels
//! are known in advance, shown at 0 from start, so dashboards and alerts
//! see it before the first event: [`COUNTERS`], [`GAUGES`], [`HISTOGRAMS`].
//! `consumer_lag{topic,partition}` appears once partitions are assigned.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// How often the recorder's histogram samples are drained when nobody
/// scrapes.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// A series: name, help text, and its label with every value it can take
/// (no label: one series).
type Series = (
    &'static str,
    &'static str,
    Option<(&'static str, &'static [&'static str])>,
);

/// Counters Herald exports.
pub const COUNTERS: &[Series] = &[
    (
        "herald_sends_total",
        "Sends answered, by outcome",
        Some(("outcome", &["accepted", "unavailable", "rate_limited"])),
    ),
    (
        "herald_consumed_records_total",
        "Records the consumer group read",
        None,
    ),
    (
        "herald_dead_letters_total",
        "Records sent to the dead-letter topic, by reason",
        Some((
            "reason",
            &[
                "empty",
                "invalid_json",
                "unknown_recipient",
                "unknown_sender",
                "unknown_service",
                "invalid_id",
                "oversize",
                "nul_byte",
                "control_character",
                "empty_message",
                "invalid_fields",
            ],
        )),
    ),
    (
        "herald_dead_letters_truncated_total",
        "Dead letters sent as a truncated copy (the topic refused the whole record)",
        None,
    ),
    (
        "herald_dead_letters_dropped_total",
        "Unusable records skipped because the dead-letter topic refused even a truncated copy",
        None,
    ),
    (
        "herald_duplicate_records_total",
        "Records the consumer found already stored",
        None,
    ),
    (
        "herald_early_stored_total",
        "Notifications stored by early delivery",
        None,
    ),
    (
        "herald_early_skipped_total",
        "Sends left to the consumer group by early delivery, by reason",
        Some((
            "reason",
            &["not_owned", "held_too_long", "queue_full", "store_error"],
        )),
    ),
    (
        "herald_early_held_total",
        "Sends early delivery held until the consumer had read the earlier records of their partition left to it",
        None,
    ),
    (
        "herald_cross_site_refused_total",
        "Unsafe requests refused because another site made them (see csrf)",
        None,
    ),
    (
        "herald_sse_refused_total",
        "Event streams refused for the per-user or per-instance limit",
        None,
    ),
    (
        "herald_readiness_checks_total",
        "Readiness checks of the broker and the store (probes within a second share one)",
        None,
    ),
    (
        "herald_consumer_rejoins_total",
        "Times the consumer left and rejoined a stuck group",
        None,
    ),
    (
        "herald_sse_events_total",
        "Events sent on streams, by type",
        Some(("type", &["notification", "state", "counts"])),
    ),
    (
        "herald_sse_lagged_events_total",
        "Hub events slow streams missed (they caught up from the store)",
        None,
    ),
    (
        "herald_bus_announcements_total",
        "Announcements received from other instances",
        None,
    ),
    (
        "herald_bus_bad_announcements_total",
        "Announcements Herald could not read",
        None,
    ),
    (
        "herald_bus_overflows_total",
        "Times the announcement queue was full (every stream caught up)",
        None,
    ),
    (
        "herald_bus_dropped_total",
        "Announcements the Kafka event bus could not produce",
        None,
    ),
    (
        "herald_bus_reconnects_total",
        "Reconnections of the announcement listener",
        None,
    ),
];

/// Gauges Herald exports.
pub const GAUGES: &[Series] = &[("herald_sse_connections", "Open event streams", None)];

/// Histograms Herald exports (seconds, or notifications per batch).
pub const HISTOGRAMS: &[Series] = &[
    (
        "herald_produce_seconds",
        "Time from produce to the broker's acknowledgement",
        None,
    ),
    (
        "herald_store_write_seconds",
        "Time of one store write, by path",
        Some(("path", &["consumer", "early"])),
    ),
    (
        "herald_store_batch_size",
        "Notifications per store write, by path",
        Some(("path", &["consumer", "early"])),
    ),
];

/// Install the process-wide recorder and describe every series (once;
/// later calls are no-ops, so several instances in one test process share
/// it).
pub fn install() {
    HANDLE.get_or_init(|| match PrometheusBuilder::new().install_recorder() {
        Ok(handle) => {
            describe();
            // Histogram samples pile up in the recorder until a scrape or an
            // upkeep drains them into their summaries; without a scraper
            // memory would grow with every send. (`install_recorder` leaves
            // upkeep to us; a plain thread, as the recorder outlives any one
            // runtime.)
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "metrics upkeep thread not started");
            }
            Some(handle)
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics recorder not installed");
            None
        }
    });
}

/// Help texts for every series, and each series registered (counters and
/// gauges at 0).
fn describe() {
    // Labelled by key name, which only exists once keys are created.
    metrics::describe_counter!(
        "herald_api_key_requests_total",
        "Requests made with each API key (by key name)"
    );
    // Labelled by request type, which librdkafka's statistics name.
    metrics::describe_counter!(
        "herald_kafka_requests_total",
        "Requests Herald's Kafka clients sent to the broker, by client and request type"
    );
    metrics::describe_gauge!(
        "herald_kafka_batch_records",
        "Records per batch (librdkafka's rolling average: produced batches for the producer, fetched ones for the consumer), by client and topic"
    );
    // Labelled by client, stage and statistic; set from librdkafka's
    // statistics once a client has measured something.
    metrics::describe_gauge!(
        "herald_kafka_latency_seconds",
        "Where Kafka requests' time went over the last second, by client, stage (queue: a message waiting in librdkafka for its request; send_buffer: a request waiting for the socket; rtt: the broker's round trip) and stat (p50, p99, max)"
    );
    for (name, help, labels) in COUNTERS {
        metrics::describe_counter!(*name, *help);
        for set in label_sets(labels) {
            metrics::counter!(*name, set.as_slice()).increment(0);
        }
    }
    for (name, help, labels) in GAUGES {
        metrics::describe_gauge!(*name, *help);
        for set in label_sets(labels) {
            metrics::gauge!(*name, set.as_slice()).increment(0.0);
        }
    }
    for (name, help, labels) in HISTOGRAMS {
        metrics::describe_histogram!(*name, *help);
        for set in label_sets(labels) {
            let _ = metrics::histogram!(*name, set.as_slice());
        }
    }
}

/// One label set per known value of the series' label (one empty set when
/// it has none).
fn label_sets(
    labels: &Option<(&'static str, &'static [&'static str])>,
) -> Vec<Vec<(&'static str, &'static str)>> {
    match labels {
        None => vec![vec![]],
        Some((label, values)) => values.iter().map(|v| vec![(*label, *v)]).collect(),
    }
}

/// The current metrics in the text exposition format (empty before
/// [`install`]).
pub fn text() -> String {
    HANDLE
        .get()
        .and_then(Option::as_ref)
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn render() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text(),
    )
}
