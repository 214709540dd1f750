//! The one integration-test binary (one link of DataFusion, not one per file).

mod cli;
mod exactness;
mod queries;
