//! Test harness: a real Herald on port 0 against a real tansu broker.
//!
//! `./scripts/test` starts one shared broker and exports
//! `HERALD_TEST_KAFKA_BROKERS`; every test uses its own topic, consumer group
//! and SQLite file so tests never see each other's data. Tests that need to
//! stop the broker start their own with [`Tansu::start`] (`TANSU_BIN`).
#![allow(dead_code)]

use std::future::Future;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use app::model::Notification;
use futures::StreamExt;
use herald::config::AuthMode;
use herald::{leptos_options, start, Config, Running};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// Broker list of the shared test broker.
pub fn shared_brokers() -> String {
    std::env::var("HERALD_TEST_KAFKA_BROKERS").expect(
        "HERALD_TEST_KAFKA_BROKERS is not set: run the tests through ./scripts/test, \
         which starts a tansu broker for them",
    )
}

/// A configuration isolated from every other test, with auth and rate
/// limits off (these tests are about delivery; `auth.rs` and `inbox.rs`
/// switch them on).
pub fn config(dir: &Path, brokers: &str) -> Config {
    let unique = uuid::Uuid::now_v7().simple().to_string();
    let mut cfg = Config::defaults();
    cfg.kafka_brokers = brokers.to_owned();
    cfg.topic = format!("notifications-{unique}");
    cfg.group_id = format!("group-{unique}");
    cfg.database_url = store_url(dir);
    cfg.site_addr = "127.0.0.1:0".parse().unwrap();
    cfg.auth = herald::config::AuthMode::Off;
    cfg.demo_sign_in = true;
    cfg.rate_limit_burst = 0;
    cfg
}

/// The store a test runs on: a SQLite file in `dir`, or with
/// `HERALD_TEST_STORE=postgres` (scripts/test's second pass) a fresh
/// database on the test PostgreSQL server, so the API suites run against
/// both backends.
pub fn store_url(dir: &Path) -> String {
    match std::env::var("HERALD_TEST_STORE").as_deref() {
        Ok("postgres") => std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(herald::test_support::postgres_database())
        })
        .join()
        .unwrap(),
        Ok("sqlite") | Err(_) => herald::test_support::sqlite_database(dir),
        Ok(other) => panic!("HERALD_TEST_STORE={other}: expected sqlite or postgres"),
    }
}

/// Auth on, a known secret ([`TEST_SECRET`]) and the default rate limit:
/// `Herald::with(secure)`.
pub fn secure(cfg: &mut Config) {
    cfg.auth = AuthMode::On;
    cfg.jwt_secret = Some(TEST_SECRET.into());
    cfg.rate_limit_burst = 60;
}

/// [`config`] made [`secure`], for tests that build the configuration
/// themselves (several instances on one store).
pub fn secured_config(dir: &Path, brokers: &str) -> Config {
    let mut cfg = config(dir, brokers);
    secure(&mut cfg);
    cfg
}

/// The token secret of [`secure`].
pub const TEST_SECRET: &str = "herald-test-secret-0123456789abcdef";

/// A Herald instance serving on an ephemeral port.
pub struct Herald {
    pub running: Running,
    pub base: String,
    pub cfg: Config,
    /// The temporary directory of its store when the fixture made one
    /// ([`Herald::new`]); last, so it is removed after the server stopped.
    dir: Option<tempfile::TempDir>,
}

/// A Herald that was shut down: its configuration and its store, to start
/// again (after a look at the broker, or with a changed setting).
pub struct Stopped {
    pub cfg: Config,
    dir: Option<tempfile::TempDir>,
}

impl Stopped {
    /// Start again on this configuration and the same store.
    pub async fn start(self) -> Herald {
        let mut h = Herald::start(self.cfg).await;
        h.dir = self.dir;
        h
    }
}

impl Herald {
    /// A Herald of its own ([`config`]: own topic, group and store, auth
    /// and rate limits off) in a temporary directory it removes when dropped.
    pub async fn new() -> Herald {
        Herald::with(|_| {}).await
    }

