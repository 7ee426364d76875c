//! A question to the app that it answers later: an invitation ([`crate::PendingInvitation`]) or a resource
//! offer ([`crate::PendingResource`]).

use std::fmt;
use std::ops::Deref;

use tokio::sync::oneshot;

/// Something waiting for the app's answer. Read it through `Deref` (the invitation or the offer), hold it while
/// the user decides, then [`Pending::accept`] or [`Pending::decline`] it from any thread. Dropping it
/// declines. Unanswered for its timeout, it expires and counts as declined.
pub struct Pending<T> {
    item: T,
    answer: oneshot::Sender<bool>,
}

impl<T> Pending<T> {
    pub(crate) fn new(item: T) -> (Self, oneshot::Receiver<bool>) {
        let (answer, receiver) = oneshot::channel();
        (Self { item, answer }, receiver)
    }

    /// Says yes. Fails if it expired (timed out, or the asking peer gave up or left).
    pub fn accept(self) -> Result<(), AnswerError> {
        self.answer.send(true).map_err(|_| AnswerError::Expired)
    }

    /// Says no; the asking peer is told. Fails if it expired.
    pub fn decline(self) -> Result<(), AnswerError> {
        self.answer.send(false).map_err(|_| AnswerError::Expired)
    }

    /// Whether it can no longer be answered (timed out, or the asking peer gave up or left).
    pub fn is_expired(&self) -> bool {
        self.answer.is_closed()
    }

    /// Completes once it can no longer be answered: close the dialog that asks about it.
    pub async fn expired(&mut self) {
        self.answer.closed().await;
    }

    /// What is asked about, taken out (the question is declined).
    pub fn into_inner(self) -> T {
        self.item
    }
}

impl<T> Deref for Pending<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.item
    }
}

impl<T: fmt::Debug> fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("item", &self.item)
            .field("expired", &self.is_expired())
            .finish()
    }
}

/// Why an answer was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerError {
    /// It timed out, or the asking peer gave up or left, before the answer.
    #[error("the question expired before it was answered")]
    Expired,
}
