//! The [`RelayStore`] contract as tests (feature `test-support`): every
//! storage backend runs the same cases by naming one constructor.
//!
//! ```text
//! // in a backend's test binary:
//! kith_relay::relay_store_conformance!(|| my_backend::Store::connect_fresh());
//! ```
//!
//! The macro expands to one `#[test]` per case, each on a fresh store from
//! the constructor. The constructor returns either the store or a
//! `(store, guard)` pair whose guard (a temp dir, a database container) lives
//! as long as the case. Cases only use the trait: writes through
//! [`RelayStore::apply`] with explicit times, reads through the read methods.
//! The contract covered: append with exactly the next seq, idempotent
//! re-sends, fork and gap refusal (refused ops change nothing), pulls in
//! pages after cursors, snapshots that stay pending (nothing pruned, the
//! confirmed one kept and readable by id) until another device confirms
//! them or the safety window passes, then prune and raise floors, snapshot
//! ranges, snapshots uploaded in parts (read back part by part), mailbox
//! expiry, registration tokens, revocation, byte quotas over entries,
//! snapshots, upload parts and mailbox blobs, caps on member devices and
//! mailbox blobs per account, per-op atomicity inside a batch, and stats;
//! with a `damage:` hook, damaged-entry detection and repair.
//!
//! Test-only code: a failed expectation panics with the case's context.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::RefCell;
use std::rc::Rc;

use ed25519_dalek::SigningKey;
use kith_protocol::{
    AccountId, Author, Change, Cursor, DeviceId, MemberKeys, Membership, MembershipOp, SealedEntry,
    SealedEpochKey, SealedSnapshot,
};

use crate::store::{PullPage, RelayStore, StoreError, WriteOp, WriteOutcome, snapshot_id};

/// What a constructor may return: a store, or a store with a guard that
/// must outlive it.
pub trait Fixture {
    /// The store under test.
    fn store(&self) -> &dyn RelayStore;
}

impl<S: RelayStore> Fixture for S {
    fn store(&self) -> &dyn RelayStore {
        self
    }
}

impl<S: RelayStore, G> Fixture for (S, G) {
    fn store(&self) -> &dyn RelayStore {
        &self.0
    }
}

/// Generates one `#[test]` per conformance case, each on a fresh store made
/// by `$make` (a closure or fn returning a [`Fixture`]).
#[macro_export]
macro_rules! relay_store_conformance {
    ($make:expr) => {
        $crate::relay_store_conformance!(@cases $make;
            append_takes_exactly_the_next_seq,
            writes_to_an_unregistered_account_are_refused,
            resending_stored_entries_is_idempotent,
            a_fork_is_refused_and_changes_nothing,
            a_gap_is_refused_and_changes_nothing,
            pulls_page_after_cursors_in_device_then_seq_order,
            device_entries_serve_one_devices_range,
            a_snapshot_prunes_only_once_another_device_opened_it,
            a_pending_snapshot_keeps_the_confirmed_one_readable,
            the_safety_window_confirms_pending_snapshots,
            quotas_count_upload_parts_snapshots_and_mailbox_blobs,
            member_devices_per_account_are_capped,
            mailbox_blobs_per_account_are_capped,
            snapshots_are_never_replaced_by_staler_or_invalid_ones,
            snapshot_ranges_slice_the_stored_ciphertext,
            snapshots_upload_in_parts_and_commit_atomically,
            abandoned_uploads_expire,
            mailbox_blobs_are_taken_once_and_expire,
            registration_tokens_are_single_use,
            revoked_devices_cannot_act_or_come_back,
            membership_ops_append_only_at_the_head,
            byte_quotas_refuse_growth_but_not_resends,
            a_refused_op_does_not_block_its_batch,
            stats_count_accounts_entries_and_bytes,
            a_probe_write_succeeds_and_changes_nothing_visible,
            mailbox_live_sees_only_unexpired_blobs,
        );
    };
    // A backend that can damage one stored entry behind the store's back
    // (`$damage(&fixture, &account, &device, seq)`, as a flipped bit on its
    // disk would) also runs the damage-detection and repair case.
    ($make:expr, damage: $damage:expr) => {
        $crate::relay_store_conformance!($make);

        #[test]
        fn a_damaged_entry_is_served_as_a_placeholder_and_repaired_by_the_original() {
            let fixture = ($make)();
            let damage = |a: &kith_protocol::AccountId, d: &kith_protocol::DeviceId, seq: u64| {
                ($damage)(&fixture, a, d, seq)
            };
            $crate::conformance::a_damaged_entry_is_served_as_a_placeholder_and_repaired_by_the_original(
                $crate::conformance::Fixture::store(&fixture),
                &damage,
            );
        }
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let fixture = ($make)();
                $crate::conformance::$case($crate::conformance::Fixture::store(&fixture));
            }
        )*
    };
}

/// Registration time used by every case.
const T0_MS: u64 = 1_700_000_000_000;
/// A quota no case reaches unless it means to.
const QUOTA_BYTES: u64 = 1 << 30;
/// Upload limit no case reaches unless it means to.
const UPLOAD_BYTES_MAX: u64 = 1 << 20;
/// Member devices per account no case reaches unless it means to.
const MEMBERS_MAX: u32 = 64;

/// An account (its root key) and its membership log, shared with its
/// devices: the first device is the genesis member and adds every later one.
/// Epoch keys are placeholders: a store checks who a key is sealed to, never
/// its content.
#[derive(Debug)]
struct Account {
    key: SigningKey,
    log: Rc<RefCell<Log>>,
}

#[derive(Debug, Default)]
struct Log {
    ops: Vec<MembershipOp>,
    first: Option<SigningKey>,
}

#[derive(Debug)]
struct Device {
    key: SigningKey,
    account: AccountId,
    root: SigningKey,
    log: Rc<RefCell<Log>>,
}

fn placeholder_key(to: DeviceId) -> SealedEpochKey {
    SealedEpochKey {
        to,
        enc: [0; 32],
        ciphertext: vec![0; 48],
    }
}

impl Account {
    fn new(seed: u8) -> Self {
        Self {
            key: SigningKey::from_bytes(&[seed; 32]),
            log: Rc::default(),
        }
    }

    fn id(&self) -> AccountId {
        AccountId::from(self.key.verifying_key())
    }

    /// A device of this account (a member once its `register_op` is applied).
    fn device(&self, seed: u8) -> Device {
        Device {
            key: SigningKey::from_bytes(&[seed; 32]),
            account: self.id(),
            root: self.key.clone(),
            log: self.log.clone(),
        }
    }
}

impl Device {
    fn id(&self) -> DeviceId {
        DeviceId::from(self.key.verifying_key())
    }

    fn state(&self) -> Membership {
        Membership::from_ops(self.account, &self.log.borrow().ops).unwrap()
    }

    /// The current epoch of the account's log.
    fn epoch(&self) -> u64 {
        self.log.borrow().ops.last().map_or(1, |o| o.body.epoch)
    }

