//! A device of account B can neither read, write nor learn anything about
//! account A, whatever request it sends.

use std::time::Duration;

use kith_protocol::{ErrorCode, Request, Response, SealedEntry, SealedSnapshot};

use kith_relay::RelayStore;

use crate::common::{Account, RelayExt, TestRelay, code_of};

/// The name of every request kind. The match is exhaustive on purpose: a
/// new `Request` variant does not compile until it is named here, and the
/// test below fails until account B sends it (see [`variant_count`]).
fn kind(r: &Request) -> &'static str {
    match r {
        Request::Push { .. } => "Push",
        Request::Pull { .. } => "Pull",
        Request::Subscribe => "Subscribe",
        Request::PutSnapshot { .. } => "PutSnapshot",
        Request::GetSnapshot => "GetSnapshot",
        Request::Heads => "Heads",
        Request::AppendMembership { .. } => "AppendMembership",
        Request::MailboxPut { .. } => "MailboxPut",
        Request::MailboxTake { .. } => "MailboxTake",
        Request::Ping => "Ping",
        Request::PutSnapshotPart { .. } => "PutSnapshotPart",
        Request::CommitSnapshot { .. } => "CommitSnapshot",
        Request::GetSnapshotRange { .. } => "GetSnapshotRange",
        Request::GetMembership { .. } => "GetMembership",
        Request::Snapshots => "Snapshots",
        Request::SnapshotOpened { .. } => "SnapshotOpened",
    }
}

/// How many variants `Request` has, from its wire encoding: postcard writes
/// the variant index first, and an index past the last variant is refused
/// as such (a valid index with no payload is a truncation, or decodes).
fn variant_count() -> u8 {
    (0u8..=127)
        .take_while(|i| {
            matches!(
                postcard::from_bytes::<Request>(&[*i]),
                Ok(_) | Err(postcard::Error::DeserializeUnexpectedEnd)
            )
        })
        .count() as u8
}

/// Account B's connection, recording every request it sends.
struct Attacker {
    client: kith_relay::client::RelayClient,
    sent: Vec<Request>,
}

