//! `kith meetings`: listing from .ics files, logging and dismissing by number or UID, the
//! 30-day line, and damaged files as input errors naming file and line.

use crate::harness::Kith;

/// Meetings around NOW (2026-11-26T10:00Z): two ended in the last days, one declined by me,
/// one tomorrow, a recurring one with an occurrence yesterday.
const ICS: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n\
BEGIN:VEVENT\r\nUID:coffee-1\r\nDTSTART:20261125T083000Z\r\nDTEND:20261125T091500Z\r\n\
SUMMARY:Coffee with Zoë\r\nORGANIZER;CN=Me:mailto:me@example.com\r\n\
ATTENDEE;CN=\"Zoë Åberg\";PARTSTAT=ACCEPTED:MAILTO:zoe@stmarys.example\r\n\
ATTENDEE;CN=Kai Berg;PARTSTAT=ACCEPTED:mailto:kai@example.org\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:declined-1\r\nDTSTART:20261124T120000Z\r\nDTEND:20261124T130000Z\r\n\
SUMMARY:Budget\r\nATTENDEE;PARTSTAT=DECLINED:mailto:me@example.com\r\n\
ATTENDEE:mailto:zoe@stmarys.example\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:future-1\r\nDTSTART:20261127T120000Z\r\nDTEND:20261127T130000Z\r\n\
SUMMARY:Tomorrow\r\nATTENDEE:mailto:zoe@stmarys.example\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:weekly-1\r\nDTSTART;TZID=Europe/Berlin:20261004T100000\r\nDURATION:PT30M\r\n\
RRULE:FREQ=WEEKLY\r\nSUMMARY:Ward round https://meet.google.com/abc-defg-hij\r\n\
LOCATION:https://meet.google.com/abc-defg-hij\r\nATTENDEE:mailto:zoe@stmarys.example\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";

fn setup() -> (Kith, String) {
    let k = Kith::new();
    k.add_contact("Zoë Åberg", &["--email", "zoe@stmarys.example"]);
    k.run(&["settings", "set", "my-emails", "Me@Example.com"])
        .ok();
    let file = k.dir.path().join("cal.ics");
    std::fs::write(&file, ICS).unwrap();
    (k, file.display().to_string())
}

#[test]
fn list_log_and_dismiss() {
    let (k, file) = setup();
    let v = k.json(&["meetings", "--ics", &file]);
    let uids: Vec<&str> = v["meetings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["event"]["key"]["uid"].as_str().unwrap())
        .collect();
    assert_eq!(uids, ["coffee-1", "weekly-1"], "{v}");
    assert_eq!(v["meetings"][0]["suggested_kind"], "meal");
    assert_eq!(v["meetings"][1]["suggested_kind"], "call");
    assert_eq!(v["meetings"][0]["matched"][0]["contact_name"], "Zoë Åberg");
    assert_eq!(
        v["meetings"][0]["unmatched"][0]["attendee"]["email"],
        "kai@example.org"
    );
    let table = k.run(&["meetings", "--ics", &file]).ok().stdout;
    assert!(
        table.contains("Coffee with Zoë") && table.contains("Kai Berg <kai@example.org>"),
        "{table}"
    );

    let logged = k.json(&[
        "meetings",
        "--ics",
        &file,
        "log",
        "coffee-1",
        "--notes",
        "Pilot agreed",
        "--create-missing",
    ]);
    assert_eq!(logged["kind"], "meal");
    assert_eq!(logged["summary"], "Coffee with Zoë");
    assert_eq!(
        logged["participants"].as_array().unwrap().len(),
        2,
        "{logged}"
    );
    k.run(&["meetings", "dismiss", "1", "--ics", &file]).ok();
    let out = k.run(&["meetings", "--ics", &file]).ok().stdout;
    assert!(out.contains("No meetings to log"), "{out}");
    // 30 days: coffee (logged) and four Sundays of the weekly round (one dismissed).
    assert!(
        out.contains("Last 30 days: 1 of 5 meetings with people logged (20%), 1 dismissed."),
        "{out}"
    );
    // A wider window shows the earlier Sunday again.
    let wide = k.json(&["meetings", "--ics", &file, "--since", "14d"]);
    assert_eq!(wide["meetings"].as_array().unwrap().len(), 1, "{wide}");
    // Logging again is refused; nothing else changes.
    k.input_error(
        &["meetings", "--ics", &file, "log", "coffee-1"],
        "no meeting to log with UID 'coffee-1'",
    );
}

#[test]
fn bad_input_is_an_input_error() {
    let (k, file) = setup();
    k.input_error(&["meetings"], "--ics FILE");
    k.input_error(
        &["meetings", "--ics", &file, "--since", "7y"],
        "bad --since",
    );
    k.input_error(
        &["meetings", "--ics", &file, "log", "9"],
        "no meeting number 9",
    );
    k.input_error(
        &["meetings", "--ics", &file, "--tz", "Mars/Base"],
        "unknown time zone",
    );
    let broken = k.dir.path().join("broken.ics");
    std::fs::write(
        &broken,
        "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;;VALUE=DATE:20261125\nEND:VEVENT\nEND:VCALENDAR\n",
    )
    .unwrap();
    let b = broken.display().to_string();
    k.input_error(&["meetings", "--ics", &b], "line 3: damaged content line");
    k.input_error(
        &["meetings", "--ics", "/nonexistent/cal.ics"],
        "/nonexistent/cal.ics",
    );
}
