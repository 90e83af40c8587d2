//! kith-ffi: uniffi bindings over kith-core for Kotlin, Swift and Python.
//!
//! One [`Kith`] object is the app's handle on a store directory and on this
//! device's account and sync ([`account`], [`sync`]). Foreign calls
//! flow: generated binding → uniffi scaffolding → a `Kith` method, whose body
//! runs inside the panic guard ([`guard`]), parses foreign values into model
//! types ([`types`]), calls the engine, maps its errors to the single
//! [`KithError`] ([`error`]), and, after a write, notifies the registered
//! [`KithListener`]s ([`listener`]). Slow work runs on the runtime owned by this
//! crate ([`runtime`]): every exported method that touches the disk or the network is
//! `async` ([`api`] is the whole foreign surface of `Kith`, one method per operation). Insights are flattened into
//! plain records in [`insights`]; meetings to log from the phone's calendar in
//! [`meetings`]; import, export and encrypted backup live in
//! [`transfer`]. The library's logs and panics reach the app through the
//! [`KithLogger`] it sets ([`logging`]).
//!
//! Bindings are generated from the built library (`scripts/bindings.sh`); see
//! bindings/README.md.

#![warn(missing_docs)]

mod account;
mod api;
mod error;
mod guard;
mod inputs;
mod insights;
mod invitation;
mod kith;
mod listener;
mod logging;
mod meetings;
mod runtime;
mod sync;
mod transfer;
mod types;

pub use account::{
    AccountInfo, DEVICE_NAME_CHARS_MAX, Device, JoinRequest, KithKeyStore, PairingInvitation,
    RecoveryReport,
};
pub use api::ffi_restore_backup;
pub use error::{KithError, KithResult};
pub use inputs::*;
pub use insights::*;
pub use invitation::{DeviceInvitation, JoinAttempt};
#[cfg(feature = "test-hooks")]
pub use kith::debug_panic_aborts;
pub use kith::{Kith, PAGE_LIMIT_MAX, StoreCheckReport};
pub use listener::{ChangeSummary, KithListener, SyncState};
pub use logging::{KithLogger, LogLevel, LogRecord, clear_logger, set_logger};
pub use meetings::*;
pub use sync::{QuarantinedEntry, SyncReport, SyncStatus};
pub use transfer::*;
pub use types::*;

uniffi::setup_scaffolding!();

/// The version of the Kith library the bindings were generated from.
#[uniffi::export]
pub fn kith_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
