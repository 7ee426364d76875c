//! What transfers need of the session that runs them. The session implements [`Host`]; this module never names
//! the session's types, so the dependency runs one way (the session uses resources, not the reverse).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use tokio::sync::watch;

use super::{PendingResource, ResourceError, ResourceTransfer};
use crate::identity::PeerId;

/// A resource event for the app; the session reports each as the [`crate::Event`] of the same name.
#[derive(Debug)]
pub(crate) enum Report {
    /// [`crate::Event::ResourceOffered`].
    Offered(PendingResource),
    /// [`crate::Event::ResourceStarted`].
    Started(ResourceTransfer),
    /// [`crate::Event::ResourceFinished`].
    Finished {
        /// The transfer.
        transfer: ResourceTransfer,
        /// Where the file was saved, or why it was not.
        result: Result<PathBuf, ResourceError>,
    },
}

/// The session as transfers see it: its links and its event queue.
pub(crate) trait Host: Send + Sync {
    /// Whether the session is closing.
    fn is_closed(&self) -> bool;
    /// Wakes the tasks that watch [`Host::subscribe_links`].
    fn notify_links_changed(&self);
    /// Changes whenever a link is added, and at shutdown.
    fn subscribe_links(&self) -> watch::Receiver<u64>;
    /// The connection to `peer`, if it is linked and the connection is open.
    fn connection(&self, peer: &PeerId) -> Option<quinn::Connection>;
    /// Queues `report` for the app (waiting while the app is far behind); nothing once the events are released.
    fn report(&self, report: Report) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
    /// Lets go of the event queue at shutdown, so the app's event stream can end.
    fn release_events(&self);
}
