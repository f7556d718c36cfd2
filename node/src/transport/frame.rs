//! Length-prefixed frames on QUIC streams: a big-endian `u32` length, then that many bytes.

use quinn::{ReadExactError, RecvStream, SendStream};

/// Size of the length prefix in front of every frame.
const PREFIX_LEN: usize = 4;

/// Errors reading or writing a frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The frame is longer than the limit; nothing was allocated for it.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Length announced by the prefix (or of the frame being written).
        len: u64,
        /// The limit in force.
        max: u64,
    },
    /// The stream ended in the middle of a frame.
    #[error("stream ended in the middle of a frame ({received} of {expected} bytes received)")]
    Truncated {
        /// Bytes the frame (or its prefix) needed.
        expected: usize,
        /// Bytes received before the stream ended.
        received: usize,
    },
    /// Reading from the stream failed (reset by the peer, connection lost, …).
    #[error("cannot read from the stream: {0}")]
    Read(#[from] quinn::ReadError),
    /// Writing to the stream failed (stopped by the peer, connection lost, …).
    #[error("cannot write to the stream: {0}")]
    Write(#[from] quinn::WriteError),
}

/// Writes `frame` to `send` as one length-prefixed frame (`u32` big-endian length, then the
/// bytes).
///
/// The stream is not finished; call [`SendStream::finish`] when done.
///
/// # Errors
///
/// [`FrameError::TooLarge`], before writing anything, if the frame does not fit a `u32` length;
/// [`FrameError::Write`] if the stream or the connection fails.
pub async fn write_frame(send: &mut SendStream, frame: &[u8]) -> Result<(), FrameError> {
    let len = u32::try_from(frame.len()).map_err(|_| FrameError::TooLarge {
        len: u64::try_from(frame.len()).unwrap_or(u64::MAX),
        max: u64::from(u32::MAX),
    })?;
    send.write_all(&len.to_be_bytes()).await?;
    send.write_all(frame).await?;
    Ok(())
}

/// Reads the next length-prefixed frame from `recv`.
///
/// Returns `Ok(None)` if the stream ends cleanly between frames.
///
/// # Errors
///
/// [`FrameError::TooLarge`] for a length prefix above `max`, as soon as the 4-byte prefix has
/// arrived, before any buffer is allocated or any frame byte is read;
/// [`FrameError::Truncated`] if the stream ends inside a prefix or a frame;
/// [`FrameError::Read`] if the stream is reset or the connection fails.
pub async fn read_frame(recv: &mut RecvStream, max: usize) -> Result<Option<Vec<u8>>, FrameError> {
    let mut prefix = [0u8; PREFIX_LEN];
    let mut filled = 0;
    while filled < PREFIX_LEN {
        match recv.read(&mut prefix[filled..]).await? {
            Some(n) => filled += n,
            None if filled == 0 => return Ok(None),
            None => {
                return Err(FrameError::Truncated {
                    expected: PREFIX_LEN,
                    received: filled,
                })
            }
        }
    }
    let announced = u32::from_be_bytes(prefix);
    let too_large = || FrameError::TooLarge {
        len: u64::from(announced),
        max: u64::try_from(max).unwrap_or(u64::MAX),
    };
    let len = usize::try_from(announced).map_err(|_| too_large())?;
    if len > max {
        return Err(too_large());
    }
    let mut frame = vec![0u8; len];
    recv.read_exact(&mut frame).await.map_err(|e| match e {
        ReadExactError::FinishedEarly(received) => FrameError::Truncated {
            expected: len,
            received,
        },
        ReadExactError::ReadError(e) => FrameError::Read(e),
    })?;
    Ok(Some(frame))
}
