//! Signals between relay nodes that share one store: what one node committed
//! that subscribers on the other nodes must hear about (new entries, new
//! membership ops, revocations, accounts the operator deleted).
//!
//! Data flow: the writer thread of the node that committed a batch
//! [`ClusterBus::publish`]es one [`ClusterEvent`] per effective op AFTER the
//! commit (never inside it: a notification inside the write transaction
//! serialises every commit of the database on one lock). Every node
//! [`ClusterBus::listen`]s; events carry only ids and positions, so the
//! receiving node reads the data itself from the store (only when it has a
//! subscriber for the account). Notifications are a hint, never the data: an
//! event that is lost only delays a subscriber, and a node that lost its
//! listener (and so may have missed events) gets [`ClusterEvent::Lost`] and
//! tells its subscribers `Lagged` so they pull.
//!
//! A single-node store (redb) has no bus ([`super::RelayStore::cluster_bus`]
//! is `None`).

use kith_protocol::{AccountId, DeviceId};

/// Most events a listener hands to its relay without being read.
pub const LISTEN_QUEUE_EVENTS_MAX: usize = 4096;

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

/// The text form of an event (NOTIFY payloads are text, at most 8000 bytes):
/// `<node id hex> E <account hex> <device hex> <from> <to>`, `... M <account
/// hex> <from> <to>`, `... R <account hex> <device hex>`, `... D <account hex>`.
pub fn encode_event(node: u64, e: &ClusterEvent) -> Option<String> {
    let hex = |b: &[u8; 32]| data_encoding::HEXLOWER.encode(b);
    Some(match e {
        ClusterEvent::Entries {
            account,
            device,
            from,
            to,
        } => format!(
            "{node:016x} E {} {} {from} {to}",
            hex(&account.0),
            hex(&device.0)
        ),
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
        [_, "E", a, d, from, to] => ClusterEvent::Entries {
            account: AccountId(id(a)?),
            device: DeviceId(id(d)?),
            from: from.parse().ok()?,
            to: to.parse().ok()?,
        },
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
                    to
                }),
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

    proptest! {
        #[test]
        fn events_round_trip_through_their_text(node in any::<u64>(), e in event()) {
            let text = encode_event(node, &e).unwrap();
            prop_assert!(text.len() < 8000);
            prop_assert_eq!(decode_event(&text), Some((node, e)));
        }

        #[test]
        fn any_text_decodes_or_is_ignored_without_panicking(text in ".{0,300}") {
            let _ = decode_event(&text);
        }
    }
}
