//! Pairing: an existing device invites a new one. No secret of the account
//! changes hands: the joiner posts its public card, the inviter's user
//! compares a short code both screens show and approves, and only then does
//! the inviter add the card to the membership log (an `Add` op sealing the
//! current epoch key to the joiner's X25519 key).
//!
//! The inviter draws a 256-bit secret and shows a [`Token`]:
//! `kith1-` + lower-case base32 of `postcard(TokenBody) || sha256(..)[..4]`,
//! where the body carries the token format (2), the secret, the expiry and
//! the mode (the relay address with its pinned key, or "peer"). Two mailbox
//! slots derive from the secret (`kith_protocol::msg::mailbox_slot` of
//! `HKDF(secret, "kith pairing join/reply slot v2")`): the joiner leaves its
//! sealed [`JoinRequest`] (card + name) at the join slot; the inviter leaves
//! its sealed [`Reply`] (the account id and its own name, or a refusal) at
//! the reply slot. Both blobs are XChaCha20-Poly1305 under
//! `HKDF(secret, "kith pairing key v2")` with `"kith-pairing-v2" || slot` as
//! associated data, so the relay sees only slot hashes and sealed bytes.
//!
//! The short code ([`short_code`]: 6 digits of `HKDF(secret, joiner device
//! id || joiner X25519 key)`) is what both screens show. A photo of the
//! token lets its holder post a request first, but the code of that request
//! is not the one the real joiner shows, and the real joiner's post finds
//! the slot taken ([`PairError::RedeemedByAnother`]): both sides see why and
//! nothing is approved.

use hkdf::Hkdf;
use kith_protocol::msg::MailboxSlot;
use kith_protocol::{AccountId, DeviceId, MemberKeys, RelayAddress, RelayKey};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::device_identity::{DeviceIdentity, IdentityError};
use crate::identity::{DataKey, KeyMaterial};

/// Prefix of every token string.
pub const TOKEN_PREFIX: &str = "kith1-";
/// Default lifetime of an invitation: 10 minutes, which is also the most a
/// relay keeps a mailbox blob (its `mailbox_ttl_s_max`, 600 s): a longer
/// invitation would outlive its blobs, so [`Invitation::create`] caps it.
pub const INVITATION_TTL_MS: u64 = 10 * 60 * 1000;
/// Longest invitation lifetime (the relay's mailbox TTL cap, 600 s).
pub const INVITATION_TTL_MS_MAX: u64 = 10 * 60 * 1000;
const KEY_LABEL: &[u8] = b"kith pairing key v2";
const JOIN_SLOT_LABEL: &[u8] = b"kith pairing join slot v2";
const REPLY_SLOT_LABEL: &[u8] = b"kith pairing reply slot v2";
const CODE_LABEL: &[u8] = b"kith pairing code v2";
const AD_CONTEXT: &[u8] = b"kith-pairing-v2";
/// Token format 1 carried the account secret; it is refused by name.
const TOKEN_VERSION: u8 = 2;
/// Largest sealed join request or reply (bytes); the relay takes blobs this
/// small before authentication.
pub const PAIRING_BLOB_BYTES_MAX: usize = 1024;
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
    /// A blob does not open with the token: a wrong token, or a forged
    /// blob; do not retry with the same pair.
    #[error("the pairing message does not open with this token (wrong token or forged)")]
    Decrypt,
    /// Someone else posted a join request with this token first (a photo of
    /// it?). Do not approve anything on the inviting device; make a new
    /// invitation.
    #[error(
        "someone else redeemed this invitation first; do not approve anything on the inviting device, and make a new invitation"
    )]
    RedeemedByAnother,
    /// The inviting device refused this device (its user saw another code,
    /// or another device's request).
    #[error("the inviting device refused: {reason}")]
    Refused {
        /// What the inviter said.
        reason: String,
    },
    /// The code typed does not match the joining device's code.
    #[error(
        "the code {given} does not match the joining device's code: another device may have used the token; nothing was approved"
    )]
    CodeMismatch {
        /// The code given.
        given: String,
    },
    /// This device already belongs to an account.
    #[error("this device already belongs to an account")]
    AlreadyJoined,
    /// The identity could not be made.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

fn derive(secret: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let hk = Hkdf::<Sha256>::new(Some(AD_CONTEXT), secret);
    let mut out = [0u8; 32];
    // 32 bytes is always a valid HKDF-SHA256 output length.
    let _always_ok = hk.expand(label, &mut out);
    out
}

fn join_slot_of(secret: &[u8; 32]) -> MailboxSlot {
    kith_protocol::msg::mailbox_slot(&derive(secret, JOIN_SLOT_LABEL))
}

