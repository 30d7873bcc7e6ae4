//! Several Herald instances on one PostgreSQL store and one broker: what a
//! user sees does not depend on which instance answers.
//!
//! Three instances share a topic, a consumer group and a database (each
//! test its own). Sends go through one instance, the consumer group (spread
//! over the three) stores them, streams on another instance hear them, and
//! state changes made on a third reach those streams too.

mod common;

use std::time::Duration;

use app::model::{Change, Notification, StateEvent};
use common::{
    call, create_key, eventually, keys, req, secured_config, shared_brokers, token, Herald,
    SseClient,
};
use herald::config::EventBusKind;
use herald::Config;
use reqwest::Method;
use serde_json::{json, Value};

/// Three instances of one cluster; `tune` adjusts the shared configuration.
async fn cluster(dir: &std::path::Path, tune: impl Fn(&mut Config)) -> Vec<Herald> {
    let mut cfg = secured_config(dir, &shared_brokers());
    cfg.database_url = herald::test_support::postgres_database().await;
    cfg.rate_limit_burst = 0;
    tune(&mut cfg);
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(Herald::start(cfg.clone()).await);
    }
    instances
}

async fn send(h: &Herald, from: i64, to: i64, message: &str) -> (u16, Value) {
    let body = json!({ "to": to, "message": message });
    call(
        req(
            Method::POST,
            &h.url("/api/notifications"),
            Some(&token(from)),
        )
        .json(&body),
    )
    .await
}

fn events_url(h: &Herald, user: i64) -> String {
    h.url(&format!("/api/users/{user}/events"))
}

/// Sends through C reach a stream on A whoever stores them; read-all on B
/// drops the badge of A's stream; a stream opened on C resumes after a
/// given id with exactly the rest. Run with early delivery off (the
/// consumer group stores everything) and on (the sending instance stores
/// it first, the group finds it stored), with the PostgreSQL event bus; and
/// once more with the Kafka topic as event bus.
#[tokio::test]
async fn streams_on_one_instance_hear_sends_and_changes_made_on_the_others() {
    let runs = [
        (false, EventBusKind::Postgres),
        (true, EventBusKind::Postgres),
        (true, EventBusKind::Kafka),
    ];
    for (early, bus) in runs {
        let label = format!("early={early}, {bus:?} bus");
        let dir = tempfile::tempdir().unwrap();
        let nodes = cluster(dir.path(), |c| {
            c.early_delivery = early;
            c.event_bus = bus;
        })
        .await;
        let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
        let emma = token(1);
        let mut stream = SseClient::connect_as(&events_url(a, 1), &emma).await;
        let first = stream.next_of("counts", Duration::from_secs(5)).await;
        assert!(first.is_some(), "a stream starts with counts");

        let mut sent = Vec::new();
        for i in 0..5 {
            let (status, body) = send(c, 2, 1, &format!("across {i}")).await;
            assert_eq!(status, 202, "{body}");
            sent.push(serde_json::from_value::<Notification>(body).unwrap().id);
        }
        let mut heard = Vec::new();
        while heard.len() < sent.len() {
            let ev = stream
                .next_notification(Duration::from_secs(15))
                .await
                .unwrap_or_else(|| panic!("{label}: heard only {heard:?} of {sent:?}"));
            heard.push(ev.id.unwrap());
        }
        assert_eq!(heard, sent, "{label}: in order, each once");

        // Every instance lists the same five, stored once.
        for h in &nodes {
            let list = common::wait_for_inbox(h, 1, 5).await;
            let ids: Vec<String> = list.into_iter().rev().map(|n| n.id).collect();
            assert_eq!(ids, sent);
        }

        let url = b.url("/api/users/1/notifications/read-all");
        let (status, counts) = call(req(Method::POST, &url, Some(&emma))).await;
        assert_eq!(status, 200, "{counts}");
        assert_eq!(counts["unread"], 0);
        let state: StateEvent = stream
            .next_of("state", Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("{label}: A's stream hears B's read-all"))
            .decode();
        assert_eq!(
            state.change,
            Change::ReadAll {
                through: sent[4].clone()
            }
        );
        assert_eq!(state.counts.unread, 0);

        // Resume on another instance after the second: exactly the rest.
        let resume = reqwest::Client::new()
            .get(events_url(c, 1))
            .bearer_auth(&emma)
            .header("last-event-id", &sent[1]);
        let mut resumed = SseClient::open(resume).await;
        let mut rest = Vec::new();
        for _ in 2..5 {
            let ev = resumed.next_notification(Duration::from_secs(5)).await;
            rest.push(ev.expect("replayed").id.unwrap());
        }
        assert_eq!(rest, sent[2..]);

        for h in nodes {
            h.shutdown().await;
        }
    }
}

