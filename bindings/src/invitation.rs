//! Pairing as objects the app drives (docs/SECURITY.md §3.6): the inviting
//! device holds a [`DeviceInvitation`] (the token to show as a QR code, its
//! expiry, then `wait_for_join` -> compare codes -> `approve` or `refuse`),
//! the joining device a [`JoinAttempt`] (the code to show, then
//! `wait_for_answer`).
//!
//! Both wrap the flat calls of `Kith` (`pair`, `next_join_request`,
//! `approve_join`, `refuse_join`, `request_join`, `join`), which stay for
//! existing apps: an object only remembers the token, so the app cannot pass
//! the wrong one, and its `Debug` never shows the token (it ends up in logs).

use std::sync::Arc;

use crate::account::{AccountInfo, JoinRequest};
use crate::error::KithResult;
use crate::kith::Kith;

/// An invitation this device made: show `token()` as a QR code (and as
/// text) until `expires_at_ms()`; `wait_for_join()` returns the device that
/// used it with the code it shows; `approve(code)` only if the user sees
/// the same code on that device, else `refuse(reason)`.
#[derive(uniffi::Object)]
pub struct DeviceInvitation {
    kith: Arc<Kith>,
    token: String,
    expires_at_ms: i64,
}

impl std::fmt::Debug for DeviceInvitation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceInvitation")
            .field("token", &"<redacted>")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

#[uniffi::export]
impl DeviceInvitation {
    /// The one-time token to show (QR code and text); secret: show it only
    /// to the user.
    pub fn token(&self) -> String {
        self.token.clone()
    }

    /// After this (ms since the Unix epoch) the token no longer works.
    pub fn expires_at_ms(&self) -> i64 {
        self.expires_at_ms
    }

    /// Waits (until the invitation expires) for the device that uses the
    /// token; returns its name, id and the code it shows. Expired:
    /// `Authentication`.
    pub async fn wait_for_join(self: Arc<Self>) -> KithResult<JoinRequest> {
        Arc::clone(&self.kith)
            .next_join_request(self.token.clone())
            .await
    }

    /// Adds the device if `code` (what the user saw on it) is the code it
    /// shows; otherwise refuses it and fails with `Authentication`. Either
    /// way the device is told.
    pub async fn approve(self: Arc<Self>, code: String) -> KithResult<()> {
        Arc::clone(&self.kith)
            .approve_join(self.token.clone(), code)
            .await
    }

    /// Refuses the device (it is told `reason`).
    pub async fn refuse(self: Arc<Self>, reason: String) -> KithResult<()> {
        Arc::clone(&self.kith)
            .refuse_join(self.token.clone(), reason)
            .await
    }
}

/// This device asking to join an account: show `code()` and have the user
/// check that the inviting device shows the same; `wait_for_answer()`
/// returns the account once the inviter approved.
#[derive(uniffi::Object)]
pub struct JoinAttempt {
    kith: Arc<Kith>,
    token: String,
    device_name: String,
    code: String,
}

impl std::fmt::Debug for JoinAttempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinAttempt")
            .field("token", &"<redacted>")
            .field("device_name", &self.device_name)
            .field("code", &self.code)
            .finish_non_exhaustive()
    }
}

#[uniffi::export]
impl JoinAttempt {
    /// The 6-digit code to show on this device.
    pub fn code(&self) -> String {
        self.code.clone()
    }

    /// Waits (until the token expires) for the inviter's answer; on
    /// approval the account is set up and a first sync runs (see `join`).
    /// Refused: `Authentication` with the inviter's reason.
    pub async fn wait_for_answer(self: Arc<Self>) -> KithResult<AccountInfo> {
        Arc::clone(&self.kith)
            .join(self.token.clone(), self.device_name.clone())
            .await
    }
}

#[uniffi::export]
impl Kith {
    /// Invites a new device (see [`DeviceInvitation`]); `ttl_minutes` 1 to
    /// 10. Nothing is handed over until `approve`.
    #[uniffi::method(default(ttl_minutes = 10))]
    pub async fn invite(self: Arc<Self>, ttl_minutes: i32) -> KithResult<Arc<DeviceInvitation>> {
        let inv = Arc::clone(&self).pair(ttl_minutes).await?;
        Ok(Arc::new(DeviceInvitation {
            kith: self,
            token: inv.token,
            expires_at_ms: inv.expires_at_ms,
        }))
    }

    /// Asks to join through `token` (see [`JoinAttempt`]). A token someone
    /// else used first fails with `Authentication` saying so.
    pub async fn start_join(
        self: Arc<Self>,
        token: String,
        device_name: String,
    ) -> KithResult<Arc<JoinAttempt>> {
        let code = Arc::clone(&self)
            .request_join(token.clone(), device_name.clone())
            .await?;
        Ok(Arc::new(JoinAttempt {
            kith: self,
            token,
            device_name,
            code,
        }))
    }
}
