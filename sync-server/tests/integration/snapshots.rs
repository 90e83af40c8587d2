//! Protocol 2 fragmented snapshots: parts + commit, ranged download,
//! isolation of unfinished uploads, and abandoned uploads never becoming
//! visible.

use kith_protocol::{ErrorCode, Request, Response, SealedSnapshot};
use kith_relay::client::RelayClient;
use kith_relay::store::{RelayStore, StoreError, WriteOp, WriteOutcome};
use kith_relay::{RedbStore, RelayConfig};

use crate::common::{Account, Device, RelayExt, TestRelay, code_of, rand_bytes};

/// Pseudo-random bytes (incompressible, distinct per call).
fn noise(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    while out.len() < len {
        out.extend_from_slice(&rand_bytes());
    }
    out.truncate(len);
    out
}

/// A snapshot of `d` covering its entries 1..=2, with `len` ciphertext bytes.
fn big_snapshot(a: &Account, d: &Device, len: usize) -> SealedSnapshot {
    SealedSnapshot::seal(&d.key, a.id(), 1, vec![d.cursor(2)], [7; 24], noise(len))
}

/// Uploads `s` in parts of `part` bytes (all but the commit); returns the
/// envelope to commit.
async fn put_parts(
    c: &mut RelayClient,
    upload: u64,
    s: &SealedSnapshot,
    part: usize,
) -> SealedSnapshot {
    let parts: Vec<&[u8]> = s.ciphertext.chunks(part).collect();
    let count = parts.len() as u32;
    for (i, p) in parts.into_iter().enumerate() {
        let r = c
            .request(Request::PutSnapshotPart {
                upload,
                index: i as u32,
                count,
                bytes: p.to_vec(),
            })
            .await
            .unwrap();
        assert_eq!(
            r,
            Response::SnapshotPartStored {
                upload,
                index: i as u32
            }
        );
    }
    let mut header = s.clone();
    header.ciphertext.clear();
    header
}

