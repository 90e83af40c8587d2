//! A device restored from a backup with its keys is the same device: it
//! continues its own entry sequence on the relay without forking it, pulls
//! what it pushed after the backup was taken, and pushes what it logged
//! before the backup but never pushed.

use std::sync::{Arc, Mutex};

use kith_core::backup::{BackupParams, backup_store, restore_store};
use kith_core::sync::DeviceIdentity;
use kith_e2e::{Device, TestRelay};

use crate::common::{assert_same, log, round, rt};

/// Argon2id at its cheapest: the key derivation is not what is tested.
const CHEAP: BackupParams = BackupParams {
    memory_kib: 1024,
    iterations: 1,
    parallelism: 1,
};

/// A new data directory restored from `backup`, with the device's identity
/// (what restoring the backup's key material gives).
fn restore(backup: &[u8], id: &DeviceIdentity) -> Device {
    let dir = tempfile::tempdir().unwrap();
    let restored = restore_store(
        &dir.path().join("store"),
        "correct horse battery staple",
        backup,
    )
    .unwrap();
    Device {
        dir,
        store: Arc::new(Mutex::new(restored.store)),
        id: id.clone(),
        keys: id.to_material(),
        code: None,
    }
}

fn summaries(d: &Device) -> Vec<String> {
    let mut s: Vec<String> = d
        .s()
        .all_interactions()
        .unwrap()
        .into_iter()
        .map(|i| i.summary)
        .collect();
    s.sort();
    s
}

#[test]
fn a_restored_device_catches_up_on_its_own_log_and_pushes_what_it_never_pushed() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let relay = TestRelay::start(dir.path());
        let phone = Device::first("phone");
        let laptop = phone.sibling("laptop");
        let phone_id = phone.id.clone();
        log(&phone, "pushed", "Ann");
        round(&phone, &relay).await;
        // Logged, backed up, and the phone is lost before it syncs again.
        log(&phone, "never pushed", "Bea");
        let backup = backup_store(
            &mut phone.s(),
            "correct horse battery staple",
            &CHEAP,
            None,
            1,
        )
        .unwrap();
        drop(phone);

        // The restored phone pushes what the lost one never did.
        let first = restore(&backup, &phone_id);
        round(&first, &relay).await;
        round(&laptop, &relay).await;
        assert_eq!(summaries(&laptop), ["never pushed", "pushed"]);
        log(&first, "after the first restore", "Cy");
        round(&first, &relay).await;

        // Restoring the same (now old) backup again: the device pulls what it
        // pushed since from its own log, and its next entry continues the
        // sequence (a fork would be refused by the relay).
        drop(first);
        let second = restore(&backup, &phone_id);
        round(&second, &relay).await;
        assert_eq!(
            summaries(&second),
            ["after the first restore", "never pushed", "pushed"]
        );
        log(&second, "after the second restore", "Di");
        let r = round(&second, &relay).await;
        assert!(r.pushed_entries >= 1, "{r:?}");
        round(&laptop, &relay).await;
        assert_eq!(summaries(&laptop).len(), 4);
        round(&second, &relay).await;
        assert_same(&second, &laptop);
    });
}
