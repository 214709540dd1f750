//! The dashboard in a real headless Chromium (driven through chromedriver by fantoccini): a
//! service fed a fixed morning through librdkafka's in-process cluster, so the numbers on the
//! page can be compared exactly with `/api/servers`, the charts hold data, live updates arrive,
//! alerts show, and the SQL box returns rows. A screenshot is written as a test artefact.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gatewatch::config::Config;
use rdkafka::mocking::MockCluster;
use serde_json::{json, Value};

use crate::support::*;

const RULES: &str = r#"
[alerts]
idle_timeout = "1s"
[[alerts.rules]]
name = "busy"
measure = "utilisation"
above = 0.5
clear = 0.4
"#;

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn dashboard_shows_live_numbers_charts_alerts_and_sql_in_chromium() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("gw", 4, 1).unwrap();
    cluster.create_topic("gw.dlq", 1, 1).unwrap();
    cluster.create_topic("gatewatch.alerts", 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let events: Vec<(String, String)> = story("2020-03-17", 200, 2)
        .into_iter()
        .filter(|(_, l)| {
            l.contains(r#""type":"server""#) || l.contains("T07:") || l.contains("T08:")
        })
        .collect();
    produce(&brokers, "gw", &events);
    let mut cfg = config(&brokers, "gw", &unique("g"));
    cfg.alerts = Config::parse(RULES, "rules").unwrap().alerts;
    let svc = Service::start(cfg, None);
    eprintln!("dashboard test: service at {}", svc.url());
    svc.wait_for_messages(events.len() as u64, Duration::from_secs(120));
    wait_until(Duration::from_secs(30), "alerts evaluated", || {
        svc.get("/api/alerts").1.contains("\"firing\":[{")
    });

    eprintln!("dashboard test: data in");
    let port = free_port();
    let driver = Driver(
        Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver; .ci/run installs it)"),
    );
    wait_until(Duration::from_secs(20), "chromedriver", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = svc.url();
    let sessions_sql = "SELECT server, count(*) AS n FROM sessions GROUP BY server ORDER BY server";
    let (page, shot) = rt.block_on(async {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                            "--disable-dev-shm-usage", "--window-size=1400,1600"]}),
        );
        let c = fantoccini::ClientBuilder::native()
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        eprintln!("dashboard test: browser session");
        let query: String = sessions_sql
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        c.goto(&format!("{url}/?sql={query}")).await.unwrap();
        // What the page shows, read from the DOM.
        let read = r#"
          const tiles = [...document.querySelectorAll('.tile')].map(t => ({
            server: t.dataset.server, active: t.querySelector('.active').textContent,
            capacity: t.querySelector('.capacity').textContent, peak: t.querySelector('.peak').textContent,
            cls: t.className}));
          const charts = [...document.querySelectorAll('#conc .chart')].map(c => ({
            server: c.dataset.server, points: Number(c.dataset.points || 0),
            canvas: !!c.querySelector('canvas')}));
          const paint = performance.getEntriesByType('paint').find(p => p.name === 'first-contentful-paint');
          return {tiles, charts,
            updates: Number(document.querySelector('#updates').dataset.count),
            rate: Number(document.querySelector('#rate').dataset.points || 0),
            lat: Number(document.querySelector('#lat').dataset.points || 0),
            alerts: [...document.querySelectorAll('#alerts li[data-rule]')].map(l => l.dataset.key),
            rows: Number(document.querySelector('#rows').dataset.rows || -1),
            firstPaintMs: paint ? paint.startTime : null,
            asof: document.querySelector('#asof').textContent};
        "#;
        eprintln!("dashboard test: page loaded");
        let mut page = Value::Null;
        for _ in 0..150 {
            page = c.execute(read, vec![]).await.unwrap();
            let ready = page["updates"].as_u64().unwrap_or(0) >= 3
                && page["rate"].as_u64().unwrap_or(0) > 0
                && page["lat"].as_u64().unwrap_or(0) > 0
                && page["rows"].as_i64().unwrap_or(-1) >= 0
                && page["charts"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty() && a.iter().all(|c| c["points"].as_u64() > Some(0)));
            if ready {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let shot = c.screenshot().await.unwrap();
        c.close().await.unwrap();
        (page, shot)
    });
    drop(driver);

    let artefact = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&artefact, &shot).unwrap();
    println!("screenshot: {}", artefact.display());
    println!("first contentful paint: {} ms", page["firstPaintMs"]);
    assert!(shot.starts_with(b"\x89PNG"), "a PNG screenshot");

    // Live updates arrived and every chart holds data.
    assert!(page["updates"].as_u64().unwrap() >= 3, "{page}");
    assert!(
        page["rate"].as_u64().unwrap() > 0 && page["lat"].as_u64().unwrap() > 0,
        "{page}"
    );
    let servers: Value = serde_json::from_str(&svc.get("/api/servers").1).unwrap();
    let servers = servers.as_array().unwrap();
    let charts = page["charts"].as_array().unwrap();
    assert_eq!(charts.len(), servers.len(), "{page}");
    assert!(charts
        .iter()
        .all(|c| c["canvas"] == true && c["points"].as_u64() > Some(0)));

    // The numbers shown are /api/servers' (the input is finite: nothing moves any more).
    let tiles = page["tiles"].as_array().unwrap();
    assert_eq!(tiles.len(), servers.len());
    for (t, s) in tiles.iter().zip(servers) {
        assert_eq!(t["server"], s["server"]);
        assert_eq!(
            t["active"].as_str().unwrap(),
            s["active"].to_string(),
            "{t} vs {s}"
        );
        assert_eq!(
            t["capacity"].as_str().unwrap(),
            s["capacity"].to_string(),
            "{t} vs {s}"
        );
        assert_eq!(
            t["peak"].as_str().unwrap(),
            s["peak_today"].to_string(),
            "{t} vs {s}"
        );
    }
    assert_eq!(
        page["asof"].as_str().unwrap().len(),
        24,
        "event time shown: {page}"
    );

    // Firing alerts are listed, as /api/alerts has them.
    let alerts: Value = serde_json::from_str(&svc.get("/api/alerts").1).unwrap();
    let mut firing: Vec<String> = alerts["firing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap().to_string())
        .collect();
    firing.sort();
    let mut shown: Vec<String> = page["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    shown.sort();
    assert!(!firing.is_empty());
    assert_eq!(shown, firing);

    // The SQL box (filled from ?sql=) returned the rows the API returns.
    let want = svc.sql_csv(sessions_sql).lines().count() - 1;
    assert_eq!(page["rows"].as_u64().unwrap() as usize, want, "{page}");
    svc.stop().unwrap();
    drop(cluster);
}
