//! Time-sortable random identifiers (ULIDs) for every record.
//!
//! Records live in Automerge maps keyed by these ids, never in lists, so two
//! offline devices that insert concurrently never conflict. A ULID's first 48
//! bits are a millisecond timestamp, so ids sort by creation time and an id can
//! be minted "at" a given time (used to place an interaction in its time
//! partition). The remaining 80 bits are random.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

/// Error for a string that is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} id '{given}': expected a 26-character ULID")]
pub struct InvalidId {
    /// Which kind of id was expected ("contact", "interaction", ...).
    pub what: &'static str,
    /// The input, untrimmed, as given.
    pub given: String,
}

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Ulid);

        impl $name {
            /// A fresh random id stamped with the current time.
            pub fn new() -> Self {
                $name(Ulid::new())
            }

            /// A fresh random id stamped with `ms` (clamped to the ULID range).
            pub fn new_at(ms: i64) -> Self {
                let ms = u64::try_from(ms).unwrap_or(0).min((1u64 << 48) - 1);
                $name(Ulid::from_parts(ms, rand::random::<u128>()))
            }

            /// Builds an id from its 128-bit value.
            pub fn from_u128(v: u128) -> Self {
                $name(Ulid(v))
            }

            /// The 128-bit value (big-endian bytes sort like the string form).
            pub fn to_u128(self) -> u128 {
                self.0 .0
            }

            /// The millisecond timestamp the id was minted with.
            pub fn timestamp_ms(self) -> i64 {
                i64::try_from(self.0.timestamp_ms()).unwrap_or(i64::MAX)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ulid::from_string(s.trim())
                    .map($name)
                    .map_err(|_| InvalidId { what: $what, given: s.to_string() })
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(/// Identifies a contact.
    ContactId, "contact");
id_type!(/// Identifies an interaction; its timestamp picks the interaction's partition.
    InteractionId, "interaction");
id_type!(/// Identifies a project.
    ProjectId, "project");
id_type!(/// Identifies a goal.
    GoalId, "goal");
id_type!(/// Identifies a follow-up within an interaction.
    FollowUpId, "follow-up");
id_type!(/// Identifies an exchange within an interaction.
    ExchangeId, "exchange");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_sort_by_time() {
        let a = InteractionId::new_at(1_000);
        let b = InteractionId::new_at(2_000);
        assert!(a < b);
        assert_eq!(a.timestamp_ms(), 1_000);
        let s = a.to_string();
        assert_eq!(s.parse::<InteractionId>().unwrap(), a);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<InteractionId>(&json).unwrap(), a);
        assert!("nope".parse::<ContactId>().is_err());
    }
}