fn reply_slot_of(secret: &[u8; 32]) -> MailboxSlot {
    kith_protocol::msg::mailbox_slot(&derive(secret, REPLY_SLOT_LABEL))
}

fn seal(secret: &[u8; 32], slot: &MailboxSlot, plain: &[u8]) -> Result<Vec<u8>, PairError> {
    DataKey::from_bytes(derive(secret, KEY_LABEL))
        .seal(plain, &associated(slot))
        .map_err(|_| PairError::Decrypt)
}

fn open(secret: &[u8; 32], slot: &MailboxSlot, blob: &[u8]) -> Result<Vec<u8>, PairError> {
    if blob.len() > PAIRING_BLOB_BYTES_MAX {
        return Err(PairError::Decrypt);
    }
    DataKey::from_bytes(derive(secret, KEY_LABEL))
        .open(blob, &associated(slot))
        .map_err(|_| PairError::Decrypt)
}

/// The 6-digit code both screens show for a join request: derived from the
/// token secret and the joiner's public keys, so a request posted by anyone
/// else has another code.
pub fn short_code(secret: &[u8; 32], joiner: &MemberKeys) -> String {
    let mut ikm = Vec::with_capacity(64);
    ikm.extend_from_slice(joiner.device.as_bytes());
    ikm.extend_from_slice(&joiner.seal_key);
    let hk = Hkdf::<Sha256>::new(Some(secret), &ikm);
    let mut out = [0u8; 8];
    let _always_ok = hk.expand(CODE_LABEL, &mut out);
    format!("{:06}", u64::from_be_bytes(out) % 1_000_000)
}

/// What the joining device posts: its card and its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// Its public keys (what the `Add` op names).
    pub card: MemberKeys,
    /// Its human name.
    pub name: String,
}

/// What the inviting device answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Added: the account to act for, and who added it.
    Welcome {
        /// The account id.
        account: AccountId,
        /// The inviting device.
        inviter: DeviceId,
        /// Its name.
        inviter_name: String,
    },
    /// Not added, and why.
    Refused {
        /// What the inviter's user or device said.
        reason: String,
    },
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
        let bytes = kith_protocol::text::base32_decode(rest)
            .ok_or_else(|| PairError::Malformed("it contains invalid characters".into()))?;
        if bytes.len() <= CHECKSUM_BYTES {
            return Err(PairError::Malformed("it is too short".into()));
        }
        let (body, sum) = bytes.split_at(bytes.len() - CHECKSUM_BYTES);
        if Sha256::digest(body)[..CHECKSUM_BYTES] != *sum {
            return Err(PairError::Malformed("its checksum does not match".into()));
        }
        let (body, rest): (TokenBody, &[u8]) = postcard::take_from_bytes(body)
            .map_err(|e| PairError::Malformed(format!("it does not decode: {e}")))?;
        if !rest.is_empty() {
            // A body with trailing bytes is not the one that was checksummed
            // as a token: refuse rather than misread.
            return Err(PairError::Malformed(format!(
                "it does not decode: {} trailing bytes",
                rest.len()
            )));
        }
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

    /// Where the joiner posts its request.
    pub fn join_slot(&self) -> MailboxSlot {
        join_slot_of(&self.body.secret)
    }

    /// Where the inviter posts its reply.
    pub fn reply_slot(&self) -> MailboxSlot {
        reply_slot_of(&self.body.secret)
    }

    /// The joining device's sealed request (for the join slot) and the code
    /// its screen shows. `keys` must not belong to an account yet.
    pub fn request(&self, keys: &KeyMaterial) -> Result<(Vec<u8>, String), PairError> {
        if keys.account.is_some() {
            return Err(PairError::AlreadyJoined);
        }
        let card = DeviceIdentity::with_account(keys, AccountId([0; 32])).card();
        let code = short_code(&self.body.secret, &card);
        let req = JoinRequest {
            card,
            name: keys.device_name.clone(),
        };
        let plain = postcard::to_allocvec(&req).map_err(|e| PairError::Malformed(e.to_string()))?;
        Ok((seal(&self.body.secret, &self.join_slot(), &plain)?, code))
    }

    /// Opens the inviter's reply.
    pub fn open_reply(&self, blob: &[u8]) -> Result<Reply, PairError> {
        let plain = open(&self.body.secret, &self.reply_slot(), blob)?;
        postcard::from_bytes(&plain).map_err(|_| PairError::Decrypt)
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
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Ok(mut b) = postcard::to_allocvec(&self.body) else {
            return Err(std::fmt::Error);
        };
        let sum = Sha256::digest(&b);
        b.extend_from_slice(&sum[..CHECKSUM_BYTES]);
        write!(f, "{TOKEN_PREFIX}{}", kith_protocol::text::base32_lower(&b))
    }
}

