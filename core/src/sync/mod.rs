//! Sync between the devices of one account, written sans-IO: the machines in
//! this module take decoded messages, the [`Store`](crate::Store) and `now`,
//! and hand back messages to send, events and timers. Sockets, tasks and
//! retries with real clocks live in `kith-net`; tests drive the machines in
//! memory. docs/SYNC.md is the specification.
//!
//! - [`device_identity`]: the device's sync identity (account id, ed25519
//!   and X25519 keys, name; no account secret) and conversions to/from the
//!   persisted key material.
//! - [`membership`]: the account's membership log on this device (create,
//!   absorb verified ops, the current epoch key, revoke/add/recover ops).
//! - [`authority`]: the recovery code (the account's root key) and the
//!   membership ops a device makes (create, add, revoke, rotate, recover).
//! - [`epochs`]: membership epoch keys sealed to devices with HPKE and
//!   chained backwards (docs/SECURITY.md).
//! - [`payload`]: what is inside a sealed relay entry or snapshot.
//! - [`relay`]: the relay log client (push own changes through a durable
//!   outbox, pull and apply after per-device cursors, pending changes whose
//!   dependencies have not arrived, live events, snapshots).
//! - [`peer`]: direct device-to-device sync (heads exchange, then Automerge's
//!   sync protocol per document with its state persisted per peer).
//! - [`pairing`]: one-time invitations: the joiner posts its card, the
//!   inviter adds it to the membership log (no secret changes hands).
//! - [`devices`]: the account's device list as this device knows it.
//! - [`tables`]: the redb tables all of the above keep next to the documents,
//!   so that a merge and the sync position it implies commit together.

pub mod authority;
pub mod device_identity;
pub mod devices;
pub mod epochs;
pub mod membership;
pub mod pairing;
pub mod payload;
pub mod peer;
pub mod relay;
pub(crate) mod tables;

#[cfg(test)]
mod memrelay;
#[cfg(test)]
mod tests;

pub use device_identity::{DeviceIdentity, IdentityError};
pub use devices::{DeviceInfo, list_devices};
pub use pairing::{Incoming, Invitation, JoinRequest, PairError, PairingMode, Reply, Token};
pub use peer::{PeerCard, PeerError, PeerMsg, PeerRole, PeerStats, PeerSync};
pub use relay::{
    MailboxTake, QuarantinedEntry, RelayClientConfig, RelayEvent, RelaySync, RelaySyncError,
    SyncStatus, Transfer, sync_status,
};
