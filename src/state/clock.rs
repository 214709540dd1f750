//! The stream's clock guard: which events are too far ahead to be believed (`future`).
//!
//! Owns: the decision that an event's time is implausible, against the wall clock (the live
//! service only) and against the rest of the stream. Must not touch sessions, histograms or
//! anything else of a server's state: it only answers "accept or refuse" and remembers the few
//! times it needs to answer the next event.
//!
//! Why it exists: retention, idle alerts, the archive's sealing and the `concurrency` table
//! all count from the newest event time of the whole stream. One gateway whose clock says 2099
//! would move that time 79 years ahead: every other server's data would fall out of retention
//! at once, and everything that steps through event time would step through 79 years.
//!
//! The rule (documented in docs/events-and-semantics.md, *Future events*):
//! - live service: an event more than `input.max_clock_skew` ahead of the wall clock is refused;
//! - always: an event more than `input.max_lead` ahead of the newest accepted event of the
//!   stream is refused, unless the wall clock vouches for it (live: it is within `max_lead` of
//!   now), or another server has also been seen at about that time (within
//!   `max_lead` of it, refused or not: a whole fleet that goes quiet and comes back moves the
//!   stream on as soon as a second server speaks), or unless its own server is the only one
//!   keeping time (no other server within `max_lead` of the newest event: one gateway alone
//!   cannot be compared with anything, and must not be stuck after a silence) and the jump is
//!   at most [`LONE_SERVER_LEADS`] times `max_lead`.
//!
//! A refused event changes nothing but the candidate times kept here, so a broken clock can
//! never remove or alter another server's data, and a server's own newest time does not move.

use std::collections::BTreeMap;

/// How many `max_lead`s one server alone may move the stream at once: 14 (7 days with the
/// default 12 h), a long holiday with no event anywhere. Beyond it even a lone server's jump is
/// refused: with everyone else quiet, nothing else could catch a clock that says 2099.
const LONE_SERVER_LEADS: i64 = 14;

/// How many refused-ahead times are kept as candidates for corroboration; past it the oldest
/// go (a flood from one broken server costs a fixed amount of memory).
const MAX_CANDIDATES: usize = 1024;

/// The stream's newest times and the refused-ahead candidates.
#[derive(Debug, Clone, Default)]
pub(crate) struct StreamClock {
    /// The newest accepted event time and its server.
    best: Option<(i64, usize)>,
    /// The newest accepted event time of any other server, and that server.
    second: Option<(i64, usize)>,
    /// Refused-ahead event times, each with its server (the newest per time).
    candidates: BTreeMap<i64, usize>,
}

/// What the clock says of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Believable: accept it (it may still be late or a duplicate).
    Accept,
    /// Too far ahead: refuse it as `future`.
    Future,
}

impl StreamClock {
    /// A clock that has seen these servers' newest accepted times (a restored engine).
    pub(crate) fn from_newest(newest: impl IntoIterator<Item = (usize, i64)>) -> StreamClock {
        let mut c = StreamClock::default();
        for (server, ts) in newest {
            c.accepted(server, ts);
        }
        c
    }

    /// Judges an event of `server` at `ts`. `wall` is the wall clock and its allowed skew, in
    /// the live service; `max_lead` the bound against the stream. A `Future` verdict has
    /// already been remembered as a candidate.
    #[inline]
    pub(crate) fn judge(
        &mut self,
        server: usize,
        ts: i64,
        wall: Option<(i64, i64)>,
        max_lead: i64,
    ) -> Verdict {
        if let Some((now, skew)) = wall {
            if ts > now.saturating_add(skew) {
                return Verdict::Future;
            }
        }
        let Some((newest, holder)) = self.best else {
            return Verdict::Accept;
        };
        if ts <= newest.saturating_add(max_lead) {
            return Verdict::Accept;
        }
        // Live, the wall clock vouches for an event about now: the stream was only quiet (a
        // weekend), not behind.
        if wall.is_some_and(|(now, _)| ts >= now.saturating_sub(max_lead)) {
            return Verdict::Accept;
        }
        self.judge_ahead(server, ts, newest, holder, max_lead)
    }

    #[cold]
    #[inline(never)]
    fn judge_ahead(
        &mut self,
        server: usize,
        ts: i64,
        newest: i64,
        holder: usize,
        max_lead: i64,
    ) -> Verdict {
        // Alone: no other server keeps time near the newest event, so there is nothing to
        // compare with (a lone gateway after a quiet night).
        let others_near = self
            .second
            .is_some_and(|(t, _)| t >= newest.saturating_sub(max_lead));
        let lone_gap = max_lead.saturating_mul(LONE_SERVER_LEADS);
        if holder == server && !others_near && ts <= newest.saturating_add(lone_gap) {
            return Verdict::Accept;
        }
        // Corroborated: another server was seen at about this time (its events were refused
        // while it was the only one there).
        let lo = ts.saturating_sub(max_lead);
        let hi = ts.saturating_add(max_lead);
        let corroborated = self.candidates.range(lo..=hi).any(|(_, &s)| s != server);
        if corroborated {
            return Verdict::Accept;
        }
        self.candidates.insert(ts, server);
        if self.candidates.len() > MAX_CANDIDATES {
            self.candidates.pop_first();
        }
        Verdict::Future
    }

