//! Concurrency per second, swept from session intervals.
//!
//! Owns: the exact meaning of the `concurrency` table. A session is active on `[started, ended)`:
//! it counts at the millisecond it connects and not at the one it ends. All changes at the same
//! millisecond are simultaneous, so a disconnect and a connect at one instant never make a
//! phantom peak. Per second `s`: `sessions` is the value at the last instant of the second,
//! `peak` the highest value at any instant in it, `connects`/`disconnects` the sessions that
//! started/ended in it (ends of every kind, so `sessions(s) = sessions(s-1) + connects -
//! disconnects`), `rejects` the reject events in it, `capacity` the capacity in force at its end.

use std::ops::Deref;

use super::ServerSnapshot;

/// One row of the `concurrency` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecondRow {
    /// Start of the second, epoch ms.
    pub ts: i64,
    /// Concurrency at the end of the second.
    pub sessions: u32,
    /// Highest concurrency at any instant of the second.
    pub peak: u32,
    /// Sessions started in the second.
    pub connects: u32,
    /// Sessions ended in the second.
    pub disconnects: u32,
    /// Reject events in the second.
    pub rejects: u32,
    /// Capacity in force at the end of the second.
    pub capacity: Option<u32>,
}

fn floor_sec(ms: i64) -> i64 {
    ms - ms.rem_euclid(1000)
}

/// Rows from the server's first event (or `horizon`, if later) to `now`, one per second,
/// produced one at a time: memory is O(sessions), not O(seconds). `server` is a reference, or
/// anything else that derefs to the server (a query that outlives the caller holds the snapshot).
pub fn seconds<S: Deref<Target = ServerSnapshot>>(server: S, now: i64, horizon: i64) -> Seconds<S> {
    let start = server
        .first_ts
        .map_or(i64::MAX, |f| floor_sec(f.max(horizon)));
    let end = floor_sec(now);
    let mut changes: Vec<(i64, i32)> = Vec::with_capacity(server.sessions.len() * 2);
    for s in &server.sessions {
        changes.push((s.started, 1));
        if let Some(e) = s.ended {
            changes.push((e, -1));
        }
    }
    changes.sort_unstable_by_key(|c| c.0);
    let cap_idx = server.capacity_changes.partition_point(|(t, _)| *t < start);
    let capacity = if cap_idx == 0 {
        server.base_capacity
    } else {
        server.capacity_changes[cap_idx - 1].1
    };
    let reject_idx = server.rejects.partition_point(|(t, _)| *t < start);
    Seconds {
        server,
        next: start,
        end,
        changes,
        idx: 0,
        cur: 0,
        cap_idx,
        capacity,
        reject_idx,
    }
}

/// Iterator over a server's [`SecondRow`]s.
pub struct Seconds<S> {
    server: S,
    next: i64,
    end: i64,
    changes: Vec<(i64, i32)>,
    idx: usize,
    cur: i64,
    cap_idx: usize,
    capacity: Option<u32>,
    reject_idx: usize,
}

impl<S: Deref<Target = ServerSnapshot>> Seconds<S> {
    /// Rows left.
    pub fn remaining(&self) -> usize {
        if self.next > self.end {
            0
        } else {
            ((self.end - self.next) / 1000 + 1) as usize
        }
    }
}

impl<S: Deref<Target = ServerSnapshot>> Seconds<S> {
    /// How many of the next seconds (at most `max`) are quiet: nothing starts, ends, is
    /// rejected or changes capacity in them, so each is the previous second's end state
    /// repeated (`sessions = peak`, no connects, disconnects or rejects). A night or a steady
    /// morning is mostly such runs; [`Seconds::skip_quiet`] passes them in one step.
    pub fn quiet_run(&self, max: usize) -> usize {
        let mut until = self.end + 1000;
        if let Some(&(t, _)) = self.changes.get(self.idx) {
            until = until.min(t);
        }
        if let Some(&(t, _)) = self.server.capacity_changes.get(self.cap_idx) {
            until = until.min(t);
        }
        if let Some(&(t, _)) = self.server.rejects.get(self.reject_idx) {
            until = until.min(t);
        }
        // Second `s` is quiet when the next thing happens after its last millisecond.
        let quiet = (until - self.next).div_euclid(1000).max(0) as usize;
        quiet.min(max).min(self.remaining())
    }

    /// Passes `k` quiet seconds (as counted by [`Seconds::quiet_run`]) and returns the row they
    /// all share, `ts` being the first one's.
    pub fn skip_quiet(&mut self, k: usize) -> SecondRow {
        debug_assert!(k <= self.quiet_run(k));
        let row = SecondRow {
            ts: self.next,
            sessions: self.cur.max(0) as u32,
            peak: self.cur.max(0) as u32,
            connects: 0,
            disconnects: 0,
            rejects: 0,
            capacity: self.capacity,
        };
        self.next += 1000 * k as i64;
        row
    }
}

