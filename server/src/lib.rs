//! Herald: real-time notifications — Kafka in, SQLite or PostgreSQL kept,
//! SSE out.
//!
//! A request to send is validated, produced to Kafka (key = recipient id) and
//! acknowledged once the broker has it. A consumer group writes each record
//! into the store exactly once and only then commits its offset; every stored
//! notification is pushed to the recipient's open SSE streams. The Leptos UI
//! and the REST API share one service layer. Early delivery stores and
//! pushes a send this instance produced right after the broker's
//! acknowledgement; the consumer then finds it stored (see `delivery`).
//!
//! One instance runs on a SQLite file with events in process. Several
//! instances share one PostgreSQL database: the consumer group splits the
//! partitions between them, every change is announced to all of them with
//! `LISTEN/NOTIFY` (see `bus`), and the rate limit lives in the database.
//!
//! # Layout
//! - `config`: clap configuration with environment fallbacks.
//! - `auth`: HS256 tokens from the `Authorization` header or the session
//!   cookie (the rules that use them are in `service`).
//! - `error`: [`AppError`](error::AppError) (HTTP answers) and start-up errors.
//! - `kafka`: client settings, topic creation, the producer, the record format.
//! - `acks`: the producer's delivery reports, served on the runtime (no
//!   polling thread between librdkafka and the send awaiting its answer).
//! - `consumer`: the consumer group loop (Kafka → writer).
//! - `pacer`: the consumer fetches only while records wait (pauses its
//!   partitions when caught up).
//! - `delivery`: early delivery and the ledger it shares with the consumer.
//! - `writer`: the one owner of "write, then publish in write order",
//!   used by the consumer, early delivery and every inbox state change.
//! - `directory`: the user directory in the store, with a bounded cache.
//! - `store`: SQLite or PostgreSQL through sqlx (one set of queries),
//!   migrations in `migrations/{sqlite,postgres}`.
//! - `bus`: the event bus trait; in process, or PostgreSQL `LISTEN/NOTIFY`.
//! - `kafka_bus`: the event bus through a Kafka topic (`HERALD_EVENT_BUS`).
//! - `hub`: in-process fan-out to this instance's SSE streams.
//! - `stream`: one SSE stream's state: replay, live, catch-up.
//! - `telemetry`: Prometheus metrics (`/metrics`).
//! - `service`: access rules, send (validated, rate-limited), inbox pages,
//!   read state, subscribe — used by REST, SSE and the UI alike.
//! - `rest` (`extract`, `seed` for the Go tutorial's routes, `api`,
//!   `session`, `ops`), `sse`: HTTP handlers.
//! - `router`: [`app`] builds the router (REST routes registered from their
//!   OpenAPI annotations, see [`api_routes`]) and serves the OpenAPI document.
//! - `csrf`: unsafe requests another site's page makes with the cookie are
//!   refused.
//! - `serve`: accepting connections, with header and idle timeouts and a
//!   connection cap.
//! - this file: the map above, [`AppState`], and [`start`], which wires
//!   everything.

// Leptos views are deeply nested types; the app's page type exceeds the
// default limit when the server computes its layout (seen on clean builds).
#![recursion_limit = "256"]

pub mod acks;
pub mod auth;
pub mod bus;
pub mod config;
pub mod consumer;
pub mod csrf;
pub mod delivery;
pub mod directory;
pub mod error;
pub mod hub;
pub mod kafka;
pub mod kafka_bus;
pub mod keys;
pub mod pacer;
pub mod rest;
pub mod router;
pub mod serve;
pub mod service;
pub mod sse;
pub mod store;
pub mod stream;
pub mod telemetry;
#[doc(hidden)]
pub mod test_support;

/// Entry points for the coverage-guided fuzzers in `server/fuzz` (run with
/// `./scripts/fuzz`); not an API.
#[doc(hidden)]
pub mod fuzzing {
    /// Decode `payload` as the consumer decodes a record value; panics
    /// only when an accepted record breaks a rule.
    pub fn decode_record(payload: &[u8]) {
        crate::consumer::fuzz_decode(payload);
    }

    /// Read `body` as `POST /send` reads a body of `content_type`.
    pub fn read_send_form(content_type: &str, body: &[u8]) {
        crate::rest::seed::fuzz_send_form(content_type, body);
    }
}
pub mod writer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use bus::{EventBus, LocalBus, PostgresBus};
pub use config::Config;
use config::EventBusKind;
use delivery::{Early, Ledger};
use directory::Directory;
use error::StartError;
use hub::Hub;
use kafka::Producer;
use kafka_bus::KafkaBus;
use pacer::Pacer;
pub use router::{api_routes, app, ops_app, ApiDoc};
use service::{Limits, RateLimit, Service};
use store::Store;
use writer::Writer;