    /// Like [`Herald::new`], with `tune` applied to the configuration first
    /// (`Herald::with(secure)`).
    pub async fn with(tune: impl FnOnce(&mut Config)) -> Herald {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path(), &shared_brokers());
        tune(&mut cfg);
        Stopped {
            cfg,
            dir: Some(dir),
        }
        .start()
        .await
    }

    /// Start on `cfg` as it is (the caller owns whatever directory it names).
    pub async fn start(cfg: Config) -> Herald {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let listener = TcpListener::bind(cfg.site_addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let running = start(cfg.clone(), listener, leptos_options(addr))
            .await
            .expect("herald starts");
        Herald {
            base: format!("http://{}", running.addr),
            running,
            cfg,
            dir: None,
        }
    }

    /// `path` on this instance.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Shut down gracefully (the consumer commits what it stored); the
    /// store stays for [`Stopped::start`].
    pub async fn shutdown(self) -> Stopped {
        self.running.shutdown().await;
        Stopped {
            cfg: self.cfg,
            dir: self.dir,
        }
    }

    /// Shut down and start again on the same configuration and store.
    pub async fn restart(self) -> Herald {
        self.shutdown().await.start().await
    }

    /// A token for `user` when auth is on (none when it is off).
    fn token_for(&self, user: i64) -> Option<String> {
        (self.cfg.auth == AuthMode::On).then(|| token(user))
    }
}

/// The HTTP client of every helper (a 20 s timeout, so a hung answer fails
/// the test instead of hanging it).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// What a probe of [`eventually`] answers: done with a value, or not yet
/// (with, for a `Result`, why not, shown if time runs out).
pub trait Attempt {
    /// The value once done.
    type Value;
    /// `Ok` when done, otherwise what the last try saw, if anything.
    fn done(self) -> Result<Self::Value, Option<String>>;
}

