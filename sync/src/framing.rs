//! Length-delimited frames over a QUIC stream, read and written by their own tasks so that a
//! session never blocks on the network while it has work to do.

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use crate::proto::MAX_FRAME;

/// Why a framed stream ended early.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FrameError {
    /// The peer broke the framing (a length over [`MAX_FRAME`], a truncated frame).
    #[error("broken framing: {0}")]
    Broken(String),
    /// The stream or the connection was lost.
    #[error("{0}")]
    Lost(String),
}

/// The two directions of a framed stream.
pub struct Frames {
    /// Frames received, or the error that ended the stream.
    pub rx: mpsc::Receiver<Result<Vec<u8>, FrameError>>,
    /// Frames to send; dropping it finishes the stream.
    pub tx: mpsc::UnboundedSender<Vec<u8>>,
}

/// The codec of every QUIC sync stream.
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder().max_frame_length(MAX_FRAME).new_codec()
}

/// Frames a QUIC bidirectional stream.
pub fn frame_quic(send: quinn::SendStream, recv: quinn::RecvStream) -> Frames {
    let (in_tx, in_rx) = mpsc::channel(256);
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        let mut reader = FramedRead::new(recv, codec());
        while let Some(frame) = reader.next().await {
            let item = frame.map(|b| b.to_vec()).map_err(|e| match e.kind() {
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof => {
                    FrameError::Broken(e.to_string())
                }
                // Why the connection went ("timed out", "reset by peer" when the relay restarted).
                _ => FrameError::Lost(match e.get_ref().and_then(|r| r.downcast_ref::<quinn::ReadError>()) {
                    Some(quinn::ReadError::ConnectionLost(why)) => format!("connection lost: {why}"),
                    _ => e.to_string(),
                }),
            });
            let stop = item.is_err();
            if in_tx.send(item).await.is_err() || stop {
                break;
            }
        }
    });
    tokio::spawn(async move {
        let mut writer = FramedWrite::new(send, codec());
        while let Some(frame) = out_rx.recv().await {
            if writer.send(tokio_util::bytes::Bytes::from(frame)).await.is_err() {
                return;
            }
        }
        let mut send = writer.into_inner();
        let _ = send.finish();
        let _ = send.stopped().await;
    });
    Frames { rx: in_rx, tx: out_tx }
}

/// The two ends of an in-process stream (a relay's link to its own replicas): what one end sends,
/// the other receives, in order; dropping an end's sender ends the other's receiver, as finishing
/// a QUIC stream does.
pub fn pair() -> (Frames, Frames) {
    type Received = mpsc::Receiver<Result<Vec<u8>, FrameError>>;
    fn pipe() -> (mpsc::UnboundedSender<Vec<u8>>, Received) {
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let (in_tx, in_rx) = mpsc::channel(256);
        tokio::spawn(async move {
            while let Some(frame) = out_rx.recv().await {
                if in_tx.send(Ok(frame)).await.is_err() {
                    break;
                }
            }
        });
        (out_tx, in_rx)
    }
    let (a_tx, b_rx) = pipe();
    let (b_tx, a_rx) = pipe();
    (Frames { rx: a_rx, tx: a_tx }, Frames { rx: b_rx, tx: b_tx })
}
