//! Signals between relay nodes that share one store: what one node committed
//! that subscribers on the other nodes must hear about (new entries, new
//! membership ops, revocations, accounts the operator deleted).
//!
//! Data flow: the writer thread of the node that committed a batch
//! [`ClusterBus::publish`]es one [`ClusterEvent`] per effective op AFTER the
//! commit (never inside it: a notification inside the write transaction
//! serialises every commit of the database on one lock). Every node
//! [`ClusterBus::listen`]s. Events carry ids and positions, and an entries
//! event also the entries themselves when they fit in one notification
//! ([`NOTIFY_PAYLOAD_BYTES_MAX`]): then the receiving node fans them out
//! without reading them back from the store, which at load is most of the
//! database's read work; bigger pushes (and events whose entries do not
//! check out) carry only their positions and the receiving node reads the
//! entries from the store (only when it has a subscriber for the account).
//! Notifications are a hint, never the only copy of the data: an event that
//! is lost only delays a subscriber, and a node that lost its
//! listener (and so may have missed events) gets [`ClusterEvent::Lost`] and
//! tells its subscribers `Lagged` so they pull.
//!
//! A single-node store (redb) has no bus ([`super::RelayStore::cluster_bus`]
//! is `None`).

use kith_protocol::{AccountId, DeviceId, SealedEntry};

/// Most events a listener hands to its relay without being read.
pub const LISTEN_QUEUE_EVENTS_MAX: usize = 4096;

/// Longest text of one event: PostgreSQL refuses NOTIFY payloads of 8000
/// bytes or more; an entries event whose entries would make it longer is
/// sent without them.
pub const NOTIFY_PAYLOAD_BYTES_MAX: usize = 7_999;

/// One change another node committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterEvent {
    /// `device` of `account` stored entries `from ..= to`.
    Entries {
        /// The account.
        account: AccountId,
        /// The authoring device.
        device: DeviceId,
        /// First new seq.
        from: u64,
        /// Last new seq.
        to: u64,
        /// The stored entries `from ..= to` in order, or empty: read them
        /// from the store (they did not fit in the notification).
        entries: Vec<SealedEntry>,
    },
    /// Membership ops at positions `from ..= to` were appended.
    Membership {
        /// The account.
        account: AccountId,
        /// First new position.
        from: u64,
        /// Last new position.
        to: u64,
    },
    /// `device` was revoked: close its connections.
    Revoked {
        /// The account.
        account: AccountId,
        /// The revoked device.
        device: DeviceId,
    },
    /// The operator deleted `account` (`kith-relay account delete`): close
    /// every connection of its devices.
    AccountDeleted {
        /// The deleted account.
        account: AccountId,
    },
    /// The listener was (or may have been) disconnected: events may be
    /// missing, every subscriber must pull.
    Lost,
}

/// How nodes of one relay tell each other about commits.
pub trait ClusterBus: Send + Sync + std::fmt::Debug + 'static {
    /// Queues `events` for the other nodes (never blocks; bounded: when the
    /// queue is full events are dropped and counted, see the module docs).
    fn publish(&self, events: Vec<ClusterEvent>);

    /// Starts listening (once per relay run): events of the OTHER nodes, and
    /// [`ClusterEvent::Lost`] whenever the listener had to reconnect.
    fn listen(&self) -> tokio::sync::mpsc::Receiver<ClusterEvent>;
}

