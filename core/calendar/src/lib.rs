//! Kith's calendar input. It owns the calendar event record that phone calendars and files map
//! to ([`CalendarEvent`], one per occurrence) and an iCalendar reader ([`IcsCalendar`]): a
//! bounded line/parameter parser of its own (`parse`: unfolding, quoted parameters, RFC 6868,
//! line numbers in every error) feeding a meaning layer (`expand`) that uses the `rrule` crate
//! for recurrence and `chrono-tz` for zones, and expands a series only inside the asked window.
//! Deciding which events are meetings worth logging is the engine's job (kith-core `meetings`).

#![warn(missing_docs)]

mod error;
mod event;
mod expand;
mod parse;
#[doc(hidden)]
pub mod synth;
mod tz;

/// Zones for floating times and all-day dates (the device's zone).
pub use chrono_tz::Tz;
pub use error::{IcsError, IcsErrorKind};
pub use event::{Attendee, CalendarEvent, EventKey, EventStatus, PartStat};
pub use expand::{Expanded, IcsCalendar};
pub use parse::{Component, IcsLimits, Param, Property};
