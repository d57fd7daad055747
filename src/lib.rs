//! Discern: a SQL query engine for case-control statistics.
//!
//! Apache DataFusion with Discern's statistical functions (`discern-udfs`), tables of sharded
//! Parquet on local disk or S3, and a memory limit that holds (queries spill or fail alone).

pub mod bounded_aggregate;
pub mod cluster;
pub mod config;
pub mod demo_data;
pub mod error;
pub mod output;
pub mod query;
pub mod server;
pub mod session;
pub mod storage;
