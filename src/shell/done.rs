//! The future a fairing callback returns when it did its work before returning.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The future of the fairing callbacks that did their work before returning: it is
/// zero-sized, so boxing it (as Rocket's `Fairing` trait requires) allocates nothing.
pub(crate) struct Done;

impl Future for Done {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Ready(())
    }
}