    /// The log up to and including the op that made this device a member
    /// (made on first use: the genesis for the first device, else an `Add`
    /// signed by the first device).
    fn joining_ops(&self) -> Vec<MembershipOp> {
        let mut log = self.log.borrow_mut();
        let me = self.id();
        let joined = |o: &MembershipOp| match &o.body.change {
            Change::Genesis { first, .. } => first.device == me,
            Change::Add { member, .. } => member.device == me,
            _ => false,
        };
        if let Some(i) = log.ops.iter().position(joined) {
            return log.ops[..=i].to_vec();
        }
        let mut m = Membership::from_ops(self.account, &log.ops).unwrap();
        let member = MemberKeys {
            device: me,
            seal_key: [0; 32],
        };
        let op = match &log.first {
            None => m.next_op(
                Author::Root,
                &self.root,
                1,
                Change::Genesis {
                    first: member,
                    rotation: kith_protocol::Rotation {
                        keys: vec![placeholder_key(me)],
                        wrapped: vec![],
                    },
                },
                T0_MS,
            ),
            Some(first) => m.next_op(
                Author::Device(first.verifying_key().into()),
                first,
                m.epoch(),
                Change::Add {
                    member,
                    key: placeholder_key(me),
                },
                T0_MS,
            ),
        };
        m.apply(&op).unwrap();
        log.ops.push(op);
        if log.first.is_none() {
            log.first = Some(self.key.clone());
        }
        log.ops.clone()
    }

    /// The op by which this device revokes `target` (rotating to the others).
    fn revoke_op(&self, target: DeviceId) -> MembershipOp {
        let m = self.state();
        let keys = m
            .members()
            .filter(|x| x.keys.device != target)
            .map(|x| placeholder_key(x.keys.device))
            .collect();
        m.next_op(
            Author::Device(self.id()),
            &self.key,
            m.epoch() + 1,
            Change::Revoke {
                device: target,
                rotation: kith_protocol::Rotation {
                    keys,
                    wrapped: vec![],
                },
            },
            T0_MS + 1,
        )
    }

    /// Appends `ops` at the store's head (no skipping, as `AppendMembership`).
    fn append_op(&self, ops: Vec<MembershipOp>) -> WriteOp {
        WriteOp::AppendMembership {
            account: self.account,
            ops,
            skip_known: false,
            token_hash: None,
            open_registration: true,
            now_ms: T0_MS,
            members_max: MEMBERS_MAX,
        }
    }

    /// Records `op` in the shared log once the store accepted it.
    fn record(&self, op: MembershipOp) {
        self.log.borrow_mut().ops.push(op);
    }

    fn entry(&self, seq: u64, payload: &str) -> SealedEntry {
        SealedEntry::seal(
            &self.key,
            self.account,
            self.epoch(),
            seq,
            [seq as u8; 24],
            payload.as_bytes().to_vec(),
        )
    }

    fn entries(&self, from: u64, to: u64) -> Vec<SealedEntry> {
        (from..=to)
            .map(|s| self.entry(s, &format!("entry {s}")))
            .collect()
    }

    fn cursor(&self, seq: u64) -> Cursor {
        Cursor {
            device: self.id(),
            seq,
        }
    }

    fn snapshot(&self, covers: Vec<Cursor>, bytes: &[u8]) -> SealedSnapshot {
        SealedSnapshot::seal(
            &self.key,
            self.account,
            self.epoch(),
            covers,
            [9; 24],
            bytes.to_vec(),
        )
    }

    /// What `Auth` does: hands the store the log up to this device's joining
    /// op, skipping what it holds (registers the account with the genesis).
    fn register_op(&self) -> WriteOp {
        self.register_with(None, true)
    }

    fn register_with(&self, token_hash: Option<[u8; 32]>, open_registration: bool) -> WriteOp {
        WriteOp::AppendMembership {
            account: self.account,
            ops: self.joining_ops(),
            skip_known: true,
            token_hash,
            open_registration,
            now_ms: T0_MS,
            members_max: MEMBERS_MAX,
        }
    }

    fn push_op(&self, entries: Vec<SealedEntry>) -> WriteOp {
        WriteOp::Push {
            account: self.account,
            device: self.id(),
            entries,
            quota_bytes: QUOTA_BYTES,
        }
    }

    fn snapshot_op(&self, snapshot: SealedSnapshot, finished_upload: Option<u64>) -> WriteOp {
        WriteOp::PutSnapshot {
            snapshot,
            quota_bytes: QUOTA_BYTES,
            finished_upload,
            now_ms: T0_MS,
        }
    }

    fn part_op(&self, upload: u64, index: u32, count: u32, bytes: &[u8], now_ms: u64) -> WriteOp {
        WriteOp::PutSnapshotPart {
            account: self.account,
            device: self.id(),
            upload,
            index,
            count,
            bytes: bytes.to_vec(),
            upload_bytes_max: UPLOAD_BYTES_MAX,
            now_ms,
            quota_bytes: QUOTA_BYTES,
        }
    }

    /// This device reports it opened `snap`.
    fn confirm_op(&self, snap: &SealedSnapshot) -> WriteOp {
        WriteOp::ConfirmSnapshot {
            account: self.account,
            device: self.id(),
            snapshot_id: snapshot_id(snap),
        }
    }
}

/// The parts of an upload as `snapshot_upload` feeds them, concatenated.
fn upload_bytes(
    s: &dyn RelayStore,
    account: &AccountId,
    device: &DeviceId,
    upload: u64,
) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    let total = s.snapshot_upload(account, device, upload, &mut |p| out.extend_from_slice(p))?;
    assert_eq!(total, out.len() as u64, "the total is what was fed");
    Ok(out)
}

/// Applies one op alone.
fn one(s: &dyn RelayStore, op: WriteOp) -> Result<WriteOutcome, StoreError> {
    let mut r = s.apply(vec![op]);
    assert_eq!(r.len(), 1, "apply returns one result per op");
    r.remove(0)
}

/// Applies one op that must succeed.
fn ok(s: &dyn RelayStore, op: WriteOp) -> WriteOutcome {
    let what = format!("{op:?}");
    one(s, op).unwrap_or_else(|e| panic!("{what:.120} was refused: {e}"))
}

/// A registered device of a fresh account.
fn registered(s: &dyn RelayStore, account_seed: u8, device_seed: u8) -> (Account, Device) {
    let a = Account::new(account_seed);
    let d = a.device(device_seed);
    assert!(matches!(
        ok(s, d.register_op()),
        WriteOutcome::MembershipAppended {
            new_account: true,
            ..
        }
    ));
    (a, d)
}

/// True if the store's membership of `d`'s account has `d` as a member.
fn is_member(s: &dyn RelayStore, d: &Device) -> bool {
    s.membership(&d.account)
        .unwrap()
        .is_some_and(|m| m.is_member(&d.id()))
}

/// `Some(new_account)` for a membership outcome, `None` for any other.
fn new_account_of(o: &WriteOutcome) -> Option<bool> {
    match o {
        WriteOutcome::MembershipAppended { new_account, .. } => Some(*new_account),
        _ => None,
    }
}

fn pushed(head: u64, stored: Vec<SealedEntry>) -> WriteOutcome {
    WriteOutcome::Pushed { head, stored }
}

fn head_of(s: &dyn RelayStore, d: &Device) -> u64 {
    s.heads(&d.account)
        .unwrap()
        .heads
        .iter()
        .find(|c| c.device == d.id())
        .map_or(0, |c| c.seq)
}

fn floor_of(s: &dyn RelayStore, d: &Device) -> u64 {
    s.heads(&d.account)
        .unwrap()
        .floors
        .iter()
        .find(|c| c.device == d.id())
        .map_or(0, |c| c.seq)
}

fn pull_all(s: &dyn RelayStore, account: &AccountId, cursors: &[Cursor]) -> Vec<SealedEntry> {
    let page = s.pull(account, cursors, 10_000, usize::MAX).unwrap();
    assert!(!page.more);
    page.entries
}

