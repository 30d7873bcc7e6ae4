//! Command-line and environment configuration (clap, env fallbacks).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

/// Everything Herald can be told at start. Each flag has an environment
/// variable; ecosystem names are used where they exist.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "herald",
    version,
    about = "Real-time notifications: Kafka in, SQLite or PostgreSQL kept, SSE out"
)]
pub struct Config {
    /// Kafka bootstrap servers, comma separated.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub kafka_brokers: String,

    /// Topic notifications are produced to and consumed from.
    #[arg(long, env = "HERALD_TOPIC", default_value = "notifications")]
    pub topic: String,

    /// Dead-letter topic for records that cannot be stored (default:
    /// `<topic>.dlq`).
    #[arg(long, env = "HERALD_DLQ_TOPIC")]
    pub dlq: Option<String>,

    /// Partitions of the topic when Herald creates it.
    #[arg(long, env = "HERALD_PARTITIONS", default_value_t = 3)]
    pub partitions: i32,

    /// Replication factor of the topic when Herald creates it.
    #[arg(long, env = "HERALD_REPLICATION_FACTOR", default_value_t = 1)]
    pub replication_factor: i32,

    /// How clients talk to the brokers: `plaintext` (librdkafka's default),
    /// `ssl`, `sasl_plaintext` or `sasl_ssl`.
    #[arg(long, env = "KAFKA_SECURITY_PROTOCOL")]
    pub kafka_security_protocol: Option<String>,

    /// SASL mechanism: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    #[arg(long, env = "KAFKA_SASL_MECHANISM")]
    pub kafka_sasl_mechanism: Option<String>,

    /// SASL user name.
    #[arg(long, env = "KAFKA_SASL_USERNAME")]
    pub kafka_sasl_username: Option<String>,

    /// SASL password (prefer the environment to the command line).
    #[arg(long, env = "KAFKA_SASL_PASSWORD", hide_env_values = true)]
    pub kafka_sasl_password: Option<String>,

    /// A PEM file of the CA certificates that sign the brokers' TLS
    /// certificates (unset: the system's).
    #[arg(long, env = "KAFKA_SSL_CA_LOCATION")]
    pub kafka_ssl_ca_location: Option<std::path::PathBuf>,

    /// The largest record Herald produces, in bytes (librdkafka's
    /// `message.max.bytes`, 1,000 to 1,000,000,000): set it to the broker's
    /// limit. A dead letter larger than this is sent truncated (or skipped
    /// when even the truncated copy does not fit).
    #[arg(long, env = "KAFKA_MESSAGE_MAX_BYTES", default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u32).range(1_000..=1_000_000_000))]
    pub kafka_message_max_bytes: u32,

    /// librdkafka debug contexts (e.g. `cgrp,topic,fetch`), for diagnosis.
    #[arg(long, env = "HERALD_KAFKA_DEBUG")]
    pub kafka_debug: Option<String>,

    /// Longest time the broker may hold a fetch when no record is waiting
    /// (`fetch.wait.max.ms`). tansu holds every fetch this long, records or
    /// not, and serves one request at a time: a long wait makes big
    /// fetches that hold up the produce requests behind them (send p99 89
    /// ms at 250, 39 ms at 50), a short one costs the broker a few
    /// milliseconds of CPU per fetch (10 ms: more CPU per send than 50, for
    /// the same p99). While idle the consumer pauses instead of fetching
    /// (`HERALD_IDLE_PROBE_MS`).
    #[arg(long, env = "HERALD_FETCH_WAIT_MS", default_value_t = 50)]
    pub fetch_wait_ms: u64,

    /// While nothing waits on its partitions, the consumer pauses them and
    /// looks at their end offsets this often for records of other
    /// producers (a record this instance produces resumes it at once).
    /// 0: never pause, for brokers that answer a fetch as soon as records
    /// arrive (Apache Kafka).
    #[arg(long, env = "HERALD_IDLE_PROBE_MS", default_value_t = 250)]
    pub idle_probe_ms: u64,

