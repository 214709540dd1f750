//! One rule's state machine at one tick: `for`, hysteresis (`clear`), `keep_firing_for`,
//! repeats, and the records every transition becomes.
//!
//! Owns: when an instance fires and resolves, and record ids. Must not touch: how values are
//! measured (that is `measures`).

use super::*;

/// One tick of one rule: moves each instance through pending, firing and resolved.
pub(super) fn step(
    rule: &mut Rule,
    tick: i64,
    mut values: Values,
    complete: bool,
) -> Vec<Emission> {
    let cfg = &rule.cfg;
    let mut out = Vec::new();
    // When `values` is the whole answer (SQL rules), instances seen before but absent now have
    // no data: they are not bad and are clear.
    for (k, (server, _)) in rule.instances.iter().filter(|_| complete) {
        values.entry(k.clone()).or_insert_with(|| Observation {
            server: server.clone(),
            value: None,
            present: false,
        });
    }
    for (key, obs) in values {
        let Observation {
            server,
            value,
            present,
        } = obs;
        let bad = match (cfg.threshold, value) {
            (Some(t), Some(v)) => match cfg.direction {
                Direction::Above => v > t,
                Direction::Below => v < t,
            },
            (Some(_), None) => false,
            // An SQL rule without a threshold: every row it returns is firing.
            (None, _) => present,
        };
        let clear = match (cfg.clear, value) {
            (Some(c), Some(v)) => match cfg.direction {
                Direction::Above => v <= c,
                Direction::Below => v >= c,
            },
            _ => !bad,
        };
        let record = |state: &'static str, since: i64, fired_at: i64, threshold: Option<f64>| {
            let id = format!(
                "{:016x}",
                xxhash_rust::xxh3::xxh3_64(
                    format!("{}\0{key}\0{fired_at}\0{state}", cfg.name).as_bytes()
                )
            );
            AlertRecord {
                ts: tick,
                rule: cfg.name.clone(),
                key: key.clone(),
                server: server.clone(),
                state,
                severity: cfg.severity.clone(),
                value,
                threshold,
                since,
                labels: cfg.labels.clone(),
                id,
            }
        };
        let phase = rule.instances.get(&key).map(|(_, p)| p.clone());
        let next = match phase {
            None | Some(Phase::Pending { .. }) if !bad => None,
            None | Some(Phase::Pending { .. }) => {
                let since = match phase {
                    Some(Phase::Pending { since }) => since,
                    _ => tick,
                };
                if tick - since >= cfg.for_ms {
                    out.push(Emission {
                        record: record("firing", since, tick, cfg.threshold),
                        repeat: false,
                    });
                    Some(Phase::Firing {
                        since,
                        fired_at: tick,
                        clear_since: None,
                        last_sent: tick,
                        value,
                    })
                } else {
                    Some(Phase::Pending { since })
                }
            }
            Some(Phase::Firing {
                since,
                fired_at,
                clear_since,
                last_sent,
                value: fired_value,
            }) => {
                if clear {
                    let cs = clear_since.unwrap_or(tick);
                    if tick - cs >= cfg.keep_firing_for_ms {
                        out.push(Emission {
                            record: record("resolved", fired_at, fired_at, cfg.clear),
                            repeat: false,
                        });
                        None
                    } else {
                        Some(Phase::Firing {
                            since,
                            fired_at,
                            clear_since: Some(cs),
                            last_sent,
                            value: fired_value,
                        })
                    }
                } else {
                    let mut last_sent = last_sent;
                    if let Some(r) = cfg.repeat_interval_ms {
                        if tick - last_sent >= r {
                            // The same id as the firing record it repeats.
                            out.push(Emission {
                                record: record("firing", since, fired_at, cfg.threshold),
                                repeat: true,
                            });
                            last_sent = tick;
                        }
                    }
                    Some(Phase::Firing {
                        since,
                        fired_at,
                        clear_since: None,
                        last_sent,
                        value: fired_value,
                    })
                }
            }
        };
        match next {
            Some(p) => {
                rule.instances.insert(key, (server, p));
            }
            None => {
                rule.instances.remove(&key);
            }
        }
    }
    out
}