/// Push appends only at head + 1 and reports the new head and what it stored.
pub fn append_takes_exactly_the_next_seq(s: &dyn RelayStore) {
    let (_, d) = registered(s, 1, 2);
    assert_eq!(head_of(s, &d), 0);
    let first = d.entries(1, 3);
    assert_eq!(ok(s, d.push_op(first.clone())), pushed(3, first.clone()));
    let next = d.entries(4, 4);
    assert_eq!(ok(s, d.push_op(next.clone())), pushed(4, next.clone()));
    assert_eq!(head_of(s, &d), 4);
    let all: Vec<SealedEntry> = first.into_iter().chain(next).collect();
    assert_eq!(pull_all(s, &d.account, &[]), all);
    assert!(is_member(s, &d));
}

/// Pushes, snapshots and parts for an account the store does not know fail.
pub fn writes_to_an_unregistered_account_are_refused(s: &dyn RelayStore) {
    let d = Account::new(3).device(4);
    assert!(matches!(
        one(s, d.push_op(d.entries(1, 1))),
        Err(StoreError::UnknownAccount)
    ));
    assert!(matches!(
        one(s, d.snapshot_op(d.snapshot(vec![], b"s"), None)),
        Err(StoreError::UnknownAccount)
    ));
    assert!(matches!(
        one(s, d.part_op(1, 0, 1, b"p", T0_MS)),
        Err(StoreError::UnknownAccount)
    ));
    assert!(s.membership(&d.account).unwrap().is_none());
    assert_eq!(pull_all(s, &d.account, &[]), vec![]);
}

/// Re-sending stored entries succeeds and stores nothing twice; a re-send
/// overlapping new entries stores only the new ones.
pub fn resending_stored_entries_is_idempotent(s: &dyn RelayStore) {
    let (_, d) = registered(s, 5, 6);
    ok(s, d.push_op(d.entries(1, 3)));
    assert_eq!(ok(s, d.push_op(d.entries(1, 3))), pushed(3, vec![]));
    assert_eq!(ok(s, d.push_op(d.entries(2, 3))), pushed(3, vec![]));
    let four = d.entries(4, 4);
    assert_eq!(ok(s, d.push_op(d.entries(2, 4))), pushed(4, four));
    // The same entry twice inside one push is a re-send too.
    let five = d.entry(5, "entry 5");
    assert_eq!(
        ok(s, d.push_op(vec![five.clone(), five.clone()])),
        pushed(5, vec![five])
    );
    assert_eq!(pull_all(s, &d.account, &[]), d.entries(1, 5));
    assert_eq!(s.stats().unwrap().entries, 5);
}

/// A different entry at a stored seq is a fork: refused, nothing of that
/// push is stored, the stored entry stays.
pub fn a_fork_is_refused_and_changes_nothing(s: &dyn RelayStore) {
    let (_, d) = registered(s, 7, 8);
    ok(s, d.push_op(d.entries(1, 3)));
    let before = s.stats().unwrap();
    assert!(matches!(
        one(s, d.push_op(vec![d.entry(2, "other")])),
        Err(StoreError::SeqFork { seq: 2 })
    ));
    // A fork behind new entries refuses the new ones too.
    assert!(matches!(
        one(s, d.push_op(vec![d.entry(3, "other"), d.entry(4, "new")])),
        Err(StoreError::SeqFork { seq: 3 })
    ));
    // A fork of an entry earlier in the same push.
    assert!(matches!(
        one(
            s,
            d.push_op(vec![d.entry(4, "new"), d.entry(4, "different")])
        ),
        Err(StoreError::SeqFork { seq: 4 })
    ));
    assert_eq!(head_of(s, &d), 3);
    assert_eq!(pull_all(s, &d.account, &[]), d.entries(1, 3));
    assert_eq!(s.stats().unwrap(), before);
}

/// A push that does not continue at head + 1 is a gap: refused with the
/// expected seq, and none of its entries (not even a valid prefix) stored.
pub fn a_gap_is_refused_and_changes_nothing(s: &dyn RelayStore) {
    let (_, d) = registered(s, 9, 10);
    ok(s, d.push_op(d.entries(1, 1)));
    assert!(matches!(
        one(s, d.push_op(d.entries(3, 3))),
        Err(StoreError::SeqGap { expected: 2 })
    ));
    assert!(matches!(
        one(
            s,
            d.push_op(vec![d.entry(2, "entry 2"), d.entry(4, "entry 4")])
        ),
        Err(StoreError::SeqGap { expected: 3 })
    ));
    assert!(matches!(
        one(s, d.push_op(vec![d.entry(0, "zero")])),
        Err(StoreError::SeqGap { .. })
    ));
    assert_eq!(head_of(s, &d), 1);
    assert_eq!(pull_all(s, &d.account, &[]), d.entries(1, 1));
    assert_eq!(s.stats().unwrap().entries, 1);
}

/// What a node fans out for another node's commit: exactly `device`'s
/// entries `from..=to`, bounded, never another device's or a later one.
pub fn device_entries_serve_one_devices_range(s: &dyn RelayStore) {
    let (a, d1) = registered(s, 41, 42);
    let d2 = a.device(43);
    ok(s, d2.register_op());
    ok(s, d1.push_op(d1.entries(1, 6)));
    ok(s, d2.push_op(d2.entries(1, 3)));
    let get = |from, to, n, bytes| {
        s.device_entries(&a.id(), &d1.id(), from, to, n, bytes)
            .unwrap()
    };
    assert_eq!(get(2, 4, 100, usize::MAX), d1.entries(2, 4));
    assert_eq!(get(1, 6, 100, usize::MAX), d1.entries(1, 6));
    // Bounded by count; by bytes, but never empty.
    assert_eq!(get(1, 6, 2, usize::MAX), d1.entries(1, 2));
    assert_eq!(get(3, 6, 100, 1), d1.entries(3, 3));
    // Past the head: what there is; another device's range is its own.
    assert_eq!(get(5, 9, 100, usize::MAX), d1.entries(5, 6));
    assert_eq!(
        s.device_entries(&a.id(), &d2.id(), 1, 3, 100, usize::MAX)
            .unwrap(),
        d2.entries(1, 3)
    );
    // An unknown device has nothing.
    let stranger = a.device(44);
    assert!(
        s.device_entries(&a.id(), &stranger.id(), 1, 3, 100, usize::MAX)
            .unwrap()
            .is_empty()
    );
}

/// Pull returns the entries after each device's cursor, ordered by device
/// id then seq, in pages bounded by count and bytes (never empty while
/// entries remain), and only the account's own entries.
pub fn pulls_page_after_cursors_in_device_then_seq_order(s: &dyn RelayStore) {
    let (a, d1) = registered(s, 11, 12);
    let d2 = a.device(13);
    ok(s, d2.register_op());
    let (_, stranger) = registered(s, 14, 15);
    ok(s, d1.push_op(d1.entries(1, 4)));
    ok(s, d2.push_op(d2.entries(1, 3)));
    ok(s, stranger.push_op(stranger.entries(1, 2)));

    let (lo, hi) = if d1.id() < d2.id() {
        (&d1, &d2)
    } else {
        (&d2, &d1)
    };
    let expected: Vec<SealedEntry> = pull_all(s, &lo.account, &[lo.cursor(0)])
        .into_iter()
        .collect();
    let mut want = lo.entries(1, if lo.id() == d1.id() { 4 } else { 3 });
    want.extend(hi.entries(1, if hi.id() == d1.id() { 4 } else { 3 }));
    assert_eq!(expected, want, "device id then seq order");

    // After cursors.
    let after = pull_all(s, &a.id(), &[d1.cursor(3), d2.cursor(3)]);
    assert_eq!(after, d1.entries(4, 4));

    // Pages of two, then the rest; the cursor of a page is its last entry.
    let mut cursors: Vec<Cursor> = Vec::new();
    let mut seen = Vec::new();
    for round in 0.. {
        assert!(round < 10, "paging does not end");
        let PullPage { entries, more } = s.pull(&a.id(), &cursors, 2, usize::MAX).unwrap();
        assert!(entries.len() <= 2);
        assert!(!entries.is_empty() || !more);
        for e in &entries {
            cursors.retain(|c| c.device != e.device);
            cursors.push(Cursor {
                device: e.device,
                seq: e.seq,
            });
        }
        seen.extend(entries);
        if !more {
            break;
        }
    }
    assert_eq!(seen, want);

    // A byte bound smaller than one entry still returns one entry.
    let page = s.pull(&a.id(), &[], 100, 1).unwrap();
    assert_eq!(page.entries.len(), 1);
    assert!(page.more);

    // Caught up: empty page, nothing more.
    let page = s
        .pull(&a.id(), &[d1.cursor(4), d2.cursor(3)], 100, usize::MAX)
        .unwrap();
    assert_eq!(
        page,
        PullPage {
            entries: vec![],
            more: false
        }
    );
}

