//! Several relay nodes on one PostgreSQL database (`pg_testkit`): one key,
//! live fan-out, revocation and `account delete` across nodes, `Lagged` after a lost
//! listener, tokens created while the relay runs; and the store's startup
//! checks (migrations, newer schema, shard order).

use std::time::{Duration, Instant};

use kith_protocol::{ErrorCode, Event, Request, Response};
use kith_relay::pg_testkit::{PgDatabase, PgRelayNode, PgServer};
use kith_relay::{RegistrationPolicy, RelayConfig, RelayStore};

use crate::common::{Account, Device, code_of, rand_bytes};

const T: Duration = Duration::from_secs(10);

/// Runs a test body on its own runtime. The nodes and databases are made and
/// dropped outside it, and the body reaches PostgreSQL directly only inside
/// `block_in_place`: the synchronous client runs a runtime of its own.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Two nodes of one relay (same key) on a fresh database.
fn two_nodes(config: RelayConfig) -> (PgRelayNode, PgRelayNode, PgDatabase) {
    let db = PgServer::shared().database();
    let key = kith_protocol::SigningKey::from_bytes(&rand_bytes());
    let urls = std::slice::from_ref(&db.url);
    let a = PgRelayNode::start(urls, &key, config.clone());
    let b = PgRelayNode::start(urls, &key, config);
    (a, b, db)
}

async fn connect(node: &PgRelayNode, d: &Device) -> kith_relay::client::RelayClient {
    node.connect_as(&d.key, d.account, d.membership()).await
}

/// The next event that is not a membership event (joins come as those).
async fn next_entries_event(c: &mut kith_relay::client::RelayClient) -> Event {
    loop {
        let ev = crate::common::next_event(c).await;
        if !matches!(ev, Event::Membership { .. }) {
            return ev;
        }
    }
}

/// A new account's laptop (returned, for its entries) connected to `a`, and
/// its phone connected to `b` and subscribed: (laptop, its client, phone's client).
async fn laptop_and_subscribed_phone(
    a: &PgRelayNode,
    b: &PgRelayNode,
) -> (
    Device,
    kith_relay::client::RelayClient,
    kith_relay::client::RelayClient,
) {
    let acct = Account::new();
    let (d1, d2) = (acct.device("laptop"), acct.device("phone"));
    let c1 = connect(a, &d1).await;
    let mut c2 = connect(b, &d2).await;
    assert_eq!(
        c2.request(Request::Subscribe).await.unwrap(),
        Response::Subscribed
    );
    (d1, c1, c2)
}

/// `sub` subscribes, then `pusher` (device `d`, connected to another node)
/// pushes `d.entries(from, to)`: the subscriber gets exactly those.
async fn subscribe_and_see_a_push(
    sub: &mut kith_relay::client::RelayClient,
    pusher: &mut kith_relay::client::RelayClient,
    d: &Device,
    from: u64,
    to: u64,
) {
    assert_eq!(
        sub.request(Request::Subscribe).await.unwrap(),
        Response::Subscribed
    );
    assert_eq!(
        pusher.push(d.entries(from, to)).await.unwrap(),
        to - from + 1
    );
    assert_eq!(
        next_entries_event(sub).await,
        Event::Entries {
            entries: d.entries(from, to)
        }
    );
}

#[test]
fn a_push_on_one_node_reaches_a_subscriber_on_the_other() {
    let (node_a, node_b, _db) = two_nodes(RelayConfig::default());
    block_on(async {
        assert_eq!(node_a.address().key, node_b.address().key);
        let acct = Account::new();
        let (d1, d2) = (acct.device("laptop"), acct.device("phone"));
        let mut c1 = connect(&node_a, &d1).await;
        let mut c2 = connect(&node_b, &d2).await;
        subscribe_and_see_a_push(&mut c2, &mut c1, &d1, 1, 3).await;
        // And the other way round, to a subscriber on node A.
        subscribe_and_see_a_push(&mut c1, &mut c2, &d2, 1, 2).await;
        // A membership op appended through B reaches A's subscriber.
        let d3 = acct.device("tablet");
        let add = d3.membership().last().unwrap().clone();
        match c2
            .request(Request::AppendMembership {
                ops: vec![add.clone()],
            })
            .await
            .unwrap()
        {
            Response::MembershipAppended { .. } => {}
            other => panic!("{other:?}"),
        }
        loop {
            match tokio::time::timeout(T, c1.next_event())
                .await
                .unwrap()
                .unwrap()
            {
                Event::Membership { ops } if ops.contains(&add) => break,
                _ => {}
            }
        }
    });
}

