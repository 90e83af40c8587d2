//! The relay process killed with SIGKILL in the middle of a stream of pushes
//! (every acknowledged entry is there after the restart, nothing is stored
//! twice) and in the middle of a fragmented snapshot upload (nothing of it
//! is visible; the device can finish it).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kith_relay::client::{RelayClient, client_endpoint};

use crate::common::{Account, RelayProcess, http_get, metric};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_no_acknowledged_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = RelayProcess::spawn(dir.path(), &[]);
    let a = Account::new();
    let d = Arc::new(a.device("laptop"));
    let ep = client_endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut c = RelayClient::connect(&ep, p.addr, p.key).await.unwrap();
    c.auth(&d.key, d.account, d.membership(), None)
        .await
        .unwrap();

    let acked = Arc::new(AtomicU64::new(0));
    let pusher = {
        let (d, acked) = (d.clone(), acked.clone());
        tokio::spawn(async move {
            let mut seq = 1;
            loop {
                // Batches of 3 so a kill can land inside a multi-entry commit.
                let head = c.push(d.entries(seq, seq + 2)).await?;
                acked.store(head, Ordering::SeqCst);
                seq = head + 1;
            }
            #[allow(unreachable_code)]
            Ok::<(), kith_relay::client::ClientError>(())
        })
    };
    // Wait until a stream of pushes is flowing, then kill -9.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while acked.load(Ordering::SeqCst) < 60 {
        assert!(std::time::Instant::now() < deadline, "pushes too slow");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    p.child.kill().unwrap();
    p.child.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    pusher.abort();
    let acked = acked.load(Ordering::SeqCst);

    let p2 = RelayProcess::spawn(dir.path(), &[]);
    assert_eq!(p2.key, p.key, "identity survives restart");
    let mut c = RelayClient::connect(&ep, p2.addr, p2.key).await.unwrap();
    c.auth(&d.key, d.account, d.membership(), None)
        .await
        .unwrap();
    let stored = c.pull_all(vec![]).await.unwrap();
    let n = stored.len() as u64;
    assert!(n >= acked, "acked {acked}, only {n} stored");
    for (i, e) in stored.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
        assert_eq!(*e, d.entry(e.seq, format!("payload {}", e.seq).as_bytes()));
    }
    // The client re-sends from its last ack (some already stored): acked
    // again, not stored twice.
    let head = c.push(d.entries(acked.max(1), n + 6)).await.unwrap();
    assert_eq!(head, n + 6);
    let all = c.pull_all(vec![]).await.unwrap();
    assert_eq!(all.len() as u64, n + 6);
    let (_, body) = http_get(p2.metrics, "/metrics");
    assert_eq!(metric(&body, "kith_relay_entries"), n + 6);
    assert_eq!(metric(&body, "kith_relay_accounts"), 1);
}

/// The relay process killed with SIGKILL in the middle of a fragmented
/// snapshot upload: after the restart no snapshot is visible (not even a
/// partial one), the upload cannot be committed with missing parts, and the
/// device can start over and finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_snapshot_upload_leaves_no_visible_snapshot() {
    use kith_protocol::{ErrorCode, Request, Response, SealedSnapshot};

    let dir = tempfile::tempdir().unwrap();
    let mut p = RelayProcess::spawn(dir.path(), &[]);
    let a = Account::new();
    let (d, other) = (a.device("laptop"), a.device("phone"));
    let ep = client_endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut c = RelayClient::connect(&ep, p.addr, p.key).await.unwrap();
    c.auth(&d.key, d.account, d.membership(), None)
        .await
        .unwrap();
    c.push(d.entries(1, 3)).await.unwrap();
    let mut ciphertext = Vec::new();
    while ciphertext.len() < 3 * 700_000 {
        ciphertext.extend_from_slice(&crate::common::rand_bytes());
    }
    let snap = SealedSnapshot::seal(&d.key, a.id(), 1, vec![d.cursor(3)], [4; 24], ciphertext);
    let parts: Vec<Vec<u8>> = snap
        .ciphertext
        .chunks(700_000)
        .map(<[u8]>::to_vec)
        .collect();
    let count = parts.len() as u32;
    for (i, part) in parts.iter().take(2).enumerate() {
        c.request(Request::PutSnapshotPart {
            upload: 1,
            index: i as u32,
            count,
            bytes: part.clone(),
        })
        .await
        .unwrap();
    }
    p.child.kill().unwrap();
    p.child.wait().unwrap();

    let p2 = RelayProcess::spawn(dir.path(), &[]);
    let mut c2 = RelayClient::connect(&ep, p2.addr, p2.key).await.unwrap();
    c2.auth(&other.key, other.account, other.membership(), None)
        .await
        .unwrap();
    assert_eq!(
        c2.request(Request::GetSnapshotRange {
            snapshot_id: None,
            offset: 0,
            bytes_max: 1 << 20,
        })
        .await
        .unwrap(),
        Response::SnapshotRange {
            snapshot: None,
            snapshot_id: [0; 32],
            total_bytes: 0,
            offset: 0,
        }
    );
    // Entries are all still there (nothing was pruned by a half upload).
    assert_eq!(c2.pull_all(vec![]).await.unwrap().len(), 3);
    let mut c = RelayClient::connect(&ep, p2.addr, p2.key).await.unwrap();
    c.auth(&d.key, d.account, d.membership(), None)
        .await
        .unwrap();
    let mut header = snap.clone();
    header.ciphertext.clear();
    assert_eq!(
        crate::common::code_of(
            c.request(Request::CommitSnapshot {
                upload: 1,
                snapshot: header.clone(),
            })
            .await
        ),
        ErrorCode::SnapshotUploadIncomplete { parts_stored: 2 }
    );
    // Resuming: the missing part, then the commit.
    c.request(Request::PutSnapshotPart {
        upload: 1,
        index: 2,
        count,
        bytes: parts[2].clone(),
    })
    .await
    .unwrap();
    assert_eq!(
        c.request(Request::CommitSnapshot {
            upload: 1,
            snapshot: header,
        })
        .await
        .unwrap(),
        // Pending until another device opens it.
        Response::SnapshotStored { pruned_entries: 0 }
    );
}
