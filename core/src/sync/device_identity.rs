//! A device's sync identity: the account it belongs to (a public id), its
//! own ed25519 key, its X25519 key and its name. It holds no account secret
//! and no authority of its own: what it may do is decided by the account's
//! membership log (`sync::membership`), and the data keys it can read come
//! from that log (`sync::epochs`). Converts to and from [`KeyMaterial`]
//! (key file version 2), the record a [`KeyStore`](crate::identity::KeyStore)
//! persists.

use kith_protocol::{AccountId, DeviceId, MemberKeys, SigningKey};

use super::authority::Actor;
use super::epochs::SealKey;
use crate::identity::{DeviceKey, KeyMaterial};

/// Why key material does not make a usable sync identity.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// This device has keys but has not created or joined an account.
    #[error("this device has not joined an account yet: run `kith init` or `kith join`")]
    NoAccount,
    /// The stored account id is not a valid public key.
    #[error("the stored account id is not a valid key")]
    BadAccount,
}

/// Everything a device needs to sync, held in memory while syncing.
#[derive(Clone)]
pub struct DeviceIdentity {
    account: AccountId,
    device: DeviceKey,
    seal: SealKey,
    /// The seed `seal` derives from (what the key store keeps).
    seal_seed: zeroize::Zeroizing<[u8; 32]>,
    name: String,
}

impl std::fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceIdentity")
            .field("account", &self.account)
            .field("device", &self.device_id())
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl DeviceIdentity {
    /// The identity of the device whose keys are `m`, in `account`.
    pub fn with_account(m: &KeyMaterial, account: AccountId) -> Self {
        Self {
            account,
            device: m.device_key(),
            seal: SealKey::from_secret_seed(&m.seal_key),
            seal_seed: zeroize::Zeroizing::new(m.seal_key),
            name: m.device_name.clone(),
        }
    }

    /// Rebuilds the identity from persisted key material.
    pub fn from_material(m: &KeyMaterial) -> Result<Self, IdentityError> {
        let account = m.account.ok_or(IdentityError::NoAccount)?;
        kith_protocol::VerifyingKey::from_bytes(&account).map_err(|_| IdentityError::BadAccount)?;
        Ok(Self::with_account(m, AccountId(account)))
    }

    /// The record to persist in a key store.
    pub fn to_material(&self) -> KeyMaterial {
        KeyMaterial {
            version: KeyMaterial::VERSION,
            account: Some(self.account.0),
            device_key: self.device.to_bytes(),
            seal_key: *self.seal_seed,
            device_name: self.name.clone(),
        }
    }

    /// The account this device belongs to.
    pub fn account_id(&self) -> AccountId {
        self.account
    }

    /// This device's id (its public key).
    pub fn device_id(&self) -> DeviceId {
        DeviceId::from(self.device.device_id())
    }

    /// This device's human name (never sent to the relay in the clear).
    pub fn device_name(&self) -> &str {
        &self.name
    }

    /// The device's signing key (signs entries, snapshots, membership ops,
    /// relay and peer authentication).
    pub fn device_signing_key(&self) -> &SigningKey {
        self.device.signing_key()
    }

    /// The X25519 key epoch keys are sealed to.
    pub fn seal_key(&self) -> &SealKey {
        &self.seal
    }

    /// This device acting on the membership log.
    pub fn actor(&self) -> Actor<'_> {
        Actor {
            sign: self.device.signing_key(),
            seal: &self.seal,
        }
    }

    /// The public keys that name this device in the membership log.
    pub fn card(&self) -> MemberKeys {
        self.actor().keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn material_round_trip_and_no_account() {
        let mut m = KeyMaterial::generate("laptop");
        assert!(matches!(
            DeviceIdentity::from_material(&m),
            Err(IdentityError::NoAccount)
        ));
        let account = AccountId::from(SigningKey::from_bytes(&[3; 32]).verifying_key());
        m.account = Some(account.0);
        let id = DeviceIdentity::from_material(&m).unwrap();
        assert_eq!(id.account_id(), account);
        assert_eq!(id.device_name(), "laptop");
        let back = DeviceIdentity::from_material(&id.to_material()).unwrap();
        assert_eq!(back.device_id(), id.device_id());
        assert_eq!(back.seal_key().public(), id.seal_key().public());
    }
}