#[test]
fn small_pushes_ride_in_the_notification_and_big_ones_are_read_from_the_database() {
    use std::sync::atomic::Ordering::Relaxed;
    let (node_a, node_b, _db) = two_nodes(RelayConfig::default());
    block_on(async {
        let (d1, mut c1, mut c2) = laptop_and_subscribed_phone(&node_a, &node_b).await;
        let (carried, read) = (
            &node_b.metrics.cluster_pushes_carried_total,
            &node_b.metrics.cluster_pushes_read_total,
        );
        // Small: B fans out what the notification carried, no read.
        let small = d1.entries(1, 3);
        assert_eq!(c1.push(small.clone()).await.unwrap(), 3);
        assert_eq!(
            next_entries_event(&mut c2).await,
            Event::Entries { entries: small }
        );
        assert_eq!((carried.load(Relaxed), read.load(Relaxed)), (1, 0));
        // Over 8000 bytes as a notification: only the positions travel and
        // B reads the very same entries from the database.
        let big: Vec<_> = (4..=5).map(|s| d1.entry(s, &[s as u8; 5_000])).collect();
        assert_eq!(c1.push(big.clone()).await.unwrap(), 5);
        assert_eq!(
            next_entries_event(&mut c2).await,
            Event::Entries { entries: big }
        );
        assert_eq!((carried.load(Relaxed), read.load(Relaxed)), (1, 1));
    });
}

#[test]
fn a_subscriber_on_another_node_gets_each_entry_once_in_order() {
    // Pushes back to back: the other node's reads for one notification come
    // after later commits, and must not send those entries a second time.
    let (node_a, node_b, _db) = two_nodes(RelayConfig::default());
    block_on(async {
        let (d1, mut c1, mut c2) = laptop_and_subscribed_phone(&node_a, &node_b).await;
        const N: u64 = 200;
        for seq in 1..=N {
            assert_eq!(c1.push(d1.entries(seq, seq)).await.unwrap(), seq);
        }
        let mut got = Vec::new();
        while got.last() != Some(&N) {
            match next_entries_event(&mut c2).await {
                Event::Entries { entries } => got.extend(entries.iter().map(|e| e.seq)),
                other => panic!("{other:?} after {} entries", got.len()),
            }
        }
        assert_eq!(got, (1..=N).collect::<Vec<_>>());
    });
}

#[test]
fn a_revocation_through_one_node_closes_the_device_on_the_other_within_a_second() {
    let (node_a, node_b, _db) = two_nodes(RelayConfig::default());
    block_on(async {
        let acct = Account::new();
        let (d1, d2) = (acct.device("laptop"), acct.device("stolen phone"));
        let mut c1 = connect(&node_a, &d1).await;
        let c2 = connect(&node_b, &d2).await;
        let rev = d1.revoke_op(d2.id());
        match c1
            .request(Request::AppendMembership {
                ops: vec![rev.clone()],
            })
            .await
            .unwrap()
        {
            Response::MembershipAppended { .. } => {}
            other => panic!("{other:?}"),
        }
        let acked = Instant::now();
        acct.record(rev);
        let closed = tokio::time::timeout(Duration::from_secs(1), c2.connection().closed())
            .await
            .expect("node B did not close the revoked device's connection within a second");
        assert!(
            matches!(closed, quinn::ConnectionError::ApplicationClosed(ref c)
            if c.error_code == quinn::VarInt::from_u32(kith_protocol::msg::close_code::REVOKED)),
            "{closed:?}"
        );
        assert!(acked.elapsed() < Duration::from_secs(1));
        // And it cannot come back through either node.
        for node in [&node_a, &node_b] {
            let mut again = node.hello().await;
            assert_eq!(
                code_of(again.auth(&d2.key, d2.account, d2.membership(), None).await),
                ErrorCode::DeviceRevoked
            );
        }
    });
}

