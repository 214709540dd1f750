//! Faults through librdkafka's in-process cluster (the real client, a Kafka-protocol cluster
//! inside the test): a broker down for 30 s mid-stream, failing fetches, a rebalance that
//! redelivers, and a rebalance storm (members joining and leaving again and again). In each, the answers must equal a replay of the same events: nothing lost,
//! nothing counted twice.

use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::TopicPartitionList;

use crate::support::*;

fn cluster_with(
    topic: &str,
) -> (
    MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    String,
) {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(topic, 4, 1).unwrap();
    cluster.create_topic(&format!("{topic}.dlq"), 1, 1).unwrap();
    let b = cluster.bootstrap_servers();
    (cluster, b)
}

/// Another member of `group` on `topic` that reads without committing (its partitions are
/// re-read by whoever gets them next).
/// The context of the test's extra group members. rdkafka's default rebalance asks librdkafka
/// for the group's protocol, and that call can wait forever once the consumer is closing
/// (librdkafka#4041, rust-rdkafka#509): a member dropped in the middle of a rebalance then
/// never returns, and the test hangs. The members use the default (eager) assignor, so they
/// assign and unassign without asking.
struct EagerMember;

impl ClientContext for EagerMember {}

impl ConsumerContext for EagerMember {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let _ = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => consumer.assign(tpl),
            _ => consumer.unassign(),
        };
    }
}

fn group_member(brokers: &str, group: &str, topic: &str) -> BaseConsumer<EagerMember> {
    let c: BaseConsumer<EagerMember> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create_with_context(EagerMember)
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    c
}

fn lines(events: &[(String, String)]) -> Vec<String> {
    events.iter().map(|e| e.1.clone()).collect()
}

/// Waits until the live `events` table holds `n` rows (redeliveries make the message counter
/// overshoot, so count what was kept).
fn wait_for_events(svc: &Service, n: usize) {
    let want = format!("n\n{n}\n");
    wait_until(
        Duration::from_secs(120),
        &format!("{n} events applied"),
        || svc.sql_csv("SELECT count(*) AS n FROM events") == want,
    );
}

#[test]
fn broker_down_mid_stream_loses_nothing_and_readyz_follows() {
    let topic = unique("down");
    let (cluster, brokers) = cluster_with(&topic);
    let events = story("2020-03-18", 40, 11);
    let (first, second) = events.split_at(events.len() / 2);
    produce(&brokers, &topic, first);
    let svc = Service::start(config(&brokers, &topic, &unique("g")), None);
    svc.wait_for_messages(first.len() as u64, Duration::from_secs(60));
    assert_eq!(svc.get("/readyz").0, 200);

    cluster.broker_down(1).unwrap();
    let down_at = std::time::Instant::now();
    wait_until(Duration::from_secs(60), "/readyz to turn 503", || {
        svc.get("/readyz").0 == 503
    });
    assert!(svc.get("/readyz").1.contains("unreachable"));
    assert_eq!(svc.get("/healthz").0, 200, "the process itself is healthy");
    // Down for 30 s in all; /readyz says so the whole time.
    while down_at.elapsed() < Duration::from_secs(30) {
        assert_eq!(svc.get("/readyz").0, 503);
        std::thread::sleep(Duration::from_secs(1));
    }
    cluster.broker_up(1).unwrap();

    produce(&brokers, &topic, second);
    wait_for_events(&svc, events.len());
    wait_until(Duration::from_secs(60), "/readyz to recover", || {
        svc.get("/readyz").0 == 200
    });
    assert_same_as_replay(&svc, &lines(&events));
    svc.stop().unwrap();
}

