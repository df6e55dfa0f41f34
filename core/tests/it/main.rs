//! Core integration tests: replicas on real SQLite files exchanging changes.

// A test states what must hold; a failed unwrap is a failed expectation, reported with its line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod convergence;
mod credentials;
mod fixtures;
mod inbox;
mod invoice;
mod migration;
mod report;
mod search;
mod sync_protocol;
