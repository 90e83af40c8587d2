//! The account, pairing and sync methods of `Kith`, and where key material
//! lives.
//!
//! Key material (account secret, device key, certificate) goes through
//! kith-core's `KeyStore` trait. A phone app implements [`KithKeyStore`] over
//! the Keychain (iOS) or an Android Keystore-wrapped store and passes it to
//! `Kith::open_with_key_store`; the bytes it keeps are opaque to it. Without
//! one, keys are in `keys.json` in the data directory (owner-only), the file
//! the `kith` CLI uses. The relay address is kept in `sync.json` next to the
//! store, in the CLI's format, so the CLI and an app share a data directory.
//!
//! Data flow: `create_account` / `join` make the identity and save it through
//! the key store; `pair`, `join`, `revoke` and `sync_now` are async and run
//! their relay round on kith-ffi's runtime ([`crate::sync::SyncHub::round`]);
//! `start_sync` hands the loop to [`crate::sync::SyncHub::start`].

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;

use kith_core::identity::{KeyMaterial, KeyStore, KeyStoreError};
use kith_core::sync::authority::RecoveryCode;
use kith_core::sync::devices::list_devices;
use kith_core::sync::pairing::{INVITATION_TTL_MS_MAX, Incoming};
use kith_core::sync::relay::RecoverError;
use kith_core::sync::{DeviceIdentity, Invitation, PairingMode, Token, membership};
use kith_net::relay::Extra;
use kith_protocol::{DeviceId, RelayAddress};

use crate::error::{KithError, KithResult};
use crate::guard::guard;
use crate::kith::Kith;
use crate::listener::SyncState;
use crate::runtime::run_async;
use crate::sync::{SyncHub, SyncReport, SyncStatus};
use crate::types::to_i64;

/// The relay address file (the CLI's format: `{"relay": "kith://…"}`).
const SYNC_FILE: &str = "sync.json";
/// Longest device name (it is in the certificate every device sees).
pub const DEVICE_NAME_CHARS_MAX: usize = 64;
/// Usual (the default argument) and longest lifetime of a pairing token.
const PAIR_TTL_MINUTES_DEFAULT: i32 = 10;
/// A relay keeps mailbox blobs at most 600 s, so an invitation lasts at most 10 min.
#[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)] // 10, checked below
const PAIR_TTL_MINUTES_MAX: i32 = (INVITATION_TTL_MS_MAX / 60_000) as i32;
const _: () = assert!(INVITATION_TTL_MS_MAX / 60_000 <= 60);
/// Largest key material a foreign key store may hand back.
const KEY_MATERIAL_BYTES_MAX: usize = 64 * 1024;

/// Where the app keeps this device's key material: the Keychain on iOS, a
/// Keystore-protected store on Android. `Kith` calls it from its own
/// threads, rarely (at open, account creation, join, and each sync start).
/// Throw `KithError.Storage` (or any exception) when the platform store
/// fails; Kith reports it as an error of the call that needed the keys.
#[uniffi::export(with_foreign)]
pub trait KithKeyStore: Send + Sync {
    /// The bytes saved last by `save`, or nothing when none were saved.
    fn load(&self) -> Result<Option<Vec<u8>>, KithError>;
    /// Replaces the saved bytes durably (they hold the account secret:
    /// keep them in the platform's secure storage).
    fn save(&self, key_material: Vec<u8>) -> Result<(), KithError>;
}

/// kith-core's `KeyStore` over an app's [`KithKeyStore`].
pub(crate) struct ForeignKeyStore(pub(crate) Arc<dyn KithKeyStore>);

impl std::fmt::Debug for ForeignKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ForeignKeyStore")
    }
}

fn platform(what: &str, e: impl std::fmt::Display) -> KeyStoreError {
    KeyStoreError::Platform(format!("{what}: {e}"))
}