/// State shared by all handlers: one `Arc`, because axum clones the state
/// for every request (a clone of the fields themselves, Leptos' options
/// among them, was a measurable part of a send's cost).
#[derive(Clone)]
pub struct AppState(Arc<Settings>);

impl AppState {
    /// Share `settings` with every handler.
    pub fn new(settings: Settings) -> Self {
        Self(Arc::new(settings))
    }
}

impl std::ops::Deref for AppState {
    type Target = Settings;

    fn deref(&self) -> &Settings {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Settings {
    /// The service layer.
    pub service: Service,
    /// Leptos site settings (output name, site root, address).
    pub leptos_options: LeptosOptions,
    /// Cancelled at shutdown; ends SSE streams.
    pub shutdown: CancellationToken,
    /// Interval of SSE keep-alive comments.
    pub keepalive: Duration,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Other sites allowed to make unsafe requests with the cookie.
    pub allowed_origins: csrf::AllowedOrigins,
    /// Time limit for every answer to start.
    pub request_timeout: Duration,
    /// Readiness and metrics are served on `HERALD_OPS_ADDR`, not here.
    pub ops_apart: bool,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

impl FromRef<AppState> for Service {
    fn from_ref(state: &AppState) -> Self {
        state.service.clone()
    }
}

/// Leptos options from cargo-leptos' environment, or defaults matching the
/// workspace metadata when the binary runs on its own (tests, `cargo run`).
pub fn leptos_options(site_addr: SocketAddr) -> LeptosOptions {
    // Only ask leptos for its configuration when cargo-leptos set it up;
    // otherwise it prints a warning meant for misconfigured builds.
    let from_env = std::env::var_os("LEPTOS_OUTPUT_NAME")
        .and_then(|_| leptos::config::get_configuration(None).ok())
        .map(|c| c.leptos_options);
    let mut options =
        from_env.unwrap_or_else(|| LeptosOptions::builder().output_name("herald").build());
    if options.output_name.is_empty() {
        options.output_name = "herald".into();
    }
    options.site_addr = site_addr;
    options
}

/// Longest wait at shutdown for the background tasks (listeners, early
/// delivery, the limiter's upkeep) once the consumer has left its group.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// A running Herald: HTTP server, consumer group, producer.
pub struct Running {
    /// Where HTTP is served.
    pub addr: SocketAddr,
    /// Where readiness and metrics are served, when apart
    /// (`HERALD_OPS_ADDR`).
    pub ops_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    /// Stop gracefully: stop accepting, end SSE streams, commit consumed
    /// offsets, leave the group, flush the producer, close the store.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.wait().await;
    }

    /// The token that stops this instance when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Wait until the instance stopped.
    pub async fn wait(self) {
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "server task failed");
        }
    }
}

