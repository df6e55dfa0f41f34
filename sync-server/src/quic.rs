//! QUIC: replicas connect with their device certificate, send `join` on one bidirectional
//! stream, and (once recognised or enrolled) sync in automerge-repo messages.

use std::{sync::Arc, time::Duration};

use dashoffice_sync::{
    LocalLink,
    framing::{self, Frames, frame_quic},
    proto::{Message, PROTOCOL_VERSION, PeerMetadata},
    tls,
};

use crate::{
    enrol,
    hub::{Hub, now_ms},
    session::{self, Io, Naming},
    store::{Credential, Device},
};

/// Application close codes.
const CLOSE_REFUSED: u32 = 1;
const CLOSE_PROTOCOL: u32 = 2;
const CLOSE_DONE: u32 = 0;

/// Accepts connections until the endpoint closes. Runs on the runtime that drives the endpoint
/// (see `relay_quic_runtime` in main.rs), so every connection's QUIC work (packets, keep-alives,
/// timers) stays there; each replica's session, which does the sync work, runs on `sessions`.
pub async fn accept_loop(endpoint: quinn::Endpoint, hub: Arc<Hub>, sessions: tokio::runtime::Handle) {
    while let Some(incoming) = endpoint.accept().await {
        let remote = incoming.remote_address();
        // Accepting here makes the connection's driver a task of this runtime.
        let connecting = match incoming.accept() {
            Ok(c) => c,
            Err(e) => {
                handshake_failed(remote, &e);
                continue;
            }
        };
        let hub = hub.clone();
        sessions.spawn(async move {
            match connecting.await {
                Ok(conn) => handle(conn, hub).await,
                Err(e) => handshake_failed(remote, &e),
            }
        });
    }
}

fn handshake_failed(remote: std::net::SocketAddr, e: &quinn::ConnectionError) {
    metrics::counter!("dashoffice_relay_refused_connections_total", "reason" => "handshake").increment(1);
    tracing::info!(%remote, error = %e, "QUIC handshake failed");
}

/// The other end of a session: a QUIC connection, or the relay's own replica in this process
/// (whose session ends when its frames are dropped).
enum Conn {
    Quic(quinn::Connection),
    Local,
}

impl Conn {
    fn close(&self, code: u32, reason: &[u8]) {
        if let Conn::Quic(c) = self {
            c.close(code.into(), reason);
        }
    }

    fn remote(&self) -> String {
        match self {
            Conn::Quic(c) => c.remote_address().to_string(),
            Conn::Local => "in-process".into(),
        }
    }
}

fn refuse(conn: &Conn, tx: &tokio::sync::mpsc::UnboundedSender<Vec<u8>>, reason: &str, kind: &'static str) {
    metrics::counter!("dashoffice_relay_refused_connections_total", "reason" => kind).increment(1);
    tracing::info!(remote = %conn.remote(), reason, "refused a replica");
    let _ = tx.send(Message::Error { message: reason.to_string() }.encode());
    if let Conn::Quic(conn) = conn {
        let conn = conn.clone();
        let reason = reason.to_string();
        tokio::spawn(async move {
            // Give the error frame a moment to leave, then close.
            tokio::time::sleep(Duration::from_millis(200)).await;
            conn.close(CLOSE_REFUSED.into(), reason.as_bytes());
        });
    }
}

async fn handle(conn: quinn::Connection, hub: Arc<Hub>) {
    let Some(fingerprint) = tls::peer_fingerprint(&conn) else {
        conn.close(CLOSE_REFUSED.into(), b"a device certificate is required");
        return;
    };
    let (send, recv) = match tokio::time::timeout(Duration::from_secs(10), conn.accept_bi()).await {
        Ok(Ok(s)) => s,
        _ => {
            conn.close(CLOSE_PROTOCOL.into(), b"no stream opened");
            return;
        }
    };
    serve(Conn::Quic(conn), fingerprint, frame_quic(send, recv), hub).await;
}

