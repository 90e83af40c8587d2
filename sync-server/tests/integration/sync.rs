//! Push, pull, subscribe, snapshots, mailbox, revocation, quotas.

use std::time::Duration;

use kith_protocol::{ErrorCode, Event, Request, Response, SealedSnapshot};
use kith_relay::{Limits, RegistrationPolicy, RelayConfig};

use crate::common::{Account, RelayExt, TestRelay, code_of};

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_pull_and_subscribe_across_two_devices() {
    let relay = TestRelay::temp(kith_relay::RelayConfig::default());
    let a = Account::new();
    let (d1, d2) = (a.device("laptop"), a.device("phone"));
    // Made before anyone connects, so its `Add` reaches the relay in the
    // first `Auth` and no membership event comes between the entries below.
    let d3 = a.device("tablet");
    let mut c1 = relay.connect(&d1).await;
    let mut c2 = relay.connect(&d2).await;
    assert_eq!(
        c2.request(Request::Subscribe).await.unwrap(),
        Response::Subscribed
    );

    assert_eq!(c1.push(d1.entries(1, 3)).await.unwrap(), 3);
    let ev = crate::common::next_event(&mut c2).await;
    assert_eq!(
        ev,
        Event::Entries {
            entries: d1.entries(1, 3)
        }
    );

    // The pusher does not get its own entries back as events: c2 pushes,
    // then a third device pushes; events reach a connection in order, so
    // c2's next event being the third device's proves none came between.
    assert_eq!(c2.push(d2.entries(1, 2)).await.unwrap(), 2);
    let pulled = c1.pull_all(vec![d1.cursor(3)]).await.unwrap();
    assert_eq!(pulled, d2.entries(1, 2));
    let all = c2.pull_all(vec![]).await.unwrap();
    assert_eq!(all.len(), 5);
    for e in &all {
        e.verify().unwrap();
    }
    assert_eq!(
        relay
            .connect(&d3)
            .await
            .push(d3.entries(1, 1))
            .await
            .unwrap(),
        1
    );
    let ev = crate::common::next_event(&mut c2).await;
    assert_eq!(
        ev,
        Event::Entries {
            entries: d3.entries(1, 1)
        },
        "the pusher got its own entries back"
    );

    // Re-sending acknowledged entries is acked again and stores nothing.
    let before = relay.stats();
    assert_eq!(c1.push(d1.entries(2, 3)).await.unwrap(), 3);
    assert_eq!(relay.stats(), before);
    // A different payload at a stored seq is a fork; a gap is refused.
    let fork = d1.entry(2, b"something else");
    assert_eq!(
        code_of(c1.push(vec![fork]).await),
        ErrorCode::SeqFork { seq: 2 }
    );
    assert_eq!(
        code_of(c1.push(d1.entries(5, 5)).await),
        ErrorCode::SeqGap { expected: 4 }
    );
    assert_eq!(
        code_of(c1.push(d1.entries(0, 0)).await),
        ErrorCode::SeqGap { expected: 4 }
    );
    assert_eq!(relay.stats(), before);
    assert_eq!(before.entries, 6);

    // Heads report both logs.
    let Response::Heads { heads, floors } = c1.request(Request::Heads).await.unwrap() else {
        panic!()
    };
    assert!(heads.contains(&d1.cursor(3)) && heads.contains(&d2.cursor(2)));
    assert!(floors.iter().all(|c| c.seq == 0));
    relay.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_is_paged_in_bounded_batches() {
    let relay = TestRelay::temp(kith_relay::RelayConfig::default());
    let a = Account::new();
    let d1 = a.device("laptop");
    let mut c1 = relay.connect(&d1).await;
    for chunk in 0..4u64 {
        c1.push(d1.entries(chunk * 100 + 1, chunk * 100 + 100))
            .await
            .unwrap();
    }
    let r = c1
        .request(Request::Pull {
            cursors: vec![],
            entries_max: 50,
            bytes_max: 1 << 20,
        })
        .await
        .unwrap();
    let Response::Entries { entries, more } = r else {
        panic!()
    };
    assert_eq!(entries.len(), 50);
    assert!(more);
    let r = c1
        .request(Request::Pull {
            cursors: vec![d1.cursor(390)],
            entries_max: 1000,
            bytes_max: 300,
        })
        .await
        .unwrap();
    let Response::Entries { entries, more } = r else {
        panic!()
    };
    assert!(
        more && !entries.is_empty() && entries.len() < 10,
        "{}",
        entries.len()
    );
    assert_eq!(entries[0].seq, 391);
    assert_eq!(c1.pull_all(vec![]).await.unwrap(), d1.entries(1, 400));
    relay.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_prunes_and_a_new_device_starts_from_snapshot_plus_tail() {
    let relay = TestRelay::temp(kith_relay::RelayConfig::default());
    let a = Account::new();
    let (d1, d2) = (a.device("laptop"), a.device("phone"));
    let mut c1 = relay.connect(&d1).await;
    let mut c2 = relay.connect(&d2).await;
    c1.push(d1.entries(1, 10)).await.unwrap();
    c2.push(d2.entries(1, 4)).await.unwrap();
    let covers = vec![d1.cursor(6), d2.cursor(4)];
    let snap = SealedSnapshot::seal(
        &d1.key,
        a.id(),
        1,
        covers.clone(),
        [1; 24],
        b"state".to_vec(),
    );
    let r = c1
        .request(Request::PutSnapshot {
            snapshot: snap.clone(),
        })
        .await
        .unwrap();
    // Pending: nothing is pruned until another device opened it; its author
    // cannot confirm it.
    assert_eq!(r, Response::SnapshotStored { pruned_entries: 0 });
    assert_eq!(relay.stats().entries, 14);
    let snapshot_id = kith_relay::store::snapshot_id(&snap);
    assert_eq!(
        code_of(c1.request(Request::SnapshotOpened { snapshot_id }).await),
        ErrorCode::SnapshotOwn
    );
    let Response::Snapshots {
        confirmed: None,
        pending: Some(p),
    } = c2.request(Request::Snapshots).await.unwrap()
    else {
        panic!("one pending snapshot")
    };
    assert_eq!(
        (p.snapshot_id, p.device, p.covers.clone()),
        (snapshot_id, d1.id(), covers.clone())
    );
    assert_eq!(
        c2.request(Request::SnapshotOpened { snapshot_id })
            .await
            .unwrap(),
        Response::SnapshotConfirmed { pruned_entries: 10 }
    );
    assert_eq!(relay.stats().entries, 4);

    // An older snapshot is refused; one covering missing entries too.
    let old = SealedSnapshot::seal(
        &d1.key,
        a.id(),
        1,
        vec![d1.cursor(5), d2.cursor(4)],
        [1; 24],
        b"x".to_vec(),
    );
    assert_eq!(
        code_of(c1.request(Request::PutSnapshot { snapshot: old }).await),
        ErrorCode::SnapshotStale
    );
    let bad = SealedSnapshot::seal(
        &d1.key,
        a.id(),
        1,
        vec![d1.cursor(11)],
        [1; 24],
        b"x".to_vec(),
    );
    assert_eq!(
        code_of(c1.request(Request::PutSnapshot { snapshot: bad }).await),
        ErrorCode::SnapshotInvalid
    );
    let dup = SealedSnapshot::seal(
        &d1.key,
        a.id(),
        1,
        vec![d1.cursor(7), d1.cursor(7), d2.cursor(4)],
        [1; 24],
        b"x".to_vec(),
    );
    assert_eq!(
        code_of(c1.request(Request::PutSnapshot { snapshot: dup }).await),
        ErrorCode::SnapshotInvalid
    );
    assert_eq!(relay.stats().entries, 4);

    // A new device: pulling from scratch needs the snapshot first.
    let d3 = a.device("tablet");
    let mut c3 = relay.connect(&d3).await;
    assert_eq!(
        code_of(c3.pull_all(vec![]).await),
        ErrorCode::SnapshotNeeded
    );
    let Response::Snapshot {
        snapshot: Some(got),
    } = c3.request(Request::GetSnapshot).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(got, snap);
    got.verify().unwrap();
    let tail = c3.pull_all(got.covers.clone()).await.unwrap();
    assert_eq!(tail, d1.entries(7, 10));
    let Response::Heads { floors, .. } = c3.request(Request::Heads).await.unwrap() else {
        panic!()
    };
    assert!(floors.contains(&d1.cursor(6)));
    // Re-sending a pruned entry is acknowledged, not stored again.
    assert_eq!(c1.push(d1.entries(3, 4)).await.unwrap(), 10);
    assert_eq!(relay.stats().entries, 4);
    relay.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailbox_is_one_time_and_expires() {
    // The relay reads a clock the test moves: expiry is stepped over, not waited for.
    let clock = kith_relay::Clock::manual(kith_relay::now_ms());
    let relay = TestRelay::temp(kith_relay::RelayConfig {
        clock: clock.clone(),
        ..kith_relay::RelayConfig::default()
    });
    let a = Account::new();
    let d1 = a.device("laptop");
    let mut c1 = relay.connect(&d1).await;
    let slot = kith_protocol::msg::mailbox_slot(b"high-entropy invitation secret");
    let put = Request::MailboxPut {
        slot,
        blob: b"sealed secret".to_vec(),
        ttl_s: 600,
    };
    assert_eq!(
        c1.request(put.clone()).await.unwrap(),
        Response::MailboxStored
    );
    assert_eq!(code_of(c1.request(put).await), ErrorCode::MailboxTaken);

    // The pairing device has no certificate yet: it takes without auth.
    let mut newcomer = relay.hello().await;
    let r = newcomer
        .request(Request::MailboxTake { slot })
        .await
        .unwrap();
    assert_eq!(
        r,
        Response::MailboxBlob {
            blob: b"sealed secret".to_vec()
        }
    );
    assert_eq!(
        code_of(newcomer.request(Request::MailboxTake { slot }).await),
        ErrorCode::MailboxNotFound
    );
    // Unauthenticated connections can do nothing else.
    assert_eq!(
        code_of(newcomer.request(Request::Heads).await),
        ErrorCode::NotAuthenticated
    );

    // A 1 s TTL runs out: the slot counts as free again (a put is accepted). One millisecond
    // before, it is still taken.
    let short = [8u8; 32];
    let put = |blob: u8| Request::MailboxPut {
        slot: short,
        blob: vec![blob],
        ttl_s: 1,
    };
    c1.request(put(1)).await.unwrap();
    assert_eq!(code_of(c1.request(put(2)).await), ErrorCode::MailboxTaken);
    assert!(clock.advance_ms(999));
    assert_eq!(code_of(c1.request(put(2)).await), ErrorCode::MailboxTaken);
    assert!(clock.advance_ms(2));
    assert_eq!(
        c1.request(put(3)).await.unwrap(),
        Response::MailboxStored,
        "the 1 s TTL ran out"
    );
    assert_eq!(
        c1.request(Request::MailboxTake { slot: short })
            .await
            .unwrap(),
        Response::MailboxBlob { blob: vec![3] }
    );
    let big = Request::MailboxPut {
        slot: [9; 32],
        blob: vec![0; 70_000],
        ttl_s: 5,
    };
    assert!(matches!(
        code_of(c1.request(big).await),
        ErrorCode::TooLarge { .. }
    ));
    relay.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_drops_the_device_and_refuses_it_from_then_on() {
    let relay = TestRelay::temp(kith_relay::RelayConfig::default());
    let a = Account::new();
    let (d1, d2, d3) = (
        a.device("laptop"),
        a.device("stolen phone"),
        a.device("tablet"),
    );
    let mut c1 = relay.connect(&d1).await;
    let mut c2 = relay.connect(&d2).await;
    let mut c3 = relay.connect(&d3).await;
    c3.request(Request::Subscribe).await.unwrap();
    c2.push(d2.entries(1, 2)).await.unwrap();
    let rev = d1.revoke_op(d2.id());
    // The stolen phone prepares, on the same head, a revocation of the laptop.
    let counter = d2.revoke_op(d1.id());
    let len = match c1
        .request(Request::AppendMembership {
            ops: vec![rev.clone()],
        })
        .await
        .unwrap()
    {
        Response::MembershipAppended { len } => len,
        other => panic!("{other:?}"),
    };
    assert_eq!(len, 4);
    a.record(rev.clone());
    // The open connection is closed by the relay.
    let closed = tokio::time::timeout(T, c2.connection().closed())
        .await
        .unwrap();
    assert!(
        matches!(closed, quinn::ConnectionError::ApplicationClosed(ref c) if c.error_code == quinn::VarInt::from_u32(2)),
        "{closed:?}"
    );
    // The other member hears of it as an event.
    let mut heard = false;
    while let Ok(Ok(ev)) = tokio::time::timeout(T, c3.next_event()).await {
        if let Event::Membership { ops } = ev {
            assert_eq!(ops, vec![rev.clone()]);
            heard = true;
            break;
        }
    }
    assert!(heard, "the tablet did not hear of the revocation");
    let before = relay.stats();
    // Its own key: refused.
    let mut again = relay.hello().await;
    assert_eq!(
        code_of(again.auth(&d2.key, d2.account, d2.membership(), None).await),
        ErrorCode::DeviceRevoked
    );
    // A key it mints and certifies itself (an Add signed by the revoked key)
    // is refused, and the minted key alone is not a member.
    let minted = kith_protocol::SigningKey::from_bytes(&crate::common::rand_bytes());
    let m = kith_protocol::Membership::from_ops(a.id(), &d2.membership()).unwrap();
    let add = m.next_op(
        kith_protocol::Author::Device(d2.id()),
        &d2.key,
        m.epoch(),
        kith_protocol::Change::Add {
            member: kith_protocol::MemberKeys {
                device: minted.verifying_key().into(),
                seal_key: [0; 32],
            },
            key: kith_protocol::SealedEpochKey {
                to: minted.verifying_key().into(),
                enc: [0; 32],
                ciphertext: vec![0; 48],
            },
        },
        1,
    );
    let mut ops = d2.membership();
    ops.push(add);
    let mut c = relay.hello().await;
    assert!(matches!(
        code_of(c.auth(&minted, a.id(), ops, None).await),
        ErrorCode::MembershipRefused { position: 5 }
    ));
    let mut c = relay.hello().await;
    assert_eq!(
        code_of(c.auth(&minted, a.id(), vec![], None).await),
        ErrorCode::NotAMember
    );
    // Its counter-revocation of the laptop, made on the old head, is refused
    // by an honest member connection too (it is a fork of the log).
    assert!(matches!(
        code_of(
            c1.request(Request::AppendMembership { ops: vec![counter] })
                .await
        ),
        ErrorCode::MembershipBehind { len: 4 }
    ));
    assert_eq!(relay.stats(), before);
    // Entries sealed under the old epoch are refused even from a member.
    assert_eq!(
        code_of(
            c1.push(vec![kith_protocol::SealedEntry::seal(
                &d1.key,
                a.id(),
                1,
                1,
                [0; 24],
                vec![1]
            )])
            .await
        ),
        ErrorCode::EpochStale { current: 2 }
    );
    c1.push(d1.entries(1, 1)).await.unwrap();
    relay.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_is_told_to_repull() {
    let relay = TestRelay::temp(RelayConfig {
        limits: Limits {
            connection_queue_frames: 2,
            ..Limits::default()
        },
        ..RelayConfig::default()
    });
    let a = Account::new();
    let (d1, d2) = (a.device("laptop"), a.device("phone"));
    let mut c1 = relay.connect(&d1).await;
    let mut c2 = relay.connect(&d2).await;
    c2.request(Request::Subscribe).await.unwrap();
    // Events big enough to fill the QUIC stream window, so frames back up
    // into the relay's bounded per-connection queue.
    for s in 1..=40 {
        c1.push(vec![d1.entry(s, &[s as u8; 100_000])])
            .await
            .unwrap();
    }
    // The subscriber reads late: it gets some entries and a Lagged marker.
    let mut lagged = false;
    let mut seen = 0;
    while let Ok(Ok(ev)) = tokio::time::timeout(Duration::from_millis(500), c2.next_event()).await {
        match ev {
            Event::Lagged => lagged = true,
            Event::Entries { entries } => seen += entries.len(),
            Event::Membership { .. } => {}
        }
    }
    assert!(lagged, "subscriber saw {seen} entries and no Lagged");
    assert!(seen < 40);
    assert!(
        relay
            .metrics
            .subscriber_lagged_total
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    assert_eq!(c2.pull_all(vec![]).await.unwrap().len(), 40);
    relay.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_registration_policy() {
    let relay = TestRelay::temp(RelayConfig {
        registration: RegistrationPolicy::Token,
        ..RelayConfig::default()
    });
    let a = Account::new();
    let d1 = a.device("laptop");
    let mut c = relay.hello().await;
    assert_eq!(
        code_of(c.auth(&d1.key, d1.account, d1.membership(), None).await),
        ErrorCode::RegistrationRequired
    );
    let mut c = relay.hello().await;
    assert_eq!(
        code_of(
            c.auth(&d1.key, d1.account, d1.membership(), Some("nope".into()))
                .await
        ),
        ErrorCode::BadToken
    );
    assert_eq!(relay.stats().accounts, 0);
    let token = kith_relay::create_token(relay.store().as_ref()).unwrap();
    let mut c = relay.hello().await;
    assert!(
        c.auth(&d1.key, d1.account, d1.membership(), Some(token.clone()))
            .await
            .unwrap()
    );
    // Single use: another account cannot reuse it.
    let b = Account::new();
    let e1 = b.device("x");
    let mut c = relay.hello().await;
    assert_eq!(
        code_of(
            c.auth(&e1.key, e1.account, e1.membership(), Some(token))
                .await
        ),
        ErrorCode::BadToken
    );
    // A second device of a registered account needs no token.
    let d2 = a.device("phone");
    let mut c = relay.hello().await;
    assert!(
        !c.auth(&d2.key, d2.account, d2.membership(), None)
            .await
            .unwrap()
    );
    assert_eq!(relay.stats().accounts, 1);
    relay.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_are_enforced_with_clear_errors() {
    let relay = TestRelay::temp(RelayConfig {
        limits: Limits {
            quota_bytes_per_account: 2000,
            ..Limits::default()
        },
        ..RelayConfig::default()
    });
    let a = Account::new();
    let d1 = a.device("laptop");
    let mut c1 = relay.connect(&d1).await;
    c1.push(vec![d1.entry(1, &[0; 900])]).await.unwrap();
    let before = relay.stats();
    let big = vec![d1.entry(2, &[0; 900]), d1.entry(3, &[0; 900])];
    assert_eq!(
        code_of(c1.push(big).await),
        ErrorCode::QuotaBytes { limit_bytes: 2000 }
    );
    assert_eq!(relay.stats(), before);
    c1.push(vec![d1.entry(2, &[0; 10])]).await.unwrap();
    relay.assert_alive().await;
    relay.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entry_rate_quota_is_enforced() {
    let relay = TestRelay::temp(RelayConfig {
        limits: Limits {
            quota_entries_per_minute: 30,
            ..Limits::default()
        },
        ..RelayConfig::default()
    });
    let a = Account::new();
    let d1 = a.device("laptop");
    let mut c1 = relay.connect(&d1).await;
    let mut seq = 1;
    let err = loop {
        match c1.push(vec![d1.entry(seq, b"x")]).await {
            Ok(_) => seq += 1,
            Err(e) => break e,
        }
        assert!(seq < 100);
    };
    assert!(
        matches!(
            err.code(),
            Some(ErrorCode::QuotaRate {
                entries_per_minute: 30,
                ..
            })
        ),
        "{err}"
    );
    assert_eq!(seq, 31, "exactly 30 entries per minute accepted");
    // Another account is unaffected.
    relay.assert_alive().await;
    relay.stop().await.unwrap();
}