/// A freshly made invitation (the inviting side): show `token`, wait for a
/// request at the join slot, show its code, and on approval add the joiner
/// and post a reply.
#[derive(Debug, Clone)]
pub struct Invitation {
    /// What the user types or scans on the new device; secret.
    pub token: Token,
    /// When it stops being accepted (ms since epoch).
    pub expires_at_ms: u64,
}

/// A join request as the inviter sees it, with the code to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// The request.
    pub request: JoinRequest,
    /// The code the joining device should show.
    pub code: String,
}

impl Invitation {
    /// Makes a one-time invitation lasting `ttl_ms` (capped at
    /// [`INVITATION_TTL_MS_MAX`], the relay's mailbox limit).
    pub fn create(mode: PairingMode, ttl_ms: u64, now_ms: u64) -> Invitation {
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let body = TokenBody {
            version: TOKEN_VERSION,
            secret,
            expires_at_ms: now_ms + ttl_ms.min(INVITATION_TTL_MS_MAX),
            mode,
        };
        Invitation {
            expires_at_ms: body.expires_at_ms,
            token: Token { body },
        }
    }

    /// Opens a join request and computes its code.
    pub fn open_request(&self, blob: &[u8]) -> Result<Incoming, PairError> {
        let secret = &self.token.body.secret;
        let plain = open(secret, &self.token.join_slot(), blob)?;
        let request: JoinRequest = postcard::from_bytes(&plain).map_err(|_| PairError::Decrypt)?;
        let code = short_code(secret, &request.card);
        Ok(Incoming { request, code })
    }

    /// Checks a code the user typed against the request's (spaces ignored).
    pub fn check_code(incoming: &Incoming, given: &str) -> Result<(), PairError> {
        let g: String = given.chars().filter(|c| !c.is_whitespace()).collect();
        if g == incoming.code {
            Ok(())
        } else {
            Err(PairError::CodeMismatch { given: g })
        }
    }

    /// The sealed reply for the reply slot.
    pub fn reply(&self, reply: &Reply) -> Result<Vec<u8>, PairError> {
        let plain =
            postcard::to_allocvec(reply).map_err(|e| PairError::Malformed(e.to_string()))?;
        seal(&self.token.body.secret, &self.token.reply_slot(), &plain)
    }

    /// Lifetime left, in whole seconds (for the relay's mailbox TTL).
    pub fn ttl_s(&self, now_ms: u64) -> u32 {
        u32::try_from(self.expires_at_ms.saturating_sub(now_ms).div_ceil(1000)).unwrap_or(u32::MAX)
    }
}

/// The inviter's side of direct (peer) pairing: a small in-memory mailbox
/// the peer server serves, holding the join and reply slots of the
/// invitations it offers until they expire.
#[derive(Debug, Default)]
pub struct PairingHost {
    open: Vec<Invitation>,
    blobs: Vec<(MailboxSlot, Vec<u8>)>,
    /// Slots that held a blob once: never filled again (a second joiner is
    /// told the token was redeemed).
    used: Vec<MailboxSlot>,
}

impl PairingHost {
    /// Serves the slots of `inv` until it expires.
    pub fn offer(&mut self, inv: Invitation) {
        self.open.push(inv);
    }

    fn expire(&mut self, now_ms: u64) {
        self.open.retain(|i| i.expires_at_ms > now_ms);
        let live: Vec<MailboxSlot> = self
            .open
            .iter()
            .flat_map(|i| [i.token.join_slot(), i.token.reply_slot()])
            .collect();
        self.blobs.retain(|(s, _)| live.contains(s));
        self.used.retain(|s| live.contains(s));
    }

    /// Stores `blob` at `slot` once (a slot of a live invitation only);
    /// false if the slot is unknown, taken, or the blob too large.
    pub fn put(&mut self, slot: MailboxSlot, blob: Vec<u8>, now_ms: u64) -> bool {
        self.expire(now_ms);
        let known = self
            .open
            .iter()
            .any(|i| i.token.join_slot() == slot || i.token.reply_slot() == slot);
        if !known || blob.len() > PAIRING_BLOB_BYTES_MAX || self.used.contains(&slot) {
            return false;
        }
        self.used.push(slot);
        self.blobs.push((slot, blob));
        true
    }