/// The text form of an event (NOTIFY payloads are text, less than 8000
/// bytes): `<node id hex> E <account hex> <device hex> <from> <to>
/// [<entries>]` (`entries`: the postcard encoding of the entries in base64,
/// when the whole text stays within [`NOTIFY_PAYLOAD_BYTES_MAX`]), `... M
/// <account hex> <from> <to>`, `... R <account hex> <device hex>`, `... D
/// <account hex>`.
pub fn encode_event(node: u64, e: &ClusterEvent) -> Option<String> {
    let hex = |b: &[u8; 32]| data_encoding::HEXLOWER.encode(b);
    Some(match e {
        ClusterEvent::Entries {
            account,
            device,
            from,
            to,
            entries,
        } => {
            let mut text = format!(
                "{node:016x} E {} {} {from} {to}",
                hex(&account.0),
                hex(&device.0)
            );
            // Base64 makes 4 characters of 3 bytes. The ciphertext plus the
            // fixed-size ids, nonce and signature are a lower bound of the
            // encoding: skip it when the entries cannot fit anyway.
            let room = NOTIFY_PAYLOAD_BYTES_MAX.saturating_sub(text.len() + 1) / 4 * 3;
            let at_least: usize = entries.iter().map(|e| e.ciphertext.len() + 150).sum();
            if !entries.is_empty()
                && at_least <= room
                && let Ok(bytes) = postcard::to_allocvec(entries)
                && bytes.len() <= room
            {
                text.push(' ');
                text.push_str(&data_encoding::BASE64.encode(&bytes));
            }
            text
        }
        ClusterEvent::Membership { account, from, to } => {
            format!("{node:016x} M {} {from} {to}", hex(&account.0))
        }
        ClusterEvent::Revoked { account, device } => {
            format!("{node:016x} R {} {}", hex(&account.0), hex(&device.0))
        }
        ClusterEvent::AccountDeleted { account } => {
            format!("{node:016x} D {}", hex(&account.0))
        }
        ClusterEvent::Lost => return None,
    })
}

/// Parses [`encode_event`]'s form: the sending node and the event (`None`
/// for anything malformed, which a listener ignores).
pub fn decode_event(text: &str) -> Option<(u64, ClusterEvent)> {
    let id = |s: &str| -> Option<[u8; 32]> {
        data_encoding::HEXLOWER
            .decode(s.as_bytes())
            .ok()?
            .try_into()
            .ok()
    };
    let parts: Vec<&str> = text.split(' ').collect();
    let node = u64::from_str_radix(parts.first()?, 16).ok()?;
    let event = match parts.as_slice() {
        [_, "E", a, d, from, to, rest @ ..] if rest.len() <= 1 => {
            let (account, device) = (AccountId(id(a)?), DeviceId(id(d)?));
            let (from, to): (u64, u64) = (from.parse().ok()?, to.parse().ok()?);
            let entries = rest
                .first()
                .and_then(|b| carried_entries(b, account, device, from, to))
                .unwrap_or_default();
            ClusterEvent::Entries {
                account,
                device,
                from,
                to,
                entries,
            }
        }
        [_, "M", a, from, to] => ClusterEvent::Membership {
            account: AccountId(id(a)?),
            from: from.parse().ok()?,
            to: to.parse().ok()?,
        },
        [_, "R", a, d] => ClusterEvent::Revoked {
            account: AccountId(id(a)?),
            device: DeviceId(id(d)?),
        },
        [_, "D", a] => ClusterEvent::AccountDeleted {
            account: AccountId(id(a)?),
        },
        _ => return None,
    };
    Some((node, event))
}

