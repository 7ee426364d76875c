//! Manual invitations in 25 lines: `invite --host` invites the first peer it finds; every other instance
//! accepts invitations whose context says "table 4". `cargo run -p multipeer-examples --example invite [-- --host]`
#![allow(clippy::print_stdout)]

use multipeer::{Event, InvitationMode, Session, SessionConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let host = std::env::args().any(|a| a == "--host");
    let config = SessionConfig::builder("invite-demo", if host { "host" } else { "guest" })
        .invitation_mode(InvitationMode::Manual)
        .build()?;
    let (session, mut events) = Session::builder(config).start_with_events().await?;
    while let Some(event) = events.next().await {
        match event {
            Event::PeerFound(peer) if host => {
                let session = session.clone(); // invite on a task: the event loop goes on meanwhile
                tokio::spawn(async move { println!("{:?}", session.invite(peer.id, Some(b"table 4".to_vec())).await) });
            }
            Event::Invitation(invitation) if invitation.context.as_deref() == Some(b"table 4") => {
                println!("joining {}", invitation.display_name);
                invitation.accept()?;
            }
            Event::Invitation(invitation) => invitation.decline()?,
            Event::PeerAdded(peer) => println!("in a session with {}", peer.display_name),
            _ => {}
        }
    }
    Ok(())
}