impl<S: Deref<Target = ServerSnapshot>> Iterator for Seconds<S> {
    type Item = SecondRow;

    fn next(&mut self) -> Option<SecondRow> {
        if self.next > self.end {
            return None;
        }
        let s_ms = self.next;
        let e_ms = s_ms + 999;
        self.next += 1000;
        let ch = &self.changes;
        let (mut connects, mut disconnects) = (0u32, 0u32);
        // Everything up to the first instant of the second; only changes inside it are counted.
        while self.idx < ch.len() && ch[self.idx].0 <= s_ms {
            let (t, d) = ch[self.idx];
            self.cur += d as i64;
            if t == s_ms {
                if d > 0 {
                    connects += 1;
                } else {
                    disconnects += 1;
                }
            }
            self.idx += 1;
        }
        let mut peak = self.cur;
        while self.idx < ch.len() && ch[self.idx].0 <= e_ms {
            let at = ch[self.idx].0;
            while self.idx < ch.len() && ch[self.idx].0 == at {
                let d = ch[self.idx].1;
                self.cur += d as i64;
                if d > 0 {
                    connects += 1;
                } else {
                    disconnects += 1;
                }
                self.idx += 1;
            }
            peak = peak.max(self.cur);
        }
        let caps = &self.server.capacity_changes;
        while self.cap_idx < caps.len() && caps[self.cap_idx].0 <= e_ms {
            self.capacity = caps[self.cap_idx].1;
            self.cap_idx += 1;
        }
        let mut rejects = 0;
        let rj = &self.server.rejects;
        while self.reject_idx < rj.len() && rj[self.reject_idx].0 <= e_ms {
            rejects += rj[self.reject_idx].1;
            self.reject_idx += 1;
        }
        Some(SecondRow {
            ts: s_ms,
            sessions: self.cur.max(0) as u32,
            peak: peak.max(0) as u32,
            connects,
            disconnects,
            rejects,
            capacity: self.capacity,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::SessionRow;
    use std::sync::Arc;

    fn session(start: i64, end: Option<i64>) -> SessionRow {
        SessionRow {
            session: Arc::from("s"),
            started: start,
            ended: end,
            end_reason: None,
            user: None,
            site: None,
            os: None,
            app: None,
            setup_ms: None,
        }
    }

    #[test]
    fn boundaries_are_exact() {
        let srv = ServerSnapshot {
            name: "a".into(),
            site: None,
            state: None,
            base_capacity: Some(2),
            capacity_changes: vec![(2_500, Some(5))],
            first_ts: Some(1_000),
            max_ts: Some(3_000),
            // [1000,2000) and [2000, open): hand-over at 2000 is not a peak of 2.
            sessions: vec![
                session(1_000, Some(2_000)),
                session(2_000, None),
                session(1_500, Some(1_600)),
            ],
            rejects: vec![(2_000, 3)],
            auth_fails: Vec::new(),
            latency: Default::default(),
        };
        let rows: Vec<SecondRow> = seconds(&srv, 3_400, 0).collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(
            (
                rows[0].sessions,
                rows[0].peak,
                rows[0].connects,
                rows[0].disconnects
            ),
            (1, 2, 2, 1)
        );
        assert_eq!(
            (
                rows[1].sessions,
                rows[1].peak,
                rows[1].connects,
                rows[1].disconnects,
                rows[1].rejects
            ),
            (1, 1, 1, 1, 3)
        );
        assert_eq!((rows[1].capacity, rows[0].capacity), (Some(5), Some(2)));
        assert_eq!(rows[2].sessions, 1);
    }

    /// Quiet runs passed in one step give exactly the rows of the second-by-second sweep.
    #[test]
    fn quiet_runs_equal_the_sweep() {
        let srv = ServerSnapshot {
            name: "a".into(),
            site: None,
            state: None,
            base_capacity: Some(2),
            capacity_changes: vec![(7_000, Some(5)), (30_999, None)],
            first_ts: Some(1_200),
            max_ts: Some(60_000),
            sessions: vec![
                session(1_200, Some(12_000)),
                session(3_000, None),
                session(12_000, Some(12_001)),
                session(40_500, Some(55_999)),
            ],
            rejects: vec![(20_000, 1), (20_999, 2)],
            auth_fails: Vec::new(),
            latency: Default::default(),
        };
        for max in [1, 2, 3, 7, 1000] {
            let expected: Vec<SecondRow> = seconds(&srv, 61_500, 0).collect();
            let mut it = seconds(&srv, 61_500, 0);
            let mut got = Vec::new();
            while it.remaining() > 0 {
                let q = it.quiet_run(max);
                if q == 0 {
                    got.push(it.next().unwrap());
                } else {
                    let row = it.skip_quiet(q);
                    got.extend((0..q as i64).map(|k| SecondRow {
                        ts: row.ts + 1000 * k,
                        ..row
                    }));
                }
            }
            assert!(it.next().is_none());
            assert_eq!(got, expected, "max {max}");
        }
    }
}