impl<T> Attempt for Option<T> {
    type Value = T;
    fn done(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: std::fmt::Display> Attempt for Result<T, E> {
    type Value = T;
    fn done(self) -> Result<T, Option<String>> {
        self.map_err(|e| Some(e.to_string()))
    }
}

/// Try `probe` every 50 ms until it is done (`Some`/`Ok`) and return its
/// value; fail naming `what` (and the last `Err`) if `within` runs out.
pub async fn eventually<F, Fut>(
    what: &str,
    within: Duration,
    mut probe: F,
) -> <Fut::Output as Attempt>::Value
where
    F: FnMut() -> Fut,
    Fut: Future,
    Fut::Output: Attempt,
{
    let deadline = Instant::now() + within;
    loop {
        let last = match probe().await.done() {
            Ok(value) => return value,
            Err(last) => last,
        };
        if Instant::now() >= deadline {
            match last {
                Some(last) => panic!("{what}: not within {within:?}; last: {last}"),
                None => panic!("{what}: not within {within:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A request with `method` to `url`, as `token`'s user (none: anonymous).
pub fn req(method: Method, url: &str, token: Option<&str>) -> reqwest::RequestBuilder {
    let r = client().request(method, url);
    match token {
        Some(t) => r.bearer_auth(t),
        None => r,
    }
}

/// Send and read the answer as (status, body text): for answers whose
/// exact bytes are the contract (the Go tutorial's), pages and metrics.
pub async fn call_text(r: reqwest::RequestBuilder) -> (u16, String) {
    let res = r.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// Send and read the answer as (status, JSON body); a non-JSON body fails.
pub async fn call(r: reqwest::RequestBuilder) -> (u16, Value) {
    let (status, text) = call_text(r).await;
    if text.is_empty() {
        return (status, Value::Null);
    }
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("answer {status} is not JSON ({e}): {text}"));
    (status, body)
}

/// Send and decode the answer into `T` (a model type); an answer that is
/// not a `T` (an error, say) fails with its status and body.
pub async fn call_as<T: DeserializeOwned>(r: reqwest::RequestBuilder) -> (u16, T) {
    let (status, text) = call_text(r).await;
    let body = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "answer {status} is not a {} ({e}): {text}",
            std::any::type_name::<T>()
        )
    });
    (status, body)
}

/// `GET url` anonymously as (status, body text): `call_text` of a plain GET.
pub async fn get(url: &str) -> (u16, String) {
    call_text(req(Method::GET, url, None)).await
}

/// The `message` of an error answer (`{"message": …}`; empty if none).
pub fn message(body: &Value) -> &str {
    body["message"].as_str().unwrap_or_default()
}

/// `user`'s inbox now (newest first, up to 200), read as `user` when auth
/// is on.
pub async fn inbox(h: &Herald, user: i64) -> Vec<Notification> {
    let url = h.url(&format!("/api/users/{user}/notifications?limit=200"));
    let (status, page) =
        call_as::<app::model::Page>(req(Method::GET, &url, h.token_for(user).as_deref())).await;
    assert_eq!(status, 200, "inbox of {user}");
    page.notifications
}

/// Wait until `user`'s inbox lists at least `n` notifications; the list.
pub async fn wait_for_count(
    h: &Herald,
    user: i64,
    n: usize,
    within: Duration,
) -> Vec<Notification> {
    let what = format!("{n} notifications in the inbox of {user}");
    eventually(&what, within, || async {
        let list = inbox(h, user).await;
        if list.len() >= n {
            Ok(list)
        } else {
            Err(format!("{} listed", list.len()))
        }
    })
    .await
}

/// Wait (at most 10 s) until `user`'s inbox holds `n` notifications, and
/// check it holds no more.
pub async fn wait_for_inbox(h: &Herald, user: i64, n: usize) -> Vec<Notification> {
    let list = wait_for_count(h, user, n, Duration::from_secs(10)).await;
    assert_eq!(list.len(), n, "inbox of {user}: {list:?}");
    list
}

/// Send from Bruno to `to` through the Go tutorial's route; it must be
/// accepted.
pub async fn seed_send(h: &Herald, to: i64, message: &str) {
    seed_send_with(&client(), &h.base, to, message).await;
}

/// [`seed_send`] on `client` to the instance at `base` (for a task that
/// sends many, over one connection).
pub async fn seed_send_with(client: &reqwest::Client, base: &str, to: i64, message: &str) {
    let (status, body) = call_text(client.post(format!("{base}/send")).form(&[
        ("fromID", "2"),
        ("toID", &to.to_string()),
        ("message", message),
    ]))
    .await;
    assert_eq!(status, 200, "{body}");
}

/// Wait until `cfg`'s group has committed at least `at_least` records in
/// all (read back, or committed past unread after early delivery stored
/// them).
pub async fn wait_for_committed(cfg: &Config, at_least: i64, within: Duration) {
    let what = format!("{at_least} records committed");
    eventually(&what, within, || {
        let cfg = cfg.clone();
        async move {
            let committed = tokio::task::spawn_blocking(move || committed_total(&cfg))
                .await
                .unwrap();
            if committed >= at_least {
                Ok(())
            } else {
                Err(format!("{committed} committed"))
            }
        }
    })
    .await
}

/// A counter's value in a Prometheus text exposition (0 when absent).
pub fn counter(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Poll `/metrics` until the counter `name` reaches `at_least`; returns the
/// exposition that showed it.
pub async fn wait_for_counter(h: &Herald, name: &str, at_least: f64, within: Duration) -> String {
    let what = format!("{name} reaching {at_least}");
    eventually(&what, within, || async {
        let (_, body) = get(&h.url("/metrics")).await;
        if counter(&body, name) >= at_least {
            Ok(body)
        } else {
            Err(format!("\n{body}"))
        }
    })
    .await
}

/// One parsed Server-Sent Event.
#[derive(Debug, Clone, Default)]
pub struct SseEvent {
    pub event: Option<String>,
    pub id: Option<String>,
    pub data: String,
    pub retry: Option<u64>,
}

impl SseEvent {
    /// The data decoded as `T` (a model type: `Notification`, `Counts`,
    /// `StateEvent`).
    pub fn decode<T: DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.data).unwrap_or_else(|e| {
            panic!(
                "{:?} event is not a {} ({e}): {}",
                self.event,
                std::any::type_name::<T>(),
                self.data
            )
        })
    }
}

/// A minimal SSE reader over a reqwest response, for assertions on the wire
/// format itself (a spec-following client such as `eventsource-stream`, which
/// herald-bench uses, hides frames like a lone `retry:` that tests check).
pub struct SseClient {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
}

impl SseClient {
    /// Connect anonymously, resuming after `last_event_id` if given.
    pub async fn connect(url: &str, last_event_id: Option<&str>) -> SseClient {
        let mut req = reqwest::Client::new().get(url);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        Self::open(req).await
    }

    /// Connect with `Authorization: Bearer <token>`.
    pub async fn connect_as(url: &str, token: &str) -> SseClient {
        Self::open(reqwest::Client::new().get(url).bearer_auth(token)).await
    }

    /// Send `req` (a GET of an events URL) and expect an event stream.
    pub async fn open(req: reqwest::RequestBuilder) -> SseClient {
        let req = req.header("accept", "text/event-stream");
        let url = req
            .try_clone()
            .and_then(|r| r.build().ok())
            .map(|r| r.url().to_string())
            .unwrap_or_default();
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200, "SSE connect to {url}");
        let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("text/event-stream"), "content-type {ct}");
        SseClient {
            stream: res.bytes_stream().boxed(),
            buf: String::new(),
        }
    }

    /// Next event (comments skipped), or None after `within`.
    pub async fn next(&mut self, within: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(pos) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..pos + 2).collect();
                let mut ev = SseEvent::default();
                let mut data = Vec::new();
                let mut any = false;
                for line in block.lines() {
                    if line.starts_with(':') || line.is_empty() {
                        continue;
                    }
                    let (k, v) = line.split_once(':').unwrap_or((line, ""));
                    let v = v.strip_prefix(' ').unwrap_or(v).to_owned();
                    any = true;
                    match k {
                        "event" => ev.event = Some(v),
                        "id" => ev.id = Some(v),
                        "data" => data.push(v),
                        "retry" => ev.retry = v.parse().ok(),
                        _ => {}
                    }
                }
                if !any {
                    continue;
                }
                ev.data = data.join("\n");
                return Some(ev);
            }
            let chunk = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()??;
            let chunk = chunk.ok()?;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Whether the server ends the stream within `within` (events before
    /// the end are skipped).
    pub async fn ends_within(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Next `notification` event.
    pub async fn next_notification(&mut self, within: Duration) -> Option<SseEvent> {
        self.next_of("notification", within).await
    }

    /// Next event of type `kind`, skipping others.
    pub async fn next_of(&mut self, kind: &str, within: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let ev = self.next(left).await?;
            if ev.event.as_deref() == Some(kind) {
                return Some(ev);
            }
        }
    }
}

/// A tansu broker of a test's own, for tests that stop and restart it.
pub struct Tansu {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<tokio::process::Child>,
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Tansu {
    /// Its broker list, for `Config::kafka_brokers`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Start a broker on a free port with its data under `dir`.
    pub async fn start(dir: &Path) -> Tansu {
        let mut t = Tansu {
            port: free_port(),
            dir: dir.to_owned(),
            child: None,
        };
        t.restart().await;
        t
    }

    /// (Re)start the broker process on the same port and data.
    pub async fn restart(&mut self) {
        let bin = std::env::var("TANSU_BIN").expect("TANSU_BIN is not set: run ./scripts/test");
        std::fs::create_dir_all(&self.dir).unwrap();
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("tansu.log"))
            .unwrap();
        let child = tokio::process::Command::new(bin)
            .current_dir(&self.dir)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("tansu starts");
        self.child = Some(child);
        let port = self.port;
        eventually("tansu listening", Duration::from_secs(10), || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await
        })
        .await;
    }

