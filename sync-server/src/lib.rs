//! kith-relay: the self-hostable, blind store-and-forward relay.
//!
//! It stores and forwards sealed entries for accounts' devices and never sees
//! plaintext (it does not depend on Automerge). Modules:
//! - [`server`]: QUIC endpoint, per-connection protocol state machine, the
//!   group-committing writer thread, subscriptions, revocation, shutdown;
//! - [`store`]: the [`store::RelayStore`] trait and its redb implementation;
//! - [`config`]: policy, quotas and limits;
//! - [`identity`]: the relay key file;
//! - [`private_fs`]: owner-only data directory and files;
//! - [`metrics`]: counters and the health/metrics HTTP responder;
//! - [`admin`]: the admin commands over a local Unix socket (token, accounts,
//!   account delete, status, online backup);
//! - [`client`]: a minimal client for tests and the load tool;
//! - `testkit` and `conformance` (feature `test-support`): the relay test
//!   harness every crate's tests share, and the [`store::RelayStore`]
//!   contract tests every storage backend runs; `pg_testkit`: throwaway
//!   PostgreSQL servers for the PostgreSQL backend's tests.
//!
//! Tests run it in-process: `kith_relay::run(relay, socket, shutdown)`.

#![warn(missing_docs)]

pub mod admin;
pub mod client;
pub mod config;
#[cfg(feature = "test-support")]
pub mod conformance;
pub mod identity;
pub mod metrics;
#[cfg(feature = "test-support")]
pub mod pg_testkit;
pub mod private_fs;
pub mod server;
pub mod store;
#[cfg(feature = "test-support")]
pub mod testkit;

pub use config::{Clock, Limits, RegistrationPolicy, RelayConfig};
pub use metrics::{Metrics, serve_metrics};
pub use server::{AdminSocket, Relay, RunError, create_token, now_ms, run, run_with_admin};
pub use store::{PgStore, RedbStore, RelayStore};