impl KeyStore for ForeignKeyStore {
    fn load(&self) -> Result<Option<KeyMaterial>, KeyStoreError> {
        let bytes = catch_unwind(AssertUnwindSafe(|| self.0.load()))
            .map_err(|p| platform("load", crate::guard::panic_message(p.as_ref())))?
            .map_err(|e| platform("load", e))?;
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        if bytes.len() > KEY_MATERIAL_BYTES_MAX {
            return Err(platform(
                "load",
                format!(
                    "{} bytes is not Kith key material (at most {KEY_MATERIAL_BYTES_MAX})",
                    bytes.len()
                ),
            ));
        }
        let keys: KeyMaterial = serde_json::from_slice(&bytes)
            .map_err(|e| platform("load", format!("the saved key material is damaged: {e}")))?;
        if keys.version > KeyMaterial::VERSION {
            return Err(platform(
                "load",
                format!(
                    "key material version {} is newer than this Kith ({})",
                    keys.version,
                    KeyMaterial::VERSION
                ),
            ));
        }
        Ok(Some(keys))
    }

    fn save(&self, keys: &KeyMaterial) -> Result<(), KeyStoreError> {
        let bytes = serde_json::to_vec(keys).map_err(|e| platform("save", e))?;
        catch_unwind(AssertUnwindSafe(|| self.0.save(bytes)))
            .map_err(|p| platform("save", crate::guard::panic_message(p.as_ref())))?
            .map_err(|e| platform("save", e))
    }
}

/// This device's account.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AccountInfo {
    /// The account id (the account key, 52-character base32); the same on every device.
    pub account_id: String,
    /// This device's id (its key, 52-character base32).
    pub device_id: String,
    /// This device's name ("Ana's phone").
    pub device_name: String,
    /// The relay (`kith://KEY@HOST:PORT`), if one is set.
    pub relay: Option<String>,
    /// The recovery code, only in what `create_account` returns: show it
    /// once, have the user write it down; no device stores it.
    pub recovery_code: Option<String>,
}

/// What `recover` did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RecoveryReport {
    /// The members now (device ids).
    pub members: Vec<String>,
    /// The devices the recovery revoked.
    pub revoked: Vec<String>,
    /// The key epoch that started.
    pub epoch: i64,
    /// Older epoch keys carried into it: what of the relay's history this
    /// device reads (0: only what is on this device).
    pub epochs_carried: i64,
    /// This device's account after the recovery (new keys for a restored device).
    pub account: AccountInfo,
}

/// A device asking to join through an invitation this device made.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct JoinRequest {
    /// Its device id.
    pub device_id: String,
    /// The name it gave.
    pub name: String,
    /// The code it shows: approve only if the user sees the same on it.
    pub code: String,
}

/// An invitation waiting for its answer (the inviter's side).
#[derive(Debug)]
pub(crate) struct PendingInvitation {
    invitation: Invitation,
    incoming: Option<Incoming>,
}

/// One device of the account, as this device knows it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Device {
    /// The device id (its key, 52-character base32); pass it to `revoke`.
    pub id: String,
    /// The device's name.
    pub name: String,
    /// When it joined (its certificate was issued), ms since the Unix epoch.
    pub added_ms: i64,
    /// When its data last reached this device, ms since the Unix epoch.
    pub last_seen_ms: i64,
    /// When it was revoked (ms since the Unix epoch), if it was.
    pub revoked_at_ms: Option<i64>,
    /// This is the device the app runs on.
    pub this_device: bool,
    /// Entries of this device that were skipped because they did not
    /// verify, decrypt or parse; non-zero: warn the user (the device is
    /// damaged or hostile, or the relay's copy of its log is damaged).
    pub quarantined_entries: i64,
}

/// A one-time pairing invitation: show `token` as a QR code (and as text).
/// Its `Debug` leaves the token out (it ends up in logs and crash reports).
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
pub struct PairingInvitation {
    /// The one-time token the new device types or scans; secret: show it only to the user.
    pub token: String,
    /// After this (ms since the Unix epoch) the token no longer works.
    pub expires_at_ms: i64,
}

impl std::fmt::Debug for PairingInvitation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairingInvitation")
            .field("token", &"<redacted>")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

fn now_ms() -> u64 {
    kith_net::now_ms()
}

