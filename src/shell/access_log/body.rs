//! The counting body: wraps a response's body, counts the bytes read through it, and
//! sends the log line when the body ends or is dropped.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use rocket::response::Body;
use tokio::io::{AsyncRead, AsyncSeek, ReadBuf};

use crate::shell::access_log::line::Pending;

/// A body that counts the bytes read through it and sends the log line when it ends
/// (end of stream or error) or is dropped, whichever comes first.
pub(super) struct Logged<'r, 'c> {
    inner: Body<'r>,
    sent: u64,
    pending: Option<Pending<'r, 'c>>,
}

impl<'r, 'c> Logged<'r, 'c> {
    /// `inner`, counted from its first byte, with the line to send at its end.
    pub(super) fn new(inner: Body<'r>, pending: Pending<'r, 'c>) -> Logged<'r, 'c> {
        Logged {
            inner,
            sent: 0,
            pending: Some(pending),
        }
    }
}

impl Logged<'_, '_> {
    fn finish(&mut self) {
        if let Some(p) = self.pending.take() {
            p.send(self.sent);
        }
    }
}

impl AsyncRead for Logged<'_, '_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let wanted = buf.remaining() > 0;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len() - before;
                this.sent += n as u64;
                if n == 0 && wanted {
                    this.finish(); // end of the body
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => {
                this.finish();
                Poll::Ready(Err(e))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The size is always preset when this body is sized, so Rocket never seeks it; a
/// seek is refused rather than forwarded (Rocket's `Body` cannot seek).
impl AsyncSeek for Logged<'_, '_> {
    fn start_seek(self: Pin<&mut Self>, _position: io::SeekFrom) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "an access-logged body cannot seek",
        ))
    }

    fn poll_complete(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Poll::Ready(Ok(self.sent))
    }
}

impl Drop for Logged<'_, '_> {
    fn drop(&mut self) {
        // Drop the inner body first, so its own accounting (the engine's counters) is
        // done before the line is out.
        drop(self.inner.take());
        self.finish();
    }
}