    /// How long the producer gathers records into one produce request
    /// (`linger.ms`). Longer means fewer, larger requests for the broker and
    /// a longer wait for each send's acknowledgement.
    #[arg(long, env = "HERALD_LINGER_MS", default_value_t = 2.0)]
    pub linger_ms: f64,

    /// Produce requests the producer keeps in flight per broker connection
    /// (`max.in.flight.requests.per.connection`, 1-5; above 1 only with
    /// `HERALD_KAFKA_IDEMPOTENCE=true`, which keeps retries in order).
    /// 1 lets batches grow while the broker is slow to acknowledge: with
    /// more, librdkafka's idempotent broker thread spins while a
    /// partition's batches are in flight (measured in docs/bench/).
    #[arg(long, env = "HERALD_MAX_IN_FLIGHT", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=5))]
    pub max_in_flight: u8,

    /// librdkafka's idempotent producer (`enable.idempotence`): the broker
    /// drops a batch it already has when a retry resends it. Off by
    /// default: Herald stores each notification once by its id whatever
    /// the topic holds (a retried batch's copies are found stored), and
    /// with one request in flight a retry cannot overtake the next batch.
    /// On, librdkafka 2.12 compares a partition's in-flight *messages* with
    /// its limit of five *requests* and its broker thread spins until the
    /// acknowledgement (measured in docs/bench/cost.md: 36 poll calls per
    /// send, Herald's CPU per send +60 % when sends go to one partition).
    /// Switch it on when other readers of the topic must never see a
    /// retried copy. Above one request in flight it must be on.
    #[arg(long, env = "HERALD_KAFKA_IDEMPOTENCE", default_value_t = false, action = clap::ArgAction::Set)]
    pub kafka_idempotence: bool,

    /// Store and push a notification as soon as the broker acknowledged it,
    /// from the instance that produced it: with SQLite when someone there
    /// watches the recipient's inbox and that instance's consumer owns its
    /// partition, with PostgreSQL always (the watcher may be on any
    /// instance). The consumer group still stores every record
    /// (idempotently); `false` leaves storing to it alone.
    #[arg(long, env = "HERALD_EARLY_DELIVERY", default_value_t = true, action = clap::ArgAction::Set)]
    pub early_delivery: bool,

    /// How instances sharing a PostgreSQL store tell each other about
    /// written changes: `postgres` (LISTEN/NOTIFY inside the writing
    /// transaction; the default, see docs/scale-out.md) or `kafka` (a topic
    /// `<topic>.events` every instance reads; for deployments whose
    /// connection pooler cannot pass LISTEN through). With SQLite events
    /// stay in process and this is ignored.
    #[arg(long, env = "HERALD_EVENT_BUS", value_enum, default_value_t = EventBusKind::Postgres)]
    pub event_bus: EventBusKind,

