//! Fault injection with librdkafka's mock cluster (rdkafka::mocking): the
//! producer retries retriable broker errors by itself, without duplicates,
//! and gives up with 503-class errors within the configured bound.

mod common;

use std::time::{Duration, Instant};

use app::model::{Notification, ServiceError};
use herald::kafka::Producer;
use herald::Config;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::ClientConfig;

fn notification(message: &str) -> Notification {
    app::model::Notification::example(&uuid::Uuid::now_v7().to_string(), message)
}

fn records_on(bootstrap: &str, topic: &str) -> usize {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "fault-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    // Read partition 0 from the start, without joining a group.
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut idle = Instant::now();
    while Instant::now() < deadline && idle.elapsed() < Duration::from_secs(3) {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            n += 1;
            idle = Instant::now();
        }
    }
    n
}

#[tokio::test]
async fn retriable_produce_errors_are_retried_once_each_without_duplicates() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("notifications", 1, 1).unwrap();
    let mut cfg = Config::defaults();
    cfg.kafka_brokers = mock.bootstrap_servers();
    let producer = Producer::new(&cfg).unwrap();

    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        ],
    );
    let t = Instant::now();
    producer
        .send(&notification("survives three broker errors"))
        .await
        .unwrap();
    common::figure(&format!(
        "faults: acknowledged after 3 injected retriable errors in {:?}",
        t.elapsed()
    ));
    assert_eq!(
        records_on(&mock.bootstrap_servers(), "notifications"),
        1,
        "stored in Kafka exactly once"
    );
}

#[tokio::test]
async fn a_broker_that_stays_down_gives_unavailable_within_the_bound() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("notifications", 1, 1).unwrap();
    let mut cfg = Config::defaults();
    cfg.kafka_brokers = mock.bootstrap_servers();
    cfg.send_timeout_ms = 1_500;
    let producer = Producer::new(&cfg).unwrap();
    producer.send(&notification("warm-up")).await.unwrap();

    mock.broker_down(1).unwrap();
    let t = Instant::now();
    let err = producer
        .send(&notification("lost broker"))
        .await
        .unwrap_err();
    let took = t.elapsed();
    assert!(matches!(err, ServiceError::Unavailable(_)), "{err:?}");
    assert!(took <= Duration::from_millis(1_700), "answered in {took:?}");

    mock.broker_up(1).unwrap();
    common::eventually("recovery", Duration::from_secs(15), || async {
        producer
            .send(&notification("back"))
            .await
            .map_err(|e| format!("{e:?}"))
    })
    .await;
}

/// Several produce requests in flight need the idempotent producer: without
/// it a retried request could land after the one behind it, and a user's
/// notifications would be stored out of order. Herald refuses to start so.
#[tokio::test]
async fn several_requests_in_flight_without_idempotence_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path(), "127.0.0.1:1");
    cfg.max_in_flight = 5;
    cfg.kafka_idempotence = false;
    let entries = || std::fs::read_dir(dir.path()).unwrap().count();
    let before = entries();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let err = match herald::start(cfg.clone(), listener, herald::leptos_options(addr)).await {
        Ok(_) => panic!("started with 5 requests in flight and no idempotence"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("HERALD_MAX_IN_FLIGHT") && err.contains("HERALD_KAFKA_IDEMPOTENCE=true"),
        "{err}"
    );
    assert_eq!(entries(), before, "no store created before the refusal");
}