impl Attacker {
    async fn send(&mut self, r: Request) -> Result<Response, kith_relay::client::ClientError> {
        self.sent.push(r.clone());
        self.client.request(r).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_are_isolated_for_every_request_type() {
    let relay = TestRelay::temp(kith_relay::RelayConfig::default());
    let a = Account::new();
    let b = Account::new();
    let a1 = a.device("a-laptop");
    let b1 = b.device("b-laptop");
    // Added before B connects, so no membership event precedes its push below.
    let b2 = b.device("b-phone");
    let mut ca = relay.connect(&a1).await;
    let mut cb = Attacker {
        client: relay.connect(&b1).await,
        sent: Vec::new(),
    };
    ca.push(a1.entries(1, 5)).await.unwrap();
    // A's snapshot, committed from parts (upload 77).
    for (index, part) in [&b"A st"[..], b"ate"].into_iter().enumerate() {
        ca.request(Request::PutSnapshotPart {
            upload: 77,
            index: index as u32,
            count: 2,
            bytes: part.to_vec(),
        })
        .await
        .unwrap();
    }
    // Signed over the whole ciphertext, sent without it (it is in the parts).
    let mut envelope = SealedSnapshot::seal(
        &a1.key,
        a.id(),
        1,
        vec![a1.cursor(2)],
        [0; 24],
        b"A state".to_vec(),
    );
    envelope.ciphertext.clear();
    ca.request(Request::CommitSnapshot {
        upload: 77,
        snapshot: envelope,
    })
    .await
    .unwrap();
    let Response::SnapshotRange {
        snapshot: Some(a_snapshot),
        snapshot_id: a_snapshot_id,
        ..
    } = ca
        .request(Request::GetSnapshotRange {
            snapshot_id: None,
            offset: 0,
            bytes_max: 1000,
        })
        .await
        .unwrap()
    else {
        panic!("A's snapshot is not stored")
    };
    assert_eq!(a_snapshot.ciphertext, b"A state");
    // And an upload of A in progress (part 0 of 2 of upload 78).
    ca.request(Request::PutSnapshotPart {
        upload: 78,
        index: 0,
        count: 2,
        bytes: b"A's next ".to_vec(),
    })
    .await
    .unwrap();
    let a_heads = relay.heads(&a);
    let before = relay.stats();

    // Subscribe: B gets nothing when A pushes.
    cb.send(Request::Subscribe).await.unwrap();
    // Push: entries naming A (forged with B's key, or A's own replayed) are refused.
    let forged = SealedEntry::seal(&b1.key, a.id(), 1, 6, [0; 24], b"x".to_vec());
    for entries in [vec![forged], vec![a1.entry(6, b"replayed")]] {
        assert_eq!(
            code_of(cb.send(Request::Push { entries }).await),
            ErrorCode::WrongAccount
        );
    }
    // Pull: cursors naming A's device return nothing of A.
    let pulled = cb
        .send(Request::Pull {
            cursors: vec![a1.cursor(0)],
            entries_max: 100,
            bytes_max: 1 << 20,
        })
        .await
        .unwrap();
    assert_eq!(
        pulled,
        Response::Entries {
            entries: vec![],
            more: false
        }
    );
    // Heads and snapshot: nothing of A.
    assert_eq!(
        cb.send(Request::Heads).await.unwrap(),
        Response::Heads {
            heads: vec![],
            floors: vec![]
        }
    );
    assert_eq!(
        cb.send(Request::GetSnapshot).await.unwrap(),
        Response::Snapshot { snapshot: None }
    );
    // Ranged reads: from the start, nothing; naming A's snapshot by its id,
    // not A's bytes either.
    assert_eq!(
        cb.send(Request::GetSnapshotRange {
            snapshot_id: None,
            offset: 0,
            bytes_max: 1000,
        })
        .await
        .unwrap(),
        Response::SnapshotRange {
            snapshot: None,
            snapshot_id: [0; 32],
            total_bytes: 0,
            offset: 0
        }
    );
    assert_eq!(
        code_of(
            cb.send(Request::GetSnapshotRange {
                snapshot_id: Some(a_snapshot_id),
                offset: 2,
                bytes_max: 1000,
            })
            .await
        ),
        ErrorCode::SnapshotChanged
    );
    // PutSnapshot for A: refused.
    let s = SealedSnapshot::seal(&b1.key, a.id(), 1, vec![], [0; 24], b"x".to_vec());
    assert_eq!(
        code_of(cb.send(Request::PutSnapshot { snapshot: s }).await),
        ErrorCode::WrongAccount
    );
    // Parts: B's part for A's upload id lands in B's own upload, never A's.
    cb.send(Request::PutSnapshotPart {
        upload: 78,
        index: 1,
        count: 2,
        bytes: b"B's bytes".to_vec(),
    })
    .await
    .unwrap();
    // Commit: naming A's account (either key), or A's upload on B's own
    // account, is refused; A's parts are never read for B.
    for snapshot in [
        SealedSnapshot::seal(&b1.key, a.id(), 1, vec![], [0; 24], vec![]),
        SealedSnapshot::seal(&a1.key, a.id(), 1, vec![a1.cursor(3)], [0; 24], vec![]),
    ] {
        assert_eq!(
            code_of(
                cb.send(Request::CommitSnapshot {
                    upload: 78,
                    snapshot
                })
                .await
            ),
            ErrorCode::WrongAccount
        );
    }
    let own = SealedSnapshot::seal(&b1.key, b.id(), 1, vec![], [0; 24], vec![]);
    assert_eq!(
        code_of(
            cb.send(Request::CommitSnapshot {
                upload: 77,
                snapshot: own
            })
            .await
        ),
        ErrorCode::SnapshotUploadIncomplete { parts_stored: 0 }
    );
    // Revoke A's device: a genuine A revocation is refused on B's
    // connection, and B's device cannot revoke in its own account a device
    // that is not its member.
    let genuine = a1.revoke_op(a1.id());
    assert_eq!(
        code_of(
            cb.send(Request::AppendMembership { ops: vec![genuine] })
                .await
        ),
        ErrorCode::WrongAccount
    );
    let b_signed = b1.revoke_op(a1.id());
    assert!(matches!(
        code_of(
            cb.send(Request::AppendMembership {
                ops: vec![b_signed]
            })
            .await
        ),
        ErrorCode::MembershipRefused { .. }
    ));
    // Mailbox: A's slot is a capability (hash of a secret B never sees); B's
    // own puts cannot overwrite a live slot, and B taking a slot it does not
    // know finds nothing.
    let slot = [42u8; 32];
    ca.request(Request::MailboxPut {
        slot,
        blob: b"for A's new device".to_vec(),
        ttl_s: 60,
    })
    .await
    .unwrap();
    let overwrite = Request::MailboxPut {
        slot,
        blob: b"evil".to_vec(),
        ttl_s: 60,
    };
    assert_eq!(code_of(cb.send(overwrite).await), ErrorCode::MailboxTaken);
    assert_eq!(
        code_of(cb.send(Request::MailboxTake { slot: [43; 32] }).await),
        ErrorCode::MailboxNotFound
    );
    assert_eq!(cb.send(Request::Ping).await.unwrap(), Response::Pong);
    // Membership reads: only B's own log (its genesis), never A's.
    match cb.send(Request::GetMembership { after: 0 }).await.unwrap() {
        Response::Membership { ops, more } => {
            assert!(!more);
            assert_eq!(ops, b.membership());
        }
        other => panic!("unexpected {other:?}"),
    }
    // Snapshot listing: nothing of A; confirming A's snapshot by its id
    // neither works nor prunes A's log.
    assert_eq!(
        cb.send(Request::Snapshots).await.unwrap(),
        Response::Snapshots {
            confirmed: None,
            pending: None
        }
    );
    assert_eq!(
        code_of(
            cb.send(Request::SnapshotOpened {
                snapshot_id: a_snapshot_id
            })
            .await
        ),
        ErrorCode::SnapshotChanged
    );

    // Every request kind was tried by B.
    let tried: std::collections::BTreeSet<&str> = cb.sent.iter().map(kind).collect();
    let indexes: std::collections::BTreeSet<u8> = cb
        .sent
        .iter()
        .map(|r| postcard::to_allocvec(r).unwrap()[0])
        .collect();
    assert_eq!(
        indexes.len(),
        usize::from(variant_count()),
        "request kinds without an isolation case (tried: {tried:?})"
    );

    // A's entries reach A's subscribers but no event of A reaches B: the
    // next event B sees is B's own sibling's push, not A's.
    ca.push(a1.entries(6, 7)).await.unwrap();
    relay
        .connect(&b2)
        .await
        .push(b2.entries(1, 1))
        .await
        .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(10), cb.client.next_event())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ev,
        kith_protocol::Event::Entries {
            entries: b2.entries(1, 1)
        },
        "B received an event of A"
    );
    // A's data is untouched by everything B did.
    assert_eq!(relay.heads(&a).floors, a_heads.floors);
    assert_eq!(relay.stats().entries, before.entries + 3);
    assert_eq!(relay.heads(&b).heads, vec![b2.cursor(1)]);
    let Response::SnapshotRange {
        snapshot: Some(still),
        ..
    } = ca
        .request(Request::GetSnapshotRange {
            snapshot_id: Some(a_snapshot_id),
            offset: 0,
            bytes_max: 1000,
        })
        .await
        .unwrap()
    else {
        panic!("A's snapshot is gone")
    };
    assert_eq!(still, a_snapshot);
    // A's upload in progress holds only A's part: completing it commits A's bytes.
    ca.request(Request::PutSnapshotPart {
        upload: 78,
        index: 1,
        count: 2,
        bytes: b"state".to_vec(),
    })
    .await
    .unwrap();
    let mut envelope = SealedSnapshot::seal(
        &a1.key,
        a.id(),
        1,
        vec![a1.cursor(7)],
        [0; 24],
        b"A's next state".to_vec(),
    );
    envelope.ciphertext.clear();
    ca.request(Request::CommitSnapshot {
        upload: 78,
        snapshot: envelope,
    })
    .await
    .unwrap();
    assert_eq!(
        relay.store().snapshot(&a.id()).unwrap().unwrap().ciphertext,
        b"A's next state"
    );
    let mut a2 = relay.hello().await;
    let r = a2.request(Request::MailboxTake { slot }).await.unwrap();
    assert_eq!(
        r,
        Response::MailboxBlob {
            blob: b"for A's new device".to_vec()
        }
    );
    relay.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_binds_devices_to_their_account() {
    let relay = TestRelay::temp(kith_relay::RelayConfig::default());
    let a = Account::new();
    let b = Account::new();
    let a1 = a.device("a-laptop");
    let _b1 = b.device("b-laptop");
    relay.connect(&a1).await;
    // A's device key claiming B's account: not a member of B's log.
    let mut c = relay.hello().await;
    assert_eq!(
        code_of(c.auth(&a1.key, b.id(), b.membership(), None).await),
        ErrorCode::NotAMember
    );
    relay.stop().await.unwrap();
}
