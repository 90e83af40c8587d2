//! Fuzzes opening a sealed entry (what every device does with what the relay
//! hands it): never a panic, only `Ok` or an `UnsealError`.
//! Run from core/: `cargo +nightly fuzz run sealed_entry_open`.
//!
//! The first byte picks the layer under attack:
//! - even: the bytes are a postcard `SealedEntry` as a relay or a hostile
//!   member could send (signature, account, certificate checks);
//! - odd: the rest is the *plaintext* of an entry correctly signed and
//!   sealed by a member device (what only a hostile member can produce):
//!   the payload decoder, the version and certificate checks.
#![no_main]

use std::sync::OnceLock;

use kith_core::identity::{AccountSecret, DeviceKey};
use kith_core::sync::DeviceIdentity;
use kith_core::sync::payload::open_entry;
use kith_protocol::SealedEntry;
use libfuzzer_sys::fuzz_target;

fn member() -> &'static DeviceIdentity {
    static ID: OnceLock<DeviceIdentity> = OnceLock::new();
    ID.get_or_init(|| {
        DeviceIdentity::new(
            AccountSecret::from_bytes([7; 32]),
            DeviceKey::from_bytes([9; 32]),
            "fuzz",
            1_700_000_000_000,
        )
        .expect("a fixed identity")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let id = member();
    if mode % 2 == 0 {
        if let Ok(e) = postcard::from_bytes::<SealedEntry>(rest) {
            let _ = open_entry(id, &e);
        }
        return;
    }
    let seq = 1 + u64::from(mode >> 1);
    let ad = SealedEntry::associated_data(&id.account_id(), &id.device_id(), seq);
    let Ok((nonce, ct)) = id.data_key().seal_detached(rest, &ad) else {
        return;
    };
    let e = SealedEntry::seal(id.device_signing_key(), id.account_id(), seq, nonce, ct);
    let _ = open_entry(id, &e);
});
