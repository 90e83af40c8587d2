//! Fuzzes opening a sealed entry (what every device does with what the relay
//! hands it): never a panic, only `Ok` or an `UnsealError`.
//! Run from core/: `cargo +nightly fuzz run sealed_entry_open`.
//!
//! The first byte picks the layer under attack:
//! - even: the bytes are a postcard `SealedEntry` as a relay or a hostile
//!   member could send (account, signature, membership and epoch checks);
//! - odd: the rest is the *plaintext* of an entry correctly signed by a
//!   member and sealed under the current epoch key (what only a hostile
//!   member can produce): the payload decoder and version checks.
#![no_main]

use std::sync::OnceLock;

use kith_core::identity::{DataKey, KeyMaterial};
use kith_core::sync::DeviceIdentity;
use kith_core::sync::epochs::EpochKeys;
use kith_core::sync::payload::open_entry;
use kith_protocol::{
    AccountId, Author, Change, MemberKeys, Membership, Rotation, SealedEntry, SealedEpochKey,
    SigningKey,
};
use libfuzzer_sys::fuzz_target;

const EPOCH: u64 = 1;

struct World {
    id: DeviceIdentity,
    members: Membership,
    keys: EpochKeys,
}

/// One account whose genesis makes the fuzzing device its only member, and
/// the epoch key that device holds (fixed bytes: the fuzzer needs no
/// randomness to reach the decoder).
fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let root = SigningKey::from_bytes(&[7; 32]);
        let account = AccountId::from(root.verifying_key());
        let material = KeyMaterial {
            version: KeyMaterial::VERSION,
            account: Some(account.0),
            device_key: [9; 32],
            seal_key: [5; 32],
            device_name: "fuzz".into(),
        };
        let id = DeviceIdentity::with_account(&material, account);
        let genesis = Membership::new(account).next_op(
            Author::Root,
            &root,
            EPOCH,
            Change::Genesis {
                first: MemberKeys {
                    device: id.device_id(),
                    seal_key: [0; 32],
                },
                // The relay and this target never open it: placeholder bytes.
                rotation: Rotation {
                    keys: vec![SealedEpochKey {
                        to: id.device_id(),
                        enc: [0; 32],
                        ciphertext: vec![0; 48],
                    }],
                    wrapped: vec![],
                },
            },
            1,
        );
        let members = Membership::from_ops(account, [&genesis]).expect("a valid genesis");
        let mut keys = EpochKeys::default();
        keys.insert(EPOCH, DataKey::from_bytes([3; 32]));
        World { id, members, keys }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let w = world();
    if mode % 2 == 0 {
        if let Ok(e) = postcard::from_bytes::<SealedEntry>(rest) {
            let _ = open_entry(&w.id, &w.members, &w.keys, &e);
        }
        return;
    }
    let seq = 1 + u64::from(mode >> 1);
    let account = w.id.account_id();
    let ad = SealedEntry::associated_data(&account, &w.id.device_id(), EPOCH, seq);
    let Some(key) = w.keys.get(EPOCH) else {
        return;
    };
    let Ok((nonce, ct)) = key.seal_detached(rest, &ad) else {
        return;
    };
    let e = SealedEntry::seal(w.id.device_signing_key(), account, EPOCH, seq, nonce, ct);
    let _ = open_entry(&w.id, &w.members, &w.keys, &e);
});