    /// `kill -9` the broker.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().await.unwrap();
        }
    }
}

/// Herald as a real process (`target/.../server`), for crash tests.
pub struct HeraldProcess {
    pub base: String,
    pub port: u16,
    cfg: Config,
    env: Vec<(String, String)>,
    capture_stdout: bool,
    child: Option<tokio::process::Child>,
}

impl HeraldProcess {
    /// Start the binary with `cfg` on a free port and wait until it serves.
    pub async fn spawn(cfg: &Config) -> HeraldProcess {
        Self::spawn_with(cfg, &[], false).await
    }

    /// Like [`Self::spawn`], with extra environment variables and, if asked,
    /// stdout captured for [`Self::terminate_with_output`].
    pub async fn spawn_with(
        cfg: &Config,
        env: &[(&str, &str)],
        capture_stdout: bool,
    ) -> HeraldProcess {
        let port = free_port();
        let mut p = HeraldProcess {
            base: format!("http://127.0.0.1:{port}"),
            port,
            cfg: cfg.clone(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            capture_stdout,
            child: None,
        };
        p.restart().await;
        p
    }

    /// (Re)start on the same port, store, topic and group.
    pub async fn restart(&mut self) {
        let cfg = &self.cfg;
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_server"));
        cmd.env("KAFKA_BROKERS", &cfg.kafka_brokers)
            .env("HERALD_TOPIC", &cfg.topic)
            .env("HERALD_CONSUMER_GROUP", &cfg.group_id)
            .env("DATABASE_URL", &cfg.database_url)
            .env("HERALD_SEND_TIMEOUT_MS", cfg.send_timeout_ms.to_string())
            .env(
                "HERALD_AUTH",
                match cfg.auth {
                    herald::config::AuthMode::On => "on",
                    herald::config::AuthMode::Off => "off",
                },
            )
            .env("HERALD_RATE_LIMIT_BURST", cfg.rate_limit_burst.to_string())
            .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{}", self.port))
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .kill_on_drop(true);
        if self.capture_stdout {
            cmd.stdout(Stdio::piped());
        }
        self.child = Some(cmd.spawn().unwrap());
        let health = format!("{}/api/health", self.base);
        eventually("the server serving", Duration::from_secs(60), || {
            req(Method::GET, &health, None).send()
        })
        .await;
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// `kill -9`.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().await.unwrap();
        }
    }