    /// Consumer group that writes notifications into the store.
    #[arg(
        long,
        env = "HERALD_CONSUMER_GROUP",
        default_value = "notifications-group"
    )]
    pub group_id: String,

    /// The store: `sqlite:PATH` (one instance; the file and its directory are
    /// created if missing) or `postgres://…` (shared by several instances).
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/herald.db")]
    pub database_url: String,

    /// Address to serve HTTP on (cargo-leptos sets `LEPTOS_SITE_ADDR`).
    #[arg(long, env = "LEPTOS_SITE_ADDR", default_value = "127.0.0.1:3000")]
    pub site_addr: SocketAddr,

    /// Serve readiness (`/api/ready`) and metrics (`/metrics`) on this
    /// address only (an internal network), not on the public one. Unset:
    /// both are public routes.
    #[arg(long, env = "HERALD_OPS_ADDR")]
    pub ops_addr: Option<SocketAddr>,

    /// Upper bound for a send, from request to broker acknowledgement; after
    /// it the client gets 503.
    #[arg(long, env = "HERALD_SEND_TIMEOUT_MS", default_value_t = 5_000)]
    pub send_timeout_ms: u64,

    /// How long start-up waits for the broker before giving up.
    #[arg(long, env = "HERALD_STARTUP_TIMEOUT_MS", default_value_t = 30_000)]
    pub startup_timeout_ms: u64,

    /// Log format: `text` for people, `json` for log shippers.
    #[arg(long, env = "HERALD_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Interval of SSE keep-alive comments, in seconds.
    #[arg(long, env = "HERALD_SSE_KEEPALIVE_SECS", default_value_t = 15)]
    pub sse_keepalive_secs: u64,

    /// `on`: every inbox route needs a token of its owner. `off`: every
    /// route is open to anyone (local experiments only; logged loudly).
    #[arg(long, env = "HERALD_AUTH", value_enum, default_value = "on")]
    pub auth: AuthMode,

    /// HS256 secret that signs and verifies tokens, at least 32 bytes (a
    /// shorter one can be guessed offline from a single token). Unset: a
    /// random one per start (tokens die with the process), with a warning.
    #[arg(long, env = "HERALD_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// A file holding the token secret (one line), instead of
    /// `HERALD_JWT_SECRET`: keeps it out of the environment and the command
    /// line.
    #[arg(long, env = "HERALD_JWT_SECRET_FILE", conflicts_with = "jwt_secret")]
    pub jwt_secret_file: Option<std::path::PathBuf>,

    /// Lifetime of the tokens the demo sign-in mints, in seconds.
    #[arg(long, env = "HERALD_TOKEN_TTL_SECS", default_value_t = 12 * 3600)]
    pub token_ttl_secs: u64,

    /// Expected `iss` claim of every token (and the one demo tokens carry);
    /// unset: not checked.
    #[arg(long, env = "HERALD_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Expected `aud` claim of every token (and the one demo tokens carry);
    /// unset: not checked.
    #[arg(long, env = "HERALD_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Allow the demo sign-in (`POST /api/session`: pick a demo user, get
    /// a token, no password). Off by default; `./scripts/dev` and the tests
    /// switch it on. Production tokens come from the operator's identity
    /// system.
    #[arg(long, env = "HERALD_DEMO_SIGN_IN", default_value_t = false, action = clap::ArgAction::Set)]
    pub demo_sign_in: bool,

    /// Let the demo sign-in or `HERALD_AUTH=off` serve on an address other
    /// than loopback. Both let anyone act as anyone, so without this Herald
    /// refuses to start that way.
    #[arg(long, env = "HERALD_ALLOW_INSECURE_PUBLIC", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_insecure_public: bool,

    /// Other sites (`scheme://host[:port]`, comma-separated) whose pages
    /// may make unsafe requests with the session cookie. This site itself
    /// always may; requests with a bearer token are never checked.
    #[arg(long, env = "HERALD_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Whether the session cookie is `Secure` (and then named
    /// `__Host-herald_session`): `auto` when the request came over HTTPS as
    /// a proxy in front says (`X-Forwarded-Proto: https` or `Forwarded:
    /// proto=https`), `true` always, `false` never.
    #[arg(long, env = "HERALD_COOKIE_SECURE", value_enum, default_value = "auto")]
    pub cookie_secure: CookieSecure,

    /// Sends a sender may burst before the steady rate applies; 0 switches
    /// rate limiting off (benchmarks).
    #[arg(long, env = "HERALD_RATE_LIMIT_BURST", default_value_t = 60)]
    pub rate_limit_burst: u32,

    /// Steady sends per second allowed per sender after the burst (may be
    /// fractional: 0.5 is one every two seconds).
    #[arg(long, env = "HERALD_RATE_LIMIT_PER_SEC", default_value_t = 1.0)]
    pub rate_limit_per_sec: f64,

    /// Sends an API key may burst before its steady rate applies; 0
    /// switches the key limit off.
    #[arg(long, env = "HERALD_KEY_RATE_LIMIT_BURST", default_value_t = 1_000)]
    pub key_rate_limit_burst: u32,

    /// Steady sends per second allowed per API key after its burst.
    #[arg(long, env = "HERALD_KEY_RATE_LIMIT_PER_SEC", default_value_t = 100.0)]
    pub key_rate_limit_per_sec: f64,

    /// How long an `Idempotency-Key` stays bound to its first request, in
    /// seconds: a retry within it answers the same ids and stores nothing
    /// twice; another request with the key is 422.
    #[arg(long, env = "HERALD_IDEMPOTENCY_TTL_SECS", default_value_t = 86_400)]
    pub idempotency_ttl_secs: u64,

    /// Create the user a valid token names (`sub`) on its first use when
    /// the directory does not know them, named from the token's `name`
    /// claim. Off: such tokens get 404 for their inbox until the user is
    /// put into the directory (`PUT /api/users/{id}`).
    #[arg(long, env = "HERALD_AUTO_PROVISION", default_value_t = false, action = clap::ArgAction::Set)]
    pub auto_provision: bool,

    /// How long this instance reuses a user's directory entry, in
    /// milliseconds: a rename or deactivation made through another
    /// instance takes effect here within this time (at once on the instance
    /// that made it). 0 reads the store for every lookup.
    #[arg(long, env = "HERALD_DIRECTORY_CACHE_MS", default_value_t = 1_000)]
    pub directory_cache_ms: u64,

    /// `keys` manages API keys; without a command Herald serves.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Most open event streams per user on one instance (0: no limit); one
    /// more gets 429 with `Retry-After`.
    #[arg(long, env = "HERALD_MAX_STREAMS_PER_USER", default_value_t = 32)]
    pub max_streams_per_user: usize,

    /// Most open event streams on one instance in all (0: no limit). At the
    /// measured ~19 KB per stream, 20,000 hold about 400 MB.
    #[arg(long, env = "HERALD_MAX_STREAMS", default_value_t = 20_000)]
    pub max_streams: usize,

    /// Time a client has to send its request headers, and the longest an
    /// idle keep-alive connection stays open, in milliseconds.
    #[arg(long, env = "HERALD_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,

    /// Time limit for every answer to start (the body read included), in
    /// milliseconds; past it the answer is 503. An event stream's events
    /// are not timed, only its opening.
    #[arg(long, env = "HERALD_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,

    /// Most connections served at once (event streams included); beyond,
    /// new connections wait to be accepted. Keep it above
    /// `HERALD_MAX_STREAMS`, and the process's file limit above it.
    #[arg(long, env = "HERALD_MAX_CONNECTIONS", default_value_t = 25_000)]
    pub max_connections: usize,

    /// Largest request body accepted, in bytes (413 above).
    #[arg(long, env = "HERALD_MAX_BODY_BYTES", default_value_t = 16 * 1024)]
    pub max_body_bytes: usize,
}

