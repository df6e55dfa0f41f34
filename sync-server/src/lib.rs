//! The DashOffice relay as a library: storage trait and SQLite store, the sync hub, sessions over
//! QUIC and WebSocket, enrolment and the HTTP API. The `dashoffice-relay` binary wires them up.

// Handlers answer `ApiResult` like the edge node's API; the error is built once per failed request.
#![allow(clippy::result_large_err)]

pub mod console;
pub mod enrol;
pub mod http;
pub mod hub;
pub mod log;
pub mod mail;
pub mod quic;
pub mod session;
pub mod store;
pub mod whatsapp;

/// Held while the relay serves, and by the commands that must not run beside it. The lock goes
/// with the process, so a relay that was killed leaves nothing to clean up.
pub fn lock_data_dir(dir: &std::path::Path, held: &str) -> anyhow::Result<std::fs::File> {
    use anyhow::Context;
    let path = dir.join("relay.lock");
    dashoffice_core::files::lock(&path)
        .with_context(|| format!("opening {}", path.display()))?
        .with_context(|| format!("{held} {} (stop it first)", dir.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_second_relay_on_a_folder_in_use_is_refused() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let held = lock_data_dir(dir.path(), "another dashoffice-relay is serving").expect("the first lock");
        let e = lock_data_dir(dir.path(), "another dashoffice-relay is serving").expect_err("a second one").to_string();
        assert!(e.starts_with("another dashoffice-relay is serving") && e.ends_with("(stop it first)"), "{e}");
        drop(held);
        lock_data_dir(dir.path(), "another dashoffice-relay is serving").expect("free again once the first ends");
    }
}
