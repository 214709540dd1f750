//! What the integration tests (`tests/it/support.rs`) and the Kafka benches (`benches/common`)
//! both need, in one place: topics made through the admin API, a consumer config with quick
//! group timings, and `gatewatch run` in this process with a shutdown the caller controls.
//! Included by both with `#[path]` (it is not a test target of its own).
#![allow(dead_code)] // each includer uses a part

use std::net::SocketAddr;
use std::time::Duration;

use gatewatch::app::service::{self, Embedded, Started};
use gatewatch::config::Config;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

/// Creates a topic of `partitions` partitions through the admin API.
pub fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ))
        .unwrap();
    r.into_iter().for_each(|r| {
        r.unwrap();
    });
}

/// A config for consuming `topic` at `brokers` as `group`, HTTP on a free loopback port, with
/// quick group timings (JoinGroup waits about `session.timeout.ms` / 2 on tansu).
pub fn config(brokers: &str, topic: &str, group: &str) -> Config {
    let mut c = Config::default();
    c.kafka.brokers = Some(brokers.to_string());
    c.kafka.topics = vec![topic.to_string()];
    c.kafka.group = group.to_string();
    c.kafka
        .properties
        .insert("session.timeout.ms".into(), "6000".into());
    c.kafka
        .properties
        .insert("heartbeat.interval.ms".into(), "500".into());
    c.http.bind = "127.0.0.1:0".parse().unwrap();
    // No PostgreSQL side unless a test asks for one (tests/it/postgres.rs).
    c.pg.bind = None;
    c
}

/// `gatewatch run` in this process, on its own runtime and thread.
pub struct Service {
    pub http: SocketAddr,
    /// The PostgreSQL address, when `pg.bind` was set.
    pub pg: Option<SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Service {
    /// Starts the service with two runtime workers.
    pub fn start(cfg: Config, embedded: Option<Embedded>) -> Service {
        Service::start_with_workers(cfg, embedded, 2)
    }

    /// Starts the service; returns once it listens (panics with `serve`'s error if it fails).
    pub fn start_with_workers(cfg: Config, embedded: Option<Embedded>, workers: usize) -> Service {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel::<Started>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(service::serve(
                cfg,
                embedded,
                async move {
                    let _ = stop_rx.await;
                },
                move |s| {
                    let _ = addr_tx.send(s.clone());
                },
            ))
        });
        let started = match addr_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(s) => s,
            Err(_) => {
                let r = thread.join().unwrap();
                panic!("the service did not start: {r:?}");
            }
        };
        Service {
            http: started.http,
            pg: started.pg,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// Stops it the way Ctrl-C does; returns how `serve` ended.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
