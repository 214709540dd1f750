//! The per-server reorder buffer: accepted session-changing events wait here until the server's
//! watermark (newest event minus `allowed_lateness`) has passed them, then leave in event-time
//! order (same millisecond: server, connect, latency, disconnect; then arrival).
//!
//! Owns: that order. Must not touch: what an event does once it leaves (that is `sessions`).

use std::sync::Arc;

use super::engine::*;
use super::sessions::*;
use crate::event::{ChunkView, EventType};

/// An accepted event waiting in its server's reorder buffer.
pub(super) struct Pending {
    pub(super) ts: i64,
    /// The rank (see [`rank`]) in the top two bits, the arrival sequence number below: one
    /// integer orders events of the same millisecond.
    pub(super) order: u64,
    pub(super) chunk: Arc<ChunkView>,
    pub(super) row: u32,
}

impl Pending {
    pub(super) const SEQ_BITS: u32 = 62;

    pub(super) fn new(ts: i64, rank: u8, seq: u64, chunk: Arc<ChunkView>, row: u32) -> Self {
        Pending {
            ts,
            order: Self::order(rank, seq),
            chunk,
            row,
        }
    }

    pub(super) fn order(rank: u8, seq: u64) -> u64 {
        debug_assert!(rank < 4 && seq < 1 << Self::SEQ_BITS);
        (rank as u64) << Self::SEQ_BITS | seq
    }

    pub(super) fn rank(&self) -> u8 {
        (self.order >> Self::SEQ_BITS) as u8
    }

    pub(super) fn seq(&self) -> u64 {
        self.order & ((1 << Self::SEQ_BITS) - 1)
    }

    pub(super) fn key(&self) -> (i64, u64) {
        (self.ts, self.order)
    }
}

/// Within one millisecond: connects first (a session that connects at t counts at t), then
/// samples, then disconnects, then server announcements (a `down` at t ends what is open at t).
pub(super) fn rank(kind: EventType) -> u8 {
    match kind {
        EventType::Connect => 0,
        EventType::Latency => 1,
        EventType::Disconnect => 2,
        _ => 3,
    }
}

impl Server {
    pub(super) fn watermark(&self, lateness: i64) -> Option<i64> {
        self.max_ts.map(|m| m - lateness)
    }

    /// Buffers an event in order. The fields come in separately and the event is built in
    /// the buffer: a `Pending` built on the stack and then moved was copied with 16-byte loads
    /// over its 8- and 4-byte stores, a store-forwarding stall on every event.
    #[inline(never)]
    pub(super) fn push_pending(
        &mut self,
        ts: i64,
        rank: u8,
        seq: u64,
        chunk: &Arc<ChunkView>,
        row: u32,
    ) {
        let key = (ts, Pending::order(rank, seq));
        if self.pending.back().is_some_and(|last| last.key() > key) {
            let at = self.pending.partition_point(|q| q.key() <= key);
            let p = Pending::new(ts, rank, seq, chunk.clone(), row);
            self.pending.insert(at, p);
        } else if self.pending.len() == self.pending.capacity() {
            self.grow_pending();
            self.pending
                .push_back(Pending::new(ts, rank, seq, chunk.clone(), row));
        } else {
            // Here the compiler knows the buffer has room: `push_back` then has no call to
            // grow, so nothing is spilled around one and the fields are stored in place.
            self.pending.push_back(Pending {
                ts,
                order: key.1,
                chunk: chunk.clone(),
                row,
            });
        }
    }

    #[cold]
    #[inline(never)]
    pub(super) fn grow_pending(&mut self) {
        self.pending.reserve(self.pending.len().max(64));
    }

    /// Applies buffered events up to `frontier` in order.
    pub(super) fn drain_through(
        &mut self,
        frontier: i64,
        timeout: i64,
        symbols: &mut Symbols,
        counters: &mut Counters,
    ) {
        let mut sink = InOrderOutput {
            closed: &mut self.closed,
            capacity_changes: &mut self.capacity_changes,
            symbols,
            duplicate_connects: &mut counters.duplicate_connects,
            orphans: &mut counters.orphans,
            ended: Ended {
                own: &mut self.ended,
                before: None,
            },
        };
        while self.pending.front().is_some_and(|p| p.ts <= frontier) {
            let p = self.pending.pop_front().expect("front exists");
            self.in_order.apply(&p, timeout, &mut sink);
        }
        for series in &mut self.latency {
            series.seal_through(frontier);
        }
    }
}