    /// Takes the blob at `slot`, once.
    pub fn take(&mut self, slot: &MailboxSlot, now_ms: u64) -> Option<Vec<u8>> {
        self.expire(now_ms);
        let pos = self.blobs.iter().position(|(s, _)| s == slot)?;
        Some(self.blobs.remove(pos).1)
    }

    /// Whether no invitation is held (expired ones count until the next call).
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
    fn token_round_trip_request_code_and_reply() {
        let inv = Invitation::create(
            PairingMode::Relay {
                address: relay_addr(),
            },
            INVITATION_TTL_MS,
            1_000,
        );
        let text = inv.token.to_string();
        assert!(text.starts_with(TOKEN_PREFIX));
        let t = Token::parse(&format!("  {}  ", text.to_uppercase())).unwrap();
        assert_eq!(t.join_slot(), inv.token.join_slot());
        assert_ne!(t.join_slot(), t.reply_slot());
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
        // The joiner's request opens on the inviter with the same code.
        let keys = KeyMaterial::generate("phone");
        let (blob, code) = t.request(&keys).unwrap();
        assert!(blob.len() <= PAIRING_BLOB_BYTES_MAX);
        let incoming = inv.open_request(&blob).unwrap();
        assert_eq!(incoming.code, code);
        assert_eq!(incoming.request.name, "phone");
        Invitation::check_code(&incoming, &format!(" {} ", code)).unwrap();
        // A photo of the token: another device's request has another code.
        let thief = KeyMaterial::generate("thief");
        let (_, thief_code) = t.request(&thief).unwrap();
        assert_ne!(thief_code, code);
        assert!(matches!(
            Invitation::check_code(&incoming, &thief_code),
            Err(PairError::CodeMismatch { .. })
        ));
        let welcome = Reply::Welcome {
            account: AccountId([5; 32]),
            inviter: DeviceId([6; 32]),
            inviter_name: "laptop".into(),
        };
        let r = inv.reply(&welcome).unwrap();
        assert_eq!(t.open_reply(&r).unwrap(), welcome);
        // Another token opens neither.
        let other = Invitation::create(PairingMode::Peer, 10, 0);
        assert!(matches!(other.open_request(&blob), Err(PairError::Decrypt)));
        assert!(matches!(
            other.token.open_reply(&r),
            Err(PairError::Decrypt)
        ));
        // A device of an account cannot ask to join another.
        let mut member = KeyMaterial::generate("m");
        member.account = Some([1; 32]);
        assert!(matches!(t.request(&member), Err(PairError::AlreadyJoined)));
    }

    /// Token format 1 (it carried the account secret) is refused by name.
    #[test]
    fn token_format_1_is_refused() {
        let body = TokenBody {
            version: 1,
            secret: [7; 32],
            expires_at_ms: 1,
            mode: PairingMode::Peer,
        };
        let text = armoured(&postcard::to_allocvec(&body).unwrap());
        match Token::parse(&text) {
            Err(PairError::Malformed(m)) => assert!(m.contains("token format 1"), "{m}"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn typos_fail_the_checksum() {
        let inv = Invitation::create(PairingMode::Peer, 1000, 0);
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
    fn pairing_host_slots_are_one_time_and_expiring() {
        let inv = Invitation::create(PairingMode::Peer, 1000, 0);
        let (join, reply) = (inv.token.join_slot(), inv.token.reply_slot());
        let mut h = PairingHost::default();
        assert!(!h.put(join, vec![1], 10), "no invitation offered yet");
        h.offer(inv.clone());
        assert!(h.put(join, vec![1], 10));
        assert!(!h.put(join, vec![2], 10), "a slot is taken once");
        assert!(!h.put([9; 32], vec![2], 10), "unknown slots are refused");
        assert!(!h.put(reply, vec![0; PAIRING_BLOB_BYTES_MAX + 1], 10));
        assert_eq!(h.take(&join, 10), Some(vec![1]));
        assert!(h.take(&join, 10).is_none());
        assert!(!h.put(join, vec![2], 10), "taken once stays used");
        assert!(h.put(reply, vec![3], 10));
        assert!(
            h.take(&reply, 5000).is_none(),
            "expired with its invitation"
        );
    }

    /// `kith1-` + base32 of `bytes` and their valid checksum: what passes
    /// the outer layers, so the checks behind them are reached.
    fn armoured(bytes: &[u8]) -> String {
        let mut b = bytes.to_vec();
        b.extend_from_slice(&Sha256::digest(bytes)[..CHECKSUM_BYTES]);
        format!("{TOKEN_PREFIX}{}", kith_protocol::text::base32_lower(&b))
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