#[test]
fn fetch_errors_and_a_rebalance_with_redelivery_count_nothing_twice() {
    let topic = unique("rebalance");
    let group = unique("g");
    let (cluster, brokers) = cluster_with(&topic);
    let events = story("2020-03-19", 40, 12);
    let third = events.len() / 3;
    produce(&brokers, &topic, &events[..third]);
    let svc = Service::start(config(&brokers, &topic, &group), None);
    svc.wait_for_messages(third as u64, Duration::from_secs(60));

    // Fetches fail for a while; librdkafka retries them.
    cluster.request_errors(
        RDKafkaApiKey::Fetch,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 4],
    );
    produce(&brokers, &topic, &events[third..2 * third]);
    wait_for_events(&svc, 2 * third);

    // Another member joins the group, reads without committing, and leaves: the service gets
    // its partitions back and re-reads from the last commit.
    let joiner = group_member(&brokers, &group, &topic);
    wait_until(
        Duration::from_secs(60),
        "the second member to get partitions",
        || {
            let _ = joiner.poll(Duration::from_millis(100));
            joiner.assignment().map_or(0, |a| a.count()) > 0
        },
    );
    produce(&brokers, &topic, &events[2 * third..]);
    let mut taken = 0;
    for _ in 0..30 {
        if let Some(Ok(_)) = joiner.poll(Duration::from_millis(100)) {
            taken += 1;
        }
    }
    drop(joiner);
    wait_for_events(&svc, events.len());
    assert_same_as_replay(&svc, &lines(&events));
    assert!(svc.metric("gatewatch_kafka_rebalances_total") >= 2.0);
    eprintln!(
        "rebalance: the joiner read {taken} messages; the service saw {} duplicates",
        svc.metric("gatewatch_duplicates_total")
    );
    svc.stop().unwrap();
}

#[test]
fn a_rebalance_storm_loses_nothing_and_counts_nothing_twice() {
    let topic = unique("storm");
    let group = unique("g");
    let (_cluster, brokers) = cluster_with(&topic);
    let events = story("2020-03-20", 40, 13);
    let parts: Vec<&[(String, String)]> = events.chunks(events.len().div_ceil(6)).collect();
    produce(&brokers, &topic, parts[0]);
    let svc = Service::start(config(&brokers, &topic, &group), None);
    svc.wait_for_messages(parts[0].len() as u64, Duration::from_secs(60));
    // Five rounds: one or two members join (taking partitions, reading without committing)
    // while more events arrive, then leave; each join and each leave is a rebalance.
    for (round, part) in parts[1..].iter().enumerate() {
        let joiners: Vec<BaseConsumer<EagerMember>> = (0..1 + round % 2)
            .map(|_| group_member(&brokers, &group, &topic))
            .collect();
        wait_until(
            Duration::from_secs(60),
            "the joiners to get partitions",
            || {
                joiners.iter().for_each(|j| {
                    let _ = j.poll(Duration::from_millis(50));
                });
                joiners
                    .iter()
                    .any(|j| j.assignment().map_or(0, |a| a.count()) > 0)
            },
        );
        produce(&brokers, &topic, part);
        for _ in 0..10 {
            joiners.iter().for_each(|j| {
                let _ = j.poll(Duration::from_millis(50));
            });
        }
        drop(joiners);
    }
    wait_for_events(&svc, events.len());
    assert_same_as_replay(&svc, &lines(&events));
    let rebalances = svc.metric("gatewatch_kafka_rebalances_total");
    assert!(rebalances >= 10.0, "only {rebalances} rebalances");
    eprintln!(
        "rebalance storm: {rebalances} rebalances; {} redelivered duplicates dropped",
        svc.metric("gatewatch_duplicates_total")
    );
    svc.stop().unwrap();
}

#[test]
fn broker_unreachable_at_start_is_waited_for() {
    let topic = unique("late-broker");
    let (cluster, brokers) = cluster_with(&topic);
    let events = story("2020-03-20", 30, 13);
    produce(&brokers, &topic, &events);
    cluster.broker_down(1).unwrap();
    let svc = Service::start(config(&brokers, &topic, &unique("g")), None);
    std::thread::sleep(Duration::from_secs(2));
    let (status, why) = svc.get("/readyz");
    assert_eq!(status, 503, "{why}");
    assert_eq!(svc.metric("gatewatch_kafka_messages_total"), 0.0);
    cluster.broker_up(1).unwrap();
    svc.wait_for_messages(events.len() as u64, Duration::from_secs(120));
    wait_until(Duration::from_secs(60), "/readyz to turn 200", || {
        svc.get("/readyz").0 == 200
    });
    assert_same_as_replay(&svc, &lines(&events));
    svc.stop().unwrap();
}