fn parse_relay(text: &str) -> KithResult<RelayAddress> {
    text.trim()
        .parse::<RelayAddress>()
        .map_err(|e| KithError::invalid("relay", format!("'{text}' is not a relay address: {e}")))
}

/// The relay address saved in the data directory, if any.
pub(crate) fn saved_relay(dir: &Path) -> KithResult<Option<RelayAddress>> {
    let bytes = match std::fs::read(dir.join(SYNC_FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(KithError::Storage {
                reason: format!("cannot read {SYNC_FILE}: {e}"),
            });
        }
    };
    let damaged = |e: String| KithError::Storage {
        reason: format!("{SYNC_FILE} is damaged: {e}"),
    };
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| damaged(e.to_string()))?;
    match v.get("relay") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => s
            .parse::<RelayAddress>()
            .map(Some)
            .map_err(|e| damaged(e.to_string())),
        Some(_) => Err(damaged("relay is not a string".into())),
    }
}

fn save_relay(dir: &Path, addr: &RelayAddress) -> KithResult<()> {
    let bytes = serde_json::to_vec_pretty(&serde_json::json!({ "relay": addr.to_string() }))
        .map_err(|e| KithError::Internal {
            reason: e.to_string(),
        })?;
    let storage = |e: std::io::Error| KithError::Storage {
        reason: format!("cannot write {SYNC_FILE}: {e}"),
    };
    let tmp = dir.join(format!("{SYNC_FILE}.tmp"));
    std::fs::write(&tmp, bytes).map_err(storage)?;
    std::fs::rename(&tmp, dir.join(SYNC_FILE)).map_err(storage)
}

fn check_device_name(name: &str) -> KithResult<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(KithError::invalid("device_name", "must not be empty"));
    }
    if name.chars().count() > DEVICE_NAME_CHARS_MAX {
        return Err(KithError::invalid(
            "device_name",
            format!("at most {DEVICE_NAME_CHARS_MAX} characters"),
        ));
    }
    Ok(name.to_string())
}

impl Kith {
    /// What both joining steps check first: a valid name and token, and a
    /// store that belongs to no account yet.
    fn joinable(&self, device_name: &str, token: &str) -> KithResult<(String, Token)> {
        let name = check_device_name(device_name)?;
        let token = Token::parse(token)?;
        if self.has_account()? {
            return Err(KithError::Conflict {
                reason: "this device already belongs to an account; join from a new store".into(),
            });
        }
        Ok((name, token))
    }

    /// This device's identity, or `Authentication` when it has no account.
    pub(crate) fn identity(&self) -> KithResult<DeviceIdentity> {
        match self.keys.load()? {
            Some(k) => Ok(DeviceIdentity::from_material(&k)?),
            None => Err(kith_core::sync::IdentityError::NoAccount.into()),
        }
    }

    fn has_account(&self) -> KithResult<bool> {
        Ok(self.keys.load()?.is_some_and(|k| k.account.is_some()))
    }

    /// The relay to sync with, or `InvalidInput(relay)` when none is set.
    fn relay(&self) -> KithResult<RelayAddress> {
        saved_relay(self.data_dir_path())?.ok_or_else(|| {
            KithError::invalid(
                "relay",
                "no relay is set: pass one to create_account() or call set_relay()",
            )
        })
    }

    /// The state sync starts in: `Idle` with an account and a relay.
    pub(crate) fn initial_sync_state(dir: &Path, keys: &dyn KeyStore) -> SyncState {
        let account = matches!(keys.load(), Ok(Some(k)) if k.account.is_some());
        let relay = matches!(saved_relay(dir), Ok(Some(_)));
        if account && relay {
            SyncState::Idle
        } else {
            SyncState::Disabled
        }
    }

    fn account_info(&self, id: &DeviceIdentity) -> KithResult<AccountInfo> {
        Ok(AccountInfo {
            account_id: id.account_id().to_string(),
            device_id: id.device_id().to_string(),
            device_name: id.device_name().to_string(),
            relay: saved_relay(self.data_dir_path())?.map(|r| r.to_string()),
            recovery_code: None,
        })
    }

