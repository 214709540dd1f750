//! Placement from the members' entries, and the scan node through its codec.

use super::*;
use crate::config::StateStoreUrl;

fn entry(
    member: &str,
    age_ms: u64,
    restored: &[(i32, u64)],
    servers: &[(i32, &[&str])],
) -> Vec<u8> {
    serde_json::to_vec(&MemberEntry {
        member: member.into(),
        flight: format!("http://{member}"),
        updated_ms: super::super::now_ms() - age_ms,
        restored: restored
            .iter()
            .map(|(p, since)| ("t".to_string(), *p, *since))
            .collect(),
        restoring: Vec::new(),
        servers: servers
            .iter()
            .map(|(p, s)| {
                (
                    ("t".to_string(), *p),
                    s.iter().map(|x| x.to_string()).collect(),
                )
            })
            .collect(),
        now_ms: Some(1_000),
        positions: Vec::new(),
    })
    .unwrap()
}

fn store_with(entries: &[(&str, Vec<u8>)]) -> (tempfile::TempDir, StateStore) {
    let dir = tempfile::tempdir().unwrap();
    let members = dir.path().join("members");
    std::fs::create_dir_all(&members).unwrap();
    for (name, bytes) in entries {
        std::fs::write(members.join(format!("{name}.json")), bytes).unwrap();
    }
    let url = StateStoreUrl::parse(&format!("file://{}", dir.path().display())).unwrap();
    (dir, StateStore::open(&url).unwrap())
}

fn partitions_of(p: &Placement) -> Vec<(String, Vec<i32>)> {
    p.tasks
        .iter()
        .map(|t| (t.member.clone(), t.partitions.iter().map(|x| x.1).collect()))
        .collect()
}

fn counts(n: i32) -> BTreeMap<String, i32> {
    BTreeMap::from([("t".to_string(), n)])
}

#[test]
fn each_partition_is_read_once_from_its_newest_live_owner() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_d, store) = store_with(&[
        ("a", entry("a:1", 0, &[(0, 10), (1, 10), (2, 10)], &[])),
        // `b` restored partition 2 after `a` last wrote its entry: `b` reads it.
        ("b", entry("b:1", 0, &[(2, 20), (3, 10)], &[])),
        // A member gone quiet long ago claims nothing any more.
        ("c", entry("c:1", 60_000, &[(0, 99), (3, 99)], &[])),
    ]);
    let p = rt
        .block_on(place(&store, &counts(4), &[], Duration::ZERO))
        .unwrap();
    assert_eq!(
        partitions_of(&p),
        vec![("a:1".into(), vec![0, 1]), ("b:1".into(), vec![2, 3])]
    );
    assert_eq!(p.now_ms, Some(1_000));
    // A member whose endpoint refused a query is left out: its partitions are in transit.
    let err = rt
        .block_on(place(
            &store,
            &counts(4),
            &["http://b:1".into()],
            Duration::ZERO,
        ))
        .unwrap_err()
        .to_string();
    // (`a` still claims partition 2, from before `b` took it: `a` says so if asked.)
    assert!(err.contains("partitions t/3 are moving"), "{err}");
}

#[test]
fn partitions_nobody_holds_are_waited_for_then_named_with_their_servers() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_d, store) = store_with(&[
        ("a", entry("a:1", 0, &[(0, 10)], &[(0, &["gw-01"])])),
        // Killed with -9: its entry is stale, but still says what it held.
        (
            "dead",
            entry("dead:1", 60_000, &[(1, 10)], &[(1, &["gw-02", "gw-05"])]),
        ),
    ]);
    let t = std::time::Instant::now();
    let err = rt
        .block_on(place(&store, &counts(3), &[], Duration::from_millis(500)))
        .unwrap_err()
        .to_string();
    assert!(t.elapsed() >= Duration::from_millis(500), "it did not wait");
    assert!(
        err.contains("partitions t/1, t/2 are moving between members")
            && err.contains("(servers gw-02, gw-05)"),
        "{err}"
    );
}

#[test]
fn the_scan_crosses_the_wire_whole() {
    let placement = Arc::new(Placement {
        tasks: vec![
            Task {
                member: "a:1".into(),
                flight: "http://a:2".into(),
                partitions: vec![("t".into(), 0), ("t".into(), 3)],
            },
            Task {
                member: "b:1".into(),
                flight: "http://b:2".into(),
                partitions: vec![("u".into(), 1)],
            },
        ],
        now_ms: Some(42),
    });
    let scan = Arc::new(MemberScanExec::new(
        Table::Concurrency,
        Some(vec![1, 2]),
        (10, 20),
        placement.clone(),
    ));
    let mut buf = Vec::new();
    MemberScanCodec
        .try_encode(
            scan.clone(),
            &mut buf,
            &datafusion_proto::physical_plan::DefaultPhysicalProtoConverter {},
        )
        .unwrap();
    let back = decode_scan(&buf).unwrap();
    let back = back.downcast_ref::<MemberScanExec>().unwrap();
    assert_eq!(back.table, Table::Concurrency);
    assert_eq!(back.projection, Some(vec![1, 2]));
    assert_eq!(back.bounds, (10, 20));
    assert_eq!(*back.placement, *placement);
    assert_eq!(back.schema(), scan.schema());
    assert!(decode_scan(&buf[..buf.len() - 3]).is_err());
}
