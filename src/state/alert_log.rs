//! The log of alert transitions, kept with the rest of the state for the `alerts` table.
//!
//! Owns: the plain-data shape of one transition and its retention. Must not touch: rules or
//! their evaluation (the `alerts` module computes transitions and hands them here), sinks.

use std::collections::BTreeMap;
use std::sync::Arc;

/// One alert transition (`firing` or `resolved`): a row of the `alerts` table and the record
/// every sink receives. Its JSON form (the alerts topic, webhooks, `/api/alerts`) is its
/// serialisation, times as RFC 3339.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AlertRecord {
    /// Event time of the transition (the evaluation time), epoch ms.
    #[serde(serialize_with = "rfc3339")]
    pub ts: i64,
    /// Rule name.
    pub rule: String,
    /// The instance: the server for built-in measures, `col=value,...` for SQL rules.
    pub key: String,
    /// The server, when the instance is one.
    pub server: Option<String>,
    /// `firing` or `resolved`.
    pub state: &'static str,
    /// The rule's severity.
    pub severity: String,
    /// The measured value at the transition (None when there was no data).
    pub value: Option<f64>,
    /// The threshold crossed: the firing threshold for `firing`, the clear one for `resolved`.
    pub threshold: Option<f64>,
    /// For `firing`: when the condition started to hold (start of `for`); for `resolved`:
    /// when the alert fired.
    #[serde(serialize_with = "rfc3339")]
    pub since: i64,
    /// The rule's labels.
    pub labels: BTreeMap<String, String>,
    /// Stable id: the same transition has the same id in `run` and `replay`.
    pub id: String,
}

fn rfc3339<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::event::format_rfc3339_ms(*ms))
}

impl AlertRecord {
    /// The labels as a JSON object (the `labels` column).
    pub fn labels_json(&self) -> String {
        serde_json::to_string(&self.labels).expect("string map serialises")
    }
}

/// The firing record of every instance whose newest transition is `firing`, by rule and key.
pub fn firing_now(records: &[AlertRecord]) -> Vec<&AlertRecord> {
    let mut latest: BTreeMap<(&str, &str), &AlertRecord> = BTreeMap::new();
    for r in records {
        latest.insert((&r.rule, &r.key), r);
    }
    latest
        .into_values()
        .filter(|r| r.state == "firing")
        .collect()
}

/// Transitions in retention, oldest first. Transitions are rare (a few per server per bad
/// morning), so a snapshot simply copies them.
#[derive(Debug, Default)]
pub struct AlertLog {
    records: Vec<AlertRecord>,
}

impl AlertLog {
    /// Every transition held, oldest first.
    pub fn all(&self) -> &[AlertRecord] {
        &self.records
    }

    /// Appends transitions.
    pub fn extend(&mut self, records: &[AlertRecord]) {
        self.records.extend_from_slice(records);
    }

    /// Keeps the transitions `keep` keeps.
    pub fn retain(&mut self, keep: impl FnMut(&AlertRecord) -> bool) {
        self.records.retain(keep);
    }

    /// Adds transitions of another log (a restored partition's), keeping time order; one
    /// already held (same stable id) is not added twice.
    pub fn absorb(&mut self, records: &[AlertRecord]) {
        let held: std::collections::HashSet<&str> =
            self.records.iter().map(|r| r.id.as_str()).collect();
        let new: Vec<AlertRecord> = records
            .iter()
            .filter(|r| !held.contains(r.id.as_str()))
            .cloned()
            .collect();
        self.records.extend(new);
        self.records.sort_by_key(|r| r.ts);
    }

    /// Drops transitions older than `horizon`.
    pub fn evict_before(&mut self, horizon: i64) {
        let cut = self.records.partition_point(|r| r.ts < horizon);
        self.records.drain(..cut);
    }

    /// Transitions at or after `horizon`.
    pub fn records(&self, horizon: Option<i64>) -> Arc<[AlertRecord]> {
        let from = horizon.map_or(0, |h| self.records.partition_point(|r| r.ts < h));
        self.records[from..].into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(rule: &str, key: &str, state: &'static str, ts: i64) -> AlertRecord {
        AlertRecord {
            ts,
            rule: rule.into(),
            key: key.into(),
            server: None,
            state,
            severity: "page".into(),
            value: None,
            threshold: None,
            since: ts,
            labels: BTreeMap::new(),
            id: format!("{rule}{key}{ts}"),
        }
    }

    #[test]
    fn firing_now_is_the_newest_transition_of_each_instance() {
        let log = [
            rec("a", "gw-1", "firing", 1),
            rec("a", "gw-2", "firing", 2),
            rec("a", "gw-1", "resolved", 3),
            rec("b", "gw-1", "firing", 4),
            rec("a", "gw-1", "firing", 5),
        ];
        let ids: Vec<&str> = firing_now(&log).iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["agw-15", "agw-22", "bgw-14"]);
    }
}
