//! Pairing: an existing device invites a new one, handing over the account
//! secret without anything readable ever sitting on the relay.
//!
//! The inviter draws a 256-bit secret and shows a [`Token`]:
//! `kith1-` + lower-case base32 of `postcard(TokenBody) || sha256(..)[..4]`,
//! where the body carries the format version, the secret, the expiry and the
//! mode (the relay address with its pinned key, or "peer" for a direct LAN
//! hand-over). The account secret (and the inviter's certificate) is sealed
//! with XChaCha20-Poly1305 under `HKDF(secret, "kith pairing key v1")`, with
//! `"kith-pairing-v1" || slot` as associated data, and left in the relay
//! mailbox at `slot = kith_protocol::msg::mailbox_slot(secret)` (a
//! domain-separated SHA-256), or held by the inviter's peer server.
//! The relay sees only the slot hash and the sealed blob, and deletes the
//! blob when it is taken or expires, so a token works once.
//!
//! The joining device parses the token (a typo fails the checksum), checks
//! the expiry and the relay, takes the blob, opens it, and certifies its own
//! new device key with the account key it now holds.

use kith_protocol::msg::MailboxSlot;
use kith_protocol::{DeviceCert, RelayAddress, RelayKey};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::device_identity::{DeviceIdentity, IdentityError};
use crate::identity::{AccountSecret, DataKey, DeviceKey};

/// Prefix of every token string (format 1).
pub const TOKEN_PREFIX: &str = "kith1-";
/// Default lifetime of an invitation: 10 minutes.
pub const INVITATION_TTL_MS: u64 = 10 * 60 * 1000;
const KEY_LABEL: &[u8] = b"kith pairing key v1";
const AD_CONTEXT: &[u8] = b"kith-pairing-v1";
const TOKEN_VERSION: u8 = 1;
const CHECKSUM_BYTES: usize = 4;
/// Longest token string accepted (a relay host name fits easily).
pub const TOKEN_CHARS_MAX: usize = 1024;

/// Where the new device fetches the invitation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PairingMode {
    /// Through this relay (address with the pinned key).
    Relay {
        /// The relay address in its string form, key included.
        address: String,
    },
    /// Directly from the inviting device's peer server.
    Peer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct TokenBody {
    version: u8,
    secret: [u8; 32],
    expires_at_ms: u64,
    mode: PairingMode,
}

/// A parsed pairing token. Its `Display` is the string the user types or scans.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    body: TokenBody,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("expires_at_ms", &self.body.expires_at_ms)
            .field("mode", &self.body.mode)
            .finish_non_exhaustive()
    }
}

/// Why pairing failed; each case says what the user should do.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    /// The token does not decode (typo, truncated, bad checksum); the detail says where.
    #[error("this is not a valid pairing token ({0}); check for typos or scan it again")]
    Malformed(String),
    /// The token's lifetime is over; make a new invitation.
    #[error("this pairing token expired {ago_s} s ago; create a new one with `kith pair`")]
    Expired {
        /// Seconds since it expired.
        ago_s: u64,
    },
    /// The invitation was taken already (tokens are one-time) or withdrawn.
    #[error(
        "this pairing token was already used (or withdrawn); create a new one with `kith pair`"
    )]
    AlreadyUsed,
    /// The token names another relay than the one given; use the token's.
    #[error("this pairing token is for relay {token_relay}, not {given}")]
    OtherRelay {
        /// The relay in the token.
        token_relay: String,
        /// The relay given.
        given: String,
    },
    /// A relay token used for direct pairing or the reverse.
    #[error("this pairing token is for {token_mode} pairing, not {wanted}")]
    WrongMode {
        /// The token's mode ("relay" or "peer").
        token_mode: &'static str,
        /// The mode asked for.
        wanted: &'static str,
    },
    /// The invitation blob does not open with the token: a wrong token, or a
    /// forged blob; do not retry with the same pair.
    #[error("the invitation does not open with this token (wrong token or forged invitation)")]
    Decrypt,
    /// The invitation opened but its identity (certificate, account) does not check.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

