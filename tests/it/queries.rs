//! Queries as data: every `queries/*.sql` runs against the checked-in fixture and its CSV output
//! must equal `queries/expected/<name>.csv`. After an intended change, regenerate with
//! `GATEWATCH_BLESS=1 cargo test --test it queries` and review the diff.

use std::path::Path;

use gatewatch::config::Config;
use gatewatch::output::Format;

const FIXTURE: &str = "tests/data/incident-2020-03-24.ndjson";

#[test]
fn every_query_answers_as_expected() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = gatewatch::app::replay_files(
        &[root.join(FIXTURE).display().to_string()],
        &Config::default(),
        None,
        2,
        false,
    )
    .unwrap();
    assert_eq!(out.counters.rejected_total(), 0);
    let mut files: Vec<_> = std::fs::read_dir(root.join("queries"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "at least 8 contention questions");
    let bless = std::env::var_os("GATEWATCH_BLESS").is_some();
    let mut failures = Vec::new();
    for f in &files {
        let sql = std::fs::read_to_string(f).unwrap();
        assert!(
            sql.starts_with("-- Question:"),
            "{} must open with a '-- Question:' comment",
            f.display()
        );
        let result = gatewatch::app::run_sql(out.snapshot.clone(), &sql)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(
            result.num_rows() > 0,
            "{} returns rows on the fixture",
            f.display()
        );
        let mut csv = Vec::new();
        gatewatch::output::write_result(&result, Format::Csv, &mut csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        let expected_path = root
            .join("queries/expected")
            .join(f.file_stem().unwrap())
            .with_extension("csv");
        if bless {
            std::fs::create_dir_all(expected_path.parent().unwrap()).unwrap();
            std::fs::write(&expected_path, &csv).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|_| {
            panic!(
                "missing {}; run with GATEWATCH_BLESS=1 to create it",
                expected_path.display()
            )
        });
        if csv != expected {
            failures.push(format!(
                "{}:\n--- expected\n{expected}\n--- got\n{csv}",
                f.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