    fn sigterm(&self) {
        let pid = self
            .child
            .as_ref()
            .expect("running")
            .id()
            .unwrap()
            .to_string();
        assert!(std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
    }

    /// SIGTERM and wait (at most 15 s) for the exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        self.sigterm();
        let mut c = self.child.take().unwrap();
        tokio::time::timeout(Duration::from_secs(15), c.wait())
            .await
            .expect("exits within 15 s")
            .unwrap()
    }

    /// SIGTERM and wait (at most 15 s) for the exit status and stdout.
    pub async fn terminate_with_output(&mut self) -> std::process::Output {
        self.sigterm();
        let c = self.child.take().unwrap();
        tokio::time::timeout(Duration::from_secs(15), c.wait_with_output())
            .await
            .expect("exits within 15 s")
            .unwrap()
    }
}

/// Sum over all partitions of the offsets `cfg`'s group has committed.
pub fn committed_total(cfg: &Config) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &cfg.kafka_brokers)
        .set("group.id", &cfg.group_id)
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..cfg.partitions {
        tpl.add_partition(&cfg.topic, p);
    }
    consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .map(|c| {
            c.elements()
                .iter()
                .map(|e| match e.offset() {
                    rdkafka::Offset::Offset(o) => o,
                    _ => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Every stored row of a Herald store (SQLite file, read-only, or
/// PostgreSQL database), for checks the API does not offer (duplicates).
pub async fn stored_rows(cfg: &Config) -> Vec<(String, String)> {
    use sqlx::Row;
    if cfg.database_url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&cfg.database_url).await.unwrap();
        let rows = sqlx::query("SELECT id, message FROM notifications ORDER BY seq")
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        return rows
            .iter()
            .map(|r| (r.get("id"), r.get("message")))
            .collect();
    }
    let opts: sqlx::sqlite::SqliteConnectOptions = cfg.database_url.parse().unwrap();
    let pool = sqlx::SqlitePool::connect_with(opts.read_only(true))
        .await
        .unwrap();
    let rows = sqlx::query("SELECT id, message FROM notifications ORDER BY seq")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows.iter()
        .map(|r| (r.get("id"), r.get("message")))
        .collect()
}

/// Wait until the store holds at least `n` rows and stopped growing; the
/// rows, also when `within` ran out first (unlike [`eventually`] it does
/// not fail then: the caller's exactly-once check says what is missing).
pub async fn settle(cfg: &Config, n: usize, within: Duration) -> Vec<(String, String)> {
    let deadline = Instant::now() + within;
    let mut last = 0;
    let mut stable_since = Instant::now();
    loop {
        let rows = stored_rows(cfg).await;
        if rows.len() != last {
            last = rows.len();
            stable_since = Instant::now();
        }
        let settled = rows.len() >= n && stable_since.elapsed() > Duration::from_secs(2);
        if settled || Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Wait until every send `outcomes` saw acknowledged is stored and the
/// store stopped growing (or `within` passed); the rows. Stricter than
/// [`settle`]: sends that failed but were stored anyway cannot make up the
/// count while an acknowledged one is still on its way (after a kill, the
/// group may take a rebalance to get to it).
pub async fn settle_acked(
    cfg: &Config,
    outcomes: &Outcomes,
    within: Duration,
) -> Vec<(String, String)> {
    let deadline = Instant::now() + within;
    loop {
        let rows = settle(cfg, outcomes.acked.len(), Duration::from_secs(5)).await;
        let stored: HashSet<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
        let all = outcomes
            .acked
            .iter()
            .all(|(id, _)| stored.contains(id.as_str()));
        if all || Instant::now() > deadline {
            return rows;
        }
    }
}

/// Print a measured figure and append it to `target/reliability-figures.txt`
/// (scripts/test shows that file at the end; docs/reliability.md quotes it).
pub fn figure(line: &str) {
    let line = match std::env::var("HERALD_TEST_STORE").as_deref() {
        Ok("postgres") => format!("[postgres pass] {line}"),
        _ => line.to_owned(),
    };
    eprintln!("FIGURES {line}");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/reliability-figures.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        use std::io::Write;
        let _ = writeln!(f, "{line}");
    }
}

/// Write raw records (key "1") straight to `cfg`'s topic with a plain
/// rdkafka producer, as another service or the Go tutorial would.
pub async fn produce_raw(cfg: &Config, payloads: &[String]) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &cfg.kafka_brokers)
        .create()
        .unwrap();
    for payload in payloads {
        producer
            .send(
                FutureRecord::to(&cfg.topic).key("1").payload(payload),
                Duration::from_secs(5),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
}

/// A consumer reading `cfg`'s dead-letter topic from its start.
pub fn dead_letter_reader(cfg: &Config) -> rdkafka::consumer::BaseConsumer {
    use rdkafka::consumer::Consumer;
    let dlq: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &cfg.kafka_brokers)
        .set("group.id", format!("{}-dlq-reader", cfg.group_id))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    dlq.subscribe(&[&cfg.dlq_topic()]).unwrap();
    dlq
}

/// A token for `user` signed with `secret`, expiring `ttl_secs` from now
/// (negative: already expired).
pub fn token_with(secret: &str, user: i64, ttl_secs: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = herald::auth::Claims {
        sub: user.to_string(),
        iat: Some(now as u64),
        exp: (now + ttl_secs) as u64,
        iss: None,
        aud: None,
        name: None,
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// Run `server keys <args>` against `cfg`'s store: (success, stdout).
pub fn keys(cfg: &Config, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_server"))
        .arg("keys")
        .args(args)
        .env("DATABASE_URL", &cfg.database_url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the server binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stdout.contains("INFO") && !stdout.contains("WARN"),
        "logs stay off standard output: {stdout}"
    );
    if !out.status.success() {
        eprintln!("server keys {args:?} failed: {stderr}");
    }
    (out.status.success(), stdout)
}

/// Create a key and return (key, its id).
pub fn create_key(cfg: &Config, name: &str, scopes: &str) -> (String, i64) {
    let (ok, out) = keys(cfg, &["create", "--name", name, "--scopes", scopes]);
    assert!(ok, "{out}");
    let key = out.lines().next().unwrap().to_owned();
    assert!(key.starts_with("hk_"), "{out}");
    let id = out
        .split("Key ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no id in {out}"));
    (key, id)
}

/// A valid token for `user` under [`secure`], with a `name` claim (as an
/// identity provider would put in it).
pub fn token_named(user: i64, name: serde_json::Value) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"sub": user.to_string(), "exp": now + 3600, "name": name});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(TEST_SECRET.as_bytes()),
    )
    .unwrap()
}

