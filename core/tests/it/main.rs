//! Core integration tests: replicas on real SQLite files exchanging changes.

mod convergence;
mod fixtures;
mod migration;
mod sync_protocol;
