//! iCalendar meaning: components → [`CalendarEvent`] occurrences that end inside a window.
//!
//! Data flow: [`IcsCalendar::parse`] keeps the syntax tree of `parse`; [`IcsCalendar::events_ending_between`]
//! groups the VEVENTs of each VCALENDAR by UID into a master and its overrides (RECURRENCE-ID),
//! expands the master's RRULE/RDATE minus EXDATE with the `rrule` crate *only between the window's
//! start less the event's length and the window's end* (so a daily series since 1990 costs what the
//! window holds, capped by [`IcsLimits::occurrences_per_series_max`]), replaces expanded occurrences
//! by their overrides, and keeps what ends inside the window.
//!
//! Times: UTC values stay UTC, TZID values are read in their zone (see `tz`), floating values and
//! all-day dates in the zone the caller gives (the device's). A local time that a daylight-saving
//! change skips is moved forward by an hour, and one it repeats takes the earlier instant (RFC 5545 3.3.5).
//! A VEVENT that is damaged in its meaning (no DTSTART, a bad RRULE, an unknown zone) is skipped and
//! reported in [`Expanded::skipped`] with its line; the rest of the file is still used.

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use rrule::{RRule, RRuleSet, Unvalidated};

use crate::error::{IcsError, IcsErrorKind};
use crate::event::{Attendee, CalendarEvent, EventKey, EventStatus, PartStat};
use crate::parse::{Component, IcsLimits, Property, parse_components, unescape_text};
use crate::tz;

/// A parsed calendar file, ready to be asked for the events of any window.
#[derive(Debug, Clone)]
pub struct IcsCalendar {
    calendars: Vec<Component>,
    source: String,
    limits: IcsLimits,
}

/// Occurrences found in a window, and the events that could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expanded {
    /// The occurrences, sorted by end then key.
    pub events: Vec<CalendarEvent>,
    /// Events that could not be read, with their lines.
    pub skipped: Vec<IcsError>,
}

impl IcsCalendar {
    /// Parses a file. `source` becomes every event's [`EventKey::source`] (the CLI uses `ics`,
    /// so that the same event exported twice is the same event).
    pub fn parse(input: &[u8], source: &str, limits: &IcsLimits) -> Result<Self, IcsError> {
        let roots = parse_components(input, limits)?;
        let calendars: Vec<Component> = roots
            .into_iter()
            .filter(|c| c.name == "VCALENDAR")
            .collect();
        if calendars.is_empty() {
            return Err(IcsError::new(0, IcsErrorKind::NoCalendar));
        }
        Ok(Self {
            calendars,
            source: source.to_owned(),
            limits: *limits,
        })
    }

    /// The syntax tree (one component per VCALENDAR of the file).
    pub fn components(&self) -> &[Component] {
        &self.calendars
    }