/// The link from the relay's own service replicas (`crate::whatsapp::service`) to its hub: the
/// same handshake, enrolment, credential check and session as over QUIC, without the network and
/// its encryption between two parts of one process. The fingerprint is that of the replica's
/// device certificate, read from its own files.
pub fn local_link(hub: Arc<Hub>) -> LocalLink {
    LocalLink(Arc::new(move |fingerprint: String| {
        let (client, relay) = framing::pair();
        tokio::spawn(serve(Conn::Local, fingerprint, relay, hub.clone()));
        client
    }))
}

/// Serves a device with this certificate fingerprint on a stream: join, identification (or
/// enrolment), then its session.
async fn serve(conn: Conn, fingerprint: String, mut frames: Frames, hub: Arc<Hub>) {
    let first = match tokio::time::timeout(Duration::from_secs(10), frames.rx.recv()).await {
        Ok(Some(Ok(b))) => b,
        _ => {
            refuse(&conn, &frames.tx, "expected a join message", "protocol");
            return;
        }
    };
    let (sender, meta) = match Message::decode(&first) {
        Ok(Message::Join { sender_id, peer_metadata, supported_protocol_versions }) => {
            if !supported_protocol_versions.iter().any(|v| v == PROTOCOL_VERSION) {
                refuse(&conn, &frames.tx, "unsupported protocol version (this relay speaks \"1\")", "protocol");
                return;
            }
            (sender_id, peer_metadata)
        }
        Ok(_) => {
            refuse(&conn, &frames.tx, "expected a join message", "protocol");
            return;
        }
        Err(e) => {
            refuse(&conn, &frames.tx, &e.to_string(), "garbage");
            return;
        }
    };
    let device = match identify(&hub, &fingerprint, &meta).await {
        Ok(d) => d,
        Err((reason, kind)) => {
            refuse(&conn, &frames.tx, &reason, kind);
            return;
        }
    };
    let (shop, branch, dev) = (device.shop_id.clone(), device.branch_id.clone(), device.id.clone());
    let doc_count = hub
        .blocking(move |s| {
            s.touch_device(&dev, now_ms())?;
            Ok(s.scope_docs(&shop, branch.as_deref())?.len() as u64)
        })
        .await
        .unwrap_or(0);
    let peer = Message::Peer {
        sender_id: hub.peer_id.clone(),
        peer_metadata: PeerMetadata {
            is_ephemeral: Some(false),
            device_id: Some(device.id.clone()),
            shop_id: Some(device.shop_id.clone()),
            branch_id: device.branch_id.clone(),
            doc_count: Some(doc_count),
            ..Default::default()
        },
        selected_protocol_version: PROTOCOL_VERSION.into(),
        target_id: sender.clone(),
    };
    let _ = frames.tx.send(peer.encode());
    let transport = if matches!(conn, Conn::Local) { "local" } else { "quic" };
    let (session_id, kick) = hub.register(&device, transport);
    hub.replace_older(&device.id, session_id, transport);
    tracing::info!(device = %device.id, name = %device.name, remote = %conn.remote(), documents = doc_count, "replica connected");
    let io = Io { rx: frames.rx, tx: frames.tx };
    let end = session::serve(hub.clone(), device.clone(), io, Naming::Replica, sender, session_id, kick).await;
    hub.unregister(&device.id, session_id);
    match end {
        session::End::Closed => conn.close(CLOSE_DONE, b"bye"),
        session::End::Replaced => conn.close(CLOSE_DONE, crate::hub::REPLACED.as_bytes()),
        session::End::Revoked(r) => {
            tokio::time::sleep(Duration::from_millis(100)).await;
            conn.close(CLOSE_REFUSED, r.as_bytes())
        }
        session::End::Protocol(r) => {
            tracing::info!(device = %device.id, reason = %r, "closed a session that broke the protocol");
            tokio::time::sleep(Duration::from_millis(100)).await;
            conn.close(CLOSE_PROTOCOL, b"protocol error")
        }
    }
    tracing::info!(device = %device.id, "replica disconnected");
}

