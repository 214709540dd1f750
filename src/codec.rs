//! The binary encoding that checkpoints are made of: a plain little-endian stream written by
//! [`Enc`] and read by [`Dec`], with Arrow batches embedded as Arrow IPC streams. Every read is
//! checked, so damaged bytes give a [`DecodeError`] and never a panic or a huge allocation.
//!
//! Owns: the primitive encodings (integers, floats, strings, options, lengths, batches). Must not
//! touch: what is encoded. The engine's state (`state::encode`) and the alert evaluator's timers
//! (`alerts`) each write their own sections with it; files and framing are `checkpoint`'s.

use arrow::array::RecordBatch;

/// Bytes that do not decode as a checkpoint.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

/// A [`DecodeError`] saying what is wrong.
pub fn bad(what: impl Into<String>) -> DecodeError {
    DecodeError(what.into())
}

/// Writes the stream.
#[derive(Default)]
pub struct Enc {
    /// The bytes so far.
    pub buf: Vec<u8>,
}

#[allow(missing_docs)]
impl Enc {
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }
    pub fn len(&mut self, n: usize) {
        self.u64(n as u64);
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.buf.extend_from_slice(b);
    }
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    pub fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
        }
    }
    pub fn opt_i64(&mut self, v: Option<i64>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.i64(v);
            }
        }
    }
    pub fn opt_f64(&mut self, v: Option<f64>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.f64(v);
            }
        }
    }
    pub fn opt_u32(&mut self, v: Option<u32>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.u32(v);
            }
        }
    }
    /// Batches as one Arrow IPC stream (the schema is written even for none).
    pub fn batches(&mut self, schema: &arrow::datatypes::Schema, batches: &[RecordBatch]) {
        let mut out = Vec::new();
        let mut w =
            arrow::ipc::writer::StreamWriter::try_new(&mut out, schema).expect("writing to memory");
        for b in batches {
            w.write(b).expect("batches share the schema");
        }
        w.finish().expect("writing to memory");
        drop(w);
        self.bytes(&out);
    }
}

/// Reads the stream; every read checks that the bytes are there.
pub struct Dec<'a> {
    b: &'a [u8],
}

#[allow(missing_docs)]
impl<'a> Dec<'a> {
    pub fn new(b: &'a [u8]) -> Dec<'a> {
        Dec { b }
    }
    pub fn is_empty(&self) -> bool {
        self.b.is_empty()
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.b.len() < n {
            return Err(bad("the checkpoint ends early"));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    pub fn f64(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_bits(self.u64()?))
    }
    /// A count, checked against what is left (each item takes at least `min_item` bytes), so a
    /// corrupt length fails cleanly instead of asking for terabytes.
    pub fn len(&mut self, min_item: usize) -> Result<usize, DecodeError> {
        let n = self.u64()?;
        if n.saturating_mul(min_item.max(1) as u64) > self.b.len() as u64 {
            return Err(bad("a length in the checkpoint is larger than the file"));
        }
        Ok(n as usize)
    }
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.len(1)?;
        self.take(n)
    }
    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes()?)
            .map_err(|_| bad("a string in the checkpoint is not UTF-8"))
    }
    fn flag(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(bad("a flag in the checkpoint is neither 0 nor 1")),
        }
    }
    pub fn opt_str(&mut self) -> Result<Option<&'a str>, DecodeError> {
        Ok(if self.flag()? {
            Some(self.str()?)
        } else {
            None
        })
    }
    pub fn opt_i64(&mut self) -> Result<Option<i64>, DecodeError> {
        Ok(if self.flag()? {
            Some(self.i64()?)
        } else {
            None
        })
    }
    pub fn opt_f64(&mut self) -> Result<Option<f64>, DecodeError> {
        Ok(if self.flag()? {
            Some(self.f64()?)
        } else {
            None
        })
    }
    pub fn opt_u32(&mut self) -> Result<Option<u32>, DecodeError> {
        Ok(if self.flag()? {
            Some(self.u32()?)
        } else {
            None
        })
    }
    pub fn batches(&mut self) -> Result<Vec<RecordBatch>, DecodeError> {
        let b = self.bytes()?;
        let r = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(b), None).map_err(
            |e| {
                bad(format!(
                    "an Arrow section of the checkpoint is damaged: {e}"
                ))
            },
        )?;
        r.collect::<Result<Vec<_>, _>>().map_err(|e| {
            bad(format!(
                "an Arrow section of the checkpoint is damaged: {e}"
            ))
        })
    }
}
