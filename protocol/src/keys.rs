//! Public-key identifiers used on the wire: the account id, device id and relay
//! key are all raw ed25519 public keys (32 bytes). Their text form is RFC 4648
//! base32, lower case, without padding (52 characters); hex (64 characters) is
//! also accepted on input.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

/// Error for a key that is not a valid ed25519 public key or text form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text is neither 52 base32 characters nor 64 hex characters.
    #[error("invalid key text '{given}': expected 52 base32 or 64 hex characters")]
    BadText {
        /// The rejected input (public keys are not secret).
        given: String,
    },
    /// The 32 bytes are not a valid ed25519 point.
    #[error("the 32 bytes are not a valid ed25519 public key")]
    NotAPoint,
}

/// Decodes a 32-byte key from base32 (any case, no padding) or hex.
pub fn decode_key_text(s: &str) -> Result<[u8; 32], KeyError> {
    let bad = || KeyError::BadText {
        given: s.chars().take(80).collect(),
    };
    let s = s.trim();
    let bytes = match s.len() {
        52 => crate::text::base32_decode(s).ok_or_else(bad)?,
        64 => crate::text::hex_decode(s).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| bad())
}

/// Encodes 32 bytes as lower-case unpadded base32 (52 characters).
pub fn encode_key_text(bytes: &[u8; 32]) -> String {
    crate::text::base32_lower(bytes)
}

macro_rules! key_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The raw 32 bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The ed25519 verifying key; fails if the bytes are not a curve point.
            pub fn verifying_key(&self) -> Result<VerifyingKey, KeyError> {
                VerifyingKey::from_bytes(&self.0).map_err(|_| KeyError::NotAPoint)
            }
        }

        impl From<VerifyingKey> for $name {
            fn from(k: VerifyingKey) -> Self {
                $name(k.to_bytes())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&encode_key_text(&self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), &encode_key_text(&self.0)[..12])
            }
        }

        impl FromStr for $name {
            type Err = KeyError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let k = $name(decode_key_text(s)?);
                k.verifying_key()?;
                Ok(k)
            }
        }
    };
}

key_type!(
    /// An account: the public half of the account signing key.
    AccountId
);
key_type!(
    /// A device: the public half of that device's own signing key.
    DeviceId
);
key_type!(
    /// A relay: the public half of the relay's identity key, pinned by clients.
    RelayKey
);

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    #[test]
    fn text_round_trip_base32_and_hex() {
        let k = SigningKey::from_bytes(&[7; 32]).verifying_key();
        let id = AccountId::from(k);
        let text = id.to_string();
        assert_eq!(text.len(), 52);
        assert_eq!(text.parse::<AccountId>().unwrap(), id);
        assert_eq!(text.to_uppercase().parse::<AccountId>().unwrap(), id);
        let hex = crate::text::hex_lower(&id.0);
        assert_eq!(hex.parse::<AccountId>().unwrap(), id);
    }

    #[test]
    fn bad_text_is_refused() {
        assert!(matches!(
            "abc".parse::<DeviceId>(),
            Err(KeyError::BadText { .. })
        ));
        assert!(matches!(
            "!".repeat(52).parse::<DeviceId>(),
            Err(KeyError::BadText { .. })
        ));
    }
}
