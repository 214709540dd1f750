//! The one integration-test binary (one link of DataFusion, not one per file).

mod alerts;
mod archive;
mod checkpoint;
mod cli;
mod cluster;
mod dashboard;
mod exactness;
mod faults;
mod gateways;
mod guardrails;
mod hostile;
mod kafka;
mod postgres;
mod queries;
mod restart;
mod service;
mod support;