    fn invitation(&self, token: &str) -> KithResult<Invitation> {
        let list = self
            .invitations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        list.iter()
            .find(|p| p.invitation.token.to_string() == token.trim())
            .map(|p| p.invitation.clone())
            .ok_or_else(|| KithError::NotFound {
                what: "invitation".into(),
                id: "this token was not made by this Kith (or was answered already)".into(),
            })
    }

    fn incoming(&self, token: &str) -> Option<Incoming> {
        let list = self
            .invitations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        list.iter()
            .find(|p| p.invitation.token.to_string() == token.trim())
            .and_then(|p| p.incoming.clone())
    }

    fn forget_invitation(&self, token: &str) {
        self.invitations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|p| p.invitation.token.to_string() != token.trim());
    }

    fn refresh_disabled(&self) {
        let state = Kith::initial_sync_state(self.data_dir_path(), self.keys.as_ref());
        let current = self.sync.shared.state();
        let set_up = state == SyncState::Idle;
        if (current == SyncState::Disabled && set_up) || (!set_up && !self.sync.is_running()) {
            self.sync.shared.set_state(state);
        }
    }
}

// Rust API: the blocking implementation. The foreign API (async where this touches the
// disk or the network) is the `ffi_*` façade in crate::api, one method per operation.
impl Kith {
    // ------------------------------------------------------------ account

    /// Creates a new account with this device as its only member: this
    /// device's keys (saved through the key store), the membership log's
    /// genesis signed by the account's root key, and, when given, the relay
    /// to sync with. The returned `recovery_code` is shown once: the app
    /// must have the user write it down. Fails with `Conflict` when this
    /// device already belongs to an account.
    pub fn create_account(
        &self,
        device_name: String,
        relay: Option<String>,
    ) -> KithResult<AccountInfo> {
        guard("create_account", || {
            let name = check_device_name(&device_name)?;
            let relay = relay.as_deref().map(parse_relay).transpose()?;
            if self.has_account()? {
                return Err(KithError::Conflict {
                    reason: "this device already belongs to an account".into(),
                });
            }
            let mut keys = kith_core::identity::KeyMaterial::generate(&name);
            let (id, code) = self.with_store(|s| {
                membership::create_account(s, &mut keys, now_ms()).map_err(|e| {
                    KithError::Internal {
                        reason: format!("cannot create the account: {e}"),
                    }
                })
            })?;
            self.keys.save(&keys)?;
            if let Some(r) = &relay {
                save_relay(self.data_dir_path(), r)?;
            }
            self.refresh_disabled();
            let mut info = self.account_info(&id)?;
            info.recovery_code = Some(code.to_string());
            Ok(info)
        })
    }

    /// This device's account, or nothing before `create_account` / `join`.
    pub fn account(&self) -> KithResult<Option<AccountInfo>> {
        guard("account", || {
            if !self.has_account()? {
                return Ok(None);
            }
            let id = self.identity()?;
            Ok(Some(self.account_info(&id)?))
        })
    }

    /// Sets the relay to sync with (`kith://KEY@HOST:PORT`); takes effect at
    /// the next `sync_now` / `start_sync`.
    pub fn set_relay(&self, relay: String) -> KithResult<()> {
        guard("set_relay", || {
            let addr = parse_relay(&relay)?;
            save_relay(self.data_dir_path(), &addr)?;
            self.refresh_disabled();
            Ok(())
        })
    }

    /// Every device of the account this device knows of, oldest first.
    pub fn devices(&self) -> KithResult<Vec<Device>> {
        guard("devices", || {
            let id = self.identity()?;
            let me = id.device_id();
            self.with_store(|s| {
                Ok(list_devices(s)?
                    .into_iter()
                    .map(|d| Device {
                        id: d.id.to_string(),
                        name: d.name,
                        added_ms: to_i64(d.added_ms),
                        last_seen_ms: to_i64(d.last_seen_ms),
                        revoked_at_ms: d.revoked_at_ms.map(to_i64),
                        this_device: d.id == me,
                        quarantined_entries: to_i64(d.quarantined_entries),
                    })
                    .collect())
            })
        })
    }