    /// Every occurrence whose end lies in `[from_ms, to_ms]`, sorted by end then key.
    pub fn events_ending_between(
        &self,
        from_ms: i64,
        to_ms: i64,
        floating_tz: chrono_tz::Tz,
    ) -> Result<Expanded, IcsError> {
        let mut out = Expanded::default();
        let window = Window {
            from: ms_to_utc(from_ms),
            to: ms_to_utc(to_ms),
            floating: floating_tz,
        };
        for cal in &self.calendars {
            let cancelled_by_method = cal
                .prop("METHOD")
                .is_some_and(|m| m.value.trim().eq_ignore_ascii_case("CANCEL"));
            let mut by_uid: HashMap<Cow<'_, str>, (Option<&Component>, Vec<&Component>)> =
                HashMap::new();
            for ev in cal.children.iter().filter(|c| c.name == "VEVENT") {
                let uid: Cow<'_, str> = match ev
                    .prop("UID")
                    .map(|p| p.value.trim())
                    .filter(|u| !u.is_empty())
                {
                    Some(uid) => Cow::Borrowed(uid),
                    None if ev.prop("DTSTART").is_some() => Cow::Owned(derived_uid(ev)),
                    None => {
                        out.skipped.push(IcsError::new(
                            ev.line,
                            IcsErrorKind::Missing("UID and DTSTART"),
                        ));
                        continue;
                    }
                };
                let entry = by_uid.entry(uid).or_default();
                if ev.prop("RECURRENCE-ID").is_some() {
                    entry.1.push(ev);
                } else if entry.0.is_none() {
                    entry.0 = Some(ev);
                } else {
                    // Two masters for one UID: the later one is an update sent by mail; keep it.
                    entry.0 = Some(ev);
                }
            }
            let mut series: Vec<_> = by_uid.into_iter().collect();
            series.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            for (uid, (master, overrides)) in series {
                let ctx = Ctx {
                    cal,
                    source: &self.source,
                    uid: &uid,
                    cancelled_by_method,
                    window: &window,
                    limits: &self.limits,
                };
                if let Err(e) = ctx.series(master, &overrides, &mut out.events) {
                    out.skipped.push(e);
                }
                if out.events.len() > self.limits.occurrences_max {
                    return Err(IcsError::new(
                        0,
                        IcsErrorKind::TooManyOccurrences {
                            occurrences_max: self.limits.occurrences_max,
                        },
                    ));
                }
            }
        }
        out.events
            .sort_by(|a, b| a.end_ms.cmp(&b.end_ms).then_with(|| a.key.cmp(&b.key)));
        out.skipped.sort_by_key(|e| e.line);
        Ok(out)
    }
}

struct Window {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    floating: chrono_tz::Tz,
}

struct Ctx<'a> {
    cal: &'a Component,
    source: &'a str,
    uid: &'a str,
    cancelled_by_method: bool,
    window: &'a Window,
    limits: &'a IcsLimits,
}

/// A DTSTART/DTEND/RDATE/EXDATE/RECURRENCE-ID value before it is placed in time.
#[derive(Debug, Clone, Copy)]
enum DateValue {
    Date(NaiveDate),
    Utc(NaiveDateTime),
    Local(NaiveDateTime, chrono_tz::Tz),
    Floating(NaiveDateTime),
}

type Instant = DateTime<rrule::Tz>;

