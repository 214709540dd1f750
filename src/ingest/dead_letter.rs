//! The dead-letter file of `replay`: one JSON object per rejected record,
//! `{"reason": "...", "line": "...", "file": "...", "line_no": N}`.
//!
//! Owns: the record format. A line that is not UTF-8 is written with replacement characters
//! (the reason says `invalid_utf8`); a too-long line keeps only its first KiB. The service's
//! dead letters go to a topic instead: `ingest::kafka::dead_letter`.

use std::io::{self, Write};

use serde::Serialize;

use crate::event::Reason;

#[derive(Serialize)]
struct DeadLetter<'a> {
    reason: String,
    line: &'a str,
    file: &'a str,
    line_no: u64,
}

/// Writes dead letters to any writer (a file, or a Vec in tests).
pub struct DeadLetterWriter<W: Write> {
    out: W,
    written: u64,
}

impl<W: Write> DeadLetterWriter<W> {
    /// Wraps a writer (buffer it yourself).
    pub fn new(out: W) -> Self {
        DeadLetterWriter { out, written: 0 }
    }

    /// Writes one rejected record.
    pub fn write(
        &mut self,
        reason: Reason,
        raw: &[u8],
        file: &str,
        line_no: u64,
    ) -> io::Result<()> {
        let raw = if reason == Reason::LineTooLong {
            &raw[..raw.len().min(super::TOO_LONG_PREFIX)]
        } else {
            raw
        };
        let line = String::from_utf8_lossy(raw);
        let rec = DeadLetter {
            reason: reason.to_string(),
            line: line.trim_end_matches('\r'),
            file,
            line_no,
        };
        serde_json::to_writer(&mut self.out, &rec)?;
        self.out.write_all(b"\n")?;
        self.written += 1;
        Ok(())
    }

    /// Records written.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Flushes and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}
