//! Frames on a QUIC stream: 4-byte big-endian length + postcard body, capped
//! at [`FRAME_BYTES_MAX`](kith_protocol::FRAME_BYTES_MAX). Reading happens in
//! a dedicated task that forwards whole messages over a bounded channel, so
//! the session loop can `select!` on it without losing half-read frames.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kith_protocol::{FRAME_BYTES_MAX, FrameError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

/// Messages buffered between the reader task and the session.
pub const READ_QUEUE_MAX: usize = 64;

/// Why reading or writing a frame failed.
#[derive(Debug, thiserror::Error)]
pub enum FrameIoError {
    /// The other side finished or reset the stream; the session is over.
    #[error("the peer closed the stream")]
    Closed,
    /// Reading failed (connection lost, timed out); reconnecting may help.
    #[error("read failed: {0}")]
    Read(String),
    /// Writing failed (connection lost or stream stopped); reconnecting may help.
    #[error("write failed: {0}")]
    Write(#[from] quinn::WriteError),
    /// The other side sent bytes that are not a valid frame (too large, or
    /// not the expected message): a bug or a hostile peer, not retryable.
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
}

/// Byte counters of one connection (payload frames, both directions).
#[derive(Debug, Default)]
pub struct Counters {
    /// Frame bytes written, length prefixes included.
    pub sent_bytes: AtomicU64,
    /// Frame bytes read, length prefixes included.
    pub received_bytes: AtomicU64,
}

impl Counters {
    /// Frame bytes written so far.
    pub fn sent(&self) -> u64 {
        self.sent_bytes.load(Ordering::Relaxed)
    }
    /// Frame bytes read so far.
    pub fn received(&self) -> u64 {
        self.received_bytes.load(Ordering::Relaxed)
    }
}

/// Writes one message as a frame.
pub async fn write_msg<T: Serialize>(
    send: &mut quinn::SendStream,
    msg: &T,
    counters: &Counters,
) -> Result<(), FrameIoError> {
    let f = kith_protocol::encode_frame(msg, FRAME_BYTES_MAX)?;
    counters
        .sent_bytes
        .fetch_add(f.len() as u64, Ordering::Relaxed);
    send.write_all(&f).await?;
    Ok(())
}

async fn read_one<T: DeserializeOwned>(
    recv: &mut quinn::RecvStream,
    counters: &Counters,
) -> Result<T, FrameIoError> {
    let mut header = [0u8; 4];
    match recv.read_exact(&mut header).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Err(FrameIoError::Closed),
        Err(e) => return Err(FrameIoError::Read(e.to_string())),
    }
    let len = kith_protocol::parse_header(header, FRAME_BYTES_MAX)?;
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body)
        .await
        .map_err(|e| FrameIoError::Read(e.to_string()))?;
    counters
        .received_bytes
        .fetch_add(4 + len as u64, Ordering::Relaxed);
    Ok(kith_protocol::decode_body(&body)?)
}

/// Spawns the reader task; the channel closes after the first error (which
/// is delivered as the last item).
pub fn spawn_reader<T: DeserializeOwned + Send + 'static>(
    mut recv: quinn::RecvStream,
    counters: Arc<Counters>,
) -> mpsc::Receiver<Result<T, FrameIoError>> {
    let (tx, rx) = mpsc::channel(READ_QUEUE_MAX);
    tokio::spawn(async move {
        loop {
            let r = read_one::<T>(&mut recv, &counters).await;
            let stop = r.is_err();
            if tx.send(r).await.is_err() || stop {
                break;
            }
        }
    });
    rx
}
