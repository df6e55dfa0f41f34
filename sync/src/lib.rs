//! DashOffice sync: the automerge-repo wire protocol (CBOR messages carrying Automerge sync
//! messages), QUIC with pinned certificates, and a replica's sync client. The relay
//! (`sync-server/`) serves the other end.

pub mod client;
pub mod framing;
pub mod proto;
pub use dashoffice_core::repo_id;
pub mod tls;

pub use client::{ClientConfig, Enrolment, LocalLink, SyncError, SyncHandle, set_aside_identity};
