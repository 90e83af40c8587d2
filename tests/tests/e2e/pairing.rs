//! Pairing through the relay: happy path, expired, reused and other-relay tokens.

use kith_core::sync::pairing::{INVITATION_TTL_MS, Invitation, PairError, PairingMode, Token};
use kith_e2e::{Device, TestRelay};
use kith_net::JoinError;

use crate::common::{TIMEOUT_MS, assert_same, log, round, rt};

fn invite(a: &Device, relay: &TestRelay, ttl_ms: u64) -> Invitation {
    Invitation::create(
        &a.id,
        PairingMode::Relay {
            address: relay.address().to_string(),
        },
        ttl_ms,
        kith_net::now_ms(),
    )
    .unwrap()
}

#[test]
fn pairing_happy_path_then_reused_token_is_refused() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let relay = TestRelay::start(dir.path());
        let a = Device::first("laptop");
        log(&a, "before pairing", "Pia");
        let inv = invite(&a, &relay, INVITATION_TTL_MS);
        kith_net::send_invitation(&a.store, &a.id, &relay.address(), &inv, TIMEOUT_MS)
            .await
            .unwrap();
        let token = Token::parse(&inv.token.to_string()).unwrap();
        let (id, inviter, addr) = kith_net::join_via_relay(&token, None, "phone", TIMEOUT_MS)
            .await
            .unwrap();
        assert_eq!(inviter.device, a.id.device_id());
        assert_eq!(addr, relay.address());
        assert_eq!(id.account_id(), a.id.account_id());
        let b = Device::with_identity(id);
        round(&b, &relay).await;
        assert_eq!(b.s().all_interactions().unwrap().len(), 1);
        round(&a, &relay).await;
        assert_same(&a, &b);
        // The same token again: the mailbox slot is gone.
        let again = kith_net::join_via_relay(&token, None, "thief", TIMEOUT_MS).await;
        assert!(
            matches!(again, Err(JoinError::Pair(PairError::AlreadyUsed))),
            "{again:?}"
        );
    });
}

#[test]
fn expired_and_other_relay_tokens_are_refused() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let relay = TestRelay::start(dir.path());
        let dir2 = tempfile::tempdir().unwrap();
        let other = TestRelay::start(dir2.path());
        let a = Device::first("laptop");
        let inv = invite(&a, &relay, 1);
        kith_net::send_invitation(&a.store, &a.id, &relay.address(), &inv, TIMEOUT_MS)
            .await
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let r = kith_net::join_via_relay(&inv.token, None, "phone", TIMEOUT_MS).await;
        assert!(
            matches!(r, Err(JoinError::Pair(PairError::Expired { .. }))),
            "{r:?}"
        );
        let inv = invite(&a, &relay, INVITATION_TTL_MS);
        kith_net::send_invitation(&a.store, &a.id, &relay.address(), &inv, TIMEOUT_MS)
            .await
            .unwrap();
        let other_key = other.address().key;
        let r = kith_net::join_via_relay(&inv.token, Some(&other_key), "phone", TIMEOUT_MS).await;
        assert!(
            matches!(r, Err(JoinError::Pair(PairError::OtherRelay { .. }))),
            "{r:?}"
        );
        // A token naming a relay that never saw this invitation.
        let foreign = invite(&a, &other, INVITATION_TTL_MS);
        let r = kith_net::join_via_relay(&foreign.token, None, "phone", TIMEOUT_MS).await;
        assert!(
            matches!(r, Err(JoinError::Pair(PairError::AlreadyUsed))),
            "{r:?}"
        );
        // Wrong token text.
        assert!(matches!(
            Token::parse("kith1-abcdef"),
            Err(PairError::Malformed(_))
        ));
        // The unused invitation still works at the right relay.
        let (id, _, _) =
            kith_net::join_via_relay(&inv.token, Some(&relay.address().key), "phone", TIMEOUT_MS)
                .await
                .unwrap();
        assert_eq!(id.account_id(), a.id.account_id());
    });
}