/// One sender's allowance is shared: a burst of 5 spread over three
/// instances admits 5 sends in all, not 15.
#[tokio::test]
async fn one_senders_rate_limit_holds_across_instances() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = cluster(dir.path(), |c| {
        c.rate_limit_burst = 5;
        c.rate_limit_per_sec = 0.05;
    })
    .await;
    let mut accepted = 0;
    let mut limited = 0;
    for i in 0..15 {
        let (status, body) = send(&nodes[i % 3], 2, 1, &format!("burst {i}")).await;
        match status {
            202 => accepted += 1,
            429 => limited += 1,
            _ => panic!("unexpected {status}: {body}"),
        }
    }
    assert_eq!((accepted, limited), (5, 10));
    // Another sender has an allowance of their own.
    assert_eq!(send(&nodes[1], 3, 1, "someone else").await.0, 202);
    for h in nodes {
        h.shutdown().await;
    }
}

/// Keys and users live in the shared store: a key created once works on
/// every instance and, revoked, is refused by every instance at once; a
/// user put through one instance can be sent to through another at once,
/// and their deactivation reaches the others within the directory cache's
/// time to live.
#[tokio::test]
async fn keys_and_users_are_the_same_on_every_instance() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = cluster(dir.path(), |_| {}).await;
    let cfg = &nodes[0].cfg;
    let (shop, _) = create_key(cfg, "Shop", "send");
    let (sync, _) = create_key(cfg, "Directory sync", "users");
    let send_with = |h: &Herald, to: i64| {
        req(Method::POST, &h.url("/api/notifications"), None)
            .bearer_auth(&shop)
            .json(&json!({"to": to, "message": "from the shop"}))
    };
    for h in &nodes {
        assert_eq!(call(send_with(h, 1)).await.0, 202);
    }

    let put = req(Method::PUT, &nodes[0].url("/api/users/5000"), None)
        .bearer_auth(&sync)
        .json(&json!({"name": "Nadia"}));
    assert_eq!(call(put).await.0, 201);
    for h in &nodes {
        assert_eq!(call(send_with(h, 5000)).await.0, 202, "found at once");
    }
    let gone = req(Method::DELETE, &nodes[0].url("/api/users/5000"), None).bearer_auth(&sync);
    assert_eq!(call(gone).await.0, 204);
    assert_eq!(call(send_with(&nodes[0], 5000)).await.0, 404);
    for h in &nodes[1..] {
        eventually("the deactivation", Duration::from_secs(5), || async {
            let (status, _) = call(send_with(h, 5000)).await;
            (status == 404).then_some(())
        })
        .await;
    }

    let (ok, out) = keys(cfg, &["revoke", "Shop"]);
    assert!(ok, "{out}");
    for h in &nodes {
        assert_eq!(call(send_with(h, 1)).await.0, 401, "refused at once");
    }
    for h in nodes {
        h.shutdown().await;
    }
}

/// A `DATABASE_URL` Herald cannot use is refused at start with a message
/// that says what is accepted, and creates nothing.
#[tokio::test]
async fn an_unusable_database_url_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path(), "127.0.0.1:1");
    cfg.database_url = "mysql://herald@localhost/db".into();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let err = match herald::start(cfg, listener, herald::leptos_options(addr)).await {
        Ok(_) => panic!("started on a mysql:// URL"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("sqlite:") && err.contains("postgres://"),
        "{err}"
    );
    assert!(err.contains("\"mysql\""), "{err}");
    assert!(!err.contains("localhost"), "the URL is not echoed: {err}");
}

