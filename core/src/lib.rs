//! DashOffice core: the replica of a shop's data. Automerge documents are the truth of every
//! record; SQLite holds them durably (snapshots plus changes) and a relational projection that
//! every query reads. No sockets, no async runtime of its own: hosts drive it.

pub mod backup;
pub mod bot;
mod caller;
pub mod csv_io;
mod db;
pub mod doc;
pub mod entities;
mod error;
pub mod files;
pub mod invoice;
mod page;
mod projection;
mod replica;
pub mod repo_id;
mod search;
pub mod sync;
mod writer;

pub use caller::Caller;
pub use db::Durability;
pub use error::{CoreError, Result};
pub use replica::{Bootstrap, BootstrapInput, OpenOptions, Replica, Stats};
pub use writer::{Device, WriteCtx};

pub use dashoffice_domain as domain;
pub use rusqlite::Connection;

/// The source of "now" for every write, so tests can fix time.
pub trait Clock: Send + Sync {
    /// Unix milliseconds.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that only moves when told (tests).
#[cfg(feature = "test-support")]
#[derive(Debug, Default)]
pub struct FakeClock(pub std::sync::atomic::AtomicI64);

#[cfg(feature = "test-support")]
impl FakeClock {
    /// A clock at `ms`.
    pub fn at(ms: i64) -> Self {
        Self(std::sync::atomic::AtomicI64::new(ms))
    }
    /// Moves it forward.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(feature = "test-support")]
impl Clock for FakeClock {
    fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}
