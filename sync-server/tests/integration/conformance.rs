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

/// The PostgreSQL backend runs the same suite: a fresh database per case on
/// one throwaway server (`pg_testkit`), as one shard.
mod postgres_one_shard {
    use kith_relay::pg_testkit::{PgDatabase, PgServer};

    fn pg_store() -> (kith_relay::PgStore, PgDatabase) {
        let db = PgServer::shared().database();
        let store = kith_relay::PgStore::connect(std::slice::from_ref(&db.url)).unwrap();
        (store, db)
    }

    fn damage(
        fixture: &(kith_relay::PgStore, PgDatabase),
        account: &kith_protocol::AccountId,
        device: &kith_protocol::DeviceId,
        seq: u64,
    ) {
        fixture.0.damage_entry_for_tests(account, device, seq);
    }

    kith_relay::relay_store_conformance!(pg_store, damage: damage);
}

/// And as two shards (two databases): accounts, mailbox slots and tokens are
/// spread over them, registrations on shard 1 take their token on shard 0.
mod postgres_two_shards {
    use kith_relay::pg_testkit::{PgDatabase, PgServer};

    fn pg_store() -> (kith_relay::PgStore, (PgDatabase, PgDatabase)) {
        let dbs = (PgServer::shared().database(), PgServer::shared().database());
        let store = kith_relay::PgStore::connect(&[dbs.0.url.clone(), dbs.1.url.clone()]).unwrap();
        (store, dbs)
    }

    kith_relay::relay_store_conformance!(pg_store);
}
