//! Parsing of the times and dates people type on the command line.
//!
//! Everything here is a pure function of the input text and a [`Clock`] (the
//! current instant and the local time zone), so the rules are unit-tested
//! without touching the system clock. The binary builds its clock from the
//! system (or from `KITH_NOW`, for reproducible scripts and tests) and passes
//! the results on as UTC milliseconds plus the local offset, the shape the
//! model stores.
//!
//! TIME (when something happened): RFC 3339, `YYYY-MM-DD HH:MM` (local),
//! `YYYY-MM-DD` (local midnight), `now`, `today` (= now), `yesterday` (now
//! minus one day), and relative offsets into the past: `-30m`, `-2h`, `-3d`,
//! `-1w`.
//!
//! DATE (when something is due): `YYYY-MM-DD`, `today`, `tomorrow`,
//! `yesterday`, `+7d` / `+2w` (days or weeks from today), and weekday names
//! (`friday`, `fri`: the next such day strictly after today).

use chrono::{
    DateTime, Datelike, Duration, FixedOffset, Local, LocalResult, NaiveDate, NaiveDateTime,
    NaiveTime, Offset, TimeZone, Utc, Weekday,
};

/// Upper bound for relative offsets (`-Nd`, `+Nd`), so arithmetic never overflows.
const RELATIVE_AMOUNT_MAX: i64 = 100_000;

/// The current instant and the local zone the user typed their input in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    /// Now, in the user's local zone (a fixed offset is enough: input is
    /// interpreted in the offset that applies at the parsed instant when the
    /// zone is the system one, see [`Clock::local_offset_at`]).
    pub(crate) now: DateTime<FixedOffset>,
    /// Whether to use the system time zone for local wall-clock inputs (true
    /// in normal use) or the fixed offset of `now` (for `KITH_NOW` / tests).
    pub(crate) system_zone: bool,
}

/// An instant as the model stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Instant {
    pub(crate) at_ms: i64,
    pub(crate) offset_minutes: i16,
}

/// A TIME or DATE that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WhenError {
    #[error(
        "bad time '{0}' (expected RFC 3339, 'YYYY-MM-DD HH:MM', 'YYYY-MM-DD', now, today, yesterday, or -30m/-2h/-3d/-1w)"
    )]
    BadTime(String),
    #[error(
        "bad date '{0}' (expected YYYY-MM-DD, today, tomorrow, yesterday, +7d/+2w, or a weekday name)"
    )]
    BadDate(String),
    #[error("time '{0}' does not exist in the local time zone (daylight saving gap)")]
    NonexistentLocalTime(String),
    #[error("bad KITH_NOW '{0}' (expected an RFC 3339 time)")]
    BadNow(String),
}

impl Clock {
    /// The system clock and zone, unless `KITH_NOW` (RFC 3339) pins "now".
    pub(crate) fn from_env() -> Result<Clock, WhenError> {
        match std::env::var("KITH_NOW") {
            Ok(s) if !s.trim().is_empty() => {
                let now =
                    DateTime::parse_from_rfc3339(s.trim()).map_err(|_| WhenError::BadNow(s))?;
                Ok(Clock {
                    now,
                    system_zone: false,
                })
            }
            _ => {
                let local = Local::now();
                Ok(Clock {
                    now: local.fixed_offset(),
                    system_zone: true,
                })
            }
        }
    }

    /// A clock pinned at `now` that interprets wall-clock input in its offset.
    #[cfg(test)]
    pub(crate) fn fixed(rfc3339: &str) -> Clock {
        Clock {
            now: DateTime::parse_from_rfc3339(rfc3339).unwrap(),
            system_zone: false,
        }
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.now.timestamp_millis()
    }

    pub(crate) fn now_instant(&self) -> Instant {
        Instant {
            at_ms: self.now_ms(),
            offset_minutes: offset_minutes(self.now.offset()),
        }
    }

    /// Today's date in the local zone.
    pub(crate) fn today(&self) -> NaiveDate {
        self.now.date_naive()
    }

    /// Resolves a local wall-clock time to an instant.
    fn resolve_local(&self, naive: NaiveDateTime, input: &str) -> Result<Instant, WhenError> {
        let dt: DateTime<FixedOffset> = if self.system_zone {
            match Local.from_local_datetime(&naive) {
                LocalResult::Single(t) => t.fixed_offset(),
                // An ambiguous wall time (clocks going back): take the earlier.
                LocalResult::Ambiguous(a, _) => a.fixed_offset(),
                LocalResult::None => {
                    return Err(WhenError::NonexistentLocalTime(input.to_string()));
                }
            }
        } else {
            match self.now.offset().from_local_datetime(&naive) {
                LocalResult::Single(t) => t,
                _ => return Err(WhenError::NonexistentLocalTime(input.to_string())),
            }
        };
        Ok(Instant {
            at_ms: dt.timestamp_millis(),
            offset_minutes: offset_minutes(dt.offset()),
        })
    }

