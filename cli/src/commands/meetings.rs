//! `kith meetings`: the meetings to log from iCalendar files, and logging or dismissing one.
//!
//! Data flow: every `--ics` file is read and parsed by kith-calendar (a damaged file is an input
//! error naming the file and line; an event damaged in its meaning is skipped with a warning on
//! stderr), the occurrences that ended in the `--since` window go to the engine
//! (`Store::meetings_to_log`), and the list is numbered most recent first. `log N|UID` and
//! `dismiss N|UID` rebuild the same list from the same files and act on one entry, so a number
//! means what the listing just showed.

use std::io::Write as _;

use kith_calendar::{IcsCalendar, IcsLimits, Tz};
use kith_core::meetings::{
    CalendarEvent, MeetingCandidate, MeetingError, MeetingExtra, MeetingShare,
};
use kith_core::model::{Direction, ExchangeWhat, Initiator, InteractionKind};
use kith_core::{NewExchange, NewFollowUp};
use serde::Serialize;

use super::{Ctx, misc, op_error, parse_vocab, store_failure};
use crate::args::{MeetingsAction, MeetingsArgs, MeetingsLogArgs};
use crate::error::{CliError, CliResult};
use crate::render::{Table, truncate, when_local};
use crate::when::parse_date;

/// What `kith meetings --json` prints.
#[derive(Debug, Serialize)]
struct Listing<'a> {
    meetings: Vec<Numbered<'a>>,
    /// The insights line: meetings with people in the last 30 days, and how many were logged.
    last_30_days: MeetingShare,
}

#[derive(Debug, Serialize)]
struct Numbered<'a> {
    n: usize,
    id: String,
    #[serde(flatten)]
    candidate: &'a MeetingCandidate,
}

fn meeting_error(e: MeetingError) -> CliError {
    match e {
        MeetingError::Store(s) => store_failure(s),
        MeetingError::Op(o) => op_error(o),
        other => CliError::input(other),
    }
}

/// `7d`, `24h`, `2w` → milliseconds.
fn parse_since(s: &str) -> CliResult<i64> {
    let t = s.trim();
    let bad = || {
        CliError::input(format!(
            "bad --since '{s}': expected a number and a unit, like 7d, 36h or 2w"
        ))
    };
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: i64 = num.parse().map_err(|_| bad())?;
    let unit_ms = match unit {
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return Err(bad()),
    };
    if !(1..=3660).contains(&n) {
        return Err(bad());
    }
    Ok(n * unit_ms)
}

/// The zone of floating times and all-day dates: `--tz`, else `TZ` when it names an IANA zone,
/// else UTC.
fn zone(given: Option<&str>) -> CliResult<Tz> {
    match given {
        Some(z) => z.parse().map_err(|_| {
            CliError::input(format!(
                "unknown time zone '{z}' (an IANA name like Europe/Berlin)"
            ))
        }),
        None => Ok(std::env::var("TZ")
            .ok()
            .and_then(|z| z.trim_start_matches(':').parse().ok())
            .unwrap_or(Tz::UTC)),
    }
}

/// Reads every file and returns the occurrences that ended in the 30 days before now (the
/// widest of the listing window and the insights window), plus warnings for skipped events.
fn read_events(
    a: &MeetingsArgs,
    now_ms: i64,
    window_ms: i64,
) -> CliResult<(Vec<CalendarEvent>, Vec<String>)> {
    if a.ics.is_empty() {
        return Err(CliError::input(
            "give the calendar with --ics FILE (an .ics export; repeatable)",
        ));
    }
    let tz = zone(a.tz.as_deref())?;
    let from = now_ms - window_ms.max(kith_core::meetings::SHARE_WINDOW_MS);
    let mut events = Vec::new();
    let mut warnings = Vec::new();
    for path in &a.ics {
        let bytes =
            std::fs::read(path).map_err(|e| CliError::input(format!("{}: {e}", path.display())))?;
        let cal = IcsCalendar::parse(&bytes, "ics", &IcsLimits::default())
            .map_err(|e| CliError::input(format!("{}: {e}", path.display())))?;
        let got = cal
            .events_ending_between(from, now_ms, tz)
            .map_err(|e| CliError::input(format!("{}: {e}", path.display())))?;
        warnings.extend(
            got.skipped
                .iter()
                .map(|e| format!("{}: skipped an event: {e}", path.display())),
        );
        events.extend(got.events);
    }
    Ok((events, warnings))
}