#[derive(Debug, Serialize, Deserialize)]
struct InvitationPayload {
    version: u8,
    account_secret: [u8; 32],
    inviter: DeviceCert,
    created_at_ms: u64,
}

fn slot_of(secret: &[u8; 32]) -> MailboxSlot {
    kith_protocol::msg::mailbox_slot(secret)
}

fn associated(slot: &MailboxSlot) -> Vec<u8> {
    let mut v = AD_CONTEXT.to_vec();
    v.extend_from_slice(slot);
    v
}

impl Token {
    /// Parses a token string (surrounding spaces and case are ignored).
    pub fn parse(s: &str) -> Result<Token, PairError> {
        let s = s.trim();
        if s.len() > TOKEN_CHARS_MAX {
            return Err(PairError::Malformed(format!(
                "{} characters is too long",
                s.len()
            )));
        }
        let lower = s.to_ascii_lowercase();
        let rest = lower
            .strip_prefix(TOKEN_PREFIX)
            .ok_or_else(|| PairError::Malformed(format!("it must start with '{TOKEN_PREFIX}'")))?;
        let bytes = data_encoding::BASE32_NOPAD
            .decode(rest.to_ascii_uppercase().as_bytes())
            .map_err(|_| PairError::Malformed("it contains invalid characters".into()))?;
        if bytes.len() <= CHECKSUM_BYTES {
            return Err(PairError::Malformed("it is too short".into()));
        }
        let (body, sum) = bytes.split_at(bytes.len() - CHECKSUM_BYTES);
        if Sha256::digest(body)[..CHECKSUM_BYTES] != *sum {
            return Err(PairError::Malformed("its checksum does not match".into()));
        }
        let body: TokenBody = postcard::from_bytes(body)
            .map_err(|e| PairError::Malformed(format!("it does not decode: {e}")))?;
        if body.version != TOKEN_VERSION {
            return Err(PairError::Malformed(format!(
                "token format {} is not supported",
                body.version
            )));
        }
        if let PairingMode::Relay { address } = &body.mode {
            address
                .parse::<RelayAddress>()
                .map_err(|e| PairError::Malformed(format!("bad relay address: {e}")))?;
        }
        Ok(Token { body })
    }

    /// The mailbox slot (domain-separated SHA-256 of the secret).
    pub fn slot(&self) -> MailboxSlot {
        slot_of(&self.body.secret)
    }

    /// When the token stops being accepted (ms since epoch).
    pub fn expires_at_ms(&self) -> u64 {
        self.body.expires_at_ms
    }

    /// Where the new device fetches the invitation.
    pub fn mode(&self) -> &PairingMode {
        &self.body.mode
    }

    /// The relay named by a relay-mode token.
    pub fn relay(&self) -> Result<RelayAddress, PairError> {
        match &self.body.mode {
            PairingMode::Relay { address } => address
                .parse()
                .map_err(|e| PairError::Malformed(format!("bad relay address: {e}"))),
            PairingMode::Peer => Err(PairError::WrongMode {
                token_mode: "peer",
                wanted: "relay",
            }),
        }
    }

    /// Checks the mode and, if the user named a relay too, that it is the
    /// token's relay (same pinned key).
    pub fn check_relay(&self, given: Option<&RelayKey>) -> Result<RelayAddress, PairError> {
        let addr = self.relay()?;
        if let Some(k) = given
            && *k != addr.key
        {
            return Err(PairError::OtherRelay {
                token_relay: addr.to_string(),
                given: k.to_string(),
            });
        }
        Ok(addr)
    }

    /// Checks a peer-mode token.
    pub fn check_peer(&self) -> Result<(), PairError> {
        match self.body.mode {
            PairingMode::Peer => Ok(()),
            PairingMode::Relay { .. } => Err(PairError::WrongMode {
                token_mode: "relay",
                wanted: "peer-to-peer",
            }),
        }
    }

