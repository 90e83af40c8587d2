//! Every byte a device can make the relay keep counts against its account's
//! quota (snapshot upload parts and mailbox blobs too, not only entries),
//! member devices per account and new accounts per source address are
//! capped: each path through the real relay, with the refusal a client sees.

use kith_protocol::{ErrorCode, Request, Response};
use kith_relay::{Limits, RelayConfig};

use crate::common::{Account, RelayExt, TestRelay, code_of, rand_bytes};

/// Three devices of one account each start a snapshot upload: their parts
/// together cannot take the account past its quota (the relay counted
/// none of them before: 3 minted devices stored 57 MiB against 1 MB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_devices_cannot_exceed_the_quota_with_snapshot_parts() {
    const QUOTA: u64 = 1_000_000;
    let relay = TestRelay::temp(RelayConfig {
        limits: Limits {
            quota_bytes_per_account: QUOTA,
            ..Limits::default()
        },
        ..RelayConfig::default()
    });
    let a = Account::new();
    let devices = [a.device("one"), a.device("two"), a.device("three")];
    let mut accepted = 0u64;
    let mut refused = Vec::new();
    for (n, d) in devices.iter().enumerate() {
        let mut c = relay.connect(d).await;
        for index in 0..4u32 {
            let r = c
                .request(Request::PutSnapshotPart {
                    upload: n as u64 + 1,
                    index,
                    count: 4,
                    bytes: vec![n as u8; 300_000],
                })
                .await;
            match r {
                Ok(Response::SnapshotPartStored { .. }) => accepted += 300_000,
                other => refused.push(code_of(other)),
            }
        }
    }
    assert!(accepted <= QUOTA, "{accepted} bytes of parts accepted");
    assert!(accepted >= 600_000, "parts below the quota are accepted");
    assert!(!refused.is_empty());
    assert!(
        refused
            .iter()
            .all(|c| *c == ErrorCode::QuotaBytes { limit_bytes: QUOTA }),
        "{refused:?}"
    );
    assert!(relay.stats().bytes <= QUOTA, "{:?}", relay.stats());
    relay.stop().await.unwrap();
}

/// One device cannot park 200 blobs of 64 KiB in the mailbox: an account
/// holds at most `mailbox_blobs_per_account_max` live blobs (and their
/// bytes count against its quota); a taken blob frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_device_cannot_park_200_mailbox_blobs() {
    let relay = TestRelay::temp(RelayConfig::default());
    let limit = Limits::default().mailbox_blobs_per_account_max;
    let a = Account::new();
    let d = a.device("laptop");
    let mut c = relay.connect(&d).await;
    let before = relay.stats().bytes;
    let mut stored = Vec::new();
    let mut refusals = 0;
    for _ in 0..200 {
        let slot = rand_bytes();
        let r = c
            .request(Request::MailboxPut {
                slot,
                blob: vec![7; 64 * 1024],
                ttl_s: 600,
            })
            .await;
        match r {
            Ok(Response::MailboxStored) => stored.push(slot),
            other => {
                assert_eq!(
                    code_of(other),
                    ErrorCode::TooLarge {
                        limit: u64::from(limit)
                    }
                );
                refusals += 1;
            }
        }
    }
    assert_eq!(stored.len(), limit as usize);
    assert_eq!(refusals, 200 - limit as usize);
    assert_eq!(relay.stats().bytes, before + u64::from(limit) * 64 * 1024);
    // Taking one (what the paired device does) frees its place and bytes.
    let mut joiner = relay.hello().await;
    assert!(matches!(
        joiner
            .request(Request::MailboxTake { slot: stored[0] })
            .await,
        Ok(Response::MailboxBlob { .. })
    ));
    assert_eq!(
        relay.stats().bytes,
        before + u64::from(limit - 1) * 64 * 1024
    );
    assert_eq!(
        c.request(Request::MailboxPut {
            slot: rand_bytes(),
            blob: vec![1; 100],
            ttl_s: 600,
        })
        .await
        .unwrap(),
        Response::MailboxStored
    );
    relay.stop().await.unwrap();
}

/// An account has at most `devices_per_account_max` member devices: a
/// device whose `Add` would exceed it is refused clearly (and not stored);
/// the members already there keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_per_account_are_capped() {
    let relay = TestRelay::temp(RelayConfig {
        limits: Limits {
            devices_per_account_max: 2,
            ..Limits::default()
        },
        ..RelayConfig::default()
    });
    let a = Account::new();
    let (d1, d2) = (a.device("one"), a.device("two"));
    let mut c1 = relay.connect(&d1).await;
    relay.connect(&d2).await;
    // (Made after d1 and d2 connected: a real device stores an Add only
    // once the relay ordered it, so theirs never carry it.)
    let d3 = a.device("three");
    let mut c = relay.hello().await;
    assert_eq!(
        code_of(c.auth(&d3.key, d3.account, d3.membership(), None).await),
        ErrorCode::TooManyDevices { limit: 2 }
    );
    assert_eq!(c1.request(Request::Ping).await.unwrap(), Response::Pong);
    let Response::Membership { ops, .. } = c1
        .request(Request::GetMembership { after: 0 })
        .await
        .unwrap()
    else {
        panic!("membership")
    };
    assert_eq!(ops.len(), 2, "the third device's Add was not stored");
    relay.stop().await.unwrap();
}

/// One source address registers at most `accounts_per_addr_per_hour` new
/// accounts (open registration made 50 in 0.37 s before); registered
/// accounts keep connecting; the window passes and registration works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_accounts_per_address_per_hour_are_capped() {
    let clock = kith_relay::Clock::manual(kith_relay::now_ms());
    let relay = TestRelay::temp(RelayConfig {
        limits: Limits {
            accounts_per_addr_per_hour: 3,
            ..Limits::default()
        },
        clock: clock.clone(),
        ..RelayConfig::default()
    });
    let accounts: Vec<Account> = (0..4).map(|_| Account::new()).collect();
    let devices: Vec<_> = accounts.iter().map(|a| a.device("d")).collect();
    for d in &devices[..3] {
        relay.connect(d).await;
    }
    let mut c = relay.hello().await;
    let fourth = &devices[3];
    let code = code_of(
        c.auth(&fourth.key, fourth.account, fourth.membership(), None)
            .await,
    );
    assert!(
        matches!(code, ErrorCode::RegistrationLimited { retry_after_ms } if retry_after_ms > 0 && retry_after_ms <= 3_600_000),
        "{code:?}"
    );
    assert_eq!(relay.stats().accounts, 3);
    // Known accounts are not registrations.
    relay.connect(&devices[0]).await;
    assert!(clock.advance_ms(3_600_000));
    relay.connect(fourth).await;
    assert_eq!(relay.stats().accounts, 4);
    relay.stop().await.unwrap();
}
