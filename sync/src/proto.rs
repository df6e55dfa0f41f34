//! The automerge-repo network protocol (version "1"): CBOR maps tagged by `type`, one per frame.
//! Over WebSocket a frame is a binary message; over QUIC it is a length-delimited frame
//! (tokio-util's `LengthDelimitedCodec`: a 4-byte big-endian length, then the bytes).
//!
//! Over QUIC, between DashOffice replicas, `documentId` carries DashOffice's own document id
//! (`{shop}/{collection}/...`); over `/sync`, it carries the automerge-repo id
//! ([`crate::repo_id`]) that JavaScript clients use.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// The protocol version both ends speak.
pub const PROTOCOL_VERSION: &str = "1";

/// The largest frame accepted (a sync message of one catalog shard is far below this).
pub const MAX_FRAME: usize = 32 * 1024 * 1024;

/// What a peer says about itself in `join` and `peer`. Unknown keys are ignored, as in
/// automerge-repo; DashOffice adds its own optional keys.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PeerMetadata {
    /// automerge-repo's storage id (unused by DashOffice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_id: Option<String>,
    /// Whether the peer keeps nothing (browsers, tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_ephemeral: Option<bool>,
    /// A one-time enrolment code (first connection of a device only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrolment_code: Option<String>,
    /// A name for the device, shown to the owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    /// Sent by the relay: the device's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Sent by the relay: the shop the device belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shop_id: Option<String>,
    /// Sent by the relay: the branch the device serves (absent: the whole shop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch_id: Option<String>,
    /// Sent by the relay: how many documents the device may see (progress of an initial sync).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc_count: Option<u64>,
}

/// One protocol message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type")]
pub enum Message {
    /// First message of the connecting side.
    #[serde(rename = "join")]
    Join {
        #[serde(rename = "senderId")]
        sender_id: String,
        #[serde(rename = "peerMetadata", default)]
        peer_metadata: PeerMetadata,
        #[serde(rename = "supportedProtocolVersions", default)]
        supported_protocol_versions: Vec<String>,
    },
    /// The accepting side's answer to `join`.
    #[serde(rename = "peer")]
    Peer {
        #[serde(rename = "senderId")]
        sender_id: String,
        #[serde(rename = "peerMetadata", default)]
        peer_metadata: PeerMetadata,
        #[serde(rename = "selectedProtocolVersion")]
        selected_protocol_version: String,
        #[serde(rename = "targetId")]
        target_id: String,
    },
    /// A fatal error; the sender closes the connection after it.
    #[serde(rename = "error")]
    Error { message: String },
    /// A sync message from a peer that does not have the document yet.
    #[serde(rename = "request")]
    Request {
        #[serde(rename = "senderId")]
        sender_id: String,
        #[serde(rename = "targetId")]
        target_id: String,
        #[serde(rename = "documentId")]
        document_id: String,
        data: ByteBuf,
    },
    /// An Automerge sync message about one document.
    #[serde(rename = "sync")]
    Sync {
        #[serde(rename = "senderId")]
        sender_id: String,
        #[serde(rename = "targetId")]
        target_id: String,
        #[serde(rename = "documentId")]
        document_id: String,
        data: ByteBuf,
    },
    /// The document does not exist or the peer may not see it (the two are not told apart).
    #[serde(rename = "doc-unavailable")]
    DocUnavailable {
        #[serde(rename = "senderId")]
        sender_id: String,
        #[serde(rename = "targetId")]
        target_id: String,
        #[serde(rename = "documentId")]
        document_id: String,
    },
    /// Any other message type (ephemeral, remote heads...): ignored.
    #[serde(other)]
    Other,
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
#[error("not an automerge-repo message: {0}")]
pub struct DecodeError(String);

impl Message {
    /// CBOR bytes of the message.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        // Writing to a Vec cannot fail, and every field serializes.
        let _ = ciborium::into_writer(self, &mut out);
        out
    }

    /// Parses one frame.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        ciborium::from_reader(bytes).map_err(|e| DecodeError(e.to_string()))
    }

    /// A sync message.
    pub fn sync(sender: &str, target: &str, doc: &str, data: Vec<u8>) -> Self {
        Self::Sync {
            sender_id: sender.into(),
            target_id: target.into(),
            document_id: doc.into(),
            data: ByteBuf::from(data),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_ignores_unknown_types_and_keys() {
        let m = Message::sync("a", "b", "doc", vec![1, 2, 3]);
        assert_eq!(Message::decode(&m.encode()).ok(), Some(m));
        #[derive(Serialize)]
        struct Eph<'a> {
            #[serde(rename = "type")]
            t: &'a str,
            extra: u8,
        }
        let mut buf = Vec::new();
        let _ = ciborium::into_writer(&Eph { t: "ephemeral", extra: 1 }, &mut buf);
        assert_eq!(Message::decode(&buf).ok(), Some(Message::Other));
        assert!(Message::decode(b"\xff\x00garbage").is_err());
    }
}
