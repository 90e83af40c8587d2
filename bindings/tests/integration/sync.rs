//! Account, pairing and sync through the `Kith` object: two stores (two
//! devices) and a real relay (kith-relay's `run`) on 127.0.0.1:0, in process.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kith_ffi::{AccountInfo, ChangeSummary, Kith, KithError, KithListener, SyncState};

use crate::{contact, met};

/// The shared relay harness (kith-e2e's, i.e. kith-relay's `testkit`) in a
/// temporary directory, with the address string the bindings take.
struct Relay {
    address: String,
    _relay: kith_e2e::TestRelay,
}

impl Relay {
    fn start() -> Relay {
        let relay = kith_e2e::TestRelay::temp(kith_relay::RelayConfig::default());
        Relay {
            address: relay.address().to_string(),
            _relay: relay,
        }
    }
}

/// Awaits a Kith future from a plain test thread, bounded in time.
fn wait<T>(f: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async { tokio::time::timeout(Duration::from_secs(60), f).await })
        .expect("a Kith call took longer than 60 s")
}

#[derive(Default)]
struct Recorder {
    changes: Mutex<Vec<ChangeSummary>>,
    states: Mutex<Vec<SyncState>>,
}

impl KithListener for Recorder {
    fn on_change(&self, summary: ChangeSummary) -> Result<(), KithError> {
        self.changes.lock().unwrap().push(summary);
        Ok(())
    }
    fn on_sync_state(&self, state: SyncState) -> Result<(), KithError> {
        self.states.lock().unwrap().push(state);
        Ok(())
    }
}

impl Recorder {
    fn heard_interaction(&self, id: &str) -> bool {
        self.changes
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.interaction_ids.iter().any(|i| i == id))
    }
    fn states(&self) -> Vec<SyncState> {
        self.states.lock().unwrap().clone()
    }
}

