//! Fuzz target: the NDJSON reader (`gatewatch::ingest::file`) against line-by-line decoding.
//!
//! The first two bytes choose how the input is fed (bytes per read) and cut (block size); the
//! limits are tiny so that small inputs cross block boundaries and hit the too-long guard.
//! Every line must come out once, in order, with its line number and the decoder's verdict,
//! both when the input is read and when it is cut in place (as a memory-mapped file is).
#![no_main]

use gatewatch::ingest::file::{check_against_lines, Cutting};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [piece, block, input @ ..] = data else {
        return;
    };
    let cutting = Cutting {
        block: 1 + (*block as usize % 64),
        max_record: 96,
        too_long_prefix: 16,
        map_from: 0,
    };
    if let Err(e) = check_against_lines(input, cutting, 1 + *piece as usize) {
        panic!("{e}");
    }
});