    // ------------------------------------------------------------ pairing (async)

    /// Invites a new device: returns a one-time token to show as a QR code
    /// (and as text), valid for `ttl_minutes` (1 to 10: a relay keeps
    /// pairing messages 600 s at most). Nothing is handed over yet: wait for
    /// the device with `next_join_request`, compare its code, then
    /// `approve_join` or `refuse_join`.
    pub(crate) async fn pair(self: Arc<Self>, ttl_minutes: i32) -> KithResult<PairingInvitation> {
        run_async("pair", async move {
            if !(1..=PAIR_TTL_MINUTES_MAX).contains(&ttl_minutes) {
                return Err(KithError::invalid(
                    "ttl_minutes",
                    format!(
                        "must be between 1 and {PAIR_TTL_MINUTES_MAX} (got {ttl_minutes}; \
                         {PAIR_TTL_MINUTES_DEFAULT} is usual)"
                    ),
                ));
            }
            self.identity()?;
            let addr = self.relay()?;
            let inv = Invitation::create(
                PairingMode::Relay {
                    address: addr.to_string(),
                },
                u64::from(ttl_minutes.unsigned_abs()) * 60_000,
                now_ms(),
            );
            self.invitations
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(PendingInvitation {
                    invitation: inv.clone(),
                    incoming: None,
                });
            Ok(PairingInvitation {
                token: inv.token.to_string(),
                expires_at_ms: to_i64(inv.expires_at_ms),
            })
        })
        .await
    }

    /// Waits (until the invitation expires) for the device that uses
    /// `token` (made by `pair`); returns its name and the code it shows.
    pub(crate) async fn next_join_request(
        self: Arc<Self>,
        token: String,
    ) -> KithResult<JoinRequest> {
        run_async("next_join_request", async move {
            let inv = self.invitation(&token)?;
            let addr = self.relay()?;
            let incoming = kith_net::relay::await_join_request(&addr, &inv).await?;
            let out = JoinRequest {
                device_id: incoming.request.card.device.to_string(),
                name: incoming.request.name.clone(),
                code: incoming.code.clone(),
            };
            let mut list = self
                .invitations
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(p) = list
                .iter_mut()
                .find(|p| p.invitation.token.to_string() == token.trim())
            {
                p.incoming = Some(incoming);
            }
            Ok(out)
        })
        .await
    }

    /// Adds the requesting device to the account if `code` (what the user
    /// saw on it) matches its code; otherwise refuses it and fails with
    /// `Authentication`. Either way the device is told.
    pub(crate) async fn approve_join(
        self: Arc<Self>,
        token: String,
        code: String,
    ) -> KithResult<()> {
        run_async("approve_join", async move {
            let inv = self.invitation(&token)?;
            let incoming = self.incoming(&token).ok_or_else(|| KithError::NotFound {
                what: "join request".into(),
                id: "call next_join_request first".into(),
            })?;
            let decision = Invitation::check_code(&incoming, &code);
            let approve = decision
                .as_ref()
                .map(|_| ())
                .map_err(|_| "the code on the inviting device does not match".to_string());
            let id = self.identity()?;
            let addr = self.relay()?;
            let store = self.shared_store()?;
            kith_net::relay::answer_join_request(
                &store,
                &id,
                &addr,
                &inv,
                &incoming,
                approve,
                self.sync.round_timeout_ms(),
            )
            .await?;
            self.forget_invitation(&token);
            decision?;
            Ok(())
        })
        .await
    }

    /// Refuses the requesting device (it is told `reason`).
    pub(crate) async fn refuse_join(
        self: Arc<Self>,
        token: String,
        reason: String,
    ) -> KithResult<()> {
        run_async("refuse_join", async move {
            let inv = self.invitation(&token)?;
            let incoming = self.incoming(&token).ok_or_else(|| KithError::NotFound {
                what: "join request".into(),
                id: "call next_join_request first".into(),
            })?;
            let id = self.identity()?;
            let addr = self.relay()?;
            let store = self.shared_store()?;
            kith_net::relay::answer_join_request(
                &store,
                &id,
                &addr,
                &inv,
                &incoming,
                Err(reason),
                self.sync.round_timeout_ms(),
            )
            .await?;
            self.forget_invitation(&token);
            Ok(())
        })
        .await
    }

