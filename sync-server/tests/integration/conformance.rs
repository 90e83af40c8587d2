//! The redb backend runs the `RelayStore` conformance suite: a real redb
//! file in a fresh temporary directory per case.

fn redb_store() -> (kith_relay::RedbStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = kith_relay::RedbStore::open(&dir.path().join("relay.redb")).unwrap();
    (store, dir)
}

fn damage(
    fixture: &(kith_relay::RedbStore, tempfile::TempDir),
    account: &kith_protocol::AccountId,
    device: &kith_protocol::DeviceId,
    seq: u64,
) {
    fixture.0.damage_entry_for_tests(account, device, seq);
}

kith_relay::relay_store_conformance!(redb_store, damage: damage);