/// Which event bus instances sharing a store use (see [`Config::event_bus`]).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventBusKind {
    /// PostgreSQL `LISTEN/NOTIFY`.
    Postgres,
    /// A Kafka topic of committed changes.
    Kafka,
}

/// What the binary does besides serving.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum Command {
    /// Create, list or revoke API keys (in the store of `DATABASE_URL`).
    #[command(subcommand)]
    Keys(crate::keys::KeysCommand),
}

/// When the session cookie is `Secure` (see [`Config::cookie_secure`]).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieSecure {
    /// When the request came over HTTPS.
    Auto,
    /// Always.
    #[value(name = "true")]
    Always,
    /// Never.
    #[value(name = "false")]
    Never,
}

/// Whether routes need tokens.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Tokens required; owners only.
    On,
    /// Everything open.
    Off,
}

/// How log lines are written.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Config {
    /// Defaults for everything, as if no flag and no variable were given.
    /// Tests start from this and override what they need.
    pub fn defaults() -> Self {
        Self::parse_from(["herald"])
    }

    /// The topic of committed changes (`HERALD_EVENT_BUS=kafka`).
    pub fn events_topic(&self) -> String {
        format!("{}.events", self.topic)
    }

    /// The dead-letter topic's name.
    pub fn dlq_topic(&self) -> String {
        self.dlq
            .clone()
            .unwrap_or_else(|| format!("{}.dlq", self.topic))
    }

    /// [`Self::send_timeout_ms`] as a duration.
    pub fn send_timeout(&self) -> Duration {
        Duration::from_millis(self.send_timeout_ms)
    }
}
