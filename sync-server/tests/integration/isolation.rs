//! A device of account B can neither read, write nor learn anything about
//! account A, whatever request it sends.

use std::time::Duration;

use kith_protocol::{ErrorCode, Request, Response, Revocation, SealedEntry, SealedSnapshot};

use crate::common::{Account, RelayExt, TestRelay, code_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_are_isolated_for_every_request_type() {
    let relay = TestRelay::temp(kith_relay::RelayConfig::default());
    let a = Account::new();
    let b = Account::new();
    let a1 = a.device("a-laptop");
    let b1 = b.device("b-laptop");
    let mut ca = relay.connect(&a1).await;
    let mut cb = relay.connect(&b1).await;
    ca.push(a1.entries(1, 5)).await.unwrap();
    let snap = SealedSnapshot::seal(
        &a1.key,
        a.id(),
        vec![a1.cursor(2)],
        [0; 24],
        b"A state".to_vec(),
    );
    ca.request(Request::PutSnapshot { snapshot: snap })
        .await
        .unwrap();
    let a_heads = relay.heads(&a);
    let before = relay.stats();

    // Subscribe: B gets nothing when A pushes.
    cb.request(Request::Subscribe).await.unwrap();
    // Push: entries naming A (forged with B's key, or A's own replayed) are refused.
    let forged = SealedEntry::seal(&b1.key, a.id(), 6, [0; 24], b"x".to_vec());
    assert_eq!(
        code_of(cb.push(vec![forged]).await),
        ErrorCode::WrongAccount
    );
    assert_eq!(
        code_of(cb.push(vec![a1.entry(6, b"replayed")]).await),
        ErrorCode::WrongAccount
    );
    // Pull: cursors naming A's device return nothing of A.
    let got = cb.pull_all(vec![a1.cursor(0)]).await.unwrap();
    assert!(got.is_empty());
    // Heads and snapshot: nothing of A.
    assert_eq!(
        cb.request(Request::Heads).await.unwrap(),
        Response::Heads {
            heads: vec![],
            floors: vec![]
        }
    );
    assert_eq!(
        cb.request(Request::GetSnapshot).await.unwrap(),
        Response::Snapshot { snapshot: None }
    );
    // PutSnapshot for A: refused.
    let s = SealedSnapshot::seal(&b1.key, a.id(), vec![], [0; 24], b"x".to_vec());
    assert_eq!(
        code_of(cb.request(Request::PutSnapshot { snapshot: s }).await),
        ErrorCode::WrongAccount
    );
    // Revoke A's device: B's key cannot, and a genuine A revocation is refused on B's connection.
    let genuine = Revocation::issue(&a.key, a1.id(), 1);
    assert_eq!(
        code_of(
            cb.request(Request::Revoke {
                revocation: genuine
            })
            .await
        ),
        ErrorCode::WrongAccount
    );
    let b_signed = Revocation {
        account: a.id(),
        ..Revocation::issue(&b.key, a1.id(), 1)
    };
    assert_eq!(
        code_of(
            cb.request(Request::Revoke {
                revocation: b_signed
            })
            .await
        ),
        ErrorCode::WrongAccount
    );
    // Mailbox: A's slot is a capability (hash of a secret B never sees); B's
    // own puts cannot overwrite a live slot.
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
    assert_eq!(
        code_of(cb.request(overwrite).await),
        ErrorCode::MailboxTaken
    );

    ca.push(a1.entries(6, 7)).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), cb.next_event())
            .await
            .is_err(),
        "B received an event of A"
    );
    // A's data is untouched by everything B did.
    assert_eq!(relay.heads(&a).floors, a_heads.floors);
    assert_eq!(relay.stats().entries, before.entries + 2);
    assert!(relay.heads(&b).heads.is_empty());
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
async fn certificates_bind_devices_to_their_account() {
    let relay = TestRelay::temp(kith_relay::RelayConfig::default());
    let a = Account::new();
    let b = Account::new();
    let a1 = a.device("a-laptop");
    relay.connect(&a1).await;
    // B's account key certifies A's device key: it is B's device then, and
    // sees only B's (empty) data.
    let cross = kith_protocol::DeviceCert::issue(&b.key, a1.id(), "cross", 1).unwrap();
    let mut c = relay.hello().await;
    c.auth(&a1.key, &cross, None).await.unwrap();
    assert!(c.pull_all(vec![]).await.unwrap().is_empty());
    assert_eq!(
        code_of(c.push(vec![a1.entry(1, b"x")]).await),
        ErrorCode::WrongAccount
    );
    relay.stop().await.unwrap();
}