/// A stored snapshot is pending: it prunes nothing until a member device
/// other than its author confirms it (its own author cannot; another id is
/// `SnapshotChanged`); then it prunes the entries it covers and raises the
/// floors; pulls behind a floor need the snapshot; pruned seqs can be
/// re-sent harmlessly but not skipped.
pub fn a_snapshot_prunes_only_once_another_device_opened_it(s: &dyn RelayStore) {
    let (a, d) = registered(s, 16, 17);
    let other = a.device(15);
    ok(s, other.register_op());
    ok(s, d.push_op(d.entries(1, 5)));
    assert_eq!(s.snapshot(&d.account).unwrap(), None);
    let snap = d.snapshot(vec![d.cursor(3)], b"state at 3");
    assert_eq!(
        ok(s, d.snapshot_op(snap.clone(), None)),
        WriteOutcome::SnapshotStored { pruned_entries: 0 }
    );
    assert_eq!(s.snapshot(&d.account).unwrap(), Some(snap.clone()));
    let listed = s.snapshots(&d.account).unwrap();
    assert_eq!(listed.confirmed, None);
    let pending = listed.pending.expect("pending");
    assert_eq!(pending.snapshot_id, snapshot_id(&snap));
    assert_eq!(pending.total_bytes, 10);
    assert_eq!(pending.stored_ms, T0_MS);
    assert!(pending.envelope.ciphertext.is_empty());
    assert_eq!(floor_of(s, &d), 0);
    assert_eq!(pull_all(s, &d.account, &[]), d.entries(1, 5));
    assert!(matches!(
        one(s, d.confirm_op(&snap)),
        Err(StoreError::SnapshotOwn)
    ));
    let unknown = d.snapshot(vec![d.cursor(3)], b"never stored");
    assert!(matches!(
        one(s, other.confirm_op(&unknown)),
        Err(StoreError::SnapshotChanged)
    ));
    assert_eq!(floor_of(s, &d), 0);
    assert_eq!(
        ok(s, other.confirm_op(&snap)),
        WriteOutcome::SnapshotConfirmed { pruned_entries: 3 }
    );
    // Confirming again changes nothing.
    assert_eq!(
        ok(s, other.confirm_op(&snap)),
        WriteOutcome::SnapshotConfirmed { pruned_entries: 0 }
    );
    let listed = s.snapshots(&d.account).unwrap();
    assert_eq!(listed.pending, None);
    assert_eq!(
        listed.confirmed.map(|c| c.snapshot_id),
        Some(snapshot_id(&snap))
    );
    assert_eq!(s.snapshot(&d.account).unwrap(), Some(snap));
    assert_eq!(floor_of(s, &d), 3);
    assert_eq!(head_of(s, &d), 5);
    assert!(matches!(
        s.pull(&d.account, &[], 10, usize::MAX),
        Err(StoreError::SnapshotNeeded)
    ));
    assert!(matches!(
        s.pull(&d.account, &[d.cursor(2)], 10, usize::MAX),
        Err(StoreError::SnapshotNeeded)
    ));
    assert_eq!(pull_all(s, &d.account, &[d.cursor(3)]), d.entries(4, 5));
    assert_eq!(s.stats().unwrap().entries, 2);
    // A device re-sending from before the floor is not refused.
    assert_eq!(
        ok(s, d.push_op(d.entries(1, 6))),
        pushed(6, d.entries(6, 6))
    );
}

/// A newer snapshot does not replace the confirmed one until confirmed:
/// both are listed and readable by id (the newest without an id), a newer
/// pending one replaces the older pending one, and confirming the newest
/// deletes the previous confirmed one.
pub fn a_pending_snapshot_keeps_the_confirmed_one_readable(s: &dyn RelayStore) {
    let (a, d) = registered(s, 46, 47);
    let other = a.device(48);
    ok(s, other.register_op());
    ok(s, d.push_op(d.entries(1, 6)));
    let first = d.snapshot(vec![d.cursor(2)], b"first");
    ok(s, d.snapshot_op(first.clone(), None));
    ok(s, other.confirm_op(&first));
    let junk = d.snapshot(vec![d.cursor(4)], b"junk nobody opens");
    ok(s, d.snapshot_op(junk.clone(), None));
    let listed = s.snapshots(&d.account).unwrap();
    assert_eq!(
        listed.confirmed.as_ref().map(|c| c.snapshot_id),
        Some(snapshot_id(&first))
    );
    assert_eq!(
        listed.pending.as_ref().map(|c| c.snapshot_id),
        Some(snapshot_id(&junk))
    );
    assert_eq!(floor_of(s, &d), 2);
    let by_id = |snap: &SealedSnapshot| {
        s.snapshot_range(&d.account, Some(snapshot_id(snap)), 0, 100)
            .unwrap()
            .map(|r| r.snapshot)
    };
    assert_eq!(by_id(&first), Some(first.clone()));
    assert_eq!(by_id(&junk), Some(junk.clone()));
    assert_eq!(
        s.snapshot_range(&d.account, None, 0, 100)
            .unwrap()
            .map(|r| r.snapshot),
        Some(junk.clone())
    );
    assert_eq!(
        s.snapshot_range(&d.account, Some([7; 32]), 0, 100).unwrap(),
        None
    );
    // The log the confirmed snapshot does not cover is all there.
    assert_eq!(pull_all(s, &d.account, &[d.cursor(2)]), d.entries(3, 6));
    // A newer pending snapshot replaces the junk one; the confirmed stays.
    let good = d.snapshot(vec![d.cursor(5)], b"good");
    ok(s, d.snapshot_op(good.clone(), None));
    assert_eq!(by_id(&junk), None);
    assert_eq!(by_id(&first), Some(first.clone()));
    assert!(matches!(
        one(s, other.confirm_op(&junk)),
        Err(StoreError::SnapshotChanged)
    ));
    assert_eq!(
        ok(s, other.confirm_op(&good)),
        WriteOutcome::SnapshotConfirmed { pruned_entries: 3 }
    );
    assert_eq!(by_id(&first), None);
    assert_eq!(floor_of(s, &d), 5);
    assert_eq!(s.stats().unwrap().entries, 1);
}