/// `kill -9` of one of three instances while 5,000 sends are spread over
/// all three: every acknowledged send is stored exactly once after the
/// group settles, and a stream that was on the killed instance reconnects
/// to another with `Last-Event-ID` and misses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_one_instance_mid_load_loses_nothing_and_its_streams_resume_elsewhere() {
    use std::time::Instant;

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path(), &shared_brokers());
    cfg.database_url = herald::test_support::postgres_database().await;
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(common::HeraldProcess::spawn(&cfg).await);
    }
    let events = |base: &str| format!("{base}/api/users/1/events");
    let mut stream = SseClient::connect(&events(&nodes[0].base), None).await;
    let total: usize = std::env::var("HERALD_CRASH_SENDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
    let t0 = Instant::now();
    let sends = common::load(&bases, total, 32, "spread").await;

    let mut heard: Vec<String> = Vec::new();
    while sends.answered() < total / 2 {
        if let Some(ev) = stream.next_notification(Duration::from_millis(5)).await {
            heard.push(ev.id.unwrap());
        }
    }
    nodes[0].kill().await;
    let killed_at = sends.answered();
    // Whatever was still in flight to the client, then the end of the stream.
    while let Some(ev) = stream.next_notification(Duration::from_secs(1)).await {
        heard.push(ev.id.unwrap());
    }
    let heard_before = heard.len();
    let reconnect = reqwest::Client::new().get(events(&nodes[1].base));
    let reconnect = match heard.last() {
        Some(id) => reconnect.header("last-event-id", id),
        None => reconnect.query(&[("since", "0")]),
    };
    let mut stream = SseClient::open(reconnect).await;
    let outcomes = sends.finish().await;
    let rows = common::settle_acked(&cfg, &outcomes, Duration::from_secs(90)).await;
    let failed_but_stored = common::check_exactly_once(&rows, &outcomes);

    // Emma's share: sends number i go to ((i + 1) % 4) + 1.
    let to_emma: std::collections::HashSet<&str> = outcomes
        .acked
        .iter()
        .filter(|(_, m)| {
            let i: usize = m.rsplit(' ').next().unwrap().parse().unwrap();
            (i + 1).is_multiple_of(4)
        })
        .map(|(id, _)| id.as_str())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !to_emma.iter().all(|id| heard.iter().any(|h| h == id)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match stream.next_notification(left).await {
            Some(ev) => heard.push(ev.id.unwrap()),
            None => break,
        }
    }
    let missed: Vec<&&str> = to_emma
        .iter()
        .filter(|id| !heard.iter().any(|h| h == *id))
        .collect();
    assert!(
        missed.is_empty(),
        "the stream missed {} of {}: {missed:?}",
        missed.len(),
        to_emma.len()
    );
    let unique: std::collections::HashSet<&String> = heard.iter().collect();
    assert_eq!(
        unique.len(),
        heard.len(),
        "no event twice across the reconnection"
    );
    common::figure(&format!(
        "cluster crash: 3 instances on PostgreSQL, {total} sends spread over them, concurrency 32, \
         kill -9 of one after {killed_at} answers; acked {} failed {} stored {} \
         (failed-but-stored {failed_but_stored}), each acked once; Emma's stream heard {heard_before} \
         on the killed instance and {} more after reconnecting to another with Last-Event-ID, \
         {} acked for her, none missed, none twice; total {:?}",
        outcomes.acked.len(),
        outcomes.failed.len(),
        rows.len(),
        heard.len() - heard_before,
        to_emma.len(),
        t0.elapsed()
    ));
    assert!(outcomes.acked.len() > total / 2, "most sends succeed");
    for mut n in nodes.into_iter().skip(1) {
        assert_eq!(n.terminate().await.code(), Some(0));
    }
}

/// Instances join and leave under load (one more starts, one stops
/// gracefully): partitions move between real group members, the leaving
/// one commits what it stored and exits 0, and every acknowledged send is
/// stored exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_join_and_leave_under_load_without_loss_or_duplicates() {
    use std::time::Instant;

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path(), &shared_brokers());
    cfg.database_url = herald::test_support::postgres_database().await;
    let a = common::HeraldProcess::spawn(&cfg).await;
    let mut b = common::HeraldProcess::spawn(&cfg).await;
    let total = 3_000;
    let t0 = Instant::now();
    let bases = [a.base.clone(), b.base.clone()];
    let sends = common::load(&bases, total, 16, "rolling").await;
    while sends.answered() < total / 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut c = common::HeraldProcess::spawn(&cfg).await;
    let joined_at = sends.answered();
    while sends.answered() < 2 * total / 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let left_at = sends.answered();
    assert_eq!(
        b.terminate().await.code(),
        Some(0),
        "a leaving member exits 0"
    );
    let outcomes = sends.finish().await;
    let rows = common::settle_acked(&cfg, &outcomes, Duration::from_secs(90)).await;
    let failed_but_stored = common::check_exactly_once(&rows, &outcomes);
    common::figure(&format!(
        "cluster rolling: {total} sends over A and B, C joined after {joined_at} answers, \
         B stopped (SIGTERM) after {left_at}; acked {} failed {} stored {} \
         (failed-but-stored {failed_but_stored}), each acked once; total {:?}",
        outcomes.acked.len(),
        outcomes.failed.len(),
        rows.len(),
        t0.elapsed()
    ));
    assert!(
        outcomes.acked.len() >= total * 2 / 3,
        "sends to A never fail"
    );
    let mut a = a;
    assert_eq!(a.terminate().await.code(), Some(0));
    assert_eq!(c.terminate().await.code(), Some(0));
}