    /// Joining, step 1: asks to join through `token`; returns the code to
    /// show on this device (the inviting device shows the same one). A
    /// token someone else used first fails with `Authentication` saying so.
    pub(crate) async fn request_join(
        self: Arc<Self>,
        token: String,
        device_name: String,
    ) -> KithResult<String> {
        run_async("request_join", async move {
            let (name, token) = self.joinable(&device_name, &token)?;
            let mut keys = match self.keys.load()? {
                Some(k) => k,
                None => kith_core::identity::KeyMaterial::generate(&name),
            };
            keys.device_name = name;
            self.keys.save(&keys)?;
            let (code, addr) = kith_net::relay::post_join_request(&token, None, &keys).await?;
            save_relay(self.data_dir_path(), &addr)?;
            Ok(code)
        })
        .await
    }

    /// Joining, step 2: waits (until the token expires) for the inviting
    /// device's answer; on approval saves the account and runs the first
    /// sync. Refused: `Authentication` with the inviter's reason. The
    /// account is set up once this returns; if only the first sync failed,
    /// `sync_status().last_error` says so and `sync_now` retries it.
    pub(crate) async fn join(
        self: Arc<Self>,
        token: String,
        device_name: String,
    ) -> KithResult<AccountInfo> {
        run_async("join", async move {
            let (name, token) = self.joinable(&device_name, &token)?;
            let Some(mut keys) = self.keys.load()? else {
                return Err(KithError::NotFound {
                    what: "join request".into(),
                    id: "call request_join first".into(),
                });
            };
            keys.device_name = name;
            let addr = token.check_relay(None)?;
            let store = self.shared_store()?;
            let (id, _inviter) = kith_net::relay::await_welcome(&token, &addr, &mut keys).await?;
            self.keys.save(&keys)?;
            save_relay(self.data_dir_path(), &addr)?;
            self.refresh_disabled();
            let info = self.account_info(&id)?;
            // The account exists now: a failed first sync is in the status.
            if let Err(e) = SyncHub::round(
                Arc::clone(&self.sync.shared),
                store,
                id,
                addr,
                vec![],
                false,
            )
            .await
            {
                tracing::warn!("the first sync after joining failed: {e}");
            }
            Ok(info)
        })
        .await
    }

    /// Revokes another device of the account: a `Revoke` in the membership
    /// log, ordered by the relay, and a new key epoch sealed to the
    /// remaining devices, so it can neither sync nor read what is written
    /// from now on. `device_id` is the id from `devices()`.
    pub async fn revoke(self: Arc<Self>, device_id: String) -> KithResult<()> {
        run_async("revoke", async move {
            let target: DeviceId = device_id.trim().parse().map_err(|_| {
                KithError::invalid("device_id", format!("'{device_id}' is not a device id"))
            })?;
            let id = self.identity()?;
            if target == id.device_id() {
                return Err(KithError::invalid(
                    "device_id",
                    "this is the device itself; revoke it from another device",
                ));
            }
            let addr = self.relay()?;
            let store = self.shared_store()?;
            let background = self.sync.is_running();
            SyncHub::round(
                Arc::clone(&self.sync.shared),
                Arc::clone(&store),
                id,
                addr,
                vec![Extra::Revoke(target)],
                background,
            )
            .await?;
            Ok(())
        })
        .await
    }