impl Ctx<'_> {
    fn series(
        &self,
        master: Option<&Component>,
        overrides: &[&Component],
        out: &mut Vec<CalendarEvent>,
    ) -> Result<(), IcsError> {
        let mut overridden: HashMap<String, &Component> = HashMap::new();
        for ov in overrides {
            let Some(rid) = ov.prop("RECURRENCE-ID") else {
                continue;
            };
            let value = self.date_value(rid)?;
            overridden.insert(recurrence_key(value, self.instant(value)), ov);
        }
        // An override whose master is not in the file stands alone.
        let master = match master {
            Some(m) => m,
            None => {
                for ov in overrides {
                    self.expand(ov, &HashMap::new(), out)?;
                }
                return Ok(());
            }
        };
        self.expand(master, &overridden, out)?;
        for (rid, ov) in overridden {
            let (start, end, all_day) = self.times(ov)?;
            self.push_if_in_window(ov, start, end, all_day, Some(rid), out);
        }
        Ok(())
    }

    /// Expands one VEVENT (single or recurring) into `out`, leaving out overridden occurrences.
    fn expand(
        &self,
        ev: &Component,
        overridden: &HashMap<String, &Component>,
        out: &mut Vec<CalendarEvent>,
    ) -> Result<(), IcsError> {
        let (start, end, all_day) = self.times(ev)?;
        let length = end.signed_duration_since(start);
        let rrules: Vec<&Property> = ev.props("RRULE").collect();
        let rdates: Vec<&Property> = ev.props("RDATE").collect();
        if rrules.is_empty() && rdates.is_empty() {
            let rid = match ev.prop("RECURRENCE-ID") {
                Some(p) => {
                    let v = self.date_value(p)?;
                    Some(recurrence_key(v, self.instant(v)))
                }
                None => None,
            };
            self.push_if_in_window(ev, start, end, all_day, rid, out);
            return Ok(());
        }
        // Occurrences that end in the window start in [from - length, to].
        // Arithmetic near the ends of time saturates (checked_*): inputs choose both dates and windows.
        let after_utc = self
            .window
            .from
            .checked_sub_signed(length.max(Duration::zero()))
            .unwrap_or(self.window.from);
        let series_start = fast_forward(start, &rrules, &rdates, after_utc);
        let mut set = RRuleSet::new(series_start);
        for p in &rrules {
            let rule: RRule<Unvalidated> = p.value.parse().map_err(|e: rrule::RRuleError| {
                IcsError::new(p.line, IcsErrorKind::BadRecurrence(e.to_string()))
            })?;
            let rule = rule
                .validate(series_start)
                .map_err(|e| IcsError::new(p.line, IcsErrorKind::BadRecurrence(e.to_string())))?;
            set = set.rrule(rule);
        }
        if rrules.is_empty() {
            // DTSTART is always the first occurrence (RFC 5545 3.8.5.2); with RDATE only, add it.
            set = set.rdate(start);
        }
        for p in &rdates {
            for d in self.date_list(p)? {
                set = set.rdate(d);
            }
        }
        for p in ev.props("EXDATE") {
            for d in self.date_list(p)? {
                set = set.exdate(d);
            }
        }
        let after = after_utc.with_timezone(&rrule::Tz::UTC);
        let before = self.window.to.with_timezone(&rrule::Tz::UTC);
        let result = set
            .after(after)
            .before(before)
            .all(self.limits.occurrences_per_series_max);
        let mut seen = std::collections::HashSet::new();
        for occ in result.dates {
            if !seen.insert(occ.timestamp_millis()) {
                continue;
            }
            let rid = recurrence_key(
                if all_day {
                    DateValue::Date(occ.date_naive())
                } else {
                    DateValue::Utc(occ.naive_utc())
                },
                occ,
            );
            if overridden.contains_key(&rid) {
                continue;
            }
            let end = occ.checked_add_signed(length).unwrap_or(occ);
            self.push_if_in_window(ev, occ, end, all_day, Some(rid), out);
        }
        Ok(())
    }

    fn push_if_in_window(
        &self,
        ev: &Component,
        start: Instant,
        end: Instant,
        all_day: bool,
        recurrence_id: Option<String>,
        out: &mut Vec<CalendarEvent>,
    ) {
        let end_utc = end.with_timezone(&Utc);
        if end_utc < self.window.from || end_utc > self.window.to {
            return;
        }
        out.push(self.event(ev, start, end, all_day, recurrence_id));
    }

    fn event(
        &self,
        ev: &Component,
        start: Instant,
        end: Instant,
        all_day: bool,
        recurrence_id: Option<String>,
    ) -> CalendarEvent {
        let text = |name: &str| {
            ev.prop(name)
                .map(|p| unescape_text(p.value.trim()))
                .filter(|s| !s.is_empty())
        };
        let url = [
            "URL",
            "CONFERENCE",
            "X-GOOGLE-CONFERENCE",
            "X-MICROSOFT-SKYPETEAMSMEETINGURL",
            "X-MICROSOFT-ONLINEMEETINGCONFLINK",
        ]
        .iter()
        .find_map(|n| text(n));
        let attendees = ev
            .props("ATTENDEE")
            .filter(|p| {
                !p.param("CUTYPE")
                    .is_some_and(|c| matches!(c.to_ascii_uppercase().as_str(), "ROOM" | "RESOURCE"))
            })
            .map(person)
            .collect();
        let status = if self.cancelled_by_method {
            EventStatus::Cancelled
        } else {
            ev.prop("STATUS")
                .map(|p| EventStatus::from_ical(&p.value))
                .unwrap_or_default()
        };
        let private = ev.prop("CLASS").is_some_and(|p| {
            matches!(
                p.value.trim().to_ascii_uppercase().as_str(),
                "PRIVATE" | "CONFIDENTIAL"
            )
        });
        CalendarEvent {
            key: EventKey {
                source: self.source.to_owned(),
                uid: self.uid.to_owned(),
                recurrence_id,
            },
            title: text("SUMMARY").unwrap_or_default(),
            start_ms: start.timestamp_millis(),
            end_ms: end.timestamp_millis().max(start.timestamp_millis()),
            all_day,
            location: text("LOCATION"),
            description: text("DESCRIPTION"),
            url,
            organiser: ev.prop("ORGANIZER").map(|p| Attendee {
                partstat: PartStat::Accepted,
                ..person(p)
            }),
            attendees,
            status,
            private,
        }
    }

    /// Start, end and all-day flag of a VEVENT (end from DTEND, else DURATION, else RFC defaults).
    fn times(&self, ev: &Component) -> Result<(Instant, Instant, bool), IcsError> {
        let dtstart = ev
            .prop("DTSTART")
            .ok_or_else(|| IcsError::new(ev.line, IcsErrorKind::Missing("DTSTART")))?;
        let sv = self.date_value(dtstart)?;
        let all_day = matches!(sv, DateValue::Date(_));
        let start = self.instant(sv);
        let end = if let Some(p) = ev.prop("DTEND") {
            self.instant(self.date_value(p)?)
        } else if let Some(p) = ev.prop("DURATION") {
            let d = parse_duration(&p.value).ok_or_else(|| bad_duration(p))?;
            start.checked_add_signed(d).unwrap_or(start)
        } else if all_day {
            start.checked_add_signed(Duration::days(1)).unwrap_or(start)
        } else {
            start
        };
        Ok((start, end.max(start), all_day))
    }

    fn date_value(&self, p: &Property) -> Result<DateValue, IcsError> {
        self.parse_one_date(p, p.value.trim())
    }

    fn parse_one_date(&self, p: &Property, value: &str) -> Result<DateValue, IcsError> {
        let bad = || {
            IcsError::new(
                p.line,
                IcsErrorKind::BadDate {
                    property: p.name.clone(),
                    value: value.to_owned(),
                },
            )
        };
        let b = value.as_bytes();
        if b.len() == 8 {
            return NaiveDate::parse_from_str(value, "%Y%m%d")
                .map(DateValue::Date)
                .map_err(|_| bad());
        }
        let (core, utc) = match value.strip_suffix(['Z', 'z']) {
            Some(c) => (c, true),
            None => (value, false),
        };
        if core.len() != 15 {
            return Err(bad());
        }
        let naive = NaiveDateTime::parse_from_str(core, "%Y%m%dT%H%M%S").map_err(|_| bad())?;
        if utc {
            return Ok(DateValue::Utc(naive));
        }
        match p.param("TZID") {
            Some(tzid) => tz::resolve(tzid, self.cal)
                .map(|zone| DateValue::Local(naive, zone))
                .ok_or_else(|| IcsError::new(p.line, IcsErrorKind::UnknownZone(tzid.to_owned()))),
            None => Ok(DateValue::Floating(naive)),
        }
    }

    /// RDATE/EXDATE: comma-separated dates, date-times or periods (the period's start counts).
    fn date_list(&self, p: &Property) -> Result<Vec<Instant>, IcsError> {
        p.value
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .take(usize::from(self.limits.occurrences_per_series_max))
            .map(|v| {
                let start = v.split('/').next().unwrap_or(v);
                self.parse_one_date(p, start).map(|d| self.instant(d))
            })
            .collect()
    }

    fn instant(&self, v: DateValue) -> Instant {
        match v {
            DateValue::Date(d) => local(self.window.floating, d.and_time(chrono::NaiveTime::MIN)),
            DateValue::Utc(n) => Utc.from_utc_datetime(&n).with_timezone(&rrule::Tz::UTC),
            DateValue::Local(n, zone) => local(zone, n),
            DateValue::Floating(n) => local(self.window.floating, n),
        }
    }
}