fn list(ctx: &Ctx, a: &MeetingsArgs) -> CliResult<(Vec<MeetingCandidate>, Vec<CalendarEvent>)> {
    let window_ms = parse_since(&a.since)?;
    let now = ctx.clock.now_ms();
    let (events, warnings) = read_events(a, now, window_ms)?;
    let mut err = std::io::stderr();
    for w in warnings {
        let _ = writeln!(err, "warning: {w}");
    }
    let candidates = ctx
        .store
        .meetings_to_log(&events, now, window_ms)
        .map_err(meeting_error)?;
    Ok((candidates, events))
}

/// `N` (1-based, as listed) or a UID (`uid` or `uid@recurrence-id`).
fn select<'a>(candidates: &'a [MeetingCandidate], which: &str) -> CliResult<&'a MeetingCandidate> {
    let w = which.trim();
    if let Ok(n) = w.parse::<usize>() {
        return candidates.get(n.wrapping_sub(1)).ok_or_else(|| {
            CliError::input(format!(
                "no meeting number {n}: the list has {} (run `kith meetings --ics ...`)",
                candidates.len()
            ))
        });
    }
    if let Some(c) = candidates.iter().find(|c| c.event.key.display_id() == w) {
        return Ok(c);
    }
    let by_uid: Vec<&MeetingCandidate> =
        candidates.iter().filter(|c| c.event.key.uid == w).collect();
    match by_uid.as_slice() {
        [one] => Ok(one),
        [] => Err(CliError::input(format!(
            "no meeting to log with UID '{w}' (already logged or dismissed, or outside --since?)"
        ))),
        many => Err(CliError::input(format!(
            "UID '{w}' is a recurring event with {} occurrences to log; use its number or UID@RECURRENCE-ID",
            many.len()
        ))),
    }
}

pub(super) fn run(ctx: &mut Ctx, a: MeetingsArgs) -> CliResult<()> {
    let (candidates, events) = list(ctx, &a)?;
    match &a.action {
        None => show(ctx, &candidates, &events),
        Some(MeetingsAction::Log(l)) => log(ctx, select(&candidates, &l.which)?, l),
        Some(MeetingsAction::Dismiss { which }) => {
            let c = select(&candidates, which)?;
            ctx.store
                .dismiss_meeting(&c.event.key)
                .map_err(meeting_error)?;
            ctx.out.line(format!(
                "Dismissed \"{}\" ({}); it will not be suggested again",
                c.event.title,
                when_local(c.event.start_ms, &ctx.clock)
            ))?;
            Ok(())
        }
    }
}

fn show(ctx: &mut Ctx, candidates: &[MeetingCandidate], events: &[CalendarEvent]) -> CliResult<()> {
    let share = ctx
        .store
        .meeting_log_share(events, ctx.clock.now_ms())
        .map_err(meeting_error)?;
    if ctx.json {
        let meetings = candidates
            .iter()
            .enumerate()
            .map(|(i, c)| Numbered {
                n: i + 1,
                id: c.event.key.display_id(),
                candidate: c,
            })
            .collect();
        ctx.out.json(&Listing {
            meetings,
            last_30_days: share,
        })?;
        return Ok(());
    }
    if candidates.is_empty() {
        ctx.out.line("No meetings to log.")?;
    } else {
        let mut t = Table::new(&["#", "WHEN", "TITLE", "WITH", "NEW", "KIND"]);
        for (i, c) in candidates.iter().enumerate() {
            let with: Vec<&str> = c.matched.iter().map(|m| m.contact_name.as_str()).collect();
            let new: Vec<String> = c
                .unmatched
                .iter()
                .map(
                    |u| match (u.candidates.len(), u.attendee.email.as_deref()) {
                        (0, Some(e)) => format!("{} <{e}>", u.display_name()),
                        (0, None) => u.display_name(),
                        (n, _) => format!("{} ({n} contacts?)", u.display_name()),
                    },
                )
                .collect();
            t.row(vec![
                (i + 1).to_string(),
                when_local(c.event.start_ms, &ctx.clock),
                truncate(&c.event.title, 40),
                truncate(&with.join(", "), 40),
                truncate(&new.join(", "), 50),
                c.suggested_kind.to_string(),
            ]);
        }
        ctx.out.table(&t)?;
        ctx.out
            .line("Log one with `kith meetings --ics FILE log N [--notes ...]`, or `dismiss N`.")?;
    }
    if let Some(p) = share.logged_percent() {
        ctx.out.line(format!(
            "Last 30 days: {} of {} meetings with people logged ({p}%), {} dismissed.",
            share.logged, share.meetings, share.dismissed
        ))?;
    }
    Ok(())
}

