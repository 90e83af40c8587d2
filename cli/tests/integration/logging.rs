//! `kith log` (the headline flow) and `kith interaction ...`.

use crate::harness::Kith;

#[test]
fn log_after_a_meeting_records_everything() {
    let k = Kith::new();
    let zoe = k.add_contact("Zoë Åberg", &[]);
    let bruno = k.add_contact("Bruno Lima", &[]);
    let p = k.json(&["project", "add", "Formulary review"]);
    let v = k.json(&[
        "log",
        "Coffee about the formulary",
        "--with",
        "zoe",
        "--with",
        "Bruno Lima",
        "--kind",
        "meal",
        "--at",
        "2026-11-25 08:30",
        "--notes",
        "Line one\nLine two",
        "--gave",
        "feedback",
        "--got",
        "insight:zoe",
        "--initiator",
        "me",
        "--project",
        "formulary",
        "--follow-up",
        "Send the audit deck",
        "--due",
        "friday",
        "--follow-up",
        "Book a ward visit",
    ]);
    assert_eq!(v["kind"], "meal");
    assert_eq!(v["initiator"], "me");
    assert_eq!(v["summary"], "Coffee about the formulary");
    assert_eq!(v["notes"], "Line one\nLine two");
    assert_eq!(v["at_ms"], 1_795_595_400_000_i64); // 2026-11-25T08:30Z (TZ=UTC)
    assert_eq!(v["offset_minutes"], 0);
    assert_eq!(v["project"], p["id"]);
    let mut participants: Vec<&str> = v["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    participants.sort();
    let mut expected = vec![zoe.as_str(), bruno.as_str()];
    expected.sort();
    assert_eq!(participants, expected);
    let ex = v["exchanges"].as_array().unwrap();
    assert_eq!(ex.len(), 2);
    assert!(ex.iter().any(|e| e["what"] == "insight"
        && e["direction"] == "received"
        && e["with"] == zoe.as_str()));
    assert!(
        ex.iter()
            .any(|e| e["what"] == "feedback" && e["direction"] == "gave" && e["with"].is_null())
    );
    let fus: Vec<&serde_json::Value> = v["follow_ups"].as_object().unwrap().values().collect();
    assert_eq!(fus.len(), 2);
    assert!(
        fus.iter()
            .any(|f| f["text"] == "Send the audit deck" && f["due"] == "2026-11-27")
    );
    assert!(
        fus.iter()
            .any(|f| f["text"] == "Book a ward visit" && f["due"].is_null())
    );

    let human = k
        .run(&[
            "log",
            "Quick call",
            "--with",
            "bruno",
            "--kind",
            "call",
            "--at",
            "-2h",
        ])
        .ok()
        .stdout;
    assert!(
        human.starts_with("Logged call with Bruno Lima (2026-11-26 08:00, 2 hours ago)"),
        "{human}"
    );
}

#[test]
fn create_missing_makes_new_contacts_in_the_same_write() {
    let k = Kith::new();
    k.add_contact("Anabel Costa", &[]);
    // Without the flag, an unknown name is an error; with it, "Ana" is not
    // prefix-matched to Anabel but created.
    k.input_error(
        &["log", "Lunch", "--with", "Carla Nova"],
        "unknown contact 'Carla Nova'",
    );
    let v = k.json(&[
        "log",
        "Lunch",
        "--with",
        "Ana",
        "--with",
        "Carla Nova",
        "--create-missing",
        "--got",
        "support:carla nova",
    ]);
    let mut names: Vec<&str> = v["participant_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["Ana", "Carla Nova"]);
    assert_eq!(k.json(&["contact", "list"]).as_array().unwrap().len(), 3);
    // A unique prefix resolves without the flag.
    let v = k.json(&["log", "Call", "--with", "anab", "--kind", "call"]);
    assert_eq!(v["participant_names"][0], "Anabel Costa");
}

#[test]
fn interaction_show_edit_delete_undelete() {
    let k = Kith::new();
    k.add_contact("Zoë Åberg", &[]);
    k.add_contact("Bruno Lima", &[]);
    let id = k.log(&["Coffee", "--with", "zoe", "--notes", "first"]);
    let v = k.json(&["interaction", "show", &id]);
    assert_eq!(v["summary"], "Coffee");
    let v = k.json(&[
        "interaction",
        "edit",
        &id,
        "--summary",
        "Coffee and plans",
        "--notes",
        "second",
        "--kind",
        "meeting",
        "--at",
        "2026-11-20",
        "--initiator",
        "them",
        "--with",
        "bruno",
        "--without",
        "zoe",
        "--follow-up",
        "Call back",
        "--due",
        "+7d",
    ]);
    assert_eq!(v["summary"], "Coffee and plans");
    assert_eq!(v["notes"], "second");
    assert_eq!(v["initiator"], "them");
    assert_eq!(v["participant_names"], serde_json::json!(["Bruno Lima"]));
    assert_eq!(v["at_ms"], 1_795_132_800_000_i64);
    let fu = v["follow_ups"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    assert_eq!(fu["due"], "2026-12-03");
    let human = k.run(&["interaction", "show", &id]).ok().stdout;
    assert!(
        human.contains("Call back, due 2026-12-03 (in 7 days)"),
        "{human}"
    );

    let del = k.json(&["interaction", "delete", &id]);
    assert!(del["deleted_ms"].is_i64());
    assert_eq!(k.json(&["timeline"]).as_array().unwrap().len(), 0);
    assert_eq!(
        k.json(&["timeline", "--deleted"]).as_array().unwrap().len(),
        1
    );
    assert!(
        k.run(&["timeline", "--deleted"])
            .ok()
            .stdout
            .contains("[deleted] Coffee and plans")
    );
    let back = k.json(&["interaction", "undelete", &id]);
    assert!(back["deleted_ms"].is_null());
    assert_eq!(k.json(&["timeline"]).as_array().unwrap().len(), 1);
}

#[test]
fn log_and_edit_errors_name_the_problem_and_change_nothing() {
    let k = Kith::new();
    k.add_contact("Zoë Åberg", &[]);
    k.add_contact("Ana Silva", &[]);
    k.add_contact("Ana Sousa", &[]);
    let id = k.log(&["Coffee", "--with", "zoe"]);
    let id = id.as_str();
    // Each must fail with exit 2, a one-line error naming the problem, and
    // leave the store as it was (checked by `input_error`).
    let cases: &[(&[&str], &str)] = &[
        (&["log", "", "--with", "zoe"], "summary must not be empty"),
        (
            &["log", "   ", "--with", "zoe"],
            "summary must not be empty",
        ),
        (
            &["log", "x", "--with", "zoe", "--kind", "lunch"],
            "unknown kind 'lunch' (expected one of: meeting call message email event meal project_work other)",
        ),
        (
            &["log", "x", "--with", "nobody"],
            "unknown contact 'nobody'",
        ),
        (&["log", "x", "--with", "ana"], "'ana' matches 2 contacts"),
        (
            &["log", "x", "--with", "zoe", "--at", "next tuesday"],
            "bad time 'next tuesday'",
        ),
        (
            &["log", "x", "--with", "zoe", "--at", "2026-02-30"],
            "bad time '2026-02-30'",
        ),
        (
            &[
                "log",
                "x",
                "--with",
                "zoe",
                "--follow-up",
                "y",
                "--due",
                "someday",
            ],
            "bad date 'someday'",
        ),
        (
            &["log", "x", "--with", "zoe", "--due", "friday"],
            "--due given without a --follow-up",
        ),
        (
            &["log", "x", "--with", "zoe", "--initiator", "boss"],
            "unknown initiator 'boss'",
        ),
        (
            &["log", "x", "--with", "zoe", "--gave", "money"],
            "unknown exchange 'money'",
        ),
        (
            &["log", "x", "--with", "zoe", "--got", "insight:ana silva"],
            "is not one of the participants",
        ),
        (
            &["log", "x", "--with", "zoe", "--got", "insight:"],
            "name a participant after ':'",
        ),
        (
            &["log", "x", "--with", "zoe", "--project", "nope"],
            "unknown project 'nope'",
        ),
        (
            &["log", "x"],
            "required arguments were not provided: --with",
        ),
        (
            &["log", "x", "--with", "zoe", "--follow-up", " "],
            "follow-up must not be empty",
        ),
        (
            &["interaction", "show", "nope"],
            "invalid interaction id 'nope'",
        ),
        (
            &["interaction", "show", "01ARZ3NDEKTSV4RRFFQ69G5FAV"],
            "no interaction with id",
        ),
        (
            &["interaction", "edit", id, "--summary", ""],
            "summary must not be empty",
        ),
        (
            &["interaction", "edit", id, "--without", "zoe"],
            "at least one participant",
        ),
        (
            &["interaction", "edit", id, "--without", "Ana Silva"],
            "is not a participant",
        ),
        (
            &["interaction", "edit", id, "--kind", "x", "--follow-up", "y"],
            "unknown kind 'x'",
        ),
        (
            &["interaction", "delete", "01ARZ3NDEKTSV4RRFFQ69G5FAV"],
            "no interaction with id",
        ),
    ];
    for (args, needle) in cases {
        k.input_error(args, needle);
    }
}

#[test]
fn wall_clock_times_use_the_local_zone_and_its_daylight_saving() {
    let k = Kith::new();
    k.add_contact("Ana", &[]);
    let log_at = |at: &str| {
        let mut c = k.command();
        c.env_remove("KITH_NOW").env("TZ", "America/New_York");
        c.arg("--data")
            .arg(k.data())
            .args(["log", "x", "--with", "ana", "--at", at, "--json"]);
        crate::harness::run(c)
    };
    let winter = log_at("2026-03-01 09:30").json();
    assert_eq!(winter["at_ms"], 1_772_375_400_000_i64); // 14:30Z
    assert_eq!(winter["offset_minutes"], -300);
    let summer = log_at("2026-07-01 09:30").json();
    assert_eq!(summer["at_ms"], 1_782_912_600_000_i64); // 13:30Z
    assert_eq!(summer["offset_minutes"], -240);
    let before = k.snapshot();
    let gap = log_at("2026-03-08 02:30");
    assert_eq!(gap.code, 2);
    assert!(
        gap.stderr.contains("does not exist in the local time zone"),
        "{}",
        gap.stderr
    );
    assert_eq!(before, k.snapshot());
}

#[test]
fn the_same_person_typed_twice_is_one_participant() {
    let k = Kith::new();
    let zoe = k.add_contact("Zoë Åberg", &[]);
    let v = k.json(&[
        "log",
        "Chat",
        "--with",
        "zoe",
        "--with",
        "ZOË ÅBERG",
        "--got",
        "insight:zoe",
    ]);
    assert_eq!(v["participants"], serde_json::json!([zoe]));
    assert_eq!(v["exchanges"][0]["with"], zoe.as_str());
    let v = k.json(&[
        "log",
        "Chat",
        "--with",
        "Carla",
        "--with",
        "carla",
        "--create-missing",
        "--gave",
        "support:CARLA",
    ]);
    assert_eq!(v["participant_names"].as_array().unwrap().len(), 1);
    assert_eq!(k.json(&["contact", "list"]).as_array().unwrap().len(), 2);
}

#[test]
fn more_edits_projects_and_archived_contacts() {
    let k = Kith::new();
    k.add_contact(
        "Zoë Åberg",
        &["--phone", "+44 20 7946 0000", "--cadence", "30"],
    );
    k.add_contact("Old Friend", &[]);
    k.json(&["contact", "archive", "old friend"]);
    // An archived contact is still found by name when nobody active matches.
    let v = k.json(&["log", "Reunion", "--with", "old friend"]);
    assert_eq!(v["participant_names"], serde_json::json!(["Old Friend"]));
    let c = k.json(&[
        "contact",
        "edit",
        "zoe",
        "--name",
        "Zoë Åberg-Smith",
        "--remove-phone",
        "+44 20 7946 0000",
        "--cadence",
        "0",
    ]);
    assert_eq!(c["name"], "Zoë Åberg-Smith");
    assert_eq!(c["phones"], serde_json::json!([]));
    assert!(c["cadence_days"].is_null());
    let p = k.json(&["project", "add", "Ward redesign"]);
    let id = k.log(&["Workshop", "--with", "zoe", "--kind", "project_work"]);
    let v = k.json(&["interaction", "edit", &id, "--project", "ward"]);
    assert_eq!(v["project"], p["id"]);
    assert!(
        k.run(&["interaction", "show", &id])
            .ok()
            .stdout
            .contains("project    Ward redesign")
    );
    let v = k.json(&["interaction", "edit", &id, "--no-project"]);
    assert!(v["project"].is_null());
    k.input_error(
        &["interaction", "edit", &id, "--project", "nope"],
        "unknown project 'nope'",
    );
    k.input_error(&["timeline", "nobody"], "unknown contact 'nobody'");
    k.input_error(
        &["interaction", "edit", &id, "--due", "friday"],
        "--follow-up",
    );
}

#[test]
fn exchange_partners_resolve_like_contacts() {
    let k = Kith::new();
    let zoe = k.add_contact("Zoë Åberg", &[]);
    k.add_contact("Bruno Lima", &[]);
    let v = k.json(&[
        "log",
        "Chat",
        "--with",
        "zoe",
        "--with",
        "bruno",
        "--got",
        "insight:aberg",
        "--gave",
        &format!("support:{zoe}"),
    ]);
    let ex = v["exchanges"].as_array().unwrap();
    assert!(ex.iter().all(|e| e["with"] == zoe.as_str()), "{ex:?}");
}

/// Copies every change of every document from the store in `from` to the one in `to`.
fn sync_stores(from: &std::path::Path, to: &std::path::Path) {
    let mut src = kith_core::Store::open(from).unwrap();
    let mut dst = kith_core::Store::open(to).unwrap();
    for doc in src.doc_ids().unwrap() {
        let changes = src.changes_since(doc, &[]).unwrap();
        dst.apply_remote_changes(doc, &changes, |_| Ok(())).unwrap();
    }
    src.close().unwrap();
    dst.close().unwrap();
}

#[test]
fn concurrent_notes_edits_show_as_a_conflict_until_resolved() {
    let laptop = Kith::new();
    laptop.add_contact("Ana", &[]);
    let id = laptop.log(&["Coffee", "--with", "ana", "--notes", "original"]);
    let phone = tempfile::tempdir().unwrap();
    sync_stores(&laptop.data(), phone.path());
    // Both devices edit the notes offline.
    {
        let mut s = kith_core::Store::open(phone.path()).unwrap();
        let patch = kith_core::InteractionPatch {
            notes: Some("from the phone".into()),
            ..Default::default()
        };
        s.edit_interaction(id.parse().unwrap(), patch).unwrap();
        s.close().unwrap();
    }
    laptop.json(&["interaction", "edit", &id, "--notes", "from the laptop"]);
    sync_stores(phone.path(), &laptop.data());

    let v = laptop.json(&["interaction", "show", &id]);
    let mut all = vec![v["notes"].as_str().unwrap().to_string()];
    all.extend(
        v["notes_conflicts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_string()),
    );
    all.sort();
    assert_eq!(all, ["from the laptop", "from the phone"]);
    let human = laptop.run(&["interaction", "show", &id]).ok().stdout;
    assert!(
        human.contains("conflicting notes #1 from another device"),
        "{human}"
    );
    assert!(
        laptop
            .run(&["timeline"])
            .ok()
            .stdout
            .contains("[notes conflict] Coffee")
    );

    let v = laptop.json(&[
        "interaction",
        "edit",
        &id,
        "--notes",
        "both: laptop and phone",
    ]);
    assert_eq!(v["notes_conflicts"], serde_json::json!([]));
    assert!(
        !laptop
            .run(&["timeline"])
            .ok()
            .stdout
            .contains("[notes conflict]")
    );
}
