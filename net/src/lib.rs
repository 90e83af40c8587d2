//! kith-net: the QUIC edge of Kith. It drives kith-core's sans-IO sync state
//! machines (relay log sync, peer sync) over quinn and tokio. Nothing above this
//! crate knows about sockets.
//!
//! - [`frames`]: length-prefixed postcard frames on a QUIC stream (the same
//!   framing as the relay protocol), with a reader task so frame reads are
//!   never cancelled half-way;
//! - [`relay`]: one sync round or a watching session with a relay (pinned
//!   key), reconnecting with bounded backoff; pairing through the mailbox;
//! - [`peer`]: the peer server and client (QUIC, self-signed certificate for
//!   the device key, application-level mutual authentication bound to the TLS
//!   session), live watching over one kept connection, and direct pairing;
//! - [`keeper`]: for long-running processes, parks the shared store when
//!   idle (so other processes can open it) and reports writes made by other
//!   processes.

#![warn(missing_docs)]

pub mod frames;
pub mod keeper;
pub mod peer;
pub mod relay;

pub use keeper::{KeeperOptions, keep_store};
pub use peer::{ChangeNotifier, PeerReport, PeerServer, join_via_peer, peer_watch, sync_with_peer};
pub use relay::{
    JoinError, NetError, RoundReport, WatchOptions, answer_join_request, await_join_request,
    await_welcome, now_ms, post_join_request, recover_account, relay_round, relay_watch,
};