/// Polls `cond` until it holds, at most `ms`.
fn eventually(ms: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

struct Pair {
    relay: Relay,
    /// The recovery code `a.create_account` showed.
    code: String,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    a: Arc<Kith>,
    b: Arc<Kith>,
}

/// `a` invites, `b` asks to join and shows its code, `a` sees the same
/// code and approves, `b` joins.
fn pair_and_join(a: &Arc<Kith>, b: &Arc<Kith>, name: &str) -> Result<AccountInfo, KithError> {
    let inv = wait(Arc::clone(a).invite(10))?;
    assert!(inv.expires_at_ms() > i64::try_from(now_ms()).unwrap());
    let joining = wait(Arc::clone(b).start_join(inv.token(), name.into()))?;
    let req = wait(Arc::clone(&inv).wait_for_join())?;
    assert_eq!(req.code, joining.code());
    assert_eq!(req.name, name);
    wait(Arc::clone(&inv).approve(joining.code()))?;
    wait(Arc::clone(&joining).wait_for_answer())
}

/// Device A creates the account, pairs; device B joins with the token.
fn two_devices() -> Pair {
    let relay = Relay::start();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = crate::open(&da);
    let b = crate::open(&db);
    let info = a
        .create_account("phone".into(), Some(relay.address.clone()))
        .unwrap();
    assert_eq!(info.relay.as_deref(), Some(relay.address.as_str()));
    let code = info.recovery_code.clone().unwrap();
    assert!(code.starts_with("kithr1-"), "{code}");
    assert_eq!(
        a.account().unwrap().unwrap().recovery_code,
        None,
        "shown once"
    );
    let joined = pair_and_join(&a, &b, "laptop").unwrap();
    assert_eq!(joined.account_id, info.account_id);
    assert_ne!(joined.device_id, info.device_id);
    assert_eq!(joined.relay, info.relay);
    Pair {
        relay,
        code,
        _dirs: (da, db),
        a,
        b,
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn create_pair_join_then_sync_now_moves_a_meeting() {
    let p = two_devices();
    let rec_a = Arc::new(Recorder::default());
    let rec_b = Arc::new(Recorder::default());
    p.a.add_listener(rec_a.clone()).unwrap();
    p.b.add_listener(rec_b.clone()).unwrap();
    assert_eq!(rec_b.states(), vec![SyncState::Idle]);

    let ana = p.a.add_contact(contact("Ana Lima")).unwrap();
    let id =
        p.a.log_interaction(met("Coffee after the talk", &[&ana.id]))
            .unwrap();
    assert_eq!(p.a.sync_status().unwrap().unsent_local_writes, 2);
    let pushed = wait(Arc::clone(&p.a).sync_now()).unwrap();
    assert!(pushed.pushed_entries >= 1, "{pushed:?}");
    let status = p.a.sync_status().unwrap();
    assert_eq!(status.unsent_local_writes, 0);
    assert_eq!(status.unacknowledged_entries, 0);
    assert!(status.last_sync_ms.is_some() && status.last_error.is_none());
    assert_eq!(status.state, SyncState::Idle);

    let got = wait(Arc::clone(&p.b).sync_now()).unwrap();
    assert!(
        got.received_entries >= 1 && got.interactions_changed >= 1,
        "{got:?}"
    );
    let seen = p.b.get_interaction(id.clone()).unwrap();
    assert_eq!(seen.summary, "Coffee after the talk");
    assert_eq!(p.b.get_contact(ana.id.clone()).unwrap().name, "Ana Lima");
    // B heard the remote merge, with the records it changed, and the round's states.
    assert!(rec_b.heard_interaction(&id));
    assert!(
        rec_b
            .changes
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.contact_ids.contains(&ana.id))
    );
    let states = rec_b.states();
    assert_eq!(
        &states[1..],
        &[SyncState::Connecting, SyncState::Syncing, SyncState::Idle],
        "{states:?}"
    );

    // Both devices know both devices.
    let devices = p.b.devices().unwrap();
    assert_eq!(devices.len(), 2, "{devices:?}");
    assert_eq!(devices.iter().filter(|d| d.this_device).count(), 1);
    assert!(devices.iter().any(|d| d.name == "phone" && !d.this_device));
    drop(p.relay);
}

#[test]
fn background_sync_carries_a_meeting_live_stops_in_the_background_and_restarts_in_front() {
    let p = two_devices();
    let rec_a = Arc::new(Recorder::default());
    let rec_b = Arc::new(Recorder::default());
    p.a.add_listener(rec_a.clone()).unwrap();
    p.b.add_listener(rec_b.clone()).unwrap();
    p.a.start_sync().unwrap();
    p.b.start_sync().unwrap();
    assert!(eventually(20_000, || p.a.sync_status().unwrap().state
        == SyncState::Live
        && p.b.sync_status().unwrap().state == SyncState::Live));
    assert!(p.a.sync_status().unwrap().background);

    let ana = p.a.add_contact(contact("Ana Lima")).unwrap();
    let id = p.a.log_interaction(met("Lunch", &[&ana.id])).unwrap();
    assert!(
        eventually(20_000, || rec_b.heard_interaction(&id)),
        "B never heard of the meeting: {:?}",
        rec_b.changes.lock().unwrap()
    );
    assert_eq!(p.b.get_interaction(id.clone()).unwrap().summary, "Lunch");
    for states in [rec_a.states(), rec_b.states()] {
        assert_eq!(states[0], SyncState::Idle);
        assert!(states.contains(&SyncState::Connecting), "{states:?}");
        assert!(states.contains(&SyncState::Syncing), "{states:?}");
        assert!(states.contains(&SyncState::Live), "{states:?}");
    }
    // sync_now while the loop runs asks the loop instead of a second session.
    assert!(
        wait(Arc::clone(&p.a).sync_now())
            .unwrap()
            .via_background_sync
    );

    // In the background (no handle in front) the loop stops and the file is released: another
    // process can write.
    wait(Arc::clone(&p.b).enter_background()).unwrap();
    assert!(p.b.is_released());
    assert!(!p.b.sync_status().unwrap().background);
    assert!(eventually(5_000, || rec_b.states().last() == Some(&SyncState::Idle)));
    let dir = p.b.data_dir();
    {
        let mut other = kith_core::Store::open(&dir).unwrap();
        other
            .add_contact(kith_core::NewContact::named(
                "Written while in the background",
            ))
            .unwrap();
        other.close().unwrap();
    }
    // Back in front, background sync starts again by itself.
    wait(Arc::clone(&p.b).enter_foreground()).unwrap();
    assert!(p.b.sync_status().unwrap().background);
    assert_eq!(
        p.b.list_contacts(kith_ffi::ContactSort::Name, 0, 10, false)
            .unwrap()
            .len(),
        2
    );
    let id2 = p.a.log_interaction(met("Dinner", &[&ana.id])).unwrap();
    assert!(eventually(20_000, || rec_b.heard_interaction(&id2)));
    // A restart right after a stop: the old loop, still closing, does not
    // report Idle over the new one.
    assert!(p.a.stop_sync());
    p.a.start_sync().unwrap();
    assert!(eventually(20_000, || p.a.sync_status().unwrap().state
        == SyncState::Live));
    // Wait until the old loop has finished closing: anything it reports
    // has been reported by then.
    assert!(eventually(20_000, || p.a.sync_loops_alive() == 1));
    assert_eq!(p.a.sync_status().unwrap().state, SyncState::Live);
    assert!(p.a.sync_status().unwrap().background);
    assert!(p.a.stop_sync());
    assert!(eventually(5_000, || p.a.sync_status().unwrap().state
        == SyncState::Idle));
    p.b.close().unwrap();
    assert!(matches!(p.b.start_sync(), Err(KithError::Locked { .. })));
    drop(p.relay);
}

#[test]
fn bad_tokens_get_actionable_errors() {
    let p = two_devices();
    let fresh = tempfile::tempdir().unwrap();
    let c = crate::open(&fresh);
    // A typo: the token field is invalid.
    let inv = wait(Arc::clone(&p.a).invite(10)).unwrap();
    let mut typo = inv.token();
    let last = typo.pop().unwrap();
    typo.push(if last == 'a' { 'b' } else { 'a' });
    match wait(Arc::clone(&c).start_join(typo, "tablet".into())) {
        Err(KithError::InvalidInput { field, .. }) => assert_eq!(field, "token"),
        other => panic!("unexpected {other:?}"),
    }
    match wait(Arc::clone(&c).start_join("hello".into(), "tablet".into())) {
        Err(KithError::InvalidInput { field, .. }) => assert_eq!(field, "token"),
        other => panic!("unexpected {other:?}"),
    }
    // Used once (by nobody yet) works; a second device is told someone
    // else redeemed the token (a photo of it gives nothing).
    let joining = wait(Arc::clone(&c).start_join(inv.token(), "tablet".into())).unwrap();
    let code = joining.code();
    let fresh2 = tempfile::tempdir().unwrap();
    let d = crate::open(&fresh2);
    match wait(Arc::clone(&d).start_join(inv.token(), "watch".into())) {
        Err(KithError::Authentication { reason }) => {
            assert!(reason.contains("someone else redeemed"), "{reason}")
        }
        other => panic!("unexpected {other:?}"),
    }
    // The inviter sees c's code; a wrong code refuses c, and c is told.
    let req = wait(Arc::clone(&inv).wait_for_join()).unwrap();
    assert_eq!(req.code, code);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert!(matches!(
        wait(Arc::clone(&inv).approve(wrong.into())),
        Err(KithError::Authentication { .. })
    ));
    match wait(Arc::clone(&joining).wait_for_answer()) {
        Err(KithError::Authentication { reason }) => {
            assert!(reason.contains("refused"), "{reason}")
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(c.account().unwrap().is_none());
    // A device with an account cannot join another.
    let inv2 = wait(Arc::clone(&p.a).invite(10)).unwrap();
    assert!(matches!(
        wait(Arc::clone(&p.b).start_join(inv2.token(), "again".into())),
        Err(KithError::Conflict { .. })
    ));
    // An expired token (made an hour ago with a ten-minute lifetime).
    let expired = kith_core::sync::Invitation::create(
        kith_core::sync::PairingMode::Relay {
            address: p.relay.address.clone(),
        },
        600_000,
        now_ms() - 3_600_000,
    );
    match wait(Arc::clone(&d).start_join(expired.token.to_string(), "watch".into())) {
        Err(KithError::Authentication { reason }) => {
            assert!(reason.contains("expired"), "{reason}")
        }
        other => panic!("unexpected {other:?}"),
    }
    for ttl in [0, 11, -1] {
        assert!(matches!(
            wait(Arc::clone(&p.a).invite(ttl)),
            Err(KithError::InvalidInput { field, .. }) if field == "ttl_minutes"
        ));
    }
    // Without an account, pairing and syncing say so.
    assert!(matches!(
        wait(Arc::clone(&d).invite(10)),
        Err(KithError::Authentication { .. })
    ));
    assert!(matches!(
        wait(Arc::clone(&d).sync_now()),
        Err(KithError::Authentication { .. })
    ));
    assert!(matches!(
        p.a.create_account("x".into(), None),
        Err(KithError::Conflict { .. })
    ));
    assert!(matches!(
        d.create_account("x".into(), Some("not a relay".into())),
        Err(KithError::InvalidInput { field, .. }) if field == "relay"
    ));
    drop(p.relay);
}

#[test]
fn an_unreachable_relay_is_a_network_error_and_offline() {
    let relay = Relay::start();
    let address = relay.address.clone();
    drop(relay);
    let dir = tempfile::tempdir().unwrap();
    let k = crate::open(&dir);
    k.create_account("phone".into(), Some(address)).unwrap();
    let rec = Arc::new(Recorder::default());
    k.add_listener(rec.clone()).unwrap();
    assert!(matches!(
        k.set_sync_timeout_ms(10),
        Err(KithError::InvalidInput { .. })
    ));
    // Nothing answers on a dead relay's UDP port: the round times out.
    k.set_sync_timeout_ms(1_500).unwrap();
    match wait(Arc::clone(&k).sync_now()) {
        Err(KithError::Network { .. }) => {}
        other => panic!("unexpected {other:?}"),
    }
    let status = k.sync_status().unwrap();
    assert!(
        matches!(status.state, SyncState::Offline { .. }),
        "{status:?}"
    );
    assert!(status.last_error.is_some());

    // A relay that does not hold the pinned key fails the handshake at once;
    // the loop retries with backoff instead of giving up.
    let other = Relay::start();
    let (_, host) = other.address.split_once('@').unwrap();
    let (key, _) = k.sync_status().unwrap().relay.unwrap()[7..]
        .split_once('@')
        .map(|(k, h)| (k.to_string(), h.to_string()))
        .unwrap();
    k.set_relay(format!("kith://{key}@{host}")).unwrap();
    k.start_sync().unwrap();
    assert!(eventually(10_000, || rec
        .states()
        .iter()
        .any(|s| matches!(s, SyncState::Retrying { .. }))));
    assert!(k.sync_status().unwrap().background);
    wait(Arc::clone(&k).enter_background()).unwrap();
    drop(other);
}

#[test]
fn revoke_shuts_a_device_out() {
    let p = two_devices();
    let b_id = p.b.account().unwrap().unwrap().device_id;
    // A learns of B from B's first entries.
    p.b.add_contact(contact("Bo")).unwrap();
    wait(Arc::clone(&p.b).sync_now()).unwrap();
    wait(Arc::clone(&p.a).sync_now()).unwrap();
    wait(Arc::clone(&p.a).revoke(b_id.clone())).unwrap();
    let devices = p.a.devices().unwrap();
    assert!(
        devices
            .iter()
            .any(|d| d.id == b_id && d.revoked_at_ms.is_some())
    );
    match wait(Arc::clone(&p.b).sync_now()) {
        Err(KithError::Authentication { .. }) => {}
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        p.b.sync_status().unwrap().state,
        SyncState::Error { .. }
    ));
    let me = p.a.account().unwrap().unwrap().device_id;
    assert!(matches!(
        wait(Arc::clone(&p.a).revoke(me)),
        Err(KithError::InvalidInput { .. })
    ));
    assert!(matches!(
        wait(Arc::clone(&p.a).revoke("nope".into())),
        Err(KithError::InvalidInput { .. })
    ));
    drop(p.relay);
}

/// A stolen device (b) revokes this one (a); `recover` with the code shown
/// at `create_account` wins the account back: b is revoked, a syncs again
/// and keeps what it had. Bad codes, bad device ids and an unreachable
/// relay are typed errors that change nothing.
#[test]
fn recover_wins_the_account_back_after_a_stolen_device_revoked_this_one() {
    let p = two_devices();
    let a_id = p.a.account().unwrap().unwrap().device_id;
    let b_id = p.b.account().unwrap().unwrap().device_id;
    let ana = p.a.add_contact(contact("Ana Lima")).unwrap();
    wait(Arc::clone(&p.a).sync_now()).unwrap();
    wait(Arc::clone(&p.b).sync_now()).unwrap();
    wait(Arc::clone(&p.b).revoke(a_id.clone())).unwrap();
    assert!(matches!(
        wait(Arc::clone(&p.a).sync_now()),
        Err(KithError::Authentication { .. })
    ));

    let field = |r: Result<kith_ffi::RecoveryReport, KithError>| match r {
        Err(KithError::InvalidInput { field, .. }) => field,
        other => panic!("unexpected {other:?}"),
    };
    let recover = |code: &str, keep: Vec<String>, relay: Option<String>| {
        wait(Arc::clone(&p.a).recover(code.into(), keep, relay, None))
    };
    assert_eq!(field(recover("kithr1-nope", vec![], None)), "recovery_code");
    let other_dir = tempfile::tempdir().unwrap();
    let other = crate::open(&other_dir);
    let other_code = other
        .create_account("x".into(), None)
        .unwrap()
        .recovery_code
        .unwrap();
    assert_eq!(field(recover(&other_code, vec![], None)), "recovery_code");
    assert_eq!(
        field(recover(&p.code, vec!["nope".into()], None)),
        "keep_device_ids"
    );
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let key = p.relay.address["kith://".len()..]
        .split('@')
        .next()
        .unwrap()
        .to_string();
    let dead = format!("kith://{key}@{}", silent.local_addr().unwrap());
    p.a.set_sync_timeout_ms(1_500).unwrap();
    assert!(matches!(
        recover(&p.code, vec![], Some(dead)),
        Err(KithError::Network { .. })
    ));
    p.a.set_sync_timeout_ms(60_000).unwrap();

    let report = recover(&p.code, vec![], None).unwrap();
    assert_eq!(report.members, vec![a_id.clone()]);
    assert_eq!(report.revoked, vec![b_id.clone()]);
    assert!(report.epochs_carried >= 1, "{report:?}");
    assert_eq!(report.account.device_id, a_id);
    assert!(matches!(
        wait(Arc::clone(&p.b).sync_now()),
        Err(KithError::Authentication { .. })
    ));
    wait(Arc::clone(&p.a).sync_now()).unwrap();
    assert_eq!(p.a.get_contact(ana.id).unwrap().name, "Ana Lima");
    assert!(
        p.a.devices()
            .unwrap()
            .iter()
            .any(|d| d.id == b_id && d.revoked_at_ms.is_some())
    );
    drop(p.relay);
}

/// The invitation objects drive a pairing: the inviter's `DeviceInvitation`
/// (token, expiry, wait_for_join, approve), the joiner's `JoinAttempt`
/// (code, wait_for_answer); a code that does not match is refused on both
/// sides; neither object's `Debug` shows the token.
#[test]
fn the_invitation_objects_drive_a_pairing() {
    let relay = Relay::start();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = crate::open(&dirs[0]);
    let b = crate::open(&dirs[1]);
    let c = crate::open(&dirs[2]);
    let info = a
        .create_account("phone".into(), Some(relay.address.clone()))
        .unwrap();
    let inv = wait(Arc::clone(&a).invite(10)).unwrap();
    assert!(inv.expires_at_ms() > i64::try_from(now_ms()).unwrap());
    let token = inv.token();
    assert!(!format!("{inv:?}").contains(&token));
    let joining = wait(Arc::clone(&b).start_join(token.clone(), "laptop".into())).unwrap();
    assert!(!format!("{joining:?}").contains(&token));
    let req = wait(Arc::clone(&inv).wait_for_join()).unwrap();
    assert_eq!(
        (req.name.as_str(), req.code.clone()),
        ("laptop", joining.code())
    );
    wait(Arc::clone(&inv).approve(joining.code())).unwrap();
    let joined = wait(Arc::clone(&joining).wait_for_answer()).unwrap();
    assert_eq!(joined.account_id, info.account_id);
    assert_eq!(joined.device_id, req.device_id);

    // A code that does not match: refused, and the joiner is told.
    let inv = wait(Arc::clone(&a).invite(10)).unwrap();
    let joining = wait(Arc::clone(&c).start_join(inv.token(), "tablet".into())).unwrap();
    wait(Arc::clone(&inv).wait_for_join()).unwrap();
    let wrong = if joining.code() == "000000" {
        "111111"
    } else {
        "000000"
    };
    assert!(matches!(
        wait(Arc::clone(&inv).approve(wrong.into())),
        Err(KithError::Authentication { .. })
    ));
    assert!(matches!(
        wait(Arc::clone(&joining).wait_for_answer()),
        Err(KithError::Authentication { .. })
    ));
    assert_eq!(c.account().unwrap(), None);
    drop(relay);
}

/// An app-side key store: the opaque bytes in memory.
#[derive(Default)]
struct MemoryKeys {
    saved: Mutex<Option<Vec<u8>>>,
}

impl kith_ffi::KithKeyStore for MemoryKeys {
    fn load(&self) -> Result<Option<Vec<u8>>, KithError> {
        Ok(self.saved.lock().unwrap().clone())
    }
    fn save(&self, key_material: Vec<u8>) -> Result<(), KithError> {
        *self.saved.lock().unwrap() = Some(key_material);
        Ok(())
    }
}

#[test]
fn keys_live_in_the_apps_key_store_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store").display().to_string();
    let keys = Arc::new(MemoryKeys::default());
    let k = Kith::open_with_key_store(path.clone(), keys.clone()).unwrap();
    assert_eq!(k.account().unwrap(), None);
    assert_eq!(k.sync_status().unwrap().state, SyncState::Disabled);
    let info = k.create_account("phone".into(), None).unwrap();
    assert!(keys.saved.lock().unwrap().is_some());
    assert!(!dir.path().join("store").join("keys.json").exists());
    // Without a relay, sync stays disabled and says what is missing.
    assert_eq!(k.sync_status().unwrap().state, SyncState::Disabled);
    assert!(matches!(
        k.start_sync(),
        Err(KithError::InvalidInput { field, .. }) if field == "relay"
    ));
    let devices = k.devices().unwrap();
    assert_eq!(devices.len(), 1);
    assert!(devices[0].this_device && devices[0].name == "phone");
    k.close().unwrap();
    drop(k);

    let again = Kith::open_with_key_store(path.clone(), keys.clone()).unwrap();
    // The same account; the recovery code was shown once and is not kept.
    assert!(info.recovery_code.is_some());
    let info = AccountInfo {
        recovery_code: None,
        ..info
    };
    assert_eq!(again.account().unwrap(), Some(info));
    again.close().unwrap();
    // The file default knows nothing of them.
    let plain = Kith::open(path).unwrap();
    assert_eq!(plain.account().unwrap(), None);

    // Damaged bytes are a storage error, not a panic.
    *keys.saved.lock().unwrap() = Some(b"{not json".to_vec());
    plain.close().unwrap();
    let damaged =
        Kith::open_with_key_store(dir.path().join("store").display().to_string(), keys.clone())
            .unwrap();
    assert!(matches!(damaged.account(), Err(KithError::Storage { .. })));
}

/// An app-side key store that refuses every save.
struct RefusingKeys;

impl kith_ffi::KithKeyStore for RefusingKeys {
    fn load(&self) -> Result<Option<Vec<u8>>, KithError> {
        Ok(None)
    }
    fn save(&self, _: Vec<u8>) -> Result<(), KithError> {
        Err(KithError::Storage {
            reason: "keychain locked".into(),
        })
    }
}

#[test]
fn a_backup_carries_the_device_keys_unless_told_not_to() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(MemoryKeys::default());
    let k = Kith::open_with_key_store(dir.path().join("phone").display().to_string(), keys.clone())
        .unwrap();
    let info = k.create_account("phone".into(), None).unwrap();
    let ana = k.add_contact(crate::contact("Ana Lima")).unwrap();
    let with_keys = k.backup("a long passphrase".into(), true).unwrap();
    let without = k.backup("a long passphrase".into(), false).unwrap();
    k.close().unwrap();

    // Into another app-side key store: the same device, and no keys.json.
    let other = Arc::new(MemoryKeys::default());
    let target = dir.path().join("restored");
    let restored = kith_ffi::restore_backup(
        target.display().to_string(),
        "a long passphrase".into(),
        with_keys.clone(),
        Some(other.clone()),
    )
    .unwrap();
    let info = AccountInfo {
        recovery_code: None,
        ..info
    };
    assert_eq!(restored.account().unwrap(), Some(info.clone()));
    assert_eq!(*other.saved.lock().unwrap(), *keys.saved.lock().unwrap());
    assert!(!target.join("keys.json").exists());
    assert_eq!(
        restored.get_contact(ana.id.clone()).unwrap().name,
        "Ana Lima"
    );
    restored.close().unwrap();

    // Into the file default.
    let target = dir.path().join("restored-file");
    let restored = kith_ffi::restore_backup(
        target.display().to_string(),
        "a long passphrase".into(),
        with_keys.clone(),
        None,
    )
    .unwrap();
    assert_eq!(restored.account().unwrap(), Some(info));
    assert!(target.join("keys.json").exists());
    restored.close().unwrap();

    // A data-only backup restores the data and no identity.
    let target = dir.path().join("restored-data");
    let restored = kith_ffi::restore_backup(
        target.display().to_string(),
        "a long passphrase".into(),
        without,
        None,
    )
    .unwrap();
    assert_eq!(restored.account().unwrap(), None);
    assert!(!target.join("keys.json").exists());
    assert_eq!(restored.get_contact(ana.id).unwrap().name, "Ana Lima");
    restored.close().unwrap();

    // A key store that refuses the keys: an error, and nothing left behind.
    let target = dir.path().join("refused");
    let err = kith_ffi::restore_backup(
        target.display().to_string(),
        "a long passphrase".into(),
        with_keys,
        Some(Arc::new(RefusingKeys)),
    )
    .unwrap_err();
    assert!(matches!(err, KithError::Storage { .. }), "{err:?}");
    assert!(!target.exists());
}

/// Reads back into Kith from inside `on_change` (on the sync task's thread).
struct Reader {
    kith: Mutex<Option<Arc<Kith>>>,
    read: Mutex<Vec<String>>,
}

impl KithListener for Reader {
    fn on_change(&self, summary: ChangeSummary) -> Result<(), KithError> {
        let kith = self.kith.lock().unwrap().clone();
        if let Some(k) = kith {
            for id in summary.interaction_ids {
                let summary = k.get_interaction(id).unwrap().summary;
                self.read.lock().unwrap().push(summary);
            }
        }
        Ok(())
    }
    fn on_sync_state(&self, _: SyncState) -> Result<(), KithError> {
        Ok(())
    }
}

#[test]
fn threads_writing_during_live_sync_all_arrive_and_listeners_may_call_back() {
    let p = two_devices();
    let reader = Arc::new(Reader {
        kith: Mutex::new(Some(Arc::clone(&p.b))),
        read: Mutex::new(Vec::new()),
    });
    p.b.add_listener(reader.clone()).unwrap();
    p.a.start_sync().unwrap();
    p.b.start_sync().unwrap();
    let ana = p.a.add_contact(contact("Ana Lima")).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let a = Arc::clone(&p.a);
            let ana = ana.id.clone();
            std::thread::spawn(move || {
                for n in 0..10 {
                    a.log_interaction(met(&format!("t{t} n{n}"), &[&ana]))
                        .unwrap();
                    // Foreign calls keep working while sync runs.
                    a.sync_status().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let all = |k: &Kith| k.timeline(None, 0, 100, false).unwrap().len();
    assert_eq!(all(&p.a), 40);
    assert!(
        eventually(30_000, || all(&p.b) == 40),
        "B has {} of 40",
        all(&p.b)
    );
    assert!(eventually(5_000, || reader.read.lock().unwrap().len() >= 40));
    *reader.kith.lock().unwrap() = None;
    p.a.close().unwrap();
    p.b.close().unwrap();
    drop(p.relay);
}

#[test]
fn sync_now_while_background_sync_runs_reports_the_round_or_fails_offline() {
    let p = two_devices();
    p.a.start_sync().unwrap();
    assert!(eventually(20_000, || p.a.sync_status().unwrap().state
        == SyncState::Live));
    let ana = p.a.add_contact(contact("Ana Lima")).unwrap();
    p.a.log_interaction(met("Coffee", &[&ana.id])).unwrap();
    // The loop completed a cycle after the request: everything written is at the relay.
    let r = wait(Arc::clone(&p.a).sync_now()).unwrap();
    assert!(r.via_background_sync, "{r:?}");
    let st = p.a.sync_status().unwrap();
    assert_eq!(
        (st.unsent_local_writes, st.unacknowledged_entries),
        (0, 0),
        "{st:?}"
    );
    // The relay goes away: the loop retries, and a pull-to-refresh says so.
    // A vanished relay sends nothing, so the loop learns it from QUIC's idle
    // timeout (30 s, kith-net): waiting exactly that long raced it.
    let Pair {
        a, b, relay, _dirs, ..
    } = p;
    drop(relay);
    assert!(
        eventually(45_000, || matches!(
            a.sync_status().unwrap().state,
            SyncState::Retrying { .. }
        )),
        "{:?}",
        a.sync_status().unwrap()
    );
    // Bounded however the loop's retries interleave with the request.
    a.set_sync_timeout_ms(5_000).unwrap();
    let offline = wait(Arc::clone(&a).sync_now());
    assert!(
        matches!(offline, Err(KithError::Network { .. })),
        "{offline:?}"
    );
    // Still retrying: the failed request did not end background sync.
    assert!(a.stop_sync(), "{:?}", a.sync_status().unwrap());
    drop(b);
}

#[test]
fn cancelling_the_awaiting_future_cancels_the_round() {
    // A relay that never answers: the round would wait for its whole timeout.
    let relay = Relay::start();
    let address = relay.address.clone();
    drop(relay);
    let dir = tempfile::tempdir().unwrap();
    let k = crate::open(&dir);
    k.create_account("phone".into(), Some(address)).unwrap();
    let (cancel_tx, cancel_rx) = tokio::sync::oneshot::channel::<()>();
    let round = {
        let k = Arc::clone(&k);
        // As a cancelled coroutine or Task does: the awaiting future is dropped.
        std::thread::spawn(move || {
            wait(async move {
                tokio::select! {
                    r = k.sync_now() => Some(r),
                    _ = cancel_rx => None,
                }
            })
        })
    };
    assert!(eventually(5_000, || k.sync_status().unwrap().state
        == SyncState::Connecting));
    cancel_tx.send(()).unwrap();
    assert!(round.join().unwrap().is_none(), "cancelled before it ended");
    // The round went with its future: not left `Connecting` for its 60 s timeout...
    assert!(eventually(5_000, || k.sync_status().unwrap().state == SyncState::Idle));
    // ...and it let go of the round lock: a new round with a 1 s timeout ends on its own
    // timeout. (Far below the first round's 60 s: this bound is the behaviour under test.)
    k.set_sync_timeout_ms(1_000).unwrap();
    let started = Instant::now();
    let second = wait(Arc::clone(&k).sync_now());
    assert!(
        matches!(second, Err(KithError::Network { .. })),
        "{second:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn going_to_the_background_cancels_a_round_in_flight_at_once() {
    // A relay that never answers: the round would wait for its whole timeout.
    let relay = Relay::start();
    let address = relay.address.clone();
    drop(relay);
    let dir = tempfile::tempdir().unwrap();
    let k = crate::open(&dir);
    k.create_account("phone".into(), Some(address)).unwrap();
    let round = {
        let k = Arc::clone(&k);
        std::thread::spawn(move || wait(k.sync_now()))
    };
    assert!(eventually(5_000, || k.sync_status().unwrap().state
        == SyncState::Connecting));
    let started = Instant::now();
    wait(Arc::clone(&k).enter_background()).unwrap();
    match round.join().unwrap() {
        Err(KithError::Locked { .. }) => {}
        other => panic!("unexpected {other:?}"),
    }
    // Far below the 60 s round timeout: cancelled, not timed out (this bound
    // is the behaviour under test).
    assert!(started.elapsed() < Duration::from_secs(10));
    // The file lock is free: another process writes.
    let mut other = kith_core::Store::open(k.data_dir()).unwrap();
    other
        .add_contact(kith_core::NewContact::named("Bo"))
        .unwrap();
    other.close().unwrap();
    wait(Arc::clone(&k).enter_foreground()).unwrap();
    assert_eq!(
        k.list_contacts(kith_ffi::ContactSort::Name, 0, 10, false)
            .unwrap()
            .len(),
        1
    );
}

/// Blocks in `on_change` until released, then calls back into Kith.
struct Blocking {
    kith: Mutex<Option<Arc<Kith>>>,
    entered: std::sync::mpsc::SyncSender<()>,
    go: Mutex<std::sync::mpsc::Receiver<()>>,
    result: Mutex<Option<Result<(), KithError>>>,
}

impl KithListener for Blocking {
    fn on_change(&self, summary: ChangeSummary) -> Result<(), KithError> {
        let Some(id) = summary.interaction_ids.first().cloned() else {
            return Ok(());
        };
        let Some(kith) = self.kith.lock().unwrap().take() else {
            return Ok(());
        };
        let _ = self.entered.try_send(());
        let _ = self
            .go
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(20));
        *self.result.lock().unwrap() = Some(kith.get_interaction(id).map(|_| ()));
        Ok(())
    }
    fn on_sync_state(&self, _: SyncState) -> Result<(), KithError> {
        Ok(())
    }
}

#[test]
fn going_to_the_background_while_a_sync_listener_calls_back_in_does_not_stall() {
    let p = two_devices();
    let (entered_tx, entered_rx) = std::sync::mpsc::sync_channel(1);
    let (go_tx, go_rx) = std::sync::mpsc::channel();
    let listener = Arc::new(Blocking {
        kith: Mutex::new(Some(Arc::clone(&p.b))),
        entered: entered_tx,
        go: Mutex::new(go_rx),
        result: Mutex::new(None),
    });
    p.b.add_listener(listener.clone()).unwrap();
    p.b.start_sync().unwrap();
    let ana = p.a.add_contact(contact("Ana Lima")).unwrap();
    p.a.log_interaction(met("Coffee", &[&ana.id])).unwrap();
    wait(Arc::clone(&p.a).sync_now()).unwrap();
    // B's sync task is now inside on_change.
    entered_rx.recv_timeout(Duration::from_secs(20)).unwrap();
    let suspending = {
        let b = Arc::clone(&p.b);
        std::thread::spawn(move || {
            let started = Instant::now();
            (wait(b.enter_background()), started.elapsed())
        })
    };
    // The store has been taken away (and the release now waits for the sync task,
    // which is inside the listener): release the listener, which calls in.
    assert!(eventually(20_000, || p.b.is_released()));
    go_tx.send(()).unwrap();
    let (suspended, took) = suspending.join().unwrap();
    suspended.unwrap();
    // "Does not stall": a stall is a wait for some timeout; 4 s is far below
    // every one in play, so this bound is the behaviour under test.
    assert!(
        took < Duration::from_secs(4),
        "going to the background took {took:?}"
    );
    assert!(matches!(
        listener.result.lock().unwrap().take(),
        Some(Err(KithError::Locked { .. }))
    ));
    wait(Arc::clone(&p.b).enter_foreground()).unwrap();
    drop(p.relay);
}