/// Why: `rrule` walks a series from its DTSTART, so a weekly meeting since 2019 costs hundreds of
/// steps per listing of the last week. For rules whose occurrence pattern repeats with a fixed
/// period of local days (WEEKLY, or DAILY without month/year filters) and that are not counted
/// (COUNT numbers occurrences from the first) nor positional (BYSETPOS), the series from
/// DTSTART + k periods holds exactly the same occurrences after that point, so the start moves to
/// the last whole period before the window (in local wall-clock time, so DST keeps 09:00 at 09:00).
/// Anything else is expanded from its real start.
fn fast_forward(
    start: Instant,
    rrules: &[&Property],
    rdates: &[&Property],
    after: DateTime<Utc>,
) -> Instant {
    let [rule] = rrules else { return start };
    if !rdates.is_empty() || start.with_timezone(&Utc) >= after {
        return start;
    }
    let mut freq = None;
    let mut interval: i64 = 1;
    let mut by_day = false;
    for part in rule.value.split(';') {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        match k.trim().to_ascii_uppercase().as_str() {
            "FREQ" => freq = Some(v.trim().to_ascii_uppercase()),
            "INTERVAL" => match v.trim().parse::<i64>() {
                Ok(n) if (1..=1000).contains(&n) => interval = n,
                _ => return start,
            },
            "BYDAY" => by_day = true,
            "UNTIL" | "WKST" | "BYHOUR" | "BYMINUTE" | "BYSECOND" => {}
            _ => return start,
        }
    }
    let period_days = match freq.as_deref() {
        Some("WEEKLY") => 7 * interval,
        Some("DAILY") if by_day => lcm(interval, 7),
        Some("DAILY") => interval,
        _ => return start,
    };
    let behind_days = (after - start.with_timezone(&Utc)).num_days();
    // One period of margin: local-time shifts (DST, zone offsets) move instants by hours.
    let periods = behind_days / period_days - 1;
    if periods <= 0 {
        return start;
    }
    let Some(days) = periods.checked_mul(period_days) else {
        return start;
    };
    let Some(naive) = start.naive_local().checked_add_signed(Duration::days(days)) else {
        return start;
    };
    let zone = start.timezone();
    zone.from_local_datetime(&naive)
        .earliest()
        .or_else(|| {
            zone.from_local_datetime(&naive.checked_add_signed(Duration::hours(1))?)
                .earliest()
        })
        .unwrap_or(start)
}