/// A valid token for `user` under [`secure`].
pub fn token(user: i64) -> String {
    token_with(TEST_SECRET, user, 3600)
}

/// What became of the sends of a [`load`].
#[derive(Default)]
pub struct Outcomes {
    /// (notification id, message) of every 2xx.
    pub acked: Vec<(String, String)>,
    /// message of every failed request.
    pub failed: Vec<String>,
}

/// `total` sends with `concurrency` workers, spread over `bases` (one
/// Herald or several); the returned counter of answered requests lets a
/// test crash something in the middle.
pub async fn load(bases: &[String], total: usize, concurrency: usize, tag: &str) -> Load {
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let next = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (outcomes, next, answered, http) = (
            outcomes.clone(),
            next.clone(),
            answered.clone(),
            http.clone(),
        );
        let urls: Vec<String> = bases
            .iter()
            .map(|b| format!("{b}/api/notifications"))
            .collect();
        let tag = tag.to_owned();
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return;
                }
                let message = format!("{tag} {i}");
                let from = (i % 4) as i64 + 1;
                let to = ((i + 1) % 4) as i64 + 1;
                let res = http
                    .post(&urls[i % urls.len()])
                    .json(&json!({"from": from, "to": to, "message": message}))
                    .send()
                    .await;
                let acked_id = match res {
                    Ok(r) if r.status().is_success() => r
                        .json::<Value>()
                        .await
                        .ok()
                        .and_then(|v| v["id"].as_str().map(str::to_owned)),
                    _ => None,
                };
                answered.fetch_add(1, Ordering::Relaxed);
                let failed = acked_id.is_none();
                {
                    let mut o = outcomes.lock().unwrap();
                    match acked_id {
                        Some(id) => o.acked.push((id, message)),
                        None => o.failed.push(message),
                    }
                }
                if failed {
                    // The server is down: do not burn through the rest.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
    }
    Load {
        outcomes,
        answered,
        workers,
    }
}

