//! The layering check: keeps the picture in `lib.rs` true.
//!
//! Every top-level module sits in one layer of [`LAYERS`]; its code may name (`crate::x`) only
//! modules of lower layers. Two modules of one layer never use each other: that is how `ingest`
//! and `state` both rest on `event` without knowing each other. Test code (files named
//! `tests.rs`, and `#[cfg(test)] mod tests` blocks) may use anything, since tests build their
//! inputs with the simulator and the decoders. Comments are not read.
//!
//! Owns: the allowed order. Must not touch: anything at run time (it is compiled for tests only).

use std::collections::BTreeSet;
use std::path::Path;

/// The layers, lowest first. A module may use the modules of the layers before its own.
pub const LAYERS: &[&[&str]] = &[
    // Leaves: no other module of gatewatch.
    &["atomic_file", "codec", "http_client"],
    // Bytes to typed events, and Arrow columns of them.
    &["event"],
    // The validated configuration (it names input formats and syslog time zones of `event`).
    &["config"],
    // Input (files, Kafka) and the synthetic traffic generator: events in, no engine.
    &["ingest", "sim"],
    // The engine: decoded batches in, snapshots out.
    &["state"],
    // SQL over snapshots, and the Parquet archive.
    &["sql"],
    // What reads answers: alert rules and sinks, checkpoint files, text output.
    &["alerts", "checkpoint", "output"],
    // A cluster member's partitions: their state in the shared store as Kafka moves them.
    &["cluster"],
    // The service's front doors: HTTP, and PostgreSQL's wire protocol.
    &["http", "pg"],
    // Command-line arguments (clap stays here and in `app`).
    &["cli"],
    // Wiring of the subcommands.
    &["app"],
];

/// The layer of a top-level module.
fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// One use of a module the layering forbids.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    /// The file, relative to `src/`.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// The module the file belongs to.
    pub from: String,
    /// The module it names.
    pub to: String,
}

/// Top-level modules named by `crate::x` in `text` (non-test, non-comment lines), with lines.
pub fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            if let Some((_, next)) = lines.peek() {
                if next.trim_start().starts_with("mod tests") {
                    break; // the rest of the file is its tests
                }
            }
        }
        if t.starts_with("//") {
            continue;
        }
        let mut rest = t;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().next_back();
            rest = &rest[at + "crate::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                continue; // e.g. `$crate::` or `my_crate::`
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push((i + 1, name));
            }
        }
    }
    out
}

/// Every forbidden use under `src` (the crate's source directory).
pub fn violations(src: &Path) -> Vec<Violation> {
    let mut files = Vec::new();
    collect_rs(src, &mut files);
    let mut out = Vec::new();
    for path in files {
        let rel = path.strip_prefix(src).expect("under src");
        let rel_text = rel.to_string_lossy().replace('\\', "/");
        if rel.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let from = rel_text
            .split('/')
            .next()
            .unwrap_or_default()
            .trim_end_matches(".rs")
            .to_string();
        let Some(from_layer) = layer_of(&from) else {
            continue; // lib.rs, main.rs and this file
        };
        let text = std::fs::read_to_string(&path).expect("readable source");
        for (line, to) in crate_paths(&text) {
            if to == from {
                continue;
            }
            let allowed = layer_of(&to).is_some_and(|l| l < from_layer);
            if !allowed {
                out.push(Violation {
                    file: rel_text.clone(),
                    line,
                    from: from.clone(),
                    to,
                });
            }
        }
    }
    out.sort();
    out
}

fn collect_rs(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("readable src") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            collect_rs(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_uses_only_lower_layers() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let found = violations(&src);
        let shown: Vec<String> = found
            .iter()
            .map(|v| {
                format!(
                    "src/{}:{}: {} uses crate::{}, which is not in a lower layer (see src/layering.rs)",
                    v.file, v.line, v.from, v.to
                )
            })
            .collect();
        assert!(shown.is_empty(), "\n{}", shown.join("\n"));
    }

    #[test]
    fn every_top_level_module_has_a_layer() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
        let declared: BTreeSet<&str> = lib
            .lines()
            .filter_map(|l| l.trim().strip_prefix("pub mod "))
            .map(|m| m.trim_end_matches(';'))
            .collect();
        assert!(!declared.is_empty());
        for m in &declared {
            assert!(layer_of(m).is_some(), "module {m} has no layer in LAYERS");
        }
    }

    #[test]
    fn the_check_sees_paths_and_skips_comments_and_tests() {
        let text = "use crate::state::Engine;\n\
                    // crate::app in a comment\n\
                    let x = crate::sql::run(); let y = $crate::z;\n\
                    #[cfg(test)]\n\
                    mod tests {\n    use crate::sim::Rng;\n}\n";
        assert_eq!(
            crate_paths(text),
            vec![(1, "state".to_string()), (3, "sql".to_string())]
        );
    }

    #[test]
    fn a_backwards_import_is_a_violation() {
        let dir = std::env::temp_dir().join(format!("gatewatch-layering-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("ingest")).unwrap();
        std::fs::write(dir.join("ingest/mod.rs"), "use crate::state::Engine;\n").unwrap();
        std::fs::write(dir.join("event.rs"), "use crate::codec::X;\n").unwrap();
        let v = violations(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            v,
            vec![Violation {
                file: "ingest/mod.rs".into(),
                line: 1,
                from: "ingest".into(),
                to: "state".into(),
            }]
        );
    }
}
