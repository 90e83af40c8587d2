//! Operating a running relay (the real binary) through its admin socket:
//! tokens, accounts, account deletion, status, online backup under load,
//! restore into a new data directory, the store format version.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kith_protocol::{ErrorCode, SealedEntry};
use kith_relay::client::{RelayClient, client_endpoint};
use kith_relay::{RedbStore, RelayStore};

use crate::common::{Account, Device, RelayProcess, code_of, http_get, metric};

/// Runs `kith-relay --data-dir DIR ARGS…`; returns (success, stdout, stderr).
fn relay_cmd(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kith-relay"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

async fn connect(p: &RelayProcess, d: &Device, token: Option<&str>) -> RelayClient {
    let ep = client_endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut c = RelayClient::connect(&ep, p.addr, p.key).await.unwrap();
    c.auth(&d.key, d.account, d.membership(), token.map(str::to_owned))
        .await
        .unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_work_while_the_relay_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = RelayProcess::spawn(dir.path(), &["--registration", "token"]);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |f: &str| {
            std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("admin.sock"), 0o600);
        assert_eq!(mode("relay.redb"), 0o600);
        assert_eq!(mode("."), 0o700);
    }

    // A token made while the relay runs (redb is locked: only the socket can
    // reach the store) registers a new account.
    let (ok, token, err) = relay_cmd(dir.path(), &["token", "create"]);
    assert!(ok, "{err}");
    let token = token.trim().to_owned();
    let a = Account::new();
    let d = a.device("laptop");
    let mut c = connect(&p, &d, Some(&token)).await;
    c.push(d.entries(1, 4)).await.unwrap();
    // Used once only.
    let other = Account::new().device("x");
    let ep = client_endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut bad = RelayClient::connect(&ep, p.addr, p.key).await.unwrap();
    assert_eq!(
        code_of(
            bad.auth(
                &other.key,
                other.account,
                other.membership(),
                Some(token.clone())
            )
            .await
        ),
        ErrorCode::BadToken
    );

    let (ok, accounts, err) = relay_cmd(dir.path(), &["accounts"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = accounts.lines().collect();
    assert_eq!(lines.len(), 2, "{accounts}");
    let cols: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(cols[0], a.id().to_string());
    // account devices revoked entries stored_bytes created last_seen
    assert_eq!(&cols[1..4], ["1", "0", "4"]);
    assert!(cols[4].parse::<u64>().unwrap() > 0);
    assert!(cols[6].ends_with('Z'), "last seen: {}", cols[6]);

    let (ok, status, err) = relay_cmd(dir.path(), &["status"]);
    assert!(ok, "{err}");
    for want in [
        "running true",
        "accounts 1",
        "entries 4",
        &format!(
            "store_format {}",
            kith_relay::store::redb_store::SCHEMA_VERSION
        ),
    ] {
        assert!(status.lines().any(|l| l == want), "{want} in {status}");
    }
    let connections = status
        .lines()
        .find_map(|l| l.strip_prefix("connections "))
        .unwrap();
    assert!(connections.parse::<u64>().unwrap() >= 1, "{status}");

    // Deleting the account removes every row, closes its connection and
    // refuses its devices, even with a fresh token.
    let (ok, out, err) = relay_cmd(dir.path(), &["account", "delete", &a.id().to_string()]);
    assert!(ok, "{err}");
    assert!(out.contains("deleted account"), "{out}");
    let closed = tokio::time::timeout(std::time::Duration::from_secs(10), c.read_msg()).await;
    assert!(matches!(closed, Ok(Err(_))), "{closed:?}");
    let (ok, token2, _) = relay_cmd(dir.path(), &["token", "create"]);
    assert!(ok);
    let mut again = RelayClient::connect(&ep, p.addr, p.key).await.unwrap();
    assert_eq!(
        code_of(
            again
                .auth(
                    &d.key,
                    d.account,
                    d.membership(),
                    Some(token2.trim().to_owned())
                )
                .await
        ),
        ErrorCode::AuthFailed
    );
    let (ok, out, _) = relay_cmd(dir.path(), &["account", "delete", &a.id().to_string()]);
    assert!(!ok && out.is_empty());
    let (_, accounts, _) = relay_cmd(dir.path(), &["accounts"]);
    assert_eq!(accounts.lines().count(), 1, "{accounts}");
    let (ok, _, err) = relay_cmd(dir.path(), &["account", "delete", "not-an-id"]);
    assert!(!ok && err.contains("not an account id"), "{err}");

    // The metrics carry the store format.
    let m = http_get(p.metrics, "/metrics").1;
    assert_eq!(
        metric(&m, "kith_relay_store_format_version"),
        kith_relay::store::redb_store::SCHEMA_VERSION
    );
    p.sigterm();
    assert!(p.wait_exit(std::time::Duration::from_secs(15)).success());
    assert!(!dir.path().join("admin.sock").exists());

    // Stopped: the same commands work on the store directly.
    let store = RedbStore::open(&dir.path().join("relay.redb")).unwrap();
    assert_eq!(store.account_rows(&a.id()).unwrap(), 0);
    drop(store);
    let (ok, status, err) = relay_cmd(dir.path(), &["status"]);
    assert!(ok && status.contains("running false"), "{status}{err}");
}

#[test]
fn the_admin_socket_refuses_garbage_and_oversized_requests() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    // A backup staged by a relay that died while streaming it is cleaned up.
    std::fs::write(dir.path().join("admin-backup-1.tmp"), b"partial").unwrap();
    let _p = RelayProcess::spawn(dir.path(), &[]);
    assert!(!dir.path().join("admin-backup-1.tmp").exists());
    let sock = dir.path().join("admin.sock");
    for req in [
        b"rm -rf /\n".to_vec(),
        vec![b'a'; 5000],
        b"account delete zzz\n".to_vec(),
        vec![0xff, 0xfe, b'\n'],
    ] {
        let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        let _ = s.write_all(&req);
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("error\n"), "{answer:?}");
    }
    // Still serving.
    let (ok, status, _) = relay_cmd(dir.path(), &["status"]);
    assert!(ok && status.contains("running true"));
}

