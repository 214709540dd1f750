//! Shared by the Kafka benches (included with `mod common;`): the helpers the integration tests
//! use too (topics, the in-process service), from `tests/shared/harness.rs`.

#[path = "../../tests/shared/harness.rs"]
mod harness;
#[allow(unused_imports)] // each bench uses a part
pub use harness::{config, create_topic, Service};
