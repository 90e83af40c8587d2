//! A device's complete sync identity: the account secret (and what derives
//! from it), this device's own key, and the certificate the account key
//! signed for it. Converts to and from [`KeyMaterial`], the record a
//! [`KeyStore`](crate::identity::KeyStore) persists.

use kith_protocol::{AccountId, DeviceCert, DeviceId, Revocation, SignatureError, SigningKey};

use crate::identity::{AccountSecret, DataKey, DeviceKey, KeyMaterial};

/// Why key material does not make a usable sync identity.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// This device has a key but has not joined an account (no account secret).
    #[error("this device has not joined an account yet: run `kith init` or `kith join`")]
    NoAccount,
    /// The stored device certificate does not decode.
    #[error("the stored device certificate is damaged: {0}")]
    DamagedCertificate(String),
    /// The certificate does not verify, or is for another account or device.
    #[error("the device certificate does not belong to this account and device: {0}")]
    CertificateMismatch(String),
    /// The certificate could not be signed.
    #[error("cannot issue the device certificate: {0}")]
    Issue(#[from] SignatureError),
}

/// Everything a device needs to sync: held in memory while syncing.
#[derive(Clone)]
pub struct DeviceIdentity {
    secret: AccountSecret,
    account_key: SigningKey,
    data_key: DataKey,
    device: DeviceKey,
    cert: DeviceCert,
}

impl std::fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceIdentity")
            .field("account", &self.account_id())
            .field("device", &self.device_id())
            .field("name", &self.cert.name)
            .finish_non_exhaustive()
    }
}

impl DeviceIdentity {
    /// Issues this device's certificate with the account key (a device that
    /// holds the account secret can certify itself).
    pub fn new(
        secret: AccountSecret,
        device: DeviceKey,
        name: &str,
        now_ms: u64,
    ) -> Result<Self, IdentityError> {
        let account_key = secret.signing_key();
        let cert = DeviceCert::issue(
            &account_key,
            DeviceId::from(device.device_id()),
            name,
            now_ms,
        )?;
        Ok(Self {
            data_key: secret.data_key(),
            secret,
            account_key,
            device,
            cert,
        })
    }

    /// A brand-new account with this device as its first member.
    pub fn create_account(name: &str, now_ms: u64) -> Result<Self, IdentityError> {
        Self::new(
            AccountSecret::generate(),
            DeviceKey::generate(),
            name,
            now_ms,
        )
    }

    /// Rebuilds the identity from persisted key material, checking that the
    /// certificate is the account's and this device's.
    pub fn from_material(m: &KeyMaterial) -> Result<Self, IdentityError> {
        let secret = m.account_secret().ok_or(IdentityError::NoAccount)?;
        let device = m.device_key();
        let Some(cert_bytes) = m.device_certificate.as_deref() else {
            // Holding the secret, the device can always (re)certify itself.
            return Self::new(secret, device, &m.device_name, 0);
        };
        let cert: DeviceCert = postcard::from_bytes(cert_bytes)
            .map_err(|e| IdentityError::DamagedCertificate(e.to_string()))?;
        cert.verify()
            .map_err(|e| IdentityError::CertificateMismatch(e.to_string()))?;
        let account_key = secret.signing_key();
        if cert.account != AccountId::from(account_key.verifying_key()) {
            return Err(IdentityError::CertificateMismatch(
                "issued by another account".into(),
            ));
        }
        if cert.device != DeviceId::from(device.device_id()) {
            return Err(IdentityError::CertificateMismatch(
                "issued for another device key".into(),
            ));
        }
        Ok(Self {
            data_key: secret.data_key(),
            secret,
            account_key,
            device,
            cert,
        })
    }

    /// The record to persist in a key store.
    pub fn to_material(&self) -> KeyMaterial {
        KeyMaterial {
            version: KeyMaterial::VERSION,
            account_secret: Some(*self.secret.as_bytes()),
            device_key: self.device.to_bytes(),
            device_name: self.cert.name.clone(),
            device_certificate: postcard::to_allocvec(&self.cert).ok(),
        }
    }

    /// The account this device belongs to (the account key's public half).
    pub fn account_id(&self) -> AccountId {
        self.cert.account
    }

    /// This device's id (its public key).
    pub fn device_id(&self) -> DeviceId {
        self.cert.device
    }

    /// This device's human name, as in its certificate.
    pub fn device_name(&self) -> &str {
        &self.cert.name
    }

    /// This device's certificate.
    pub fn cert(&self) -> &DeviceCert {
        &self.cert
    }

    /// The account secret; never send it anywhere but a pairing invitation.
    pub fn account_secret(&self) -> &AccountSecret {
        &self.secret
    }

    /// The key entries and snapshots are sealed with.
    pub fn data_key(&self) -> &DataKey {
        &self.data_key
    }

    /// The device's signing key (signs entries, snapshots, relay and peer auth).
    pub fn device_signing_key(&self) -> &SigningKey {
        self.device.signing_key()
    }

    /// A revocation of `device`, signed by the account key.
    pub fn revoke(&self, device: DeviceId, now_ms: u64) -> Revocation {
        Revocation::issue(&self.account_key, device, now_ms)
    }

    /// Checks that `cert` is a valid certificate of this same account.
    pub fn check_member(&self, cert: &DeviceCert) -> Result<(), IdentityError> {
        cert.verify()
            .map_err(|e| IdentityError::CertificateMismatch(e.to_string()))?;
        if cert.account != self.account_id() {
            return Err(IdentityError::CertificateMismatch(format!(
                "device {} belongs to account {}, not {}",
                cert.device,
                cert.account,
                self.account_id()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn material_round_trip_and_mismatch() {
        let id = DeviceIdentity::create_account("laptop", 5).unwrap();
        let m = id.to_material();
        let back = DeviceIdentity::from_material(&m).unwrap();
        assert_eq!(back.account_id(), id.account_id());
        assert_eq!(back.device_id(), id.device_id());
        let other = DeviceIdentity::create_account("x", 1).unwrap();
        let mut wrong = m.clone();
        wrong.device_certificate = other.to_material().device_certificate.clone();
        assert!(matches!(
            DeviceIdentity::from_material(&wrong),
            Err(IdentityError::CertificateMismatch(_))
        ));
        let mut none = m.clone();
        none.account_secret = None;
        assert!(matches!(
            DeviceIdentity::from_material(&none),
            Err(IdentityError::NoAccount)
        ));
        assert!(id.check_member(other.cert()).is_err());
        assert!(id.check_member(back.cert()).is_ok());
    }
}