    /// Wins the account back with the recovery code shown at
    /// `create_account` (docs/SECURITY.md §3.7), for when a stolen device
    /// revoked this one, or every device was lost and this store was
    /// restored from a backup (`restore_backup`) or is new. The members
    /// become exactly `keep_device_ids` (ids from `devices()`; empty: this
    /// device only), every other device is revoked and a new key epoch
    /// starts, carrying every older key this device holds.
    ///
    /// A device restored from a backup holds a lost device's keys: it gets
    /// new keys (saved through the key store once the relay accepted the
    /// recovery) and the restored ones only open the older epochs.
    /// `device_name` names this device when it gets new keys; `relay` sets
    /// the relay (otherwise the one set). Errors: `InvalidInput`
    /// (`recovery_code`: mistyped, or another account's; `keep_device_ids`),
    /// `Authentication` (the relay does not hold this account, or another
    /// relay answered), `Network` (unreachable; nothing changed). Call
    /// `sync_now()` afterwards.
    pub async fn recover(
        self: Arc<Self>,
        recovery_code: String,
        keep_device_ids: Vec<String>,
        relay: Option<String>,
        device_name: Option<String>,
    ) -> KithResult<RecoveryReport> {
        run_async("recover", async move {
            let code = RecoveryCode::parse(&recovery_code)
                .map_err(|e| KithError::invalid("recovery_code", e.to_string()))?;
            let account = code.account();
            let name = device_name.as_deref().map(check_device_name).transpose()?;
            let addr = match &relay {
                Some(r) => parse_relay(r)?,
                None => self.relay()?,
            };
            let keys = self.keys.load()?;
            let has_log = self.with_store(|s| {
                Ok(!membership::ops(s)
                    .map_err(|e| KithError::Storage {
                        reason: e.to_string(),
                    })?
                    .is_empty())
            })?;
            let fresh = |n: &str| {
                let mut k = KeyMaterial::generate(n);
                k.account = Some(account.0);
                k
            };
            // (this device's keys afterwards, a lost device's restored keys, save?)
            let (mine, former, save) = match keys {
                Some(k) if k.account.is_some_and(|a| a != account.0) => {
                    return Err(KithError::invalid(
                        "recovery_code",
                        RecoverError::OtherAccount {
                            code_account: account,
                            account: kith_protocol::AccountId(k.account.unwrap_or_default()),
                        }
                        .to_string(),
                    ));
                }
                Some(k) if k.account.is_some() && has_log => (k, None, false),
                Some(k) if k.account.is_some() => {
                    let n = name.clone().unwrap_or_else(|| k.device_name.clone());
                    (fresh(&n), Some(k), true)
                }
                Some(mut k) => {
                    k.account = Some(account.0);
                    if let Some(n) = &name {
                        n.clone_into(&mut k.device_name);
                    }
                    (k, None, true)
                }
                None => (
                    fresh(name.as_deref().unwrap_or("recovered device")),
                    None,
                    true,
                ),
            };
            let me = DeviceIdentity::from_material(&mine)?;
            let former = former
                .as_ref()
                .map(DeviceIdentity::from_material)
                .transpose()?;
            let mut keep = Vec::with_capacity(keep_device_ids.len().max(1));
            for d in &keep_device_ids {
                let id: DeviceId = d.trim().parse().map_err(|_| {
                    KithError::invalid("keep_device_ids", format!("'{d}' is not a device id"))
                })?;
                if !keep.contains(&id) {
                    keep.push(id);
                }
            }
            if keep.is_empty() {
                keep.push(me.device_id());
            }
            let store = self.shared_store()?;
            let timeout_ms = self.sync.round_timeout_ms();
            let done =
                kith_net::recover_account(&store, &addr, code, &me, former, keep, timeout_ms)
                    .await?;
            if save {
                self.keys.save(&mine)?;
            }
            if relay.is_some() {
                save_relay(self.data_dir_path(), &addr)?;
            }
            self.refresh_disabled();
            Ok(RecoveryReport {
                members: done.members.iter().map(ToString::to_string).collect(),
                revoked: done.revoked.iter().map(ToString::to_string).collect(),
                epoch: to_i64(done.epoch),
                epochs_carried: to_i64(done.epochs_wrapped),
                account: self.account_info(&me)?,
            })
        })
        .await
    }

    // ------------------------------------------------------------ sync