/// Pending snapshots stored before the cutoff are confirmed (pruned) by the
/// safety window; later ones stay pending.
pub fn the_safety_window_confirms_pending_snapshots(s: &dyn RelayStore) {
    let (a, d) = registered(s, 49, 50);
    let (_, e) = registered(s, 51, 52);
    let _ = a;
    ok(s, d.push_op(d.entries(1, 3)));
    ok(s, e.push_op(e.entries(1, 3)));
    let mut late = e.snapshot_op(e.snapshot(vec![e.cursor(3)], b"late"), None);
    if let WriteOp::PutSnapshot { now_ms, .. } = &mut late {
        *now_ms = T0_MS + 10_000;
    }
    ok(
        s,
        d.snapshot_op(d.snapshot(vec![d.cursor(3)], b"early"), None),
    );
    ok(s, late);
    assert_eq!(
        ok(
            s,
            WriteOp::SnapshotsConfirmDue {
                stored_before_ms: T0_MS + 5_000
            }
        ),
        WriteOutcome::SnapshotsConfirmed(1)
    );
    assert_eq!(floor_of(s, &d), 3);
    assert!(s.snapshots(&d.account).unwrap().pending.is_none());
    assert_eq!(floor_of(s, &e), 0);
    assert!(s.snapshots(&e.account).unwrap().pending.is_some());
}

/// Every byte a device makes the store keep counts against its account:
/// upload parts as they arrive (refused past the quota; freed when the
/// upload is replaced or expires), a committed snapshot, and mailbox blobs
/// of an authenticated account until taken or expired.
pub fn quotas_count_upload_parts_snapshots_and_mailbox_blobs(s: &dyn RelayStore) {
    let (_, d) = registered(s, 53, 54);
    ok(s, d.push_op(d.entries(1, 2)));
    let base = s.stats().unwrap().bytes;
    let part = |upload: u64, index: u32, n: usize, quota_bytes: u64| {
        let mut op = d.part_op(upload, index, 4, &vec![7; n], T0_MS);
        if let WriteOp::PutSnapshotPart { quota_bytes: q, .. } = &mut op {
            *q = quota_bytes;
        }
        op
    };
    ok(s, part(1, 0, 100, base + 250));
    ok(s, part(1, 1, 100, base + 250));
    assert_eq!(s.stats().unwrap().bytes, base + 200);
    assert!(matches!(
        one(s, part(1, 2, 100, base + 250)),
        Err(StoreError::QuotaBytes { .. })
    ));
    assert_eq!(s.stats().unwrap().bytes, base + 200);
    // A re-sent part replaces its bytes, it does not add them.
    ok(s, part(1, 1, 100, base + 250));
    assert_eq!(s.stats().unwrap().bytes, base + 200);
    // A new upload frees the old one's parts.
    ok(s, part(2, 0, 50, base + 250));
    assert_eq!(s.stats().unwrap().bytes, base + 50);
    ok(
        s,
        WriteOp::SnapshotUploadsExpire {
            started_before_ms: T0_MS + 1,
        },
    );
    assert_eq!(s.stats().unwrap().bytes, base);
    // A committed snapshot keeps counting its ciphertext.
    ok(s, d.part_op(3, 0, 1, &[1; 300], T0_MS));
    let snap = d.snapshot(vec![d.cursor(2)], &[1; 300]);
    let mut envelope = snap.clone();
    envelope.ciphertext.clear();
    ok(s, d.snapshot_op(envelope, Some(3)));
    let with_snapshot = s.stats().unwrap().bytes;
    assert!(
        with_snapshot >= base + 300,
        "{with_snapshot} < {base} + 300"
    );
    // Mailbox blobs of an account count until taken.
    let owner = crate::store::MailboxOwner {
        account: d.account,
        quota_bytes: with_snapshot + 1000,
        blobs_max: 8,
    };
    let put = |slot: u8, n: usize| WriteOp::MailboxPut {
        slot: [slot; 32],
        blob: vec![slot; n],
        expires_at_ms: T0_MS + 1000,
        now_ms: T0_MS,
        owner: Some(owner),
    };
    ok(s, put(60, 600));
    assert_eq!(s.stats().unwrap().bytes, with_snapshot + 600);
    assert!(matches!(
        one(s, put(61, 600)),
        Err(StoreError::QuotaBytes { .. })
    ));
    ok(
        s,
        WriteOp::MailboxTake {
            slot: [60; 32],
            now_ms: T0_MS + 1,
        },
    );
    assert_eq!(s.stats().unwrap().bytes, with_snapshot);
    ok(s, put(61, 600));
    ok(
        s,
        WriteOp::MailboxExpire {
            now_ms: T0_MS + 1000,
        },
    );
    assert_eq!(s.stats().unwrap().bytes, with_snapshot);
}

/// An op that would give an account more member devices than allowed is
/// refused, and nothing of it is stored; ops that add no member pass.
pub fn member_devices_per_account_are_capped(s: &dyn RelayStore) {
    let (a, d) = registered(s, 55, 56);
    let second = a.device(57);
    let mut op = second.register_op();
    if let WriteOp::AppendMembership { members_max, .. } = &mut op {
        *members_max = 2;
    }
    ok(s, op);
    let third = a.device(58);
    let mut op = third.register_op();
    if let WriteOp::AppendMembership { members_max, .. } = &mut op {
        *members_max = 2;
    }
    assert!(matches!(
        one(s, op),
        Err(StoreError::TooManyDevices { limit: 2 })
    ));
    assert!(!is_member(s, &third));
    assert_eq!(s.membership(&d.account).unwrap().unwrap().len(), 2);
}

/// An account holds at most `blobs_max` live mailbox blobs; a taken or
/// expired one frees its place.
pub fn mailbox_blobs_per_account_are_capped(s: &dyn RelayStore) {
    let (_, d) = registered(s, 59, 60);
    let put = |slot: u8, now_ms: u64| WriteOp::MailboxPut {
        slot: [slot; 32],
        blob: vec![slot; 10],
        expires_at_ms: now_ms + 1000,
        now_ms,
        owner: Some(crate::store::MailboxOwner {
            account: d.account,
            quota_bytes: QUOTA_BYTES,
            blobs_max: 2,
        }),
    };
    ok(s, put(70, T0_MS));
    ok(s, put(71, T0_MS));
    assert!(matches!(
        one(s, put(72, T0_MS)),
        Err(StoreError::MailboxFull { limit: 2 })
    ));
    ok(
        s,
        WriteOp::MailboxTake {
            slot: [70; 32],
            now_ms: T0_MS,
        },
    );
    ok(s, put(72, T0_MS));
    ok(
        s,
        WriteOp::MailboxExpire {
            now_ms: T0_MS + 1000,
        },
    );
    ok(s, put(73, T0_MS + 1000));
    ok(s, put(74, T0_MS + 1000));
}

/// A snapshot that covers less than the stored one is stale; one that covers
/// unstored entries or repeats a device is invalid; neither changes anything.
pub fn snapshots_are_never_replaced_by_staler_or_invalid_ones(s: &dyn RelayStore) {
    let (_, d) = registered(s, 18, 19);
    ok(s, d.push_op(d.entries(1, 4)));
    let good = d.snapshot(vec![d.cursor(3)], b"at 3");
    ok(s, d.snapshot_op(good.clone(), None));
    assert!(matches!(
        one(
            s,
            d.snapshot_op(d.snapshot(vec![d.cursor(2)], b"at 2"), None)
        ),
        Err(StoreError::SnapshotStale)
    ));
    assert!(matches!(
        one(s, d.snapshot_op(d.snapshot(vec![], b"nothing"), None)),
        Err(StoreError::SnapshotStale)
    ));
    assert!(matches!(
        one(
            s,
            d.snapshot_op(d.snapshot(vec![d.cursor(9)], b"future"), None)
        ),
        Err(StoreError::SnapshotInvalid)
    ));
    assert!(matches!(
        one(
            s,
            d.snapshot_op(d.snapshot(vec![d.cursor(4), d.cursor(4)], b"twice"), None)
        ),
        Err(StoreError::SnapshotInvalid)
    ));
    assert_eq!(s.snapshot(&d.account).unwrap(), Some(good));
    // Pending: nothing pruned yet.
    assert_eq!(floor_of(s, &d), 0);
    // The same coverage again replaces it (a re-upload is not stale).
    let again = d.snapshot(vec![d.cursor(3)], b"at 3 again");
    ok(s, d.snapshot_op(again.clone(), None));
    assert_eq!(s.snapshot(&d.account).unwrap(), Some(again));
}