    /// Records an accepted event of `server` at `ts`.
    #[inline]
    pub(crate) fn accepted(&mut self, server: usize, ts: i64) {
        match self.best {
            Some((t, s)) if s == server => {
                if ts > t {
                    self.best = Some((ts, s));
                }
            }
            Some((t, s)) if ts > t => {
                self.second = Some((t, s));
                self.best = Some((ts, server));
            }
            Some(_) => {
                if self.second.is_none_or(|(t, s)| s == server || ts > t) {
                    let keep = self.second.filter(|&(t, s)| s == server && t >= ts);
                    self.second = keep.or(Some((ts, server)));
                }
            }
            None => self.best = Some((ts, server)),
        }
        // Candidates the stream has caught up with are no longer ahead of anything.
        if let Some((newest, _)) = self.best {
            if self
                .candidates
                .first_key_value()
                .is_some_and(|(&t, _)| t <= newest)
            {
                self.candidates = self.candidates.split_off(&(newest + 1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn top_two_follow_a_brute_force_model() {
        let mut c = StreamClock::default();
        let mut newest: BTreeMap<usize, i64> = BTreeMap::new();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let server = (x % 7) as usize;
            let ts = ((x >> 8) % 1_000) as i64;
            c.accepted(server, ts);
            let e = newest.entry(server).or_insert(ts);
            *e = (*e).max(ts);
            let mut all: Vec<(i64, usize)> = newest.iter().map(|(&s, &t)| (t, s)).collect();
            all.sort_unstable_by_key(|b| std::cmp::Reverse(b.0));
            assert_eq!(c.best.map(|b| b.0), Some(all[0].0));
            assert_eq!(c.second.map(|b| b.0), all.get(1).map(|s| s.0));
        }
    }

    #[test]
    fn a_lone_jump_ahead_is_refused_and_a_second_server_confirms_it() {
        let mut c = StreamClock::from_newest([(0, 10 * H), (1, 10 * H)]);
        assert_eq!(c.judge(0, 10 * H + H, None, H), Verdict::Accept);
        assert_eq!(c.judge(0, 40 * H, None, H), Verdict::Future);
        // The same server again: still alone there.
        assert_eq!(c.judge(0, 40 * H + 1, None, H), Verdict::Future);
        // Another server about then: the fleet really moved on.
        assert_eq!(c.judge(1, 40 * H + 5, None, H), Verdict::Accept);
        c.accepted(1, 40 * H + 5);
        assert_eq!(c.judge(0, 40 * H + 6, None, H), Verdict::Accept);
    }

    #[test]
    fn one_server_alone_is_never_stuck() {
        let mut c = StreamClock::from_newest([(0, 10 * H), (1, 2 * H)]);
        assert_eq!(c.judge(0, 20 * H, None, H), Verdict::Accept);
        // Within LONE_SERVER_LEADS of the newest, not beyond.
        assert_eq!(c.judge(0, 10 * H + 14 * H, None, H), Verdict::Accept);
        assert_eq!(c.judge(0, 10 * H + 14 * H + 1, None, H), Verdict::Future);
        // But a server behind the newest one cannot jump past it on its own.
        assert_eq!(c.judge(1, 30 * H, None, H), Verdict::Future);
    }

    #[test]
    fn the_wall_clock_refuses_what_is_ahead_of_it() {
        let mut c = StreamClock::default();
        assert_eq!(c.judge(0, 100, Some((50, 49)), H), Verdict::Future);
        assert_eq!(c.judge(0, 99, Some((50, 49)), H), Verdict::Accept);
        assert_eq!(
            c.judge(0, i64::MAX, Some((50, i64::MAX)), H),
            Verdict::Accept
        );
    }

    #[test]
    fn live_the_wall_clock_vouches_for_a_morning_after_a_quiet_weekend() {
        let mut c = StreamClock::from_newest([(0, 0), (1, 0)]);
        let monday = 61 * H;
        assert_eq!(
            c.judge(1, monday, Some((monday, H / 4)), H),
            Verdict::Accept
        );
        assert_eq!(c.judge(1, monday, None, H), Verdict::Future);
    }

    #[test]
    fn candidates_stay_bounded() {
        let mut c = StreamClock::from_newest([(0, 0), (1, 0)]);
        for i in 0..10 * MAX_CANDIDATES as i64 {
            assert_eq!(c.judge(1, 100 * H + i * 10 * H, None, H), Verdict::Future);
        }
        assert_eq!(c.candidates.len(), MAX_CANDIDATES);
    }
}