/// Sends under way (see [`load`]).
pub struct Load {
    outcomes: Arc<Mutex<Outcomes>>,
    answered: Arc<AtomicUsize>,
    workers: tokio::task::JoinSet<()>,
}

impl Load {
    /// Requests answered so far.
    pub fn answered(&self) -> usize {
        self.answered.load(Ordering::Relaxed)
    }

    /// Wait until every send was answered; what became of them.
    pub async fn finish(mut self) -> Outcomes {
        while self.workers.join_next().await.is_some() {}
        drop(self.workers);
        Arc::try_unwrap(self.outcomes)
            .ok()
            .expect("workers are done")
            .into_inner()
            .unwrap()
    }
}

/// Every acknowledged send stored exactly once, nothing unexpected stored;
/// returns how many failed sends were stored anyway.
pub fn check_exactly_once(rows: &[(String, String)], outcomes: &Outcomes) -> usize {
    let stored: HashSet<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
    let missing: Vec<&str> = outcomes
        .acked
        .iter()
        .filter(|(id, _)| !stored.contains(id.as_str()))
        .map(|(_, m)| m.as_str())
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "MISSING {} of {} acknowledged (stored {}), e.g. {:?}",
            missing.len(),
            outcomes.acked.len(),
            rows.len(),
            &missing[..missing.len().min(20)]
        );
    }
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    let mut by_message: HashMap<&str, usize> = HashMap::new();
    for (id, message) in rows {
        *by_id.entry(id).or_default() += 1;
        *by_message.entry(message).or_default() += 1;
    }
    for (id, message) in &outcomes.acked {
        assert_eq!(
            by_id.get(id.as_str()),
            Some(&1),
            "acknowledged {message} ({id}) must be stored exactly once"
        );
    }
    let twice: Vec<_> = by_message.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "stored twice: {twice:?}");
    let failed: HashSet<&str> = outcomes.failed.iter().map(String::as_str).collect();
    let failed_but_stored = rows
        .iter()
        .filter(|(_, m)| failed.contains(m.as_str()))
        .count();
    assert_eq!(
        rows.len(),
        outcomes.acked.len() + failed_but_stored,
        "nothing unexpected stored"
    );
    failed_but_stored
}
