//! The one integration-test binary (one link of DataFusion, not one per file).

mod alerts;
mod cli;
mod dashboard;
mod exactness;
mod faults;
mod kafka;
mod queries;
mod service;
mod support;