/// The enrolled device behind a certificate, enrolling it with its code on first contact.
async fn identify(hub: &Arc<Hub>, fingerprint: &str, meta: &PeerMetadata) -> Result<Device, (String, &'static str)> {
    let fp = fingerprint.to_string();
    let known = hub.blocking(move |s| s.device_by_fingerprint(&fp)).await.map_err(|e| (e.to_string(), "storage"))?;
    if let Some(d) = known {
        if d.revoked_at.is_some() {
            return Err(("this device was revoked".into(), "revoked"));
        }
        return Ok(d);
    }
    let Some(code) = meta.enrolment_code.clone() else {
        return Err(("unknown device: enrol it with a one-time enrolment code".into(), "unknown"));
    };
    let name = meta.device_name.clone().unwrap_or_else(|| "replica".into());
    // The same limit as a WebSocket client's name (`POST /api/v1/enrol`).
    if name.chars().count() > 100 {
        return Err(("deviceName is longer than 100 characters".into(), "bad-name"));
    }
    enrol::redeem(hub, &code, &name, Credential::Certificate(fingerprint.to_string())).await.map_err(|e| match e {
        enrol::RedeemFailure::Refused(m) => (m, "bad-code"),
        enrol::RedeemFailure::Store(m) => {
            tracing::error!(error = %m, "enrolment: the store failed");
            ("the relay could not store the enrolment; try again shortly".into(), "storage")
        }
    })
}

/// The relay's QUIC endpoint settings with the keys of its connection ids and stateless resets
/// (RFC 9000, 10.3) kept in `<data_dir>/quic-reset-key`, so they outlive the process: after a
/// restart, a replica still talking to the relay that was is told with its next packet that its
/// connection is gone (instead of finding out at its idle timeout, half a minute later) and
/// reconnects.
pub fn endpoint_config(dir: &std::path::Path) -> anyhow::Result<quinn::EndpointConfig> {
    // 64 bytes of HMAC key for the reset tokens, then 8 for the connection ids' key.
    use anyhow::{Context, bail};
    const LEN: usize = 72;
    let path = dir.join("quic-reset-key");
    if !path.exists() {
        let mut key = [0u8; LEN];
        rand::fill(&mut key[..]);
        dashoffice_core::files::write_private(&path, &key).with_context(|| format!("creating {}", path.display()))?;
    }
    let key = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let Some((reset, cid)) = key.split_first_chunk::<64>().filter(|(_, rest)| rest.len() == LEN - 64) else {
        bail!(
            "{} must hold {LEN} bytes (it has {}): delete it and the relay makes a new one",
            path.display(),
            key.len()
        );
    };
    let cid = u64::from_le_bytes(cid.try_into()?);
    let mut cfg = quinn::EndpointConfig::new(Arc::new(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, reset)));
    cfg.cid_generator(move || Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid)));
    Ok(cfg)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_quic_keys_outlive_a_restart_and_a_damaged_key_file_is_named() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("quic-reset-key");
        endpoint_config(dir.path()).expect("first start makes the keys");
        let first = std::fs::read(&path).expect("the key file");
        assert_eq!(first.len(), 72);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o077, 0, "only the relay's user reads its keys");
        }
        endpoint_config(dir.path()).expect("a restart reads them");
        assert_eq!(std::fs::read(&path).expect("the key file"), first, "a restart keeps the same keys");

        std::fs::write(&path, b"short").expect("damaging the file");
        let e = endpoint_config(dir.path()).expect_err("a damaged key file").to_string();
        assert!(e.contains("quic-reset-key must hold 72 bytes (it has 5)"), "{e}");
    }
}
