//! A hand-driven QUIC client for the relay: it enrols like a replica but then sends whatever a
//! test tells it to (requests for documents it may not see, garbage frames, raw bytes), so tests
//! can check what a hostile or broken peer gets. It writes the length-delimited framing itself
//! (a 4-byte big-endian length, then the bytes) so it can also break it.

use std::{net::SocketAddr, time::Duration};

use dashoffice_sync::{
    proto::{Message, PROTOCOL_VERSION, PeerMetadata},
    tls::{self, Identity, Trust},
};
use tokio::runtime::Runtime;

use crate::relay::Relay;

/// One connection to the relay with its single bidirectional stream.
pub struct Probe {
    rt: Runtime,
    _dir: tempfile::TempDir,
    _endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    /// The relay's peer id (from its `peer` answer).
    pub relay_peer: String,
    /// This probe's peer id.
    pub me: String,
}

/// How a probe's read ended.
#[derive(Debug)]
pub enum Read {
    /// A decoded message.
    Message(Box<Message>),
    /// Bytes that are not an automerge-repo message.
    Undecodable(String),
    /// Nothing arrived in time.
    Timeout,
    /// The stream or the connection ended.
    Closed(String),
}

impl Probe {
    /// Connects with a fresh device certificate, joins with `code` and waits for `peer`.
    /// Returns the relay's error message when it refuses the join.
    pub fn enrol(relay: &Relay, code: &str) -> Result<(Self, PeerMetadata), String> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (identity, _) =
            Identity::load_or_create(dir.path(), "device", &["dashoffice-device"]).map_err(|e| e.to_string())?;
        let trust = Trust::Pinned(relay.fingerprint());
        let addr: SocketAddr = relay.quic.parse().map_err(|e| format!("{e}"))?;
        let (endpoint, conn, send, recv) = rt.block_on(async {
            let mut endpoint =
                quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).map_err(|e| e.to_string())?;
            endpoint.set_default_client_config(
                tls::client_config(&trust, &identity, Duration::from_secs(30)).map_err(|e| e.to_string())?,
            );
            let conn =
                endpoint.connect(addr, tls::RELAY_NAME).map_err(|e| e.to_string())?.await.map_err(|e| e.to_string())?;
            let (send, recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((endpoint, conn, send, recv))
        })?;
        let me = format!("probe-{}", uuid::Uuid::new_v4());
        let mut p =
            Probe { rt, _dir: dir, _endpoint: endpoint, conn, send, recv, relay_peer: String::new(), me: me.clone() };
        p.send(&Message::Join {
            sender_id: me,
            peer_metadata: PeerMetadata {
                enrolment_code: Some(code.to_string()),
                device_name: Some("probe".into()),
                ..Default::default()
            },
            supported_protocol_versions: vec![PROTOCOL_VERSION.into()],
        });
        match p.read(Duration::from_secs(20)) {
            Read::Message(m) => match *m {
                Message::Peer { sender_id, peer_metadata, .. } => {
                    p.relay_peer = sender_id;
                    Ok((p, peer_metadata))
                }
                Message::Error { message } => Err(message),
                other => Err(format!("expected peer, got {other:?}")),
            },
            other => Err(format!("expected peer, got {other:?}")),
        }
    }

    /// Sends one message in one frame.
    pub fn send(&mut self, m: &Message) {
        let bytes = m.encode();
        self.send_frame(&bytes);
    }

    /// Sends `bytes` as one frame, whatever they are.
    pub fn send_frame(&mut self, bytes: &[u8]) {
        let mut framed = (bytes.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(bytes);
        self.send_raw(&framed);
    }

    /// Writes `bytes` to the stream without framing.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let send = &mut self.send;
        // A write into a closed stream is what some tests expect; they look at the reads.
        let _ = self.rt.block_on(async { send.write_all(bytes).await });
    }

    /// Reads the next frame.
    pub fn read(&mut self, timeout: Duration) -> Read {
        let recv = &mut self.recv;
        let got = self.rt.block_on(async {
            tokio::time::timeout(timeout, async {
                let mut len = [0u8; 4];
                recv.read_exact(&mut len).await.map_err(|e| e.to_string())?;
                let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
                recv.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
                Ok::<_, String>(buf)
            })
            .await
        });
        match got {
            Err(_) => Read::Timeout,
            Ok(Err(e)) => Read::Closed(e),
            Ok(Ok(buf)) => match Message::decode(&buf) {
                Ok(m) => Read::Message(Box::new(m)),
                Err(e) => Read::Undecodable(e.to_string()),
            },
        }
    }

    /// Every message that arrives until `quiet` passes without one (or the stream ends).
    pub fn drain(&mut self, quiet: Duration) -> Vec<Message> {
        let mut out = Vec::new();
        while let Read::Message(m) = self.read(quiet) {
            out.push(*m);
        }
        out
    }

    /// Waits until the relay closes the connection and returns why.
    pub fn closed(&self, timeout: Duration) -> Option<String> {
        let conn = self.conn.clone();
        self.rt.block_on(async { tokio::time::timeout(timeout, conn.closed()).await.ok().map(|e| e.to_string()) })
    }
}

/// The document id a message is about, if any.
pub fn document_of(m: &Message) -> Option<&str> {
    match m {
        Message::Sync { document_id, .. }
        | Message::Request { document_id, .. }
        | Message::DocUnavailable { document_id, .. } => Some(document_id),
        _ => None,
    }
}
