//! Prometheus metrics through the `metrics` facade.
//!
//! Series (all prefixed `herald_`): `sends_total{outcome}`, `produce_seconds`,
//! `consumed_records_total`, `dead_letters_total{reason}`,
//! `duplicate_records_total`, `store_write_seconds{path}`,
//! `store_batch_size{path}`, `early_stored_total`,
//! `early_skipped_total{reason}`, `consumer_lag{topic,partition}`,
//! `sse_connections`, `sse_events_total{type}`, `sse_lagged_events_total`.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Install the process-wide recorder (once; later calls are no-ops, so
/// several instances in one test process share it).
pub fn install() {
    HANDLE.get_or_init(|| match PrometheusBuilder::new().install_recorder() {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::warn!(error = %e, "metrics recorder not installed");
            None
        }
    });
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