fn lcm(a: i64, b: i64) -> i64 {
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    a / x * b
}

/// A local time in a zone: the earlier instant when it repeats, an hour later when it is skipped.
fn local(zone: chrono_tz::Tz, n: NaiveDateTime) -> Instant {
    let z = rrule::Tz::Tz(zone);
    z.from_local_datetime(&n)
        .earliest()
        .or_else(|| {
            z.from_local_datetime(&n.checked_add_signed(Duration::hours(1))?)
                .earliest()
        })
        .unwrap_or_else(|| Utc.from_utc_datetime(&n).with_timezone(&z))
}

/// The recurrence id an occurrence is known by: the local date for all-day series, else the UTC
/// instant, so an override's RECURRENCE-ID (in whatever zone it is written) finds its occurrence.
fn recurrence_key(v: DateValue, at: Instant) -> String {
    match v {
        DateValue::Date(d) => d.format("%Y%m%d").to_string(),
        _ => at.with_timezone(&Utc).format("%Y%m%dT%H%M%SZ").to_string(),
    }
}

fn ms_to_utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(if ms < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// A UID for an event that has none (some exporters omit it): derived from its start, end and
/// title with FNV-1a, so the same file read again (on any device) names the event the same way.
fn derived_uid(ev: &Component) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for name in ["DTSTART", "DTEND", "DURATION", "SUMMARY"] {
        let v = ev.prop(name).map(|p| p.value.as_str()).unwrap_or("");
        for b in name.bytes().chain(v.bytes()).chain(std::iter::once(0)) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("kith-derived-{h:016x}")
}

fn bad_duration(p: &Property) -> IcsError {
    IcsError::new(
        p.line,
        IcsErrorKind::BadDuration {
            property: p.name.clone(),
            value: p.value.clone(),
        },
    )
}

/// ORGANIZER / ATTENDEE → a person: `mailto:` in any case stripped, CN as the name.
fn person(p: &Property) -> Attendee {
    let v = p.value.trim();
    let email = if v.len() >= 7 && v[..7].eq_ignore_ascii_case("mailto:") {
        &v[7..]
    } else {
        v
    };
    let email = email.trim();
    let email = (!email.is_empty() && email.contains('@')).then(|| email.to_owned());
    let name = p
        .param("CN")
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    Attendee {
        name,
        email,
        partstat: p
            .param("PARTSTAT")
            .map(PartStat::from_ical)
            .unwrap_or_default(),
    }
}

/// RFC 5545 3.3.6 DURATION: `[+|-]P[nW][nD][T[nH][nM][nS]]`; a negative one counts as zero.
pub(crate) fn parse_duration(value: &str) -> Option<Duration> {
    let v = value.trim();
    let (neg, v) = match v.as_bytes().first()? {
        b'-' => (true, &v[1..]),
        b'+' => (false, &v[1..]),
        _ => (false, v),
    };
    let v = v.strip_prefix(['P', 'p'])?;
    let mut total: i64 = 0;
    let mut num: Option<i64> = None;
    let mut in_time = false;
    let mut any = false;
    for c in v.chars() {
        match c.to_ascii_uppercase() {
            'T' if !in_time && num.is_none() => in_time = true,
            d @ '0'..='9' => {
                let digit = i64::from(d.to_digit(10)?);
                num = Some(num.unwrap_or(0).checked_mul(10)?.checked_add(digit)?);
            }
            unit => {
                let n = num.take()?;
                let secs = match (unit, in_time) {
                    ('W', false) => 7 * 86_400,
                    ('D', false) => 86_400,
                    ('H', true) => 3_600,
                    ('M', true) => 60,
                    ('S', true) => 1,
                    _ => return None,
                };
                total = total.checked_add(n.checked_mul(secs)?)?;
                any = true;
            }
        }
    }
    if num.is_some() || !any || total > 366 * 86_400 * 10 {
        return None;
    }
    Some(if neg {
        Duration::zero()
    } else {
        Duration::seconds(total)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast-forwarded start yields exactly the occurrences of a walk from the real start.
    #[test]
    fn fast_forward_keeps_the_occurrences() {
        let rules = [
            "FREQ=WEEKLY",
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH",
            "FREQ=DAILY;INTERVAL=3;BYDAY=TU,SA",
            "FREQ=DAILY;INTERVAL=5",
            "FREQ=WEEKLY;INTERVAL=3;UNTIL=20260320T000000Z",
        ];
        let zone = rrule::Tz::Tz(chrono_tz::Europe::Berlin);
        let start = local(
            chrono_tz::Europe::Berlin,
            NaiveDate::from_ymd_opt(2019, 2, 7)
                .unwrap()
                .and_hms_opt(9, 30, 0)
                .unwrap(),
        );
        for rule in rules {
            for (from, days) in [
                ("2026-03-02T00:00:00Z", 45),
                ("2025-10-20T00:00:00Z", 14),
                ("2019-02-01T00:00:00Z", 30),
            ] {
                let from = DateTime::parse_from_rfc3339(from)
                    .unwrap()
                    .with_timezone(&Utc);
                let to = from + Duration::days(days);
                let line = Property {
                    name: "RRULE".into(),
                    params: vec![],
                    value: rule.into(),
                    line: 1,
                };
                let moved = fast_forward(start, &[&line], &[], from);
                let walk = |s: Instant| -> Vec<i64> {
                    let r: RRule<Unvalidated> = rule.parse().unwrap();
                    RRuleSet::new(s)
                        .rrule(r.validate(s).unwrap())
                        .after(from.with_timezone(&zone))
                        .before(to.with_timezone(&zone))
                        .all(1000)
                        .dates
                        .iter()
                        .map(DateTime::timestamp_millis)
                        .collect()
                };
                assert_eq!(walk(moved), walk(start), "{rule} from {from}");
            }
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("PT1H30M"), Some(Duration::minutes(90)));
        assert_eq!(parse_duration("P1W"), Some(Duration::days(7)));
        assert_eq!(parse_duration("P1DT2H"), Some(Duration::hours(26)));
        assert_eq!(parse_duration("-PT5M"), Some(Duration::zero()));
        for bad in [
            "",
            "P",
            "PT",
            "1H",
            "PT1",
            "P1H",
            "PT1D",
            "P99999999999999999999D",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