/// Downloads the stored snapshot range by range.
async fn get_ranges(c: &mut RelayClient, bytes_max: u32) -> (Option<SealedSnapshot>, usize) {
    let mut id = None;
    let mut got: Option<SealedSnapshot> = None;
    let mut requests = 0;
    loop {
        let offset = got.as_ref().map_or(0, |s| s.ciphertext.len() as u64);
        requests += 1;
        let r = c
            .request(Request::GetSnapshotRange {
                snapshot_id: id,
                offset,
                bytes_max,
            })
            .await
            .unwrap();
        let Response::SnapshotRange {
            snapshot,
            snapshot_id,
            total_bytes,
            offset: at,
        } = r
        else {
            panic!("unexpected {r:?}");
        };
        assert_eq!(at, offset);
        let Some(part) = snapshot else {
            return (None, requests);
        };
        id = Some(snapshot_id);
        match got.as_mut() {
            None => got = Some(part),
            Some(s) => s.ciphertext.extend_from_slice(&part.ciphertext),
        }
        if got.as_ref().unwrap().ciphertext.len() as u64 >= total_bytes {
            return (got, requests);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_larger_than_a_frame_goes_up_in_parts_and_down_in_ranges() {
    let relay = TestRelay::temp(kith_relay::RelayConfig::default());
    let a = Account::new();
    let (d1, d2) = (a.device("laptop"), a.device("phone"));
    let mut c1 = relay.connect(&d1).await;
    c1.push(d1.entries(1, 3)).await.unwrap();
    // 2.5 MiB: more than two maximum frames.
    let snap = big_snapshot(&a, &d1, 5 << 19);
    // A whole PutSnapshot cannot carry it (the frame limit refuses it).
    let header = put_parts(&mut c1, 42, &snap, 900 * 1024).await;
    // Not visible before the commit.
    let mut c2 = relay.connect(&d2).await;
    let (none, _) = get_ranges(&mut c2, 1 << 20).await;
    assert!(none.is_none());
    assert_eq!(
        c2.request(Request::GetSnapshot).await.unwrap(),
        Response::Snapshot { snapshot: None }
    );
    // A commit with a tampered envelope fails the signature over the whole.
    let mut forged = header.clone();
    forged.covers = vec![d1.cursor(1)];
    assert_eq!(
        code_of(
            c1.request(Request::CommitSnapshot {
                upload: 42,
                snapshot: forged
            })
            .await
        ),
        ErrorCode::BadSignature
    );
    let r = c1
        .request(Request::CommitSnapshot {
            upload: 42,
            snapshot: header,
        })
        .await
        .unwrap();
    assert_eq!(r, Response::SnapshotStored { pruned_entries: 0 });
    // Another device of the account downloads it in ranges, byte-identical,
    // and confirms it: the relay prunes what it covers only now.
    let (got, requests) = get_ranges(&mut c2, 1 << 20).await;
    assert_eq!(got.as_ref(), Some(&snap));
    assert!(requests >= 3, "{requests} ranges");
    got.unwrap().verify().unwrap();
    assert_eq!(
        c2.request(Request::SnapshotOpened {
            snapshot_id: kith_relay::store::snapshot_id(&snap)
        })
        .await
        .unwrap(),
        Response::SnapshotConfirmed { pruned_entries: 2 }
    );
    // The whole does not fit one GetSnapshot answer: a clear refusal.
    assert!(matches!(
        code_of(c2.request(Request::GetSnapshot).await),
        ErrorCode::TooLarge { .. }
    ));
    // The parts are gone once committed.
    assert!(matches!(
        relay
            .store()
            .snapshot_upload(&a.id(), &d1.id(), 42, &mut |_| {}),
        Err(StoreError::UploadIncomplete { parts_stored: 0 })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_snapshot_restarts_a_ranged_download() {
    let relay = TestRelay::temp(kith_relay::RelayConfig::default());
    let a = Account::new();
    let d1 = a.device("laptop");
    let mut c1 = relay.connect(&d1).await;
    c1.push(d1.entries(1, 4)).await.unwrap();
    let first = big_snapshot(&a, &d1, 300_000);
    c1.request(Request::PutSnapshot {
        snapshot: first.clone(),
    })
    .await
    .unwrap();
    let r = c1
        .request(Request::GetSnapshotRange {
            snapshot_id: None,
            offset: 0,
            bytes_max: 100_000,
        })
        .await
        .unwrap();
    let Response::SnapshotRange { snapshot_id, .. } = r else {
        panic!("{r:?}");
    };
    let second = SealedSnapshot::seal(&d1.key, a.id(), 1, vec![d1.cursor(4)], [9; 24], noise(10));
    c1.request(Request::PutSnapshot { snapshot: second })
        .await
        .unwrap();
    assert_eq!(
        code_of(
            c1.request(Request::GetSnapshotRange {
                snapshot_id: Some(snapshot_id),
                offset: 100_000,
                bytes_max: 100_000,
            })
            .await
        ),
        ErrorCode::SnapshotChanged
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_uploads_are_private_to_their_device() {
    let relay = TestRelay::temp(kith_relay::RelayConfig::default());
    let a = Account::new();
    let b = Account::new();
    let (d1, d2) = (a.device("laptop"), a.device("phone"));
    let mallory = b.device("mallory");
    let mut c1 = relay.connect(&d1).await;
    c1.push(d1.entries(1, 3)).await.unwrap();
    let snap = big_snapshot(&a, &d1, 200_000);
    let header = put_parts(&mut c1, 7, &snap, 64 * 1024).await;

    // Another account: cannot complete A's upload (its own upload 7 is
    // empty), whatever envelope it sends, and cannot read anything of A.
    let mut cm = relay.connect(&mallory).await;
    assert!(matches!(
        code_of(
            cm.request(Request::CommitSnapshot {
                upload: 7,
                snapshot: header.clone()
            })
            .await
        ),
        ErrorCode::WrongAccount
    ));
    let own = SealedSnapshot::seal(&mallory.key, b.id(), 1, vec![], [0; 24], Vec::new());
    assert!(matches!(
        code_of(
            cm.request(Request::CommitSnapshot {
                upload: 7,
                snapshot: own
            })
            .await
        ),
        ErrorCode::SnapshotUploadIncomplete { parts_stored: 0 }
    ));
    let (seen, _) = get_ranges(&mut cm, 1 << 20).await;
    assert!(seen.is_none());
    // Another device of the same account cannot complete it either.
    let mut c2 = relay.connect(&d2).await;
    assert!(matches!(
        code_of(
            c2.request(Request::CommitSnapshot {
                upload: 7,
                snapshot: header.clone()
            })
            .await
        ),
        ErrorCode::WrongAccount
    ));
    // A part that does not fit the upload is refused; a new upload id
    // replaces the unfinished one.
    assert_eq!(
        code_of(
            c1.request(Request::PutSnapshotPart {
                upload: 7,
                index: 9,
                count: 3,
                bytes: vec![1],
            })
            .await
        ),
        ErrorCode::SnapshotInvalid
    );
    c1.request(Request::PutSnapshotPart {
        upload: 8,
        index: 0,
        count: 2,
        bytes: vec![1, 2, 3],
    })
    .await
    .unwrap();
    assert!(matches!(
        code_of(
            c1.request(Request::CommitSnapshot {
                upload: 7,
                snapshot: header
            })
            .await
        ),
        ErrorCode::SnapshotUploadIncomplete { parts_stored: 0 }
    ));
    relay.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_its_limit_is_refused() {
    let mut cfg = RelayConfig::default();
    cfg.limits.snapshot_upload_bytes_max = 100_000;
    let relay = TestRelay::temp(cfg);
    let a = Account::new();
    let d1 = a.device("laptop");
    let mut c1 = relay.connect(&d1).await;
    let mut code = None;
    for i in 0..3u32 {
        match c1
            .request(Request::PutSnapshotPart {
                upload: 1,
                index: i,
                count: 3,
                bytes: vec![0; 40_000],
            })
            .await
        {
            Ok(_) => {}
            Err(e) => {
                code = e.code().cloned();
                break;
            }
        }
    }
    assert_eq!(code, Some(ErrorCode::TooLarge { limit: 100_000 }));
}

/// Protocols 1 and 2 trusted account-signed certificates, 3 had no
/// snapshot confirmation; a client that offers only them is refused, naming
/// the version the relay speaks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_1_to_3_clients_are_refused_naming_version_4() {
    let relay = TestRelay::temp(kith_relay::RelayConfig::default());
    for old in [vec![1], vec![2, 1], vec![3]] {
        let r = RelayClient::connect_with_versions(
            relay.endpoint(),
            relay.addr,
            relay.relay_key(),
            old,
        )
        .await;
        assert_eq!(
            code_of(r),
            ErrorCode::UnsupportedVersion { supported: vec![4] }
        );
    }
}

/// Parts of an upload that was never committed, in a store closed and
/// reopened (a clean close: crash.rs's
/// `sigkill_mid_snapshot_upload_leaves_no_visible_snapshot` is the SIGKILL
/// case), are never visible as a snapshot, and the sweep deletes them once
/// the upload is older than the cutoff.
#[test]
fn unfinished_upload_parts_stay_invisible_across_a_reopen_and_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.redb");
    let a = Account::new();
    let d1 = a.device("laptop");
    {
        let store = RedbStore::open(&path).unwrap();
        let ok = store.apply(vec![
            WriteOp::AppendMembership {
                account: a.id(),
                ops: d1.membership(),
                skip_known: true,
                token_hash: None,
                open_registration: true,
                now_ms: 1,
                members_max: 64,
            },
            WriteOp::PutSnapshotPart {
                account: a.id(),
                device: d1.id(),
                upload: 5,
                index: 0,
                count: 2,
                bytes: vec![1; 1000],
                upload_bytes_max: u64::MAX,
                now_ms: 1_000,
                quota_bytes: u64::MAX,
            },
        ]);
        assert!(ok.iter().all(Result::is_ok), "{ok:?}");
        // The store is closed here (cleanly; not a crash).
    }
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.snapshot(&a.id()).unwrap(), None);
    assert!(
        store
            .snapshot_range(&a.id(), None, 0, 10)
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store.snapshot_upload(&a.id(), &d1.id(), 5, &mut |_| {}),
        Err(StoreError::UploadIncomplete { parts_stored: 1 })
    ));
    // Not yet expired: kept; expired: deleted.
    let r = store.apply(vec![WriteOp::SnapshotUploadsExpire {
        started_before_ms: 1_000,
    }]);
    assert!(matches!(r[0], Ok(WriteOutcome::SnapshotUploadsExpired(0))));
    let r = store.apply(vec![WriteOp::SnapshotUploadsExpire {
        started_before_ms: 1_001,
    }]);
    assert!(matches!(r[0], Ok(WriteOutcome::SnapshotUploadsExpired(1))));
    assert!(matches!(
        store.snapshot_upload(&a.id(), &d1.id(), 5, &mut |_| {}),
        Err(StoreError::UploadIncomplete { parts_stored: 0 })
    ));
}