/// `snapshot_range` returns slices of the stored ciphertext with its
/// envelope, its id and total length; `None` without a snapshot.
pub fn snapshot_ranges_slice_the_stored_ciphertext(s: &dyn RelayStore) {
    let (_, d) = registered(s, 20, 21);
    assert_eq!(s.snapshot_range(&d.account, None, 0, 10).unwrap(), None);
    ok(s, d.push_op(d.entries(1, 1)));
    let body: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let snap = d.snapshot(vec![d.cursor(1)], &body);
    ok(s, d.snapshot_op(snap.clone(), None));
    let mut got = Vec::new();
    let mut offset = 0u64;
    while offset < 1000 {
        let r = s
            .snapshot_range(&d.account, None, offset, 300)
            .unwrap()
            .unwrap();
        assert_eq!(r.total_bytes, 1000);
        assert_eq!(r.snapshot_id, snapshot_id(&snap));
        assert_eq!(r.snapshot.covers, snap.covers);
        assert_eq!(r.snapshot.signature, snap.signature);
        assert!(!r.snapshot.ciphertext.is_empty() && r.snapshot.ciphertext.len() <= 300);
        offset += r.snapshot.ciphertext.len() as u64;
        got.extend(r.snapshot.ciphertext);
    }
    assert_eq!(got, body);
    let past = s
        .snapshot_range(&d.account, None, 5000, 300)
        .unwrap()
        .unwrap();
    assert!(past.snapshot.ciphertext.is_empty());
    assert_eq!(past.total_bytes, 1000);
}

/// Parts of an upload are invisible until all are stored; then they read back
/// concatenated in index order; a commit naming the upload deletes its parts;
/// inconsistent or oversized parts and a new upload id behave as specified.
pub fn snapshots_upload_in_parts_and_commit_atomically(s: &dyn RelayStore) {
    let (_, d) = registered(s, 22, 23);
    ok(s, d.push_op(d.entries(1, 2)));
    assert!(matches!(
        upload_bytes(s, &d.account, &d.id(), 7),
        Err(StoreError::UploadIncomplete { parts_stored: 0 })
    ));
    // Out of order on purpose.
    ok(s, d.part_op(7, 2, 3, b"CC", T0_MS));
    ok(s, d.part_op(7, 0, 3, b"AA", T0_MS));
    assert!(matches!(
        upload_bytes(s, &d.account, &d.id(), 7),
        Err(StoreError::UploadIncomplete { parts_stored: 1 })
    ));
    assert!(matches!(
        one(s, d.part_op(7, 3, 3, b"DD", T0_MS)),
        Err(StoreError::UploadInconsistent { index: 3, count: 3 })
    ));
    assert!(matches!(
        one(s, d.part_op(7, 1, 4, b"BB", T0_MS)),
        Err(StoreError::UploadInconsistent { index: 1, count: 4 })
    ));
    assert!(matches!(
        one(s, d.part_op(7, 0, 0, b"", T0_MS)),
        Err(StoreError::UploadInconsistent { .. })
    ));
    let mut huge = d.part_op(7, 1, 3, b"", T0_MS);
    if let WriteOp::PutSnapshotPart {
        bytes,
        upload_bytes_max,
        ..
    } = &mut huge
    {
        *bytes = vec![0; 10];
        *upload_bytes_max = 8;
    }
    assert!(matches!(
        one(s, huge),
        Err(StoreError::UploadTooLarge { limit_bytes: 8 })
    ));
    assert_eq!(
        ok(s, d.part_op(7, 1, 3, b"BB", T0_MS)),
        WriteOutcome::SnapshotPartStored
    );
    // Re-sending a part replaces it.
    ok(s, d.part_op(7, 1, 3, b"bb", T0_MS));
    assert_eq!(upload_bytes(s, &d.account, &d.id(), 7).unwrap(), b"AAbbCC");
    assert!(matches!(
        upload_bytes(s, &d.account, &d.id(), 8),
        Err(StoreError::UploadIncomplete { .. })
    ));
    // Nothing is a snapshot until committed.
    assert_eq!(s.snapshot(&d.account).unwrap(), None);
    let snap = d.snapshot(vec![d.cursor(2)], b"AAbbCC");
    // The commit carries the envelope; the parts are its ciphertext.
    let mut envelope = snap.clone();
    envelope.ciphertext.clear();
    assert!(matches!(
        one(s, d.snapshot_op(snap.clone(), Some(7))),
        Err(StoreError::SnapshotInvalid)
    ));
    ok(s, d.snapshot_op(envelope, Some(7)));
    assert_eq!(s.snapshot(&d.account).unwrap(), Some(snap));
    assert!(matches!(
        upload_bytes(s, &d.account, &d.id(), 7),
        Err(StoreError::UploadIncomplete { parts_stored: 0 })
    ));

    // A new upload id discards the unfinished one.
    ok(s, d.part_op(9, 0, 2, b"old", T0_MS));
    ok(s, d.part_op(10, 0, 1, b"new", T0_MS));
    assert!(matches!(
        upload_bytes(s, &d.account, &d.id(), 9),
        Err(StoreError::UploadIncomplete { parts_stored: 0 })
    ));
    assert_eq!(upload_bytes(s, &d.account, &d.id(), 10).unwrap(), b"new");
}

/// Uploads started before the cutoff are deleted; later ones stay.
pub fn abandoned_uploads_expire(s: &dyn RelayStore) {
    let (a, old) = registered(s, 24, 25);
    let fresh = a.device(26);
    ok(s, fresh.register_op());
    ok(s, old.part_op(1, 0, 1, b"old", T0_MS));
    ok(s, fresh.part_op(1, 0, 1, b"fresh", T0_MS + 10_000));
    assert_eq!(
        ok(
            s,
            WriteOp::SnapshotUploadsExpire {
                started_before_ms: T0_MS + 5_000
            }
        ),
        WriteOutcome::SnapshotUploadsExpired(1)
    );
    assert!(matches!(
        upload_bytes(s, &old.account, &old.id(), 1),
        Err(StoreError::UploadIncomplete { parts_stored: 0 })
    ));
    assert_eq!(
        upload_bytes(s, &fresh.account, &fresh.id(), 1).unwrap(),
        b"fresh"
    );
}

