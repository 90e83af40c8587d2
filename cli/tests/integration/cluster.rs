//! The relay as a cluster, seen from the `kith` binary: relay nodes on one
//! PostgreSQL database (`kith_relay::pg_testkit`, a real throwaway server,
//! one key), devices reaching different nodes. `kith sync --watch` through
//! node B gets what another device syncs through node A live; a revocation
//! through node A ends the watcher on node B; after a failover of the
//! database (kill -9 of the primary, a standby promoted) the devices
//! reconnect and finish syncing and the watcher, told `Lagged`, pulls.

use std::process::Stdio;
use std::time::{Duration, Instant};

use kith_relay::RelayConfig;
use kith_relay::pg_testkit::{PgRelayNode, PgServer};

use crate::harness::Kith;
use crate::sync::{Background, eventually_has, pair_via_relay};

/// Devices pin this relay key; every node presents it.
fn relay_key() -> kith_protocol::SigningKey {
    kith_protocol::SigningKey::from_bytes(&[7; 32])
}

/// A watcher on `k` through `addr` whose stderr goes to a file.
fn watch(k: &Kith, addr: &str, stderr: &std::path::Path) -> Background {
    let file = std::fs::File::create(stderr).unwrap();
    let mut w =
        Background::start_with_stderr(k, &["sync", "--relay", addr, "--watch"], Stdio::from(file));
    let first = w.line();
    assert!(first.starts_with("Watching kith://"), "{first}");
    let host_port = addr.rsplit('@').next().unwrap();
    assert!(first.contains(host_port), "{first} is not {addr}");
    w
}

/// The id of `k`'s one other device (its name may not have synced yet).
fn other_device_id(k: &Kith) -> String {
    let devices = k.json(&["devices"]);
    devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["this_device"] == false)
        .unwrap_or_else(|| panic!("no other device: {devices}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_watcher_on_node_b_gets_a_meeting_synced_through_node_a_and_a_revocation_through_a_ends_it() {
    let db = PgServer::shared().database();
    let urls = std::slice::from_ref(&db.url);
    let node_a = PgRelayNode::start(urls, &relay_key(), RelayConfig::default());
    let node_b = PgRelayNode::start(urls, &relay_key(), RelayConfig::default());
    let (addr_a, addr_b) = (node_a.address().to_string(), node_b.address().to_string());
    assert_ne!(addr_a, addr_b);

    let laptop = Kith::new();
    laptop.log(&["Before pairing", "--with", "Ana Lima", "--create-missing"]);
    let phone = pair_via_relay(&laptop, &addr_a, "phone");
    let log = tempfile::tempdir().unwrap();
    let mut watcher = watch(&phone, &addr_b, &log.path().join("watch.err"));

    // Logged after the watch started, synced through the other node: the
    // phone gets it without a manual sync.
    laptop.log(&["Meeting after the watch started", "--with", "Ana Lima"]);
    laptop.json(&["sync", "--relay", &addr_a]);
    eventually_has(&phone, "Meeting after the watch started");

    // The laptop revokes the phone through node A: node B closes the
    // phone's connection and the watcher ends, saying why.
    let phone_id = other_device_id(&laptop);
    let r = laptop.json(&["devices", "revoke", &phone_id, "--relay", &addr_a]);
    assert_eq!(r["revoked"], phone_id.as_str());
    let revoked_at = Instant::now();
    let status = watcher
        .exited_within(Duration::from_secs(10))
        .expect("the watcher on node B still runs after its device was revoked");
    assert!(!status.success());
    let err = std::fs::read_to_string(log.path().join("watch.err")).unwrap();
    assert!(err.contains("revoked"), "{err}");
    eprintln!(
        "the watcher on node B ended {} ms after the revocation through node A",
        revoked_at.elapsed().as_millis()
    );
    drop((node_a, node_b));
}

#[test]
fn after_a_database_failover_devices_reconnect_and_the_watcher_pulls_what_it_missed() {
    // A primary and two quorum-synchronous standbys; the nodes follow
    // whichever server accepts writes (libpq multi-host URL).
    let mut primary = PgServer::start(&["synchronous_standby_names = 'ANY 1 (s1, s2)'"]);
    let s1 = PgServer::standby_of(&primary, "s1");
    let s2 = PgServer::standby_of(&primary, "s2");
    let deadline = Instant::now() + Duration::from_secs(30);
    while primary
        .admin()
        .query(
            "SELECT 1 FROM pg_stat_replication WHERE sync_state = 'quorum'",
            &[],
        )
        .unwrap()
        .len()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "standbys did not start streaming"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
        primary.port, s1.port, s2.port
    );
    let urls = std::slice::from_ref(&url);
    let node_a = PgRelayNode::start(urls, &relay_key(), RelayConfig::default());
    let node_b = PgRelayNode::start(urls, &relay_key(), RelayConfig::default());
    let (addr_a, addr_b) = (node_a.address().to_string(), node_b.address().to_string());

    let laptop = Kith::new();
    laptop.log(&["Before pairing", "--with", "Ana Lima", "--create-missing"]);
    let phone = pair_via_relay(&laptop, &addr_a, "phone");
    let log = tempfile::tempdir().unwrap();
    let _watcher = watch(&phone, &addr_b, &log.path().join("watch.err"));
    laptop.log(&["Before the failover", "--with", "Ana Lima"]);
    laptop.json(&["sync", "--relay", &addr_a]);
    eventually_has(&phone, "Before the failover");

    // The primary dies; s1 (which confirmed every commit it was asked to,
    // like s2: promote the one a replication manager would) takes over.
    primary.kill_hard();
    s1.promote();
    // Its configuration came from the old primary: it would wait for a
    // synchronous standby that follows it (Patroni re-points s2; here the
    // new primary stops waiting).
    let mut admin = s1.admin();
    // (ALTER SYSTEM cannot share a batch: it refuses a transaction block.)
    admin
        .batch_execute("ALTER SYSTEM SET synchronous_standby_names = ''")
        .unwrap();
    admin.batch_execute("SELECT pg_reload_conf()").unwrap();

    // The laptop's next syncs through node A fail while the nodes reconnect,
    // then go through (bounded).
    laptop.log(&["After the failover", "--with", "Ana Lima"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = laptop.run(&["sync", "--relay", &addr_a, "--json"]);
        if r.code == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the laptop never synced after the failover: {}",
            r.stderr
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The watcher on node B (whose listener was cut: `Lagged`, then a pull)
    // gets it without a manual sync.
    eventually_has(&phone, "After the failover");
    // And the phone syncs through node B again by itself.
    phone.log(&["Phone after the failover", "--with", "Ana Lima"]);
    eventually_has(laptop_synced(&laptop, &addr_a), "Phone after the failover");
    drop((node_a, node_b));
    drop((s1, s2));
}

/// `laptop` after a sync through `addr` (the laptop does not watch).
fn laptop_synced<'a>(laptop: &'a Kith, addr: &str) -> &'a Kith {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        laptop.json(&["sync", "--relay", addr]);
        let has = laptop
            .json(&["timeline"])
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["summary"] == "Phone after the failover");
        if has || Instant::now() >= deadline {
            return laptop;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