    /// Refuses an expired token before anything is sent.
    pub fn check_fresh(&self, now_ms: u64) -> Result<(), PairError> {
        if now_ms >= self.body.expires_at_ms {
            return Err(PairError::Expired {
                ago_s: (now_ms - self.body.expires_at_ms) / 1000,
            });
        }
        Ok(())
    }

    /// Opens the invitation blob: the account secret and the inviter's certificate.
    pub fn open(&self, blob: &[u8]) -> Result<(AccountSecret, DeviceCert), PairError> {
        let key = DataKey::derive_from(&self.body.secret, KEY_LABEL);
        let plain = key
            .open(blob, &associated(&self.slot()))
            .map_err(|_| PairError::Decrypt)?;
        let p: InvitationPayload = postcard::from_bytes(&plain).map_err(|_| PairError::Decrypt)?;
        let secret = AccountSecret::from_bytes(p.account_secret);
        if p.inviter.account.as_bytes() != secret.account_id().as_bytes()
            || p.inviter.verify().is_err()
        {
            return Err(PairError::Decrypt);
        }
        Ok((secret, p.inviter))
    }

    /// Redeems an opened invitation: the new device's identity, with its own
    /// key certified by the account key it just received.
    pub fn join(
        &self,
        blob: &[u8],
        name: &str,
        now_ms: u64,
    ) -> Result<(DeviceIdentity, DeviceCert), PairError> {
        let (secret, inviter) = self.open(blob)?;
        let id = DeviceIdentity::new(secret, DeviceKey::generate(), name, now_ms)?;
        Ok((id, inviter))
    }
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Ok(mut b) = postcard::to_allocvec(&self.body) else {
            return Err(std::fmt::Error);
        };
        let sum = Sha256::digest(&b);
        b.extend_from_slice(&sum[..CHECKSUM_BYTES]);
        write!(
            f,
            "{TOKEN_PREFIX}{}",
            data_encoding::BASE32_NOPAD.encode(&b).to_ascii_lowercase()
        )
    }
}

/// A freshly made invitation: show `token`, store `blob` at `slot`.
#[derive(Debug, Clone)]
pub struct Invitation {
    /// What the user types or scans on the new device; secret.
    pub token: Token,
    /// The mailbox slot the blob is stored at.
    pub slot: MailboxSlot,
    /// The sealed invitation (account secret and inviter certificate).
    pub blob: Vec<u8>,
    /// When it stops being accepted (ms since epoch).
    pub expires_at_ms: u64,
}

impl Invitation {
    /// Makes a one-time invitation into `inviter`'s account.
    pub fn create(
        inviter: &DeviceIdentity,
        mode: PairingMode,
        ttl_ms: u64,
        now_ms: u64,
    ) -> Result<Invitation, PairError> {
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let body = TokenBody {
            version: TOKEN_VERSION,
            secret,
            expires_at_ms: now_ms + ttl_ms,
            mode,
        };
        let slot = slot_of(&secret);
        let payload = InvitationPayload {
            version: 1,
            account_secret: *inviter.account_secret().as_bytes(),
            inviter: inviter.cert().clone(),
            created_at_ms: now_ms,
        };
        let plain =
            postcard::to_allocvec(&payload).map_err(|e| PairError::Malformed(e.to_string()))?;
        let blob = DataKey::derive_from(&secret, KEY_LABEL)
            .seal(&plain, &associated(&slot))
            .map_err(|_| PairError::Decrypt)?;
        Ok(Invitation {
            expires_at_ms: body.expires_at_ms,
            token: Token { body },
            slot,
            blob,
        })
    }

    /// Lifetime left, in whole seconds (for the relay's mailbox TTL).
    pub fn ttl_s(&self, now_ms: u64) -> u32 {
        u32::try_from(self.expires_at_ms.saturating_sub(now_ms).div_ceil(1000)).unwrap_or(u32::MAX)
    }
}