/// The entries an entries event carries, if they are exactly `device`'s
/// entries `from ..= to` of `account` in order (anything else is ignored:
/// the receiving node then reads them from the store).
fn carried_entries(
    base64: &str,
    account: AccountId,
    device: DeviceId,
    from: u64,
    to: u64,
) -> Option<Vec<SealedEntry>> {
    let bytes = data_encoding::BASE64.decode(base64.as_bytes()).ok()?;
    let entries: Vec<SealedEntry> = postcard::from_bytes(&bytes).ok()?;
    let count = to.checked_sub(from)?.checked_add(1)?;
    let exact = entries.len() as u64 == count
        && entries
            .iter()
            .zip(from..=to)
            .all(|(e, seq)| e.seq == seq && e.account == account && e.device == device);
    exact.then_some(entries)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn event() -> impl Strategy<Value = ClusterEvent> {
        prop_oneof![
            (
                any::<[u8; 32]>(),
                any::<[u8; 32]>(),
                any::<u64>(),
                any::<u64>()
            )
                .prop_map(|(a, d, from, to)| ClusterEvent::Entries {
                    account: AccountId(a),
                    device: DeviceId(d),
                    from,
                    to,
                    entries: Vec::new(),
                }),
            carrying(),
            (any::<[u8; 32]>(), any::<u64>(), any::<u64>()).prop_map(|(a, from, to)| {
                ClusterEvent::Membership {
                    account: AccountId(a),
                    from,
                    to,
                }
            }),
            (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(a, d)| ClusterEvent::Revoked {
                account: AccountId(a),
                device: DeviceId(d)
            }),
            any::<[u8; 32]>().prop_map(|a| ClusterEvent::AccountDeleted {
                account: AccountId(a)
            }),
        ]
    }

    /// An entries event with its entries (0-12 of 0-1500 bytes each: some
    /// fit in a notification, some do not).
    fn carrying() -> impl Strategy<Value = ClusterEvent> {
        (
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            1u64..u64::MAX / 2,
            proptest::collection::vec(
                (
                    any::<u64>(),
                    any::<[u8; 24]>(),
                    proptest::collection::vec(any::<u8>(), 0..1500),
                    any::<[u8; 32]>(),
                ),
                1..12,
            ),
        )
            .prop_map(|(a, d, from, parts)| {
                let entries: Vec<SealedEntry> = parts
                    .into_iter()
                    .zip(from..)
                    .map(|((epoch, nonce, ciphertext, sig), seq)| SealedEntry {
                        account: AccountId(a),
                        device: DeviceId(d),
                        epoch,
                        seq,
                        nonce,
                        ciphertext,
                        signature: {
                            let mut b = [0u8; 64];
                            b[..32].copy_from_slice(&sig);
                            b[32..].copy_from_slice(&sig);
                            ed25519_dalek::Signature::from_bytes(&b)
                        },
                    })
                    .collect();
                ClusterEvent::Entries {
                    account: AccountId(a),
                    device: DeviceId(d),
                    from,
                    to: from + entries.len() as u64 - 1,
                    entries,
                }
            })
    }

    fn without_entries(e: &ClusterEvent) -> ClusterEvent {
        match e.clone() {
            ClusterEvent::Entries {
                account,
                device,
                from,
                to,
                ..
            } => ClusterEvent::Entries {
                account,
                device,
                from,
                to,
                entries: Vec::new(),
            },
            other => other,
        }
    }

    proptest! {
        #[test]
        fn events_round_trip_through_their_text(node in any::<u64>(), e in event()) {
            let text = encode_event(node, &e).unwrap();
            prop_assert!(text.len() <= NOTIFY_PAYLOAD_BYTES_MAX);
            let (from, back) = decode_event(&text).unwrap();
            prop_assert_eq!(from, node);
            // Entries ride along exactly when they fit; otherwise only the
            // positions do, and the receiver reads the entries.
            let fits = match &e {
                ClusterEvent::Entries { entries, .. } if !entries.is_empty() => {
                    let base = encode_event(node, &without_entries(&e)).unwrap();
                    let bytes = postcard::to_allocvec(entries).unwrap();
                    base.len() + 1 + bytes.len().div_ceil(3) * 4 <= NOTIFY_PAYLOAD_BYTES_MAX
                }
                _ => true,
            };
            if fits {
                prop_assert_eq!(back, e);
            } else {
                prop_assert_eq!(back, without_entries(&e));
            }
        }

        #[test]
        fn carried_entries_that_are_not_the_announced_ones_are_dropped(
            node in any::<u64>(),
            e in carrying(),
            which in 0usize..4,
        ) {
            let ClusterEvent::Entries { account, device, from, to, mut entries } = e else {
                unreachable!()
            };
            // A forged or corrupted notification: another account, another
            // device, a seq out of place, or positions that do not match.
            let (mut from, mut to) = (from, to);
            match which {
                0 => entries[0].account = AccountId([7; 32]),
                1 => entries[0].device = DeviceId([7; 32]),
                2 => entries[0].seq = entries[0].seq.wrapping_add(1_000),
                _ => {
                    from += 1;
                    to += 1;
                }
            }
            let forged = ClusterEvent::Entries { account, device, from, to, entries };
            let text = encode_event(node, &forged).unwrap();
            let (_, back) = decode_event(&text).unwrap();
            prop_assert_eq!(back, without_entries(&forged));
        }

        #[test]
        fn any_text_decodes_or_is_ignored_without_panicking(text in ".{0,300}") {
            let _ = decode_event(&text);
        }
    }
}