/// A mailbox blob is taken once; an occupied slot refuses a second blob until
/// it expires; expired blobs are not returned and the sweep deletes only them.
pub fn mailbox_blobs_are_taken_once_and_expire(s: &dyn RelayStore) {
    let put = |slot: u8, blob: &[u8], expires_at_ms: u64, now_ms: u64| WriteOp::MailboxPut {
        slot: [slot; 32],
        blob: blob.to_vec(),
        expires_at_ms,
        now_ms,
        owner: None,
    };
    let take = |slot: u8, now_ms: u64| WriteOp::MailboxTake {
        slot: [slot; 32],
        now_ms,
    };
    assert_eq!(
        ok(s, put(1, b"one", T0_MS + 1000, T0_MS)),
        WriteOutcome::MailboxStored
    );
    assert!(matches!(
        one(s, put(1, b"again", T0_MS + 1000, T0_MS + 1)),
        Err(StoreError::MailboxTaken)
    ));
    assert_eq!(
        ok(s, take(1, T0_MS + 999)),
        WriteOutcome::MailboxTaken(b"one".to_vec())
    );
    assert!(matches!(
        one(s, take(1, T0_MS + 999)),
        Err(StoreError::MailboxNotFound)
    ));
    // Taken, the slot stays used until the blob would have expired: a second
    // device redeeming the same pairing token is refused at once.
    assert!(matches!(
        one(s, put(1, b"late", T0_MS + 1000, T0_MS + 999)),
        Err(StoreError::MailboxTaken)
    ));
    ok(s, put(1, b"after expiry", T0_MS + 5000, T0_MS + 1000));
    assert_eq!(
        ok(s, take(1, T0_MS + 1001)),
        WriteOutcome::MailboxTaken(b"after expiry".to_vec())
    );
    // Expired: not returned, and the slot is free again.
    ok(s, put(2, b"two", T0_MS + 1000, T0_MS));
    assert!(matches!(
        one(s, take(2, T0_MS + 1000)),
        Err(StoreError::MailboxNotFound)
    ));
    ok(s, put(3, b"three", T0_MS + 1000, T0_MS));
    ok(s, put(3, b"three again", T0_MS + 3000, T0_MS + 2000));
    assert_eq!(
        ok(s, take(3, T0_MS + 2500)),
        WriteOutcome::MailboxTaken(b"three again".to_vec())
    );
    // The sweep deletes exactly what expired: slot 4's blob, slot 2's (never
    // taken), and the tombstones of slots 1 and 3; slot 5 stays.
    ok(s, put(4, b"short", T0_MS + 1000, T0_MS));
    ok(s, put(5, b"long", T0_MS + 9000, T0_MS));
    assert_eq!(
        ok(
            s,
            WriteOp::MailboxExpire {
                now_ms: T0_MS + 5000
            }
        ),
        WriteOutcome::MailboxExpired(4)
    );
    ok(s, put(3, b"three, later", T0_MS + 9000, T0_MS + 5000));
    assert_eq!(
        ok(s, take(5, T0_MS + 5000)),
        WriteOutcome::MailboxTaken(b"long".to_vec())
    );
}