/// The inviter's side of direct (peer) pairing: one-time invitations held in
/// memory by the peer server until taken or expired.
#[derive(Debug, Default)]
pub struct PairingHost {
    open: Vec<Invitation>,
}

impl PairingHost {
    /// Holds `inv` until taken or expired.
    pub fn offer(&mut self, inv: Invitation) {
        self.open.push(inv);
    }

    /// Takes the blob at `slot`, once. Expired or unknown slots are refused alike.
    pub fn take(&mut self, slot: &MailboxSlot, now_ms: u64) -> Option<Vec<u8>> {
        self.open.retain(|i| i.expires_at_ms > now_ms);
        let pos = self.open.iter().position(|i| i.slot == *slot)?;
        Some(self.open.remove(pos).blob)
    }

    /// Whether no invitation is held (expired ones count until the next `take`).
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn relay_addr() -> String {
        let k = RelayKey::from(kith_protocol::SigningKey::from_bytes(&[3; 32]).verifying_key());
        format!("kith://{k}@127.0.0.1:7447")
    }

    #[test]
    fn token_round_trip_and_redeem() {
        let a = DeviceIdentity::create_account("laptop", 1).unwrap();
        let inv = Invitation::create(
            &a,
            PairingMode::Relay {
                address: relay_addr(),
            },
            INVITATION_TTL_MS,
            1_000,
        )
        .unwrap();
        let text = inv.token.to_string();
        assert!(text.starts_with(TOKEN_PREFIX));
        let t = Token::parse(&format!("  {}  ", text.to_uppercase())).unwrap();
        assert_eq!(t.slot(), inv.slot);
        t.check_fresh(2_000).unwrap();
        assert!(matches!(
            t.check_fresh(1_000 + INVITATION_TTL_MS),
            Err(PairError::Expired { .. })
        ));
        let addr = t.check_relay(None).unwrap();
        assert!(matches!(
            t.check_relay(Some(&RelayKey::from(
                kith_protocol::SigningKey::from_bytes(&[4; 32]).verifying_key()
            ))),
            Err(PairError::OtherRelay { .. })
        ));
        assert_eq!(addr.port, 7447);
        assert!(matches!(t.check_peer(), Err(PairError::WrongMode { .. })));
        let (b, inviter) = t.join(&inv.blob, "phone", 5).unwrap();
        assert_eq!(b.account_id(), a.account_id());
        assert_ne!(b.device_id(), a.device_id());
        assert_eq!(inviter.device, a.device_id());
        a.check_member(b.cert()).unwrap();
        // Another token cannot open this blob.
        let other = Invitation::create(&a, PairingMode::Peer, 10, 0).unwrap();
        assert!(matches!(
            other.token.open(&inv.blob),
            Err(PairError::Decrypt)
        ));
    }

    #[test]
    fn typos_fail_the_checksum() {
        let a = DeviceIdentity::create_account("x", 1).unwrap();
        let inv = Invitation::create(&a, PairingMode::Peer, 1000, 0).unwrap();
        let text = inv.token.to_string();
        let mut chars: Vec<char> = text.chars().collect();
        let i = chars.len() - 3;
        chars[i] = if chars[i] == 'a' { 'b' } else { 'a' };
        let typo: String = chars.into_iter().collect();
        assert!(matches!(Token::parse(&typo), Err(PairError::Malformed(_))));
        assert!(matches!(
            Token::parse("hello"),
            Err(PairError::Malformed(_))
        ));
        assert!(matches!(
            Token::parse("kith1-!!"),
            Err(PairError::Malformed(_))
        ));
    }

