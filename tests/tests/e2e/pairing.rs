//! Pairing through the real relay on loopback: the joiner posts its card,
//! the inviter compares the code and adds it to the membership log; a
//! photographed token gives nothing and both sides see why; expired and
//! other-relay tokens are refused.

use kith_core::identity::KeyMaterial;
use kith_core::sync::pairing::{INVITATION_TTL_MS, Invitation, PairError, PairingMode, Token};
use kith_e2e::{Device, TestRelay};
use kith_net::JoinError;

use crate::common::{TIMEOUT_MS, assert_same, log, round, rt};

fn invite(relay: &TestRelay, ttl_ms: u64) -> Invitation {
    Invitation::create(
        PairingMode::Relay {
            address: relay.address().to_string(),
        },
        ttl_ms,
        kith_net::now_ms(),
    )
}

/// The inviter's side: waits for the request, checks `code` against it,
/// answers (adding the device when it matches).
async fn answer(a: &Device, relay: &TestRelay, inv: &Invitation, code: &str) -> Result<(), String> {
    let incoming = kith_net::await_join_request(&relay.address(), inv)
        .await
        .unwrap();
    let decision = Invitation::check_code(&incoming, code).map_err(|e| e.to_string());
    kith_net::answer_join_request(
        &a.store,
        &a.id,
        &relay.address(),
        inv,
        &incoming,
        decision.clone(),
        TIMEOUT_MS,
    )
    .await
    .unwrap();
    decision
}

#[test]
fn pairing_adds_the_device_after_the_codes_match_then_it_syncs() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let relay = TestRelay::start(dir.path());
        let a = Device::first("laptop");
        log(&a, "before pairing", "Pia");
        round(&a, &relay).await;
        let inv = invite(&relay, INVITATION_TTL_MS);
        let token = Token::parse(&inv.token.to_string()).unwrap();
        let mut keys = KeyMaterial::generate("phone");
        let (code, addr) = kith_net::post_join_request(&token, None, &keys)
            .await
            .unwrap();
        assert_eq!(addr, relay.address());
        answer(&a, &relay, &inv, &code).await.unwrap();
        let (id, inviter) = kith_net::await_welcome(&token, &addr, &mut keys)
            .await
            .unwrap();
        assert_eq!(inviter, "laptop");
        assert_eq!(id.account_id(), a.id.account_id());
        let mut b = Device::fresh("phone");
        b.keys = keys;
        b.id = id;
        round(&b, &relay).await;
        assert_eq!(b.s().all_interactions().unwrap().len(), 1);
        round(&a, &relay).await;
        assert_same(&a, &b);
    });
}

/// A photo of the token: the thief posts first. The real joiner is told
/// someone else redeemed it; the inviter sees a code that is not the one
/// the real device shows, refuses, and the thief is told so and is no
/// member: the relay refuses its key.
#[test]
fn a_token_redeemed_by_another_device_gives_no_membership_and_both_sides_see_why() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let relay = TestRelay::start(dir.path());
        let a = Device::first("laptop");
        log(&a, "private", "Pia");
        round(&a, &relay).await;
        let inv = invite(&relay, INVITATION_TTL_MS);
        let token = Token::parse(&inv.token.to_string()).unwrap();
        let mut thief_keys = KeyMaterial::generate("phone");
        let (thief_code, _) = kith_net::post_join_request(&token, None, &thief_keys)
            .await
            .unwrap();
        // The real joiner comes second and is told why it cannot continue.
        let real = KeyMaterial::generate("phone");
        let r = kith_net::post_join_request(&token, None, &real).await;
        assert!(
            matches!(r, Err(JoinError::Pair(PairError::RedeemedByAnother))),
            "{r:?}"
        );
        let (_, real_code) = token.request(&real).unwrap();
        assert_ne!(real_code, thief_code);
        // The inviter compares with what the real device shows: mismatch.
        let refused = answer(&a, &relay, &inv, &real_code).await;
        assert!(refused.is_err());
        let r = kith_net::await_welcome(&token, &relay.address(), &mut thief_keys).await;
        assert!(
            matches!(r, Err(JoinError::Pair(PairError::Refused { .. }))),
            "{r:?}"
        );
        // The thief is no member: its key is refused at the relay.
        thief_keys.account = Some(a.id.account_id().0);
        let mut t = Device::fresh("thief");
        t.keys = thief_keys.clone();
        t.id = kith_core::sync::DeviceIdentity::from_material(&thief_keys).unwrap();
        let r = kith_net::relay_round(
            &t.store,
            &t.id,
            &relay.address(),
            kith_core::sync::RelayClientConfig::default(),
            vec![],
            TIMEOUT_MS,
            |_| {},
        )
        .await;
        let err = r.unwrap_err().to_string();
        assert!(err.contains("not_a_member"), "{err}");
        assert!(t.s().all_interactions().unwrap().is_empty());
    });
}

#[test]
fn expired_and_other_relay_tokens_are_refused() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let relay = TestRelay::start(dir.path());
        let dir2 = tempfile::tempdir().unwrap();
        let other = TestRelay::start(dir2.path());
        let keys = KeyMaterial::generate("phone");
        let inv = invite(&relay, 1);
        std::thread::sleep(std::time::Duration::from_millis(5));
        let r = kith_net::post_join_request(&inv.token, None, &keys).await;
        assert!(
            matches!(r, Err(JoinError::Pair(PairError::Expired { .. }))),
            "{r:?}"
        );
        let inv = invite(&relay, INVITATION_TTL_MS);
        let other_key = other.address().key;
        let r = kith_net::post_join_request(&inv.token, Some(&other_key), &keys).await;
        assert!(
            matches!(r, Err(JoinError::Pair(PairError::OtherRelay { .. }))),
            "{r:?}"
        );
        // Wrong token text.
        assert!(matches!(
            Token::parse("kith1-abcdef"),
            Err(PairError::Malformed(_))
        ));
        // The unused invitation still takes a request at the right relay.
        let (code, _) = kith_net::post_join_request(&inv.token, Some(&relay.address().key), &keys)
            .await
            .unwrap();
        assert_eq!(code.len(), 6);
    });
}