/// Open the store, make sure the topic exists, start the consumer group and
/// serve HTTP on `listener`.
pub async fn start(
    cfg: Config,
    listener: TcpListener,
    leptos_options: LeptosOptions,
) -> Result<Running, StartError> {
    // Settings first: a bad secret stops Herald before it touches anything.
    let auth = auth::Auth::new(&cfg)?;
    if cfg.max_in_flight > 1 && !cfg.kafka_idempotence {
        // A retried request could then land after the one sent behind it,
        // and a user's notifications would be stored out of order.
        return Err(StartError::Config(
            "HERALD_MAX_IN_FLIGHT above 1 needs HERALD_KAFKA_IDEMPOTENCE=true \
             (without it a retried batch can overtake the next one)"
                .into(),
        ));
    }
    let store = Store::open(&cfg.database_url).await?;
    kafka::ensure_topics(&cfg).await?;
    let producer = Producer::new(&cfg)?;
    let directory = Directory::new(store.clone(), Duration::from_millis(cfg.directory_cache_ms));
    let hub = Hub::default();
    let shutdown = CancellationToken::new();
    // Every background task, so shutdown can wait for all of them to stop
    // before the store closes under them.
    let tasks = TaskTracker::new();
    // Events in process with SQLite; through PostgreSQL's LISTEN/NOTIFY when
    // the store is shared, so every instance's streams hear every change.
    // (Or through a Kafka topic, when asked: see `kafka_bus`.)
    let bus: Arc<dyn EventBus> = match (store.is_shared(), cfg.event_bus) {
        (false, _) => Arc::new(LocalBus(hub.clone())),
        (true, EventBusKind::Postgres) => {
            let listen = bus::listen(
                cfg.database_url.clone(),
                store.clone(),
                hub.clone(),
                shutdown.clone(),
            );
            tasks.spawn(listen);
            Arc::new(PostgresBus)
        }
        (true, EventBusKind::Kafka) => {
            let consumer = kafka_bus::subscribe(&cfg).await?;
            let listen = kafka_bus::listen(consumer, store.clone(), hub.clone(), shutdown.clone());
            tasks.spawn(listen);
            Arc::new(KafkaBus::new(&cfg)?)
        }
    };
    let writer = Writer::new(store.clone(), bus);
    let ledger = Ledger::default();
    let early = cfg.early_delivery.then(|| {
        let (early, task) = Early::new(
            writer.clone(),
            ledger.clone(),
            producer.demand(),
            hub.clone(),
            shutdown.clone(),
        );
        tasks.spawn(task);
        early
    });
    let service = Service::new(
        directory.clone(),
        cfg.auto_provision,
        writer.clone(),
        producer.clone(),
        hub.clone(),
        auth,
        Limits {
            rate: RateLimit {
                burst: cfg.rate_limit_burst,
                per_second: cfg.rate_limit_per_sec,
            },
            key_rate: RateLimit {
                burst: cfg.key_rate_limit_burst,
                per_second: cfg.key_rate_limit_per_sec,
            },
            idempotency_ttl: Duration::from_secs(cfg.idempotency_ttl_secs.max(1)),
            streams: hub::StreamLimits {
                per_user: cfg.max_streams_per_user,
                total: cfg.max_streams,
            },
        },
        early,
    );

    telemetry::install();
    let consumer = consumer::create(&cfg, ledger.clone(), producer.demand())?;
    let pacer = Pacer::new(
        producer.demand(),
        ledger.clone(),
        &cfg.topic,
        Duration::from_millis(cfg.idle_probe_ms),
        Duration::from_millis(cfg.fetch_wait_ms),
    );
    let targets = consumer::Targets {
        writer,
        ledger,
        dlq: cfg.dlq_topic(),
        producer: producer.clone(),
        directory,
        services: consumer::ServiceNames::default(),
        topic: cfg.topic.clone(),
        group: cfg.group_id.clone(),
    };
    let consumer_task = tasks.spawn(consumer::run(consumer, targets, pacer, shutdown.clone()));

    // Keep the rate limiters' memory to recent senders, and the stored
    // Idempotency-Keys to their time to live.
    let pruning = service.clone();
    let prune_stop = shutdown.clone();
    tasks.spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = prune_stop.cancelled() => break,
                _ = every.tick() => pruning.prune_expired().await,
            }
        }
    });

    let addr = listener.local_addr()?;
    let ops_listener = match cfg.ops_addr {
        Some(at) => Some(TcpListener::bind(at).await?),
        None => None,
    };
    let ops_addr = ops_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    let state = AppState::new(Settings {
        max_body_bytes: cfg.max_body_bytes,
        allowed_origins: csrf::AllowedOrigins::new(&cfg.allowed_origins),
        request_timeout: Duration::from_millis(cfg.request_timeout_ms.max(1)),
        ops_apart: ops_listener.is_some(),
        service,
        leptos_options,
        shutdown: shutdown.clone(),
        keepalive: Duration::from_secs(cfg.sse_keepalive_secs.max(1)),
    });
    let limits = serve::ConnLimits {
        header_read_timeout: Duration::from_millis(cfg.header_read_timeout_ms.max(1)),
        max_connections: cfg.max_connections,
    };
    if let Some(ops_listener) = ops_listener {
        tracing::info!(addr = ?ops_addr, "readiness and metrics served here only");
        let ops = ops_app(state.clone());
        tasks.spawn(serve::serve(ops_listener, ops, limits, shutdown.clone()));
    }
    let router = app(state);
    let serve_shutdown = shutdown.clone();
    let task = tokio::spawn(async move {
        serve::serve(listener, router, limits, serve_shutdown.clone()).await;
        // Also stop the consumer if serving ended on its own.
        serve_shutdown.cancel();
        if let Err(e) = consumer_task.await {
            tracing::error!(error = %e, "consumer task failed");
        }
        tasks.close();
        if tokio::time::timeout(SHUTDOWN_WAIT, tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = tasks.len(),
                "background tasks still running at shutdown"
            );
        }
        // librdkafka's flush blocks its thread until the queue drains.
        let flushing = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(5)));
        if let Err(e) = flushing.await {
            tracing::error!(error = %e, "producer flush failed");
        }
        store.close().await;
        tracing::info!("stopped");
    });
    Ok(Running {
        addr,
        ops_addr,
        shutdown,
        task,
    })
}