#[test]
fn a_node_that_lost_its_listener_tells_its_subscribers_to_pull() {
    let (_node_a, node_b, db) = two_nodes(RelayConfig::default());
    block_on(async {
        let acct = Account::new();
        let d2 = acct.device("phone");
        let mut c2 = connect(&node_b, &d2).await;
        assert_eq!(
            c2.request(Request::Subscribe).await.unwrap(),
            Response::Subscribed
        );
        // The database drops the nodes' listener connections (a failover, a
        // restarted pooler): events may be lost, so subscribers must pull.
        let name = db.url.rsplit('/').next().unwrap().to_owned();
        let deadline = Instant::now() + T;
        let killed = tokio::task::block_in_place(|| {
            let mut admin = PgServer::shared().admin();
            loop {
                let n = admin
                    .query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = $1 AND query LIKE 'LISTEN%'",
                        &[&name],
                    )
                    .unwrap()
                    .len();
                if n > 0 || Instant::now() >= deadline {
                    break n;
                }
                // The listeners connect in the background right after start.
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        assert!(killed >= 1, "no listener connection found");
        assert_eq!(next_entries_event(&mut c2).await, Event::Lagged);
    });
}

#[test]
fn a_token_created_while_the_nodes_run_registers_through_any_node() {
    let config = RelayConfig {
        registration: RegistrationPolicy::Token,
        ..RelayConfig::default()
    };
    let (node_a, node_b, db) = two_nodes(config);
    // What `kith-relay --store URL token create` does: its own connection.
    let admin_store = kith_relay::PgStore::connect(std::slice::from_ref(&db.url)).unwrap();
    let token = kith_relay::create_token(&admin_store).unwrap();
    block_on(async {
        let acct = Account::new();
        let d1 = acct.device("laptop");
        let mut c = node_b.hello().await;
        assert!(
            c.auth(&d1.key, d1.account, d1.membership(), Some(token.clone()))
                .await
                .unwrap()
        );
        // Single use across the nodes.
        let other = Account::new();
        let o1 = other.device("laptop");
        let mut c = node_a.hello().await;
        assert_eq!(
            code_of(
                c.auth(&o1.key, o1.account, o1.membership(), Some(token))
                    .await
            ),
            ErrorCode::BadToken
        );
    });
}

/// `kith-relay --store URL ARGS` (the real binary); (success, stdout, stderr).
fn relay_admin(url: &str, args: &[&str]) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kith-relay"))
        .arg("--store")
        .arg(url)
        .arg("--data-dir")
        .arg(dir.path())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn admin_accounts_and_status_read_the_database_while_the_nodes_run() {
    let (node_a, node_b, db) = two_nodes(RelayConfig::default());
    let acct = Account::new();
    let (d1, d2) = (acct.device("laptop"), acct.device("phone"));
    block_on(async {
        let mut c1 = connect(&node_a, &d1).await;
        assert_eq!(c1.push(d1.entries(1, 3)).await.unwrap(), 3);
        let mut c2 = connect(&node_b, &d2).await;
        assert_eq!(c2.push(d2.entries(1, 2)).await.unwrap(), 2);
        let rev = d1.revoke_op(d2.id());
        match c1
            .request(Request::AppendMembership {
                ops: vec![rev.clone()],
            })
            .await
            .unwrap()
        {
            Response::MembershipAppended { .. } => {}
            other => panic!("{other:?}"),
        }
        acct.record(rev);
    });
    let stats = node_a.store.stats().unwrap();
    let (ok, text, err) = relay_admin(&db.url, &["accounts"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "account devices revoked entries stored_bytes created last_seen"
    );
    assert_eq!(lines.len(), 2, "{text}");
    let fields: Vec<&str> = lines[1].split(' ').collect();
    assert_eq!(fields[0], acct.id().to_string());
    // Two devices, one revoked; 5 entries and every stored byte.
    assert_eq!(&fields[1..4], ["2", "1", "5"], "{text}");
    assert_eq!(fields[4], stats.bytes.to_string());
    assert!(fields[5].ends_with('Z') && fields[6] == "-", "{text}");

    let (ok, text, err) = relay_admin(&db.url, &["status"]);
    assert!(ok, "{err}");
    for want in [
        format!(
            "store_format {}",
            kith_relay::store::pg_store::PG_SCHEMA_VERSION
        ),
        "store postgresql".into(),
        "shards 1".into(),
        "accounts 1".into(),
        "entries 5".into(),
        format!("stored_bytes {}", stats.bytes),
    ] {
        assert!(text.lines().any(|l| l == want), "no '{want}' in:\n{text}");
    }
    // A wrong URL is a clear error naming the shard, not a panic.
    let (ok, _, err) = relay_admin("postgres://postgres@127.0.0.1:1/none", &["status"]);
    assert!(!ok);
    assert!(err.contains("shard 0"), "{err}");
}

#[test]
fn account_delete_closes_the_account_on_every_node_and_removes_its_rows() {
    let (node_a, node_b, db) = two_nodes(RelayConfig::default());
    let (acct, other) = (Account::new(), Account::new());
    let (d1, d2, o1) = (
        acct.device("laptop"),
        acct.device("phone"),
        other.device("laptop"),
    );
    block_on(async {
        let mut c1 = connect(&node_a, &d1).await;
        assert_eq!(c1.push(d1.entries(1, 3)).await.unwrap(), 3);
        let mut c2 = connect(&node_b, &d2).await;
        assert_eq!(c2.push(d2.entries(1, 2)).await.unwrap(), 2);
        assert_eq!(
            c2.request(Request::Subscribe).await.unwrap(),
            Response::Subscribed
        );
        let mut o = connect(&node_b, &o1).await;
        assert_eq!(o.push(o1.entries(1, 2)).await.unwrap(), 2);
        let rows = tokio::task::block_in_place(|| node_a.store.account_rows(&acct.id()));
        assert!(rows.unwrap() > 0);

        // The operator's command (the real binary, its own connection to
        // the database) while both devices are connected to the nodes.
        let (ok, text, err) = tokio::task::block_in_place(|| {
            relay_admin(&db.url, &["account", "delete", &acct.id().to_string()])
        });
        assert!(ok, "{err}");
        assert!(
            text.starts_with(&format!("deleted account {}", acct.id())),
            "{text}"
        );
        let deleted = Instant::now();
        for (node, c) in [("A", &c1), ("B", &c2)] {
            let closed = tokio::time::timeout(Duration::from_secs(1), c.connection().closed())
                .await
                .unwrap_or_else(|_| {
                    panic!("node {node} did not close the deleted account's device within a second")
                });
            assert!(
                matches!(closed, quinn::ConnectionError::ApplicationClosed(ref c)
                if c.error_code == quinn::VarInt::from_u32(kith_protocol::msg::close_code::REVOKED)
                    && &c.reason[..] == b"account deleted"),
                "{closed:?}"
            );
        }
        assert!(deleted.elapsed() < Duration::from_secs(1));
        // Its devices cannot come back (nor register the account again)
        // through either node.
        for node in [&node_a, &node_b] {
            for d in [&d1, &d2] {
                let mut again = node.hello().await;
                assert_eq!(
                    code_of(again.auth(&d.key, d.account, d.membership(), None).await),
                    ErrorCode::AuthFailed
                );
            }
        }
        // The other account is untouched and carries on.
        assert_eq!(o.push(o1.entries(3, 3)).await.unwrap(), 3);
    });
    assert_eq!(node_a.store.account_rows(&acct.id()).unwrap(), 0);
    assert!(node_a.store.account_rows(&other.id()).unwrap() > 0);
    let stats = node_a.store.stats().unwrap();
    assert_eq!((stats.accounts, stats.entries), (1, 3));
    // Deleting it again is a clear error, not a second deletion.
    let (ok, _, err) = relay_admin(&db.url, &["account", "delete", &acct.id().to_string()]);
    assert!(!ok);
    assert!(err.contains(&format!("no account {}", acct.id())), "{err}");
}

#[test]
fn starting_again_keeps_the_schema_and_a_newer_one_is_refused() {
    let db = PgServer::shared().database();
    let urls = std::slice::from_ref(&db.url);
    let store = kith_relay::PgStore::connect(urls).unwrap();
    assert_eq!(store.stats().unwrap().accounts, 0);
    drop(store);
    // A second start (another node) finds the schema current.
    kith_relay::PgStore::connect(urls).unwrap();
    let mut c = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    c.execute(
        "UPDATE kith_meta SET value = value + 1 WHERE key = 'schema'",
        &[],
    )
    .unwrap();
    let err = kith_relay::PgStore::connect(urls).unwrap_err();
    assert!(
        matches!(err, kith_relay::store::pg_store::PgOpenError::NewerSchema { found, .. }
            if found == kith_relay::store::pg_store::PG_SCHEMA_VERSION + 1),
        "{err}"
    );
    assert!(err.to_string().contains("newer kith-relay"), "{err}");
}

#[test]
fn shards_given_in_another_order_are_refused() {
    let (one, two) = (PgServer::shared().database(), PgServer::shared().database());
    kith_relay::PgStore::connect(&[one.url.clone(), two.url.clone()]).unwrap();
    let err = kith_relay::PgStore::connect(&[two.url.clone(), one.url.clone()]).unwrap_err();
    assert!(
        matches!(
            err,
            kith_relay::store::pg_store::PgOpenError::ShardMismatch {
                shard: 0,
                found_shard: 1,
                ..
            }
        ),
        "{err}"
    );
    let err = kith_relay::PgStore::connect(std::slice::from_ref(&one.url)).unwrap_err();
    assert!(
        matches!(
            err,
            kith_relay::store::pg_store::PgOpenError::ShardMismatch {
                count: 1,
                found_count: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn an_unreachable_database_is_a_clear_error() {
    // A port nothing listens on (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err =
        kith_relay::PgStore::connect(&[format!("postgres://kith:secret@127.0.0.1:{port}/relay")])
            .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("shard 0") && text.contains("connecting"),
        "{text}"
    );
    assert!(
        !text.contains("secret"),
        "the password leaked into the error: {text}"
    );
}

#[test]
fn the_entry_rate_quota_holds_across_nodes() {
    let config = RelayConfig {
        limits: kith_relay::Limits {
            quota_entries_per_minute: 10,
            ..kith_relay::Limits::default()
        },
        ..RelayConfig::default()
    };
    let (node_a, node_b, _db) = two_nodes(config);
    block_on(async {
        let acct = Account::new();
        let (d1, d2) = (acct.device("laptop"), acct.device("phone"));
        let mut c1 = connect(&node_a, &d1).await;
        let mut c2 = connect(&node_b, &d2).await;
        // 6 through A and 4 through B fill the account's one window ...
        assert_eq!(c1.push(d1.entries(1, 6)).await.unwrap(), 6);
        assert_eq!(c2.push(d2.entries(1, 4)).await.unwrap(), 4);
        // ... so one more through either node is refused (per-node windows
        // would have allowed 10 per node).
        for (c, d) in [(&mut c1, &d1), (&mut c2, &d2)] {
            let next = c
                .push(vec![d.entry(if d.id() == d1.id() { 7 } else { 5 }, b"x")])
                .await;
            match code_of(next) {
                ErrorCode::QuotaRate {
                    entries_per_minute: 10,
                    retry_after_ms,
                } => assert!(retry_after_ms <= 60_000, "{retry_after_ms}"),
                other => panic!("{other:?}"),
            }
        }
    });
}

#[test]
fn a_redb_relay_migrates_to_postgres_and_its_devices_carry_on() {
    use kith_relay::store::WriteOp;
    // A redb relay's store with two accounts: entries, a snapshot that
    // pruned some, a revocation, a token, a mailbox blob.
    let dir = tempfile::tempdir().unwrap();
    let redb = kith_relay::RedbStore::open(&dir.path().join("relay.redb")).unwrap();
    let (a, b) = (Account::new(), Account::new());
    let (a1, a2, a3) = (
        a.device("laptop"),
        a.device("phone"),
        a.device("old tablet"),
    );
    let b1 = b.device("laptop");
    let ok = |ops: Vec<WriteOp>| {
        for r in redb.apply(ops) {
            r.unwrap();
        }
    };
    let register = |d: &Device| WriteOp::AppendMembership {
        account: d.account,
        ops: d.membership(),
        skip_known: true,
        token_hash: None,
        open_registration: true,
        now_ms: 1,
        members_max: 64,
    };
    let push = |d: &Device, from, to| WriteOp::Push {
        account: d.account,
        device: d.id(),
        entries: d.entries(from, to),
        quota_bytes: u64::MAX,
    };
    ok(vec![register(&a1), register(&b1)]);
    ok(vec![push(&a1, 1, 30), push(&a2, 1, 5), push(&b1, 1, 3)]);
    let snapshot = kith_protocol::SealedSnapshot::seal(
        &a1.key,
        a.id(),
        a1.epoch(),
        vec![a1.cursor(10)],
        [0; 24],
        vec![7; 5000],
    );
    // Stored pending, then opened by a2: confirmed, a1's entries 1..=10 pruned.
    let snapshot_id = kith_relay::store::snapshot_id(&snapshot);
    ok(vec![WriteOp::PutSnapshot {
        snapshot,
        quota_bytes: u64::MAX,
        finished_upload: None,
        now_ms: 1,
    }]);
    ok(vec![WriteOp::ConfirmSnapshot {
        account: a.id(),
        device: a2.id(),
        snapshot_id,
    }]);
    // Sealed under epoch 1, before the revocation below starts epoch 2.
    let mut unseen = a1.entries(11, 30);
    let rev = a1.revoke_op(a3.id());
    ok(vec![WriteOp::AppendMembership {
        account: a.id(),
        ops: vec![rev.clone()],
        skip_known: false,
        token_hash: None,
        open_registration: true,
        now_ms: 2,
        members_max: 64,
    }]);
    a.record(rev);
    ok(vec![push(&a1, 31, 32)]);
    unseen.extend(a1.entries(31, 32));
    let token = kith_relay::create_token(&redb).unwrap();
    ok(vec![WriteOp::MailboxPut {
        slot: [9; 32],
        blob: vec![1, 2, 3],
        expires_at_ms: u64::MAX / 2,
        now_ms: 0,
        // Counts against account a (its bytes compared below).
        owner: Some(kith_relay::store::MailboxOwner {
            account: a.id(),
            quota_bytes: u64::MAX,
            blobs_max: 8,
        }),
    }]);

    // Into two shards; verified by comparing every log.
    let (s0, s1) = (PgServer::shared().database(), PgServer::shared().database());
    let urls = [s0.url.clone(), s1.url.clone()];
    let pg = kith_relay::PgStore::connect(&urls).unwrap();
    let report = kith_relay::store::migrate::migrate(&redb, &pg).unwrap();
    assert_eq!(report.accounts, 2);
    assert_eq!(report.entries, 32 - 10 + 5 + 3);
    assert_eq!(
        (report.snapshots, report.tokens, report.mailbox_slots),
        (1, 1, 1)
    );
    assert_eq!(pg.stats().unwrap(), redb.stats().unwrap());
    // A second run refuses: the target is no longer empty.
    assert!(matches!(
        kith_relay::store::migrate::migrate(&redb, &pg),
        Err(kith_relay::store::migrate::MigrateError::TargetNotEmpty { accounts: 2 })
    ));
    // Verification notices a difference.
    let mut c = postgres::Client::connect(
        &urls[kith_relay::store::pg_store::shard_of(&b.id().0, 2)],
        postgres::NoTls,
    )
    .unwrap();
    c.execute(
        "DELETE FROM entries WHERE account = $1 AND seq = 3",
        &[&b.id().0.as_slice()],
    )
    .unwrap();
    assert!(matches!(
        kith_relay::store::migrate::verify(&redb, &pg),
        Err(kith_relay::store::migrate::MigrateError::Mismatch {
            what: "entries",
            ..
        })
    ));
    drop(c);
    drop(pg);

    // The devices carry on through a node on the migrated data.
    let key = kith_protocol::SigningKey::from_bytes(&rand_bytes());
    let node = PgRelayNode::start(
        &urls,
        &key,
        RelayConfig {
            registration: RegistrationPolicy::Token,
            ..RelayConfig::default()
        },
    );
    let mut state = node.store.membership(&a.id()).unwrap().unwrap();
    assert!(state.revoked_at(&a3.id()).is_some());
    state = node.store.membership(&b.id()).unwrap().unwrap();
    assert!(state.is_member(&b1.id()));
    block_on(async {
        let mut c2 = connect(&node, &a2).await;
        // What a2 has not seen: a1's entries after the snapshot.
        let got = c2
            .pull_all(vec![a1.cursor(10), a2.cursor(5)])
            .await
            .unwrap();
        assert_eq!(got, unseen);
        assert_eq!(c2.push(a2.entries(6, 6)).await.unwrap(), 6);
        let mut c3 = node.hello().await;
        assert_eq!(
            code_of(c3.auth(&a3.key, a3.account, a3.membership(), None).await),
            ErrorCode::DeviceRevoked
        );
        // The migrated token registers a new account.
        let n = Account::new();
        let n1 = n.device("laptop");
        let mut cn = node.hello().await;
        assert!(
            cn.auth(&n1.key, n1.account, n1.membership(), Some(token))
                .await
                .unwrap()
        );
    });
}

/// Pushes `d`'s entries from seq 1 through `node` until `stop`, re-sending a
/// push whose answer was lost or refused (reconnecting as needed, bounded by
/// `T` per entry); records each acknowledged seq in `acked`.
async fn push_until(
    node: &PgRelayNode,
    d: &Device,
    acked: std::sync::Arc<std::sync::atomic::AtomicU64>,
    total: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    last_ack: std::sync::Arc<std::sync::Mutex<Vec<Instant>>>,
) {
    use std::sync::atomic::Ordering;
    let mut client: Option<kith_relay::client::RelayClient> = None;
    let mut seq = 1;
    while !stop.load(Ordering::Acquire) {
        let deadline = Instant::now() + 3 * T;
        loop {
            assert!(Instant::now() < deadline, "seq {seq} never acknowledged");
            if client.is_none() {
                let mut c = node.hello().await;
                if c.auth(&d.key, d.account, d.membership(), None)
                    .await
                    .is_ok()
                {
                    client = Some(c);
                } else {
                    // The database is failing over: retry shortly.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
            let Some(c) = client.as_mut() else { continue };
            match c.push(d.entries(seq, seq)).await {
                Ok(head) => {
                    assert_eq!(head, seq);
                    break;
                }
                Err(_) => {
                    client = None;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        acked.store(seq, Ordering::Release);
        total.fetch_add(1, Ordering::AcqRel);
        last_ack.lock().unwrap().push(Instant::now());
        seq += 1;
    }
}

#[test]
fn a_primary_failover_under_load_loses_and_doubles_no_acknowledged_entry() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    // A primary with two quorum-synchronous standbys: a commit is
    // acknowledged once one standby has it.
    let mut primary = PgServer::start(&["synchronous_standby_names = 'ANY 1 (s1, s2)'"]);
    let mut s1 = PgServer::standby_of(&primary, "s1");
    let s2 = PgServer::standby_of(&primary, "s2");
    let deadline = Instant::now() + T;
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
    let db = primary.database();
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    // The nodes follow whichever server accepts writes.
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}/{name}?target_session_attrs=read-write",
        primary.port, s1.port, s2.port
    );
    let key = kith_protocol::SigningKey::from_bytes(&rand_bytes());
    let nodes = [
        PgRelayNode::start(std::slice::from_ref(&url), &key, RelayConfig::default()),
        PgRelayNode::start(std::slice::from_ref(&url), &key, RelayConfig::default()),
    ];
    let accounts: Vec<Account> = (0..4).map(|_| Account::new()).collect();
    let devices: Vec<Device> = accounts.iter().map(|a| a.device("laptop")).collect();
    let acked: Vec<Arc<AtomicU64>> = devices.iter().map(|_| Arc::default()).collect();
    let total = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(std::sync::Mutex::new(Vec::new()));
    let wait_for = |n: u64| {
        let deadline = Instant::now() + 3 * T;
        while total.load(Ordering::Acquire) < n {
            assert!(Instant::now() < deadline, "pushes stalled below {n}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let outage = std::thread::scope(|scope| {
        let pushers = scope.spawn(|| {
            block_on(async {
                let mut set = Vec::new();
                for (i, d) in devices.iter().enumerate() {
                    set.push(push_until(
                        &nodes[i % 2],
                        d,
                        acked[i].clone(),
                        total.clone(),
                        stop.clone(),
                        acks.clone(),
                    ));
                }
                futures_join_all(set).await;
            });
        });
        wait_for(40);
        // A standby dies: commits go on with the other one.
        s1.kill_hard();
        let before = total.load(Ordering::Acquire);
        wait_for(before + 40);
        // The primary dies; the surviving standby is promoted.
        let killed_at = Instant::now();
        primary.kill_hard();
        s2.promote();
        // What the replication manager does next (Patroni): the new primary
        // has no synchronous standby left, so it stops waiting for one
        // (its configuration came from the old primary's).
        let mut new_primary = s2.admin();
        new_primary
            .batch_execute("ALTER SYSTEM SET synchronous_standby_names = ''")
            .unwrap();
        new_primary
            .batch_execute("SELECT pg_reload_conf()")
            .unwrap();
        let after = total.load(Ordering::Acquire);
        wait_for(after + 40);
        stop.store(true, Ordering::Release);
        pushers.join().unwrap();
        // The write outage: the longest gap between acks around the kill.
        let acks = acks.lock().unwrap();
        acks.windows(2)
            .filter(|w| w[1] >= killed_at)
            .map(|w| w[1].duration_since(w[0]))
            .max()
            .unwrap_or_default()
    });
    eprintln!(
        "write outage during the primary failover: {} ms",
        outage.as_millis()
    );
    drop(nodes);
    // On the promoted server: every acknowledged entry, exactly once, intact.
    let store = kith_relay::PgStore::connect(&[s2.url(&name)]).unwrap();
    for (d, acked) in devices.iter().zip(&acked) {
        let acked = acked.load(Ordering::Acquire);
        assert!(acked > 0);
        let heads = store.heads(&d.account).unwrap();
        assert_eq!(heads.heads, vec![d.cursor(acked)], "head after failover");
        let page = store.pull(&d.account, &[], 100_000, usize::MAX).unwrap();
        assert_eq!(page.entries, d.entries(1, acked), "entries after failover");
    }
    drop(db);
}

/// Polls every future to completion (the pushers run side by side).
async fn futures_join_all<F: std::future::Future<Output = ()>>(futs: Vec<F>) {
    // The futures borrow the test's data, so they cannot be spawned: this
    // task polls them all.
    let mut futs: Vec<std::pin::Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    std::future::poll_fn(|cx| {
        futs.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if futs.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}

#[test]
fn new_accounts_per_address_are_counted_across_nodes() {
    let config = RelayConfig {
        limits: kith_relay::Limits {
            accounts_per_addr_per_hour: 3,
            ..kith_relay::Limits::default()
        },
        ..RelayConfig::default()
    };
    let (node_a, node_b, _db) = two_nodes(config);
    block_on(async {
        let accounts: Vec<_> = (0..4).map(|_| Account::new()).collect();
        let devices: Vec<_> = accounts.iter().map(|a| a.device("laptop")).collect();
        // Two registrations through A and one through B use the address's
        // one window (per-node windows would allow 3 per node) ...
        for (d, node) in devices.iter().take(3).zip([&node_a, &node_b, &node_a]) {
            let mut c = node.hello().await;
            assert!(
                c.auth(&d.key, d.account, d.membership(), None)
                    .await
                    .unwrap()
            );
        }
        // ... so a fourth through either node is refused.
        for node in [&node_b, &node_a] {
            let fourth = &devices[3];
            let mut c = node.hello().await;
            let code = code_of(
                c.auth(&fourth.key, fourth.account, fourth.membership(), None)
                    .await,
            );
            assert!(
                matches!(code, ErrorCode::RegistrationLimited { retry_after_ms } if retry_after_ms > 0 && retry_after_ms <= 3_600_000),
                "{code:?}"
            );
        }
        // A known account still signs in.
        let mut c = node_b.hello().await;
        let d = &devices[0];
        assert!(
            !c.auth(&d.key, d.account, d.membership(), None)
                .await
                .unwrap()
        );
    });
}

#[test]
fn a_schema_2_database_migrates_its_snapshot_to_the_confirmed_one() {
    // A database as a schema-2 relay left it: one account with a snapshot
    // (envelope and ciphertext apart) and an unfinished upload.
    let db = PgServer::shared().database();
    let mut c = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    let migrations = kith_relay::store::pg_store::MIGRATIONS;
    c.batch_execute(
        "CREATE TABLE kith_meta (key text PRIMARY KEY, value bigint NOT NULL);
         INSERT INTO kith_meta VALUES ('schema', 2), ('shard', 0), ('shards', 1);",
    )
    .unwrap();
    c.batch_execute(migrations[0]).unwrap();
    c.batch_execute(migrations[1]).unwrap();
    let acct = Account::new();
    let d1 = acct.device("laptop");
    let snapshot = kith_protocol::SealedSnapshot::seal(
        &d1.key,
        acct.id(),
        d1.epoch(),
        vec![d1.cursor(0)],
        [0; 24],
        vec![5; 3000],
    );
    let envelope = postcard::to_allocvec(&kith_protocol::SealedSnapshot {
        ciphertext: Vec::new(),
        ..snapshot.clone()
    })
    .unwrap();
    let a = acct.id().0.to_vec();
    c.execute("INSERT INTO accounts VALUES ($1, 1, 0, 0)", &[&a])
        .unwrap();
    c.execute(
        "INSERT INTO snapshots VALUES ($1, $2, $3, 3100)",
        &[&a, &envelope, &snapshot.ciphertext],
    )
    .unwrap();
    c.execute(
        "INSERT INTO snapshot_uploads VALUES ($1, $2, 7, 2, 10, 1)",
        &[&a, &d1.id().0.to_vec()],
    )
    .unwrap();
    drop(c);

    let store = kith_relay::PgStore::connect(std::slice::from_ref(&db.url)).unwrap();
    assert_eq!(
        store.format_version(),
        kith_relay::store::pg_store::PG_SCHEMA_VERSION
    );
    let snaps = store.snapshots(&acct.id()).unwrap();
    assert!(snaps.pending.is_none());
    let confirmed = snaps.confirmed.unwrap();
    assert_eq!(
        confirmed.snapshot_id,
        kith_relay::store::snapshot_id(&snapshot)
    );
    assert_eq!(confirmed.total_bytes, 3000);
    assert_eq!(store.snapshot(&acct.id()).unwrap(), Some(snapshot.clone()));
    let r = store
        .snapshot_range(&acct.id(), None, 2990, 100)
        .unwrap()
        .unwrap();
    assert_eq!(r.snapshot.ciphertext, vec![5; 10]);
    // The unfinished upload was dropped (its device starts again).
    assert!(matches!(
        store.snapshot_upload(&acct.id(), &d1.id(), 7, &mut |_| {}),
        Err(kith_relay::store::StoreError::UploadIncomplete { parts_stored: 0 })
    ));
}

/// A CA and a server certificate for 127.0.0.1 signed by it (PEM), plus the
/// CA's certificate alone.
fn test_ca_and_server_cert() -> (String, String, String) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    (ca.pem(), server.pem(), server_key.serialize_pem())
}

#[test]
fn nodes_reach_postgres_over_verified_tls_and_refuse_plain_text_or_a_stranger_s_certificate() {
    let (ca_pem, cert_pem, key_pem) = test_ca_and_server_cert();
    let (other_ca_pem, _, _) = test_ca_and_server_cert();
    let server = PgServer::start_tls(&cert_pem, &key_pem);
    let db = server.database();
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, other_file) = (dir.path().join("ca.pem"), dir.path().join("other.pem"));
    std::fs::write(&ca_file, &ca_pem).unwrap();
    std::fs::write(&other_file, &other_ca_pem).unwrap();
    let with = |mode: &str, root: &std::path::Path| {
        vec![format!(
            "{}?sslmode={mode}&sslrootcert={}",
            db.url,
            root.display()
        )]
    };

    // The server refuses unencrypted connections to the relay's database.
    let err = kith_relay::PgStore::connect(std::slice::from_ref(&db.url)).unwrap_err();
    assert!(err.to_string().contains("no encryption"), "{err}");
    // A certificate from a CA the URL does not name is refused by the node.
    let err = kith_relay::PgStore::connect(&with("require", &other_file)).unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");

    // With the right CA: two nodes on the TLS URL serve, and fan-out between
    // them (the event publisher and listener connect the same way) works.
    let urls = with("verify-full", &ca_file);
    let key = kith_protocol::SigningKey::from_bytes(&rand_bytes());
    let node_a = PgRelayNode::start(&urls, &key, RelayConfig::default());
    let node_b = PgRelayNode::start(&urls, &key, RelayConfig::default());
    block_on(async {
        let acct = Account::new();
        let (d1, d2) = (acct.device("laptop"), acct.device("phone"));
        let mut c1 = connect(&node_a, &d1).await;
        let mut c2 = connect(&node_b, &d2).await;
        subscribe_and_see_a_push(&mut c2, &mut c1, &d1, 1, 2).await;
    });
    // Every connection the nodes hold to the database is encrypted.
    let mut admin = server.admin();
    let row = admin
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl)
             FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.datname = current_database() OR a.datname = $1",
            &[&db.url.rsplit('/').next().unwrap()],
        )
        .unwrap();
    let (tls, plain): (i64, i64) = (row.get(0), row.get(1));
    assert!(tls >= 2, "{tls} TLS connections");
    // The admin connection itself (to `postgres`) is the only plain one.
    assert_eq!(plain, 1, "{plain} plain connections");
    node_a.stop();
    node_b.stop();
}

#[test]
fn nodes_time_invitations_by_the_database_clock_not_their_own() {
    // This database's clock runs an hour ahead of the machine's: a function
    // shadows pg_catalog's clock_timestamp() for its sessions.
    let db = PgServer::shared().database();
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    postgres::Client::connect(&db.url, postgres::NoTls)
        .unwrap()
        .batch_execute(&format!(
            "CREATE FUNCTION public.clock_timestamp() RETURNS timestamptz LANGUAGE sql
               AS $$ SELECT pg_catalog.clock_timestamp() + interval '1 hour' $$;
             ALTER DATABASE {name} SET search_path = public, pg_catalog;"
        ))
        .unwrap();
    let key = kith_protocol::SigningKey::from_bytes(&rand_bytes());
    let urls = std::slice::from_ref(&db.url);
    let node_a = PgRelayNode::start(urls, &key, RelayConfig::default());
    let node_b = PgRelayNode::start(urls, &key, RelayConfig::default());
    let ahead_ms = i64::try_from(node_b.store.clock().now_ms()).unwrap()
        - i64::try_from(kith_relay::server::now_ms()).unwrap();
    assert!(
        (3_590_000..3_610_000).contains(&ahead_ms),
        "node clock {ahead_ms} ms from the machine's"
    );
    let slot = rand_bytes();
    block_on(async {
        let acct = Account::new();
        let (d1, d2) = (acct.device("laptop"), acct.device("phone"));
        let mut c1 = connect(&node_a, &d1).await;
        assert_eq!(
            c1.request(Request::MailboxPut {
                slot,
                blob: b"invitation".to_vec(),
                ttl_s: 60,
            })
            .await
            .unwrap(),
            Response::MailboxStored
        );
        let mut c2 = connect(&node_b, &d2).await;
        match c2.request(Request::MailboxTake { slot }).await.unwrap() {
            Response::MailboxBlob { blob } => assert_eq!(blob, b"invitation"),
            other => panic!("{other:?}"),
        }
    });
    // The invitation expires 60 s after it was left by the database's clock
    // (an expiry by the node's own clock would lie an hour in the past).
    let left_ms: i64 = postgres::Client::connect(&db.url, postgres::NoTls)
        .unwrap()
        .query_one(
            "SELECT expires_ms - (extract(epoch FROM clock_timestamp()) * 1000)::bigint
             FROM mailbox WHERE slot = $1",
            &[&slot.as_slice()],
        )
        .unwrap()
        .get(0);
    assert!((50_000..=60_000).contains(&left_ms), "{left_ms} ms left");
    node_a.stop();
    node_b.stop();
}