    #[test]
    fn pairing_host_is_one_time_and_expiring() {
        let a = DeviceIdentity::create_account("x", 1).unwrap();
        let inv = Invitation::create(&a, PairingMode::Peer, 1000, 0).unwrap();
        let slot = inv.slot;
        let mut h = PairingHost::default();
        h.offer(inv.clone());
        assert!(h.take(&slot, 10).is_some());
        assert!(h.take(&slot, 10).is_none());
        h.offer(inv);
        assert!(h.take(&slot, 5000).is_none());
    }

    /// `kith1-` + base32 of `bytes` and their valid checksum: what passes
    /// the outer layers, so the checks behind them are reached.
    fn armoured(bytes: &[u8]) -> String {
        let mut b = bytes.to_vec();
        b.extend_from_slice(&Sha256::digest(bytes)[..CHECKSUM_BYTES]);
        format!(
            "{TOKEN_PREFIX}{}",
            data_encoding::BASE32_NOPAD.encode(&b).to_ascii_lowercase()
        )
    }

    fn mode() -> impl Strategy<Value = PairingMode> {
        prop_oneof![
            Just(PairingMode::Peer),
            Just(PairingMode::Relay {
                address: relay_addr()
            }),
            "\\PC{0,80}".prop_map(|address| PairingMode::Relay { address }),
        ]
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,200}") {
            let _ = Token::parse(&s);
            let _ = Token::parse(&format!("kith1-{s}"));
        }

        /// Well-armoured bodies with any version, secret, expiry and mode
        /// (a valid relay address or any string): the version and address
        /// checks decide, and what parses keeps every field.
        #[test]
        fn armoured_bodies_reach_the_version_and_address_checks(
            version in prop_oneof![Just(TOKEN_VERSION), any::<u8>()],
            secret in any::<[u8; 32]>(),
            expires_at_ms in any::<u64>(),
            mode in mode(),
        ) {
            let body = TokenBody { version, secret, expires_at_ms, mode: mode.clone() };
            let text = armoured(&postcard::to_allocvec(&body).unwrap());
            let address_ok = match &mode {
                PairingMode::Peer => true,
                PairingMode::Relay { address } => address.parse::<RelayAddress>().is_ok(),
            };
            match Token::parse(&text) {
                Ok(t) => {
                    prop_assert!(version == TOKEN_VERSION && address_ok);
                    prop_assert_eq!(&t.body, &body);
                    prop_assert_eq!(t.to_string(), text);
                }
                Err(PairError::Malformed(m)) if version != TOKEN_VERSION => {
                    prop_assert!(m.contains("is not supported"), "{}", m);
                }
                Err(PairError::Malformed(m)) => {
                    prop_assert!(!address_ok && m.contains("bad relay address"), "{}", m);
                }
                Err(e) => prop_assert!(false, "unexpected error {}", e),
            }
        }

        /// A valid token's body with bytes changed (and the checksum fixed up):
        /// postcard decoding is reached; the result is a clear error or a
        /// token whose fields re-encode to exactly those bytes.
        #[test]
        fn mutated_bodies_reach_decoding(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
            cut in proptest::option::of(any::<usize>()),
        ) {
            let body = TokenBody {
                version: TOKEN_VERSION,
                secret: [7; 32],
                expires_at_ms: 1_700_000_000_000,
                mode: PairingMode::Relay { address: relay_addr() },
            };
            let mut bytes = postcard::to_allocvec(&body).unwrap();
            for (i, x) in flips {
                let n = bytes.len();
                bytes[i % n] ^= x;
            }
            if let Some(c) = cut {
                bytes.truncate(c % bytes.len() + 1);
            }
            match Token::parse(&armoured(&bytes)) {
                Ok(t) => prop_assert_eq!(postcard::to_allocvec(&t.body).unwrap(), bytes),
                Err(PairError::Malformed(m)) => prop_assert!(
                    m.contains("does not decode")
                        || m.contains("is not supported")
                        || m.contains("bad relay address"),
                    "{}",
                    m
                ),
                Err(e) => prop_assert!(false, "unexpected error {}", e),
            }
        }
    }
}