/// The log each device keeps of what it pushed, by seq.
struct Pusher {
    device: Device,
    pushed: Vec<SealedEntry>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_load_restores_a_consistent_store_the_devices_complete() {
    let dir = tempfile::tempdir().unwrap();
    let p = RelayProcess::spawn(dir.path(), &["--quota-entries-per-minute", "10000000"]);
    let account = Account::new();
    let devices = 3;
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..devices {
        let d = account.device(&format!("d{i}"));
        let mut c = connect(&p, &d, None).await;
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut me = Pusher {
                device: d,
                pushed: Vec::new(),
            };
            let mut seq = 0u64;
            // Push until told to stop, at least a few batches.
            while !stop.load(Ordering::Relaxed) || seq < 20 {
                let batch: Vec<SealedEntry> = (seq + 1..=seq + 5)
                    .map(|s| me.device.entry(s, &[s as u8; 300]))
                    .collect();
                c.push(batch.clone()).await.unwrap();
                seq += 5;
                me.pushed.extend(batch);
            }
            me
        }));
    }
    // Back up three times while the devices push.
    let mut backups = Vec::new();
    for n in 0..3 {
        let file = dir.path().join(format!("b{n}.backup"));
        let (ok, out, err) = tokio::task::spawn_blocking({
            let dir = dir.path().to_owned();
            let file = file.clone();
            move || relay_cmd(&dir, &["backup", file.to_str().unwrap()])
        })
        .await
        .unwrap();
        assert!(ok, "{out}{err}");
        backups.push(file);
    }
    stop.store(true, Ordering::Relaxed);
    // Nothing staged is left behind in the data directory.
    let staged: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("admin-backup-"))
        .collect();
    assert!(staged.is_empty(), "{staged:?}");
    let mut pushers = Vec::new();
    for t in tasks {
        pushers.push(t.await.unwrap());
    }

    // Every backup is a consistent cut: per device a gap-free prefix of
    // exactly what that device pushed.
    for b in &backups {
        let check = tempfile::tempdir().unwrap();
        let info = kith_relay::store::backup::restore(b, check.path(), 1).unwrap();
        assert_eq!(info.accounts, 1);
        let store = RedbStore::open(&check.path().join("relay.redb")).unwrap();
        let page = store
            .pull(&account.id(), &[], 1_000_000, usize::MAX)
            .unwrap();
        for pusher in &pushers {
            let mine: Vec<&SealedEntry> = page
                .entries
                .iter()
                .filter(|e| e.device == pusher.device.id())
                .collect();
            assert!(mine.len() <= pusher.pushed.len());
            for (e, want) in mine.iter().zip(&pusher.pushed) {
                assert_eq!(*e, want);
            }
        }
    }

    // Restore the FIRST (oldest) backup into a new data directory and start
    // the relay there: same key, older data.
    drop(p);
    let restored = tempfile::tempdir().unwrap();
    let (ok, out, err) = relay_cmd(restored.path(), &["restore", backups[0].to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    let p2 = RelayProcess::spawn(restored.path(), &["--quota-entries-per-minute", "10000000"]);
    for pusher in &pushers {
        // Each device syncs once: the relay's head tells it what was lost;
        // it pushes again from its own log.
        // (The devices pin the key: the restored relay must present it.)
        let mut c = connect(&p2, &pusher.device, None).await;
        let heads = match c.request(kith_protocol::Request::Heads).await.unwrap() {
            kith_protocol::Response::Heads { heads, .. } => heads,
            other => panic!("{other:?}"),
        };
        let head = heads
            .iter()
            .find(|h| h.device == pusher.device.id())
            .map_or(0, |h| h.seq);
        let missing: Vec<SealedEntry> = pusher
            .pushed
            .iter()
            .filter(|e| e.seq > head)
            .cloned()
            .collect();
        for chunk in missing.chunks(50) {
            c.push(chunk.to_vec()).await.unwrap();
        }
        // A re-send of what the relay has is idempotent, never a duplicate.
        c.push(pusher.pushed[..5].to_vec()).await.unwrap();
    }
    // Every device's log on the relay is exactly what it pushed: complete,
    // in order, nothing duplicated.
    let d0 = &pushers[0].device;
    let mut c = connect(&p2, d0, None).await;
    let all = c.pull_all(Vec::new()).await.unwrap();
    for pusher in &pushers {
        let mine: Vec<SealedEntry> = all
            .iter()
            .filter(|e| e.device == pusher.device.id())
            .cloned()
            .collect();
        assert_eq!(mine, pusher.pushed);
    }
    let m = http_get(p2.metrics, "/metrics").1;
    let total: usize = pushers.iter().map(|p| p.pushed.len()).sum();
    assert_eq!(metric(&m, "kith_relay_entries"), total as u64);
}

#[test]
fn an_older_binary_refuses_a_newer_store_and_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = relay_cmd(dir.path(), &["address"]);
    assert!(ok, "{err}");
    {
        let db = redb::Database::open(dir.path().join("relay.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn
                .open_table(redb::TableDefinition::<&str, u64>::new("meta"))
                .unwrap();
            meta.insert("schema", kith_relay::store::redb_store::SCHEMA_VERSION + 1)
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let (ok, _, err) = relay_cmd(dir.path(), &["--listen", "127.0.0.1:0", "serve"]);
    assert!(!ok);
    assert!(err.contains("newer kith-relay"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_kith-relay"))
        .arg("--version")
        .output()
        .unwrap();
    let v = String::from_utf8(out.stdout).unwrap();
    assert!(
        v.contains(&format!(
            "store format {}",
            kith_relay::store::redb_store::SCHEMA_VERSION
        )),
        "{v}"
    );
}