/// With closed registration a new account needs a stored token, used once;
/// further devices of a registered account need none.
pub fn registration_tokens_are_single_use(s: &dyn RelayStore) {
    let closed = |d: &Device, token_hash: Option<[u8; 32]>| d.register_with(token_hash, false);
    let a = Account::new(30);
    let d = a.device(31);
    assert!(matches!(
        one(s, closed(&d, None)),
        Err(StoreError::RegistrationRequired)
    ));
    assert!(matches!(
        one(s, closed(&d, Some([1; 32]))),
        Err(StoreError::BadToken)
    ));
    assert!(s.membership(&d.account).unwrap().is_none());
    // A refused registration leaves no membership row behind.
    assert!(s.membership_ops(&d.account, 0, 10).unwrap().is_empty());
    ok(
        s,
        WriteOp::CreateToken {
            token_hash: [1; 32],
            now_ms: T0_MS,
        },
    );
    assert_eq!(
        new_account_of(&ok(s, closed(&d, Some([1; 32])))),
        Some(true)
    );
    assert!(is_member(s, &d));
    let other = Account::new(32).device(33);
    assert!(matches!(
        one(s, closed(&other, Some([1; 32]))),
        Err(StoreError::BadToken)
    ));
    let sibling = a.device(34);
    assert_eq!(new_account_of(&ok(s, closed(&sibling, None))), Some(false));
    // Registering a known device again is harmless and appends nothing.
    match ok(s, closed(&d, None)) {
        WriteOutcome::MembershipAppended {
            new_account,
            appended,
            ..
        } => {
            assert!(!new_account);
            assert!(appended.is_empty());
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(s.stats().unwrap().accounts, 1);
}

/// A revoked device is out: it cannot push, snapshot or come back through a
/// re-`Add`; pushes under the old epoch are refused as stale; its siblings
/// are unaffected; another account's device with the same key is a
/// different device.
pub fn revoked_devices_cannot_act_or_come_back(s: &dyn RelayStore) {
    let (a, d) = registered(s, 35, 36);
    let sibling = a.device(37);
    ok(s, sibling.register_op());
    ok(s, d.push_op(d.entries(1, 1)));
    let old_epoch_entry = sibling.entry(1, "old epoch");
    let revoke = sibling.revoke_op(d.id());
    match ok(s, sibling.append_op(vec![revoke.clone()])) {
        WriteOutcome::MembershipAppended { revoked, state, .. } => {
            assert_eq!(revoked, vec![d.id()]);
            assert_eq!(state.epoch(), 2);
        }
        other => panic!("unexpected {other:?}"),
    }
    sibling.record(revoke);
    assert!(!is_member(s, &d));
    assert!(is_member(s, &sibling));
    assert!(matches!(
        one(s, d.push_op(d.entries(2, 2))),
        Err(StoreError::Revoked)
    ));
    assert!(matches!(
        one(s, d.snapshot_op(d.snapshot(vec![d.cursor(1)], b"s"), None)),
        Err(StoreError::Revoked)
    ));
    // The revoked device cannot revoke its sibling (it is no member), and a
    // member cannot bring it back with an `Add`.
    let counter = d.revoke_op(sibling.id());
    assert!(one(s, d.append_op(vec![counter])).is_err());
    let m = sibling.state();
    let readd = m.next_op(
        Author::Device(sibling.id()),
        &sibling.key,
        m.epoch(),
        Change::Add {
            member: MemberKeys {
                device: d.id(),
                seal_key: [0; 32],
            },
            key: placeholder_key(d.id()),
        },
        T0_MS + 2,
    );
    assert!(matches!(
        one(s, sibling.append_op(vec![readd])),
        Err(StoreError::Membership(_))
    ));
    assert!(!is_member(s, &d));
    // Sealed under epoch 1 after the rotation: stale.
    assert!(matches!(
        one(s, sibling.push_op(vec![old_epoch_entry])),
        Err(StoreError::EpochStale { current: 2 })
    ));
    ok(s, sibling.push_op(sibling.entries(1, 1)));
    // Another account's device with the same key is a different device.
    let elsewhere = Account::new(38).device(36);
    ok(s, elsewhere.register_op());
    assert!(is_member(s, &elsewhere));
}

/// `AppendMembership` (no skipping) takes ops only at the head: an op the
/// store holds already, or one past the head, is `MembershipBehind`, and
/// ops are read back in order after any position.
pub fn membership_ops_append_only_at_the_head(s: &dyn RelayStore) {
    let (a, d) = registered(s, 50, 51);
    let joined = d.joining_ops();
    assert!(matches!(
        one(s, d.append_op(joined.clone())),
        Err(StoreError::MembershipBehind { len: 1 })
    ));
    let sibling = a.device(52);
    let ops = sibling.joining_ops();
    let add = ops[1].clone();
    let m = sibling.state();
    let rotate = m.next_op(
        Author::Device(d.id()),
        &d.key,
        m.epoch() + 1,
        Change::Rotate {
            rotation: kith_protocol::Rotation {
                keys: vec![placeholder_key(d.id()), placeholder_key(sibling.id())],
                wrapped: vec![],
            },
        },
        T0_MS + 3,
    );
    // Past the head: refused, nothing stored.
    assert!(matches!(
        one(s, d.append_op(vec![rotate.clone()])),
        Err(StoreError::MembershipBehind { len: 1 })
    ));
    ok(s, d.append_op(vec![add.clone(), rotate.clone()]));
    assert_eq!(
        s.membership_ops(&d.account, 0, 10).unwrap(),
        vec![joined[0].clone(), add, rotate.clone()]
    );
    assert_eq!(s.membership_ops(&d.account, 2, 10).unwrap(), vec![rotate]);
    assert_eq!(s.membership_ops(&d.account, 0, 1).unwrap().len(), 1);
    assert_eq!(s.membership(&d.account).unwrap().unwrap().epoch(), 2);
}

/// A push that would take the account past its quota is refused whole;
/// re-sends (which add nothing) still succeed at the quota; a snapshot that
/// prunes enough brings the account back under it.
pub fn byte_quotas_refuse_growth_but_not_resends(s: &dyn RelayStore) {
    let (a, d) = registered(s, 40, 41);
    ok(s, d.push_op(d.entries(1, 4)));
    let used = s.stats().unwrap().bytes;
    assert!(used > 0);
    let with_quota = |entries: Vec<SealedEntry>, quota_bytes: u64| WriteOp::Push {
        account: d.account,
        device: d.id(),
        entries,
        quota_bytes,
    };
    assert!(matches!(
        one(s, with_quota(d.entries(5, 6), used)),
        Err(StoreError::QuotaBytes { limit_bytes }) if limit_bytes == used
    ));
    assert_eq!(head_of(s, &d), 4);
    assert_eq!(s.stats().unwrap().bytes, used);
    assert_eq!(ok(s, with_quota(d.entries(1, 4), used)), pushed(4, vec![]));
    // A small snapshot covering everything frees room once another device
    // opened it.
    let snap = d.snapshot(vec![d.cursor(4)], b"s");
    ok(s, d.snapshot_op(snap.clone(), None));
    assert!(s.stats().unwrap().bytes > used);
    let other = a.device(39);
    ok(s, other.register_op());
    ok(s, other.confirm_op(&snap));
    assert!(s.stats().unwrap().bytes < used);
    ok(s, with_quota(d.entries(5, 5), used));
    assert_eq!(head_of(s, &d), 5);
}

/// Each op of a batch stands alone: a refused op between two good ones
/// leaves both applied, and later ops see earlier ones' effects.
pub fn a_refused_op_does_not_block_its_batch(s: &dyn RelayStore) {
    let a = Account::new(42);
    let d = a.device(43);
    let r = s.apply(vec![
        d.register_op(),
        d.push_op(d.entries(1, 2)),
        d.push_op(d.entries(5, 5)),
        d.push_op(d.entries(3, 3)),
    ]);
    assert_eq!(r.len(), 4);
    assert!(matches!(
        r[0],
        Ok(WriteOutcome::MembershipAppended {
            new_account: true,
            ..
        })
    ));
    assert!(matches!(&r[1], Ok(WriteOutcome::Pushed { head: 2, .. })));
    assert!(matches!(r[2], Err(StoreError::SeqGap { expected: 3 })));
    assert!(matches!(&r[3], Ok(WriteOutcome::Pushed { head: 3, .. })));
    assert_eq!(pull_all(s, &d.account, &[]), d.entries(1, 3));
    assert_eq!(s.apply(vec![]).len(), 0);
}

/// Stats count registered accounts, stored entries and their bytes.
pub fn stats_count_accounts_entries_and_bytes(s: &dyn RelayStore) {
    assert_eq!(s.stats().unwrap(), crate::store::StoreStats::default());
    let (_, d1) = registered(s, 44, 45);
    let (_, d2) = registered(s, 46, 47);
    ok(s, d1.push_op(d1.entries(1, 3)));
    let after_three = s.stats().unwrap();
    ok(s, d2.push_op(d2.entries(1, 2)));
    let st = s.stats().unwrap();
    assert_eq!(st.accounts, 2);
    assert_eq!(st.entries, 5);
    assert!(st.bytes > after_three.bytes && after_three.bytes > 0);
}

/// A stored entry damaged behind the store's back (a flipped bit on disk)
/// is detected when read: the pull serves, at its place, an entry with the
/// same account, device and seq that does not verify (readers quarantine it
/// and move on) and the other entries intact. A different entry at that seq
/// is still a fork; the original bytes re-pushed by the writer repair it,
/// without counting twice against the quota.
pub fn a_damaged_entry_is_served_as_a_placeholder_and_repaired_by_the_original(
    s: &dyn RelayStore,
    damage: &dyn Fn(&AccountId, &DeviceId, u64),
) {
    let (_, d) = registered(s, 90, 91);
    ok(s, d.push_op(d.entries(1, 3)));
    let before = s.stats().unwrap();
    damage(&d.account, &d.id(), 2);
    let got = pull_all(s, &d.account, &[]);
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], d.entry(1, "entry 1"));
    assert_eq!(got[2], d.entry(3, "entry 3"));
    let placeholder = &got[1];
    assert_eq!(
        (placeholder.account, placeholder.device, placeholder.seq),
        (d.account, d.id(), 2)
    );
    assert!(
        placeholder.verify().is_err(),
        "a damaged entry must not verify"
    );
    // The fan-out read serves the same placeholder.
    assert_eq!(
        s.device_entries(&d.account, &d.id(), 1, 3, 100, usize::MAX)
            .unwrap(),
        got
    );
    assert!(matches!(
        one(s, d.push_op(vec![d.entry(2, "other")])),
        Err(StoreError::SeqFork { seq: 2 })
    ));
    assert_eq!(ok(s, d.push_op(d.entries(1, 3))), pushed(3, vec![]));
    assert_eq!(pull_all(s, &d.account, &[]), d.entries(1, 3));
    assert_eq!(s.stats().unwrap(), before);
    // An intact entry is never replaced by a re-push.
    assert!(matches!(
        one(s, d.push_op(vec![d.entry(2, "other")])),
        Err(StoreError::SeqFork { seq: 2 })
    ));
}

/// A probe write (what `/health` uses after a failed write) succeeds on a
/// healthy store, any number of times, and changes nothing a client sees.
pub fn a_probe_write_succeeds_and_changes_nothing_visible(s: &dyn RelayStore) {
    let (_, d) = registered(s, 92, 93);
    ok(s, d.push_op(d.entries(1, 2)));
    let before = (s.stats().unwrap(), pull_all(s, &d.account, &[]));
    for _ in 0..3 {
        s.probe_write().unwrap();
    }
    assert_eq!((s.stats().unwrap(), pull_all(s, &d.account, &[])), before);
}

/// `mailbox_live` (what an unauthenticated take checks before it writes)
/// sees a stored blob until it expires or is taken, and nothing else.
pub fn mailbox_live_sees_only_unexpired_blobs(s: &dyn RelayStore) {
    let slot = [44u8; 32];
    assert!(!s.mailbox_live(&slot, T0_MS).unwrap());
    ok(
        s,
        WriteOp::MailboxPut {
            slot,
            blob: b"invite".to_vec(),
            expires_at_ms: T0_MS + 1_000,
            now_ms: T0_MS,
            owner: None,
        },
    );
    assert!(s.mailbox_live(&slot, T0_MS + 999).unwrap());
    assert!(!s.mailbox_live(&slot, T0_MS + 1_000).unwrap());
    assert!(!s.mailbox_live(&[45u8; 32], T0_MS).unwrap());
    ok(
        s,
        WriteOp::MailboxTake {
            slot,
            now_ms: T0_MS + 1,
        },
    );
    assert!(!s.mailbox_live(&slot, T0_MS + 2).unwrap());
}