fn log(ctx: &mut Ctx, c: &MeetingCandidate, l: &MeetingsLogArgs) -> CliResult<()> {
    if l.dues.len() > l.follow_ups.len() {
        return Err(CliError::input(
            "--due given without a --follow-up to attach it to",
        ));
    }
    let mut follow_ups = Vec::new();
    for (i, text) in l.follow_ups.iter().enumerate() {
        if text.trim().is_empty() {
            return Err(CliError::input("a follow-up must not be empty"));
        }
        let due = l
            .dues
            .get(i)
            .map(|d| parse_date(d, &ctx.clock))
            .transpose()?;
        follow_ups.push(NewFollowUp {
            text: text.clone(),
            due,
        });
    }
    let mut exchanges = Vec::new();
    for (specs, direction) in [(&l.gave, Direction::Gave), (&l.got, Direction::Received)] {
        for s in specs {
            if s.contains(':') {
                return Err(CliError::input(format!(
                    "'{s}': an exchange of a meeting is with everybody; attach it to one person later with `kith interaction edit`"
                )));
            }
            exchanges.push(NewExchange {
                what: parse_vocab::<ExchangeWhat>(s)?,
                direction,
                with: None,
            });
        }
    }
    let extra = MeetingExtra {
        summary: l.summary.clone(),
        kind: l
            .kind
            .as_deref()
            .map(parse_vocab::<InteractionKind>)
            .transpose()?,
        notes: l.notes.clone().unwrap_or_default(),
        initiator: l
            .initiator
            .as_deref()
            .map(parse_vocab::<Initiator>)
            .transpose()?,
        project: l
            .project
            .as_deref()
            .map(|p| misc::resolve_project(&ctx.store, p))
            .transpose()?,
        exchanges,
        follow_ups,
        create: l.create.clone(),
        create_all_missing: l.create_missing,
        offset_minutes: ctx
            .clock
            .local_offset_at(c.event.start_ms)
            .local_minus_utc()
            .div_euclid(60)
            .try_into()
            .unwrap_or(0),
    };
    let i = ctx.store.log_meeting(c, extra).map_err(meeting_error)?;
    if ctx.json {
        let contacts = super::Contacts::load(&ctx.store)?;
        ctx.out
            .json(&super::query::TimelineEntry::new(&i, &contacts))?;
        return Ok(());
    }
    let contacts = super::Contacts::load(&ctx.store)?;
    ctx.out.line(format!(
        "Logged {} \"{}\" with {} ({})",
        i.kind,
        i.summary,
        contacts.names(i.participants.iter().copied()).join(", "),
        when_local(i.at_ms, &ctx.clock)
    ))?;
    let left: Vec<String> = c
        .unmatched
        .iter()
        .filter(|u| {
            !contacts.all.iter().any(|k| {
                k.emails
                    .iter()
                    .any(|e| Some(e.value.as_str()) == u.attendee.email.as_deref())
            })
        })
        .map(|u| u.display_name())
        .collect();
    if !left.is_empty() {
        ctx.out.line(format!(
            "Not added (no contact): {} — use --create or --create-missing to add them",
            left.join(", ")
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_forms() {
        assert_eq!(parse_since("7d").unwrap(), 7 * 86_400_000);
        assert_eq!(parse_since("36h").unwrap(), 36 * 3_600_000);
        assert_eq!(parse_since("2w").unwrap(), 14 * 86_400_000);
        for bad in ["", "d", "7", "7y", "-1d", "0d", "99999d", "7 d"] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
    }
}
