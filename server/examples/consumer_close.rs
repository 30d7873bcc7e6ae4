//! Closing group consumers in the middle of their rebalances, over and
//! over: the way to see how often librdkafka aborts while a consumer closes
//! (`rd_kafka_cgrp_terminated: assert: !rd_kafka_assignment_in_progress`,
//! confluentinc/librdkafka#4792; docs/reliability.md, section 6).
//!
//! Each round starts `MEMBERS` consumers of one group on one topic, the
//! way the server builds them (`consumer::create`), lets each read for a
//! while (spread over a second, so joins, assignments and revocations
//! overlap), pauses its partitions from another thread (and resumes them,
//! for every other member) as the server's pacer does, and closes it with
//! `consumer::close`, the server's own shutdown. A round that ends prints
//! a line; an abort ends the process with SIGABRT, so a shell loop around
//! several of these counts rounds until one aborts. (2,400 closes on
//! 2026-11-30, with 8 members and with 1: no abort.)
//!
//! `KAFKA_BROKERS=host:port cargo run --release -p server --example consumer_close -- [ROUNDS] [MEMBERS]`
//! (defaults 20 rounds of 6 members; the topic and group are new each run).

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use herald::config::Config;
use herald::consumer::{self, GroupConsumer};
use herald::delivery::Ledger;
use herald::kafka::ensure_topics;
use herald::pacer::Demand;
use rdkafka::consumer::Consumer;

/// Read for `d`, serving rebalances as the server's loop does.
async fn read_for(consumer: &GroupConsumer, d: Duration) {
    let reading = async {
        loop {
            let _ = consumer.recv().await;
        }
    };
    tokio::select! {
        _ = reading => {}
        _ = tokio::time::sleep(d) => {}
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rounds: u32 = args.next().map_or(Ok(20), |a| a.parse())?;
    let members: u32 = args.next().map_or(Ok(6), |a| a.parse())?;
    let mut cfg = Config::parse_from(["herald"]);
    let unique = uuid::Uuid::now_v7().simple().to_string();
    cfg.topic = format!("herald-close-{unique}");
    cfg.group_id = format!("herald-close-{unique}");
    ensure_topics(&cfg).await?;
    let started = Instant::now();
    for round in 1..=rounds {
        let mut closing = Vec::new();
        for m in 0..members {
            let consumer: Arc<GroupConsumer> = Arc::new(consumer::create(
                &cfg,
                Ledger::default(),
                Demand::default(),
            )?);
            // Spread over a second, so some close while joining, some while
            // being assigned, some while others join and they are revoked.
            let after = Duration::from_millis(((round * 7 + m * 131) % 1_000).into());
            closing.push(tokio::spawn(async move {
                read_for(&consumer, after / 2).await;
                // The server's pacer pauses an idle consumer's partitions
                // from a thread of its own (and resumes them when records
                // come); a close can meet either.
                let c = consumer.clone();
                let pausing = std::thread::spawn(move || {
                    if let Ok(assigned) = c.assignment() {
                        let _ = c.pause(&assigned);
                        if m % 2 == 0 {
                            let _ = c.resume(&assigned);
                        }
                    }
                });
                read_for(&consumer, after / 2).await;
                consumer::close(consumer).await;
                let _ = pausing.join();
            }));
        }
        for c in closing {
            c.await?;
        }
        println!(
            "round {round}: {members} consumers closed ({:.1} s in all)",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
