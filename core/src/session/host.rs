//! The session as resource transfers see it ([`crate::resource::Host`]): its links and its event queue.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use super::events::{Event, EventSender};
use super::Shared;
use crate::identity::PeerId;
use crate::resource::{Host, Report};

pub(crate) struct SessionHost {
    shared: Arc<Shared>,
    /// Dropped at shutdown, so the session's event stream ends.
    events: Mutex<Option<EventSender>>,
}

impl SessionHost {
    pub(crate) fn new(shared: Arc<Shared>, events: EventSender) -> Arc<Self> {
        Arc::new(Self {
            shared,
            events: Mutex::new(Some(events)),
        })
    }
}

impl From<Report> for Event {
    fn from(report: Report) -> Self {
        match report {
            Report::Offered(pending) => Event::ResourceOffered(pending),
            Report::Started(transfer) => Event::ResourceStarted(transfer),
            Report::Finished { transfer, result } => Event::ResourceFinished { transfer, result },
        }
    }
}

impl Host for SessionHost {
    fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    fn notify_links_changed(&self) {
        self.shared.notify_links_changed();
    }

    fn subscribe_links(&self) -> watch::Receiver<u64> {
        self.shared.subscribe_links()
    }

    fn connection(&self, peer: &PeerId) -> Option<quinn::Connection> {
        let link = self.shared.link(peer)?;
        link.conn.close_reason().is_none().then(|| link.conn.clone())
    }

    fn report(&self, report: Report) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let events = self.events.lock().unwrap_or_else(PoisonError::into_inner).clone();
        Box::pin(async move {
            if let Some(events) = events {
                let _ = events.send(report.into()).await;
            }
        })
    }

    fn release_events(&self) {
        self.events.lock().unwrap_or_else(PoisonError::into_inner).take();
    }
}
