//! Framing: every message travels as a 4-byte big-endian length followed by
//! that many bytes of postcard-encoded body. The length is checked against a
//! hard maximum before anything is allocated, a body must decode completely
//! (no trailing bytes), and no input makes the decoder panic.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Hard upper bound on a frame body: 1 MiB. Peers may configure lower.
pub const FRAME_BYTES_MAX: usize = 1 << 20;
/// Length of the frame header.
pub const HEADER_BYTES: usize = 4;

/// Why a frame could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The body is longer than the limit.
    #[error("frame of {size_bytes} bytes exceeds the limit of {size_bytes_max} bytes")]
    TooLarge {
        /// Announced or encoded body size.
        size_bytes: usize,
        /// The limit.
        size_bytes_max: usize,
    },
    /// A frame with an empty body.
    #[error("empty frame")]
    Empty,
    /// The body is not a valid message.
    #[error("malformed frame body: {0}")]
    Malformed(String),
    /// The body decoded but bytes were left over.
    #[error("frame body has {extra_bytes} trailing bytes")]
    TrailingBytes {
        /// Bytes left after the message.
        extra_bytes: usize,
    },
    /// The input ended inside a frame.
    #[error("input ended inside a frame ({have_bytes} of {need_bytes} bytes)")]
    Truncated {
        /// Bytes available.
        have_bytes: usize,
        /// Bytes needed.
        need_bytes: usize,
    },
}

/// Encodes `msg` as one frame (header + body).
pub fn encode_frame<T: Serialize>(msg: &T, size_bytes_max: usize) -> Result<Vec<u8>, FrameError> {
    let mut out = postcard::to_extend(msg, vec![0u8; HEADER_BYTES])
        .map_err(|e| FrameError::Malformed(e.to_string()))?;
    let body = out.len() - HEADER_BYTES;
    if body > size_bytes_max.min(FRAME_BYTES_MAX) {
        return Err(FrameError::TooLarge {
            size_bytes: body,
            size_bytes_max: size_bytes_max.min(FRAME_BYTES_MAX),
        });
    }
    let len = u32::try_from(body).map_err(|_| FrameError::TooLarge {
        size_bytes: body,
        size_bytes_max,
    })?;
    out[..HEADER_BYTES].copy_from_slice(&len.to_be_bytes());
    Ok(out)
}

/// Reads a header and returns the body length, refusing oversized and empty frames.
pub fn parse_header(
    header: [u8; HEADER_BYTES],
    size_bytes_max: usize,
) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    let max = size_bytes_max.min(FRAME_BYTES_MAX);
    if len > max {
        return Err(FrameError::TooLarge {
            size_bytes: len,
            size_bytes_max: max,
        });
    }
    if len == 0 {
        return Err(FrameError::Empty);
    }
    Ok(len)
}

/// Decodes one complete body; trailing bytes are an error.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    if body.is_empty() {
        return Err(FrameError::Empty);
    }
    let (msg, rest) =
        postcard::take_from_bytes::<T>(body).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(FrameError::TrailingBytes {
            extra_bytes: rest.len(),
        });
    }
    Ok(msg)
}

/// Decodes the first frame in `buf`: `Ok(None)` if more bytes are needed,
/// otherwise the message and the number of bytes consumed.
pub fn decode_frame<T: DeserializeOwned>(
    buf: &[u8],
    size_bytes_max: usize,
) -> Result<Option<(T, usize)>, FrameError> {
    let Some(header) = buf.get(..HEADER_BYTES) else {
        return Ok(None);
    };
    let mut h = [0u8; HEADER_BYTES];
    h.copy_from_slice(header);
    let len = parse_header(h, size_bytes_max)?;
    let Some(body) = buf.get(HEADER_BYTES..HEADER_BYTES + len) else {
        return Ok(None);
    };
    Ok(Some((decode_body(body)?, HEADER_BYTES + len)))
}

/// Incremental decoder for a byte stream: feed chunks, take whole messages.
/// It buffers at most one frame (header + maximum body).
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    size_bytes_max: usize,
}

impl FrameDecoder {
    /// A decoder accepting bodies up to `size_bytes_max` (capped at [`FRAME_BYTES_MAX`]).
    pub fn new(size_bytes_max: usize) -> Self {
        Self {
            buf: Vec::new(),
            size_bytes_max: size_bytes_max.min(FRAME_BYTES_MAX),
        }
    }

    /// Appends received bytes.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, if buffered. After an error the stream is
    /// out of sync and the connection must be closed.
    pub fn next_msg<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        match decode_frame::<T>(&self.buf, self.size_bytes_max)? {
            None => Ok(None),
            Some((msg, used)) => {
                self.buf.drain(..used);
                Ok(Some(msg))
            }
        }
    }

    /// Call at end of stream: errors if a partial frame is left.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let need = match self.buf.get(..HEADER_BYTES) {
            Some(h) => HEADER_BYTES + u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize,
            None => HEADER_BYTES,
        };
        Err(FrameError::Truncated {
            have_bytes: self.buf.len(),
            need_bytes: need,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{ClientMsg, Request};

    #[test]
    fn round_trip_and_partial_input() {
        let m = ClientMsg::Request {
            id: 7,
            body: Request::Ping,
        };
        let f = encode_frame(&m, FRAME_BYTES_MAX).unwrap();
        for cut in 0..f.len() {
            assert_eq!(
                decode_frame::<ClientMsg>(&f[..cut], FRAME_BYTES_MAX).unwrap(),
                None
            );
        }
        assert_eq!(
            decode_frame::<ClientMsg>(&f, FRAME_BYTES_MAX).unwrap(),
            Some((m.clone(), f.len()))
        );
        let mut d = FrameDecoder::new(FRAME_BYTES_MAX);
        d.extend(&f[..3]);
        assert_eq!(d.next_msg::<ClientMsg>().unwrap(), None);
        assert!(matches!(d.finish(), Err(FrameError::Truncated { .. })));
        d.extend(&f[3..]);
        assert_eq!(d.next_msg::<ClientMsg>().unwrap(), Some(m));
        d.finish().unwrap();
    }

    #[test]
    fn oversized_empty_and_trailing_are_refused() {
        let big = (FRAME_BYTES_MAX as u32 + 1).to_be_bytes();
        assert!(matches!(
            decode_frame::<ClientMsg>(&big, FRAME_BYTES_MAX),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(matches!(
            decode_frame::<ClientMsg>(&100u32.to_be_bytes(), 50),
            Err(FrameError::TooLarge { .. })
        ));
        assert_eq!(
            decode_frame::<ClientMsg>(&[0, 0, 0, 0], 50),
            Err(FrameError::Empty)
        );
        let mut f = encode_frame(&ClientMsg::Hello { versions: vec![1] }, 100).unwrap();
        f.push(0);
        let n = (f.len() - 4) as u32;
        f[..4].copy_from_slice(&n.to_be_bytes());
        assert_eq!(
            decode_frame::<ClientMsg>(&f, 100),
            Err(FrameError::TrailingBytes { extra_bytes: 1 })
        );
        let huge = ClientMsg::Hello {
            versions: vec![1; 100],
        };
        assert!(matches!(
            encode_frame(&huge, 10),
            Err(FrameError::TooLarge { .. })
        ));
    }
}
