//! A stream too slow for the hub's buffer is caught up from the store: no
//! event is silently lost, on both backends (with PostgreSQL the events
//! come through LISTEN/NOTIFY). In-process, no broker needed (the producer
//! is never used here and connects lazily).

mod common;

use std::collections::HashSet;

use app::model::Principal;
use futures::StreamExt;
use herald::auth::Auth;
use herald::bus::{self, EventBus, LocalBus, PostgresBus};
use herald::directory::Directory;
use herald::hub::{Hub, StreamLimits, CHANNEL_CAPACITY};
use herald::kafka::Producer;
use herald::service::{Limits, RateLimit, Service};
use herald::store::{Source, Store};
use herald::stream::StreamEvent;
use herald::writer::{Origin, Writer};
use herald::Config;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn a_lagging_stream_catches_up_from_the_store_in_order() {
    let dir = tempfile::tempdir().unwrap();
    for url in herald::test_support::both_backends(dir.path()).await {
        lagging_stream(&url).await;
    }
}

async fn lagging_stream(url: &str) {
    let store = Store::open(url).await.unwrap();
    let hub = Hub::default();
    let stop = CancellationToken::new();
    let bus: std::sync::Arc<dyn EventBus> = if store.is_shared() {
        let listen = bus::listen(url.to_owned(), store.clone(), hub.clone(), stop.clone());
        tokio::spawn(listen);
        std::sync::Arc::new(PostgresBus)
    } else {
        std::sync::Arc::new(LocalBus(hub.clone()))
    };
    let writer = Writer::new(store.clone(), bus);
    let mut cfg = Config::defaults();
    cfg.kafka_brokers = "127.0.0.1:1".into();
    let producer = Producer::new(&cfg).unwrap();

    let rate = RateLimit {
        burst: 0,
        per_second: 1.0,
    };
    let directory = Directory::new(store.clone(), std::time::Duration::from_secs(1));
    let service = Service::new(
        directory,
        false,
        writer.clone(),
        producer,
        hub.clone(),
        Auth::new(&cfg).unwrap(),
        Limits {
            rate,
            key_rate: rate,
            streams: StreamLimits::default(),
            idempotency_ttl: std::time::Duration::from_secs(86_400),
        },
        None,
    );

    let stream = service
        .subscribe(Principal::User(1), 1, None)
        .await
        .unwrap();
    // Store and publish far more than the hub buffers while nobody reads,
    // exactly as the consumer does.
    let total = CHANNEL_CAPACITY * 3;
    for i in 0..total {
        let n = app::model::Notification::example(&format!("lag-{i}"), &format!("lag {i}"));
        let source = Source {
            partition: 0,
            offset: i as i64,
        };
        let new = writer
            .insert(vec![(n, source)], Origin::Consumer)
            .await
            .unwrap_or_else(|(e, _)| panic!("store: {e}"));
        assert_eq!(new, 1);
    }
    let got: Vec<String> = stream
        .filter_map(|e| async move {
            match e {
                StreamEvent::Notification(s) => Some(s.notification.id.clone()),
                StreamEvent::State(_) | StreamEvent::Counts(_) => None,
            }
        })
        .take(total)
        .collect()
        .await;
    let expected: Vec<String> = (0..total).map(|i| format!("lag-{i}")).collect();
    assert_eq!(got, expected, "every event, in order, none twice ({url})");
    assert_eq!(got.iter().collect::<HashSet<_>>().len(), total);
    stop.cancel();
}
