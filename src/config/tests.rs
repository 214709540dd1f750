//! The config module's unit tests.

use super::*;

#[test]
fn parses_a_full_file() {
    let c = Config::parse(
        "[engine]\nallowed_lateness = \"2m\"\nsession_timeout = \"1h\"\nretention = \"6h\"\n\n[servers.gw-01]\ncapacity = 120\nsite = \"gland\"\n[servers.gw-02]\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.engine.allowed_lateness_ms, 120_000);
    assert_eq!(c.engine.session_timeout_ms, 3_600_000);
    assert_eq!(c.engine.servers["gw-01"].capacity, Some(120));
    assert_eq!(c.engine.servers["gw-02"].capacity, None);
}

#[test]
fn explains_mistakes() {
    let e = Config::parse("[engine]\nlateness = \"5m\"\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown field `lateness`") && e.contains("line 2"),
        "{e}"
    );
    let e = Config::parse("[engine]\nretention = \"soon\"\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a duration"), "{e}");
    let e = Config::parse("[servers.a]\ncapacity = 0\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("greater than 0"), "{e}");
}

#[test]
fn kafka_and_http() {
    let c = Config::parse(
        "[kafka]\nbrokers = \"k1:9092,k2:9092\"\ntopics = [\"a\", \"b\"]\ngroup = \"g\"\n[kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\n\"fetch.wait.max.ms\" = 50\n[http]\nbind = \"0.0.0.0:9000\"\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.kafka.brokers.as_deref(), Some("k1:9092,k2:9092"));
    assert_eq!(c.kafka.topics, vec!["a", "b"]);
    assert_eq!(c.kafka.dead_letter_topic_for("a"), "a.dlq");
    assert_eq!(c.kafka.properties["fetch.wait.max.ms"], "50");
    assert_eq!(c.http.bind.port(), 9000);
    let e = Config::parse("[kafka]\ntopics = [\"bad topic\"]\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a valid Kafka topic name"), "{e}");
    let e = Config::parse("[http]\nbind = \"localhost\"\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("IP:PORT"), "{e}");
    let e = Config::parse("[kafka.properties]\n\"group.id\" = \"x\"\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("kafka.group"), "{e}");
}

#[test]
fn postgres_front_door() {
    let c = Config::default();
    assert_eq!(c.pg.bind, Some("127.0.0.1:5433".parse().unwrap()));
    assert!(!c.pg.bind_configured);
    let c = Config::parse(
        "[pg]\nbind = \"0.0.0.0:6543\"\nmax_connections = 8\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.pg.bind.unwrap().port(), 6543);
    assert!(c.pg.bind_configured);
    assert_eq!(c.pg.max_connections, 8);
    assert_eq!(c.pg.tls_key.as_deref(), Some(std::path::Path::new("k.pem")));
    let off = Config::parse("[pg]\nbind = \"off\"\n", "t.toml").unwrap();
    assert_eq!(off.pg.bind, None);
    for (toml, says) in [
        ("bind = \"localhost\"", "127.0.0.1:5433, or off"),
        ("max_connections = 0", "from 1 to 65536"),
        ("tls_cert = \"c.pem\"", "go together"),
        ("tls_key = \"\"", "is empty"),
        ("port = 5433", "unknown field"),
    ] {
        let e = Config::parse(&format!("[pg]\n{toml}\n"), "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{toml}: {e}");
    }
}

#[test]
fn the_shipped_example_is_valid() {
    let c = Config::parse(
        include_str!("../../docker/gatewatch.toml"),
        "docker/gatewatch.toml",
    )
    .unwrap();
    assert_eq!(c.kafka.brokers.as_deref(), Some("kafka:9092"));
    assert_eq!(c.engine.servers.len(), 6);
}

#[test]
fn alert_rules() {
    let c = Config::parse(
        "[alerts]\ntopic = \"a.t\"\nidle_timeout = \"5s\"\n[[alerts.webhooks]]\nurl = \"http://h:1/x\"\n[[alerts.rules]]\nname = \"full\"\nmeasure = \"utilisation\"\nabove = 0.9\nclear = 0.8\nfor = \"2m\"\nsite = \"gland\"\nlabels = { team = \"ra\" }\n[[alerts.rules]]\nname = \"q\"\nsql = \"SELECT 1 AS value\"\n",
        "t.toml",
    )
    .unwrap();
    let a = &c.alerts;
    assert_eq!((a.topic.as_str(), a.idle_timeout_ms), ("a.t", 5000));
    assert_eq!(a.webhooks[0].retries, 3);
    let r = &a.rules[0];
    assert_eq!(
        (
            r.threshold,
            r.clear,
            r.for_ms,
            r.every_ms,
            r.severity.as_str()
        ),
        (Some(0.9), Some(0.8), 120_000, 10_000, "warning")
    );
    assert_eq!(r.scope, Scope::Site("gland".into()));
    assert_eq!(a.rules[1].every_ms, 60_000);
    assert_eq!(a.rules[1].threshold, None);
    for (toml, says) in [
        (
            "name = \"x\"\nmeasure = \"util\"\nabove = 1",
            "not one of utilisation",
        ),
        ("name = \"x\"\nmeasure = \"utilisation\"", "set a threshold"),
        (
            "name = \"x\"\nmeasure = \"utilisation\"\nabove = 0.9\nclear = 0.95",
            "safe side",
        ),
        (
            "name = \"x\"\nmeasure = \"rtt_p99\"\nabove = 9\nwindow = \"90s\"",
            "whole number of minutes",
        ),
        (
            "name = \"x\"\nsql = \"SELECT 1\"\nmeasure = \"rtt_p99\"",
            "not both",
        ),
        (
            "name = \"x\"\nmeasure = \"utilisation\"\nabove = 1\nfor = \"soon\"",
            "not a duration",
        ),
    ] {
        let e = Config::parse(&format!("[[alerts.rules]]\n{toml}\n"), "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains(says) && e.contains("\"x\""), "{e}");
    }
    let e = Config::parse(
        "[[alerts.rules]]\nname = \"x\"\nsql = \"SELECT 1\"\n[[alerts.rules]]\nname = \"x\"\nsql = \"SELECT 1\"\n",
        "t.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("two rules are named"), "{e}");
}

#[test]
fn the_shipped_rules_are_valid() {
    let c = Config::parse(DEMO_RULES, "docker/alert-rules.toml").unwrap();
    assert_eq!(c.alerts.rules.len(), 5);
}

#[test]
fn durations() {
    assert_eq!(parse_duration_ms("250ms"), Some(250));
    assert_eq!(parse_duration_ms("5m"), Some(300_000));
    assert_eq!(parse_duration_ms("1d"), Some(86_400_000));
    assert_eq!(parse_duration_ms("5"), None);
    assert_eq!(parse_duration_ms("m"), None);
}

/// Topics as names or `[[kafka.topics]]` tables with a format; `[input]` year and zone; each
/// mistake in one sentence naming what to write instead.
#[test]
fn topic_formats_and_syslog_time() {
    let c = Config::parse(
        "[[kafka.topics]]\nname = \"asa\"\nformat = \"cisco-asa\"\n[[kafka.topics]]\nname = \"mixed\"\nformat = \"auto\"\n[[kafka.topics]]\nname = \"own\"\nformat = \"json\"\n[[kafka.topics]]\nname = \"plain\"\n[input]\nyear = 2020\ntimezone = \"+01:00\"\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.kafka.topics, ["asa", "mixed", "own", "plain"]);
    assert_eq!(c.kafka.format_of("asa"), InputFormat::CiscoAsa);
    assert_eq!(c.kafka.format_of("mixed"), InputFormat::Auto);
    assert_eq!(c.kafka.format_of("own"), InputFormat::Json);
    assert_eq!(c.kafka.format_of("plain"), InputFormat::Json);
    assert_eq!(c.kafka.formats.len(), 2);
    assert_eq!(c.input.year, Some(2020));
    assert_eq!(c.input.timezone, LocalTime::Offset(3_600_000));
    let mixed = Config::parse(
        "[kafka]\ntopics = [\"a\", { name = \"b\", format = \"pulse\" }]\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(mixed.kafka.format_of("b"), InputFormat::Pulse);
    assert_eq!(Config::default().input, InputConfig::default());
    for (text, says) in [
        (
            "[[kafka.topics]]\nname = \"a\"\nformat = \"asa\"\n",
            "use one of json, cisco-asa",
        ),
        ("[input]\nyear = 12\n", "input.year = 12 is not a year"),
        ("[input]\ntimezone = \"Mars\"\n", "is not a time zone"),
        ("[[kafka.topics]]\nformat = \"pulse\"\n", "kafka.topics"),
    ] {
        let e = Config::parse(text, "t.toml").unwrap_err().to_string();
        assert!(e.contains(says), "{text:?}: {e}");
    }
}

#[test]
fn cluster_section_and_its_shipped_examples() {
    assert_eq!(Config::default().cluster.state_store, None);
    let c = Config::parse(
        "[cluster]\nstate_store = \"s3://ops/gatewatch\"\nadvertise = \"10.0.0.7\"\nquery_wait = \"30s\"\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.cluster.state_store.unwrap().0, "s3://ops/gatewatch");
    assert_eq!(c.cluster.advertise.as_deref(), Some("10.0.0.7"));
    assert_eq!(c.cluster.query_wait_ms, 30_000);
    for (toml, says) in [
        ("state_store = \"/shared\"", "is not a URL"),
        ("state_store = \"file://shared\"", "three slashes"),
        ("state_store = \"ftp://h/x\"", "file:///dir, s3://bucket"),
        ("advertise = \"10.0.0.7:8080\"", "no port"),
        ("query_wait = \"1h\"", "up to 10m"),
    ] {
        let e = Config::parse(&format!("[cluster]\n{toml}\n"), "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{toml}: {e}");
    }
    for (text, name) in [
        (
            include_str!("../../docker/gatewatch-cluster.toml"),
            "docker/gatewatch-cluster.toml",
        ),
        (
            include_str!("../../docs/cluster-local.toml"),
            "docs/cluster-local.toml",
        ),
    ] {
        let c = Config::parse(text, name).unwrap();
        assert!(c.cluster.state_store.is_some(), "{name}");
    }
}
