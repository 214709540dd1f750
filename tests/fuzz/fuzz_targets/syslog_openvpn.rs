//! Fuzz target: one openvpn line through `event::decode_line` (see syslog_common.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("syslog_common.rs");

fuzz_target!(|data: &[u8]| check(InputFormat::OpenVpn, data));