    /// The local offset that applies at `at_ms` (for display).
    pub(crate) fn local_offset_at(&self, at_ms: i64) -> FixedOffset {
        if self.system_zone {
            match Utc.timestamp_millis_opt(at_ms) {
                LocalResult::Single(t) => t.with_timezone(&Local).offset().fix(),
                _ => *self.now.offset(),
            }
        } else {
            *self.now.offset()
        }
    }
}

fn offset_minutes(offset: &FixedOffset) -> i16 {
    // Offsets are bounded by +-24 h, so this always fits.
    i16::try_from(offset.local_minus_utc() / 60).unwrap_or(0)
}

/// chrono's `%Y` accepts any number of digits; people mean `YYYY-`.
fn starts_with_four_digit_year(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-'
}

/// Splits `-3d` / `+2w` into (sign, amount, unit).
fn relative(input: &str) -> Option<(char, i64, char)> {
    let mut chars = input.chars();
    let sign = chars.next().filter(|c| *c == '-' || *c == '+')?;
    let rest: &str = chars.as_str();
    let unit = rest.chars().last()?;
    let digits = &rest[..rest.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let amount: i64 = digits.parse().ok()?;
    if amount > RELATIVE_AMOUNT_MAX {
        return None;
    }
    Some((sign, amount, unit.to_ascii_lowercase()))
}

/// Parses a TIME (see the module doc).
pub(crate) fn parse_time(input: &str, clock: &Clock) -> Result<Instant, WhenError> {
    let s = input.trim();
    let bad = || WhenError::BadTime(input.to_string());
    match s.to_lowercase().as_str() {
        "now" | "today" => return Ok(clock.now_instant()),
        "yesterday" => {
            let i = clock.now_instant();
            return Ok(Instant {
                at_ms: i.at_ms - 86_400_000,
                ..i
            });
        }
        _ => {}
    }
    if let Some((sign, amount, unit)) = relative(s) {
        if sign != '-' {
            return Err(bad());
        }
        let step_ms: i64 = match unit {
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            'w' => 7 * 86_400_000,
            _ => return Err(bad()),
        };
        let i = clock.now_instant();
        return Ok(Instant {
            at_ms: i.at_ms - amount * step_ms,
            ..i
        });
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Ok(Instant {
            at_ms: dt.timestamp_millis(),
            offset_minutes: offset_minutes(dt.offset()),
        });
    }
    if !starts_with_four_digit_year(s) {
        return Err(bad());
    }
    for fmt in [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(s, fmt) {
            return clock.resolve_local(naive, input);
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return clock.resolve_local(date.and_time(NaiveTime::MIN), input);
    }
    Err(bad())
}

/// Parses a DATE (see the module doc).
pub(crate) fn parse_date(input: &str, clock: &Clock) -> Result<NaiveDate, WhenError> {
    let s = input.trim();
    let bad = || WhenError::BadDate(input.to_string());
    let today = clock.today();
    match s.to_lowercase().as_str() {
        "today" => return Ok(today),
        "tomorrow" => return today.succ_opt().ok_or_else(bad),
        "yesterday" => return today.pred_opt().ok_or_else(bad),
        _ => {}
    }
    if let Some((sign, amount, unit)) = relative(s) {
        let days = match unit {
            'd' => amount,
            'w' => amount * 7,
            _ => return Err(bad()),
        };
        let delta = Duration::try_days(if sign == '-' { -days } else { days }).ok_or_else(bad)?;
        return today.checked_add_signed(delta).ok_or_else(bad);
    }
    if starts_with_four_digit_year(s)
        && let Ok(date) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
    {
        return Ok(date);
    }
    if let Ok(weekday) = s.parse::<Weekday>() {
        let mut d = today.succ_opt().ok_or_else(bad)?;
        while d.weekday() != weekday {
            d = d.succ_opt().ok_or_else(bad)?;
        }
        return Ok(d);
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Thursday 2026-11-26 10:00 at UTC+01:00.
    fn clock() -> Clock {
        Clock::fixed("2026-11-26T10:00:00+01:00")
    }

    fn ms(rfc: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn times_in_every_accepted_form() {
        let c = clock();
        let now = ms("2026-11-26T10:00:00+01:00");
        assert_eq!(parse_time("now", &c).unwrap().at_ms, now);
        assert_eq!(parse_time("Today", &c).unwrap().at_ms, now);
        assert_eq!(parse_time("yesterday", &c).unwrap().at_ms, now - 86_400_000);
        assert_eq!(parse_time("-2h", &c).unwrap().at_ms, now - 7_200_000);
        assert_eq!(parse_time("-3d", &c).unwrap().at_ms, now - 3 * 86_400_000);
        assert_eq!(parse_time("-30m", &c).unwrap().at_ms, now - 1_800_000);
        assert_eq!(parse_time("-1w", &c).unwrap().at_ms, now - 7 * 86_400_000);
        let i = parse_time("2026-03-01T09:30:00-05:00", &c).unwrap();
        assert_eq!(i.at_ms, ms("2026-03-01T14:30:00Z"));
        assert_eq!(i.offset_minutes, -300);
        let i = parse_time("2026-03-01 09:30", &c).unwrap();
        assert_eq!(i.at_ms, ms("2026-03-01T08:30:00Z"));
        assert_eq!(i.offset_minutes, 60);
        let i = parse_time("2026-03-01", &c).unwrap();
        assert_eq!(i.at_ms, ms("2026-02-28T23:00:00Z"));
    }

    #[test]
    fn bad_times_are_rejected_with_the_input_named() {
        let c = clock();
        for bad in [
            "",
            "soon",
            "+2h",
            "-2y",
            "-h",
            "2026-13-01",
            "2026-02-30 10:00",
            "-99999999999d",
            "26-01-01 10:00",
        ] {
            let err = parse_time(bad, &c).unwrap_err();
            assert!(err.to_string().contains(&format!("'{bad}'")), "{err}");
        }
    }

    #[test]
    fn dates_in_every_accepted_form() {
        let c = clock();
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(parse_date("today", &c).unwrap(), d("2026-11-26"));
        assert_eq!(parse_date("tomorrow", &c).unwrap(), d("2026-11-27"));
        assert_eq!(parse_date("yesterday", &c).unwrap(), d("2026-11-25"));
        assert_eq!(parse_date("+7d", &c).unwrap(), d("2026-12-03"));
        assert_eq!(parse_date("+2w", &c).unwrap(), d("2026-12-10"));
        assert_eq!(parse_date("2027-01-05", &c).unwrap(), d("2027-01-05"));
        assert_eq!(parse_date("friday", &c).unwrap(), d("2026-11-27"));
        assert_eq!(parse_date("Mon", &c).unwrap(), d("2026-11-30"));
        // Strictly after today: Thursday on a Thursday is next week.
        assert_eq!(parse_date("thursday", &c).unwrap(), d("2026-12-03"));
    }

    #[test]
    fn bad_dates_are_rejected() {
        let c = clock();
        for bad in ["", "someday", "+7y", "2026-02-30", "26-01-01", "+", "+d"] {
            assert!(parse_date(bad, &c).is_err(), "{bad} accepted");
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn arbitrary_input_never_panics(s in "\\PC{0,40}") {
                let c = clock();
                let _ = parse_time(&s, &c);
                let _ = parse_date(&s, &c);
            }

            #[test]
            fn dates_round_trip(days in -200_000i64..200_000) {
                let c = clock();
                let d = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap() + Duration::days(days);
                let text = d.format("%Y-%m-%d").to_string();
                // Years beyond 9999 or before 0 are not YYYY: only those must parse.
                if (0..=9999).contains(&d.year()) {
                    prop_assert_eq!(parse_date(&text, &c).unwrap(), d);
                }
            }

            #[test]
            fn instants_round_trip_through_rfc3339(
                ms in 0i64..4_102_444_800_000,
                offset_min in -720i32..=840,
            ) {
                let c = clock();
                let tz = FixedOffset::east_opt(offset_min * 60).unwrap();
                let t = Utc.timestamp_millis_opt(ms).unwrap().with_timezone(&tz);
                let text = t.to_rfc3339();
                let i = parse_time(&text, &c).unwrap();
                prop_assert_eq!(i.at_ms, ms);
                prop_assert_eq!(i32::from(i.offset_minutes), offset_min);
            }

            #[test]
            fn relative_times_go_back_exactly(n in 0i64..10_000, unit in prop::sample::select(vec!['m', 'h', 'd', 'w'])) {
                let c = clock();
                let step = match unit { 'm' => 60_000, 'h' => 3_600_000, 'd' => 86_400_000, _ => 604_800_000 };
                let i = parse_time(&format!("-{n}{unit}"), &c).unwrap();
                prop_assert_eq!(i.at_ms, c.now_ms() - n * step);
            }
        }
    }
}