    /// One sync round with the relay: pull what other devices sent, push
    /// this device's changes. Runs on Kith's runtime; awaiting it never
    /// blocks the caller's thread. While `start_sync` runs, it asks the
    /// background session to push and pull now and returns what that cycle
    /// moved (`via_background_sync`), or `Network` when the background session
    /// is not connected (offline, retrying) or does not complete the cycle
    /// within the round timeout: a pull-to-refresh never reports success
    /// offline.
    pub async fn sync_now(self: Arc<Self>) -> KithResult<SyncReport> {
        run_async("sync_now", async move {
            if self.sync.is_running() {
                let sync = Arc::clone(&self.sync);
                return SyncHub::sync_via_loop(Arc::clone(&self.sync.shared), move || sync.poke())
                    .await;
            }
            let id = self.identity()?;
            let addr = self.relay()?;
            let store = self.shared_store()?;
            SyncHub::round(
                Arc::clone(&self.sync.shared),
                store,
                id,
                addr,
                vec![],
                false,
            )
            .await
        })
        .await
    }

    /// Starts background sync: a session with the relay owned by Kith's
    /// runtime that pushes every local write at once, receives other
    /// devices' changes live (`on_change`), and reconnects with backoff
    /// (`Retrying`). Returns at once; the state goes to the listeners.
    /// It stops when the store is released or closed, and starts again when a
    /// handle comes back to the foreground.
    pub fn start_sync(&self) -> KithResult<()> {
        guard("start_sync", || {
            let id = self.identity()?;
            let addr = self.relay()?;
            let store = self.shared_store()?;
            self.sync.start(store, id, addr)
        })
    }

    /// Sets the registration token for a relay run with a token policy
    /// (`kith-relay token create`): the next rounds register the account
    /// with it. `None` (or empty) clears it. Kept in memory only.
    pub fn set_registration_token(&self, token: Option<String>) -> KithResult<()> {
        guard("set_registration_token", || {
            let token = token.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
            if token.as_ref().is_some_and(|t| t.len() > 256) {
                return Err(KithError::invalid("token", "longer than 256 bytes"));
            }
            *self
                .sync
                .shared
                .registration_token
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = token;
            Ok(())
        })
    }

    /// Sets how long one sync round (and pairing, joining, revoking) may take
    /// before it fails with `Network` (1,000 to 600,000 ms; default 60,000).
    /// A foreground pull-to-refresh may want less.
    pub fn set_sync_timeout_ms(&self, timeout_ms: i64) -> KithResult<()> {
        use crate::sync::{ROUND_TIMEOUT_MS_MAX, ROUND_TIMEOUT_MS_MIN};
        let timeout_ms: u64 = crate::types::non_negative("timeout_ms", timeout_ms)?;
        if !(ROUND_TIMEOUT_MS_MIN..=ROUND_TIMEOUT_MS_MAX).contains(&timeout_ms) {
            return Err(KithError::invalid(
                "timeout_ms",
                format!("must be between {ROUND_TIMEOUT_MS_MIN} and {ROUND_TIMEOUT_MS_MAX}"),
            ));
        }
        self.sync
            .shared
            .round_timeout_ms
            .store(timeout_ms, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Stops background sync; returns whether it was running. Returns at
    /// once: the session closes on Kith's runtime and reports `Idle`.
    pub fn stop_sync(&self) -> bool {
        self.sync.stop()
    }

    /// The sync status: state, last sync, last error, what is waiting. Read
    /// from memory (works while suspended; never waits for a sync step).
    pub fn sync_status(&self) -> KithResult<SyncStatus> {
        guard("sync_status", || {
            let relay = saved_relay(self.data_dir_path())?.map(|r| r.to_string());
            Ok(self.sync.status(relay))
        })
    }
}

#[cfg(test)]
mod invitation_tests {
    use super::PairingInvitation;

    #[test]
    fn debug_never_shows_the_token() {
        let inv = PairingInvitation {
            token: "kith1-SECRET-TOKEN-TEXT".into(),
            expires_at_ms: 5,
        };
        let shown = format!("{inv:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("expires_at_ms: 5"), "{shown}");
    }
}
